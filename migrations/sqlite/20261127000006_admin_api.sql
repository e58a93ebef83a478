-- The admin API (v1.1): whether the address was verified (set by the user's
-- verification link, or by an operator), and the last successful login.
alter table users add column email_verified integer not null default 0;
alter table users add column last_login_at integer;

-- Prefix search over usernames and emails (GET /admin/users?query=) is served
-- by the existing unique indexes: users_username_key is on lower(username) and
-- emails are stored lower-cased, so a prefix is a range on either index.

-- Which admin acted on the account (null when the user acted, or a local operator).
alter table audit_events add column actor_id blob;
-- Events of one kind, newest first.
create index audit_events_event_idx on audit_events (event, id);
