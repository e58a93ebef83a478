//! Device sign-in (RFC 8628): a TV asks for a pair of codes, shows the short
//! one, and polls with the long one while a person approves it from a
//! signed-in phone or browser.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};

use super::recovery::{new_secret, token_digest};
use super::sessions::SignInProof;
use super::{AuditEvent, ClientInfo, DevicePolicy, UserService};
use crate::auth::IssuedTokens;
use crate::domain::{DeviceName, SessionId, UserCode, UserId, rate_key};
use crate::error::{Error, GrantError, Result};
use crate::store::rules::Gcra;
use crate::store::{DeviceDecision, DeviceGrant, NewDeviceGrant, UserCodeAction};

/// How much sooner than the interval a poll may come without `slow_down`:
/// a device's timer and the network are not exact.
const POLL_LEEWAY: TimeDelta = TimeDelta::milliseconds(500);

/// What `slow_down` adds to a device's interval (RFC 8628 §3.5).
const SLOW_DOWN_STEP_SECS: u32 = 5;

/// A started device sign-in: what the device keeps, and what it shows.
#[derive(Clone)]
pub struct DeviceAuthorization {
    /// The secret the device polls with; only its digest is stored.
    pub device_code: String,
    /// The code the person types, shown as `XXXX-XXXX`.
    pub user_code: UserCode,
    /// How long both codes work.
    pub expires_in: Duration,
    /// The least time between two polls.
    pub interval: Duration,
}

impl std::fmt::Debug for DeviceAuthorization {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceAuthorization")
            .field("user_code", &self.user_code)
            .field("expires_in", &self.expires_in)
            .field("interval", &self.interval)
            .finish_non_exhaustive()
    }
}

/// The policy and the counts of wrong user codes, shared by the service's clones.
#[derive(Debug)]
pub(super) struct DeviceLogins {
    policy: DevicePolicy,
    /// GCRA arrival times of the wrong-code allowances, by key, when the
    /// store does not share limits (one process); else they are in the store.
    local: Mutex<HashMap<String, i64>>,
}

/// Entries kept before the ones whose allowance is whole again are swept.
const SWEEP_AT: usize = 10_000;

impl DeviceLogins {
    pub(super) fn new(policy: DevicePolicy) -> Self {
        Self { policy, local: Mutex::new(HashMap::new()) }
    }

    /// The allowances a code typed by `user` from `client` counts against.
    fn allowances(&self, user: UserId, client: &ClientInfo) -> Vec<(String, u32)> {
        let mut keys = vec![(format!("device_code:user:{user}"), self.policy.wrong_codes_per_user)];
        if let Some(ip) = client.ip {
            keys.push((format!("device_code:ip:{}", rate_key(ip)), self.policy.wrong_codes_per_ip));
        }
        keys
    }

