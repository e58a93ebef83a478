//! The store conformance suite: written once, run against every backend by
//! `suite!(async { make a fresh, migrated store })` in the backend's tests.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{
    AccountChanges, AuditFilter, AuditRecord, GuestFilter, GuestUpgrade, LoginAttempt, NewSession, Rotation,
    SessionRecord, Store, TaskCounts, TaskKind, TaskStatus, User, UserChanges, UserKey, UserRecord, WaitingTasks,
};
use crate::domain::{Amr, AuthMethod, Email, Role, SessionId, TrackBatch, TrackId, UserId, Username};
use crate::error::{ConflictField, Error};

/// Generates one `#[tokio::test]` per conformance case, each on a fresh store
/// made by `$make` (`None` skips: the backend is not available here).
macro_rules! suite {
    ($make:expr) => {
        $crate::store::conformance::suite!(@cases $make;
            usernames_are_unique_case_insensitively_under_concurrent_inserts,
            emails_are_unique,
            users_are_found_by_id_username_in_any_case_and_email,
            updates_report_conflicts_and_keep_the_row_intact,
            a_password_change_revokes_every_other_session_atomically,
            concurrent_rotations_with_one_token_have_exactly_one_winner,
            rotation_of_a_revoked_session_fails,
            revoking_is_idempotent_and_per_session,
            a_session_keeps_when_it_last_proved_a_credential,
            a_session_s_amr_grows_with_what_it_proves,
            a_device_cookie_counts_its_own_failures_and_ends_with_the_sessions,
            deleting_a_user_cascades_and_enqueues_user_deleted,
            disabling_revokes_every_session,
            favorites_are_idempotent_and_write_exactly_one_task_per_change,
            favorites_list_newest_first_with_keyset_pages,
            favorites_of_an_unknown_user_write_nothing,
            concurrent_favorite_changes_of_one_user_keep_tasks_in_commit_order,
            concurrent_session_checks_each_get_their_own_answer,
            concurrent_favorite_requests_count_each_change_once,
            users_list_oldest_first_with_keyset_pages,
            secrets_are_created_once_under_concurrency,
            roles_change_and_sessions_of_unknown_users_are_refused,
            concurrent_login_attempts_reserve_no_more_checks_than_the_lockout_allows,
            a_session_opens_only_for_the_credential_the_login_verified,
            a_role_change_revokes_every_session_and_the_credential,
            live_sessions_are_listed_newest_first_with_their_device_names,
            the_last_active_admin_is_kept_even_when_two_demote_each_other_at_once,
            an_account_change_applies_each_field_in_one_step,
            search_finds_username_or_email_prefixes_oldest_first_in_pages,
            search_pages_through_a_prefix_most_accounts_share,
            the_audit_trail_filters_by_user_and_event_newest_first,
            an_update_bound_to_a_credential_version_loses_to_a_change_in_between,
            claims_follow_id_order_and_keep_each_users_tasks_in_sequence,
            concurrent_claimers_never_share_a_task,
            an_expired_lease_is_claimable_again_and_the_old_lease_cannot_settle,
            failures_back_off_then_die_and_dead_tasks_can_be_retried,
            only_done_tasks_delivered_before_the_cutoff_are_purged_oldest_first,
            a_verification_token_verifies_its_address_once,
            a_new_address_is_unverified_and_voids_tokens_sent_to_the_old_one,
            token_mails_find_the_account_by_address_and_respect_the_interval,
            a_reset_token_sets_the_password_once_and_ends_every_session,
            a_mail_token_leaves_the_outbox_once_delivered_or_dead,
            mail_does_not_wait_behind_a_users_held_events,
            a_token_used_by_many_at_once_works_exactly_once,
            an_undo_link_restores_the_old_address_once_and_reserves_it_meanwhile,
            expired_tokens_are_purged,
            device_polls_faster_than_the_interval_slow_down,
            a_user_code_is_decided_once_and_redeemed_once,
            declined_expired_and_disabled_requests_give_no_session,
            wrong_codes_sharing_a_half_void_a_code_at_the_limit,
            one_of_many_concurrent_decisions_wins,
            an_approved_request_redeemed_by_many_at_once_opens_one_session,
            an_approval_ends_with_its_session_and_with_a_credential_change,
            expired_device_requests_are_purged_after_a_while,
            a_totp_enrollment_is_pending_until_confirmed_once,
            a_totp_step_is_accepted_once_and_never_an_older_one,
            a_recovery_code_works_once_even_when_used_by_many_at_once,
            an_mfa_sign_in_completes_once_and_dies_after_too_many_wrong_codes,
            admins_without_a_second_factor_are_listed_by_name,
            a_passkey_is_one_account_s_and_its_counter_moves_once,
            a_ceremony_is_taken_once_for_its_purpose_before_it_expires,
            a_guest_upgrades_once_keeping_its_id_sessions_and_favorites,
            listings_include_exclude_or_only_take_guests,
            idle_guests_are_deleted_with_a_task_and_active_ones_kept,
            a_guest_merges_into_an_account_once_with_its_favorites,
            an_identity_is_one_account_s_and_one_per_provider,
            a_provider_account_is_created_with_its_identity_or_not_at_all,
            the_last_way_to_sign_in_is_never_unlinked,
            an_unverified_account_claimed_by_a_provider_loses_what_its_registrant_set,
            proving_the_mailbox_removes_identities_that_did_not_verify_it
        );
    };
    (@cases $make:expr; $($name:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let store: Option<std::sync::Arc<dyn $crate::store::Store>> = $make.await;
                let Some(store) = store else { return };
                $crate::store::conformance::$name(store).await;
            }
        )*
    };
}
pub(crate) use suite;

