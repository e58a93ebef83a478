//! Sessions: login, the one path from a token to a live session, refresh, logout.

use std::net::IpAddr;
use std::time::Duration;

use uuid::Uuid;

use super::{AuditEvent, DeviceCookies, NewDeviceCookie, UserService};
use crate::auth::{AccessClaims, IssuedTokens, RefreshClaims, Verified};
use crate::domain::{Amr, DeviceName, Login, Password, SessionId, UserId};
use crate::error::{Error, ForbiddenReason, Result, UnauthorizedReason};
use crate::store::{LoginAttempt, NewSession, Rotation, SessionRecord, User, UserKey, UserRecord};

/// Who is calling, as far as the transport knows; kept on the session.
#[derive(Debug, Clone, Default)]
pub struct ClientInfo {
    /// The `User-Agent` header.
    pub user_agent: Option<String>,
    /// The client's address.
    pub ip: Option<IpAddr>,
    /// The name the client gives the session it opens (login only).
    pub device_name: Option<DeviceName>,
    /// The admin acting on someone else's account, recorded as the audit
    /// entry's `actor_id`; `None` when callers act on their own account, or
    /// for an operator on the database host.
    pub actor: Option<UserId>,
    /// The device cookies the client carried: a password check of an
    /// account whose cookie is among them counts on that cookie alone.
    pub device_cookies: DeviceCookies,
}

/// What a sign-in proved: its session's `amr`, and whether the session
/// starts recently authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct SignInProof {
    amr: Amr,
    recent: bool,
}

impl SignInProof {
    /// The account's credentials, proved just now.
    pub(super) fn credential(amr: Amr) -> Self {
        Self { amr, recent: true }
    }

    /// Another session's say-so (a device approval): that session's
    /// methods, but not recent.
    pub(super) fn delegated(amr: Amr) -> Self {
        Self { amr, recent: false }
    }
}

/// The caller an access token names, checked against its live session.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The token's claims.
    pub claims: AccessClaims,
    /// The account, as read with the session.
    pub user: User,
    /// How the session signed in, with what it proved since (read from the
    /// session, so a factor confirmed a moment ago counts already).
    pub amr: Amr,
    /// The second-factor policy covers the account and the session has not
    /// proved a second factor: it may only see the account, enroll a
    /// factor, step up or sign out (`mfa_enrollment_required` elsewhere).
    pub restricted: bool,
}

/// A successful login: the account and its new token pair.
#[derive(Debug, Clone)]
pub struct LoginOutcome {
    /// The account.
    pub user: User,
    /// The new session's tokens.
    pub tokens: IssuedTokens,
    /// A device cookie to set, when the client carried none of this account.
    pub device_cookie: Option<NewDeviceCookie>,
}

impl UserService {
    /// Checks the password and opens a new session.
    ///
    /// An unknown user costs one dummy verification, so timing does not tell
    /// unknown users from wrong passwords; a disabled account is reported only
    /// after its password verifies. When the stored hash was made with other
    /// parameters than the configured ones, it is replaced.
    ///
    /// An account with a second factor answers a right password with
    /// [`Error::SecondFactorRequired`] and no session: the sign-in completes
    /// with [`UserService::complete_sign_in`].
    ///
    /// # Errors
    /// [`Error::UserNotFound`], [`Error::InvalidCredentials`],
    /// [`Error::SecondFactorRequired`], [`Error::Forbidden`] (disabled),
    /// [`Error::Overloaded`].
    #[tracing::instrument(skip_all)]
    pub async fn login(&self, login: &Login, password: &Password, client: &ClientInfo) -> Result<LoginOutcome> {
        let key = match login {
            Login::Username(name) => UserKey::Username(name),
            Login::Email(email) => UserKey::Email(email),
        };
        let Some(record) = self.store.find_user(key).await? else {
            self.hasher.verify_dummy(password).await?;
            self.audit(AuditEvent::LoginFailed, None, client, Some("unknown user".into())).await;
            return Err(Error::UserNotFound);
        };
        let id = record.user.id;
        let verified = self.check_password(&record, password, client, "wrong password").await?;
        // Every factor first, then the account's state (API.md's one
        // sign-in pipeline). The attempt stays counted until the second
        // factor completes: a right password alone never clears what wrong
        // codes counted, or password, five codes, password, … would guess on.
        if let Some(challenge) = self.second_factor_challenge(&record, Amr::PASSWORD).await? {
            return Err(Error::SecondFactorRequired(Box::new(challenge)));
        }
        self.refuse_closed_account(&record, client).await?;
        let Some(tokens) = self.open_session(&record, verified.rehashed, client).await? else {
            // The password, role or state changed between reading the
            // account and now: what was verified is no longer the credential.
            let detail = Some("credentials changed during the login".into());
            self.audit(AuditEvent::LoginFailed, Some(id), client, detail).await;
            return Err(Error::InvalidCredentials);
        };
        self.audit(AuditEvent::LoginSucceeded, Some(id), client, None).await;
        let device_cookie = self.remember_device(id, client).await?;
        Ok(LoginOutcome { user: record.user, tokens, device_cookie })
    }

