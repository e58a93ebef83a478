//! Favorites through the service.

use super::*;

#[test]
fn favorite_batches_hold_one_to_fifty_distinct_ids() {
    let ids = |n: usize| (0..n).map(|n| TrackId::parse(&n.to_string()).unwrap()).collect::<Vec<_>>();
    for refused in [ids(51), ids(0)] {
        assert!(matches!(TrackBatch::new(refused), Err(e) if e.field == "track_id"));
    }
    assert_eq!(TrackBatch::new(ids(50)).unwrap().len(), 50);
    // A repeated id counts once: 50 distinct ones and a repeat are a batch.
    let mut repeated = ids(50);
    repeated.push(repeated[0].clone());
    assert_eq!(TrackBatch::new(repeated).unwrap().len(), 50);
}

#[tokio::test]
async fn generated_signing_keys_are_kept_in_the_store_so_restarts_keep_sessions() {
    for signing in [SigningConfig::GeneratedHs256, SigningConfig::GeneratedEd25519] {
        let app = app_with(ServiceConfig { signing: signing.clone(), ..config() }).await;
        app.register("alice").await;
        let tokens = app.login("alice").await;
        let restarted =
            UserService::with_clock(app.store.clone(), ServiceConfig { signing, ..config() }, app.clock.clone())
                .await
                .unwrap();
        restarted.authenticate(&tokens.access).await.unwrap();
        assert_eq!(restarted.tokens().keys().signing_kid(), app.service.tokens().keys().signing_kid());
    }
}
