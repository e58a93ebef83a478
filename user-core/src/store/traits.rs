//! The storage traits every backend implements, one per concern, and the
//! complete backend, [`Store`]. Sealed: the per-concern traits and the
//! records only they carry are reachable inside the crate (and, for tests and
//! tools that write rows directly, through `user_core::testing::backend`),
//! so `UserService` stays the one way to change data from outside.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::records::{
    AccountChanges, AuditFilter, AuditRecord, Ceremony, CeremonyPurpose, Claim, DeferredTask, DeviceGrant, DevicePoll,
    EmailRevert, Favorite, GuestFilter, GuestUpgrade, IdentityRecord, LoginAttempt, MfaChallenge, NewDeviceGrant,
    NewMail, NewMfaChallenge, NewSession, PasskeyRecord, Rotation, SessionRecord, SessionUser, TaskCounts, TaskStatus,
    TotpFactor, Unlinked, User, UserChanges, UserCodeAction, UserKey, UserRecord, WaitingTasks,
};
use crate::domain::{Amr, Email, SessionId, TrackId, UserCode, UserId, Username};
#[cfg(doc)]
use crate::error::Error;
use crate::error::Result;

/// When to refuse logins after a given number of consecutive failures (see
/// [`UserStore::reserve_login_attempt`]). Owned, so a backend may evaluate it
/// on its own writer thread inside the transaction that counts the failure.
pub type LockRule = Box<dyn Fn(u32) -> Option<DateTime<Utc>> + Send + Sync>;

/// Accounts.
#[async_trait]
pub trait UserStore: Send + Sync {
    /// Inserts a new account and enqueues `mails` (with their tokens) in the
    /// same transaction.
    ///
    /// # Errors
    /// [`Error::Conflict`] naming the field when the username or email is
    /// taken; an email is also taken while another account's undo link
    /// ([`UserChanges::revert`]) reserves it.
    async fn insert_user(&self, record: &UserRecord, mails: &[NewMail]) -> Result<()>;

