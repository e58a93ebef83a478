//! Embedding `user-core` in your own warp application, without `user-server`:
//! the library holds every rule; your app only maps HTTP to it.
//!
//! `cargo run -p user-core --example embed` starts the app on a free port,
//! calls it, prints what happened and exits.

use std::convert::Infallible;

use user_core::domain::{Email, Login, Password, TrackBatch, Username};
use user_core::service::{ClientInfo, Registration};
use user_core::{ServiceConfig, UserService, store};
use warp::Filter;
use warp::http::StatusCode;

#[derive(serde::Deserialize)]
struct SignUp {
    username: String,
    email: String,
    password: String,
}

/// Maps the library's outcome to a reply: its status and public message.
fn reply<T: serde::Serialize>(result: Result<T, user_core::Error>) -> warp::reply::WithStatus<warp::reply::Json> {
    match result {
        Ok(body) => warp::reply::with_status(warp::reply::json(&body), StatusCode::OK),
        Err(e) => {
            let status = StatusCode::from_u16(e.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            warp::reply::with_status(warp::reply::json(&serde_json::json!({"error": e.public_message()})), status)
        }
    }
}

async fn sign_up_and_like(service: UserService, form: SignUp) -> Result<impl warp::Reply, Infallible> {
    let result = async {
        let password = Password::parse(&form.password)?;
        let user = service
            .register(
                Registration {
                    username: Username::parse(&form.username)?,
                    email: Email::parse(&form.email)?,
                    password: password.clone(),
                    locale: Default::default(),
                },
                &ClientInfo::default(),
            )
            .await?;
        let login = service.login(&Login::parse(&form.username)?, &password, &ClientInfo::default()).await?;
        let claims = service.authenticate(&login.tokens.access).await?;
        service.add_favorites(claims.sub, &TrackBatch::parse("welcome-track")?).await?;
        Ok(serde_json::json!({"id": user.id, "token": login.tokens.access}))
    }
    .await;
    Ok(reply(result))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // SQLite in memory here; "sqlite://app.db" or "postgres://…" in a real app.
    let store = store::open("sqlite::memory:").await?;
    store.migrate().await?;
    let service = UserService::new(store, ServiceConfig::default()).await?;

    let state = service.clone();
    let app = warp::path!("signup")
        .and(warp::post())
        .and(warp::any().map(move || state.clone()))
        .and(warp::body::content_length_limit(16 * 1024))
        .and(warp::body::json())
        .and_then(sign_up_and_like);

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(warp::serve(app).incoming(listener).run());

    // reqwest is built here with rustls on ring and no provider of its own:
    // a process installs one before its first client.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let http = reqwest::Client::new();
    let body = serde_json::json!({"username": "embedded", "email": "e@example.com", "password": "correct horse"});
    let first = http.post(format!("http://{addr}/signup")).json(&body).send().await?;
    println!("first sign-up: {}", first.status());
    assert_eq!(first.status(), 200);
    let again = http.post(format!("http://{addr}/signup")).json(&body).send().await?;
    let status = again.status();
    println!("second sign-up: {status} {}", again.text().await?);
    assert_eq!(status, 409);

    let tasks = service.list_tasks(None, &user_core::page::PageRequest::first(10)?).await?.items;
    println!("outbox: {:?}", tasks.iter().map(|t| (t.id, t.kind.as_str())).collect::<Vec<_>>());
    assert_eq!(tasks.len(), 1);
    Ok(())
}
