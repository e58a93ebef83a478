//! The store conformance suite: written once, run against every backend by
//! `suite!(async { make a fresh, migrated store })` in the backend's tests.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{
    LoginAttempt, NewSession, Rotation, SessionRecord, Store, TaskCounts, TaskKind, TaskStatus, User, UserChanges,
    UserKey, UserRecord, WaitingTasks,
};
use crate::domain::{Email, Role, SessionId, TrackBatch, TrackId, UserId, Username};
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
            an_update_bound_to_a_credential_version_loses_to_a_change_in_between,
            claims_follow_id_order_and_keep_each_users_tasks_in_sequence,
            concurrent_claimers_never_share_a_task,
            an_expired_lease_is_claimable_again_and_the_old_lease_cannot_settle,
            failures_back_off_then_die_and_dead_tasks_can_be_retried,
            only_done_tasks_delivered_before_the_cutoff_are_purged_oldest_first
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

fn t0() -> DateTime<Utc> {
    DateTime::from_timestamp_millis(1_800_000_000_123).unwrap()
}

fn record(name: &str) -> UserRecord {
    let now = t0();
    UserRecord {
        user: User {
            id: UserId::new(),
            username: Username::parse(name).unwrap(),
            email: Email::parse(&format!("{name}@example.com")).unwrap(),
            role: Role::User,
            disabled_at: None,
            created_at: now,
            updated_at: now,
        },
        password_hash: "$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$aGFzaA".to_owned(),
        failed_logins: 0,
        locked_until: None,
        credential_version: 0,
    }
}

async fn user(store: &Arc<dyn Store>, name: &str) -> UserId {
    let r = record(name);
    store.insert_user(&r).await.unwrap();
    r.user.id
}

async fn session(store: &Arc<dyn Store>, user: UserId) -> SessionRecord {
    let s = SessionRecord {
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
    };
    assert!(store.open_session(&login(store, &s).await).await.unwrap(), "session opened");
    s
}

/// A login completion for `session` at the user's current credential.
async fn login(store: &Arc<dyn Store>, session: &SessionRecord) -> NewSession {
    let version = store.find_user(UserKey::Id(session.user_id)).await.unwrap().map_or(0, |r| r.credential_version);
    NewSession { session: session.clone(), credential_version: version, rehash: None }
}

fn tracks(ids: &str) -> Vec<TrackId> {
    TrackBatch::parse(ids).unwrap().to_vec()
}

pub(crate) async fn usernames_are_unique_case_insensitively_under_concurrent_inserts(store: Arc<dyn Store>) {
    let handles: Vec<_> = (0..16)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                let mut r = record(if i % 2 == 0 { "Racer" } else { "rACER" });
                r.user.email = Email::parse(&format!("racer{i}@example.com")).unwrap();
                store.insert_user(&r).await
            })
        })
        .collect();
    let mut ok = 0;
    for h in handles {
        match h.await.unwrap() {
            Ok(()) => ok += 1,
            Err(Error::Conflict(ConflictField::Username)) => {}
            Err(other) => panic!("expected a username conflict, got {other:?}"),
        }
    }
    assert_eq!(ok, 1);
    assert_eq!(store.list_users(None, 100).await.unwrap().len(), 1);
}

pub(crate) async fn emails_are_unique(store: Arc<dyn Store>) {
    user(&store, "alice").await;
    let mut other = record("bob");
    other.user.email = Email::parse("ALICE@example.com").unwrap();
    assert!(matches!(store.insert_user(&other).await, Err(Error::Conflict(ConflictField::Email))));
}

pub(crate) async fn users_are_found_by_id_username_in_any_case_and_email(store: Arc<dyn Store>) {
    let r = record("Alice");
    store.insert_user(&r).await.unwrap();
    let by_id = store.find_user(UserKey::Id(r.user.id)).await.unwrap().unwrap();
    assert_eq!(by_id, r, "the stored record reads back unchanged");
    let lower = Username::parse("alice").unwrap();
    assert_eq!(store.find_user(UserKey::Username(&lower)).await.unwrap().unwrap().user.id, r.user.id);
    assert_eq!(store.find_user(UserKey::Email(&r.user.email)).await.unwrap().unwrap().user.id, r.user.id);
    assert!(store.find_user(UserKey::Id(UserId::new())).await.unwrap().is_none());
}

