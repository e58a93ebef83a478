-- The user service schema for SQLite.
-- Times are integers: milliseconds since the Unix epoch, UTC. They compare and
-- index cheaply and keep the precision the service works at.
-- Ids (users, sessions, jtis) are UUIDs stored as 16-byte blobs.

-- Accounts. Ids are UUID v7, which sort by creation time, so keyset
-- pagination over the primary key lists the oldest account first.
create table users (
    id            blob    primary key not null,
    username      text    not null,
    email         text    not null,
    password_hash text    not null,
    role          text    not null default 'user' check (role in ('user', 'admin')),
    -- Set while an operator has disabled the account.
    disabled_at   integer,
    created_at    integer not null,
    updated_at    integer not null
);

-- Usernames are unique case-insensitively; the index, not a prior lookup,
-- decides a race between two registrations.
create unique index users_username_key on users (lower(username));
-- Emails are stored lower-cased, so a plain unique index suffices.
create unique index users_email_key on users (email);

-- One row per login. The refresh token family rotates by compare-and-swap on
-- refresh_jti; previous_jti and rotated_at give the reuse grace period.
create table sessions (
    id           blob    primary key not null,
    user_id      blob    not null references users (id) on delete cascade,
    refresh_jti  blob    not null,
    previous_jti blob,
    rotated_at   integer,
    created_at   integer not null,
    last_used_at integer not null,
    expires_at   integer not null,
    revoked_at   integer,
    user_agent   text,
    ip           text
);

-- Revoking all sessions of a user (password change, disable) and the cascade
-- on delete look sessions up by user.
create index sessions_user_id_idx on sessions (user_id);

-- Favorite tracks. id gives insertion order: the newest favorite has the
-- highest id, which keyset pagination (newest first) walks down.
create table favorites (
    id         integer primary key autoincrement,
    user_id    blob    not null references users (id) on delete cascade,
    track_id   text    not null,
    created_at integer not null,
    constraint favorites_user_track_key unique (user_id, track_id)
);

-- A user's favorites, newest first, at any depth in O(page size).
create index favorites_user_id_idx on favorites (user_id, id);

-- The transactional outbox. Rows are written in the same transaction as the
-- change they describe and delivered downstream by the relay. id only grows
-- (autoincrement never reuses one), so consumers can order and deduplicate.
-- user_id has no foreign key: a user.deleted task outlives its user.
create table deferred_tasks (
    id           integer primary key autoincrement,
    kind         text    not null,
    user_id      blob    not null,
    track_id     text,
    occurred_at  integer not null,
    status       text    not null default 'pending' check (status in ('pending', 'done', 'dead')),
    attempts     integer not null default 0,
    -- Not to be tried before this time (backoff after a failure).
    available_at integer not null,
    -- While set in the future, a relay holds the task; after it, the task is
    -- claimable again (a relay that died loses nothing). lease_id names the
    -- claim, so a relay whose lease ran out cannot settle a task re-claimed
    -- by another.
    leased_until integer,
    lease_id     blob,
    last_error   text,
    created_at   integer not null,
    updated_at   integer not null
);

-- The relay's claim query: due pending tasks in id order.
create index deferred_tasks_pending_idx on deferred_tasks (id) where status = 'pending';
-- Per-user order: a task waits while an earlier task of its user is pending.
create index deferred_tasks_user_pending_idx on deferred_tasks (user_id, id) where status = 'pending';
-- Operators list tasks by status (dead letters).
create index deferred_tasks_status_idx on deferred_tasks (status, id);

-- Secrets the service generates for itself (the JWT signing key), created
-- once and shared by every process on this database.
create table service_secrets (
    name       text    primary key not null,
    value      blob    not null,
    created_at integer not null
);
