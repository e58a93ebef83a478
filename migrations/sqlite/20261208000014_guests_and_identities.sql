-- Contract v1.2, provider sign-in and guest accounts.
--
-- A guest has no username, address or password, and an account a provider
-- created may have no address: those columns become nullable and the role
-- gains `guest`. SQLite cannot relax a column in place, so the table is
-- rebuilt (sqlite.org/lang_altertable.html, "making other kinds of table
-- schema changes"): copy, drop, rename. The runner turns foreign keys off
-- around the migrations (so dropping `users` cascades to nothing) and checks
-- them before it commits.
create table users_v12 (
    id                 blob    primary key not null,
    username           text,
    email              text,
    password_hash      text,
    role               text    not null default 'user' check (role in ('user', 'admin', 'guest')),
    disabled_at        integer,
    created_at         integer not null,
    updated_at         integer not null,
    failed_logins      integer not null default 0,
    locked_until       integer,
    credential_version integer not null default 0,
    email_verified     integer not null default 0,
    last_login_at      integer,
    locale             text    not null default 'en' check (locale in ('en', 'ru')),
    webauthn_handle    blob,
    -- A guest has neither a name nor an address; every other account has a name.
    check (role = 'guest' or username is not null)
);
insert into users_v12 (id, username, email, password_hash, role, disabled_at, created_at, updated_at,
                       failed_logins, locked_until, credential_version, email_verified, last_login_at, locale,
                       webauthn_handle)
    select id, username, email, password_hash, role, disabled_at, created_at, updated_at,
           failed_logins, locked_until, credential_version, email_verified, last_login_at, locale, webauthn_handle
    from users;
drop table users;
alter table users_v12 rename to users;
create unique index users_username_key on users (lower(username));
create unique index users_email_key on users (email);
create index users_active_admins on users (id) where role = 'admin' and disabled_at is null;
create unique index users_webauthn_handle_idx on users (webauthn_handle) where webauthn_handle is not null;
-- The relay's pass over idle guests walks them oldest first.
create index users_guests on users (created_at) where role = 'guest';

-- An identity at another provider, keyed as the provider keys it: (issuer,
-- subject). At most one per provider per account.
create table identities (
    issuer         text    not null,
    subject        text    not null,
    -- The configured provider name (`google`, `apple`, …).
    provider       text    not null,
    user_id        blob    not null references users (id) on delete cascade,
    -- The address the provider's signed ID token named, lower-cased, and
    -- whether the provider said it verified it.
    email          text,
    email_verified integer not null default 0,
    linked_at      integer not null,
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
alter table mfa_challenges add column first_factor integer not null default 1;
