-- The admin API (v1.1): whether the address was verified (set by the user's
-- verification link, or by an operator), and the last successful login.
alter table users add column email_verified boolean not null default false;
alter table users add column last_login_at timestamptz;

-- Prefix search over usernames and emails (GET /admin/users?query=). The
-- unique indexes compare by the database's collation, which cannot serve
-- `like 'abc%'`; text_pattern_ops compares bytewise and can.
create index users_username_prefix on users (lower(username) text_pattern_ops);
create index users_email_prefix on users (email text_pattern_ops);

-- Which admin acted on the account (null when the user acted, or a local operator).
alter table audit_events add column actor_id uuid;
-- Events of one kind, newest first.
create index audit_events_event_idx on audit_events (event, id);
