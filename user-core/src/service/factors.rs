//! Second factors: TOTP enrollment and removal, recovery codes, and the
//! second step of a sign-in ([`UserService::complete_sign_in`]).

use std::sync::Arc;

use chrono::{DateTime, Utc};
use zeroize::Zeroizing;

use super::recovery::{new_secret, token_digest};
use super::sessions::SignInProof;
use super::{AuditEvent, ClientInfo, LoginOutcome, UserService};
use crate::auth::{DataKeys, RecoveryCode, RelyingParty, TotpCode, TotpSecret};
use crate::domain::{Amr, AuthMethod, Password, Role, SessionId, UserId, Username, ValidationError};
use crate::error::{Error, Result, SecondFactorChallenge, SecondFactorMethod};
use crate::service::settings::MfaPolicy;
use crate::store::{MailPayload, NewMail, NewMfaChallenge, Store, TaskKind, UserKey, UserRecord};

/// The secret-store names of the keys the service makes itself.
const GENERATED_DATA_KEY: &str = "data_key.generated";
const RECOVERY_CODE_KEY: &str = "recovery_code.hmac";

/// What second factors need: the keys and the policy.
pub(super) struct Factors {
    data_keys: Arc<DataKeys>,
    /// Whether `data_keys` is the key kept in the database (no `USER_DATA_KEY`).
    generated_key: bool,
    recovery_key: Zeroizing<Vec<u8>>,
    policy: MfaPolicy,
    /// Passkeys' relying party; `None` when they are off.
    pub(super) relying_party: Option<RelyingParty>,
}

impl std::fmt::Debug for Factors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Factors")
            .field("data_keys", &self.data_keys)
            .field("generated_key", &self.generated_key)
            .field("policy", &self.policy.totp_issuer)
            .finish_non_exhaustive()
    }
}

impl Factors {
    /// The configured data keys (or the one kept in the store) and the
    /// recovery codes' HMAC key (made once, shared by every replica).
    pub(super) async fn load(store: &Arc<dyn Store>, policy: MfaPolicy, now: DateTime<Utc>) -> Result<Self> {
        let (data_keys, generated_key) = match &policy.data_keys {
            Some(keys) => (keys.clone(), false),
            None => {
                let key = store.get_or_insert_secret(GENERATED_DATA_KEY, &crate::auth::generate_secret(), now).await?;
                (Arc::new(DataKeys::new(&[Zeroizing::new(key)])?), true)
            }
        };
        let recovery_key = store.get_or_insert_secret(RECOVERY_CODE_KEY, &crate::auth::generate_secret(), now).await?;
        let relying_party =
            policy.passkeys.as_ref().map(|p| RelyingParty::new(&p.rp_id, &p.rp_name, &p.origins)).transpose()?;
        // A passkey works only for the RP id it was made for: another one
        // (or none) would lock out everyone who signs in with one.
        let configured = relying_party.as_ref().map(RelyingParty::id);
        if let Some(other) = store.passkey_rp_ids().await?.into_iter().find(|id| Some(id.as_str()) != configured) {
            let rule = format!(
                "is {}, but passkeys exist for {other}: they would stop working; set it back to {other}",
                configured.unwrap_or("unset")
            );
            return Err(ValidationError::new("USER_WEBAUTHN_RP_ID", rule).into());
        }
        Ok(Self { data_keys, generated_key, recovery_key: Zeroizing::new(recovery_key), policy, relying_party })
    }

    /// How long a WebAuthn ceremony may take.
    pub(super) fn ceremony_ttl(&self) -> chrono::TimeDelta {
        chrono::TimeDelta::from_std(self.policy.ceremony_ttl).unwrap_or(chrono::TimeDelta::minutes(5))
    }

    /// Wrong answers one two-step sign-in allows.
    pub(super) fn max_wrong_codes(&self) -> u32 {
        self.policy.max_wrong_codes
    }

    /// Whether the policy makes an account with `role` sign in with a
    /// second factor.
    pub(super) fn required(&self, role: Role) -> bool {
        self.policy.required.covers(role)
    }
}

/// What seals an account's TOTP secret: the account, so a sealed secret
/// copied to another row does not open.
fn totp_context(user: UserId) -> String {
    format!("totp:{user}")
}

/// A TOTP enrollment waiting for its first code: what the person types or
/// scans into an authenticator app. Shown once.
#[derive(Clone, PartialEq, Eq)]
pub struct TotpEnrollment {
    /// The secret in RFC 4648 base32, for typing in.
    pub secret: String,
    /// The `otpauth://totp/…` URI, for a QR code.
    pub otpauth_uri: String,
}

