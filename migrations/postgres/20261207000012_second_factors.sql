-- Contract v1.2, second factors: TOTP and recovery codes.

-- One TOTP per account. `secret` is sealed under USER_DATA_KEY (AES-256-GCM,
-- the account as associated data). Unconfirmed (`confirmed_at` null) until a
-- first code proves the app has it; `last_step` is the last time step whose
-- code was accepted: a code is accepted once.
create table totp_factors (
    user_id      uuid        primary key references users (id) on delete cascade,
    secret       text        not null,
    started_at   timestamptz not null,
    confirmed_at timestamptz,
    last_step    bigint
);

-- Recovery codes: HMAC-SHA256 of owner and code; each works once.
create table recovery_codes (
    user_id    uuid        not null references users (id) on delete cascade,
    digest     bytea       not null,
    created_at timestamptz not null,
    used_at    timestamptz,
    primary key (user_id, digest)
);

-- A sign-in waiting for its second factor: the password was right, the
-- `mfa_token` (stored as its SHA-256) completes it once, within minutes,
-- for the credentials the password check saw; wrong codes count here and
-- toward the account's lockout.
create table mfa_challenges (
    digest             bytea       primary key,
    user_id            uuid        not null references users (id) on delete cascade,
    credential_version bigint      not null,
    created_at         timestamptz not null,
    expires_at         timestamptz not null,
    failures           integer     not null default 0
);
create index mfa_challenges_expiry_idx on mfa_challenges (expires_at);
