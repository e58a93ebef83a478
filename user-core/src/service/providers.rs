//! Signing in with another provider (API.md v1.2, "Sign in with another
//! provider"): the start, the callback with the linking rules, the
//! identities an account holds.

use chrono::TimeDelta;
use sha2::{Digest as _, Sha256};

use super::recovery::{new_secret, token_digest};
use super::sessions::SignInProof;
use super::{AuditEvent, ClientInfo, LoginOutcome, UserService};
use crate::auth::oidc::{ProviderIdentity, ProviderState, random_token};
use crate::domain::{Amr, AuthMethod, Role, SessionId, UserId, Username, ValidationError};
use crate::error::{Error, ForbiddenReason, Result};
use crate::store::{
    Ceremony, CeremonyPurpose, GuestUpgrade, IdentityRecord, NewMail, Unlinked, User, UserKey, UserRecord,
};

/// How long a provider sign-in may take, and how long an identity waits
/// for its account to sign in and link it.
const PROVIDER_STATE_TTL: TimeDelta = TimeDelta::minutes(10);

/// What a provider sign-in is for (`mode=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProviderMode {
    /// Sign in (or up).
    Login,
    /// Add the identity to the signed-in account (recent authentication).
    Link,
    /// Prove a credential again for the signed-in session.
    Reauth,
}

impl ProviderMode {
    /// `login`, `link` or `reauth`.
    pub fn as_str(self) -> &'static str {
        match self {
            ProviderMode::Login => "login",
            ProviderMode::Link => "link",
            ProviderMode::Reauth => "reauth",
        }
    }

    /// Parses `mode=`.
    ///
    /// # Errors
    /// A [`ValidationError`] naming `mode`.
    pub fn parse(s: &str) -> std::result::Result<Self, ValidationError> {
        match s {
            "login" => Ok(ProviderMode::Login),
            "link" => Ok(ProviderMode::Link),
            "reauth" => Ok(ProviderMode::Reauth),
            _ => Err(ValidationError::new("mode", "must be login, link or reauth")),
        }
    }
}

/// Where to send the browser to sign in at a provider.
#[derive(Debug, Clone)]
pub struct ProviderRedirect {
    /// The provider's authorization URL.
    pub url: String,
    /// The browser's state cookie value (a new one when it had none).
    pub browser_key: String,
}

/// How a provider callback ended, for the browser.
#[derive(Debug)]
pub enum ProviderOutcome {
    /// Signed in: set the session cookies, go to `redirect_to`.
    SignedIn {
        /// The session.
        outcome: Box<LoginOutcome>,
        /// Where to go.
        redirect_to: String,
    },
    /// The account has a second factor: the sign-in waits for it. The
    /// browser gets the `mfa_token` in the `mfa_pending` cookie and goes to
    /// `redirect_to?error=mfa_required`; `POST /user/login/mfa` with a code
    /// completes it (`amr` `["fed","otp","mfa"]`).
    SecondFactor {
        /// The sign-in's token (five minutes, single use).
        mfa_token: String,
        /// The factors that may complete it (`totp`, `recovery_code`, `passkey`).
        methods: Vec<String>,
        /// Where to go (with `?error=mfa_required`).
        redirect_to: String,
    },
    /// A local account has this verified address: it must sign in and link
    /// (`POST /user/identities/link` with the link cookie).
    LinkRequired {
        /// The link cookie's value.
        link_token: String,
        /// Where to go (with `?link_required=1`).
        redirect_to: String,
    },
    /// Linked to, or stepped up, the signed-in session.
    Done {
        /// Where to go.
        redirect_to: String,
    },
}

/// Why a callback failed.
#[derive(Debug)]
pub enum ProviderFailure {
    /// The state is unknown, used, expired, another provider's or another
    /// browser's: a 400 page, never a redirect (the target is not known).
    InvalidState,
    /// Back to `redirect_to?error=<code>`.
    Redirect {
        /// The sign-in's return address.
        redirect_to: String,
        /// `access_denied`, `provider_error`, `account_disabled`, … (API.md).
        code: &'static str,
    },
}

