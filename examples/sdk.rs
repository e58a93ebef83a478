//! Calling the API from Rust with `user-client`.
//!
//! Start a server (`cargo run -p user-server`), then:
//! `cargo run -p examples --example sdk -- http://127.0.0.1:8080`

use futures_util_free::collect_all;
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

    let favorites = collect_all(&client).await?;
    println!("favorites, newest first: {favorites:?}");
    assert_eq!(favorites, ["42", "spotify:track:2"]);

    match client.register(&name, "someone@example.com", "correct horse battery").await {
        Err(e) if e.is_conflict() => println!("registering {name} again: {e}"),
        other => panic!("expected a conflict, got {other:?}"),
    }
    client.logout().await?;
    Ok(())
}

/// Follows the cursors of `GET /user/track/favorite` page by page.
mod futures_util_free {
    pub async fn collect_all(client: &user_client::Client) -> Result<Vec<String>, user_client::Error> {
        let mut ids = Vec::new();
        let mut cursor = None;
        loop {
            let page = client.list_favorites(Some(2), cursor.as_deref()).await?;
            ids.extend(page.tracks.into_iter().map(|t| t.track_id));
            match page.next_cursor {
                Some(next) => cursor = Some(next),
                None => return Ok(ids),
            }
        }
    }
}
