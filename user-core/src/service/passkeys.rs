//! Passkeys: adding, naming and removing them, and signing in with one —
//! as the only factor (discoverable, autofill), as the second step after a
//! password, or to step up a session. Every ceremony is a stored row, taken
//! once, bound to its purpose and, where known, to its account, session or
//! sign-in.

use chrono::{DateTime, Utc};
use serde_json::Value;
use uuid::Uuid;

use super::recovery::{new_secret, token_digest};
use super::sessions::SignInProof;
use super::{AuditEvent, ClientInfo, LoginOutcome, UserService};
use crate::auth::{AssertionFailure, RelyingParty, StoredCredential, VerifiedAssertion};
use crate::domain::{Amr, AuthMethod, Password, SessionId, UserId, ValidationError};
use crate::error::{Error, Result, SecondFactorMethod};
use crate::store::{Ceremony, CeremonyPurpose, PasskeyRecord, UserKey, UserRecord};

/// The longest passkey name, in characters.
const MAX_NAME_CHARS: usize = 64;

/// A ceremony begun: the token the client sends back with the
/// authenticator's answer, and the options for `navigator.credentials`.
#[derive(Clone)]
pub struct PasskeyCeremony {
    /// Single use, minutes long; binds the answer to this ceremony.
    pub ceremony: String,
    /// `PublicKeyCredentialCreationOptionsJSON` or
    /// `PublicKeyCredentialRequestOptionsJSON`.
    pub options: Value,
}

impl std::fmt::Debug for PasskeyCeremony {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PasskeyCeremony").field("ceremony", &"[redacted]").finish_non_exhaustive()
    }
}

/// What a passkey sign-in is for.
#[derive(Debug, Clone, Copy)]
pub enum PasskeySignIn<'a> {
    /// Sign in with a passkey alone: no account named, the authenticator
    /// offers its discoverable credentials (autofill included).
    Discoverable,
    /// The second step of a sign-in whose password was right.
    SecondFactor {
        /// The `mfa_token` of that sign-in.
        mfa_token: &'a str,
    },
    /// A step-up of `session`, `user`'s.
    StepUp {
        /// The account.
        user: UserId,
        /// The session stepping up.
        session: SessionId,
    },
}

/// A passkey name as given: 1–64 characters, no control characters.
fn passkey_name(name: Option<&str>) -> Result<String> {
    let Some(name) = name.map(str::trim) else { return Ok("Passkey".to_owned()) };
    let fits = (1..=MAX_NAME_CHARS).contains(&name.chars().count());
    if !fits || name.chars().any(|c| c.is_control() || crate::domain::is_invisible_format(c)) {
        return Err(ValidationError::new("name", "must be 1–64 characters, no control or invisible ones").into());
    }
    Ok(name.to_owned())
}

/// The methods a verified passkey proves.
fn passkey_amr(verified: &VerifiedAssertion) -> Amr {
    let amr = Amr::of(&[AuthMethod::Pop]);
    if verified.user_verified { amr.with(AuthMethod::User) } else { amr }
}

impl UserService {
    fn relying_party(&self) -> Result<&RelyingParty> {
        self.factors.relying_party.as_ref().ok_or(Error::PasskeysNotConfigured)
    }

    /// A new ceremony for `purpose`, stored; its token and challenge.
    async fn begin_ceremony(
        &self,
        purpose: CeremonyPurpose,
        user: Option<UserId>,
        session: Option<SessionId>,
        mfa_digest: Option<[u8; 32]>,
    ) -> Result<(String, Vec<u8>)> {
        let (token, digest) = new_secret();
        let challenge: [u8; 32] = rand::random();
        let now = self.clock.now();
        let ceremony = Ceremony {
            digest,
            purpose,
            challenge: challenge.to_vec(),
            user,
            session,
            mfa_digest,
            created_at: now,
            expires_at: now + self.factors.ceremony_ttl(),
        };
        self.store.insert_ceremony(&ceremony).await?;
        Ok((token, challenge.to_vec()))
    }