pub(crate) async fn updates_report_conflicts_and_keep_the_row_intact(store: Arc<dyn Store>) {
    let alice = user(&store, "alice").await;
    user(&store, "bob").await;
    let rename = UserChanges { username: Some(Username::parse("BOB").unwrap()), ..Default::default() };
    assert!(matches!(store.update_user(alice, &rename, t0()).await, Err(Error::Conflict(ConflictField::Username))));
    let reemail = UserChanges { email: Some(Email::parse("bob@example.com").unwrap()), ..Default::default() };
    assert!(matches!(store.update_user(alice, &reemail, t0()).await, Err(Error::Conflict(ConflictField::Email))));
    let own_case = UserChanges { username: Some(Username::parse("ALICE").unwrap()), ..Default::default() };
    let later = t0() + Duration::from_secs(1);
    let updated = store.update_user(alice, &own_case, later).await.unwrap().unwrap();
    assert_eq!((updated.user.username.as_str(), updated.user.email.as_str()), ("ALICE", "alice@example.com"));
    assert_eq!(updated.user.updated_at, later);
    assert!(store.update_user(UserId::new(), &own_case, later).await.unwrap().is_none());
}

pub(crate) async fn a_password_change_revokes_every_other_session_atomically(store: Arc<dyn Store>) {
    let alice = user(&store, "alice").await;
    let keep = session(&store, alice).await;
    let other = session(&store, alice).await;
    let changes =
        UserChanges { password_hash: Some("new-hash".into()), keep_session: Some(keep.id), ..Default::default() };
    let updated = store.update_user(alice, &changes, t0()).await.unwrap().unwrap();
    assert_eq!(updated.password_hash, "new-hash");
    assert!(store.session(keep.id).await.unwrap().unwrap().revoked_at.is_none());
    assert_eq!(store.session(other.id).await.unwrap().unwrap().revoked_at, Some(t0()));
}

pub(crate) async fn concurrent_rotations_with_one_token_have_exactly_one_winner(store: Arc<dyn Store>) {
    let alice = user(&store, "alice").await;
    let s = session(&store, alice).await;
    let handles: Vec<_> = (0..8)
        .map(|_| {
            let store = store.clone();
            let r = Rotation {
                session: s.id,
                expected_jti: s.refresh_jti,
                new_jti: Uuid::now_v7(),
                now: t0(),
                expires_at: t0(),
            };
            tokio::spawn(async move { store.rotate_session(&r).await.unwrap() })
        })
        .collect();
    let mut wins = 0;
    for h in handles {
        wins += usize::from(h.await.unwrap());
    }
    assert_eq!(wins, 1);
    let after = store.session(s.id).await.unwrap().unwrap();
    assert_eq!(after.previous_jti, Some(s.refresh_jti));
    assert_eq!(after.rotated_at, Some(t0()));
    assert_ne!(after.refresh_jti, s.refresh_jti);
}

pub(crate) async fn rotation_of_a_revoked_session_fails(store: Arc<dyn Store>) {
    let alice = user(&store, "alice").await;
    let s = session(&store, alice).await;
    assert!(store.revoke_session(s.id, t0()).await.unwrap());
    let r =
        Rotation { session: s.id, expected_jti: s.refresh_jti, new_jti: Uuid::now_v7(), now: t0(), expires_at: t0() };
    assert!(!store.rotate_session(&r).await.unwrap());
}

pub(crate) async fn revoking_is_idempotent_and_per_session(store: Arc<dyn Store>) {
    let alice = user(&store, "alice").await;
    let a = session(&store, alice).await;
    let b = session(&store, alice).await;
    assert_eq!(store.session_user(a.id, alice, t0()).await.unwrap().unwrap().user.id, alice);
    assert!(store.session_user(a.id, UserId::new(), t0()).await.unwrap().is_none(), "someone else's session");
    assert!(store.session_user(a.id, alice, t0() + Duration::from_secs(3601)).await.unwrap().is_none(), "expired");
    assert!(store.revoke_session(a.id, t0()).await.unwrap());
    assert!(store.session_user(a.id, alice, t0()).await.unwrap().is_none(), "revoked");
    assert!(!store.revoke_session(a.id, t0()).await.unwrap());
    assert!(!store.revoke_session(SessionId::new(), t0()).await.unwrap());
    assert!(store.session(b.id).await.unwrap().unwrap().revoked_at.is_none());
    assert_eq!(store.revoke_user_sessions(alice, None, t0()).await.unwrap(), 1);
}

