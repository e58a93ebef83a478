-- Contract v1.2, passkeys (WebAuthn credentials).

-- Each account's WebAuthn user handle: random, made at its first passkey,
-- never changed (authenticators keep it beside every credential).
alter table users add column webauthn_handle blob;
create unique index users_webauthn_handle_idx on users (webauthn_handle) where webauthn_handle is not null;

-- A passkey: the credential id (unique across accounts), its COSE public
-- key, the RP id it was made for (the service refuses to start with another
-- while such passkeys exist), the last signature counter (0 for authenticators that do not count),
-- backup eligibility (fixed) and state.
create table passkeys (
    id              blob    primary key not null,
    user_id         blob    not null references users (id) on delete cascade,
    rp_id           text    not null,
    credential_id   blob    not null unique,
    public_key      blob    not null,
    sign_count      integer not null,
    backup_eligible integer not null,
    backed_up       integer not null,
    transports      text    not null,
    name            text    not null,
    created_at      integer not null,
    last_used_at    integer
);
create index passkeys_user_idx on passkeys (user_id);

-- A registration or sign-in ceremony: its challenge, kept here (never
-- trusted from the client), bound to its purpose and, where known, the
-- account, the session, or the sign-in (mfa_challenges.digest) it serves;
-- consumed by its first use, within minutes. `digest` is the SHA-256 of
-- the ceremony token the client holds.
create table webauthn_ceremonies (
    digest      blob    primary key not null,
    purpose     text    not null,
    challenge   blob    not null,
    user_id     blob    references users (id) on delete cascade,
    session_id  blob,
    mfa_digest  blob,
    created_at  integer not null,
    expires_at  integer not null
);
create index webauthn_ceremonies_expiry_idx on webauthn_ceremonies (expires_at);
