-- Contract v1.2, provider sign-in and guest accounts.
--
-- A guest has no username, address or password, and an account a provider
-- created may have no address: those columns become nullable and the role
-- gains `guest`.
alter table users alter column username drop not null;
alter table users alter column email drop not null;
alter table users alter column password_hash drop not null;
alter table users drop constraint users_role_check;
alter table users add constraint users_role_check check (role in ('user', 'admin', 'guest'));
-- A guest has neither a name nor an address; every other account has a name.
alter table users add constraint users_named_check check (role = 'guest' or username is not null);
-- The relay's pass over idle guests walks them oldest first.
create index users_guests on users (created_at) where role = 'guest';

-- An identity at another provider, keyed as the provider keys it: (issuer,
-- subject). At most one per provider per account.
create table identities (
    issuer         text        not null,
    subject        text        not null,
    -- The configured provider name (`google`, `apple`, …).
    provider       text        not null,
    user_id        uuid        not null references users (id) on delete cascade,
    -- The address the provider's signed ID token named, lower-cased, and
    -- whether the provider said it verified it.
    email          text,
    email_verified boolean     not null default false,
    linked_at      timestamptz not null,
    primary key (issuer, subject)
);
create unique index identities_user_provider on identities (user_id, provider);

-- WebAuthn ceremonies, provider sign-ins in flight and identities held for
-- linking are all short, single-use, purpose-bound exchanges: one table.
-- `challenge` carries what the purpose needs (the WebAuthn challenge; a
-- provider sign-in's nonce, PKCE verifier and return address).
alter table webauthn_ceremonies rename to ceremonies;

-- What a sign-in waiting for its second factor proved first (`amr` bits:
-- the password, or a provider), so the session opens with both.
alter table mfa_challenges add column first_factor bigint not null default 1;