    /// After every factor proved right: refuses a disabled account, or an
    /// unverified address when that is required. The factors were right, so
    /// the attempt does not count toward the lockout (or a user who tries
    /// until verified would lock themselves out).
    pub(super) async fn refuse_closed_account(&self, record: &UserRecord, client: &ClientInfo) -> Result<()> {
        let reason = if record.user.disabled_at.is_some() {
            ForbiddenReason::AccountDisabled
        } else if self.mail.require_verified_email && !record.user.email_verified {
            ForbiddenReason::EmailNotVerified
        } else {
            return Ok(());
        };
        let id = record.user.id;
        self.store.reset_login_failures(id).await?;
        self.audit(AuditEvent::LoginFailed, Some(id), client, Some(reason.to_string())).await;
        Err(Error::Forbidden(reason))
    }

    /// Reserves (and counts) one guess at the account's credentials under
    /// the lockout, before any checking, so concurrent guesses get no more
    /// checks than the lockout allows; the failures in a row so far. A
    /// success leaves the attempt counted: the caller clears it, in the
    /// transaction that acts on the success.
    ///
    /// # Errors
    /// [`Error::Throttled`] while the account (or the client's device
    /// cookie of it) is locked out; [`Error::UserNotFound`].
    pub(super) async fn reserve_login_attempt(&self, record: &UserRecord, client: &ClientInfo) -> Result<u32> {
        let id = record.user.id;
        let now = self.clock.now();
        let policy = self.lockout;
        let lock = Box::new(move |failures: u32| policy.wait_after(failures).map(|wait| now + wait));
        let device = self.presented_device(id, client);
        match self.store.reserve_login_attempt(id, device, now, lock).await? {
            Some(LoginAttempt::Allowed { failures }) => Ok(failures),
            Some(LoginAttempt::Locked { until }) => {
                self.audit(AuditEvent::LoginThrottled, Some(id), client, None).await;
                let retry_after = (until - now).to_std().unwrap_or_default();
                Err(Error::Throttled { retry_after: retry_after.max(Duration::from_secs(1)) })
            }
            None => Err(Error::UserNotFound),
        }
    }

    /// Checks `password` against the account under the lockout (see
    /// [`UserService::reserve_login_attempt`]). A wrong password is audited
    /// as a failed login with `wrong` as the detail.
    pub(super) async fn check_password(
        &self,
        record: &UserRecord,
        password: &Password,
        client: &ClientInfo,
        wrong: &str,
    ) -> Result<Verified> {
        let id = record.user.id;
        let failures = self.reserve_login_attempt(record, client).await?;
        let verified = match &record.password_hash {
            Some(hash) => self.hasher.verify(password, hash).await,
            // No password to match: as long as a wrong one, and counted the same.
            None => self.hasher.verify_dummy(password).await.and(Err(Error::InvalidCredentials)),
        };
        match verified {
            Err(Error::InvalidCredentials) => {
                let detail = format!("{wrong} ({failures} in a row)");
                self.audit(AuditEvent::LoginFailed, Some(id), client, Some(detail)).await;
                Err(Error::InvalidCredentials)
            }
            other => other,
        }
    }

    /// Opens a session for a login that verified `record`'s password; `None`
    /// if the account's credentials changed since `record` was read.
    pub(super) async fn open_session(
        &self,
        record: &UserRecord,
        rehash: Option<String>,
        client: &ClientInfo,
    ) -> Result<Option<IssuedTokens>> {
        let (login, tokens) = self.new_session(record, rehash, client, SignInProof::credential(Amr::PASSWORD))?;
        Ok(self.store.open_session(&login).await?.then_some(tokens))
    }