pub(crate) async fn deleting_a_user_cascades_and_enqueues_user_deleted(store: Arc<dyn Store>) {
    let alice = user(&store, "alice").await;
    let bob = user(&store, "bob").await;
    let s = session(&store, alice).await;
    store.add_favorites(alice, &tracks("1,2"), t0()).await.unwrap();
    store.add_favorites(bob, &tracks("1"), t0()).await.unwrap();
    assert!(store.delete_user(alice, t0()).await.unwrap());
    assert!(!store.delete_user(alice, t0()).await.unwrap());
    assert!(store.find_user(UserKey::Id(alice)).await.unwrap().is_none());
    assert!(store.session(s.id).await.unwrap().is_none());
    assert!(store.list_favorites(alice, None, 10).await.unwrap().is_empty());
    assert_eq!(store.list_favorites(bob, None, 10).await.unwrap().len(), 1);
    let tasks = store.list_tasks(None, None, 100).await.unwrap();
    let last = tasks.last().unwrap();
    assert_eq!((last.kind, last.user_id, last.track_id.clone()), (TaskKind::UserDeleted, alice, None));
    // The name and email are free again.
    user(&store, "alice").await;
}

pub(crate) async fn disabling_revokes_every_session(store: Arc<dyn Store>) {
    let alice = user(&store, "alice").await;
    let s = session(&store, alice).await;
    assert!(store.set_disabled(alice, true, t0()).await.unwrap());
    assert_eq!(store.find_user(UserKey::Id(alice)).await.unwrap().unwrap().user.disabled_at, Some(t0()));
    assert!(store.session(s.id).await.unwrap().unwrap().revoked_at.is_some());
    assert!(store.set_disabled(alice, false, t0()).await.unwrap());
    assert_eq!(store.find_user(UserKey::Id(alice)).await.unwrap().unwrap().user.disabled_at, None);
    assert!(!store.set_disabled(UserId::new(), true, t0()).await.unwrap());
}

pub(crate) async fn favorites_are_idempotent_and_write_exactly_one_task_per_change(store: Arc<dyn Store>) {
    let alice = user(&store, "alice").await;
    assert_eq!(store.add_favorites(alice, &tracks("a,b"), t0()).await.unwrap(), 2);
    let later = t0() + Duration::from_secs(60);
    assert_eq!(store.add_favorites(alice, &tracks("a"), later).await.unwrap(), 0);
    let listed = store.list_favorites(alice, None, 10).await.unwrap();
    assert!(listed.iter().all(|f| f.added_at == t0()), "adding again keeps the first added_at");
    assert_eq!(store.remove_favorites(alice, &tracks("a,zzz"), later).await.unwrap(), 1);
    assert_eq!(store.remove_favorites(alice, &tracks("a"), later).await.unwrap(), 0);
    assert_eq!(store.favorites_contain(alice, &tracks("a,b,c")).await.unwrap(), [false, true, false]);
    let tasks = store.list_tasks(Some(TaskStatus::Pending), None, 100).await.unwrap();
    let summary: Vec<_> = tasks.iter().map(|t| (t.kind, t.track_id.as_ref().unwrap().as_str(), t.user_id)).collect();
    assert_eq!(
        summary,
        [
            (TaskKind::FavoriteAdded, "a", alice),
            (TaskKind::FavoriteAdded, "b", alice),
            (TaskKind::FavoriteRemoved, "a", alice)
        ]
    );
    assert!(tasks.windows(2).all(|w| w[0].id < w[1].id), "task ids increase");
    assert_eq!(tasks[2].occurred_at, later);
    assert!(tasks.iter().all(|t| t.attempts == 0 && t.last_error.is_none() && t.available_at == t.occurred_at));
    let after_first = store.list_tasks(None, Some(tasks[0].id), 100).await.unwrap();
    assert_eq!(after_first.len(), 2);
}

pub(crate) async fn favorites_list_newest_first_with_keyset_pages(store: Arc<dyn Store>) {
    let alice = user(&store, "alice").await;
    let bob = user(&store, "bob").await;
    // Same timestamp for all: insertion order alone must decide.
    for id in ["t1", "t2", "t3", "t4", "t5"] {
        store.add_favorites(alice, &tracks(id), t0()).await.unwrap();
    }
    store.add_favorites(bob, &tracks("b1"), t0()).await.unwrap();
    let first = store.list_favorites(alice, None, 2).await.unwrap();
    assert_eq!(first.iter().map(|f| f.track_id.as_str()).collect::<Vec<_>>(), ["t5", "t4"]);
    let second = store.list_favorites(alice, Some(first[1].seq), 2).await.unwrap();
    assert_eq!(second.iter().map(|f| f.track_id.as_str()).collect::<Vec<_>>(), ["t3", "t2"]);
    let last = store.list_favorites(alice, Some(second[1].seq), 2).await.unwrap();
    assert_eq!(last.iter().map(|f| f.track_id.as_str()).collect::<Vec<_>>(), ["t1"]);
    // Re-adding does not move a favorite to the front.
    store.add_favorites(alice, &tracks("t1"), t0()).await.unwrap();
    assert_eq!(store.list_favorites(alice, None, 1).await.unwrap()[0].track_id.as_str(), "t5");
}