impl std::fmt::Debug for TotpEnrollment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TotpEnrollment([redacted])")
    }
}

/// What a step-up ([`UserService::reauthenticate`]) proves.
#[derive(Debug, Clone, Copy)]
pub enum StepUp<'a> {
    /// The account's password (for an account without a second factor).
    Password(&'a Password),
    /// A TOTP code or a recovery code.
    Code(&'a str),
}

/// The second factors an account has, for its security overview.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SecondFactors {
    /// A confirmed TOTP.
    pub totp: bool,
    /// Unused recovery codes.
    pub recovery_codes_left: u32,
}

impl UserService {
    /// Whether `USER_DATA_KEY` was left unset, so TOTP secrets are sealed
    /// with a key kept in the database (the server warns at start).
    pub fn data_key_generated(&self) -> bool {
        self.factors.generated_key
    }

    /// The account's second factors.
    ///
    /// # Errors
    /// [`Error::Internal`] if the store fails.
    pub async fn second_factors(&self, user: UserId) -> Result<SecondFactors> {
        let totp = self.store.totp(user).await?.is_some_and(|t| t.confirmed_at.is_some());
        let recovery_codes_left = if totp { self.store.recovery_codes_left(user).await? } else { 0 };
        Ok(SecondFactors { totp, recovery_codes_left })
    }

    /// Begins turning TOTP on from `session`: a new secret, shown once,
    /// that [`UserService::confirm_totp`] activates with a first code within
    /// [`MfaPolicy::enrollment_ttl`]. Needs a recent sign-in or
    /// `current_password`; a pending enrollment is replaced.
    ///
    /// # Errors
    /// [`Error::FactorActive`] if TOTP is on; [`Error::ReauthRequired`],
    /// [`Error::Unauthorized`] (wrong `current_password`); [`Error::UserNotFound`].
    pub async fn start_totp_enrollment(
        &self,
        user: UserId,
        session: Option<SessionId>,
        current_password: Option<&Password>,
        client: &ClientInfo,
    ) -> Result<TotpEnrollment> {
        let record = self.prove_recent(user, session, current_password, client).await?;
        let secret = TotpSecret::generate();
        let sealed = self.factors.data_keys.seal(&totp_context(user), secret.as_bytes())?;
        if !self.store.start_totp(user, &sealed, self.clock.now()).await? {
            return Err(Error::FactorActive);
        }
        Ok(TotpEnrollment {
            secret: secret.to_base32(),
            otpauth_uri: secret.otpauth_uri(&self.factors.policy.totp_issuer, record.user.account_label()),
        })
    }

    /// Turns TOTP on with a first `code` from the app: returns the ten
    /// recovery codes, shown once (any older ones stop working), and mails
    /// a notice to a verified address. `session`, the one confirming, has
    /// proved the factor: its `amr` gains `otp`, which lifts a restriction
    /// of [`MfaPolicy::required`](crate::service::MfaPolicy::required).
    ///
    /// # Errors
    /// [`Error::InvalidCode`] for a wrong code, or no enrollment pending (or
    /// it expired); [`Error::FactorActive`] if TOTP is on already.
    pub async fn confirm_totp(
        &self,
        user: UserId,
        session: Option<SessionId>,
        code: &str,
        client: &ClientInfo,
    ) -> Result<Vec<RecoveryCode>> {
        let now = self.clock.now();
        let factor = self.store.totp(user).await?.ok_or(Error::InvalidCode)?;
        if factor.confirmed_at.is_some() {
            return Err(Error::FactorActive);
        }
        let code = TotpCode::parse(code).ok_or(Error::InvalidCode)?;
        let (secret, _) = self.factors.data_keys.open(&totp_context(user), &factor.sealed_secret)?;
        let step = TotpSecret::from_bytes(secret.to_vec()).matching_step(&code, now).ok_or(Error::InvalidCode)?;
        let record = self.store.find_user(UserKey::Id(user)).await?.ok_or(Error::UserNotFound)?;
        let codes = RecoveryCode::generate_set();
        let digests = self.recovery_digests(user, &codes);
        let pending_after = now - self.factors.policy.enrollment_ttl;
        let mails = self.security_notice(&record, AuditEvent::TotpEnabled);
        if !self.store.confirm_totp(user, factor.started_at, pending_after, step, &digests, &mails, now).await? {
            return Err(Error::InvalidCode);
        }
        self.wake_if(!mails.is_empty());
        if let Some(session) = session {
            self.store.record_authentication(session, now, Amr::of(&[AuthMethod::Otp]), false).await?;
        }
        self.audit(AuditEvent::TotpEnabled, Some(user), client, None).await;
        Ok(codes)
    }

