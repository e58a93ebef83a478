//! Horizontal scale: three `user-server` processes on one PostgreSQL database,
//! a client round-robining over them. Needs PostgreSQL (see
//! `user_core::testing`); skipped with a printed reason when there is none
//! and `USER_TEST_REQUIRE_POSTGRES` is not set.

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use crate::common::process::{SECRET, Server, eventually, start_receiver};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

struct Cluster {
    replicas: Vec<Server>,
    next: AtomicUsize,
    client: reqwest::Client,
}

impl Cluster {
    fn start(database: &str, webhook: &str) -> Cluster {
        let env = [
            ("USER_DATABASE_URL", database.to_owned()),
            ("USER_DATABASE_MAX_CONNECTIONS", "5".to_owned()),
            ("USER_TASKS_WEBHOOK_URL", webhook.to_owned()),
            ("USER_TASKS_WEBHOOK_SECRET", SECRET.to_owned()),
            ("USER_TASKS_LEASE", "2s".to_owned()),
            ("USER_TASKS_BACKOFF_BASE", "50ms".to_owned()),
            ("USER_REFRESH_GRACE", "0s".to_owned()),
            // Many clients' worth of requests come from one address here.
            ("USER_RATE_LIMIT", "off".to_owned()),
        ];
        Self::start_with(&env)
    }