    /// Takes the ceremony `token` names for `purpose`, or refuses with `refused`.
    async fn take_ceremony(&self, token: &str, purpose: CeremonyPurpose, refused: fn() -> Error) -> Result<Ceremony> {
        let digest = token_digest(token).map_err(|_| refused())?;
        self.store.take_ceremony(&digest, purpose, self.clock.now()).await?.ok_or_else(refused)
    }

    /// The account's passkeys, oldest first.
    ///
    /// # Errors
    /// [`Error::Internal`] if the store fails.
    pub async fn passkeys(&self, user: UserId) -> Result<Vec<PasskeyRecord>> {
        self.store.passkeys(user).await
    }

    /// Begins adding a passkey from `session` (a recent sign-in, or
    /// `current_password`): options asking for a discoverable credential
    /// with user verification, the account's passkeys excluded.
    ///
    /// # Errors
    /// [`Error::PasskeysNotConfigured`]; as [`UserService::start_totp_enrollment`] for the proof.
    pub async fn start_passkey_registration(
        &self,
        user: UserId,
        session: Option<SessionId>,
        current_password: Option<&Password>,
        client: &ClientInfo,
    ) -> Result<PasskeyCeremony> {
        let rp = self.relying_party()?;
        let record = self.prove_recent(user, session, current_password, client).await?;
        let candidate: [u8; 32] = rand::random();
        let handle = self.store.webauthn_handle(user, &candidate).await?.ok_or(Error::UserNotFound)?;
        let exclude: Vec<Vec<u8>> = self.store.passkeys(user).await?.into_iter().map(|p| p.credential_id).collect();
        let (ceremony, challenge) = self.begin_ceremony(CeremonyPurpose::Register, Some(user), session, None).await?;
        let (name, display) = (record.user.account_label(), record.user.display_name());
        Ok(PasskeyCeremony { ceremony, options: rp.creation_options(&challenge, &handle, name, display, &exclude) })
    }

    /// Adds the passkey the authenticator made for the ceremony `ceremony`,
    /// which `session` started: §7.1's checks, a credential id no account
    /// has, a notice to a verified address. The session has proved the
    /// passkey: its `amr` gains `pop` and `user`.
    ///
    /// # Errors
    /// [`Error::Validation`] (`credential`, `name`, or `ceremony`: unknown,
    /// used, expired, or another session's); [`Error::PasskeysNotConfigured`].
    pub async fn finish_passkey_registration(
        &self,
        user: UserId,
        session: Option<SessionId>,
        ceremony: &str,
        name: Option<&str>,
        credential: &Value,
        client: &ClientInfo,
    ) -> Result<PasskeyRecord> {
        let rp = self.relying_party()?;
        let name = passkey_name(name)?;
        let unknown = || ValidationError::new("ceremony", "unknown, used or expired: start again").into();
        let started = self.take_ceremony(ceremony, CeremonyPurpose::Register, unknown).await?;
        if started.user != Some(user) || started.session != session {
            return Err(unknown());
        }
        let new = rp.verify_registration(credential, &started.challenge)?;
        let record = self.store.find_user(UserKey::Id(user)).await?.ok_or(Error::UserNotFound)?;
        let now = self.clock.now();
        let passkey = PasskeyRecord {
            id: Uuid::now_v7(),
            user_id: user,
            rp_id: rp.id().to_owned(),
            credential_id: new.credential_id,
            public_key: new.public_key,
            sign_count: new.sign_count,
            backup_eligible: new.backup_eligible,
            backed_up: new.backed_up,
            transports: new.transports,
            name,
            created_at: now,
            last_used_at: None,
        };
        let mails = self.security_notice(&record, AuditEvent::PasskeyAdded);
        if !self.store.insert_passkey(&passkey, &mails).await? {
            return Err(ValidationError::new("credential", "this passkey is registered already").into());
        }
        self.wake_if(!mails.is_empty());
        if let Some(session) = session {
            let proved = Amr::of(&[AuthMethod::Pop, AuthMethod::User]);
            self.store.record_authentication(session, now, proved, false).await?;
        }
        self.audit(AuditEvent::PasskeyAdded, Some(user), client, Some(passkey.name.clone())).await;
        Ok(passkey)
    }