impl UserService {
    /// The providers configured, by name.
    pub fn provider_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.providers.iter().map(|p| p.config().name.clone()).collect();
        names.sort();
        names
    }

    /// Asks each provider for its endpoints; returns those that could not
    /// be reached (they are retried at their next sign-in).
    pub async fn discover_providers(&self) -> Vec<(String, String)> {
        let mut failed = Vec::new();
        for provider in self.providers.iter() {
            if let Err(e) = provider.discover().await {
                failed.push((provider.config().name.clone(), e.to_string()));
            }
        }
        failed
    }

    /// Starts a sign-in at `provider` that returns to `redirect_to` (an
    /// allowed entry, exactly) through `callback` (this service's callback
    /// URL): a state bound to the browser's `browser_key` (made when
    /// missing), a nonce and a PKCE verifier, kept in the store for ten
    /// minutes. `link` needs `session` with recent authentication;
    /// `reauth` needs `session`.
    ///
    /// # Errors
    /// [`Error::UnknownProvider`]; [`Error::Validation`] on `redirect_to`;
    /// [`Error::Unauthorized`] without a session for `link`/`reauth`;
    /// [`Error::ReauthRequired`]; [`Error::ProviderUnavailable`].
    pub async fn provider_start(
        &self,
        provider: &str,
        redirect_to: &str,
        mode: ProviderMode,
        session: Option<(UserId, SessionId)>,
        browser_key: Option<&str>,
        callback: &str,
    ) -> Result<ProviderRedirect> {
        let p = self.providers.get(provider).ok_or(Error::UnknownProvider)?;
        if !p.config().allowed_redirects.iter().any(|allowed| allowed == redirect_to) {
            return Err(
                ValidationError::new("redirect_to", "must be exactly one of the allowed return addresses").into()
            );
        }
        let (user, sid) = match (mode, session) {
            (ProviderMode::Login, _) => (None, None),
            (_, None) => return Err(Error::Unauthorized(crate::error::UnauthorizedReason::Missing)),
            (mode, Some((user, sid))) => {
                if mode == ProviderMode::Link {
                    self.require_recent_authentication(user, Some(sid)).await?;
                }
                (Some(user), Some(sid))
            }
        };
        let browser_key = match browser_key.filter(|k| token_digest(k).is_ok()) {
            Some(key) => key.to_owned(),
            None => new_secret().0,
        };
        let state = ProviderState {
            provider: provider.to_owned(),
            mode: mode.as_str().to_owned(),
            nonce: random_token(),
            verifier: random_token(),
            redirect_to: redirect_to.to_owned(),
            browser: hex::encode(Sha256::digest(browser_key.as_bytes())),
        };
        let (raw_state, digest) = new_secret();
        let url = p
            .authorization_url(callback, &raw_state, &state.nonce, &state.verifier, mode == ProviderMode::Reauth)
            .await
            .map_err(|e| Error::ProviderUnavailable(e.to_string()))?;
        let now = self.clock.now();
        self.store
            .insert_ceremony(&Ceremony {
                digest,
                purpose: CeremonyPurpose::ProviderSignIn,
                challenge: serde_json::to_vec(&state).map_err(Error::internal)?,
                user,
                session: sid,
                mfa_digest: None,
                created_at: now,
                expires_at: now + PROVIDER_STATE_TTL,
            })
            .await?;
        Ok(ProviderRedirect { url, browser_key })
    }

    /// The provider's callback: takes the state once (it must be this
    /// provider's and this browser's), exchanges the code, checks the ID
    /// token, then applies the linking rules and the sign-in pipeline.
    ///
    /// # Errors
    /// [`ProviderFailure::InvalidState`] for a bad, used or foreign state;
    /// [`ProviderFailure::Redirect`] with the contract's code otherwise.
    #[allow(clippy::too_many_arguments)]
    pub async fn provider_callback(
        &self,
        provider: &str,
        state: &str,
        code: Option<&str>,
        provider_error: Option<&str>,
        browser_key: Option<&str>,
        callback: &str,
        client: &ClientInfo,
    ) -> std::result::Result<ProviderOutcome, ProviderFailure> {
        let Ok(digest) = token_digest(state) else { return Err(ProviderFailure::InvalidState) };
        let now = self.clock.now();
        let taken = self.store.take_ceremony(&digest, CeremonyPurpose::ProviderSignIn, now).await;
        let Ok(Some(ceremony)) = taken else { return Err(ProviderFailure::InvalidState) };
        let Ok(saved) = serde_json::from_slice::<ProviderState>(&ceremony.challenge) else {
            return Err(ProviderFailure::InvalidState);
        };
        let same_browser = browser_key.is_some_and(|key| hex::encode(Sha256::digest(key.as_bytes())) == saved.browser);
        let Some(p) = self.providers.get(provider).filter(|_| saved.provider == provider && same_browser) else {
            return Err(ProviderFailure::InvalidState);
        };
        let redirect_to = saved.redirect_to.clone();
        let fail = |code: &'static str| ProviderFailure::Redirect { redirect_to: redirect_to.clone(), code };
        if provider_error.is_some() {
            return Err(fail("access_denied"));
        }
        let code = code.ok_or_else(|| fail("access_denied"))?;
        let identity = match p.exchange(code, callback, &saved.verifier, &saved.nonce, now).await {
            Ok(identity) => identity,
            Err(e) => {
                tracing::warn!(provider, error = %e, "provider sign-in refused");
                return Err(fail("provider_error"));
            }
        };
        let trusted = p.config().trust_email;
        let result = match ProviderMode::parse(&saved.mode) {
            Ok(ProviderMode::Login) => {
                self.sign_in_with_identity(provider, identity, trusted, &redirect_to, client).await
            }
            Ok(ProviderMode::Link) => {
                let (Some(user), Some(session)) = (ceremony.user, ceremony.session) else {
                    return Err(ProviderFailure::InvalidState);
                };
                self.link_to_session(provider, identity, trusted, user, session, client)
                    .await
                    .map(|()| ProviderOutcome::Done { redirect_to: redirect_to.clone() })
            }
            Ok(ProviderMode::Reauth) => {
                let (Some(user), Some(session)) = (ceremony.user, ceremony.session) else {
                    return Err(ProviderFailure::InvalidState);
                };
                self.reauthenticate_with_identity(&identity, user, session, client)
                    .await
                    .map(|()| ProviderOutcome::Done { redirect_to: redirect_to.clone() })
            }
            Err(_) => return Err(ProviderFailure::InvalidState),
        };
        result.map_err(|e| fail(failure_code(&e)))
    }

    /// A native app's sign-in (`POST /auth/{provider}/token`): the ID token
    /// the platform's SDK (Sign in with Apple, Google Identity) obtained,
    /// checked like the callback's, with `nonce` the one the app sent, then
    /// the same linking rules and pipeline.
    ///
    /// # Errors
    /// [`Error::UnknownProvider`]; [`Error::InvalidIdToken`];
    /// [`Error::ProviderUnavailable`]; [`Error::SecondFactorRequired`] (complete
    /// with [`UserService::complete_sign_in`]); [`Error::LinkRequired`] (the
    /// `link_token` for `POST /user/identities/link` is in the error's
    /// place: see the server); [`Error::Forbidden`]; [`Error::IdentityInUse`].
    pub async fn provider_token_sign_in(
        &self,
        provider: &str,
        id_token: &str,
        nonce: &str,
        client: &ClientInfo,
    ) -> Result<ProviderOutcome> {
        let p = self.providers.get(provider).ok_or(Error::UnknownProvider)?;
        if p.config().kind != crate::auth::oidc::ProviderKind::OpenIdConnect {
            return Err(ValidationError::new("provider", "only an OpenID provider gives ID tokens").into());
        }
        let identity = match p.verify_id_token(id_token, nonce, self.clock.now()).await {
            Ok(identity) => identity,
            Err(crate::auth::oidc::ProviderError::Unavailable(e)) => return Err(Error::ProviderUnavailable(e)),
            Err(e) => {
                tracing::info!(provider, error = %e, "ID token refused");
                return Err(Error::InvalidIdToken);
            }
        };
        let trusted = p.config().trust_email;
        self.sign_in_with_identity(provider, identity, trusted, "", client).await
    }

    /// Signs in with an identity the provider vouched for (rules 1–4 of
    /// API.md), ending in the sign-in pipeline.
    async fn sign_in_with_identity(
        &self,
        provider: &str,
        identity: ProviderIdentity,
        trusted: bool,
        redirect_to: &str,
        client: &ClientInfo,
    ) -> Result<ProviderOutcome> {
        let now = self.clock.now();
        let verified_email = identity.email.clone().filter(|_| trusted && identity.email_verified);
        let record = identity_record(provider, &identity, UserId::new(), now);
        // 1. A known identity signs in to its account.
        if let Some(known) = self.store.identity(&identity.issuer, &identity.subject).await? {
            let account = self.store.find_user(UserKey::Id(known.user)).await?.ok_or(Error::UserNotFound)?;
            return self.open_provider_session(account, redirect_to, client).await;
        }
        if let Some(email) = &verified_email
            && let Some(local) = self.store.find_user(UserKey::Email(email)).await?
        {
            if local.user.email_verified {
                // 2. Held until that account signs in and links it.
                let (link_token, _) = new_secret();
                let digest = held_digest(&link_token, local.user.id);
                let held = IdentityRecord { user: local.user.id, ..record };
                self.store
                    .insert_ceremony(&Ceremony {
                        digest,
                        purpose: CeremonyPurpose::IdentityLink,
                        challenge: serde_json::to_vec(&HeldIdentity::from(&held)).map_err(Error::internal)?,
                        user: Some(local.user.id),
                        session: None,
                        mfa_digest: None,
                        created_at: now,
                        expires_at: now + PROVIDER_STATE_TTL,
                    })
                    .await?;
                return Ok(ProviderOutcome::LinkRequired { link_token, redirect_to: redirect_to.to_owned() });
            }
            // 3. An unverified address: whoever registered it never proved
            // it; the provider's verified owner takes the account over.
            let claim = IdentityRecord { user: local.user.id, ..record };
            if !self.store.claim_unverified_account(&claim, email, now).await? {
                return Err(Error::IdentityInUse);
            }
            let detail =
                Some(format!("{provider}: password, passkeys, second factors, identities and sessions removed"));
            self.audit(AuditEvent::PreTakeoverCleared, Some(local.user.id), client, detail).await;
            self.audit(AuditEvent::IdentityLinked, Some(local.user.id), client, Some(provider.to_owned())).await;
            let account = self.store.find_user(UserKey::Id(local.user.id)).await?.ok_or(Error::UserNotFound)?;
            return self.open_provider_session(account, redirect_to, client).await;
        }
        // 4. A new account.
        let account = self.create_provider_account(provider, &identity, verified_email, client).await?;
        self.open_provider_session(account, redirect_to, client).await
    }

    /// Creates an account for `identity`: a username from its preferred
    /// name, suffixed until free; the address only if trusted and verified.
    async fn create_provider_account(
        &self,
        provider: &str,
        identity: &ProviderIdentity,
        verified_email: Option<crate::domain::Email>,
        client: &ClientInfo,
    ) -> Result<UserRecord> {
        let now = self.clock.now();
        let base = username_base(identity.preferred_username.as_deref());
        let mut email = verified_email;
        for attempt in 0..20 {
            let Ok(username) = Username::parse(&username_candidate(&base, attempt)) else { continue };
            let user = User {
                id: UserId::new(),
                username: Some(username),
                email_verified: email.is_some(),
                email: email.clone(),
                role: Role::User,
                disabled_at: None,
                locale: Default::default(),
                last_login_at: None,
                created_at: now,
                updated_at: now,
            };
            let record =
                UserRecord { user, password_hash: None, failed_logins: 0, locked_until: None, credential_version: 0 };
            let link = identity_record(provider, identity, record.user.id, now);
            match self.store.insert_provider_account(&record, &link).await {
                Ok(()) => {
                    self.audit(AuditEvent::Registered, Some(record.user.id), client, Some(format!("by {provider}")))
                        .await;
                    self.audit(AuditEvent::IdentityLinked, Some(record.user.id), client, Some(provider.to_owned()))
                        .await;
                    return Ok(record);
                }
                Err(Error::Conflict(crate::error::ConflictField::Username)) => {}
                // The address was taken (or reserved) meanwhile: no address.
                Err(Error::Conflict(crate::error::ConflictField::Email)) => email = None,
                Err(e) => return Err(e),
            }
        }
        Err(Error::internal("no free username for a provider account"))
    }

    /// The sign-in pipeline for a provider: every factor the account has,
    /// then `disabled`, then the verified-address rule, then the session
    /// with `amr` `["fed"]`.
    async fn open_provider_session(
        &self,
        record: UserRecord,
        redirect_to: &str,
        client: &ClientInfo,
    ) -> Result<ProviderOutcome> {
        // Every factor first (API.md's one pipeline), then the account's state.
        let fed = Amr::of(&[AuthMethod::Fed]);
        if let Some(challenge) = self.second_factor_challenge(&record, fed).await? {
            let redirect_to = redirect_to.to_owned();
            let methods = challenge.methods.iter().map(|m| m.as_str().to_owned()).collect();
            return Ok(ProviderOutcome::SecondFactor { mfa_token: challenge.mfa_token, methods, redirect_to });
        }
        self.refuse_closed_account(&record, client).await?;
        let proof = SignInProof::credential(fed);
        let (login, tokens) = self.new_session(&record, None, client, proof)?;
        if !self.store.open_session(&login).await? {
            return Err(Error::InvalidCredentials);
        }
        let id = record.user.id;
        self.audit(AuditEvent::ProviderSignIn, Some(id), client, None).await;
        let device_cookie = self.remember_device(id, client).await?;
        let outcome = LoginOutcome { user: record.user, tokens, device_cookie };
        Ok(ProviderOutcome::SignedIn { outcome: Box::new(outcome), redirect_to: redirect_to.to_owned() })
    }

    /// Links `identity` to the account of `session` (mode `link`); a guest
    /// becomes an account by it, in place.
    async fn link_to_session(
        &self,
        provider: &str,
        identity: ProviderIdentity,
        trusted: bool,
        user: UserId,
        session: SessionId,
        client: &ClientInfo,
    ) -> Result<()> {
        self.active_session(session, user).await?;
        let now = self.clock.now();
        let record = identity_record(provider, &identity, user, now);
        if !self.is_guest(user).await? {
            return self.link(record, client).await;
        }
        // The guest keeps its id, favorites and sessions, and gains a name,
        // the provider's address if it vouches for it, and the identity.
        let base = username_base(identity.preferred_username.as_deref());
        let mut email = identity.email.clone().filter(|_| trusted && identity.email_verified);
        for attempt in 0..20 {
            let Ok(username) = Username::parse(&username_candidate(&base, attempt)) else { continue };
            let upgrade = GuestUpgrade {
                id: user,
                username,
                email_verified: email.is_some(),
                email: email.clone(),
                password_hash: None,
                identity: Some(record.clone()),
                mails: Vec::new(),
                now,
            };
            match self.store.upgrade_guest(&upgrade).await {
                Ok(Some(_)) => {
                    self.audit(AuditEvent::GuestUpgraded, Some(user), client, Some(format!("by {provider}"))).await;
                    self.audit(AuditEvent::IdentityLinked, Some(user), client, Some(provider.to_owned())).await;
                    return Ok(());
                }
                // Upgraded meanwhile (by a password): an account's link.
                Ok(None) => return self.link(record, client).await,
                Err(Error::Conflict(crate::error::ConflictField::Username)) => {}
                Err(Error::Conflict(crate::error::ConflictField::Email)) => email = None,
                Err(e) => return Err(e),
            }
        }
        Err(Error::internal("no free username for an upgraded guest"))
    }

    /// Links `record` to its account, with a notice to the account's
    /// verified address.
    async fn link(&self, record: IdentityRecord, client: &ClientInfo) -> Result<()> {
        let (user, provider) = (record.user, record.provider.clone());
        let mails = self.identity_notice(user, AuditEvent::IdentityLinked).await?;
        if !self.store.link_identity(&record, &mails).await? {
            return Err(Error::IdentityInUse);
        }
        self.wake_if(!mails.is_empty());
        self.audit(AuditEvent::IdentityLinked, Some(user), client, Some(provider)).await;
        Ok(())
    }

    /// `mode=reauth`: the identity must be the session's account's; the
    /// session proved `fed` just now.
    async fn reauthenticate_with_identity(
        &self,
        identity: &ProviderIdentity,
        user: UserId,
        session: SessionId,
        client: &ClientInfo,
    ) -> Result<()> {
        let known = self.store.identity(&identity.issuer, &identity.subject).await?;
        if known.is_none_or(|k| k.user != user) {
            return Err(Error::IdentityInUse);
        }
        let now = self.clock.now();
        if !self.store.record_authentication(session, now, Amr::of(&[AuthMethod::Fed]), true).await? {
            return Err(Error::Unauthorized(crate::error::UnauthorizedReason::SessionRevoked));
        }
        self.audit(AuditEvent::Reauthenticated, Some(user), client, Some("provider".into())).await;
        Ok(())
    }

    /// `POST /user/identities/link`: links the identity a provider sign-in
    /// held for this account (`link_token` from its cookie), within ten
    /// minutes; the session needs recent authentication.
    ///
    /// # Errors
    /// [`Error::InvalidToken`] for a link token that is unknown, used,
    /// expired or another account's; [`Error::ReauthRequired`];
    /// [`Error::IdentityInUse`].
    pub async fn link_held_identity(
        &self,
        user: UserId,
        session: SessionId,
        link_token: &str,
        client: &ClientInfo,
    ) -> Result<Vec<IdentityRecord>> {
        self.require_recent_authentication(user, Some(session)).await?;
        token_digest(link_token)?;
        let now = self.clock.now();
        // Keyed by token and account: another account's session finds
        // nothing (and spends nothing) with a copy of the cookie.
        let digest = held_digest(link_token, user);
        let held = self.store.take_ceremony(&digest, CeremonyPurpose::IdentityLink, now).await?;
        let Some(held) = held.filter(|c| c.user == Some(user)) else { return Err(Error::InvalidToken) };
        let held: HeldIdentity = serde_json::from_slice(&held.challenge).map_err(Error::internal)?;
        self.link(held.into_record(user, now), client).await?;
        self.store.identities(user).await
    }

    /// The account's identities, and whether it has a password.
    ///
    /// # Errors
    /// [`Error::UserNotFound`]; [`Error::Internal`] if the store fails.
    pub async fn identities(&self, user: UserId) -> Result<(Vec<IdentityRecord>, bool)> {
        let record = self.store.find_user(UserKey::Id(user)).await?.ok_or(Error::UserNotFound)?;
        Ok((self.store.identities(user).await?, record.password_hash.is_some()))
    }

    /// `DELETE /user/identities/{provider}`: removes the account's identity
    /// at `provider` (recent authentication), unless it is the last way to
    /// sign in; a notice goes to the verified address.
    ///
    /// # Errors
    /// [`Error::ReauthRequired`]; [`Error::IdentityNotFound`];
    /// [`Error::LastSignInMethod`].
    pub async fn unlink_identity(
        &self,
        user: UserId,
        session: Option<SessionId>,
        provider: &str,
        client: &ClientInfo,
    ) -> Result<()> {
        self.require_recent_authentication(user, session).await?;
        let mails = self.identity_notice(user, AuditEvent::IdentityUnlinked).await?;
        match self.store.unlink_identity(user, provider, &mails, self.clock.now()).await? {
            Unlinked::Removed => {
                self.wake_if(!mails.is_empty());
                self.audit(AuditEvent::IdentityUnlinked, Some(user), client, Some(provider.to_owned())).await;
                Ok(())
            }
            Unlinked::NotFound => Err(Error::IdentityNotFound),
            Unlinked::LastSignInMethod => Err(Error::LastSignInMethod),
        }
    }

    /// The identity-change notice for the account `user` (see `security_notice`).
    async fn identity_notice(&self, user: UserId, change: AuditEvent) -> Result<Vec<NewMail>> {
        let record = self.store.find_user(UserKey::Id(user)).await?.ok_or(Error::UserNotFound)?;
        Ok(self.security_notice(&record, change))
    }
}

