-- Account recovery and email verification (v1.1).

-- The language of the account's mails and pages.
alter table users add column locale text not null default 'en' check (locale in ('en', 'ru'));

-- Single-use tokens sent in mails, stored only as SHA-256 digests. A token
-- verifies `email` (the address it was sent to) or resets the password.
create table account_tokens (
    digest     blob    primary key not null,
    user_id    blob    not null references users (id) on delete cascade,
    purpose    text    not null check (purpose in ('verify', 'reset')),
    email      text    not null,
    created_at integer not null,
    expires_at integer not null
);
-- A user's tokens of one purpose (a new one replaces them; 60 s between requests).
create index account_tokens_user_idx on account_tokens (user_id, purpose, created_at);
-- The retention job deletes expired tokens.
create index account_tokens_expiry_idx on account_tokens (expires_at);

-- Mail and events are separate channels of the outbox: a user's tasks keep
-- their order within a channel, so a mail does not wait behind an event
-- webhook that is down, nor an event behind a mail server.
alter table deferred_tasks add column channel text not null default 'events' check (channel in ('events', 'mail'));
-- What a mail task needs beyond its kind and user (JSON: the address, the
-- raw token); cleared once the task is delivered or dead.
alter table deferred_tasks add column payload text;
drop index deferred_tasks_user_pending_idx;
create index deferred_tasks_user_pending_idx on deferred_tasks (user_id, channel, id) where status = 'pending';