    fn local(&self) -> std::sync::MutexGuard<'_, HashMap<String, i64>> {
        self.local.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl UserService {
    /// Counts one code about to be looked up against the account's and the
    /// address's allowances, before the lookup, so that guesses sent at once
    /// get no more lookups than the allowance (a right code is given back
    /// by [`UserService::refund_code_try`]). `Some(wait)` when either is used
    /// up; nothing stays counted then. In the store when it shares limits
    /// (every replica together), else in this process.
    async fn reserve_code_try(
        &self,
        user: UserId,
        client: &ClientInfo,
        now: DateTime<Utc>,
    ) -> Result<Option<Duration>> {
        let window = self.device.policy.wrong_code_window;
        let mut counted = Vec::new();
        for (key, count) in self.device.allowances(user, client) {
            let refused = if self.store.shares_rate_limits() {
                self.store.hit_rate_limit(&key, count, window, now).await?
            } else {
                let gcra = Gcra::new(count, window);
                let now_us = now.timestamp_micros();
                let mut local = self.device.local();
                if local.len() >= SWEEP_AT {
                    local.retain(|_, tat| *tat > now_us);
                }
                match gcra.step(local.get(&key).copied(), now_us) {
                    Ok(tat) => {
                        local.insert(key.clone(), tat);
                        None
                    }
                    Err(wait) => Some(wait),
                }
            };
            if let Some(wait) = refused {
                self.refund_code_try(&counted).await?;
                return Ok(Some(wait));
            }
            counted.push((key, count));
        }
        Ok(None)
    }

    /// Gives back the tries [`UserService::reserve_code_try`] counted.
    async fn refund_code_try(&self, counted: &[(String, u32)]) -> Result<()> {
        let window = self.device.policy.wrong_code_window;
        for (key, count) in counted {
            if self.store.shares_rate_limits() {
                self.store.refund_rate_limit(key, *count, window).await?;
            } else if let Some(tat) = self.device.local().get_mut(key) {
                *tat -= Gcra::new(*count, window).emission_us;
            }
        }
        Ok(())
    }

    /// Starts a device sign-in for a public client: a device code to poll
    /// with and a user code to show.
    ///
    /// # Errors
    /// [`Error::Grant`] with [`GrantError::InvalidClient`] for a client not in
    /// [`DevicePolicy::clients`].
    /// The device's name is `device.device_name`; its address is shown to
    /// the person asked to approve it.
    pub async fn start_device_login(&self, client_id: &str, device: &ClientInfo) -> Result<DeviceAuthorization> {
        let policy = &self.device.policy;
        if !policy.clients.iter().any(|c| c == client_id) {
            return Err(Error::Grant(GrantError::InvalidClient));
        }
        let now = self.clock.now();
        let interval_secs = u32::try_from(policy.interval.as_secs()).unwrap_or(u32::MAX).max(1);
        // 20^8 codes: a collision with a stored one is rare, three in a row unheard of.
        for _ in 0..3 {
            let (device_code, digest) = new_secret();
            let grant = NewDeviceGrant {
                digest,
                user_code: UserCode::generate(),
                client_id: client_id.to_owned(),
                device_name: device.device_name.as_ref().map(ToString::to_string),
                created_at: now,
                expires_at: now + TimeDelta::from_std(policy.code_ttl).map_err(Error::internal)?,
                interval_secs,
                request_ip: device.ip.map(|ip| ip.to_string()),
            };
            if self.store.insert_device_grant(&grant).await? {
                return Ok(DeviceAuthorization {
                    device_code,
                    user_code: grant.user_code,
                    expires_in: policy.code_ttl,
                    interval: Duration::from_secs(interval_secs.into()),
                });
            }
        }
        Err(Error::internal("three user codes in a row were taken"))
    }

    /// One poll of the device: once the person approved it, the new
    /// session's tokens, exactly once.
    ///
    /// # Errors
    /// [`Error::Grant`] with `authorization_pending`, `slow_down` (the
    /// device's interval grew), `access_denied` (declined; or the approving
    /// session ended, or a sign-in method of the account changed, since the
    /// approval), `expired_token` (also for a code voided by wrong user
    /// codes) or `invalid_grant` (unknown, used, or another client's code;
    /// the account was disabled or changed meanwhile).
    pub async fn poll_device_login(
        &self,
        client_id: &str,
        device_code: &str,
        client: &ClientInfo,
    ) -> Result<IssuedTokens> {
        let grant_error = |e| Err(Error::Grant(e));
        let Ok(digest) = token_digest(device_code) else { return grant_error(GrantError::InvalidGrant) };
        let now = self.clock.now();
        let Some(poll) = self.store.poll_device_grant(&digest, now, POLL_LEEWAY, SLOW_DOWN_STEP_SECS).await? else {
            return grant_error(GrantError::InvalidGrant);
        };
        let grant = poll.grant;
        if grant.client_id != client_id {
            return grant_error(GrantError::InvalidGrant);
        }
        if grant.expires_at <= now || grant.wrong_tries >= self.device.policy.max_wrong_tries {
            return grant_error(GrantError::ExpiredToken);
        }
        let user = match grant.decision {
            DeviceDecision::Pending if poll.too_fast => return grant_error(GrantError::SlowDown),
            DeviceDecision::Pending => return grant_error(GrantError::AuthorizationPending),
            DeviceDecision::Denied(_) => return grant_error(GrantError::AccessDenied),
            DeviceDecision::Approved(user) => user,
        };
        // The approval holds only while the session that gave it lives and
        // the account's credentials are those it was given under: a stolen
        // session's approval ends with the session.
        let Some(approval) = grant.approval else { return grant_error(GrantError::AccessDenied) };
        let Some(approver) = self.store.session_user(approval.session, user, now).await? else {
            return grant_error(GrantError::AccessDenied);
        };
        let record = approver.record;
        if record.credential_version != approval.credential_version {
            return grant_error(GrantError::AccessDenied);
        }
        let device = ClientInfo {
            device_name: grant.device_name.as_deref().map(DeviceName::parse).transpose()?,
            ..client.clone()
        };
        let (login, tokens) = self.new_session(&record, None, &device, SignInProof::delegated(approver.amr))?;
        if !self.store.redeem_device_grant(&digest, &login).await? {
            return grant_error(GrantError::InvalidGrant);
        }
        let detail = format!("device sign-in ({client_id}): {}", grant.device_name.as_deref().unwrap_or("unnamed"));
        self.audit(AuditEvent::LoginSucceeded, Some(user), &device, Some(detail)).await;
        Ok(tokens)
    }

    /// The pending device sign-in a user code names, for the person to see
    /// which device is asking before they decide. A wrong code counts as
    /// [`UserService::decide_device_login`]'s do.
    ///
    /// # Errors
    /// As [`UserService::decide_device_login`].
    pub async fn device_login_request(
        &self,
        user: UserId,
        code: &UserCode,
        client: &ClientInfo,
    ) -> Result<DeviceGrant> {
        self.resolve_user_code(user, code, UserCodeAction::Look, client).await
    }

    /// Approves or declines the device sign-in a user code names, as `user`
    /// from `session`. An approval is bound to that session and to the
    /// account's current credentials (see [`UserService::poll_device_login`]).
    /// Wrong codes are counted per account and per client address, and
    /// against the pending codes that share a half with them (five void a code).
    ///
    /// # Errors
    /// [`Error::InvalidUserCode`] for a code that is unknown, expired,
    /// decided or void; [`Error::Throttled`] once the account or the address
    /// has typed too many wrong codes; [`Error::Unauthorized`] when `session`
    /// ended meanwhile.
    pub async fn decide_device_login(
        &self,
        user: UserId,
        session: SessionId,
        code: &UserCode,
        approve: bool,
        client: &ClientInfo,
    ) -> Result<DeviceGrant> {
        let action = if approve { UserCodeAction::Approve { user, session } } else { UserCodeAction::Deny(user) };
        let grant = self.resolve_user_code(user, code, action, client).await?;
        let event = if approve { AuditEvent::DeviceApproved } else { AuditEvent::DeviceDenied };
        let detail =
            format!("{} ({}, code {code})", grant.device_name.as_deref().unwrap_or("unnamed"), grant.client_id);
        self.audit(event, Some(user), client, Some(detail)).await;
        Ok(grant)
    }

    async fn resolve_user_code(
        &self,
        user: UserId,
        code: &UserCode,
        action: UserCodeAction,
        client: &ClientInfo,
    ) -> Result<DeviceGrant> {
        let now = self.clock.now();
        if let Some(wait) = self.reserve_code_try(user, client, now).await? {
            return Err(Error::Throttled { retry_after: wait.max(Duration::from_secs(1)) });
        }
        let max_wrong = self.device.policy.max_wrong_tries;
        match self.store.resolve_user_code(code, action, max_wrong, now).await? {
            Some(grant) => {
                // A right code costs nothing: only wrong ones use the allowance up.
                self.refund_code_try(&self.device.allowances(user, client)).await?;
                Ok(grant)
            }
            None => {
                self.audit(AuditEvent::DeviceCodeWrong, Some(user), client, Some(format!("code {code}"))).await;
                Err(Error::InvalidUserCode)
            }
        }
    }
}