/// An identity held for linking, as stored in its ceremony.
#[derive(serde::Serialize, serde::Deserialize)]
struct HeldIdentity {
    issuer: String,
    subject: String,
    provider: String,
    email: Option<String>,
    email_verified: bool,
}

impl From<&IdentityRecord> for HeldIdentity {
    fn from(i: &IdentityRecord) -> Self {
        Self {
            issuer: i.issuer.clone(),
            subject: i.subject.clone(),
            provider: i.provider.clone(),
            email: i.email.as_ref().map(ToString::to_string),
            email_verified: i.email_verified,
        }
    }
}

impl HeldIdentity {
    fn into_record(self, user: UserId, now: chrono::DateTime<chrono::Utc>) -> IdentityRecord {
        IdentityRecord {
            issuer: self.issuer,
            subject: self.subject,
            provider: self.provider,
            user,
            email: self.email.and_then(|e| crate::domain::Email::parse(&e).ok()),
            email_verified: self.email_verified,
            linked_at: now,
        }
    }
}

/// What an identity held for `user` is stored under.
fn held_digest(link_token: &str, user: UserId) -> [u8; 32] {
    Sha256::digest(format!("{link_token}:{user}").as_bytes()).into()
}

fn identity_record(
    provider: &str,
    identity: &ProviderIdentity,
    user: UserId,
    now: chrono::DateTime<chrono::Utc>,
) -> IdentityRecord {
    IdentityRecord {
        issuer: identity.issuer.clone(),
        subject: identity.subject.clone(),
        provider: provider.to_owned(),
        user,
        email: identity.email.clone(),
        email_verified: identity.email_verified,
        linked_at: now,
    }
}

