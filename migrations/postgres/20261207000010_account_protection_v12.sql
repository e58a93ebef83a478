-- Contract v1.2, account protection.

-- A device approval is bound to the session that gave it and to the
-- account's credentials as they were: redeeming it after that session ended
-- or a sign-in method changed is refused. The request's address is shown to
-- the approver.
alter table device_grants add column approver_session uuid;
alter table device_grants add column approver_version bigint;
alter table device_grants add column request_ip text;
-- Ending sessions voids the approvals they gave.
create index device_grants_approver_idx on device_grants (approver_session) where approver_session is not null;
create index device_grants_user_idx on device_grants (user_id) where user_id is not null;

-- When this session last proved a credential (password at login, or a
-- `current_password` since); null for sessions that never did (device grant).
-- Changes of address, password and deletion need it recent.
alter table sessions add column authenticated_at timestamptz;
update sessions set authenticated_at = created_at;

-- Device cookies (OWASP): a browser that completed a sign-in to an account
-- is remembered, so its wrong passwords count on their own and nobody
-- else's can lock it out.
create table device_cookies (
    -- SHA-256 of the cookie's value.
    digest        bytea       primary key,
    user_id       uuid        not null references users (id) on delete cascade,
    created_at    timestamptz not null,
    expires_at    timestamptz not null,
    failed_logins integer     not null default 0,
    locked_until  timestamptz
);
-- Password reset, revoke-all and the retention sweep find them by account / expiry.
create index device_cookies_user_idx on device_cookies (user_id);
create index device_cookies_expiry_idx on device_cookies (expires_at);

-- Undo links of address changes, mailed to the old address (7 days, single
-- use). The old address stays reserved for its owner until the link expires.
create table email_reverts (
    -- SHA-256 of the link's token.
    digest     bytea    primary key,
    user_id    uuid     not null references users (id) on delete cascade,
    -- The address to restore, lower-cased like users.email.
    old_email  text       not null,
    created_at timestamptz not null,
    expires_at timestamptz not null
);
-- Redeeming one voids the account's others.
create index email_reverts_user_idx on email_reverts (user_id);
-- Registration and address changes check the reservation.
create index email_reverts_email_idx on email_reverts (old_email);
-- The retention sweep deletes expired links.
create index email_reverts_expiry_idx on email_reverts (expires_at);