pub(crate) async fn favorites_of_an_unknown_user_write_nothing(store: Arc<dyn Store>) {
    let ghost = UserId::new();
    assert!(matches!(store.add_favorites(ghost, &tracks("1,2"), t0()).await, Err(Error::UserNotFound)));
    assert!(store.list_tasks(None, None, 10).await.unwrap().is_empty());
}

/// Many requests of one user at once: each batch's tasks follow its request
/// order, and the user's tasks follow the order in which the favorites were
/// written, so the relay can never deliver a later change first.
pub(crate) async fn concurrent_favorite_changes_of_one_user_keep_tasks_in_commit_order(store: Arc<dyn Store>) {
    let alice = user(&store, "alice").await;
    let writes = (0..16).map(|i| {
        let store = store.clone();
        tokio::spawn(async move { store.add_favorites(alice, &tracks(&format!("{i}-c,{i}-a,{i}-b")), t0()).await })
    });
    for write in futures_util::future::join_all(writes).await {
        assert_eq!(write.unwrap().unwrap(), 3);
    }
    let tasks = store.list_tasks(None, None, 1000).await.unwrap();
    let task_order: Vec<String> = tasks.iter().map(|t| t.track_id.as_ref().unwrap().as_str().to_owned()).collect();
    let mut favorites = store.list_favorites(alice, None, 1000).await.unwrap();
    favorites.reverse();
    let favorite_order: Vec<String> = favorites.iter().map(|f| f.track_id.as_str().to_owned()).collect();
    assert_eq!(task_order, favorite_order);
    for batch in task_order.chunks(3) {
        let prefix = batch[0].split('-').next().unwrap();
        assert_eq!(batch, [format!("{prefix}-c"), format!("{prefix}-a"), format!("{prefix}-b")], "{task_order:?}");
    }
    assert_eq!(store.remove_favorites(alice, &tracks("3-b,3-c,nope,3-a"), t0()).await.unwrap(), 3);
    let removed: Vec<String> = store
        .list_tasks(None, Some(tasks.last().unwrap().id), 10)
        .await
        .unwrap()
        .iter()
        .map(|t| t.track_id.as_ref().unwrap().as_str().to_owned())
        .collect();
    assert_eq!(removed, ["3-b", "3-c", "3-a"]);
}

/// Session checks at once (a backend may answer them in one batch): live
/// sessions find their user, revoked, expired or mismatched ones find nothing.
pub(crate) async fn concurrent_session_checks_each_get_their_own_answer(store: Arc<dyn Store>) {
    let mut cases = Vec::new();
    for i in 0..40 {
        let owner = user(&store, &format!("user{i}")).await;
        let s = session(&store, owner).await;
        let (asked_user, at, expected) = match i % 4 {
            0 => (owner, t0(), Some(owner)),
            1 => {
                store.revoke_session(s.id, t0()).await.unwrap();
                (owner, t0(), None)
            }
            2 => (owner, s.expires_at, None),
            _ => (UserId::new(), t0(), None),
        };
        cases.push((s.id, asked_user, at, expected));
    }
    let checks = cases.into_iter().map(|(sid, asked_user, at, expected)| {
        let store = store.clone();
        tokio::spawn(async move {
            let found = store.session_user(sid, asked_user, at).await.unwrap().map(|r| r.user.id);
            assert_eq!(found, expected, "session {sid:?}");
        })
    });
    for check in futures_util::future::join_all(checks).await {
        check.unwrap();
    }
}

