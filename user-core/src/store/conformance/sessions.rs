//! Conformance cases of `SessionStore`.

use super::*;

pub(crate) async fn a_password_change_revokes_every_other_session_atomically(store: Arc<dyn Store>) {
    let alice = user(&store, "alice").await;
    let keep = session(&store, alice).await;
    let other = session(&store, alice).await;
    let changes =
        UserChanges { password_hash: Some("new-hash".into()), keep_session: Some(keep.id), ..Default::default() };
    let updated = store.update_user(alice, &changes, t0()).await.unwrap().unwrap();
    assert_eq!(updated.password_hash.as_deref(), Some("new-hash"));
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
    assert_eq!(store.session_user(a.id, alice, t0()).await.unwrap().unwrap().record.user.id, alice);
    assert!(store.session_user(a.id, UserId::new(), t0()).await.unwrap().is_none(), "someone else's session");
    assert!(store.session_user(a.id, alice, t0() + Duration::from_secs(3601)).await.unwrap().is_none(), "expired");
    assert!(store.revoke_session(a.id, t0()).await.unwrap());
    assert!(store.session_user(a.id, alice, t0()).await.unwrap().is_none(), "revoked");
    assert!(!store.revoke_session(a.id, t0()).await.unwrap());
    assert!(!store.revoke_session(SessionId::new(), t0()).await.unwrap());
    assert!(store.session(b.id).await.unwrap().unwrap().revoked_at.is_none());
    assert_eq!(store.revoke_user_sessions(alice, None, t0()).await.unwrap(), 1);
}

pub(crate) async fn disabling_revokes_every_session(store: Arc<dyn Store>) {
    let alice = user(&store, "alice").await;
    let s = session(&store, alice).await;
    assert!(set_disabled(&store, alice, true).await.unwrap());
    assert_eq!(store.find_user(UserKey::Id(alice)).await.unwrap().unwrap().user.disabled_at, Some(t0()));
    assert!(store.session(s.id).await.unwrap().unwrap().revoked_at.is_some());
    assert!(set_disabled(&store, alice, false).await.unwrap());
    assert_eq!(store.find_user(UserKey::Id(alice)).await.unwrap().unwrap().user.disabled_at, None);
    assert!(!set_disabled(&store, UserId::new(), true).await.unwrap());
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
            let found = store.session_user(sid, asked_user, at).await.unwrap().map(|r| r.record.user.id);
            assert_eq!(found, expected, "session {sid:?}");
        })
    });
    for check in futures_util::future::join_all(checks).await {
        check.unwrap();
    }
}

pub(crate) async fn roles_change_and_sessions_of_unknown_users_are_refused(store: Arc<dyn Store>) {
    let alice = user(&store, "alice").await;
    assert!(set_role(&store, alice, Role::Admin).await.unwrap());
    assert_eq!(store.find_user(UserKey::Id(alice)).await.unwrap().unwrap().user.role, Role::Admin);
    assert!(!set_role(&store, UserId::new(), Role::Admin).await.unwrap());
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
                store.reserve_login_attempt(alice, None, now, rule).await.unwrap().unwrap()
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
    let attempt = store.reserve_login_attempt(alice, None, later, Box::new(|_| None)).await.unwrap();
    assert_eq!(attempt, Some(LoginAttempt::Allowed { failures: 6 }));
    assert_eq!(store.reserve_login_attempt(UserId::new(), None, now, Box::new(|_| None)).await.unwrap(), None);
    store.reset_login_failures(alice).await.unwrap();
    let record = store.find_user(UserKey::Id(alice)).await.unwrap().unwrap();
    assert_eq!((record.failed_logins, record.locked_until), (0, None));
}