/// The contract's error code for a failed callback.
fn failure_code(e: &Error) -> &'static str {
    match e {
        Error::Forbidden(ForbiddenReason::AccountDisabled) => "account_disabled",
        Error::Forbidden(ForbiddenReason::EmailNotVerified) => "email_not_verified",
        Error::IdentityInUse => "identity_in_use",
        Error::SecondFactorNeeded => "mfa_required",
        Error::Internal(_) | Error::Overloaded => "server_error",
        _ => "access_denied",
    }
}

/// A username from a provider's preferred name: the allowed characters
/// (`A-Z a-z 0-9 _ . -`; spaces become `_`), cut to 32; `user-<8 random>`
/// when too short.
fn username_base(preferred: Option<&str>) -> String {
    let mapped: String = preferred
        .unwrap_or_default()
        .chars()
        .filter_map(|c| match c {
            'A'..='Z' | 'a'..='z' | '0'..='9' | '_' | '.' | '-' => Some(c),
            c if c.is_whitespace() => Some('_'),
            _ => None,
        })
        .take(32)
        .collect();
    if Username::parse(&mapped).is_ok() { mapped } else { format!("user-{}", hex::encode(rand::random::<[u8; 4]>())) }
}

/// The `attempt`th username to try for `base`: itself, then `-2` … `-10`,
/// then random suffixes.
fn username_candidate(base: &str, attempt: u32) -> String {
    match attempt {
        0 => base.to_owned(),
        n if n < 10 => suffixed(base, &(n + 1).to_string()),
        _ => suffixed(base, &hex::encode(rand::random::<[u8; 3]>())),
    }
}

/// `base` with `-suffix`, cut so the whole fits 32 characters.
fn suffixed(base: &str, suffix: &str) -> String {
    let keep = 32 - suffix.len() - 1;
    format!("{}-{suffix}", base.chars().take(keep).collect::<String>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_come_from_the_preferred_name_or_are_made_up() {
        assert_eq!(username_base(Some("alice")), "alice");
        assert_eq!(username_base(Some("José Smith")), "Jos_Smith");
        assert_eq!(username_base(Some(&"x".repeat(40))).len(), 32);
        for short in [None, Some("ab"), Some("éé")] {
            let made = username_base(short);
            assert!(made.starts_with("user-") && made.len() == 13, "{made}");
        }
        assert_eq!(suffixed(&"y".repeat(32), "2").len(), 32);
        assert_eq!(suffixed("alice", "2"), "alice-2");
    }
}