/// Requests of several users at once, overlapping and mixed with requests for
/// a user that does not exist (a backend may run them in one batch): each
/// change is counted by exactly one request and has exactly one task, and
/// the unknown user's requests fail alone.
pub(crate) async fn concurrent_favorite_requests_count_each_change_once(store: Arc<dyn Store>) {
    let alice = user(&store, "alice").await;
    let bob = user(&store, "bob").await;
    let ghost = UserId::new();
    let requests = (0..30).map(|i| {
        let store = store.clone();
        let who = [ghost, alice, bob][i % 3];
        tokio::spawn(async move { (who, store.add_favorites(who, &tracks(&format!("shared,t{}", i / 6)), t0()).await) })
    });
    let mut counted = std::collections::HashMap::new();
    for request in futures_util::future::join_all(requests).await {
        let (who, outcome) = request.unwrap();
        if who == ghost {
            assert!(matches!(outcome, Err(Error::UserNotFound)), "{outcome:?}");
        } else {
            *counted.entry(who).or_insert(0) += outcome.unwrap();
        }
    }
    // Each of alice and bob asked for "shared" and t0..t4.
    assert_eq!(counted[&alice], 6);
    assert_eq!(counted[&bob], 6);
    let tasks = store.list_tasks(None, None, 1000).await.unwrap();
    assert_eq!(tasks.len(), 12);
    assert!(tasks.iter().all(|t| t.user_id != ghost));
    let removals = [alice, ghost, alice].map(|who| {
        let store = store.clone();
        tokio::spawn(async move { store.remove_favorites(who, &tracks("shared,t1"), t0()).await.unwrap() })
    });
    let removed: u64 = futures_util::future::join_all(removals).await.into_iter().map(|r| r.unwrap()).sum();
    assert_eq!(removed, 2);
    assert_eq!(store.list_tasks(None, Some(tasks[11].id), 100).await.unwrap().len(), 2);
}

pub(crate) async fn users_list_oldest_first_with_keyset_pages(store: Arc<dyn Store>) {
    let mut ids = Vec::new();
    for name in ["user1", "user2", "user3", "user4", "user5"] {
        ids.push(user(&store, name).await);
    }
    let first = store.list_users(None, 2).await.unwrap();
    assert_eq!(first.iter().map(|u| u.id).collect::<Vec<_>>(), ids[..2]);
    let rest = store.list_users(Some(first[1].id), 10).await.unwrap();
    assert_eq!(rest.iter().map(|u| u.id).collect::<Vec<_>>(), ids[2..]);
}

pub(crate) async fn secrets_are_created_once_under_concurrency(store: Arc<dyn Store>) {
    let handles: Vec<_> = (0..8u8)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move { store.get_or_insert_secret("jwt.test", &[i; 32], t0()).await.unwrap() })
        })
        .collect();
    let mut seen = Vec::new();
    for h in handles {
        seen.push(h.await.unwrap());
    }
    assert!(seen.windows(2).all(|w| w[0] == w[1]), "every caller got the same secret");
    assert_eq!(store.get_or_insert_secret("jwt.test", &[99; 32], t0()).await.unwrap(), seen[0]);
}

pub(crate) async fn roles_change_and_sessions_of_unknown_users_are_refused(store: Arc<dyn Store>) {
    let alice = user(&store, "alice").await;
    assert!(store.set_role(alice, Role::Admin, t0()).await.unwrap());
    assert_eq!(store.find_user(UserKey::Id(alice)).await.unwrap().unwrap().user.role, Role::Admin);
    assert!(!store.set_role(UserId::new(), Role::Admin, t0()).await.unwrap());
    let mut ghost = SessionRecord { user_id: UserId::new(), ..session(&store, alice).await };
    ghost.id = SessionId::new();
    let ghost = NewSession { session: ghost, credential_version: 0, rehash: None };
    assert!(!store.open_session(&ghost).await.unwrap(), "no session for an unknown user");
    assert!(store.session(ghost.session.id).await.unwrap().is_none());
    store.ping().await.unwrap();
}

pub(crate) async fn concurrent_login_attempts_reserve_no_more_checks_than_the_lockout_allows(store: Arc<dyn Store>) {
    let alice = user(&store, "alice").await;
    let now = t0();
    let barrier = Arc::new(tokio::sync::Barrier::new(40));
    let handles: Vec<_> = (0..40)
        .map(|_| {
            let (store, barrier) = (store.clone(), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                let rule = Box::new(move |n: u32| (n >= 5).then(|| now + Duration::from_secs(3600)));
                store.reserve_login_attempt(alice, now, rule).await.unwrap().unwrap()
            })
        })
        .collect();
    let mut allowed = Vec::new();
    for h in handles {
        match h.await.unwrap() {
            LoginAttempt::Allowed { failures } => allowed.push(failures),
            LoginAttempt::Locked { until } => assert_eq!(until, now + Duration::from_secs(3600)),
        }
    }
    allowed.sort_unstable();
    assert_eq!(allowed, [1, 2, 3, 4, 5], "exactly the allowed checks, each counted once");
    let record = store.find_user(UserKey::Id(alice)).await.unwrap().unwrap();
    assert_eq!(record.failed_logins, 5);
    // Once the lock has passed, the next attempt is counted again.
    let later = now + Duration::from_secs(3601);
    let attempt = store.reserve_login_attempt(alice, later, Box::new(|_| None)).await.unwrap();
    assert_eq!(attempt, Some(LoginAttempt::Allowed { failures: 6 }));
    assert_eq!(store.reserve_login_attempt(UserId::new(), now, Box::new(|_| None)).await.unwrap(), None);
    store.reset_login_failures(alice).await.unwrap();
    let record = store.find_user(UserKey::Id(alice)).await.unwrap().unwrap();
    assert_eq!((record.failed_logins, record.locked_until), (0, None));
}