mod devices;
mod factors;
mod favorites;
mod guests;
mod identities;
mod passkeys;
mod sessions;
mod tasks;
mod tokens;
mod users;

pub(crate) use devices::*;
pub(crate) use factors::*;
pub(crate) use favorites::*;
pub(crate) use guests::*;
pub(crate) use identities::*;
pub(crate) use passkeys::*;
pub(crate) use sessions::*;
pub(crate) use tasks::*;
pub(crate) use tokens::*;
pub(crate) use users::*;

/// Runs `f` twelve times at once, released by a barrier; how many said yes.
async fn at_once<F, Fut>(f: F) -> usize
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = bool> + Send + 'static,
{
    let barrier = Arc::new(tokio::sync::Barrier::new(12));
    let tasks: Vec<_> = (0..12)
        .map(|_| {
            let (barrier, attempt) = (barrier.clone(), f());
            tokio::spawn(async move {
                barrier.wait().await;
                attempt.await
            })
        })
        .collect();
    let mut yes = 0;
    for task in tasks {
        yes += usize::from(task.await.unwrap());
    }
    yes
}

fn t0() -> DateTime<Utc> {
    DateTime::from_timestamp_millis(1_800_000_000_123).unwrap()
}

fn record(name: &str) -> UserRecord {
    let now = t0();
    UserRecord {
        user: User {
            id: UserId::new(),
            username: Some(Username::parse(name).unwrap()),
            email: Some(Email::parse(&format!("{name}@example.com")).unwrap()),
            role: Role::User,
            disabled_at: None,
            email_verified: false,
            locale: Default::default(),
            last_login_at: None,
            created_at: now,
            updated_at: now,
        },
        password_hash: Some("$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$aGFzaA".to_owned()),
        failed_logins: 0,
        locked_until: None,
        credential_version: 0,
    }
}

async fn user(store: &Arc<dyn Store>, name: &str) -> UserId {
    let r = record(name);
    store.insert_user(&r, &[]).await.unwrap();
    r.user.id
}

/// A session of `user` created at `t0()`, an hour long; not yet stored.
fn session_template(user: UserId) -> SessionRecord {
    SessionRecord {
        id: SessionId::new(),
        user_id: user,
        refresh_jti: Uuid::now_v7(),
        previous_jti: None,
        rotated_at: None,
        created_at: t0(),
        last_used_at: t0(),
        expires_at: t0() + Duration::from_secs(3600),
        revoked_at: None,
        user_agent: Some("test".into()),
        ip: Some("127.0.0.1".into()),
        device_name: None,
        authenticated_at: Some(t0()),
        amr: Amr::PASSWORD,
    }
}

async fn session(store: &Arc<dyn Store>, user: UserId) -> SessionRecord {
    let s = session_template(user);
    assert!(store.open_session(&login(store, &s).await).await.unwrap(), "session opened");
    s
}

/// A login completion for `session` at the user's current credential.
async fn login(store: &Arc<dyn Store>, session: &SessionRecord) -> NewSession {
    let version = store.find_user(UserKey::Id(session.user_id)).await.unwrap().map_or(0, |r| r.credential_version);
    NewSession { session: session.clone(), credential_version: version, rehash: None }
}

/// A role change through `change_account`; `false` for an unknown user.
async fn set_role(store: &Arc<dyn Store>, id: UserId, role: Role) -> crate::error::Result<bool> {
    let changes = AccountChanges { role: Some(role), ..AccountChanges::default() };
    Ok(store.change_account(id, &changes, t0()).await?.is_some())
}

/// A disable or enable through `change_account`; `false` for an unknown user.
async fn set_disabled(store: &Arc<dyn Store>, id: UserId, disabled: bool) -> crate::error::Result<bool> {
    let changes = AccountChanges { disabled: Some(disabled), ..AccountChanges::default() };
    Ok(store.change_account(id, &changes, t0()).await?.is_some())
}

fn tracks(ids: &str) -> Vec<TrackId> {
    TrackBatch::parse(ids).unwrap().to_vec()
}

fn ids(claim: &super::Claim) -> Vec<i64> {
    claim.tasks.iter().map(|t| t.id).collect()
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}
