//! Conformance cases of `UserStore` and `SecretStore`.

use super::*;

pub(crate) async fn usernames_are_unique_case_insensitively_under_concurrent_inserts(store: Arc<dyn Store>) {
    let handles: Vec<_> = (0..16)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                let mut r = record(if i % 2 == 0 { "Racer" } else { "rACER" });
                r.user.email = Some(Email::parse(&format!("racer{i}@example.com")).unwrap());
                store.insert_user(&r, &[]).await
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
    assert_eq!(store.list_users(None, 100, GuestFilter::Include).await.unwrap().len(), 1);
}

pub(crate) async fn emails_are_unique(store: Arc<dyn Store>) {
    user(&store, "alice").await;
    let mut other = record("bob");
    other.user.email = Some(Email::parse("ALICE@example.com").unwrap());
    assert!(matches!(store.insert_user(&other, &[]).await, Err(Error::Conflict(ConflictField::Email))));
}

pub(crate) async fn users_are_found_by_id_username_in_any_case_and_email(store: Arc<dyn Store>) {
    let r = record("Alice");
    store.insert_user(&r, &[]).await.unwrap();
    let by_id = store.find_user(UserKey::Id(r.user.id)).await.unwrap().unwrap();
    assert_eq!(by_id, r, "the stored record reads back unchanged");
    let lower = Username::parse("alice").unwrap();
    assert_eq!(store.find_user(UserKey::Username(&lower)).await.unwrap().unwrap().user.id, r.user.id);
    assert_eq!(
        store.find_user(UserKey::Email(r.user.email.as_ref().unwrap())).await.unwrap().unwrap().user.id,
        r.user.id
    );
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
    assert_eq!(
        (updated.user.username.as_ref().unwrap().as_str(), updated.user.email.as_ref().unwrap().as_str()),
        ("ALICE", "alice@example.com")
    );
    assert_eq!(updated.user.updated_at, later);
    assert!(store.update_user(UserId::new(), &own_case, later).await.unwrap().is_none());
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

pub(crate) async fn users_list_oldest_first_with_keyset_pages(store: Arc<dyn Store>) {
    let mut ids = Vec::new();
    for name in ["user1", "user2", "user3", "user4", "user5"] {
        ids.push(user(&store, name).await);
    }
    let first = store.list_users(None, 2, GuestFilter::Include).await.unwrap();
    assert_eq!(first.iter().map(|u| u.id).collect::<Vec<_>>(), ids[..2]);
    let rest = store.list_users(Some(first[1].id), 10, GuestFilter::Include).await.unwrap();
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
    assert_eq!(
        (now.password_hash.as_deref().unwrap(), now.user.email.as_ref().unwrap().as_str()),
        ("$argon2id$first", "alice@example.com")
    );
    // Unbound changes (no current password given) apply as before.
    let rename = UserChanges { username: Some(Username::parse("alicia").unwrap()), ..UserChanges::default() };
    assert!(store.update_user(alice, &rename, t0()).await.unwrap().is_some());
}

pub(crate) async fn the_last_active_admin_is_kept_even_when_two_demote_each_other_at_once(store: Arc<dyn Store>) {
    let a = user(&store, "alice").await;
    let b = user(&store, "bob").await;
    let plain = user(&store, "carol").await;
    // No admin at all: nothing to keep.
    assert!(set_disabled(&store, plain, true).await.unwrap());
    assert!(set_disabled(&store, plain, false).await.unwrap());
    for admin in [a, b] {
        assert!(set_role(&store, admin, Role::Admin).await.unwrap());
    }
    let barrier = Arc::new(tokio::sync::Barrier::new(2));
    let demote = |target: UserId| {
        let (store, barrier) = (store.clone(), barrier.clone());
        tokio::spawn(async move {
            barrier.wait().await;
            set_role(&store, target, Role::User).await
        })
    };
    let (first, second) = (demote(a), demote(b));
    let outcomes = [first.await.unwrap(), second.await.unwrap()];
    let refused = outcomes.iter().filter(|o| matches!(o, Err(Error::LastAdmin))).count();
    assert_eq!((outcomes.iter().filter(|o| o.is_ok()).count(), refused), (1, 1), "{outcomes:?}");
    let last = if outcomes[0].is_ok() { b } else { a };
    assert!(matches!(set_role(&store, last, Role::User).await, Err(Error::LastAdmin)));
    assert!(matches!(set_disabled(&store, last, true).await, Err(Error::LastAdmin)));
    assert!(matches!(store.delete_user(last, t0()).await, Err(Error::LastAdmin)));
    let kept = store.find_user(UserKey::Id(last)).await.unwrap().unwrap();
    assert_eq!((kept.user.role, kept.user.disabled_at), (Role::Admin, None), "refusals change nothing");
    // A disabled admin is no admin to fall back on; an active one is.
    assert!(set_role(&store, plain, Role::Admin).await.unwrap());
    assert!(set_disabled(&store, plain, true).await.unwrap());
    assert!(matches!(set_role(&store, last, Role::User).await, Err(Error::LastAdmin)));
    assert!(set_disabled(&store, plain, false).await.unwrap());
    assert!(set_role(&store, last, Role::User).await.unwrap());
    // Demoting or deleting someone who is not the last admin is never refused.
    assert!(store.delete_user(last, t0()).await.unwrap());
}

pub(crate) async fn an_account_change_applies_each_field_in_one_step(store: Arc<dyn Store>) {
    let alice = user(&store, "alice").await;
    let s = session(&store, alice).await;
    let found = store.find_user(UserKey::Id(alice)).await.unwrap().unwrap();
    assert_eq!(found.user.last_login_at, Some(t0()), "a login is the last login");
    let verify = AccountChanges { email_verified: Some(true), ..AccountChanges::default() };
    let now = store.change_account(alice, &verify, t0()).await.unwrap().unwrap();
    assert!(now.email_verified);
    assert!(store.session(s.id).await.unwrap().unwrap().revoked_at.is_none(), "verifying ends no session");
    let all = AccountChanges { role: Some(Role::Admin), disabled: Some(true), email_verified: Some(false) };
    let now = store.change_account(alice, &all, t0()).await.unwrap().unwrap();
    assert_eq!((now.role, now.disabled_at, now.email_verified), (Role::Admin, Some(t0()), false));
    assert!(store.session(s.id).await.unwrap().unwrap().revoked_at.is_some(), "a new role ends the sessions");
    let record = store.find_user(UserKey::Id(alice)).await.unwrap().unwrap();
    assert_eq!(record.credential_version, found.credential_version + 1, "one change, one new credential");
    assert!(store.change_account(UserId::new(), &verify, t0()).await.unwrap().is_none());
}

pub(crate) async fn search_finds_username_or_email_prefixes_oldest_first_in_pages(store: Arc<dyn Store>) {
    let mut made = Vec::new();
    for (name, email) in [
        ("Alice", "alice@example.com"),
        ("bob", "al.bob@example.com"),
        ("Al_x", "x@example.com"),
        ("alfred", "fred@example.com"),
        ("carol", "carol@example.com"),
    ] {
        let mut r = record(name);
        r.user.email = Some(Email::parse(email).unwrap());
        store.insert_user(&r, &[]).await.unwrap();
        made.push(r.user.id);
    }
    let names = |users: Vec<User>| users.into_iter().map(|u| u.display_name().to_owned()).collect::<Vec<_>>();
    let all_al = store.search_users("al", None, 10).await.unwrap();
    assert_eq!(names(all_al.clone()), ["Alice", "bob", "Al_x", "alfred"], "by username in any case, or email");
    let first = store.search_users("al", None, 2).await.unwrap();
    let rest = store.search_users("al", Some(first[1].id), 10).await.unwrap();
    assert_eq!(names(first.into_iter().chain(rest).collect()), names(all_al), "keyset pages");
    // LIKE's wildcards are plain characters in a prefix.
    assert_eq!(names(store.search_users("al_", None, 10).await.unwrap()), ["Al_x"]);
    assert!(store.search_users("a%", None, 10).await.unwrap().is_empty());
    assert_eq!(names(store.search_users("carol@example.com", None, 10).await.unwrap()), ["carol"]);
    assert!(store.search_users("zz", None, 10).await.unwrap().is_empty());
}

pub(crate) async fn search_pages_through_a_prefix_most_accounts_share(store: Arc<dyn Store>) {
    // More matches than either store's probe counts, so the other plan runs too;
    // `_` in the prefix is a plain character there as well.
    let tasks: Vec<_> = (0..8)
        .map(|t| {
            let store = store.clone();
            tokio::spawn(async move {
                for i in 0..520 {
                    let mut r = record(&format!("many_{t}x{i}"));
                    r.user.email = Some(Email::parse(&format!("many_{t}x{i}@example.com")).unwrap());
                    store.insert_user(&r, &[]).await.unwrap();
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let odd = user(&store, "manyx1").await;
    // Every match once, oldest first, for a prefix most accounts share and
    // for one a few hundred share.
    for (prefix, expected) in [("many_", 8 * 520), ("many_3x", 520)] {
        let mut seen = Vec::new();
        let mut after = None;
        loop {
            let page = store.search_users(prefix, after, 100).await.unwrap();
            assert!(page.iter().all(|u| u.id != odd && u.username.as_ref().unwrap().as_str().starts_with(prefix)));
            seen.extend(page.iter().map(|u| u.id));
            match page.last() {
                Some(last) if page.len() == 100 => after = Some(last.id),
                _ => break,
            }
        }
        assert!(seen.windows(2).all(|w| w[0] < w[1]), "oldest first, none twice");
        assert_eq!(seen.len(), expected, "{prefix}");
    }
}
