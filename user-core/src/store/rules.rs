//! The decisions inside store methods that need no SQL, written once and
//! called by every backend: what stays per backend is the SQL that reads
//! the facts and writes the outcome in one transaction.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{DeviceDecision, DeviceGrant, LoginAttempt};
use crate::domain::UserId;

/// A limit of `count` requests per `period`, up to `count` at once, as the
/// generic cell rate algorithm keeps it: one "theoretical arrival time" per
/// key, in µs since the epoch. Written once for the stores that share limits
/// (in SQL) and the service's in-process limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Gcra {
    /// The period, µs.
    pub(crate) period_us: i64,
    /// The time one request takes from the budget, µs.
    pub(crate) emission_us: i64,
}

impl Gcra {
    pub(crate) fn new(count: u32, period: std::time::Duration) -> Self {
        let period_us = i64::try_from(period.as_micros()).unwrap_or(i64::MAX).max(1);
        Self { period_us, emission_us: (period_us / i64::from(count.max(1))).max(1) }
    }

    /// One request at `now_us` against the arrival time `tat` (`None`: a key
    /// never seen): the new arrival time when it is let through, else how
    /// long to wait (and `tat` stays).
    pub(crate) fn step(&self, tat: Option<i64>, now_us: i64) -> std::result::Result<i64, std::time::Duration> {
        let next = tat.unwrap_or(now_us).max(now_us) + self.emission_us;
        if next <= now_us + self.period_us { Ok(next) } else { Err(self.wait(next - self.emission_us, now_us)) }
    }

    /// How long until a request may pass when the arrival time is `tat`.
    pub(crate) fn wait(&self, tat: i64, now_us: i64) -> std::time::Duration {
        let wait_us = (tat + self.emission_us - self.period_us - now_us).max(0);
        std::time::Duration::from_micros(u64::try_from(wait_us).unwrap_or_default())
    }
}

/// Whether a poll at `now` of a pending, unexpired request comes too soon
/// after the one at `previous`: sooner than the interval, less `leeway`
/// (for a client's timer and the network's jitter).
pub(crate) fn polled_too_fast(
    grant: &DeviceGrant,
    previous: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
    leeway: chrono::TimeDelta,
) -> bool {
    let waiting = grant.decision == DeviceDecision::Pending && grant.expires_at > now;
    let interval = chrono::TimeDelta::seconds(i64::from(grant.interval_secs)) - leeway;
    waiting && previous.is_some_and(|at| now - at < interval)
}

/// The exclusive upper end of the range of strings that start with `prefix`
/// (compared bytewise, as SQLite's BINARY collation and PostgreSQL's
/// pattern operators do): no character sorts after U+10FFFF.
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub(crate) fn prefix_upper_bound(prefix: &str) -> String {
    format!("{prefix}\u{10FFFF}")
}

/// A `LIKE` pattern matching strings that start with `prefix`: `%`, `_`
/// and the escape character `\\` in it are plain characters (`escape '\\'`).
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub(crate) fn like_prefix(prefix: &str) -> String {
    let mut pattern = String::with_capacity(prefix.len() + 1);
    for c in prefix.chars() {
        if matches!(c, '\\' | '%' | '_') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

/// Whether a change that stops `id` being an active admin would leave none:
/// `active_admins` are the active admins' ids, read (and on PostgreSQL
/// locked) in the change's own transaction.
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub(crate) fn is_last_admin(active_admins: &[Uuid], id: UserId) -> bool {
    active_admins == [id.as_uuid()]
}

/// The answer to a login attempt the store could not count because the
/// account's logins are refused: until when (`locked_until` as stored; a
/// missing one means "now"); `None` if the account does not exist.
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub(crate) fn refused_attempt(locked_until: Option<Option<DateTime<Utc>>>, now: DateTime<Utc>) -> Option<LoginAttempt> {
    locked_until.map(|until| LoginAttempt::Locked { until: until.unwrap_or(now) })
}

/// The tables of secrets that expire (mail tokens, device cookies, undo
/// links), each keyed by `digest` with an `expires_at`: the retention sweep
/// deletes what expired, in batches. (Device requests are kept a while
/// longer: [`crate::store::DEVICE_GRANT_KEPT`].)
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub(crate) const EXPIRING: [&str; 5] =
    ["account_tokens", "device_cookies", "email_reverts", "mfa_challenges", "ceremonies"];

/// Removes the identity of account `{p}1` at provider `{p}2` only if the
/// account keeps another way to sign in — a password, a passkey, another
/// identity: what "the last way to sign in" means, written once for both
/// backends.
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub(crate) fn unlink_identity_statement(p: char) -> String {
    format!(
        "delete from identities where user_id = {p}1 and provider = {p}2 \
           and (exists (select 1 from users u where u.id = {p}1 and u.password_hash is not null) \
             or exists (select 1 from passkeys k where k.user_id = {p}1) \
             or exists (select 1 from identities o where o.user_id = {p}1 and o.provider <> {p}2))"
    )
}

/// Whoever proves the mailbox `{p}2` of account `{p}1` (a verification
/// or reset link) owns the account: identities whose provider did not
/// verify that same address go (a squatter's, linked before the owner came).
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub(crate) fn stale_identities_statement(p: char) -> String {
    format!("delete from identities where user_id = {p}1 and not (email_verified and coalesce(email, '') = {p}2)")
}

/// The active admins with no second factor (no confirmed TOTP, no passkey),
/// by name, at most `{placeholder}1` of them: what counts as a second
/// factor, written once for both backends.
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub(crate) fn admins_without_second_factor_statement(placeholder: char) -> String {
    format!(
        "select username from users u where role = 'admin' and disabled_at is null \
           and not exists (select 1 from totp_factors t where t.user_id = u.id and t.confirmed_at is not null) \
           and not exists (select 1 from passkeys p where p.user_id = u.id) \
         order by username limit {placeholder}1"
    )
}

/// The statement deleting up to a batch of `table`'s rows that expired
/// (`$1`/`?1`: the time, `$2`/`?2`: the batch); `table` is one of ours, never input.
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub(crate) fn purge_statement(table: &'static str, placeholder: char) -> String {
    format!(
        "delete from {table} where digest in \
           (select digest from {table} where expires_at <= {placeholder}1 order by expires_at limit {placeholder}2)"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_sole_active_admin_is_the_last() {
        let (a, b) = (UserId::new(), UserId::new());
        assert!(is_last_admin(&[a.as_uuid()], a));
        assert!(!is_last_admin(&[a.as_uuid(), b.as_uuid()], a));
        assert!(!is_last_admin(&[b.as_uuid()], a), "demoting a non-admin never leaves none");
        assert!(!is_last_admin(&[], a));
    }

    #[test]
    fn a_gcra_lets_a_burst_through_then_spaces_requests() {
        let gcra = Gcra::new(2, std::time::Duration::from_secs(2));
        let first = gcra.step(None, 0).unwrap();
        let second = gcra.step(Some(first), 0).unwrap();
        let wait = gcra.step(Some(second), 0).unwrap_err();
        assert_eq!(wait, std::time::Duration::from_secs(1));
        assert!(gcra.step(Some(second), 1_000_000).is_ok(), "one request's worth later");
    }
}