    /// Whether the account has a second factor: a confirmed TOTP or a passkey.
    pub(super) async fn has_second_factor(&self, user: UserId) -> Result<bool> {
        Ok(self.store.totp(user).await?.is_some_and(|t| t.confirmed_at.is_some())
            || !self.store.passkeys(user).await?.is_empty())
    }

    /// The active admins the policy makes use a second factor who have
    /// none yet (at most 100, by name): the server names them at start.
    ///
    /// # Errors
    /// [`Error::Internal`] if the store fails.
    pub async fn admins_without_second_factor(&self) -> Result<Vec<Username>> {
        if !self.factors.required(Role::Admin) {
            return Ok(Vec::new());
        }
        self.store.admins_without_second_factor(100).await
    }

    /// Proves a credential again from `session` (a step-up), so that it
    /// counts as recently authenticated until the time returned. An
    /// account with a second factor steps up with it (a code; its session
    /// proved the password at sign-in); one without, with its password.
    /// Every attempt counts toward the account's lockout like a login and
    /// waits while it is locked; a success clears the count.
    ///
    /// # Errors
    /// [`Error::SecondFactorNeeded`] for a password where a second factor
    /// is needed; [`Error::InvalidCredentials`] (wrong password),
    /// [`Error::InvalidCode`] (wrong or used code); [`Error::Throttled`];
    /// [`Error::Unauthorized`] if the session ended.
    #[tracing::instrument(skip_all)]
    pub async fn reauthenticate(
        &self,
        user: UserId,
        session: SessionId,
        proof: StepUp<'_>,
        client: &ClientInfo,
    ) -> Result<DateTime<Utc>> {
        let record = self.store.find_user(UserKey::Id(user)).await?.ok_or(Error::UserNotFound)?;
        let has_factor = self.has_second_factor(user).await?;
        let now = self.clock.now();
        let proved = match proof {
            StepUp::Password(_) if has_factor => return Err(Error::SecondFactorNeeded),
            StepUp::Password(password) => {
                match self.check_password(&record, password, client, "wrong password at a step-up").await {
                    Err(Error::InvalidCredentials) => {
                        self.audit(AuditEvent::ReauthFailed, Some(user), client, Some("password".into())).await;
                        return Err(Error::InvalidCredentials);
                    }
                    other => other?,
                };
                Amr::PASSWORD
            }
            StepUp::Code(code) => {
                self.reserve_login_attempt(&record, client).await?;
                match self.check_second_factor(&record, code, now).await? {
                    Some(SecondFactorMethod::RecoveryCode) => {
                        self.audit(AuditEvent::RecoveryCodeUsed, Some(user), client, None).await;
                    }
                    Some(_) => {}
                    None => {
                        self.audit(AuditEvent::ReauthFailed, Some(user), client, Some("code".into())).await;
                        return Err(Error::InvalidCode);
                    }
                }
                Amr::of(&[AuthMethod::Otp])
            }
        };
        self.store.reset_login_failures(user).await?;
        if !self.store.record_authentication(session, now, proved, true).await? {
            return Err(Error::Unauthorized(crate::error::UnauthorizedReason::SessionRevoked));
        }
        self.audit(AuditEvent::Reauthenticated, Some(user), client, None).await;
        Ok(now + self.reauth_window.unwrap_or_default())
    }

    /// Turns TOTP off (and voids the recovery codes) from `session`, which
    /// must have signed in recently, or with `current_password`.
    ///
    /// # Errors
    /// [`Error::NoSecondFactor`] if there is no TOTP; as
    /// [`UserService::start_totp_enrollment`] for the proof.
    pub async fn disable_totp(
        &self,
        user: UserId,
        session: Option<SessionId>,
        current_password: Option<&Password>,
        client: &ClientInfo,
    ) -> Result<()> {
        let record = self.prove_recent(user, session, current_password, client).await?;
        let mails = self.security_notice(&record, AuditEvent::TotpDisabled);
        if !self.store.remove_totp(user, &mails, self.clock.now()).await? {
            return Err(Error::NoSecondFactor);
        }
        self.wake_if(!mails.is_empty());
        self.audit(AuditEvent::TotpDisabled, Some(user), client, None).await;
        Ok(())
    }