pub(crate) async fn a_session_opens_only_for_the_credential_the_login_verified(store: Arc<dyn Store>) {
    let alice = user(&store, "alice").await;
    let before = store.find_user(UserKey::Id(alice)).await.unwrap().unwrap();
    store.reserve_login_attempt(alice, None, t0(), Box::new(|_| None)).await.unwrap();
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
    assert_eq!(now.password_hash.as_deref(), Some("$argon2id$new"));

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
    assert_eq!((now.password_hash.as_deref().unwrap(), now.failed_logins), ("$argon2id$new-rehashed", 0));
    assert_eq!(now.credential_version, after.credential_version, "a rehash is the same credential");

    // Disabled: no session, whatever the version; enabling does not bump it.
    assert!(set_disabled(&store, alice, true).await.unwrap());
    let disabled = store.find_user(UserKey::Id(alice)).await.unwrap().unwrap();
    assert!(disabled.credential_version > now.credential_version);
    let late = NewSession {
        session: SessionRecord { id: SessionId::new(), ..fresh.clone() },
        credential_version: disabled.credential_version,
        rehash: None,
    };
    assert!(!store.open_session(&late).await.unwrap());
    assert!(set_disabled(&store, alice, false).await.unwrap());
    assert!(store.open_session(&late).await.unwrap());
}

pub(crate) async fn a_role_change_revokes_every_session_and_the_credential(store: Arc<dyn Store>) {
    let alice = user(&store, "alice").await;
    let first = session(&store, alice).await;
    let second = session(&store, alice).await;
    let before = store.find_user(UserKey::Id(alice)).await.unwrap().unwrap().credential_version;
    assert!(set_role(&store, alice, Role::User).await.unwrap(), "no change");
    assert!(store.session(first.id).await.unwrap().unwrap().revoked_at.is_none(), "an unchanged role keeps sessions");
    assert!(set_role(&store, alice, Role::Admin).await.unwrap());
    for s in [first.id, second.id] {
        assert!(store.session(s).await.unwrap().unwrap().revoked_at.is_some(), "every session ends");
    }
    let after = store.find_user(UserKey::Id(alice)).await.unwrap().unwrap().credential_version;
    assert!(after > before);
}

pub(crate) async fn live_sessions_are_listed_newest_first_with_their_device_names(store: Arc<dyn Store>) {
    let alice = user(&store, "alice").await;
    let bob = user(&store, "bob").await;
    let mut opened = Vec::new();
    for (minutes, device) in [(1, Some("Kitchen speaker")), (3, None), (2, Some("Pixel 8")), (4, None)] {
        let s = SessionRecord {
            id: SessionId::new(),
            created_at: t0() + Duration::from_secs(60 * minutes),
            device_name: device.map(str::to_owned),
            ..session_template(alice)
        };
        assert!(store.open_session(&login(&store, &s).await).await.unwrap());
        opened.push(s);
    }
    session(&store, bob).await;
    // One revoked, one expired: neither is listed.
    store.revoke_session(opened[3].id, t0()).await.unwrap();
    let expired = SessionRecord { id: SessionId::new(), expires_at: t0(), ..session_template(alice) };
    assert!(store.open_session(&login(&store, &expired).await).await.unwrap());
    let now = t0() + Duration::from_secs(1);
    let listed = store.list_sessions(alice, now).await.unwrap();
    let ids: Vec<SessionId> = listed.iter().map(|s| s.id).collect();
    assert_eq!(ids, [opened[1].id, opened[2].id, opened[0].id], "newest first, live only, alice's only");
    let names: Vec<Option<&str>> = listed.iter().map(|s| s.device_name.as_deref()).collect();
    assert_eq!(names, [None, Some("Pixel 8"), Some("Kitchen speaker")]);
    assert!(store.list_sessions(UserId::new(), now).await.unwrap().is_empty());
}

pub(crate) async fn the_audit_trail_filters_by_user_and_event_newest_first(store: Arc<dyn Store>) {
    let (alice, admin) = (UserId::new(), UserId::new());
    let entry = |event: &str, user: UserId, actor: Option<UserId>| AuditRecord {
        id: 0,
        created_at: t0(),
        event: event.to_owned(),
        user_id: Some(user),
        actor_id: actor,
        ip: Some("127.0.0.1".into()),
        user_agent: None,
        detail: None,
    };
    for e in [
        entry("login.success", alice, None),
        entry("role.change", alice, Some(admin)),
        entry("login.success", admin, None),
        entry("login.success", alice, None),
    ] {
        store.record_audit(&e).await.unwrap();
    }
    let list = |user: Option<UserId>, event: Option<&str>, before: Option<i64>| {
        let store = store.clone();
        let filter = AuditFilter { user, event: event.map(str::to_owned) };
        async move { store.list_audit(&filter, before, 10).await.unwrap() }
    };
    let all = list(None, None, None).await;
    assert_eq!(all.len(), 4);
    assert!(all.windows(2).all(|w| w[0].id > w[1].id), "newest first");
    assert_eq!(all[2].actor_id, Some(admin), "the acting admin is kept");
    let logins = list(Some(alice), Some("login.success"), None).await;
    assert_eq!(logins.iter().map(|e| e.id).collect::<Vec<_>>(), [all[0].id, all[3].id]);
    assert_eq!(list(Some(alice), Some("login.success"), Some(all[0].id)).await.len(), 1, "keyset");
    assert!(list(None, Some("nothing"), None).await.is_empty());
}

