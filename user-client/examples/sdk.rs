//! Calling the API from Rust with `user-client`.
//!
//! Start a server (`cargo run -p user-server`), then:
//! `cargo run -p user-client --example sdk -- http://127.0.0.1:8080`

use futures_util::TryStreamExt;
use user_client::Client;

#[tokio::main]
async fn main() -> Result<(), user_client::Error> {
    let base = std::env::args().nth(1).unwrap_or_else(|| "http://127.0.0.1:8080".to_owned());
    let client = Client::new(base)?;

    // A fresh name each run, so the example can run again on the same database.
    let name = format!("listener{}", std::process::id());
    let account = client.register(&name, &format!("{name}@example.com"), "correct horse battery").await?;
    println!("registered {} ({})", account.username, account.id);

    client.login(&name, "correct horse battery").await?;
    client.add_favorites(&["spotify:track:1", "spotify:track:2", "42"]).await?;
    client.remove_favorites(&["spotify:track:1"]).await?;

    // Two per page, to show the cursors at work: the stream follows them.
    let favorites: Vec<String> = client.favorites(2).map_ok(|t| t.track_id).try_collect().await?;
    println!("favorites, newest first: {favorites:?}");
    assert_eq!(favorites, ["42", "spotify:track:2"]);

    match client.register(&name, "someone@example.com", "correct horse battery").await {
        Err(e) if e.is_conflict() => println!("registering {name} again: {e}"),
        other => panic!("expected a conflict, got {other:?}"),
    }
    client.logout().await?;
    Ok(())
}