    /// Ten new recovery codes in place of the old ones (used or not), shown
    /// once; needs a second factor, and a recent sign-in or `current_password`.
    ///
    /// # Errors
    /// [`Error::NoSecondFactor`]; as [`UserService::start_totp_enrollment`].
    pub async fn new_recovery_codes(
        &self,
        user: UserId,
        session: Option<SessionId>,
        current_password: Option<&Password>,
        client: &ClientInfo,
    ) -> Result<Vec<RecoveryCode>> {
        let record = self.prove_recent(user, session, current_password, client).await?;
        if !self.second_factors(user).await?.totp {
            return Err(Error::NoSecondFactor);
        }
        let codes = RecoveryCode::generate_set();
        let mails = self.security_notice(&record, AuditEvent::RecoveryCodesIssued);
        let digests = self.recovery_digests(user, &codes);
        if !self.store.replace_recovery_codes(user, &digests, &mails, self.clock.now()).await? {
            return Err(Error::UserNotFound);
        }
        self.wake_if(!mails.is_empty());
        self.audit(AuditEvent::RecoveryCodesIssued, Some(user), client, None).await;
        Ok(codes)
    }

    /// An admin's (`client.actor`) or an operator's reset of an account's
    /// second factors, for someone who lost the authenticator and the
    /// recovery codes: TOTP, the codes and the passkeys go, every session ends, the owner
    /// is told (verified address), audited `mfa.reset`. An admin acting
    /// from `actor_session` must have signed in recently; nobody resets
    /// their own.
    ///
    /// # Errors
    /// [`Error::OwnSecondFactors`]; [`Error::ReauthRequired`] for the
    /// acting admin; [`Error::NoSecondFactor`]; [`Error::UserNotFound`].
    pub async fn reset_second_factors(
        &self,
        id: UserId,
        actor_session: Option<SessionId>,
        client: &ClientInfo,
    ) -> Result<()> {
        if let Some(actor) = client.actor {
            if actor == id {
                return Err(Error::OwnSecondFactors);
            }
            self.require_recent_authentication(actor, actor_session).await?;
        }
        let record = self.store.find_user(UserKey::Id(id)).await?.ok_or(Error::UserNotFound)?;
        let now = self.clock.now();
        let mails = self.security_notice(&record, AuditEvent::SecondFactorsReset);
        if !self.store.remove_second_factors(id, &mails, now).await? {
            return Err(Error::NoSecondFactor);
        }
        self.wake_if(!mails.is_empty());
        let ended = self.store.revoke_user_sessions(id, None, now).await?;
        self.audit(AuditEvent::SecondFactorsReset, Some(id), client, Some(format!("{ended} session(s) ended"))).await;
        Ok(())
    }

    /// After a right first step (`first`: the password, or a provider): the
    /// challenge to complete the sign-in with, when the account has a
    /// second factor.
    pub(super) async fn second_factor_challenge(
        &self,
        record: &UserRecord,
        first: Amr,
    ) -> Result<Option<SecondFactorChallenge>> {
        let factors = self.second_factors(record.user.id).await?;
        let passkeys = !self.store.passkeys(record.user.id).await?.is_empty();
        if !factors.totp && !passkeys {
            return Ok(None);
        }
        let mut methods = Vec::new();
        if factors.totp {
            methods.push(SecondFactorMethod::Totp);
        }
        if factors.recovery_codes_left > 0 {
            methods.push(SecondFactorMethod::RecoveryCode);
        }
        if passkeys {
            methods.push(SecondFactorMethod::Passkey);
        }
        let now = self.clock.now();
        let expires_at = now + self.factors.policy.challenge_ttl;
        let (mfa_token, digest) = new_secret();
        let challenge = NewMfaChallenge {
            digest,
            user: record.user.id,
            credential_version: record.credential_version,
            first_factor: first,
            created_at: now,
            expires_at,
        };
        self.store.insert_mfa_challenge(&challenge).await?;
        Ok(Some(SecondFactorChallenge { mfa_token, methods, expires_at }))
    }

