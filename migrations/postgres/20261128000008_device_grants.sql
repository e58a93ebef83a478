-- Device sign-in (RFC 8628): a device asks, polls with its device code, and
-- a person approves it by typing the user code on another screen.
create table device_grants (
    -- SHA-256 of the device code; the raw code is only ever on the device.
    digest        bytea       primary key,
    -- 8 letters, without the dash.
    user_code     text        not null unique,
    client_id     text        not null,
    device_name   text,
    created_at    timestamptz not null,
    expires_at    timestamptz not null,
    interval_secs integer     not null,
    polled_at     timestamptz,
    -- Wrong codes that shared half of this one; void at the limit.
    wrong_tries   integer     not null default 0,
    decision      text        check (decision in ('approved', 'denied')),
    user_id       uuid        references users (id) on delete cascade,
    decided_at    timestamptz
);
-- A wrong code counts against the pending codes that share a half with it.
create index device_grants_head_idx on device_grants (substr(user_code, 1, 4));
create index device_grants_tail_idx on device_grants (substr(user_code, 5, 4));
-- The retention job deletes expired requests.
create index device_grants_expiry_idx on device_grants (expires_at);
