-- Account protection: consecutive failed logins, and until when further
-- attempts are refused. Kept in the database so every replica enforces it.
alter table users add column failed_logins integer not null default 0;
alter table users add column locked_until timestamptz;

-- The audit trail of security events. No password, token or hash is ever
-- written here; an unknown login name is not recorded either (people type
-- passwords into the username field).
create table audit_events (
    id         bigint      generated always as identity primary key,
    created_at timestamptz not null,
    event      text        not null,
    user_id    uuid,
    ip         text,
    user_agent text,
    detail     text
);

-- One user's events, newest first.
create index audit_events_user_idx on audit_events (user_id, id);
