//! [`traced`]: a store whose every call is a span, for trace export.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use tracing::Instrument;
use uuid::Uuid;

use super::records::{
    AccountChanges, AuditFilter, AuditRecord, Ceremony, CeremonyPurpose, Claim, DeferredTask, DeviceGrant, DevicePoll,
    EmailRevert, Favorite, GuestFilter, GuestUpgrade, IdentityRecord, LoginAttempt, MfaChallenge, NewDeviceGrant,
    NewMail, NewMfaChallenge, NewSession, PasskeyRecord, Rotation, SessionRecord, SessionUser, TaskCounts, TaskStatus,
    TotpFactor, Unlinked, User, UserChanges, UserCodeAction, UserKey, UserRecord, WaitingTasks,
};
use super::traits::{
    AuditStore, DeviceStore, FactorStore, FavoriteStore, IdentityStore, LockRule, PasskeyStore, SecretStore,
    SessionStore, Store, TaskStore, TokenMail, TokenOwner, TokenStore, UserStore,
};
use crate::domain::{Amr, Email, SessionId, TrackId, UserCode, UserId, Username};
use crate::error::Result;

/// Wraps `store` so that each call runs in a span of its own: target
/// `user_core::store`, level DEBUG, named after the method, with
/// OpenTelemetry's database attributes (`db.system.name`,
/// `db.operation.name`). Arguments are never recorded (they carry password
/// hashes and token digests).
///
/// A subscriber that ignores DEBUG spans pays one callsite check per call;
/// `user-server` wraps its store only when it exports traces.
pub fn traced(store: Arc<dyn Store>) -> Arc<dyn Store> {
    Arc::new(TracedStore { inner: store })
}

#[derive(Debug)]
struct TracedStore {
    inner: Arc<dyn Store>,
}

impl TracedStore {
    fn span(&self, operation: &'static str) -> tracing::Span {
        tracing::debug_span!(
            target: "user_core::store",
            "store",
            otel.name = operation,
            otel.kind = "client",
            db.system.name = self.inner.system(),
            db.operation.name = operation,
        )
    }
}

/// Forwards each listed method of a storage trait inside [`TracedStore::span`].
macro_rules! forward {
    ($($store:ident { $(fn $name:ident(&self $(, $arg:ident: $ty:ty)* $(,)?) -> $ret:ty;)* })*) => {$(
        #[async_trait]
        impl $store for TracedStore {
            $(async fn $name(&self $(, $arg: $ty)*) -> $ret {
                self.inner.$name($($arg),*).instrument(self.span(stringify!($name))).await
            })*
        }
    )*};
}

