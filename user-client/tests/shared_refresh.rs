//! Concurrent calls that all hit 401 share one refresh. In its own test binary
//! so the process-wide metrics count only this test's requests.

mod common;

use common::server;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_401s_share_a_single_refresh() {
    let srv = server().await;
    let client = srv.user("alice").await;
    client.set_access_token(Some("expired".into())).await;
    let calls = (0..8).map(|_| {
        let client = client.clone();
        tokio::spawn(async move { client.me().await })
    });
    for call in calls.collect::<Vec<_>>() {
        assert_eq!(call.await.unwrap().unwrap().username, "alice", "every caller succeeds");
    }
    let metrics = reqwest::get(format!("{}/metrics", srv.base)).await.unwrap().text().await.unwrap();
    let refreshes: Vec<&str> =
        metrics.lines().filter(|l| l.starts_with("http_requests_total{route=\"POST /user/refresh\"")).collect();
    assert_eq!(refreshes, ["http_requests_total{route=\"POST /user/refresh\",status=\"200\"} 1"], "{metrics}");
}
