-- The user service schema for PostgreSQL (and PostgreSQL-compatible
-- distributed databases). Several stateless server replicas share it.

-- Accounts. Ids are UUID v7, which sort by creation time (uuid compares
-- bytewise), so keyset pagination over the primary key lists the oldest first.
create table users (
    id            uuid        primary key,
    username      text        not null,
    email         text        not null,
    password_hash text        not null,
    role          text        not null default 'user' check (role in ('user', 'admin')),
    -- Set while an operator has disabled the account.
    disabled_at   timestamptz,
    created_at    timestamptz not null,
    updated_at    timestamptz not null
);

-- Usernames are unique case-insensitively; the index decides registration
-- races between replicas.
create unique index users_username_key on users (lower(username));
-- Emails are stored lower-cased, so a plain unique index suffices.
create unique index users_email_key on users (email);

-- One row per login; refresh rotation is a compare-and-swap on refresh_jti.
create table sessions (
    id           uuid        primary key,
    user_id      uuid        not null references users (id) on delete cascade,
    refresh_jti  uuid        not null,
    previous_jti uuid,
    rotated_at   timestamptz,
    created_at   timestamptz not null,
    last_used_at timestamptz not null,
    expires_at   timestamptz not null,
    revoked_at   timestamptz,
    user_agent   text,
    ip           text
);

-- Revoking all of a user's sessions, and the cascade on delete.
create index sessions_user_id_idx on sessions (user_id);

-- Favorite tracks; id gives insertion order (newest = highest).
create table favorites (
    id         bigint      generated always as identity primary key,
    user_id    uuid        not null references users (id) on delete cascade,
    track_id   text        not null,
    created_at timestamptz not null,
    constraint favorites_user_track_key unique (user_id, track_id)
);

-- A user's favorites newest first, at any depth in O(page size).
create index favorites_user_id_idx on favorites (user_id, id);

-- The transactional outbox, written in the transaction of the change it
-- describes. A user's writes lock the user row first, so one user's task ids
-- are allocated in commit order. user_id has no foreign key: user.deleted
-- outlives its user.
create table deferred_tasks (
    id           bigint      generated always as identity primary key,
    kind         text        not null,
    user_id      uuid        not null,
    track_id     text,
    occurred_at  timestamptz not null,
    status       text        not null default 'pending' check (status in ('pending', 'done', 'dead')),
    attempts     integer     not null default 0,
    -- Not to be tried before this time (backoff after a failure).
    available_at timestamptz not null,
    -- While in the future, a relay holds the task; lease_id names the claim.
    leased_until timestamptz,
    lease_id     uuid,
    last_error   text,
    created_at   timestamptz not null,
    updated_at   timestamptz not null
);

-- The relay's claim query: pending tasks in id order.
create index deferred_tasks_pending_idx on deferred_tasks (id) where status = 'pending';
-- Per-user order: a task waits while an earlier task of its user is pending.
create index deferred_tasks_user_pending_idx on deferred_tasks (user_id, id) where status = 'pending';
-- Operators list tasks by status (dead letters).
create index deferred_tasks_status_idx on deferred_tasks (status, id);

-- Secrets the service generates for itself (the JWT signing key): the first
-- replica to start inserts, every replica reads the winner.
create table service_secrets (
    name       text        primary key,
    value      bytea       not null,
    created_at timestamptz not null
);
