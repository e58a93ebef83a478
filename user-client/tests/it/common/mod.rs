//! A real `user-server` on an ephemeral loopback port, in this process,
//! over a SQLite file of its own that the test may open too.

use user_core::domain::Role;
use user_core::testing::SqliteDatabase;
use user_server::{Config, start};

pub struct TestServer {
    pub base: String,
    pub state: user_server::AppState,
    /// The server's database, open here too (as `user-cli` opens it beside a server).
    pub db: SqliteDatabase,
    _stop: tokio::sync::oneshot::Sender<()>,
}

pub async fn server() -> TestServer {
    server_with(|_| {}).await
}

/// A server with the test settings, changed by `configure`.
pub async fn server_with(configure: impl FnOnce(&mut Config)) -> TestServer {
    let db = SqliteDatabase::new().await;
    let mut config = Config::for_tests(&db.url);
    configure(&mut config);
    let server = start(&config).await.unwrap();
    let base = format!("http://{}", server.addr);
    let state = server.state.clone();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(server.run(async move {
        let _ = stopped.await;
    }));
    TestServer { base, state, db, _stop: stop }
}

impl TestServer {
    pub fn client(&self) -> user_client::Client {
        user_client::Client::new(&self.base).unwrap()
    }

    /// A client logged in as a new user `name` (password `correct horse`).
    pub async fn user(&self, name: &str) -> user_client::Client {
        let client = self.client();
        client.register(name, &format!("{name}@example.com"), "correct horse").await.unwrap();
        client.login(name, "correct horse").await.unwrap();
        client
    }

    /// A client logged in as a new admin `name`.
    pub async fn admin(&self, name: &str) -> user_client::Client {
        let client = self.client();
        let account = client.register(name, &format!("{name}@example.com"), "correct horse").await.unwrap();
        let promote = user_core::store::AccountChanges { role: Some(Role::Admin), ..Default::default() };
        self.state
            .service
            .change_account(user_core::domain::UserId::from_uuid(account.id), promote, &Default::default())
            .await
            .unwrap();
        client.login(name, "correct horse").await.unwrap();
        // The default policy restricts an admin without a second factor
        // until the session turns one on.
        let secret = client.totp_enroll(None).await.unwrap().secret;
        let code = user_core::auth::TotpSecret::from_base32(&secret).unwrap().code_at(chrono::Utc::now());
        client.totp_confirm(&code).await.unwrap();
        client
    }
}