    /// A new session's record and tokens, for `record`'s account, opened
    /// now with what the sign-in proved.
    pub(super) fn new_session(
        &self,
        record: &UserRecord,
        rehash: Option<String>,
        client: &ClientInfo,
        proof: SignInProof,
    ) -> Result<(NewSession, IssuedTokens)> {
        let user = &record.user;
        let now = self.clock.now();
        let sid = SessionId::new();
        let jti = Uuid::now_v7();
        let (access, access_expires_at) = self.tokens.issue_access(user.id, sid, user.role, proof.amr, now)?;
        let (refresh, refresh_expires_at) = self.tokens.issue_refresh(user.id, sid, jti, now, now)?;
        let session = SessionRecord {
            id: sid,
            user_id: user.id,
            refresh_jti: jti,
            previous_jti: None,
            rotated_at: None,
            created_at: now,
            last_used_at: now,
            expires_at: refresh_expires_at,
            revoked_at: None,
            user_agent: client.user_agent.as_deref().map(|ua| ua.chars().take(256).collect()),
            ip: client.ip.map(|ip| ip.to_string()),
            device_name: client.device_name.as_ref().map(ToString::to_string),
            authenticated_at: proof.recent.then_some(now),
            amr: proof.amr,
        };
        let login = NewSession { session, credential_version: record.credential_version, rehash };
        let tokens = IssuedTokens {
            access,
            access_expires_at,
            refresh,
            refresh_expires_at,
            session_expires_at: self.tokens.session_end(now),
            session_id: sid,
            user_id: user.id,
        };
        Ok((login, tokens))
    }

    /// Exchanges a refresh token for a new pair, rotating the session's refresh
    /// token by compare-and-swap: of two concurrent refreshes with one token,
    /// exactly one wins.
    ///
    /// Presenting the token just replaced, within the grace period, is refused
    /// without harm; presenting any other stale token of the session is taken
    /// as theft and revokes the session.
    ///
    /// # Errors
    /// [`Error::Unauthorized`] with the reason.
    #[tracing::instrument(skip_all)]
    pub async fn refresh(&self, refresh_token: &str, client: &ClientInfo) -> Result<IssuedTokens> {
        let now = self.clock.now();
        let claims = self.tokens.verify_refresh(refresh_token, now)?;
        let mut session = self.active_session(claims.sid, claims.sub).await?;
        if session.refresh_jti == claims.jti {
            let user = match self.store.find_user(UserKey::Id(claims.sub)).await? {
                Some(record) if record.user.disabled_at.is_none() => record.user,
                _ => return Err(Error::Unauthorized(UnauthorizedReason::SessionRevoked)),
            };
            if let Some(tokens) = self.rotate(&user, &session, claims.jti).await? {
                return Ok(tokens);
            }
            // Another refresh with the same token won the race: judge the token again.
            session = self.active_session(claims.sid, claims.sub).await?;
        }
        let within_grace = session.previous_jti == Some(claims.jti)
            && session.rotated_at.is_some_and(|at| now <= at + self.refresh_grace);
        if within_grace {
            return Err(Error::Unauthorized(UnauthorizedReason::RefreshRecentlyRotated));
        }
        self.store.revoke_session(session.id, now).await?;
        let detail = format!("session {} revoked", session.id);
        self.audit(AuditEvent::RefreshReuseDetected, Some(claims.sub), client, Some(detail)).await;
        Err(Error::Unauthorized(UnauthorizedReason::RefreshReused))
    }

    /// New tokens for `session` of `user`, rotating its refresh token by
    /// compare-and-swap from `expected_jti`; `None` if another rotation won.
    /// The access token carries the session's methods as they are now (a
    /// step-up since shows). A guest's session has no absolute end: its
    /// lifetime counts from now, not from its sign-in.
    pub(super) async fn rotate(
        &self,
        user: &User,
        session: &SessionRecord,
        expected_jti: Uuid,
    ) -> Result<Option<IssuedTokens>> {
        let now = self.clock.now();
        let new_jti = Uuid::now_v7();
        let signed_in_at = if user.is_guest() { now } else { session.created_at };
        let (access, access_expires_at) = self.tokens.issue_access(user.id, session.id, user.role, session.amr, now)?;
        let (refresh, refresh_expires_at) =
            self.tokens.issue_refresh(user.id, session.id, new_jti, signed_in_at, now)?;
        let rotation = Rotation { session: session.id, expected_jti, new_jti, now, expires_at: refresh_expires_at };
        if !self.store.rotate_session(&rotation).await? {
            return Ok(None);
        }
        Ok(Some(IssuedTokens {
            access,
            access_expires_at,
            refresh,
            refresh_expires_at,
            session_expires_at: self.tokens.session_end(signed_in_at),
            session_id: session.id,
            user_id: user.id,
        }))
    }

    pub(super) async fn active_session(&self, sid: SessionId, user: UserId) -> Result<SessionRecord> {
        match self.store.session(sid).await? {
            Some(s) if s.user_id == user && s.is_active(self.clock.now()) => Ok(s),
            _ => Err(Error::Unauthorized(UnauthorizedReason::SessionRevoked)),
        }
    }

    /// Verifies an access token and that its session is still active and
    /// not restricted by the second-factor policy.
    ///
    /// # Errors
    /// [`Error::Unauthorized`] if the token is malformed, expired, of the wrong
    /// type, or its session was revoked or deleted; [`Error::Forbidden`]
    /// ([`ForbiddenReason::MfaEnrollmentRequired`]) for a restricted session.
    pub async fn authenticate(&self, access_token: &str) -> Result<AccessClaims> {
        self.me(access_token).await.map(|(claims, _)| claims)
    }