    /// Completes a sign-in that [`UserService::login`] answered with
    /// [`Error::SecondFactorRequired`]: `code` is a TOTP code or a recovery
    /// code. A sign-in allows [`MfaPolicy::max_wrong_codes`] guesses, even
    /// sent at once, and its token works once; each wrong code counts
    /// toward the account's lockout like a wrong password, and a right
    /// password never clears what they counted (only a completed sign-in
    /// does), so guessing codes behind a known password waits like
    /// guessing passwords.
    ///
    /// # Errors
    /// [`Error::InvalidCode`] for a wrong or used code and for a token that
    /// is unknown, used, expired or spent; [`Error::Forbidden`] (disabled,
    /// unverified address) once the code is right.
    #[tracing::instrument(skip_all)]
    pub async fn complete_sign_in(&self, mfa_token: &str, code: &str, client: &ClientInfo) -> Result<LoginOutcome> {
        let digest = token_digest(mfa_token).map_err(|_| Error::InvalidCode)?;
        let max_wrong = self.factors.policy.max_wrong_codes;
        let now = self.clock.now();
        let challenge = self.store.mfa_challenge(&digest, max_wrong, now).await?.ok_or(Error::InvalidCode)?;
        // One of the sign-in's guesses is taken before the code is looked
        // at: a hundred requests at once check no more codes than the limit.
        if !self.store.reserve_mfa_guess(&digest, max_wrong, now).await? {
            return Err(Error::InvalidCode);
        }
        let id = challenge.user;
        let record = self.store.find_user(UserKey::Id(id)).await?.ok_or(Error::InvalidCode)?;
        let Some(method) = self.check_second_factor(&record, code, now).await? else {
            // Counted like a wrong password (the lockout gates the password
            // step, so a new sign-in to guess on waits like a password guess).
            match self.reserve_login_attempt(&record, client).await {
                Ok(_) | Err(Error::Throttled { .. }) => {}
                Err(e) => return Err(e),
            }
            self.audit(AuditEvent::SecondFactorFailed, Some(id), client, None).await;
            return Err(Error::InvalidCode);
        };
        if method == SecondFactorMethod::RecoveryCode {
            self.audit(AuditEvent::RecoveryCodeUsed, Some(id), client, None).await;
        }
        self.refuse_closed_account(&record, client).await?;
        let amr = challenge.first_factor.with(AuthMethod::Otp);
        let (mut login, tokens) = self.new_session(&record, None, client, SignInProof::credential(amr))?;
        login.credential_version = challenge.credential_version;
        if !self.store.complete_mfa_challenge(&digest, max_wrong, &login).await? {
            return Err(Error::InvalidCode);
        }
        self.audit(AuditEvent::SecondFactorSucceeded, Some(id), client, Some(method.as_str().to_owned())).await;
        self.audit(AuditEvent::LoginSucceeded, Some(id), client, None).await;
        let device_cookie = self.remember_device(id, client).await?;
        Ok(LoginOutcome { user: record.user, tokens, device_cookie })
    }

    /// Which factor `code` proves for the account, if any: a TOTP code of a
    /// time step later than the last one accepted, or an unused recovery code.
    async fn check_second_factor(
        &self,
        record: &UserRecord,
        code: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<SecondFactorMethod>> {
        let id = record.user.id;
        if let Some(code) = TotpCode::parse(code) {
            let Some(factor) = self.store.totp(id).await?.filter(|t| t.confirmed_at.is_some()) else {
                return Ok(None);
            };
            let keys = &self.factors.data_keys;
            let (secret, stale) = keys.open(&totp_context(id), &factor.sealed_secret)?;
            let Some(step) = TotpSecret::from_bytes(secret.to_vec()).matching_step(&code, now) else {
                return Ok(None);
            };
            // Sealed under a key since rotated out of first place: seal anew.
            let resealed = if stale { Some(keys.seal(&totp_context(id), &secret)?) } else { None };
            let accepted = self.store.accept_totp_step(id, step, resealed.as_deref()).await?;
            return Ok(accepted.then_some(SecondFactorMethod::Totp));
        }
        if let Some(code) = RecoveryCode::parse(code) {
            let digest = code.digest(&self.factors.recovery_key, id);
            let mails = self.security_notice(record, AuditEvent::RecoveryCodeUsed);
            let used = self.store.use_recovery_code(id, &digest, &mails, now).await?;
            self.wake_if(used && !mails.is_empty());
            return Ok(used.then_some(SecondFactorMethod::RecoveryCode));
        }
        Ok(None)
    }

    fn recovery_digests(&self, user: UserId, codes: &[RecoveryCode]) -> Vec<[u8; 32]> {
        codes.iter().map(|c| c.digest(&self.factors.recovery_key, user)).collect()
    }

    /// The `email.security_changed` mail for `change`, when mail is on and
    /// the address is verified (a notice never goes to an address nobody proved).
    pub(super) fn security_notice(&self, record: &UserRecord, change: AuditEvent) -> Vec<NewMail> {
        if !self.mail.enabled || !record.user.email_verified {
            return Vec::new();
        }
        let payload = MailPayload { to: None, token: None, change: Some(change.as_str().to_owned()) };
        vec![NewMail { kind: TaskKind::EmailSecurityChanged, payload, token: None }]
    }

    pub(super) fn wake_if(&self, wrote_tasks: bool) {
        if wrote_tasks {
            self.task_waker.wake();
        }
    }
}