forward! {
    UserStore {
        fn insert_user(&self, record: &UserRecord, mails: &[NewMail]) -> Result<()>;
        fn find_user(&self, key: UserKey<'_>) -> Result<Option<UserRecord>>;
        fn update_user(&self, id: UserId, changes: &UserChanges, now: DateTime<Utc>) -> Result<Option<UserRecord>>;
        fn reserve_login_attempt(
            &self,
            id: UserId,
            device: Option<[u8; 32]>,
            now: DateTime<Utc>,
            lock_until: LockRule,
        ) -> Result<Option<LoginAttempt>>;
        fn reset_login_failures(&self, id: UserId) -> Result<()>;
        fn remember_device(
            &self,
            user: UserId,
            presented: Option<[u8; 32]>,
            fresh: [u8; 32],
            now: DateTime<Utc>,
            expires_at: DateTime<Utc>,
        ) -> Result<bool>;
        fn change_account(&self, id: UserId, changes: &AccountChanges, now: DateTime<Utc>) -> Result<Option<User>>;
        fn delete_user(&self, id: UserId, now: DateTime<Utc>) -> Result<bool>;
        fn list_users(&self, after: Option<UserId>, limit: u32, guests: GuestFilter) -> Result<Vec<User>>;
        fn upgrade_guest(&self, upgrade: &GuestUpgrade) -> Result<Option<UserRecord>>;
        fn delete_idle_guests(&self, idle_since: DateTime<Utc>, limit: u32, now: DateTime<Utc>) -> Result<u64>;
        fn merge_guest(&self, guest: UserId, into: UserId, now: DateTime<Utc>) -> Result<Option<u64>>;
        fn search_users(&self, prefix: &str, after: Option<UserId>, limit: u32) -> Result<Vec<User>>;
    }
    SessionStore {
        fn open_session(&self, login: &NewSession) -> Result<bool>;
        fn list_sessions(&self, user: UserId, now: DateTime<Utc>) -> Result<Vec<SessionRecord>>;
        fn session(&self, id: SessionId) -> Result<Option<SessionRecord>>;
        fn session_user(&self, id: SessionId, user: UserId, now: DateTime<Utc>) -> Result<Option<SessionUser>>;
        fn rotate_session(&self, rotation: &Rotation) -> Result<bool>;
        fn revoke_session(&self, id: SessionId, now: DateTime<Utc>) -> Result<bool>;
        fn revoke_user_sessions(&self, user: UserId, except: Option<SessionId>, now: DateTime<Utc>) -> Result<u64>;
        fn record_authentication(&self, id: SessionId, at: DateTime<Utc>, proved: Amr, recent: bool) -> Result<bool>;
    }
    FavoriteStore {
        fn add_favorites(&self, user: UserId, tracks: &[TrackId], now: DateTime<Utc>) -> Result<u64>;
        fn remove_favorites(&self, user: UserId, tracks: &[TrackId], now: DateTime<Utc>) -> Result<u64>;
        fn favorites_contain(&self, user: UserId, tracks: &[TrackId]) -> Result<Vec<bool>>;
        fn count_favorites(&self, user: UserId) -> Result<u64>;
        fn list_favorites(&self, user: UserId, before: Option<i64>, limit: u32) -> Result<Vec<Favorite>>;
    }
    TaskStore {
        fn list_tasks(&self, status: Option<TaskStatus>, after: Option<i64>, limit: u32) -> Result<Vec<DeferredTask>>;
        fn claim_tasks(&self, now: DateTime<Utc>, lease_until: DateTime<Utc>, limit: u32) -> Result<Claim>;
        fn complete_tasks(&self, lease_id: Uuid, ids: &[i64], now: DateTime<Utc>) -> Result<u64>;
        fn fail_task(
            &self,
            lease_id: Uuid,
            id: i64,
            error: &str,
            retry_at: Option<DateTime<Utc>>,
            now: DateTime<Utc>,
        ) -> Result<bool>;
        fn release_tasks(&self, lease_id: Uuid, ids: &[i64], now: DateTime<Utc>) -> Result<u64>;
        fn retry_dead_tasks(&self, id: Option<i64>, now: DateTime<Utc>) -> Result<u64>;
        fn count_tasks(&self) -> Result<TaskCounts>;
        fn count_waiting_tasks(&self) -> Result<WaitingTasks>;
        fn purge_done_tasks(&self, before: DateTime<Utc>, limit: u32) -> Result<u64>;
    }
    AuditStore {
        fn record_audit(&self, entry: &AuditRecord) -> Result<()>;
        fn list_audit(&self, filter: &AuditFilter, before: Option<i64>, limit: u32) -> Result<Vec<AuditRecord>>;
    }
    TokenStore {
        fn send_token_mail(
            &self,
            owner: TokenOwner<'_>,
            mail: &NewMail,
            not_before: Option<DateTime<Utc>>,
            now: DateTime<Utc>,
        ) -> Result<TokenMail>;
        fn verify_email(&self, digest: &[u8; 32], now: DateTime<Utc>) -> Result<Option<UserId>>;
        fn reset_password(
            &self,
            digest: &[u8; 32],
            password_hash: &str,
            mail: &NewMail,
            now: DateTime<Utc>,
        ) -> Result<Option<UserId>>;
        fn revert_email(&self, revert: &EmailRevert, now: DateTime<Utc>) -> Result<Option<UserId>>;
        fn purge_expired_tokens(&self, now: DateTime<Utc>, limit: u32) -> Result<u64>;
    }
    DeviceStore {
        fn insert_device_grant(&self, grant: &NewDeviceGrant) -> Result<bool>;
        fn poll_device_grant(
            &self,
            digest: &[u8; 32],
            now: DateTime<Utc>,
            leeway: chrono::TimeDelta,
            step: u32,
        ) -> Result<Option<DevicePoll>>;
        fn resolve_user_code(
            &self,
            code: &UserCode,
            action: UserCodeAction,
            max_wrong: u32,
            now: DateTime<Utc>,
        ) -> Result<Option<DeviceGrant>>;
        fn redeem_device_grant(&self, digest: &[u8; 32], login: &NewSession) -> Result<bool>;
    }
    PasskeyStore {
        fn webauthn_handle(&self, user: UserId, candidate: &[u8]) -> Result<Option<Vec<u8>>>;
        fn passkeys(&self, user: UserId) -> Result<Vec<PasskeyRecord>>;
        fn passkey_by_credential(&self, credential_id: &[u8]) -> Result<Option<(PasskeyRecord, Vec<u8>)>>;
        fn insert_passkey(&self, passkey: &PasskeyRecord, mails: &[NewMail]) -> Result<bool>;
        fn use_passkey(&self, id: Uuid, expected: u32, sign_count: u32, backed_up: bool, now: DateTime<Utc>) -> Result<bool>;
        fn rename_passkey(&self, user: UserId, id: Uuid, name: &str) -> Result<bool>;
        fn remove_passkey(&self, user: UserId, id: Uuid, mails: &[NewMail], now: DateTime<Utc>) -> Result<bool>;
        fn remove_second_factors(&self, user: UserId, mails: &[NewMail], now: DateTime<Utc>) -> Result<bool>;
        fn passkey_rp_ids(&self) -> Result<Vec<String>>;
        fn insert_ceremony(&self, ceremony: &Ceremony) -> Result<()>;
        fn take_ceremony(&self, digest: &[u8; 32], purpose: CeremonyPurpose, now: DateTime<Utc>) -> Result<Option<Ceremony>>;
    }
    IdentityStore {
        fn identity(&self, issuer: &str, subject: &str) -> Result<Option<IdentityRecord>>;
        fn identities(&self, user: UserId) -> Result<Vec<IdentityRecord>>;
        fn link_identity(&self, identity: &IdentityRecord, mails: &[NewMail]) -> Result<bool>;
        fn insert_provider_account(&self, record: &UserRecord, identity: &IdentityRecord) -> Result<()>;
        fn claim_unverified_account(&self, identity: &IdentityRecord, email: &Email, now: DateTime<Utc>) -> Result<bool>;
        fn unlink_identity(&self, user: UserId, provider: &str, mails: &[NewMail], now: DateTime<Utc>) -> Result<Unlinked>;
    }
    FactorStore {
        fn start_totp(&self, user: UserId, sealed: &str, now: DateTime<Utc>) -> Result<bool>;
        fn totp(&self, user: UserId) -> Result<Option<TotpFactor>>;
        fn confirm_totp(
            &self,
            user: UserId,
            started_at: DateTime<Utc>,
            pending_after: DateTime<Utc>,
            step: i64,
            codes: &[[u8; 32]],
            mails: &[NewMail],
            now: DateTime<Utc>,
        ) -> Result<bool>;
        fn accept_totp_step(&self, user: UserId, step: i64, resealed: Option<&str>) -> Result<bool>;
        fn remove_totp(&self, user: UserId, mails: &[NewMail], now: DateTime<Utc>) -> Result<bool>;
        fn replace_recovery_codes(
            &self,
            user: UserId,
            codes: &[[u8; 32]],
            mails: &[NewMail],
            now: DateTime<Utc>,
        ) -> Result<bool>;
        fn use_recovery_code(
            &self,
            user: UserId,
            digest: &[u8; 32],
            mails: &[NewMail],
            now: DateTime<Utc>,
        ) -> Result<bool>;
        fn recovery_codes_left(&self, user: UserId) -> Result<u32>;
        fn admins_without_second_factor(&self, limit: u32) -> Result<Vec<Username>>;
        fn insert_mfa_challenge(&self, challenge: &NewMfaChallenge) -> Result<()>;
        fn mfa_challenge(
            &self,
            digest: &[u8; 32],
            max_failures: u32,
            now: DateTime<Utc>,
        ) -> Result<Option<MfaChallenge>>;
        fn reserve_mfa_guess(&self, digest: &[u8; 32], max_failures: u32, now: DateTime<Utc>) -> Result<bool>;
        fn complete_mfa_challenge(&self, digest: &[u8; 32], max_failures: u32, login: &NewSession) -> Result<bool>;
    }
    SecretStore {
        fn get_or_insert_secret(&self, name: &str, candidate: &[u8], now: DateTime<Utc>) -> Result<Vec<u8>>;
    }
}

#[async_trait]
impl Store for TracedStore {
    async fn migrate(&self) -> Result<()> {
        self.inner.migrate().instrument(self.span("migrate")).await
    }

    async fn ping(&self) -> Result<()> {
        self.inner.ping().instrument(self.span("ping")).await
    }

    fn system(&self) -> &'static str {
        self.inner.system()
    }

    fn shares_rate_limits(&self) -> bool {
        self.inner.shares_rate_limits()
    }

    async fn hit_rate_limit(
        &self,
        key: &str,
        count: u32,
        period: std::time::Duration,
        now: DateTime<Utc>,
    ) -> Result<Option<std::time::Duration>> {
        self.inner.hit_rate_limit(key, count, period, now).instrument(self.span("hit_rate_limit")).await
    }

    async fn refund_rate_limit(&self, key: &str, count: u32, period: std::time::Duration) -> Result<()> {
        self.inner.refund_rate_limit(key, count, period).instrument(self.span("refund_rate_limit")).await
    }

    async fn purge_rate_limits(&self, now: DateTime<Utc>) -> Result<u64> {
        self.inner.purge_rate_limits(now).instrument(self.span("purge_rate_limits")).await
    }
}