    /// The account an access token belongs to, as [`UserService::caller`]
    /// checks it, refusing a session the second-factor policy restricts.
    ///
    /// # Errors
    /// As [`UserService::authenticate`].
    pub async fn me(&self, access_token: &str) -> Result<(AccessClaims, User)> {
        let caller = self.caller(access_token).await?;
        if caller.restricted {
            return Err(Error::Forbidden(ForbiddenReason::MfaEnrollmentRequired));
        }
        Ok((caller.claims, caller.user))
    }

    /// The caller an access token names, checked in one store round trip:
    /// token valid, session active, user present. The one path from an
    /// access token to a live session. A session the second-factor policy
    /// restricts is answered with [`Caller::restricted`] set: only what
    /// such a session may do (see it, enroll a factor, step up, sign out)
    /// should take this; everything else takes [`UserService::me`].
    ///
    /// # Errors
    /// [`Error::Unauthorized`] as [`UserService::authenticate`].
    pub async fn caller(&self, access_token: &str) -> Result<Caller> {
        let now = self.clock.now();
        let claims = self.tokens.verify_access(access_token, now)?;
        let Some(found) = self.store.session_user(claims.sid, claims.sub, now).await? else {
            return Err(Error::Unauthorized(UnauthorizedReason::SessionRevoked));
        };
        let user = found.record.user;
        // `required` covers no guest: a guest has no factor to prove.
        let restricted = self.factors.required(user.role) && !found.amr.is_multi_factor();
        Ok(Caller { claims, user, amr: found.amr, restricted })
    }

    /// Verifies a refresh token for logging out: its session must be active and
    /// the token its current or just-replaced one. Does not rotate.
    ///
    /// # Errors
    /// [`Error::Unauthorized`] otherwise.
    pub async fn authenticate_refresh(&self, refresh_token: &str) -> Result<RefreshClaims> {
        let claims = self.tokens.verify_refresh(refresh_token, self.clock.now())?;
        let session = self.active_session(claims.sid, claims.sub).await?;
        if session.refresh_jti != claims.jti && session.previous_jti != Some(claims.jti) {
            return Err(Error::Unauthorized(UnauthorizedReason::SessionRevoked));
        }
        Ok(claims)
    }

    /// Ends a session; its access and refresh tokens stop working at once.
    /// Ending an already ended session is not an error.
    ///
    /// # Errors
    /// [`Error::Internal`] if the store fails.
    pub async fn logout(&self, user: UserId, session: SessionId, client: &ClientInfo) -> Result<()> {
        if self.store.revoke_session(session, self.clock.now()).await? {
            self.audit(AuditEvent::LoggedOut, Some(user), client, None).await;
        }
        Ok(())
    }
}

impl UserService {
    /// The user's live sessions, newest first. `last_used_at` is the last
    /// login or refresh: the hot authenticated path writes nothing.
    ///
    /// # Errors
    /// [`Error::Internal`] if the store fails.
    pub async fn sessions(&self, user: UserId) -> Result<Vec<SessionRecord>> {
        self.store.list_sessions(user, self.clock.now()).await
    }

    /// Ends one of the user's live sessions (signing a device out).
    ///
    /// # Errors
    /// [`Error::SessionNotFound`] if `session` is not a live session of `user`
    /// — also for all but one of several calls racing to end it.
    pub async fn revoke_own_session(&self, user: UserId, session: SessionId, client: &ClientInfo) -> Result<()> {
        let now = self.clock.now();
        // A session's owner never changes and expiry only comes closer, so
        // reading them first is safe; whether it is still live is decided by
        // the revocation itself, one conditional update.
        match self.store.session(session).await? {
            Some(s) if s.user_id == user && s.expires_at > now => {}
            _ => return Err(Error::SessionNotFound),
        }
        if !self.store.revoke_session(session, now).await? {
            return Err(Error::SessionNotFound);
        }
        self.audit(AuditEvent::SessionRevoked, Some(user), client, None).await;
        Ok(())
    }

    /// Ends every session of the user but `current`; how many were live.
    ///
    /// # Errors
    /// [`Error::Internal`] if the store fails.
    pub async fn revoke_other_sessions(&self, user: UserId, current: SessionId, client: &ClientInfo) -> Result<u64> {
        let n = self.store.revoke_user_sessions(user, Some(current), self.clock.now()).await?;
        if n > 0 {
            self.audit(AuditEvent::SessionRevoked, Some(user), client, Some(format!("{n} other session(s)"))).await;
        }
        Ok(n)
    }
}