    /// Finds one account.
    async fn find_user(&self, key: UserKey<'_>) -> Result<Option<UserRecord>>;

    /// Applies `changes` atomically (a new password hash also grows the
    /// credential version); `None` if the user does not exist or no longer
    /// has `changes.expected_credential_version`. `changes.revert` is stored
    /// with it (the undo link of a new address).
    ///
    /// # Errors
    /// [`Error::Conflict`] when the new username or email is taken (or
    /// reserved by another account's undo link).
    async fn update_user(&self, id: UserId, changes: &UserChanges, now: DateTime<Utc>) -> Result<Option<UserRecord>>;

    /// Reserves one password check for the account, atomically, before the
    /// password is hashed: unless logins are refused at `now`, the attempt is
    /// counted as a failure at once (a success clears it later) and, when
    /// `lock_until` gives a time for the new count, logins are refused until
    /// then. So N concurrent guesses, on any number of replicas, get at most
    /// as many checks as the lockout allows. `None` if the user does not exist.
    ///
    /// With `device`, the digest of a device cookie that is the account's
    /// and unexpired, the attempt counts (and locks) on that device cookie
    /// instead: a browser that signed in before is held only by its own
    /// failures, never by the account's. An unknown, expired or other
    /// account's device cookie counts on the account, as none.
    async fn reserve_login_attempt(
        &self,
        id: UserId,
        device: Option<[u8; 32]>,
        now: DateTime<Utc>,
        lock_until: LockRule,
    ) -> Result<Option<LoginAttempt>>;

    /// Clears the failed-login count and any lock of the account and of its
    /// device cookies (after a password checked outside a login, such as
    /// `current_password`, proved right).
    async fn reset_login_failures(&self, id: UserId) -> Result<()>;

    /// After a completed sign-in: when `presented` is a device cookie of the
    /// account, unexpired, clears its failures and returns `false`; else
    /// records `fresh` (a new cookie's digest, until `expires_at`) and
    /// returns `true`, so the caller sets it. Ending every session of the
    /// account (reset, revoke-all, disable, password change) voids them.
    async fn remember_device(
        &self,
        user: UserId,
        presented: Option<[u8; 32]>,
        fresh: [u8; 32],
        now: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    ) -> Result<bool>;

    /// Applies an operator's change in one transaction and returns the
    /// account as it is now; `None` if the user does not exist. A role that
    /// differs, or a disable, revokes every session of the user and grows the
    /// credential version, so tokens carrying the old role or issued before
    /// the disable stop working at once.
    ///
    /// # Errors
    /// [`Error::LastAdmin`] (and nothing changed) when the account is the
    /// last active admin and would stop being one.
    async fn change_account(&self, id: UserId, changes: &AccountChanges, now: DateTime<Utc>) -> Result<Option<User>>;

    /// Deletes the account with its sessions and favorites, and enqueues a
    /// `user.deleted` task, in one transaction; `false` if it did not exist.
    async fn delete_user(&self, id: UserId, now: DateTime<Utc>) -> Result<bool>;

    /// Up to `limit` accounts with ids greater than `after`, oldest first;
    /// guests as `guests` says.
    async fn list_users(&self, after: Option<UserId>, limit: u32, guests: GuestFilter) -> Result<Vec<User>>;

    /// Makes the guest `upgrade.id` a `user` with a username, address and
    /// password, keeping its id, favorites and sessions, and enqueues
    /// `upgrade.mails`, in one transaction; the account as it is now, or
    /// `None` if it is not (or no longer) a guest.
    ///
    /// # Errors
    /// [`Error::Conflict`](crate::Error::Conflict) for a username or address
    /// another account has (or reserves).
    async fn upgrade_guest(&self, upgrade: &GuestUpgrade) -> Result<Option<UserRecord>>;

    /// Moves the guest `guest`'s favorites to the account `into` (a
    /// `favorite.added` task for each it did not have) and deletes the
    /// guest (a `user.deleted` task), in one transaction: how many moved,
    /// or `None` if `guest` is not (or no longer) a guest.
    async fn merge_guest(&self, guest: UserId, into: UserId, now: DateTime<Utc>) -> Result<Option<u64>>;

    /// Deletes up to `limit` guests created before `idle_since` none of whose
    /// sessions was used (signed in or refreshed) since, each with a
    /// `user.deleted` task, in one transaction; how many.
    async fn delete_idle_guests(&self, idle_since: DateTime<Utc>, limit: u32, now: DateTime<Utc>) -> Result<u64>;

    /// Like [`UserStore::list_users`], only accounts whose lower-cased
    /// username or email starts with `prefix` (given lower-cased). Served by
    /// an index however many accounts there are.
    async fn search_users(&self, prefix: &str, after: Option<UserId>, limit: u32) -> Result<Vec<User>>;
}

/// Login sessions.
#[async_trait]
pub trait SessionStore: Send + Sync {
    /// Completes a login in one transaction: if the user still has the
    /// credential version the login verified and is not disabled, clears the
    /// failed-login count and lock, stores the rehash if any, records the
    /// session and its time as the user's last login. `false` (and nothing
    /// written) if the credential changed, the account was disabled or
    /// deleted meanwhile: a session is never minted
    /// from a stale password, and a rehash never writes an old password back.
    async fn open_session(&self, login: &NewSession) -> Result<bool>;

    /// The user's live sessions (neither revoked nor expired at `now`),
    /// newest first.
    async fn list_sessions(&self, user: UserId, now: DateTime<Utc>) -> Result<Vec<SessionRecord>>;

    /// Reads a session.
    async fn session(&self, id: SessionId) -> Result<Option<SessionRecord>>;

    /// The user of session `id`, if the session is active at `now` and
    /// belongs to `user`: one round trip for authenticated reads.
    async fn session_user(&self, id: SessionId, user: UserId, now: DateTime<Utc>) -> Result<Option<SessionUser>>;

    /// Swaps the refresh `jti` if it still equals `expected_jti` and the session
    /// is not revoked; `true` if this call won.
    async fn rotate_session(&self, rotation: &Rotation) -> Result<bool>;

    /// Revokes one session; `false` if it was unknown or already revoked.
    async fn revoke_session(&self, id: SessionId, now: DateTime<Utc>) -> Result<bool>;

    /// Revokes every active session of `user` except `except`; returns how many.
    async fn revoke_user_sessions(&self, user: UserId, except: Option<SessionId>, now: DateTime<Utc>) -> Result<u64>;

