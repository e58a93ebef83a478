//! The audit trail: security events, written to the log and the store.

use super::{ClientInfo, UserService};
use crate::domain::UserId;
use crate::error::Result;
use crate::page::{self, Page, PageRequest};
use crate::store::{AuditFilter, AuditRecord};

/// Security events written to the audit trail (tracing target `audit`, and
/// the store's `audit_events`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum AuditEvent {
    /// An account was created.
    Registered,
    /// A login succeeded.
    LoginSucceeded,
    /// A login failed (unknown user, wrong password, disabled account).
    LoginFailed,
    /// A login was refused by account protection.
    LoginThrottled,
    /// A rotated refresh token was presented again; the session was revoked.
    RefreshReuseDetected,
    /// A session ended by logout.
    LoggedOut,
    /// The user signed one of their sessions out, or every other one.
    SessionRevoked,
    /// A password was changed.
    PasswordChanged,
    /// An email address was changed.
    EmailChanged,
    /// An operator changed a role.
    RoleChanged,
    /// An operator disabled an account.
    AccountDisabled,
    /// An operator enabled an account.
    AccountEnabled,
    /// An account was deleted.
    AccountDeleted,
    /// An operator ended every session of an account.
    SessionsRevoked,
    /// An operator marked an address verified or unverified.
    EmailVerificationSet,
    /// An operator put a dead task back in the queue.
    TaskRetried,
    /// The user followed a verification link.
    EmailVerified,
    /// The owner undid an address change with the link sent to the old address.
    EmailChangeReverted,
    /// A password-reset mail was sent to the account.
    PasswordResetRequested,
    /// The password was set by a reset link; every session ended.
    PasswordReset,
    /// The user approved a device's sign-in.
    DeviceApproved,
    /// The user declined a device's sign-in.
    DeviceDenied,
    /// A user code that names no pending device sign-in was typed.
    DeviceCodeWrong,
    /// TOTP confirmed: two-factor authentication is on.
    TotpEnabled,
    /// TOTP removed (with the recovery codes).
    TotpDisabled,
    /// A new set of recovery codes replaced the old one.
    RecoveryCodesIssued,
    /// A recovery code completed a sign-in.
    RecoveryCodeUsed,
    /// A second factor completed a sign-in.
    SecondFactorSucceeded,
    /// A wrong second-factor code.
    SecondFactorFailed,
    /// An admin or operator removed an account's second factors.
    SecondFactorsReset,
    /// A session proved a credential again (`POST /user/reauth`).
    Reauthenticated,
    /// A wrong password or code at a step-up.
    ReauthFailed,
    /// A passkey was added.
    PasskeyAdded,
    /// A passkey was removed.
    PasskeyRemoved,
    /// A passkey signed in (or completed a sign-in, or stepped up).
    PasskeySignIn,
    /// A passkey assertion was refused.
    PasskeySignInFailed,
    /// A passkey's signature counter went back: a cloned authenticator.
    PasskeyCounterRegression,
    /// A guest account was created.
    GuestCreated,
    /// A guest became an account (password or provider).
    GuestUpgraded,
    /// A guest's favorites moved to the account that signed in; the guest is gone.
    GuestMerged,
    /// An identity at another provider was linked.
    IdentityLinked,
    /// An identity at another provider was removed.
    IdentityUnlinked,
    /// A sign-in with another provider.
    ProviderSignIn,
    /// A provider's verified owner of an address took over the account
    /// registered with it unverified: its credentials were removed.
    PreTakeoverCleared,
}