    /// Renames one of the account's passkeys.
    ///
    /// # Errors
    /// [`Error::Validation`] on `name`; [`Error::PasskeyNotFound`].
    pub async fn rename_passkey(&self, user: UserId, id: Uuid, name: &str) -> Result<()> {
        let name = passkey_name(Some(name))?;
        if self.store.rename_passkey(user, id, &name).await? { Ok(()) } else { Err(Error::PasskeyNotFound) }
    }

    /// Removes one of the account's passkeys from `session` (a recent
    /// sign-in, or `current_password`), unless nothing else could sign in.
    ///
    /// # Errors
    /// [`Error::PasskeyNotFound`]; [`Error::LastSignInMethod`]; as
    /// [`UserService::start_totp_enrollment`] for the proof.
    pub async fn remove_passkey(
        &self,
        user: UserId,
        session: Option<SessionId>,
        current_password: Option<&Password>,
        id: Uuid,
        client: &ClientInfo,
    ) -> Result<()> {
        let record = self.prove_recent(user, session, current_password, client).await?;
        let passkeys = self.store.passkeys(user).await?;
        if !passkeys.iter().any(|p| p.id == id) {
            return Err(Error::PasskeyNotFound);
        }
        // Every account has a password today; accounts made by a provider
        // or as guests (v1.2's next steps) may not, and keep their last key.
        if !has_password(&record) && passkeys.len() == 1 {
            return Err(Error::LastSignInMethod);
        }
        let mails = self.security_notice(&record, AuditEvent::PasskeyRemoved);
        if !self.store.remove_passkey(user, id, &mails, self.clock.now()).await? {
            return Err(Error::PasskeyNotFound);
        }
        self.wake_if(!mails.is_empty());
        self.audit(AuditEvent::PasskeyRemoved, Some(user), client, None).await;
        Ok(())
    }

    /// Begins a passkey sign-in for `purpose`: options without allowed
    /// credentials, user verification required (discouraged only beside a
    /// password, for the second step).
    ///
    /// # Errors
    /// [`Error::PasskeysNotConfigured`]; [`Error::InvalidCode`] for an
    /// `mfa_token` that is unknown, used or expired.
    pub async fn start_passkey_sign_in(&self, purpose: PasskeySignIn<'_>) -> Result<PasskeyCeremony> {
        let rp = self.relying_party()?;
        let (ceremony, challenge, require_uv) = match purpose {
            PasskeySignIn::Discoverable => {
                let (token, challenge) = self.begin_ceremony(CeremonyPurpose::Login, None, None, None).await?;
                (token, challenge, true)
            }
            PasskeySignIn::SecondFactor { mfa_token } => {
                let digest = token_digest(mfa_token).map_err(|_| Error::InvalidCode)?;
                let max_wrong = self.factors.max_wrong_codes();
                let now = self.clock.now();
                let signing_in = self.store.mfa_challenge(&digest, max_wrong, now).await?.ok_or(Error::InvalidCode)?;
                let user = Some(signing_in.user);
                let (token, challenge) = self.begin_ceremony(CeremonyPurpose::Mfa, user, None, Some(digest)).await?;
                (token, challenge, false)
            }
            PasskeySignIn::StepUp { user, session } => {
                self.active_session(session, user).await?;
                let (token, challenge) =
                    self.begin_ceremony(CeremonyPurpose::Reauth, Some(user), Some(session), None).await?;
                (token, challenge, true)
            }
        };
        Ok(PasskeyCeremony { ceremony, options: rp.request_options(&challenge, require_uv) })
    }