    /// Records what the session `id` proved at `at`, if it is still
    /// active: adds `proved` to its `amr` (a union in one statement, so
    /// two step-ups at once lose nothing) and, when `recent`, makes `at`
    /// its `authenticated_at`. `false` for a session that is not active.
    async fn record_authentication(&self, id: SessionId, at: DateTime<Utc>, proved: Amr, recent: bool) -> Result<bool>;
}

/// Favorite tracks, written together with their deferred tasks.
#[async_trait]
pub trait FavoriteStore: Send + Sync {
    /// Adds the tracks not yet favorite, each with a `favorite.added` task, in
    /// one transaction; returns how many were new.
    ///
    /// # Errors
    /// [`Error::UserNotFound`] if the user does not exist.
    async fn add_favorites(&self, user: UserId, tracks: &[TrackId], now: DateTime<Utc>) -> Result<u64>;

    /// Removes the tracks that are favorite, each with a `favorite.removed`
    /// task, in one transaction; returns how many were removed.
    async fn remove_favorites(&self, user: UserId, tracks: &[TrackId], now: DateTime<Utc>) -> Result<u64>;

    /// For each track, in order, whether it is a favorite.
    async fn favorites_contain(&self, user: UserId, tracks: &[TrackId]) -> Result<Vec<bool>>;

    /// How many favorites `user` holds.
    async fn count_favorites(&self, user: UserId) -> Result<u64>;

    /// Up to `limit` favorites with `seq` below `before`, newest first.
    async fn list_favorites(&self, user: UserId, before: Option<i64>, limit: u32) -> Result<Vec<Favorite>>;
}

/// Passkeys and the WebAuthn ceremonies that add and use them.
#[async_trait]
pub trait PasskeyStore: Send + Sync {
    /// The account's WebAuthn user handle: `candidate` becomes it at the
    /// first call, and it never changes after. `None` for an unknown account.
    async fn webauthn_handle(&self, user: UserId, candidate: &[u8]) -> Result<Option<Vec<u8>>>;

    /// The account's passkeys, oldest first.
    async fn passkeys(&self, user: UserId) -> Result<Vec<PasskeyRecord>>;

    /// The passkey with this credential id, with its account's user handle.
    async fn passkey_by_credential(&self, credential_id: &[u8]) -> Result<Option<(PasskeyRecord, Vec<u8>)>>;

    /// Adds a passkey and its mails, in one transaction; `false` (nothing
    /// written) when the credential id is anyone's already or the account is gone.
    async fn insert_passkey(&self, passkey: &PasskeyRecord, mails: &[NewMail]) -> Result<bool>;

    /// Records a sign-in with passkey `id` if its counter is still
    /// `expected` (compare-and-set: of two sign-ins with one counter value,
    /// one wins); `true` if this call won.
    async fn use_passkey(
        &self,
        id: Uuid,
        expected: u32,
        sign_count: u32,
        backed_up: bool,
        now: DateTime<Utc>,
    ) -> Result<bool>;

    /// Renames the account's passkey `id`; `false` if it has none such.
    async fn rename_passkey(&self, user: UserId, id: Uuid, name: &str) -> Result<bool>;

    /// Removes the account's passkey `id` with its mails, in one
    /// transaction; `false` if it has none such.
    async fn remove_passkey(&self, user: UserId, id: Uuid, mails: &[NewMail], now: DateTime<Utc>) -> Result<bool>;

    /// Removes every second factor of the account — TOTP, recovery codes,
    /// passkeys — with its mails, in one transaction; `false` if it had none.
    async fn remove_second_factors(&self, user: UserId, mails: &[NewMail], now: DateTime<Utc>) -> Result<bool>;

    /// The RP ids passkeys were registered for (at most a few, distinct).
    async fn passkey_rp_ids(&self) -> Result<Vec<String>>;

    /// Stores a ceremony.
    async fn insert_ceremony(&self, ceremony: &Ceremony) -> Result<()>;

    /// Takes (deletes and returns) the ceremony with this digest, if it is
    /// for `purpose` and not expired at `now`: of any number of concurrent
    /// takers, one gets it.
    async fn take_ceremony(
        &self,
        digest: &[u8; 32],
        purpose: CeremonyPurpose,
        now: DateTime<Utc>,
    ) -> Result<Option<Ceremony>>;
}

/// Identities at other providers (sign in with Google, Apple, …).
#[async_trait]
pub trait IdentityStore: Send + Sync {
    /// The identity `(issuer, subject)`, whoever's it is.
    async fn identity(&self, issuer: &str, subject: &str) -> Result<Option<IdentityRecord>>;

