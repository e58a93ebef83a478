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
        email: Email::parse(&format!("{name}@example.com")).unwrap(),
        password_hash: "$argon2id$upgraded".into(),
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
    same_name.email = Email::parse("other@example.com").unwrap();
    let taken = store.upgrade_guest(&same_name).await;
    assert!(matches!(taken, Err(Error::Conflict(ConflictField::Username))), "{taken:?}");
    let mut same_address = upgrade(id, "fresh");
    same_address.email = Email::parse("taken@example.com").unwrap();
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
