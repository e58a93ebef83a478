//! Guest accounts (`POST /user/guest`): listen first, register later,
//! keeping everything.

use super::sessions::SignInProof;
use super::{AuditEvent, ClientInfo, LoginOutcome, Registration, UserService};
use crate::auth::IssuedTokens;
use crate::domain::{Amr, Locale, Role, SessionId, UserId};
use crate::error::{Error, ForbiddenReason, Result, UnauthorizedReason};
use crate::store::{GuestUpgrade, User, UserKey, UserRecord};

/// What guests may keep (`USER_GUEST_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GuestPolicy {
    /// Favorites a guest may hold (default 1,000): a guest costs nobody a
    /// sign-up, so what it may store is bounded.
    pub max_favorites: u64,
}

impl Default for GuestPolicy {
    fn default() -> Self {
        Self { max_favorites: 1_000 }
    }
}

impl UserService {
    /// Creates a guest account (role `guest`, no username, address or
    /// password) and opens its session. The session's `amr` is empty; it
    /// counts as recent for upgrading, linking and deleting, and neither
    /// the second-factor policy nor the absolute lifetime applies to it.
    /// Callers limit how many a client may create (the server: per IP and
    /// overall).
    ///
    /// # Errors
    /// [`Error::Internal`] if the store fails.
    pub async fn create_guest(&self, locale: Locale, client: &ClientInfo) -> Result<LoginOutcome> {
        let now = self.clock.now();
        let user = User {
            id: UserId::new(),
            username: None,
            email: None,
            role: Role::Guest,
            disabled_at: None,
            email_verified: false,
            locale,
            last_login_at: None,
            created_at: now,
            updated_at: now,
        };
        let record =
            UserRecord { user, password_hash: None, failed_logins: 0, locked_until: None, credential_version: 0 };
        self.store.insert_user(&record, &[]).await?;
        let (login, tokens) = self.new_session(&record, None, client, SignInProof::delegated(Amr::NONE))?;
        if !self.store.open_session(&login).await? {
            return Err(Error::internal("a new guest's session did not open"));
        }
        self.audit(AuditEvent::GuestCreated, Some(record.user.id), client, None).await;
        Ok(LoginOutcome { user: record.user, tokens, device_cookie: None })
    }

    /// Makes the guest `user` (signed in as `session`) an account with
    /// role `user`, a username, an address (a verification mail goes out
    /// when mail is on) and a password, keeping its id, favorites and every
    /// session; answers like a login, with new tokens for `session`.
    /// The password is checked as at registration.
    ///
    /// # Errors
    /// [`Error::Validation`] for a weak or breached password;
    /// [`Error::Conflict`] for a taken username or address;
    /// [`Error::Forbidden`] when the caller is not a guest (any more).
    pub async fn upgrade_guest(
        &self,
        user: UserId,
        session: SessionId,
        reg: Registration,
        client: &ClientInfo,
    ) -> Result<LoginOutcome> {
        let password_hash = self.hash_new_password(&reg.password).await?;
        let mails = if self.mail.enabled { vec![self.verification_mail(&reg.email, None)?] } else { Vec::new() };
        let upgrade = GuestUpgrade {
            id: user,
            username: reg.username,
            email: Some(reg.email),
            email_verified: false,
            password_hash: Some(password_hash),
            identity: None,
            mails,
            now: self.clock.now(),
        };
        let Some(record) = self.store.upgrade_guest(&upgrade).await? else {
            return Err(Error::Forbidden(ForbiddenReason::NotAGuest));
        };
        if !upgrade.mails.is_empty() {
            self.task_waker.wake();
        }
        self.audit(AuditEvent::GuestUpgraded, Some(user), client, Some("by password".into())).await;
        let tokens = self.reissue_tokens(&record.user, session).await?;
        Ok(LoginOutcome { user: record.user, tokens, device_cookie: None })
    }

    /// After a sign-in to `into` made while the guest session of
    /// `guest_access` was live (`"merge_guest": true`): the guest's
    /// favorites move to the account (`favorite.added` for new ones) and
    /// the guest is deleted, in one transaction; how many moved. A token
    /// that is not a live guest's merges nothing.
    ///
    /// # Errors
    /// [`Error::Internal`] if the store fails.
    pub async fn merge_guest(&self, guest_access: &str, into: UserId, client: &ClientInfo) -> Result<u64> {
        let Ok(caller) = self.caller(guest_access).await else { return Ok(0) };
        if !caller.user.is_guest() {
            return Ok(0);
        }
        let guest = caller.user.id;
        let Some(moved) = self.store.merge_guest(guest, into, self.clock.now()).await? else { return Ok(0) };
        self.task_waker.wake();
        let detail = Some(format!("{moved} favorite(s) from guest {guest}"));
        self.audit(AuditEvent::GuestMerged, Some(into), client, detail).await;
        Ok(moved)
    }

    /// New tokens for `session` of `user` as the account is now (its role
    /// changed), rotating the session's refresh token: the one the client
    /// held is refused from now on (without harm within the grace period).
    pub(super) async fn reissue_tokens(&self, user: &User, session: SessionId) -> Result<IssuedTokens> {
        let record = self.active_session(session, user.id).await?;
        match self.rotate(user, &record, record.refresh_jti).await? {
            Some(tokens) => Ok(tokens),
            // A refresh of the session won the race: the client has new
            // tokens already (of the old role; the next refresh has the new).
            None => Err(Error::Unauthorized(UnauthorizedReason::RefreshRecentlyRotated)),
        }
    }

    /// Whether `user` may add `adding` more favorites: a guest holds at
    /// most [`GuestPolicy::max_favorites`].
    ///
    /// # Errors
    /// [`Error::Forbidden`] ([`ForbiddenReason::GuestLimit`]) past the limit.
    pub(super) async fn check_guest_favorites(&self, user: &User, adding: usize) -> Result<()> {
        if !user.is_guest() {
            return Ok(());
        }
        let held = self.store.count_favorites(user.id).await?;
        if held + adding as u64 > self.guests.max_favorites {
            return Err(Error::Forbidden(ForbiddenReason::GuestLimit(self.guests.max_favorites)));
        }
        Ok(())
    }

    /// Whether the account `id` is a guest (read from the store).
    pub(super) async fn is_guest(&self, id: UserId) -> Result<bool> {
        Ok(self.store.find_user(UserKey::Id(id)).await?.is_some_and(|r| r.user.is_guest()))
    }
}
