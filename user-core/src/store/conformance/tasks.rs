//! Conformance cases of `TaskStore`.

use super::*;

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