pub(crate) async fn a_session_keeps_when_it_last_proved_a_credential(store: Arc<dyn Store>) {
    let alice = user(&store, "alice").await;
    let signed_in = session(&store, alice).await;
    assert_eq!(store.session(signed_in.id).await.unwrap().unwrap().authenticated_at, Some(t0()));
    let delegated =
        SessionRecord { id: SessionId::new(), authenticated_at: None, amr: Amr::NONE, ..session_template(alice) };
    assert!(store.open_session(&login(&store, &delegated).await).await.unwrap());
    assert_eq!(store.session(delegated.id).await.unwrap().unwrap().authenticated_at, None, "a device grant's");
    let listed = store.list_sessions(alice, t0()).await.unwrap();
    let mut proofs: Vec<_> = listed.iter().map(|s| s.authenticated_at).collect();
    proofs.sort();
    assert_eq!(proofs, [None, Some(t0())]);

    // Proving a credential later (current_password) makes the session recent.
    let later = t0() + Duration::from_secs(600);
    assert!(store.record_authentication(delegated.id, later, Amr::PASSWORD, true).await.unwrap());
    assert_eq!(store.session(delegated.id).await.unwrap().unwrap().authenticated_at, Some(later));
    assert!(store.revoke_session(delegated.id, later).await.unwrap());
    let ended = store.record_authentication(delegated.id, later, Amr::PASSWORD, true).await.unwrap();
    assert!(!ended, "not for an ended session");
    assert!(!store.record_authentication(SessionId::new(), later, Amr::PASSWORD, true).await.unwrap());
}

pub(crate) async fn a_session_s_amr_grows_with_what_it_proves(store: Arc<dyn Store>) {
    let alice = user(&store, "alice").await;
    let signed_in = session(&store, alice).await;
    let amr_of = |id| {
        let store = store.clone();
        async move {
            let read = store.session(id).await.unwrap().unwrap().amr;
            let with_user = store.session_user(id, alice, t0()).await.unwrap().unwrap().amr;
            assert_eq!(read, with_user, "the session and its account read alike");
            read
        }
    };
    assert_eq!(amr_of(signed_in.id).await, Amr::PASSWORD);
    // A second factor confirmed from the session, without counting as a recent sign-in.
    let later = t0() + Duration::from_secs(60);
    assert!(store.record_authentication(signed_in.id, later, Amr::of(&[AuthMethod::Otp]), false).await.unwrap());
    assert_eq!(amr_of(signed_in.id).await, Amr::of(&[AuthMethod::Pwd, AuthMethod::Otp]));
    assert!(amr_of(signed_in.id).await.is_multi_factor());
    assert_eq!(store.session(signed_in.id).await.unwrap().unwrap().authenticated_at, Some(t0()), "not recent");
    // Methods only ever add.
    assert!(store.record_authentication(signed_in.id, later, Amr::PASSWORD, true).await.unwrap());
    assert_eq!(amr_of(signed_in.id).await, Amr::of(&[AuthMethod::Pwd, AuthMethod::Otp]));
    assert_eq!(store.session(signed_in.id).await.unwrap().unwrap().authenticated_at, Some(later));

    // Twelve step-ups at once, each adding another method: none is lost.
    let guest = SessionRecord { id: SessionId::new(), amr: Amr::NONE, ..session_template(alice) };
    assert!(store.open_session(&login(&store, &guest).await).await.unwrap());
    let barrier = Arc::new(tokio::sync::Barrier::new(12));
    let methods = [AuthMethod::Pwd, AuthMethod::Fed, AuthMethod::Pop, AuthMethod::User, AuthMethod::Otp];
    let tasks: Vec<_> = (0..12)
        .map(|i| {
            let (store, barrier) = (store.clone(), barrier.clone());
            let proved = Amr::of(&[methods[i % methods.len()]]);
            tokio::spawn(async move {
                barrier.wait().await;
                store.record_authentication(guest.id, later, proved, false).await.unwrap()
            })
        })
        .collect();
    for task in tasks {
        assert!(task.await.unwrap());
    }
    assert_eq!(amr_of(guest.id).await, Amr::of(&methods));
}