    /// Three replicas with `env`, started together, so they race to create
    /// the schema and the signing key.
    fn start_with(env: &[(&'static str, String)]) -> Cluster {
        let handles: Vec<_> = (0..3)
            .map(|_| {
                let env = env.to_vec();
                std::thread::spawn(move || Server::start(&env))
            })
            .collect();
        let replicas = handles.into_iter().map(|h| h.join().unwrap()).collect();
        Cluster { replicas, next: AtomicUsize::new(0), client: crate::common::http().build().unwrap() }
    }

    /// The next live replica's base URL, round robin.
    fn base(&self) -> String {
        loop {
            let n = self.next.fetch_add(1, Ordering::Relaxed) % self.replicas.len();
            if !self.replicas[n].base.is_empty() {
                return self.replicas[n].base.clone();
            }
        }
    }

    async fn register(&self, name: &str) -> StatusCode {
        let body = json!({"username": name, "password": "correct horse", "email": format!("{}@example.com", name.to_lowercase())});
        self.client.post(format!("{}/user/register", self.base())).json(&body).send().await.unwrap().status()
    }

    /// Logs in on one replica; returns the access token and refresh cookie.
    async fn login(&self, base: &str, name: &str) -> (String, String) {
        let body = json!({"username": name, "password": "correct horse"});
        let reply = self.client.post(format!("{base}/user/login")).json(&body).send().await.unwrap();
        let refresh = cookie(&reply, "refresh_token");
        let body: Value = reply.json().await.unwrap();
        (body["token"].as_str().unwrap().to_owned(), refresh)
    }

    /// A favorite change, retried on the next replica when one is down;
    /// returns once it is acknowledged.
    async fn change(&self, token: &str, method: Method, track: String) {
        for _ in 0..10 {
            let url = format!("{}/user/track/favorite?track_id={track}", self.base());
            match self.client.request(method.clone(), url).bearer_auth(token).send().await {
                Ok(r) if r.status() == 200 => return,
                Ok(r) => panic!("{method} {track}: {}", r.status()),
                Err(_) => continue, // that replica is dead: try the next
            }
        }
        panic!("no replica acknowledged {method} {track}");
    }
}

fn cookie(reply: &reqwest::Response, name: &str) -> String {
    reply
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|c| c.strip_prefix(&format!("{name}=")).map(|rest| rest.split(';').next().unwrap().to_owned()))
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_on_one_postgresql_behave_as_one_service() {
    let Some(database) = user_core::testing::postgres_schema_url().await else { return };
    let (webhook, received) = start_receiver().await;
    let mut cluster = Cluster::start(&database, &webhook);

    // Registrations racing on one name across replicas produce exactly one user.
    let races: Vec<_> = (0..12).map(|i| if i % 2 == 0 { "Racer" } else { "racer" }).collect();
    let mut statuses = Vec::new();
    for chunk in races.chunks(6) {
        let results = futures_util::future::join_all(chunk.iter().map(|name| cluster.register(name))).await;
        statuses.extend(results);
    }
    assert_eq!(statuses.iter().filter(|s| **s == StatusCode::OK).count(), 1, "{statuses:?}");
    assert!(statuses.iter().all(|s| *s == StatusCode::OK || *s == StatusCode::CONFLICT));

    // A token issued by one replica is accepted by the others.
    let (token, refresh) = cluster.login(&cluster.replicas[0].base.clone(), "racer").await;
    for replica in &cluster.replicas {
        let status =
            cluster.client.get(format!("{}/user/get", replica.base)).bearer_auth(&token).send().await.unwrap().status();
        assert_eq!(status, 200, "{}", replica.base);
    }

    // A refresh rotated on one replica is detected as reused on another.
    let rotate = |base: String, refresh: String| {
        let client = cluster.client.clone();
        async move {
            client
                .post(format!("{base}/user/refresh"))
                .header("cookie", format!("refresh_token={refresh}"))
                .send()
                .await
                .unwrap()
        }
    };
    let rotated = rotate(cluster.replicas[0].base.clone(), refresh.clone()).await;
    assert_eq!(rotated.status(), 200);
    let newest = cookie(&rotated, "refresh_token");
    assert_eq!(rotate(cluster.replicas[1].base.clone(), refresh).await.status(), 401, "reuse detected");
    assert_eq!(rotate(cluster.replicas[2].base.clone(), newest).await.status(), 401, "the session was revoked");

    // 1,000 favorite changes spread over the replicas each arrive exactly once.
    let mut tokens = Vec::new();
    for n in 0..10 {
        let name = format!("fan{n}");
        assert_eq!(cluster.register(&name).await, 200);
        let base = cluster.base();
        tokens.push(cluster.login(&base, &name).await.0);
    }
    for track in 0..50 {
        let adds = tokens.iter().map(|t| cluster.change(t, Method::POST, format!("t{track}")));
        futures_util::future::join_all(adds).await;
    }
    for track in 0..50 {
        let removes = tokens.iter().map(|t| cluster.change(t, Method::DELETE, format!("t{track}")));
        futures_util::future::join_all(removes).await;
    }
    eventually("1000 tasks at the receiver", Duration::from_secs(120), || received.lock().unwrap().ids.len() >= 1000)
        .await;
    {
        let r = received.lock().unwrap();
        assert_eq!(r.bad_signatures, 0);
        assert_eq!(r.ids.len(), 1000);
        let duplicates: usize = r.ids.values().map(|n| n - 1).sum();
        assert_eq!(duplicates, 0, "no replica crashed, so no task arrives twice");
    }

    // Killing one replica with SIGKILL mid-load loses no acknowledged write and no task.
    let store = user_core::store::open(&database).await.unwrap();
    let users: Vec<_> = (0..10).map(|n| format!("fan{n}")).collect();
    for round in 0..40 {
        if round == 20 {
            cluster.replicas[1].kill();
            cluster.replicas[1].base.clear();
        }
        let adds = tokens.iter().map(|t| cluster.change(t, Method::POST, format!("k{round}")));
        futures_util::future::join_all(adds).await;
    }
    for name in &users {
        let user = store.find_user(user_core::store::UserKey::Username(&name.parse().unwrap())).await.unwrap().unwrap();
        let ids: Vec<_> = (0..40).map(|r| format!("k{r}").parse().unwrap()).collect();
        let present = store.favorites_contain(user.user.id, &ids).await.unwrap();
        assert!(present.iter().all(|p| *p), "{name}: every acknowledged favorite is stored");
    }
    let expected: HashSet<i64> = store.list_tasks(None, None, 10_000).await.unwrap().iter().map(|t| t.id).collect();
    assert!(expected.len() >= 1400);
    eventually("every task delivered after the crash", Duration::from_secs(120), || {
        let r = received.lock().unwrap();
        expected.iter().all(|id| r.ids.contains_key(id))
    })
    .await;
    let counts = store.count_tasks().await.unwrap();
    assert_eq!(counts.dead, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forty_concurrent_guesses_across_three_replicas_get_no_more_checks_than_the_lockout_allows() {
    let Some(database) = user_core::testing::postgres_schema_url().await else { return };
    let cluster = Cluster::start_with(&[
        ("USER_DATABASE_URL", database),
        ("USER_DATABASE_MAX_CONNECTIONS", "5".to_owned()),
        ("USER_RATE_LIMIT", "off".to_owned()),
    ]);
    assert_eq!(cluster.register("victim").await, 200);

    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(40));
    let guesses = (0..40).map(|n| {
        let (client, base, barrier) = (cluster.client.clone(), cluster.base(), barrier.clone());
        tokio::spawn(async move {
            let body = json!({"username": "victim", "password": format!("guess number {n}")});
            barrier.wait().await;
            client.post(format!("{base}/user/login")).json(&body).send().await.unwrap().status()
        })
    });
    let statuses: Vec<StatusCode> =
        futures_util::future::join_all(guesses).await.into_iter().map(Result::unwrap).collect();
    let checked = statuses.iter().filter(|s| **s == StatusCode::UNAUTHORIZED).count();
    let throttled = statuses.iter().filter(|s| **s == StatusCode::TOO_MANY_REQUESTS).count();
    assert_eq!((checked, throttled), (5, 35), "{statuses:?}");
}

/// Two admins demote each other at the same moment through two server
/// processes on one PostgreSQL database: one wins, the other is refused (409,
/// or 401 when the winner's demotion already ended its session), and one
/// active admin is always left.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_admins_demoting_each_other_on_two_replicas_leave_one_admin() {
    use user_core::domain::{Role, UserId};
    use user_core::store::{AccountChanges, UserKey};

    let Some(database) = user_core::testing::postgres_schema_url().await else { return };
    // The race is under test here, not the second-factor policy: admins sign in by password.
    let env = [("USER_DATABASE_URL", database.clone()), ("USER_MFA_REQUIRED", "none".into())];
    let servers = [Server::start(&env), Server::start(&env)];
    let client = crate::common::http().build().unwrap();
    let store = user_core::store::open(&database).await.unwrap();
    let mut ids = Vec::new();
    for name in ["alice", "bob"] {
        let body = json!({"username": name, "password": "correct horse", "email": format!("{name}@example.com")});
        let reply = client.post(format!("{}/user/register", servers[0].base)).json(&body).send().await.unwrap();
        let reply: Value = reply.json().await.unwrap();
        ids.push(reply["id"].as_str().unwrap().parse::<UserId>().unwrap());
    }
    for round in 0..5 {
        for id in &ids {
            let promote = AccountChanges { role: Some(Role::Admin), ..AccountChanges::default() };
            store.change_account(*id, &promote, chrono::Utc::now()).await.unwrap();
        }
        let mut tokens = Vec::new();
        for (name, server) in ["alice", "bob"].iter().zip(&servers) {
            let body = json!({"username": name, "password": "correct horse"});
            let reply: Value = client
                .post(format!("{}/user/login", server.base))
                .json(&body)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            tokens.push(reply["token"].as_str().unwrap().to_owned());
        }
        let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(2));
        // alice (on the first replica) demotes bob; bob (on the second) demotes alice.
        let demotions: Vec<_> = (0..2)
            .map(|i| {
                let (client, barrier) = (client.clone(), barrier.clone());
                let url = format!("{}/admin/users/{}", servers[i].base, ids[1 - i]);
                let token = tokens[i].clone();
                tokio::spawn(async move {
                    barrier.wait().await;
                    client.patch(url).bearer_auth(token).json(&json!({"role": "user"})).send().await.unwrap().status()
                })
            })
            .collect();
        let mut statuses = Vec::new();
        for d in demotions {
            statuses.push(d.await.unwrap().as_u16());
        }
        statuses.sort_unstable();
        assert!(statuses == [200, 401] || statuses == [200, 409], "round {round}: {statuses:?}");
        let mut admins = 0;
        for id in &ids {
            let user = store.find_user(UserKey::Id(*id)).await.unwrap().unwrap().user;
            admins += usize::from(user.role == Role::Admin && user.disabled_at.is_none());
        }
        assert_eq!(admins, 1, "round {round}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_signs_in_with_each_step_on_another_replica() {
    let Some(database) = user_core::testing::postgres_schema_url().await else { return };
    let env = [("USER_DATABASE_URL", database), ("USER_OAUTH_CLIENTS", "tv-app".to_owned())];
    let cluster = Cluster::start_with(&env);
    let bases: Vec<String> = cluster.replicas.iter().map(|r| r.base.clone()).collect();
    assert_eq!(cluster.register("alice").await, StatusCode::OK);
    let (phone, _) = cluster.login(&bases[0], "alice").await;
    let client = &cluster.client;
    let form = [("client_id", "tv-app"), ("device_name", "Living room TV")];
    let started: Value =
        client.post(format!("{}/oauth/device/code", bases[0])).form(&form).send().await.unwrap().json().await.unwrap();
    let device_code = started["device_code"].as_str().unwrap();
    let grant = "urn:ietf:params:oauth:grant-type:device_code";
    let poll = |base: &str| {
        let form = [("grant_type", grant), ("device_code", device_code), ("client_id", "tv-app")];
        client.post(format!("{base}/oauth/token")).form(&form).send()
    };
    let pending: Value = poll(&bases[1]).await.unwrap().json().await.unwrap();
    assert_eq!(pending["error"], "authorization_pending");
    let fast: Value = poll(&bases[2]).await.unwrap().json().await.unwrap();
    assert_eq!(fast["error"], "slow_down", "another replica knows the last poll");
    let body = json!({"user_code": started["user_code"], "approve": true});
    let approved = client.post(format!("{}/user/device/approve", bases[1])).bearer_auth(&phone).json(&body).send();
    assert_eq!(approved.await.unwrap().status(), StatusCode::OK);
    let tokens = poll(&bases[2]).await.unwrap();
    assert_eq!(tokens.status(), StatusCode::OK);
    let tokens: Value = tokens.json().await.unwrap();
    let again: Value = poll(&bases[0]).await.unwrap().json().await.unwrap();
    assert_eq!(again["error"], "invalid_grant", "exactly once, whichever replica is asked");
    let me = client.get(format!("{}/user/get", bases[0])).bearer_auth(tokens["access_token"].as_str().unwrap());
    assert_eq!(me.send().await.unwrap().status(), StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_share_one_per_ip_allowance() {
    let Some(database) = user_core::testing::postgres_schema_url().await else { return };
    let env = [("USER_DATABASE_URL", database), ("USER_RATE_LIMIT_LOGIN", "6/min".to_owned())];
    let cluster = std::sync::Arc::new(Cluster::start_with(&env));
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(30));
    // Thirty logins from one address at once, ten on each replica.
    let attempts: Vec<_> = (0..30)
        .map(|_| {
            let (cluster, barrier) = (cluster.clone(), barrier.clone());
            let url = format!("{}/user/login", cluster.base());
            tokio::spawn(async move {
                let body = json!({"username": "nobody", "password": "correct horse"});
                barrier.wait().await;
                cluster.client.post(url).json(&body).send().await.unwrap().status()
            })
        })
        .collect();
    let mut statuses = Vec::new();
    for attempt in attempts {
        statuses.push(attempt.await.unwrap());
    }
    let let_through = statuses.iter().filter(|s| **s != StatusCode::TOO_MANY_REQUESTS).count();
    assert_eq!(let_through, 6, "the configured allowance, not three times it: {statuses:?}");
    assert!(statuses.iter().all(|s| [StatusCode::NOT_FOUND, StatusCode::TOO_MANY_REQUESTS].contains(s)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_device_codes_sent_at_once_to_three_replicas_get_no_more_lookups_than_the_allowance() {
    let Some(database) = user_core::testing::postgres_schema_url().await else { return };
    let env = [("USER_DATABASE_URL", database), ("USER_OAUTH_CLIENTS", "tv-app".to_owned())];
    let cluster = std::sync::Arc::new(Cluster::start_with(&env));
    assert_eq!(cluster.register("alice").await, StatusCode::OK);
    let (phone, _) = cluster.login(&cluster.base(), "alice").await;
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(30));
    // Thirty wrong codes at once, ten on each replica, against an allowance of ten.
    let guesses: Vec<_> = (0..30)
        .map(|_| {
            let (cluster, barrier, phone) = (cluster.clone(), barrier.clone(), phone.clone());
            let url = format!("{}/user/device/approve", cluster.base());
            tokio::spawn(async move {
                let body = json!({"user_code": "ZZZZ-ZZZZ", "approve": true});
                barrier.wait().await;
                cluster.client.post(url).bearer_auth(phone).json(&body).send().await.unwrap()
            })
        })
        .collect();
    let mut statuses = Vec::new();
    for guess in guesses {
        let reply = guess.await.unwrap();
        if reply.status() == StatusCode::TOO_MANY_REQUESTS {
            assert!(reply.headers().contains_key("retry-after"));
        }
        statuses.push(reply.status());
    }
    let looked_up = statuses.iter().filter(|s| **s == StatusCode::BAD_REQUEST).count();
    assert_eq!(looked_up, 10, "the account's allowance, across replicas and at once: {statuses:?}");
    assert!(statuses.iter().all(|s| [StatusCode::BAD_REQUEST, StatusCode::TOO_MANY_REQUESTS].contains(s)));
}

/// Passkeys on PostgreSQL, each step of each ceremony on another replica:
/// ceremonies are rows the replicas share, and a finished one is gone for all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_passkey_is_added_and_signs_in_with_each_step_on_another_replica() {
    use user_core::testing::{Algorithm, Authenticator};

    let Some(database) = user_core::testing::postgres_schema_url().await else { return };
    let origin = "https://music.example";
    let env = [
        ("USER_DATABASE_URL", database),
        ("USER_RATE_LIMIT", "off".to_owned()),
        ("USER_WEBAUTHN_RP_ID", "music.example".to_owned()),
        ("USER_WEBAUTHN_ORIGINS", origin.to_owned()),
    ];
    let cluster = Cluster::start_with(&env);
    let client = &cluster.client;
    assert_eq!(cluster.register("alice").await, StatusCode::OK);
    let login: Value = client
        .post(format!("{}/user/login", cluster.base()))
        .json(&json!({"username": "alice", "password": "correct horse"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let access = login["token"].as_str().unwrap().to_owned();
    let post = |path: &str, body: Value, bearer: Option<&str>| {
        let mut request = client.post(format!("{}{path}", cluster.base())).json(&body);
        if let Some(token) = bearer {
            request = request.bearer_auth(token);
        }
        async move {
            let reply = request.send().await.unwrap();
            (reply.status(), reply.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    for algorithm in [Algorithm::Es256, Algorithm::EdDsa] {
        let mut key = Authenticator::new(origin, algorithm);
        let (status, start) = post("/user/passkeys/register/start", json!({}), Some(&access)).await;
        assert_eq!(status, StatusCode::OK, "{start}");
        let body = json!({"ceremony": start["ceremony"], "credential": key.create(&start["options"])});
        let (status, added) = post("/user/passkeys/register/finish", body, Some(&access)).await;
        assert_eq!(status, StatusCode::CREATED, "{added}");

        let (_, start) = post("/user/passkeys/login/start", json!({}), None).await;
        let body = json!({"ceremony": start["ceremony"], "credential": key.get(&start["options"])});
        let (status, signed_in) = post("/user/passkeys/login/finish", body.clone(), None).await;
        assert_eq!(status, StatusCode::OK, "{signed_in}");
        // The same answer on the other replicas: the ceremony is spent for all.
        for _ in 0..2 {
            let (status, _) = post("/user/passkeys/login/finish", body.clone(), None).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED);
        }
        // A clone's answer, on yet another replica, is caught by the shared counter.
        let mut clone = key.clone();
        let (_, start) = post("/user/passkeys/login/start", json!({}), None).await;
        let body = json!({"ceremony": start["ceremony"], "credential": key.get(&start["options"])});
        assert_eq!(post("/user/passkeys/login/finish", body, None).await.0, StatusCode::OK);
        let (_, start) = post("/user/passkeys/login/start", json!({}), None).await;
        let body = json!({"ceremony": start["ceremony"], "credential": clone.get(&start["options"])});
        assert_eq!(post("/user/passkeys/login/finish", body, None).await.0, StatusCode::UNAUTHORIZED);
    }
    // With passkeys, the password asks for one second, across replicas.
    let (_, login) = post("/user/login", json!({"username": "alice", "password": "correct horse"}), None).await;
    assert_eq!(login["methods"], json!(["passkey"]));
}