    /// The account's identities, oldest link first.
    async fn identities(&self, user: UserId) -> Result<Vec<IdentityRecord>>;

    /// Links `identity` to its account with `mails`, in one transaction;
    /// `false` (nothing written) when the identity belongs to an account
    /// already, or the account has one at that provider.
    async fn link_identity(&self, identity: &IdentityRecord, mails: &[NewMail]) -> Result<bool>;

    /// Creates the account `record` with its first identity, in one transaction.
    ///
    /// # Errors
    /// [`Error::Conflict`] for a taken username or address;
    /// [`Error::IdentityInUse`] when the identity was linked meanwhile.
    async fn insert_provider_account(&self, record: &UserRecord, identity: &IdentityRecord) -> Result<()>;

    /// Pre-account takeover, in one transaction: links `identity` to its
    /// account, whose address `email` was never verified, marks the address
    /// verified, and removes what whoever registered it may have set: the
    /// password, passkeys, TOTP, recovery codes, other identities, every
    /// session and device cookie (the credential version moves on).
    /// `false` (nothing written) if the account's address is no longer
    /// `email` unverified, or the identity is linked meanwhile.
    async fn claim_unverified_account(
        &self,
        identity: &IdentityRecord,
        email: &Email,
        now: DateTime<Utc>,
    ) -> Result<bool>;

    /// Removes the account's identity at `provider` with `mails`, unless it
    /// is the account's last way to sign in (no password, no passkey, no
    /// other identity), decided in the same statement.
    async fn unlink_identity(
        &self,
        user: UserId,
        provider: &str,
        mails: &[NewMail],
        now: DateTime<Utc>,
    ) -> Result<Unlinked>;
}

/// The deferred-task outbox.
#[async_trait]
pub trait TaskStore: Send + Sync {
    /// Up to `limit` tasks with ids above `after`, optionally of one status, in id order.
    async fn list_tasks(&self, status: Option<TaskStatus>, after: Option<i64>, limit: u32)
    -> Result<Vec<DeferredTask>>;

    /// Leases up to `limit` due tasks in id order until `lease_until`.
    ///
    /// A task is claimable when it is pending, due (`available_at <= now`),
    /// not leased (or its lease ran out), and no earlier pending task of the
    /// same user is leased or not yet due: so a user's tasks are delivered in
    /// order, while different users' tasks flow in parallel. Concurrent
    /// claimers never receive the same task. A backend may be stricter and
    /// hold back every task of a user who has any task leased or backing off
    /// (PostgreSQL does, so a claim stays linear in the backlog). A claim
    /// costs at most a scan of the pending tasks, however many users are held.
    async fn claim_tasks(&self, now: DateTime<Utc>, lease_until: DateTime<Utc>, limit: u32) -> Result<Claim>;

    /// Marks leased tasks delivered; returns how many were still held by `lease_id`.
    async fn complete_tasks(&self, lease_id: Uuid, ids: &[i64], now: DateTime<Utc>) -> Result<u64>;

    /// Records a failed attempt: back to pending with `attempts + 1` until
    /// `retry_at`, or `dead` when `retry_at` is `None`; keeps `error`.
    /// `false` if the lease was lost.
    async fn fail_task(
        &self,
        lease_id: Uuid,
        id: i64,
        error: &str,
        retry_at: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Result<bool>;

    /// Gives leased tasks back untouched (no attempt counted), e.g. at shutdown
    /// or when an earlier task of the same user failed.
    async fn release_tasks(&self, lease_id: Uuid, ids: &[i64], now: DateTime<Utc>) -> Result<u64>;

    /// Puts dead tasks back to pending with zero attempts: one (`Some(id)`) or
    /// all; returns how many.
    async fn retry_dead_tasks(&self, id: Option<i64>, now: DateTime<Utc>) -> Result<u64>;

    /// How many tasks are in each state. Reads every task, delivered ones
    /// included: for operators and tests, not for a hot loop.
    async fn count_tasks(&self) -> Result<TaskCounts>;

    /// How many tasks are pending and dead. Reads only those (through their
    /// indexes), so it stays cheap however many delivered tasks are kept.
    async fn count_waiting_tasks(&self) -> Result<WaitingTasks>;

    /// Deletes up to `limit` delivered (`done`) tasks whose delivery was
    /// recorded before `before`, oldest first; returns how many. Pending and
    /// dead tasks are never touched.
    async fn purge_done_tasks(&self, before: DateTime<Utc>, limit: u32) -> Result<u64>;
}

/// The audit trail of security events.
#[async_trait]
pub trait AuditStore: Send + Sync {
    /// Appends an entry (its `id` is assigned by the store).
    async fn record_audit(&self, entry: &AuditRecord) -> Result<()>;