pub(crate) async fn a_session_opens_only_for_the_credential_the_login_verified(store: Arc<dyn Store>) {
    let alice = user(&store, "alice").await;
    let before = store.find_user(UserKey::Id(alice)).await.unwrap().unwrap();
    store.reserve_login_attempt(alice, t0(), Box::new(|_| None)).await.unwrap();
    let changes = UserChanges { password_hash: Some("$argon2id$new".into()), ..UserChanges::default() };
    let after = store.update_user(alice, &changes, t0()).await.unwrap().unwrap();
    assert!(after.credential_version > before.credential_version, "a password change is a new credential");

    // A login that verified the old password opens nothing and writes no hash.
    let stale = SessionRecord { id: SessionId::new(), ..session(&store, alice).await };
    let old_login = NewSession {
        session: stale.clone(),
        credential_version: before.credential_version,
        rehash: Some("$argon2id$old-rehashed".into()),
    };
    assert!(!store.open_session(&old_login).await.unwrap());
    assert!(store.session(stale.id).await.unwrap().is_none());
    let now = store.find_user(UserKey::Id(alice)).await.unwrap().unwrap();
    assert_eq!(now.password_hash, "$argon2id$new");

    // A login that verified the current one opens, stores its rehash and
    // clears the failure count.
    let fresh = SessionRecord { id: SessionId::new(), ..stale };
    let login = NewSession {
        session: fresh.clone(),
        credential_version: after.credential_version,
        rehash: Some("$argon2id$new-rehashed".into()),
    };
    assert!(store.open_session(&login).await.unwrap());
    assert!(store.session(fresh.id).await.unwrap().is_some());
    let now = store.find_user(UserKey::Id(alice)).await.unwrap().unwrap();
    assert_eq!((now.password_hash.as_str(), now.failed_logins), ("$argon2id$new-rehashed", 0));
    assert_eq!(now.credential_version, after.credential_version, "a rehash is the same credential");

    // Disabled: no session, whatever the version; enabling does not bump it.
    assert!(store.set_disabled(alice, true, t0()).await.unwrap());
    let disabled = store.find_user(UserKey::Id(alice)).await.unwrap().unwrap();
    assert!(disabled.credential_version > now.credential_version);
    let late = NewSession {
        session: SessionRecord { id: SessionId::new(), ..fresh.clone() },
        credential_version: disabled.credential_version,
        rehash: None,
    };
    assert!(!store.open_session(&late).await.unwrap());
    assert!(store.set_disabled(alice, false, t0()).await.unwrap());
    assert!(store.open_session(&late).await.unwrap());
}

pub(crate) async fn a_role_change_revokes_every_session_and_the_credential(store: Arc<dyn Store>) {
    let alice = user(&store, "alice").await;
    let first = session(&store, alice).await;
    let second = session(&store, alice).await;
    let before = store.find_user(UserKey::Id(alice)).await.unwrap().unwrap().credential_version;
    assert!(store.set_role(alice, Role::User, t0()).await.unwrap(), "no change");
    assert!(store.session(first.id).await.unwrap().unwrap().revoked_at.is_none(), "an unchanged role keeps sessions");
    assert!(store.set_role(alice, Role::Admin, t0()).await.unwrap());
    for s in [first.id, second.id] {
        assert!(store.session(s).await.unwrap().unwrap().revoked_at.is_some(), "every session ends");
    }
    let after = store.find_user(UserKey::Id(alice)).await.unwrap().unwrap().credential_version;
    assert!(after > before);
}