pub(crate) async fn a_device_cookie_counts_its_own_failures_and_ends_with_the_sessions(store: Arc<dyn Store>) {
    let alice = user(&store, "alice").await;
    let bob = user(&store, "bob").await;
    let now = t0();
    let year = now + Duration::from_secs(365 * 86_400);
    let lock = move |n: u32| (n >= 5).then(|| now + Duration::from_secs(3600));
    assert!(store.remember_device(alice, None, [1; 32], now, year).await.unwrap(), "a new cookie to set");
    assert!(!store.remember_device(alice, Some([1; 32]), [2; 32], now, year).await.unwrap(), "kept, none new");
    assert!(store.remember_device(alice, Some([9; 32]), [3; 32], now, year).await.unwrap(), "unknown: a new one");

    // Someone else locks the account; the device still gets its own tries.
    for _ in 0..5 {
        store.reserve_login_attempt(alice, None, now, Box::new(lock)).await.unwrap();
    }
    let locked = store.reserve_login_attempt(alice, None, now, Box::new(lock)).await.unwrap();
    assert!(matches!(locked, Some(LoginAttempt::Locked { .. })), "{locked:?}");
    let own = store.reserve_login_attempt(alice, Some([1; 32]), now, Box::new(lock)).await.unwrap();
    assert_eq!(own, Some(LoginAttempt::Allowed { failures: 1 }), "held only by its own count");
    let foreign = store.reserve_login_attempt(bob, Some([1; 32]), now, Box::new(lock)).await.unwrap();
    assert_eq!(foreign, Some(LoginAttempt::Allowed { failures: 1 }), "alice's cookie counts as none for bob");
    let forged = store.reserve_login_attempt(alice, Some([7; 32]), now, Box::new(lock)).await.unwrap();
    assert!(matches!(forged, Some(LoginAttempt::Locked { .. })), "an unknown cookie is no cookie: {forged:?}");
    let expired = store.reserve_login_attempt(alice, Some([3; 32]), year, Box::new(lock)).await.unwrap();
    assert_eq!(expired, Some(LoginAttempt::Allowed { failures: 6 }), "expired: the account's count");

    // Guesses sent at once through one cookie get no more checks than the lockout allows.
    let barrier = Arc::new(tokio::sync::Barrier::new(20));
    let guesses = (0..20).map(|_| {
        let (store, barrier) = (store.clone(), barrier.clone());
        tokio::spawn(async move {
            barrier.wait().await;
            store.reserve_login_attempt(alice, Some([3; 32]), now, Box::new(lock)).await.unwrap().unwrap()
        })
    });
    let allowed = futures_util::future::join_all(guesses)
        .await
        .into_iter()
        .filter(|g| matches!(g.as_ref().unwrap(), LoginAttempt::Allowed { .. }))
        .count();
    assert_eq!(allowed, 5);

    // A success clears the cookie's count; ending every session voids the cookies.
    assert!(!store.remember_device(alice, Some([3; 32]), [4; 32], now, year).await.unwrap());
    let cleared = store.reserve_login_attempt(alice, Some([3; 32]), now, Box::new(lock)).await.unwrap();
    assert_eq!(cleared, Some(LoginAttempt::Allowed { failures: 1 }));
    store.revoke_user_sessions(alice, None, now).await.unwrap();
    let voided = store.reserve_login_attempt(alice, Some([3; 32]), now, Box::new(lock)).await.unwrap();
    assert!(matches!(voided, Some(LoginAttempt::Locked { .. })), "void: the account's lock applies");
    assert!(store.remember_device(alice, Some([1; 32]), [5; 32], now, year).await.unwrap(), "void: set anew");
    assert_eq!(store.purge_expired_tokens(year, 100).await.unwrap(), 1, "the one left expires with its year");
}