    /// Signs in with a discoverable passkey: the ceremony of
    /// [`PasskeySignIn::Discoverable`] and the authenticator's answer. A
    /// verified passkey is two factors on its own (`amr` `pop`, `user`,
    /// `mfa`); then the account's state is checked as for every sign-in.
    /// Failed answers never count toward the password lockout, and the
    /// lockout never holds a valid one back.
    ///
    /// # Errors
    /// [`Error::PasskeyRefused`] for any failed check (audited with the
    /// reason; a counter that went back as `passkey.counter_regression`);
    /// [`Error::Forbidden`] (disabled, unverified address).
    #[tracing::instrument(skip_all)]
    pub async fn finish_passkey_sign_in(
        &self,
        ceremony: &str,
        credential: &Value,
        client: &ClientInfo,
    ) -> Result<LoginOutcome> {
        let started = self.take_ceremony(ceremony, CeremonyPurpose::Login, || Error::PasskeyRefused).await?;
        let (passkey, verified) = self.check_passkey(&started, credential, true, client).await?;
        let record = self.store.find_user(UserKey::Id(passkey.user_id)).await?.ok_or(Error::PasskeyRefused)?;
        self.refuse_closed_account(&record, client).await?;
        let amr = passkey_amr(&verified);
        let (login, tokens) = self.new_session(&record, None, client, SignInProof::credential(amr))?;
        if !self.store.open_session(&login).await? {
            return Err(Error::PasskeyRefused);
        }
        self.audit(AuditEvent::PasskeySignIn, Some(record.user.id), client, Some(passkey.name.clone())).await;
        self.audit(AuditEvent::LoginSucceeded, Some(record.user.id), client, Some("passkey".into())).await;
        let device_cookie = self.remember_device(record.user.id, client).await?;
        Ok(LoginOutcome { user: record.user, tokens, device_cookie })
    }

    /// Completes a sign-in whose password was right with one of the
    /// account's passkeys: the ceremony of [`PasskeySignIn::SecondFactor`]
    /// (bound to that sign-in; `mfa_token`, when given too, must be that
    /// sign-in's) and the authenticator's answer. A failed answer spends
    /// one of the sign-in's guesses.
    ///
    /// # Errors
    /// [`Error::PasskeyRefused`]; [`Error::InvalidCode`] for a sign-in that
    /// is unknown, used, expired or spent; [`Error::Forbidden`].
    #[tracing::instrument(skip_all)]
    pub async fn complete_sign_in_with_passkey(
        &self,
        mfa_token: Option<&str>,
        ceremony: &str,
        credential: &Value,
        client: &ClientInfo,
    ) -> Result<LoginOutcome> {
        let started = self.take_ceremony(ceremony, CeremonyPurpose::Mfa, || Error::PasskeyRefused).await?;
        let digest = started.mfa_digest.ok_or(Error::PasskeyRefused)?;
        // The ceremony names its sign-in; a token sent beside it must be that one.
        if mfa_token.is_some_and(|token| token_digest(token).ok() != Some(digest)) {
            return Err(Error::InvalidCode);
        }
        let max_wrong = self.factors.max_wrong_codes();
        let now = self.clock.now();
        let challenge = self.store.mfa_challenge(&digest, max_wrong, now).await?.ok_or(Error::InvalidCode)?;
        if !self.store.reserve_mfa_guess(&digest, max_wrong, now).await? {
            return Err(Error::InvalidCode);
        }
        let (passkey, verified) = match self.check_passkey(&started, credential, false, client).await {
            Ok(checked) => checked,
            Err(e) => {
                self.audit(AuditEvent::SecondFactorFailed, Some(challenge.user), client, Some("passkey".into())).await;
                return Err(e);
            }
        };
        let record = self.store.find_user(UserKey::Id(challenge.user)).await?.ok_or(Error::InvalidCode)?;
        self.refuse_closed_account(&record, client).await?;
        let amr = challenge.first_factor.union(passkey_amr(&verified));
        let (mut login, tokens) = self.new_session(&record, None, client, SignInProof::credential(amr))?;
        login.credential_version = challenge.credential_version;
        if !self.store.complete_mfa_challenge(&digest, max_wrong, &login).await? {
            return Err(Error::InvalidCode);
        }
        let id = record.user.id;
        self.audit(AuditEvent::PasskeySignIn, Some(id), client, Some(passkey.name.clone())).await;
        let method = SecondFactorMethod::Passkey.as_str().to_owned();
        self.audit(AuditEvent::SecondFactorSucceeded, Some(id), client, Some(method)).await;
        self.audit(AuditEvent::LoginSucceeded, Some(id), client, None).await;
        let device_cookie = self.remember_device(id, client).await?;
        Ok(LoginOutcome { user: record.user, tokens, device_cookie })
    }

