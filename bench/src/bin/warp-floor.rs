//! The reference floor for `bench/run`: a bare warp server answering
//! `GET /healthz` with the JSON `user-server` answers there, nothing else.
//! Our `/healthz` is measured against it with the same `wrk` flags.
//!
//! `warp-floor 127.0.0.1:8081`

use warp::Filter;

#[tokio::main]
async fn main() {
    let addr: std::net::SocketAddr =
        std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:8081".into()).parse().expect("an address");
    let healthz = warp::path!("healthz")
        .and(warp::get())
        .map(|| warp::reply::json(&serde_json::json!({ "message": "alive", "status": 200 })));
    warp::serve(healthz).run(addr).await;
}
