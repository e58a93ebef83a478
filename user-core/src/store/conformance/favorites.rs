//! Conformance cases of `FavoriteStore`.

use super::*;

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
    // Answers keep the question's order; another user's favorites never count.
    assert_eq!(store.favorites_contain(alice, &tracks("b,c,a")).await.unwrap(), [true, false, false]);
    let bob = user(&store, "bob").await;
    assert_eq!(store.favorites_contain(bob, &tracks("b")).await.unwrap(), [false]);
    assert_eq!(store.favorites_contain(alice, &[]).await.unwrap(), Vec::<bool>::new());
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