    /// Steps `session` up with one of the account's passkeys (the ceremony
    /// of [`PasskeySignIn::StepUp`]): it counts as recently authenticated,
    /// with `pop` and `user` in its `amr`. The time until which it does.
    ///
    /// # Errors
    /// [`Error::PasskeyRefused`]; [`Error::Unauthorized`] if the session ended.
    pub async fn reauthenticate_with_passkey(
        &self,
        user: UserId,
        session: SessionId,
        ceremony: &str,
        credential: &Value,
        client: &ClientInfo,
    ) -> Result<DateTime<Utc>> {
        let started = self.take_ceremony(ceremony, CeremonyPurpose::Reauth, || Error::PasskeyRefused).await?;
        if started.user != Some(user) || started.session != Some(session) {
            return Err(Error::PasskeyRefused);
        }
        let (_, verified) = match self.check_passkey(&started, credential, true, client).await {
            Ok(checked) => checked,
            Err(e) => {
                self.audit(AuditEvent::ReauthFailed, Some(user), client, Some("passkey".into())).await;
                return Err(e);
            }
        };
        let now = self.clock.now();
        if !self.store.record_authentication(session, now, passkey_amr(&verified), true).await? {
            return Err(Error::Unauthorized(crate::error::UnauthorizedReason::SessionRevoked));
        }
        self.audit(AuditEvent::Reauthenticated, Some(user), client, Some("passkey".into())).await;
        Ok(now + self.reauth_window.unwrap_or_default())
    }

    /// §7.2 for `credential` against ceremony `started`: the passkey it was
    /// made with (the ceremony's account's, when it names one; the one its
    /// user handle names), verified, its counter moved by compare-and-set.
    /// Every refusal is audited with its reason.
    async fn check_passkey(
        &self,
        started: &Ceremony,
        credential: &Value,
        require_uv: bool,
        client: &ClientInfo,
    ) -> Result<(PasskeyRecord, VerifiedAssertion)> {
        let rp = self.relying_party()?;
        let refuse = |user: Option<UserId>, why: String| async move {
            self.audit(AuditEvent::PasskeySignInFailed, user, client, Some(why)).await;
            Err(Error::PasskeyRefused)
        };
        let assertion = match rp.parse_assertion(credential) {
            Ok(assertion) => assertion,
            Err(why) => return refuse(started.user, why.to_string()).await,
        };
        let Some((passkey, handle)) = self.store.passkey_by_credential(&assertion.credential_id).await? else {
            return refuse(started.user, "unknown credential".into()).await;
        };
        let owner = Some(passkey.user_id);
        if started.user.is_some_and(|user| user != passkey.user_id) {
            return refuse(started.user, "another account's passkey".into()).await;
        }
        // A discoverable credential names its account by the handle; it must
        // be the one the credential was registered to.
        let handle_matches = assertion.user_handle.as_deref().map_or(started.user.is_some(), |h| h == handle);
        if !handle_matches || passkey.rp_id != rp.id() {
            return refuse(owner, "user handle or RP id differs".into()).await;
        }
        let stored = StoredCredential {
            public_key: &passkey.public_key,
            sign_count: passkey.sign_count,
            backup_eligible: passkey.backup_eligible,
        };
        let verified = match rp.verify_assertion(&assertion, &started.challenge, stored, require_uv) {
            Ok(verified) => verified,
            Err(AssertionFailure::CounterRegression) => {
                let detail =
                    format!("{}: the signature counter did not grow past {}", passkey.name, passkey.sign_count);
                self.audit(AuditEvent::PasskeyCounterRegression, owner, client, Some(detail)).await;
                return Err(Error::PasskeyRefused);
            }
            Err(AssertionFailure::Invalid(why)) => return refuse(owner, why.to_owned()).await,
        };
        let now = self.clock.now();
        let moved =
            self.store.use_passkey(passkey.id, passkey.sign_count, verified.sign_count, verified.backed_up, now);
        if !moved.await? {
            // Another sign-in with this counter value won: one of the two is a copy.
            return refuse(owner, "counter raced".into()).await;
        }
        Ok((passkey, verified))
    }
}

/// Whether the account can sign in with a password.
fn has_password(record: &UserRecord) -> bool {
    record.password_hash.is_some()
}
