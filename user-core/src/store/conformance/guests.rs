//! Guests: nameless accounts that upgrade in place, and expire when idle.

use super::*;

/// A guest created at `at`: no username, address or password.
async fn guest(store: &Arc<dyn Store>, at: DateTime<Utc>) -> UserId {
    let mut r = record("unused");
    r.user.username = None;
    r.user.email = None;
    r.user.role = Role::Guest;
    r.user.created_at = at;
    r.user.updated_at = at;
    r.password_hash = None;
    store.insert_user(&r, &[]).await.unwrap();
    r.user.id
}

fn upgrade(id: UserId, name: &str) -> GuestUpgrade {
    GuestUpgrade {
        id,
        username: Username::parse(name).unwrap(),
        email: Some(Email::parse(&format!("{name}@example.com")).unwrap()),
        email_verified: false,
        password_hash: Some("$argon2id$upgraded".into()),
        identity: None,
        mails: Vec::new(),
        now: t0() + secs(60),
    }
}

pub(crate) async fn a_guest_upgrades_once_keeping_its_id_sessions_and_favorites(store: Arc<dyn Store>) {
    let id = guest(&store, t0()).await;
    let second = guest(&store, t0()).await;
    let found = store.find_user(UserKey::Id(id)).await.unwrap().unwrap();
    assert_eq!((found.user.username, found.user.email, found.password_hash), (None, None, None));
    let s = session(&store, id).await;
    store.add_favorites(id, &tracks("a,b"), t0()).await.unwrap();
    user(&store, "taken").await;
    let mut same_name = upgrade(id, "TAKEN");
    same_name.email = Some(Email::parse("other@example.com").unwrap());
    let taken = store.upgrade_guest(&same_name).await;
    assert!(matches!(taken, Err(Error::Conflict(ConflictField::Username))), "{taken:?}");
    let mut same_address = upgrade(id, "fresh");
    same_address.email = Some(Email::parse("taken@example.com").unwrap());
    assert!(matches!(store.upgrade_guest(&same_address).await, Err(Error::Conflict(ConflictField::Email))));
    // Twelve upgrades at once: one wins, the rest find no guest.
    let n = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let won = at_once(|| {
        let (store, i) = (store.clone(), n.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
        async move { store.upgrade_guest(&upgrade(id, &format!("racer{i}"))).await.unwrap().is_some() }
    })
    .await;
    assert_eq!(won, 1, "one upgrade wins");
    let now = store.find_user(UserKey::Id(id)).await.unwrap().unwrap();
    assert_eq!((now.user.id, now.user.role, now.user.email_verified), (id, Role::User, false));
    assert_eq!(now.password_hash.as_deref(), Some("$argon2id$upgraded"));
    assert!(store.session(s.id).await.unwrap().unwrap().revoked_at.is_none(), "its session lives on");
    assert_eq!(store.count_favorites(id).await.unwrap(), 2, "its favorites stay");
    assert!(store.upgrade_guest(&upgrade(second, "racer_late")).await.unwrap().is_some(), "another guest may");
    // By a provider: no password, the identity linked in the same step, or nothing.
    let third = guest(&store, t0()).await;
    let taken = crate::store::IdentityRecord {
        issuer: "https://id.example".into(),
        subject: "s".into(),
        provider: "example".into(),
        user: id,
        email: None,
        email_verified: false,
        linked_at: t0(),
    };
    assert!(store.link_identity(&taken, &[]).await.unwrap());
    let by_provider = GuestUpgrade {
        password_hash: None,
        email: None,
        identity: Some(crate::store::IdentityRecord { user: third, ..taken.clone() }),
        ..upgrade(third, "via_provider")
    };
    assert!(matches!(store.upgrade_guest(&by_provider).await, Err(Error::IdentityInUse)));
    let still = store.find_user(UserKey::Id(third)).await.unwrap().unwrap();
    assert_eq!((still.user.role, still.user.username), (Role::Guest, None), "nothing changed");
    let fresh = crate::store::IdentityRecord { subject: "fresh".into(), user: third, ..taken };
    let by_provider = GuestUpgrade { identity: Some(fresh), ..by_provider };
    let now = store.upgrade_guest(&by_provider).await.unwrap().unwrap();
    assert_eq!((now.user.role, now.password_hash), (Role::User, None));
    assert_eq!(store.identities(third).await.unwrap().len(), 1);
}

pub(crate) async fn listings_include_exclude_or_only_take_guests(store: Arc<dyn Store>) {
    let alice = user(&store, "alice").await;
    let g = guest(&store, t0()).await;
    let ids = |users: Vec<User>| users.into_iter().map(|u| u.id).collect::<Vec<_>>();
    assert_eq!(ids(store.list_users(None, 10, GuestFilter::Include).await.unwrap()), [alice, g]);
    assert_eq!(ids(store.list_users(None, 10, GuestFilter::Exclude).await.unwrap()), [alice]);
    assert_eq!(ids(store.list_users(None, 10, GuestFilter::Only).await.unwrap()), [g]);
    assert_eq!(ids(store.list_users(Some(alice), 10, GuestFilter::Only).await.unwrap()), [g]);
}

pub(crate) async fn idle_guests_are_deleted_with_a_task_and_active_ones_kept(store: Arc<dyn Store>) {
    let idle = guest(&store, t0()).await;
    let active = guest(&store, t0()).await;
    let fresh = guest(&store, t0() + secs(3 * 3600)).await;
    let account = user(&store, "alice").await;
    store.add_favorites(idle, &tracks("a"), t0()).await.unwrap();
    let used = session(&store, active).await;
    let later = t0() + secs(2 * 3600);
    let rotation = Rotation {
        session: used.id,
        expected_jti: used.refresh_jti,
        new_jti: Uuid::now_v7(),
        now: later,
        expires_at: later + secs(3600),
    };
    assert!(store.rotate_session(&rotation).await.unwrap(), "a refresh marks the guest active");
    let cutoff = t0() + secs(3600);
    let before = store.count_tasks().await.unwrap();
    assert_eq!(store.delete_idle_guests(cutoff, 100, later).await.unwrap(), 1);
    assert!(store.find_user(UserKey::Id(idle)).await.unwrap().is_none());
    for kept in [active, fresh, account] {
        assert!(store.find_user(UserKey::Id(kept)).await.unwrap().is_some());
    }
    let after = store.count_tasks().await.unwrap();
    assert_eq!(after.pending, before.pending + 1, "one user.deleted task");
    assert_eq!(store.delete_idle_guests(cutoff, 100, later).await.unwrap(), 0, "nothing left to delete");
}

pub(crate) async fn a_guest_merges_into_an_account_once_with_its_favorites(store: Arc<dyn Store>) {
    let alice = user(&store, "alice").await;
    let g = guest(&store, t0()).await;
    store.add_favorites(alice, &tracks("a"), t0()).await.unwrap();
    store.add_favorites(g, &tracks("a,b,c"), t0()).await.unwrap();
    let before = store.count_tasks().await.unwrap().pending;
    assert_eq!(store.merge_guest(alice, alice, t0()).await.unwrap(), None, "an account is no guest");
    assert_eq!(store.merge_guest(g, g, t0()).await.unwrap(), None, "not into itself");
    // Twelve merges at once: one moves the favorites.
    let merged = at_once(|| {
        let store = store.clone();
        async move { store.merge_guest(g, alice, t0()).await.unwrap().is_some() }
    })
    .await;
    assert_eq!(merged, 1);
    assert_eq!(store.count_favorites(alice).await.unwrap(), 3, "a, b, c: the one she had counts once");
    assert!(store.find_user(UserKey::Id(g)).await.unwrap().is_none(), "the guest is gone");
    let after = store.count_tasks().await.unwrap().pending;
    assert_eq!(after - before, 3, "favorite.added for b and c, user.deleted for the guest");
}