fn ids(claim: &super::Claim) -> Vec<i64> {
    claim.tasks.iter().map(|t| t.id).collect()
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

pub(crate) async fn claims_follow_id_order_and_keep_each_users_tasks_in_sequence(store: Arc<dyn Store>) {
    let alice = user(&store, "alice").await;
    let bob = user(&store, "bob").await;
    store.add_favorites(alice, &tracks("a1"), t0()).await.unwrap();
    store.add_favorites(bob, &tracks("b1"), t0()).await.unwrap();
    store.add_favorites(alice, &tracks("a2"), t0()).await.unwrap();
    let all = store.list_tasks(None, None, 10).await.unwrap();
    let (a1, b1, a2) = (all[0].id, all[1].id, all[2].id);

    let claim = store.claim_tasks(t0(), t0() + secs(30), 10).await.unwrap();
    assert_eq!(ids(&claim), [a1, b1, a2]);
    assert!(claim.tasks.iter().all(|t| t.leased_until == Some(t0() + secs(30))));
    assert!(store.claim_tasks(t0(), t0() + secs(30), 10).await.unwrap().tasks.is_empty(), "leased tasks are held");

    // a1 fails and backs off: a2 must wait for it, b1 is unaffected.
    assert!(store.fail_task(claim.lease_id, a1, "boom", Some(t0() + secs(60)), t0()).await.unwrap());
    assert_eq!(store.release_tasks(claim.lease_id, &[a2, b1], t0()).await.unwrap(), 2);
    let next = store.claim_tasks(t0(), t0() + secs(30), 10).await.unwrap();
    assert_eq!(ids(&next), [b1], "a2 waits behind a1");
    assert_eq!(store.complete_tasks(next.lease_id, &[b1], t0()).await.unwrap(), 1);

    let later = store.claim_tasks(t0() + secs(60), t0() + secs(90), 10).await.unwrap();
    assert_eq!(ids(&later), [a1, a2]);
    assert_eq!(later.tasks[0].attempts, 1);
    assert_eq!(later.tasks[0].last_error.as_deref(), Some("boom"));
}

pub(crate) async fn concurrent_claimers_never_share_a_task(store: Arc<dyn Store>) {
    for n in 0..20 {
        let u = user(&store, &format!("user{n}")).await;
        store.add_favorites(u, &tracks("t"), t0()).await.unwrap();
    }
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { store.claim_tasks(t0(), t0() + secs(30), 5).await.unwrap() })
        })
        .collect();
    let mut seen = Vec::new();
    for h in handles {
        seen.extend(ids(&h.await.unwrap()));
    }
    seen.sort();
    let before = seen.len();
    seen.dedup();
    assert_eq!((before, seen.len()), (20, 20));
}

pub(crate) async fn an_expired_lease_is_claimable_again_and_the_old_lease_cannot_settle(store: Arc<dyn Store>) {
    let alice = user(&store, "alice").await;
    store.add_favorites(alice, &tracks("a,b"), t0()).await.unwrap();
    let first = store.claim_tasks(t0(), t0() + secs(30), 10).await.unwrap();
    assert_eq!(first.tasks.len(), 2);
    let second = store.claim_tasks(t0() + secs(31), t0() + secs(61), 10).await.unwrap();
    assert_eq!(ids(&second), ids(&first), "a dead relay's tasks come back");
    assert_eq!(store.complete_tasks(first.lease_id, &ids(&first), t0()).await.unwrap(), 0);
    assert!(!store.fail_task(first.lease_id, first.tasks[0].id, "late", None, t0()).await.unwrap());
    assert_eq!(store.complete_tasks(second.lease_id, &ids(&second), t0()).await.unwrap(), 2);
    assert_eq!(store.count_tasks().await.unwrap(), TaskCounts { pending: 0, done: 2, dead: 0 });
}

pub(crate) async fn failures_back_off_then_die_and_dead_tasks_can_be_retried(store: Arc<dyn Store>) {
    let alice = user(&store, "alice").await;
    store.add_favorites(alice, &tracks("a,b"), t0()).await.unwrap();
    let claim = store.claim_tasks(t0(), t0() + secs(30), 1).await.unwrap();
    let id = claim.tasks[0].id;
    assert!(store.fail_task(claim.lease_id, id, "gone", None, t0()).await.unwrap());
    let dead = store.list_tasks(Some(TaskStatus::Dead), None, 10).await.unwrap();
    assert_eq!((dead.len(), dead[0].attempts, dead[0].last_error.as_deref()), (1, 1, Some("gone")));
    assert_eq!(store.count_tasks().await.unwrap(), TaskCounts { pending: 1, done: 0, dead: 1 });
    assert_eq!(store.count_waiting_tasks().await.unwrap(), WaitingTasks { pending: 1, dead: 1 });
    // A dead task does not block its user's later tasks.
    let next = store.claim_tasks(t0(), t0() + secs(30), 10).await.unwrap();
    assert_eq!(next.tasks.len(), 1);
    assert_ne!(next.tasks[0].id, id);
    assert_eq!(store.retry_dead_tasks(Some(id + 1000), t0()).await.unwrap(), 0);
    assert_eq!(store.retry_dead_tasks(None, t0() + secs(5)).await.unwrap(), 1);
    let retried = store.list_tasks(None, None, 10).await.unwrap().into_iter().find(|t| t.id == id).unwrap();
    assert_eq!((retried.status, retried.attempts, retried.available_at), (TaskStatus::Pending, 0, t0() + secs(5)));
}