    /// Up to `limit` entries that pass `filter` with ids below `before`, newest first.
    async fn list_audit(&self, filter: &AuditFilter, before: Option<i64>, limit: u32) -> Result<Vec<AuditRecord>>;
}

/// Whose account a token mail is for.
#[derive(Debug, Clone, Copy)]
pub enum TokenOwner<'a> {
    /// The account with this id.
    Id(UserId),
    /// The account whose current address this is, if any.
    Email(&'a Email),
}

/// What became of a token mail request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenMail {
    /// Enqueued for this account.
    Sent(UserId),
    /// Not sent: the account got a token of the same purpose too recently.
    TooSoon,
    /// Not sent: no such account.
    NoAccount,
}

/// Single-use tokens sent in mails (verification, password reset), kept
/// only as digests. Each method is one transaction.
#[async_trait]
pub trait TokenStore: Send + Sync {
    /// Stores `mail.token` (replacing the account's older tokens of its
    /// purpose) and enqueues `mail` for the account `owner` names, unless it
    /// made a token of the same purpose after `not_before`. For an address
    /// no account has, it does the same statements for an id no account
    /// has (the task is written, no token is, the relay drops the task) and
    /// answers [`TokenMail::NoAccount`]: the request costs the same either
    /// way, so its timing does not tell whether the address exists.
    async fn send_token_mail(
        &self,
        owner: TokenOwner<'_>,
        mail: &NewMail,
        not_before: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Result<TokenMail>;

    /// Uses up a verification token and marks the address it was sent to
    /// verified; returns the account. `None` (and the token stays unusable)
    /// when it is unknown, used, expired, or the account's address changed
    /// since it was sent.
    async fn verify_email(&self, digest: &[u8; 32], now: DateTime<Utc>) -> Result<Option<UserId>>;

    /// Uses up a reset token: sets `password_hash`, grows the credential
    /// version, clears login throttling, voids the account's other reset
    /// tokens, revokes every session and enqueues `mail`; returns the
    /// account. `None` when the token is unknown, used or expired.
    async fn reset_password(
        &self,
        digest: &[u8; 32],
        password_hash: &str,
        mail: &NewMail,
        now: DateTime<Utc>,
    ) -> Result<Option<UserId>>;

    /// Uses up an address change's undo link, in one transaction: restores
    /// the address it was mailed to, verified; makes the password unusable
    /// (`revert.unusable_password_hash`, a new credential version, login
    /// throttling cleared); voids the account's other undo links, its
    /// verification and reset tokens; ends every session (which voids device
    /// cookies and device approvals); removes every second factor (one the
    /// taker added would lock the owner out after the reset); and enqueues
    /// `revert.reset_mail`. `None` when the link is unknown, used or expired.
    ///
    /// # Errors
    /// [`crate::Error::Conflict`] if another account has the address (it
    /// cannot while the link lives: the address is reserved).
    async fn revert_email(&self, revert: &EmailRevert, now: DateTime<Utc>) -> Result<Option<UserId>>;

    /// Deletes up to `limit` mail tokens and up to `limit` device cookies
    /// and undo links that expired before `now`, and up to `limit` device sign-in requests
    /// that expired before `now` less [`DEVICE_GRANT_KEPT`]; returns how
    /// many rows went.
    async fn purge_expired_tokens(&self, now: DateTime<Utc>, limit: u32) -> Result<u64>;
}

/// How long an expired device sign-in request is kept, so a device that
/// polls late still hears `expired_token` rather than `invalid_grant`.
pub const DEVICE_GRANT_KEPT: chrono::TimeDelta = chrono::TimeDelta::hours(1);

/// Device sign-in requests (RFC 8628): any replica can answer any poll.
/// Each method is one transaction.
#[async_trait]
pub trait DeviceStore: Send + Sync {
    /// Stores a new request; `false` (and nothing stored) if a stored
    /// request has the same user code, so the caller draws another.
    async fn insert_device_grant(&self, grant: &NewDeviceGrant) -> Result<bool>;