impl AuditEvent {
    /// The stored name, e.g. `login.failure`.
    pub fn as_str(&self) -> &'static str {
        match self {
            AuditEvent::Registered => "register",
            AuditEvent::LoginSucceeded => "login.success",
            AuditEvent::LoginFailed => "login.failure",
            AuditEvent::LoginThrottled => "login.throttled",
            AuditEvent::RefreshReuseDetected => "refresh.reuse",
            AuditEvent::LoggedOut => "logout",
            AuditEvent::SessionRevoked => "session.revoke",
            AuditEvent::PasswordChanged => "password.change",
            AuditEvent::EmailChanged => "email.change",
            AuditEvent::RoleChanged => "role.change",
            AuditEvent::AccountDisabled => "account.disable",
            AuditEvent::AccountEnabled => "account.enable",
            AuditEvent::AccountDeleted => "account.delete",
            AuditEvent::SessionsRevoked => "sessions.revoke",
            AuditEvent::EmailVerificationSet => "email.verification",
            AuditEvent::TaskRetried => "task.retry",
            AuditEvent::EmailVerified => "email.verified",
            AuditEvent::EmailChangeReverted => "email.revert",
            AuditEvent::PasswordResetRequested => "password.reset_request",
            AuditEvent::PasswordReset => "password.reset",
            AuditEvent::DeviceApproved => "device.approve",
            AuditEvent::DeviceDenied => "device.deny",
            AuditEvent::DeviceCodeWrong => "device.wrong_code",
            AuditEvent::TotpEnabled => "totp.enable",
            AuditEvent::TotpDisabled => "totp.disable",
            AuditEvent::RecoveryCodesIssued => "recovery_codes.new",
            AuditEvent::RecoveryCodeUsed => "recovery_code.used",
            AuditEvent::SecondFactorSucceeded => "mfa.success",
            AuditEvent::SecondFactorFailed => "mfa.failure",
            AuditEvent::SecondFactorsReset => "mfa.reset",
            AuditEvent::Reauthenticated => "reauth",
            AuditEvent::ReauthFailed => "reauth.failure",
            AuditEvent::PasskeyAdded => "passkey.add",
            AuditEvent::PasskeyRemoved => "passkey.remove",
            AuditEvent::PasskeySignIn => "passkey.login",
            AuditEvent::PasskeySignInFailed => "passkey.login.failure",
            AuditEvent::PasskeyCounterRegression => "passkey.counter_regression",
            AuditEvent::GuestCreated => "guest.create",
            AuditEvent::GuestUpgraded => "guest.upgrade",
            AuditEvent::GuestMerged => "guest.merge",
            AuditEvent::IdentityLinked => "identity.link",
            AuditEvent::IdentityUnlinked => "identity.unlink",
            AuditEvent::ProviderSignIn => "login.oidc",
            AuditEvent::PreTakeoverCleared => "account.pre_takeover_cleared",
        }
    }
}

impl UserService {
    /// Writes a security event to the log (target `audit`) and the store. A
    /// failure to store it is logged, never fatal: the operation already happened.
    pub(super) async fn audit(
        &self,
        event: AuditEvent,
        user: Option<UserId>,
        client: &ClientInfo,
        detail: Option<String>,
    ) {
        let ip = client.ip.map(|ip| ip.to_string());
        tracing::info!(
            target: "audit",
            event = event.as_str(),
            user_id = user.map(|u| u.to_string()).unwrap_or_default(),
            actor_id = client.actor.map(|u| u.to_string()).unwrap_or_default(),
            ip = ip.as_deref().unwrap_or_default(),
            user_agent = client.user_agent.as_deref().unwrap_or_default(),
            detail = detail.as_deref().unwrap_or_default(),
            "security event"
        );
        let entry = AuditRecord {
            id: 0,
            created_at: self.clock.now(),
            event: event.as_str().to_owned(),
            user_id: user,
            actor_id: client.actor,
            ip,
            user_agent: client.user_agent.as_deref().map(|ua| ua.chars().take(256).collect()),
            detail,
        };
        if let Err(e) = self.store.record_audit(&entry).await {
            tracing::error!(error = %e, event = event.as_str(), "could not store an audit event");
        }
    }
}

impl UserService {
    /// Audit entries that pass `filter`, newest first, one page at a time.
    ///
    /// # Errors
    /// [`Error::Validation`](crate::Error::Validation) on `cursor` for a
    /// cursor of another listing.
    pub async fn audit_trail(&self, filter: &AuditFilter, page: &PageRequest) -> Result<Page<AuditRecord>> {
        let rows = self.store.list_audit(filter, page.audit_cursor()?, page.limit() + 1).await?;
        Ok(Page::from_overfetch(rows, page.limit(), |e| page::audit_cursor(e.id)))
    }
}
