//! Concurrent calls that all hit 401 share one refresh.

use crate::common::server;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_401s_share_a_single_refresh() {
    let srv = server().await;
    let client = srv.user("alice").await;
    let service = &srv.state.service;
    let now = chrono::Utc::now();
    let first = client.save_session().await.refresh_token.unwrap();
    let first = service.tokens().verify_refresh(&first, now).unwrap();
    client.set_access_token(Some("expired".into())).await;
    let calls = (0..8).map(|_| {
        let client = client.clone();
        tokio::spawn(async move { client.me().await })
    });
    for call in calls.collect::<Vec<_>>() {
        assert_eq!(call.await.unwrap().unwrap().username.as_deref(), Some("alice"), "every caller succeeds");
    }
    // One rotation, from the token the client started with: a second one
    // would have presented the rotated token (and moved `previous_jti` on to
    // it), and a duplicate with the first token would have been refused,
    // failing its caller above.
    let last = client.save_session().await.refresh_token.unwrap();
    let last = service.tokens().verify_refresh(&last, now).unwrap();
    let session = srv.db.store.session(first.sid).await.unwrap().unwrap();
    assert_eq!((session.previous_jti, session.refresh_jti), (Some(first.jti), last.jti));
    assert_eq!(session.revoked_at, None);
}