    /// Records a poll of the request with this device-code digest at `now`
    /// and returns it; `None` if there is none. While it is pending and
    /// unexpired, a poll that comes sooner than its interval (less `leeway`)
    /// after the previous one grows the interval by `step` seconds and is
    /// reported too fast.
    async fn poll_device_grant(
        &self,
        digest: &[u8; 32],
        now: DateTime<Utc>,
        leeway: chrono::TimeDelta,
        step: u32,
    ) -> Result<Option<DevicePoll>>;

    /// Finds the pending, unexpired request with this user code that has
    /// fewer than `max_wrong` wrong tries, and applies `action` to it (a
    /// decision is taken once). When there is none, the code was wrong: one
    /// try is counted against every pending request, not yet void, whose
    /// code shares its first or its last four letters (a typo, or a guess by
    /// someone who saw half the code), and `None` is returned. An approval
    /// records the approving session and the account's credential version
    /// read in the same transaction.
    ///
    /// # Errors
    /// [`crate::Error::Unauthorized`] when approving from a session that is
    /// no longer active (nothing is counted or decided).
    async fn resolve_user_code(
        &self,
        code: &UserCode,
        action: UserCodeAction,
        max_wrong: u32,
        now: DateTime<Utc>,
    ) -> Result<Option<DeviceGrant>>;

    /// Exchanges an approved request for the session `login` opens, once:
    /// in one transaction, takes (deletes) the request if it is approved for
    /// `login`'s user, unexpired at the session's creation, its approving
    /// session still active and the account's credential version still the
    /// approved one, then opens
    /// the session as [`SessionStore::open_session`] does. `false` if there
    /// was no such request to take, or if the session could not be opened
    /// (the account changed or was disabled since; the request is used up).
    async fn redeem_device_grant(&self, digest: &[u8; 32], login: &NewSession) -> Result<bool>;
}

/// Second factors: an account's TOTP and its recovery codes. Each method is
/// one transaction; what is decided (a step accepted, a code used) is
/// decided by one conditional write, so of many concurrent uses one wins.
#[async_trait]
pub trait FactorStore: Send + Sync {
    /// Begins a TOTP enrollment with `sealed` (replacing a pending one);
    /// `false` if the account already has a confirmed TOTP, or is unknown.
    async fn start_totp(&self, user: UserId, sealed: &str, now: DateTime<Utc>) -> Result<bool>;

    /// The account's TOTP, confirmed or pending.
    async fn totp(&self, user: UserId) -> Result<Option<TotpFactor>>;

    /// Confirms the pending enrollment that began at `started_at`, if it began
    /// after `pending_after`: `step` (the confirming code's) counts as used,
    /// `codes` replace the recovery codes, `mails` are enqueued. `false` if
    /// that enrollment is gone, confirmed, expired or replaced by another.
    #[allow(clippy::too_many_arguments)]
    async fn confirm_totp(
        &self,
        user: UserId,
        started_at: DateTime<Utc>,
        pending_after: DateTime<Utc>,
        step: i64,
        codes: &[[u8; 32]],
        mails: &[NewMail],
        now: DateTime<Utc>,
    ) -> Result<bool>;

    /// Records `step` as used if it is later than the last accepted step of
    /// the confirmed TOTP (a code works once, and never an older one);
    /// `resealed` replaces the stored secret (sealed under a newer key).
    async fn accept_totp_step(&self, user: UserId, step: i64, resealed: Option<&str>) -> Result<bool>;

    /// Removes the TOTP, pending or confirmed, and every recovery code, and
    /// enqueues `mails`; `false` if there was none.
    async fn remove_totp(&self, user: UserId, mails: &[NewMail], now: DateTime<Utc>) -> Result<bool>;

    /// Replaces every recovery code with `codes` and enqueues `mails`;
    /// `false` for an unknown account.
    async fn replace_recovery_codes(
        &self,
        user: UserId,
        codes: &[[u8; 32]],
        mails: &[NewMail],
        now: DateTime<Utc>,
    ) -> Result<bool>;

    /// Uses the recovery code with this digest, enqueuing `mails` with it:
    /// `true` exactly once per code.
    async fn use_recovery_code(
        &self,
        user: UserId,
        digest: &[u8; 32],
        mails: &[NewMail],
        now: DateTime<Utc>,
    ) -> Result<bool>;

    /// The account's unused recovery codes.
    async fn recovery_codes_left(&self, user: UserId) -> Result<u32>;

