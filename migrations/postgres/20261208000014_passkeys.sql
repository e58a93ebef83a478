-- Contract v1.2, passkeys (WebAuthn credentials).

-- Each account's WebAuthn user handle: random, made at its first passkey,
-- never changed (authenticators keep it beside every credential).
alter table users add column webauthn_handle bytea;
create unique index users_webauthn_handle_idx on users (webauthn_handle) where webauthn_handle is not null;

-- A passkey: the credential id (unique across accounts), its COSE public
-- key, the RP id it was made for (the service refuses to start with another
-- while such passkeys exist), the last signature counter (0 for authenticators that do not count),
-- backup eligibility (fixed) and state.
create table passkeys (
    id              uuid        primary key,
    user_id         uuid        not null references users (id) on delete cascade,
    rp_id           text        not null,
    credential_id   bytea       not null unique,
    public_key      bytea       not null,
    sign_count      bigint      not null,
    backup_eligible boolean     not null,
    backed_up       boolean     not null,
    transports      text        not null,
    name            text        not null,
    created_at      timestamptz not null,
    last_used_at    timestamptz
);
create index passkeys_user_idx on passkeys (user_id);

-- A registration or sign-in ceremony: its challenge, kept here (never
-- trusted from the client), bound to its purpose and, where known, the
-- account, the session, or the sign-in (mfa_challenges.digest) it serves;
-- consumed by its first use, within minutes. `digest` is the SHA-256 of
-- the ceremony token the client holds.
create table webauthn_ceremonies (
    digest      bytea       primary key,
    purpose     text        not null,
    challenge   bytea       not null,
    user_id     uuid        references users (id) on delete cascade,
    session_id  uuid,
    mfa_digest  bytea,
    created_at  timestamptz not null,
    expires_at  timestamptz not null
);
create index webauthn_ceremonies_expiry_idx on webauthn_ceremonies (expires_at);