pub(crate) async fn only_done_tasks_delivered_before_the_cutoff_are_purged_oldest_first(store: Arc<dyn Store>) {
    let alice = user(&store, "alice").await;
    let bob = user(&store, "bob").await;
    store.add_favorites(alice, &tracks("a,b,c,d"), t0()).await.unwrap();
    store.add_favorites(bob, &tracks("x,y"), t0()).await.unwrap();
    let claim = store.claim_tasks(t0(), t0() + secs(30), 10).await.unwrap();
    let ids: Vec<i64> = claim.tasks.iter().map(|t| t.id).collect();
    assert_eq!(ids.len(), 6);
    // alice's first three delivered at t0+1, her fourth at t0+10; bob's first dies, his second is released.
    assert_eq!(store.complete_tasks(claim.lease_id, &ids[..3], t0() + secs(1)).await.unwrap(), 3);
    assert_eq!(store.complete_tasks(claim.lease_id, &ids[3..4], t0() + secs(10)).await.unwrap(), 1);
    assert!(store.fail_task(claim.lease_id, ids[4], "gone", None, t0() + secs(1)).await.unwrap());
    assert_eq!(store.release_tasks(claim.lease_id, &ids[5..], t0() + secs(1)).await.unwrap(), 1);
    let delivered = store.list_tasks(Some(TaskStatus::Done), None, 10).await.unwrap();
    assert_eq!(delivered.iter().map(|t| t.updated_at).collect::<Vec<_>>(), [1, 1, 1, 10].map(|s| t0() + secs(s)));

    // The limit holds and the oldest go first; the cutoff is exclusive.
    assert_eq!(store.purge_done_tasks(t0() + secs(5), 2).await.unwrap(), 2);
    let left: Vec<i64> = store.list_tasks(None, None, 10).await.unwrap().iter().map(|t| t.id).collect();
    assert_eq!(left, ids[2..]);
    assert_eq!(store.purge_done_tasks(t0() + secs(10), 100).await.unwrap(), 1);
    assert_eq!(store.purge_done_tasks(t0() + secs(10), 100).await.unwrap(), 0);
    // Dead and pending tasks stay, whatever their age.
    assert_eq!(store.purge_done_tasks(t0() + secs(3600), 100).await.unwrap(), 1);
    assert_eq!(store.count_tasks().await.unwrap(), TaskCounts { pending: 1, done: 0, dead: 1 });
    assert_eq!(store.count_waiting_tasks().await.unwrap(), WaitingTasks { pending: 1, dead: 1 });
}

pub(crate) async fn an_update_bound_to_a_credential_version_loses_to_a_change_in_between(store: Arc<dyn Store>) {
    let alice = user(&store, "alice").await;
    let verified = store.find_user(UserKey::Id(alice)).await.unwrap().unwrap().credential_version;
    let first = UserChanges {
        password_hash: Some("$argon2id$first".into()),
        expected_credential_version: Some(verified),
        ..UserChanges::default()
    };
    assert!(store.update_user(alice, &first, t0()).await.unwrap().is_some());
    // Checked against the same version, applied after the first: refused, nothing written.
    let second = UserChanges {
        email: Some(Email::parse("mallory@example.com").unwrap()),
        password_hash: Some("$argon2id$second".into()),
        expected_credential_version: Some(verified),
        ..UserChanges::default()
    };
    assert!(store.update_user(alice, &second, t0()).await.unwrap().is_none());
    let now = store.find_user(UserKey::Id(alice)).await.unwrap().unwrap();
    assert_eq!((now.password_hash.as_str(), now.user.email.as_str()), ("$argon2id$first", "alice@example.com"));
    // Unbound changes (no current password given) apply as before.
    let rename = UserChanges { username: Some(Username::parse("alicia").unwrap()), ..UserChanges::default() };
    assert!(store.update_user(alice, &rename, t0()).await.unwrap().is_some());
}