    /// The names of up to `limit` active admins without a second factor,
    /// in order.
    async fn admins_without_second_factor(&self, limit: u32) -> Result<Vec<Username>>;

    /// Stores a sign-in waiting for its second factor.
    async fn insert_mfa_challenge(&self, challenge: &NewMfaChallenge) -> Result<()>;

    /// The challenge with this digest while it can still complete: not
    /// expired, not used, fewer than `max_failures` wrong codes.
    async fn mfa_challenge(
        &self,
        digest: &[u8; 32],
        max_failures: u32,
        now: DateTime<Utc>,
    ) -> Result<Option<MfaChallenge>>;

    /// Takes one of a live challenge's `max_failures` guesses, before the
    /// code is checked (so concurrent requests never check more codes than
    /// that); a right code then completes it, a wrong one leaves it spent.
    /// `false` when none is left, or the challenge is gone or expired.
    async fn reserve_mfa_guess(&self, digest: &[u8; 32], max_failures: u32, now: DateTime<Utc>) -> Result<bool>;

    /// Takes the challenge with this digest, unexpired and with no more than
    /// `max_failures` guesses taken (once: of many concurrent callers one
    /// succeeds) and opens `login`'s session in the same
    /// transaction, as [`SessionStore::open_session`] does. `false` if there
    /// was none to take, or if the session could not be opened (the account
    /// changed or was disabled since; the challenge is used up).
    async fn complete_mfa_challenge(&self, digest: &[u8; 32], max_failures: u32, login: &NewSession) -> Result<bool>;
}

/// Service secrets (generated signing keys).
#[async_trait]
pub trait SecretStore: Send + Sync {
    /// Returns the secret stored under `name`, storing `candidate` first if
    /// there is none. Race-free: concurrent callers all get the same value.
    async fn get_or_insert_secret(&self, name: &str, candidate: &[u8], now: DateTime<Utc>) -> Result<Vec<u8>>;
}

/// A complete backend.
#[async_trait]
pub trait Store:
    UserStore
    + SessionStore
    + FavoriteStore
    + TaskStore
    + TokenStore
    + DeviceStore
    + SecretStore
    + FactorStore
    + PasskeyStore
    + IdentityStore
    + AuditStore
    + std::fmt::Debug
{
    /// Brings the schema up to date (idempotent).
    async fn migrate(&self) -> Result<()>;

    /// Checks the backend is reachable.
    async fn ping(&self) -> Result<()>;

    /// The database, as OpenTelemetry's `db.system.name` names it
    /// (`sqlite`, `postgresql`).
    fn system(&self) -> &'static str;

    /// Whether every process using this database can share per-client rate
    /// limits through it ([`Store::hit_rate_limit`]): PostgreSQL. An embedded
    /// store serves one process, which keeps its limits in memory.
    fn shares_rate_limits(&self) -> bool {
        false
    }

    /// Counts one request under `key` against `count` requests per `period`
    /// (up to `count` at once; GCRA), in one statement, for every process on
    /// the database alike: `None` when it is let through, else how long to
    /// wait. A refused request is not counted.
    ///
    /// # Errors
    /// [`Error::Internal`] where the store does not share limits, or fails.
    async fn hit_rate_limit(
        &self,
        key: &str,
        count: u32,
        period: std::time::Duration,
        now: DateTime<Utc>,
    ) -> Result<Option<std::time::Duration>> {
        let _ = (key, count, period, now);
        Err(crate::error::Error::internal("this store does not share rate limits"))
    }

    /// Gives back one request [`Store::hit_rate_limit`] let through under
    /// `key` (an attempt reserved before it was checked, that turned out
    /// right), in one statement.
    ///
    /// # Errors
    /// [`Error::Internal`] where the store does not share limits, or fails.
    async fn refund_rate_limit(&self, key: &str, count: u32, period: std::time::Duration) -> Result<()> {
        let _ = (key, count, period);
        Err(crate::error::Error::internal("this store does not share rate limits"))
    }

    /// Deletes the rate-limit state of keys whose budget is full again at
    /// `now` (they behave as if never seen); returns how many.
    ///
    /// # Errors
    /// [`Error::Internal`] if the store fails.
    async fn purge_rate_limits(&self, now: DateTime<Utc>) -> Result<u64> {
        let _ = now;
        Ok(0)
    }
}
