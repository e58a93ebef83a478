//! The built binary in both modes, against a temporary SQLite database and a
//! real server on an ephemeral port.

use std::path::{Path, PathBuf};
use std::time::Duration;

use assert_cmd::Command;
use serde_json::Value;
use user_core::auth::TotpSecret;

struct Env {
    dir: tempfile::TempDir,
    database: String,
}

impl Env {
    fn new() -> Env {
        let dir = tempfile::tempdir().unwrap();
        let database = format!("sqlite://{}", dir.path().join("users.db").display());
        Env { dir, database }
    }

    fn credentials(&self) -> PathBuf {
        self.dir.path().join("config").join("credentials.json")
    }

    /// `user-cli` with a private credentials file and no ambient settings.
    fn cli(&self) -> Command {
        let mut cmd = Command::cargo_bin("user-cli").unwrap();
        cmd.env("USER_CLI_CREDENTIALS", self.credentials())
            .env_remove("USER_SERVER")
            .env_remove("USER_DATABASE_URL")
            .env_remove("USER_CONFIG_FILE")
            .timeout(Duration::from_secs(60));
        cmd
    }

    fn local(&self, args: &[&str]) -> Command {
        let mut cmd = self.cli();
        cmd.arg("--database").arg(&self.database).args(args);
        cmd
    }

    fn remote(&self, server: &str, args: &[&str]) -> Command {
        let mut cmd = self.cli();
        cmd.arg("--server").arg(server).args(args);
        cmd
    }
}

fn json(cmd: &mut Command) -> Value {
    let out = cmd.arg("--json").assert().success().get_output().stdout.clone();
    serde_json::from_slice(&out).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out)))
}

fn stderr(cmd: &mut Command, code: i32) -> String {
    let out = cmd.assert().code(code).get_output().stderr.clone();
    String::from_utf8(out).unwrap()
}

/// Starts a server on the environment's database; returns its URL.
async fn serve(database: &str) -> (String, tokio::sync::oneshot::Sender<()>) {
    serve_config(user_server::Config::for_tests(database)).await
}

async fn serve_config(config: user_server::Config) -> (String, tokio::sync::oneshot::Sender<()>) {
    let server = user_server::start(&config).await.unwrap();
    let url = format!("http://{}", server.addr);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(server.run(async move {
        let _ = stopped.await;
    }));
    (url, stop)
}

/// Starts a server whose mails stay in the outbox (no relay), where a test
/// reads their links.
async fn serve_with_mail(database: &str) -> (String, tokio::sync::oneshot::Sender<()>) {
    let mut config = user_server::Config::for_tests(database);
    config.service.mail_dev_log = true;
    config.tasks_relay = false;
    serve_config(config).await
}

/// The raw token of the newest mail of `kind` in the database's outbox.
async fn mailed_token(database: &str, kind: &str) -> String {
    let store = user_core::store::open(database).await.unwrap();
    let tasks = store.list_tasks(None, None, 100).await.unwrap();
    let task = tasks.into_iter().rev().find(|t| t.kind.as_str() == kind).expect("a mail");
    task.payload.and_then(|p| p.token).expect("a link")
}

/// `user mfa enroll NAME` on the database, answering its question as the
/// person with the authenticator app would: the secret and the recovery codes.
fn enroll_locally(env: &Env, name: &str) -> (String, Vec<String>) {
    use std::io::{BufRead, Write};
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("user-cli"))
        .env("USER_CLI_CREDENTIALS", env.credentials())
        .env_remove("USER_SERVER")
        .env_remove("USER_DATABASE_URL")
        .env_remove("USER_CONFIG_FILE")
        .args(["--database", &env.database, "--json", "user", "mfa", "enroll", name])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    stdout.read_line(&mut first).unwrap();
    let enrollment: Value = serde_json::from_str(&first).unwrap_or_else(|e| panic!("{e}: {first}"));
    let secret = enrollment["secret"].as_str().unwrap().to_owned();
    assert!(enrollment["otpauth_uri"].as_str().unwrap().starts_with("otpauth://totp/"), "{enrollment}");
    let code = TotpSecret::from_base32(&secret).unwrap().code_at(chrono::Utc::now());
    writeln!(child.stdin.take().unwrap(), "{code}").unwrap();
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stdout, &mut rest).unwrap();
    assert!(child.wait().unwrap().success(), "{rest}");
    let done: Value = serde_json::from_str(&rest).unwrap_or_else(|e| panic!("{e}: {rest}"));
    let codes = done["recovery_codes"].as_array().unwrap().iter().map(|c| c.as_str().unwrap().to_owned()).collect();
    (secret, codes)
}

/// Runs blocking `assert_cmd` work off the runtime that serves the server.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.unwrap()
}

#[test]
fn exactly_one_mode_is_required_and_misuse_exits_2() {
    let env = Env::new();
    let msg = stderr(env.cli().args(["user", "list"]), 2);
    assert!(msg.contains("--server") && msg.contains("--database"), "{msg}");
    stderr(env.cli().args(["--server", "http://x", "--database", "sqlite://x", "whoami"]), 2);
    stderr(env.cli().args(["--database", &env.database, "bogus-command"]), 2);
}

#[test]
fn passwords_are_never_flags() {
    let env = Env::new();
    let help = env.cli().args(["login", "--help"]).assert().success().get_output().stdout.clone();
    let help = String::from_utf8(help).unwrap();
    assert!(help.contains("--password-stdin"));
    assert!(!help.contains("--password <"), "{help}");
    stderr(env.cli().args(["--server", "http://127.0.0.1:1", "login", "alice", "--password", "x"]), 2);
}

#[test]
fn operators_bootstrap_and_manage_accounts_locally() {
    let env = Env::new();
    env.local(&["migrate"]).assert().success();
    let root = json(
        env.local(&["user", "create", "root", "--email", "root@example.com", "--admin", "--password-stdin"])
            .write_stdin("correct horse\n"),
    );
    assert_eq!(root["role"], "admin");
    env.local(&["user", "create", "alice", "--email", "alice@example.com", "--password-stdin"])
        .write_stdin("correct horse\n")
        .assert()
        .success();
    let listed = json(&mut env.local(&["user", "list", "--limit", "1", "--all"]));
    let names: Vec<_> = listed["users"].as_array().unwrap().iter().map(|u| u["username"].as_str().unwrap()).collect();
    assert_eq!(names, ["root", "alice"]);
    let table = env.local(&["user", "list"]).assert().success().get_output().stdout.clone();
    let table = String::from_utf8(table).unwrap();
    assert!(table.starts_with("id") && table.contains("alice@example.com"), "{table}");
    let shown = json(&mut env.local(&["user", "show", "alice@example.com"]));
    assert_eq!((shown["username"].as_str(), shown["disabled"].as_bool()), (Some("alice"), Some(false)));
    assert_eq!(json(&mut env.local(&["user", "set-role", "alice", "admin"]))["role"], "admin");
    env.local(&["user", "disable", "alice"]).assert().success();
    env.local(&["user", "enable", "alice"]).assert().success();
    assert_eq!(json(&mut env.local(&["user", "revoke-sessions", "alice"]))["revoked"], 0);
    stderr(&mut env.local(&["user", "show", "nobody"]), 1);
    stderr(
        env.local(&["user", "create", "alice", "--email", "x@example.com", "--password-stdin"])
            .write_stdin("correct horse\n"),
        1,
    );
    stderr(
        env.local(&["user", "create", "bob", "--email", "bob@example.com", "--password-stdin"]).write_stdin("short\n"),
        2,
    );
    // Destructive commands need --yes when no one can answer.
    stderr(&mut env.local(&["user", "delete", "alice"]), 2);
    env.local(&["user", "delete", "alice", "--yes"]).assert().success();
    stderr(&mut env.local(&["user", "show", "alice"]), 1);
}

#[test]
fn unreachable_servers_and_databases_exit_3() {
    let env = Env::new();
    let msg = stderr(&mut env.remote("http://127.0.0.1:1", &["whoami"]), 3);
    assert!(msg.contains("cannot reach the server"), "{msg}");
    stderr(env.cli().args(["--database", "postgres://nobody@127.0.0.1:1/none", "user", "list"]), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_bootstrapped_locally_logs_in_remotely_and_lists_users() {
    let env = std::sync::Arc::new(Env::new());
    let e = env.clone();
    let codes = blocking(move || {
        e.local(&["migrate"]).assert().success();
        e.local(&["user", "create", "root", "--email", "root@example.com", "--admin", "--password-stdin"])
            .write_stdin("correct horse\n")
            .assert()
            .success();
        // Admins sign in with a second factor (the default policy): the
        // operator enrolls one from the database host.
        enroll_locally(&e, "root").1
    })
    .await;
    let (url, _stop) = serve(&env.database).await;
    blocking(move || {
        let r = |args: &[&str]| env.remote(&url, args);
        let password_only = stderr(r(&["login", "root", "--password-stdin"]).write_stdin("correct horse\n"), 2);
        assert!(password_only.contains("Code from the authenticator app"), "{password_only}");
        let answers = format!("correct horse\n{}\n", codes[0]);
        r(&["login", "root", "--password-stdin"]).write_stdin(answers).assert().success();
        assert_credentials_private(&env.credentials());
        // Nobody enrolls another person's authenticator over the API.
        let remote = stderr(&mut r(&["user", "mfa", "enroll", "root"]), 2);
        assert!(remote.contains("database host only"), "{remote}");
        let me = json(&mut r(&["whoami"]));
        assert_eq!((me["username"].as_str(), me["role"].as_str()), (Some("root"), Some("admin")));
        r(&["register", "alice", "--email", "alice@example.com", "--password-stdin"])
            .write_stdin("correct horse\n")
            .assert()
            .success();
        let users = json(&mut r(&["user", "list", "--all"]));
        assert_eq!(users["users"].as_array().unwrap().len(), 2);
        assert_eq!(json(&mut r(&["user", "show", "alice"]))["email"], "alice@example.com");
        let msg = stderr(&mut r(&["tasks", "purge", "--older-than", "1d"]), 2);
        assert!(msg.contains("--database"), "{msg}");
    })
    .await;
}

fn assert_credentials_private(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "credentials must be private");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_does_everything_the_api_allows_from_the_shell() {
    let env = std::sync::Arc::new(Env::new());
    let e = env.clone();
    blocking(move || e.local(&["migrate"]).assert().success()).await;
    let (url, _stop) = serve(&env.database).await;
    let e = env.clone();
    blocking(move || {
        let r = |args: &[&str]| e.remote(&url, args);
        r(&["register", "alice", "--email", "alice@example.com", "--password-stdin"])
            .write_stdin("correct horse\n")
            .assert()
            .success();
        stderr(
            r(&["register", "ALICE", "--email", "x@example.com", "--password-stdin"]).write_stdin("correct horse\n"),
            1,
        );
        stderr(r(&["login", "alice", "--password-stdin"]).write_stdin("wrong horse\n"), 1);
        r(&["login", "alice@example.com", "--password-stdin"]).write_stdin("correct horse\n").assert().success();
        r(&["favorite", "add", "1", "2", "spotify:track:3"]).assert().success();
        r(&["favorite", "remove", "2"]).assert().success();
        let listed = json(&mut r(&["favorite", "list", "--limit", "1", "--all"]));
        let ids: Vec<_> =
            listed["tracks"].as_array().unwrap().iter().map(|t| t["track_id"].as_str().unwrap()).collect();
        assert_eq!(ids, ["spotify:track:3", "1"]);
        stderr(&mut r(&["favorite", "add", "a b"]), 2);
        let updated = json(
            r(&["update", "--username", "alicia", "--new-password", "--current-password", "--password-stdin"])
                .write_stdin("correct horse\nnew password!\n"),
        );
        assert_eq!(updated["username"], "alicia");
        stderr(&mut r(&["user", "list"]), 1); // not an admin: 403
        stderr(&mut r(&["delete-account"]), 2); // needs --yes without a terminal
        r(&["delete-account", "--yes"]).assert().success();
        assert!(!e.credentials().exists(), "the session is gone with the account");
        let msg = stderr(&mut r(&["whoami"]), 1);
        assert!(msg.contains("log in"), "{msg}");
        r(&["register", "bob", "--email", "bob@example.com", "--password-stdin"])
            .write_stdin("correct horse\n")
            .assert()
            .success();
        r(&["login", "bob", "--password-stdin"]).write_stdin("correct horse\n").assert().success();
        assert!(e.credentials().exists());
        r(&["logout"]).assert().success();
        assert!(!e.credentials().exists(), "logout removes the credentials file");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_lists_retries_and_purges_tasks() {
    let env = Env::new();
    let store = user_core::store::open(&env.database).await.unwrap();
    store.migrate().await.unwrap();
    let config = user_core::ServiceConfig {
        hashing: user_core::auth::HashingConfig::insecure_for_tests(),
        ..Default::default()
    };
    let service = user_core::UserService::new(store.clone(), config).await.unwrap();
    let user = service
        .register(
            user_core::service::Registration {
                username: "alice".parse().unwrap(),
                email: "alice@example.com".parse().unwrap(),
                password: user_core::domain::Password::parse("correct horse").unwrap(),
                locale: Default::default(),
            },
            &Default::default(),
        )
        .await
        .unwrap();
    service.add_favorites(user.id, &user_core::domain::TrackBatch::parse("1,2").unwrap()).await.unwrap();
    let now = chrono::Utc::now();
    let claim = store.claim_tasks(now, now + Duration::from_secs(60), 1).await.unwrap();
    store.fail_task(claim.lease_id, claim.tasks[0].id, "HTTP 400 from the catalogue", None, now).await.unwrap();
    let dead_id = claim.tasks[0].id.to_string();
    // The second task was delivered an hour ago.
    let an_hour_ago = now - Duration::from_secs(3600);
    let claim = store.claim_tasks(now, now + Duration::from_secs(60), 1).await.unwrap();
    store.complete_tasks(claim.lease_id, &[claim.tasks[0].id], an_hour_ago).await.unwrap();

    let env = std::sync::Arc::new(env);
    blocking(move || {
        let dead = json(&mut env.local(&["tasks", "list", "--status", "dead"]));
        assert_eq!(dead["tasks"].as_array().unwrap().len(), 1);
        assert_eq!(dead["tasks"][0]["last_error"], "HTTP 400 from the catalogue");
        let table =
            String::from_utf8(env.local(&["tasks", "list"]).assert().success().get_output().stdout.clone()).unwrap();
        assert!(table.contains("favorite.added") && table.contains("dead"), "{table}");
        stderr(&mut env.local(&["tasks", "retry", "999"]), 1);
        assert_eq!(json(&mut env.local(&["tasks", "retry", &dead_id]))["retried"], 1);
        assert!(json(&mut env.local(&["tasks", "list", "--status", "dead"]))["tasks"].as_array().unwrap().is_empty());
        stderr(&mut env.local(&["tasks", "retry"]), 2);
        env.local(&["tasks", "retry", "--all-dead"]).assert().success();

        assert_eq!(json(&mut env.local(&["tasks", "purge", "--older-than", "2h"]))["purged"], 0);
        assert_eq!(json(&mut env.local(&["tasks", "purge", "--older-than", "30m"]))["purged"], 1);
        let left = json(&mut env.local(&["tasks", "list"]));
        assert_eq!(left["tasks"].as_array().unwrap().len(), 1, "the retried task stays: {left}");
        stderr(&mut env.local(&["tasks", "purge", "--older-than", "soon"]), 2);
        stderr(&mut env.local(&["tasks", "purge"]), 2);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_mode_reaches_an_https_server_whose_ca_is_given() {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
    let env = std::sync::Arc::new(Env::new());
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    let key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["127.0.0.1".to_owned()]).unwrap().signed_by(&key, &ca).unwrap();
    let (cert_file, key_file, ca_file) =
        (env.dir.path().join("server.crt"), env.dir.path().join("server.key"), env.dir.path().join("ca.pem"));
    std::fs::write(&cert_file, leaf.pem()).unwrap();
    std::fs::write(&key_file, key.serialize_pem()).unwrap();
    std::fs::write(&ca_file, ca.pem()).unwrap();

    let mut config = user_server::Config::for_tests(&env.database);
    config.tls_cert_file = Some(cert_file);
    config.tls_key_file = Some(key_file);
    let server = user_server::start(&config).await.unwrap();
    let url = format!("https://{}", server.addr);
    let (_stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(server.run(async move {
        let _ = stopped.await;
    }));
    blocking(move || {
        let ca = ca_file.display().to_string();
        let r = |args: &[&str]| {
            let mut cmd = env.remote(&url, &["--ca-cert", &ca]);
            cmd.args(args);
            cmd
        };
        r(&["register", "alice", "--email", "alice@example.com", "--password-stdin"])
            .write_stdin("correct horse\n")
            .assert()
            .success();
        r(&["login", "alice", "--password-stdin"]).write_stdin("correct horse\n").assert().success();
        assert_eq!(json(&mut r(&["whoami"]))["username"], "alice");
        // Without the CA the certificate is unknown: unreachable (3), saying why.
        let msg = stderr(&mut env.remote(&url, &["whoami"]), 3);
        assert!(msg.contains("certificate") && msg.contains("--ca-cert"), "{msg}");
        let msg = stderr(&mut env.remote(&url, &["--ca-cert", "/nonexistent.pem", "whoami"]), 2);
        assert!(msg.contains("/nonexistent.pem"), "{msg}");
    })
    .await;
}

#[test]
fn completions_and_the_manual_page_need_no_server_or_database() {
    let env = Env::new();
    for shell in ["bash", "zsh", "fish"] {
        let out = env.cli().args(["completions", shell]).assert().success().get_output().stdout.clone();
        let script = String::from_utf8(out).unwrap();
        assert!(script.contains("user-cli") && script.contains("favorite"), "{shell}: {script}");
    }
    stderr(env.cli().args(["completions", "tcsh"]), 2);
    let out = env.cli().arg("man").assert().success().get_output().stdout.clone();
    let page = String::from_utf8(out).unwrap();
    assert!(page.starts_with(".ie") || page.contains(".TH user-cli"), "{page}");
    assert!(page.contains(r"\-\-server") && page.contains(r"\-\-database"), "{page}");
}

#[tokio::test]
async fn local_mode_builds_the_service_from_the_servers_settings() {
    use user_core::store::{self, UserKey};
    let env = Env::new();
    let server_env =
        [("USER_ARGON2_MEMORY_KIB", "8"), ("USER_ARGON2_ITERATIONS", "1"), ("USER_JWT_ALGORITHM", "eddsa")];
    env.local(&["migrate"]).envs(server_env).assert().success();
    env.local(&["user", "create", "alice", "--email", "a@example.com", "--password-stdin"])
        .envs(server_env)
        .write_stdin("correct horse\n")
        .assert()
        .success();
    let store = store::open(&env.database).await.unwrap();
    let alice = store.find_user(UserKey::Username(&"alice".parse().unwrap())).await.unwrap().unwrap();
    assert!(
        alice.password_hash.as_deref().unwrap_or_default().contains("m=8,t=1,p=1"),
        "hashed with the server's argon2: {:?}",
        alice.password_hash
    );
    // The server signs with EdDSA: no HS256 secret was made for it.
    let candidate = b"a candidate that is not the database's own".to_vec();
    let hs256 = store.get_or_insert_secret("jwt.hs256", &candidate, chrono::Utc::now()).await.unwrap();
    assert_eq!(hs256, candidate, "an HS256 secret was written to the database");

    // A secret given twice is refused as the server refuses it.
    let file = env.dir.path().join("jwt");
    std::fs::write(&file, "x".repeat(40)).unwrap();
    let mut both = env.local(&["user", "list"]);
    both.env("USER_JWT_SECRETS", "y".repeat(40)).env("USER_JWT_SECRETS_FILE", &file);
    assert!(stderr(&mut both, 2).contains("give USER_JWT_SECRETS or USER_JWT_SECRETS_FILE, not both"));
}

#[tokio::test]
async fn local_mode_reads_the_servers_config_file() {
    use user_core::store::{self, UserKey};
    let env = Env::new();
    let config = env.dir.path().join("user-server.toml");
    // The server's own file: `listen` and `http2` are the server's alone and pass over the CLI.
    let text = format!(
        "listen = \"0.0.0.0:8080\"\nhttp2 = true\ndatabase = \"{}\"\nargon2-memory-kib = 8\nargon2-iterations = 1\n",
        env.database
    );
    std::fs::write(&config, text).unwrap();
    let mut cmd = env.cli();
    cmd.env("USER_CONFIG_FILE", &config).arg("migrate").assert().success();
    let mut cmd = env.cli();
    cmd.arg("--config").arg(&config).args(["user", "create", "alice", "--email", "a@example.com", "--password-stdin"]);
    cmd.write_stdin("correct horse\n").assert().success();
    // A variable beats the file: bob is hashed with 16 KiB.
    let mut cmd = env.cli();
    cmd.env("USER_CONFIG_FILE", &config).env("USER_ARGON2_MEMORY_KIB", "16");
    cmd.args(["user", "create", "bob", "--email", "b@example.com", "--password-stdin"]);
    cmd.write_stdin("correct horse\n").assert().success();
    let store = store::open(&env.database).await.unwrap();
    let alice = store.find_user(UserKey::Username(&"alice".parse().unwrap())).await.unwrap().unwrap();
    assert!(
        alice.password_hash.as_deref().unwrap_or_default().contains("m=8,t=1,p=1"),
        "hashed with the file's argon2: {:?}",
        alice.password_hash
    );
    let bob = store.find_user(UserKey::Username(&"bob".parse().unwrap())).await.unwrap().unwrap();
    assert!(
        bob.password_hash.as_deref().unwrap_or_default().contains("m=16,t=1,p=1"),
        "the variable's memory, the file's iterations: {:?}",
        bob.password_hash
    );

    // Remote mode reads no file: its `database` does not clash with --server.
    let (url, _stop) = serve(&env.database).await;
    let mut remote = env.remote(&url, &["login", "alice", "--password-stdin"]);
    remote.env("USER_CONFIG_FILE", &config).write_stdin("correct horse\n");
    blocking(move || remote.assert().success()).await;

    // A value the setting refuses names the file and the key.
    std::fs::write(&config, "argon2-memory-kib = \"lots\"\n").unwrap();
    let mut bad = env.local(&["user", "list"]);
    bad.env("USER_CONFIG_FILE", &config);
    let msg = stderr(&mut bad, 2);
    assert!(msg.contains("'argon2-memory-kib': invalid value 'lots'"), "{msg}");
}

#[tokio::test]
async fn remote_sessions_are_listed_and_signed_out() {
    let env = std::sync::Arc::new(Env::new());
    let e = env.clone();
    blocking(move || e.local(&["migrate"]).assert().success()).await;
    let (url, _stop) = serve(&env.database).await;
    // Another device of alice's, signed in through the SDK.
    let tv = user_client::Client::builder(&url).device_name("Living room TV").build().unwrap();
    tv.register("alice", "alice@example.com", "correct horse").await.unwrap();
    tv.login("alice", "correct horse").await.unwrap();
    blocking(move || {
        let r = |args: &[&str]| env.remote(&url, args);
        r(&["login", "alice", "--password-stdin"]).write_stdin("correct horse\n").assert().success();
        let listed = json(&mut r(&["sessions"]));
        let sessions = listed["sessions"].as_array().unwrap();
        assert_eq!(sessions.len(), 2);
        assert_eq!(
            (sessions[0]["current"].clone(), sessions[1]["device_name"].clone()),
            (true.into(), "Living room TV".into())
        );
        let table = r(&["sessions"]).assert().success().get_output().stdout.clone();
        assert!(String::from_utf8(table).unwrap().contains("Living room TV"));
        let tv_id = sessions[1]["id"].as_str().unwrap().to_owned();
        r(&["sessions", "revoke", &tv_id]).assert().success();
        let msg = stderr(&mut r(&["sessions", "revoke", &tv_id]), 1);
        assert!(msg.contains("session not found"), "{msg}");
        assert_eq!(json(&mut r(&["sessions", "revoke", "--others"]))["revoked"], 0);
        stderr(&mut r(&["sessions", "revoke"]), 2);
    })
    .await;
}

#[test]
fn the_last_active_admin_cannot_be_demoted_from_the_shell() {
    let env = Env::new();
    let fast = [("USER_ARGON2_MEMORY_KIB", "8"), ("USER_ARGON2_ITERATIONS", "1")];
    env.local(&["migrate"]).assert().success();
    env.local(&["user", "create", "root", "--email", "root@example.com", "--admin", "--password-stdin"])
        .envs(fast)
        .write_stdin("correct horse\n")
        .assert()
        .success();
    for args in
        [&["user", "set-role", "root", "user"][..], &["user", "disable", "root"], &["user", "delete", "root", "--yes"]]
    {
        let msg = stderr(&mut env.local(args), 1);
        assert!(msg.contains("the last active admin cannot be demoted, disabled or deleted"), "{args:?}: {msg}");
    }
    let root = json(&mut env.local(&["user", "show", "root"]));
    assert_eq!(root["role"], "admin");
}

/// Every operator command, run on one database locally and through the admin
/// API, prints the same and exits the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_commands_print_the_same_remotely_and_locally() {
    let env = std::sync::Arc::new(Env::new());
    let e = env.clone();
    let codes = blocking(move || {
        e.local(&["migrate"]).assert().success();
        for (name, admin) in [("root", true), ("alice", false), ("bob", false), ("carol", false)] {
            let email = format!("{name}@example.com");
            let mut args = vec!["user", "create", name, "--email", &email, "--password-stdin"];
            if admin {
                args.push("--admin");
            }
            e.local(&args).write_stdin("correct horse\n").assert().success();
        }
        enroll_locally(&e, "root").1
    })
    .await;
    let (url, _stop) = serve(&env.database).await;
    blocking(move || {
        let r = |args: &[&str]| env.remote(&url, args);
        let answers = format!("correct horse\n{}\n", codes[0]);
        r(&["login", "root", "--password-stdin"]).write_stdin(answers).assert().success();
        let both = |args: &[&str]| {
            let local = env.local(args).arg("--json").output().unwrap();
            let remote = r(args).arg("--json").output().unwrap();
            assert_eq!(local.status.code(), remote.status.code(), "{args:?}");
            assert_eq!(String::from_utf8_lossy(&local.stdout), String::from_utf8_lossy(&remote.stdout), "{args:?}");
            (local.status.code(), String::from_utf8(local.stdout).unwrap())
        };
        // Reads: the same bytes.
        both(&["user", "list", "--limit", "2", "--all"]);
        both(&["user", "list", "--query", "AL"]);
        both(&["user", "show", "alice"]);
        both(&["user", "show", "bob@example.com"]);
        assert_eq!(both(&["user", "show", "nobody"]).0, Some(1));
        assert_eq!(both(&["tasks", "list"]).0, Some(0));
        assert_eq!(both(&["tasks", "retry", "999"]).0, Some(1));
        // Writes: the same outcome for the same change on two accounts.
        let pair = |args: [&str; 2], local_user: &str, remote_user: &str, rest: &[&str]| {
            let mut l: Vec<&str> = args.to_vec();
            l.push(local_user);
            l.extend(rest);
            let mut m: Vec<&str> = args.to_vec();
            m.push(remote_user);
            m.extend(rest);
            let local = env.local(&l).output().unwrap();
            let remote = r(&m).output().unwrap();
            assert_eq!(local.status.code(), remote.status.code(), "{l:?}");
            let text = |o: &std::process::Output| String::from_utf8_lossy(&o.stdout).replace(local_user, "X");
            let remote_text = String::from_utf8_lossy(&remote.stdout).replace(remote_user, "X");
            assert_eq!(text(&local), remote_text, "{l:?}");
        };
        pair(["user", "set-role"], "alice", "bob", &["admin"]);
        pair(["user", "set-role"], "alice", "bob", &["user"]);
        pair(["user", "disable"], "alice", "bob", &[]);
        pair(["user", "enable"], "alice", "bob", &[]);
        pair(["user", "verify"], "alice", "bob", &[]);
        pair(["user", "revoke-sessions"], "alice", "bob", &[]);
        pair(["user", "delete"], "alice", "bob", &["--yes"]);
        // The audit trail names who acted: no one locally, root remotely.
        let local = json(&mut env.local(&["audit", "list", "--event", "account.disable"]));
        let actors: Vec<_> = local["events"].as_array().unwrap().iter().map(|e| e["actor_id"].is_null()).collect();
        assert_eq!(actors, [false, true], "newest (remote) first: {local}");
        both(&["audit", "list", "--event", "account.delete"]);
        // The last admin is kept, from either side.
        for mode in [true, false] {
            let args = ["user", "set-role", "root", "user"];
            let mut cmd = if mode { env.local(&args) } else { r(&args) };
            let msg = stderr(&mut cmd, 1);
            assert!(msg.contains("the last active admin"), "{msg}");
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_verifies_an_address_and_resets_a_forgotten_password_from_the_shell() {
    let env = std::sync::Arc::new(Env::new());
    let e = env.clone();
    blocking(move || e.local(&["migrate"]).assert().success()).await;
    let (url, _stop) = serve_with_mail(&env.database).await;
    let (e, u) = (env.clone(), url.clone());
    blocking(move || {
        e.remote(&u, &["register", "alice", "--email", "alice@example.com", "--password-stdin"])
            .write_stdin("correct horse\n")
            .assert()
            .success();
    })
    .await;
    let token = mailed_token(&env.database, "email.verify").await;
    let (e, u) = (env.clone(), url.clone());
    blocking(move || {
        let r = |args: &[&str]| e.remote(&u, args);
        let verified = json(&mut r(&["verify-email", &token]));
        assert_eq!(verified["status"], "email verified");
        let msg = stderr(&mut r(&["verify-email", &token]), 1);
        assert!(msg.contains("invalid or expired token"), "{msg}");
        // A token is URL-safe base64: it may start with `-`, and is still a token.
        let dashed = format!("-{}", "A".repeat(42));
        let msg = stderr(&mut r(&["verify-email", &dashed]), 1);
        assert!(msg.contains("invalid or expired token"), "{msg}");
        let msg =
            stderr(r(&["password", "reset", "--token", &dashed, "--password-stdin"]).write_stdin("long enough\n"), 1);
        assert!(msg.contains("invalid or expired token"), "{msg}");
        for email in ["nobody@example.com", "alice@example.com"] {
            let out = r(&["password", "forgot", email]).output().unwrap();
            assert!(out.status.success());
            let text = String::from_utf8(out.stdout).unwrap();
            assert!(text.contains("if an account has this address"), "{text}");
        }
        stderr(&mut r(&["password", "forgot", "not an address"]), 2); // refused before sending
    })
    .await;
    let token = mailed_token(&env.database, "email.password_reset").await;
    let (e, u) = (env.clone(), url.clone());
    blocking(move || {
        let r = |args: &[&str]| e.remote(&u, args);
        stderr(r(&["password", "reset", "--token", &token, "--password-stdin"]).write_stdin("short\n"), 2);
        r(&["password", "reset", "--token", &token, "--password-stdin"])
            .write_stdin("a brand new secret\n")
            .assert()
            .success();
        stderr(r(&["login", "alice", "--password-stdin"]).write_stdin("correct horse\n"), 1);
        r(&["login", "alice", "--password-stdin"]).write_stdin("a brand new secret\n").assert().success();
        let me = json(&mut r(&["whoami"]));
        assert_eq!(me["email_verified"], true);
        let table = String::from_utf8(r(&["whoami"]).output().unwrap().stdout).unwrap();
        assert!(table.lines().next().unwrap().contains("verified") && table.contains(" yes "), "{table}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shell_signs_in_by_code_approved_from_another_device() {
    use std::io::BufRead as _;
    let env = std::sync::Arc::new(Env::new());
    let mut config = user_server::Config::for_tests("memory:");
    config.service.oauth_clients = vec!["user-cli".into()];
    let (url, _stop) = serve_config(config).await;
    let phone = user_client::Client::new(&url).unwrap();
    phone.register("alice", "alice@example.com", "correct horse").await.unwrap();
    phone.login("alice", "correct horse").await.unwrap();

    let mut login = std::process::Command::new(assert_cmd::cargo::cargo_bin("user-cli"));
    login
        .env("USER_CLI_CREDENTIALS", env.credentials())
        .args(["--server", &url, "--json", "login", "--device", "--device-name", "build box"])
        .stdout(std::process::Stdio::piped());
    let mut child = login.spawn().unwrap();
    let stdout = child.stdout.take().unwrap();
    let (first, rest) = blocking(move || {
        let mut lines = std::io::BufReader::new(stdout).lines();
        let first: Value = serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
        (first, lines)
    })
    .await;
    assert_eq!(first["verification_uri"], format!("{url}/device"));
    assert_eq!(first["expires_in"], 600);
    phone.approve_device(first["user_code"].as_str().unwrap(), true).await.unwrap();
    let (status, done) = blocking(move || {
        let done: Vec<String> = rest.map(Result::unwrap).collect();
        (child.wait().unwrap(), done)
    })
    .await;
    assert!(status.success());
    let done: Value = serde_json::from_str(&done.join("\n")).unwrap();
    assert_eq!(done["status"], "logged in");

    let e = env.clone();
    let whoami = blocking(move || json(&mut e.remote(&url, &["whoami"]))).await;
    assert_eq!(whoami["username"], "alice", "the session was kept in the credentials file");
    let sessions = phone.sessions().await.unwrap();
    assert!(sessions.iter().any(|s| s.device_name.as_deref() == Some("build box")));
}

/// What an authenticator app shows for `secret` (base32) now.
fn app_code(secret: &str) -> String {
    TotpSecret::from_base32(secret).unwrap().code_at(chrono::Utc::now())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_asks_for_the_second_factor_when_the_account_has_one() {
    let env = std::sync::Arc::new(Env::new());
    let (url, _stop) = serve(&env.database).await;
    let alice = user_client::Client::new(&url).unwrap();
    alice.register("alice", "alice@example.com", "correct horse").await.unwrap();
    alice.login("alice", "correct horse").await.unwrap();
    let secret = alice.totp_enroll(None).await.unwrap().secret;
    let codes = alice.totp_confirm(&app_code(&secret)).await.unwrap().recovery_codes;
    blocking(move || {
        let r = |args: &[&str]| env.remote(&url, args);
        let wrong = stderr(r(&["login", "alice", "--password-stdin"]).write_stdin("correct horse\n000000\n"), 1);
        assert!(wrong.contains("invalid code"), "{wrong}");
        let missing = stderr(r(&["login", "alice", "--password-stdin"]).write_stdin("correct horse\n"), 2);
        assert!(missing.contains("Code from the authenticator app"), "{missing}");
        r(&["login", "alice", "--password-stdin"])
            .write_stdin(format!("correct horse\n{}\n", codes[0]))
            .assert()
            .success();
        assert_eq!(json(&mut r(&["whoami"]))["username"], "alice");
        let twice = stderr(&mut env.local(&["user", "mfa", "enroll", "alice"]), 1);
        assert!(twice.contains("already on"), "{twice}");
        // Lost phone and codes: the operator removes the factor on the database host.
        let reset = json(&mut env.local(&["user", "mfa-reset", "alice", "--yes"]));
        assert_eq!(reset["status"], "second factors removed");
        let none = stderr(&mut env.local(&["user", "mfa", "reset", "alice", "--yes"]), 1);
        assert!(none.contains("no second factor"), "{none}");
        r(&["login", "alice", "--password-stdin"]).write_stdin("correct horse\n").assert().success();
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_turns_totp_on_from_the_shell_with_a_qr_code() {
    let env = std::sync::Arc::new(Env::new());
    let (url, _stop) = serve(&env.database).await;
    blocking(move || {
        use std::io::{BufRead, Read, Write};
        let r = |args: &[&str]| env.remote(&url, args);
        r(&["register", "alice", "--email", "alice@example.com", "--password-stdin"])
            .write_stdin("correct horse\n")
            .assert()
            .success();
        r(&["login", "alice", "--password-stdin"]).write_stdin("correct horse\n").assert().success();
        let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("user-cli"))
            .env("USER_CLI_CREDENTIALS", env.credentials())
            .args(["--server", &url, "totp", "enroll"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
        let mut shown = String::new();
        let secret = loop {
            let mut line = String::new();
            assert!(stdout.read_line(&mut line).unwrap() > 0, "no secret in {shown}");
            shown.push_str(&line);
            if let Some(secret) = line.trim().strip_prefix("secret: ") {
                break secret.to_owned();
            }
        };
        assert!(shown.contains('▀') || shown.contains('▄') || shown.contains('█'), "a QR code: {shown}");
        writeln!(child.stdin.take().unwrap(), "{}", app_code(&secret)).unwrap();
        let mut rest = String::new();
        stdout.read_to_string(&mut rest).unwrap();
        assert!(child.wait().unwrap().success(), "{rest}");
        assert!(rest.contains("two-factor authentication is on") && rest.matches('-').count() >= 10, "{rest}");

        let codes = json(&mut r(&["totp", "recovery-codes"]));
        assert_eq!(codes["recovery_codes"].as_array().unwrap().len(), 10);
        let again = stderr(&mut r(&["totp", "enroll"]), 1);
        assert!(again.contains("already on"), "{again}");
        assert_eq!(json(&mut r(&["totp", "disable"]))["status"], "totp off");
        let local = stderr(&mut env.local(&["totp", "disable"]), 2);
        assert!(!local.is_empty());
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_account_whose_second_factor_is_a_passkey_is_sent_to_the_device_sign_in() {
    use user_core::testing::{Algorithm, Authenticator};
    let env = std::sync::Arc::new(Env::new());
    let mut config = user_server::Config::for_tests(&env.database);
    config.service.webauthn_rp_id = Some("localhost".into());
    config.service.webauthn_origins = vec!["http://localhost".into()];
    let (url, _stop) = serve_config(config).await;
    let alice = user_client::Client::new(&url).unwrap();
    alice.register("alice", "alice@example.com", "correct horse").await.unwrap();
    alice.login("alice", "correct horse").await.unwrap();
    let start = alice.passkey_register_start(None).await.unwrap();
    let mut key = Authenticator::new("http://localhost", Algorithm::EdDsa);
    alice.passkey_register_finish(&start.ceremony, None, &key.create(&start.options)).await.unwrap();
    blocking(move || {
        let refused =
            stderr(env.remote(&url, &["login", "alice", "--password-stdin"]).write_stdin("correct horse\n"), 1);
        assert!(refused.contains("passkey") && refused.contains("--device"), "{refused}");
    })
    .await;
}

#[tokio::test]
async fn identities_are_listed_for_a_person_and_an_operator() {
    let env = std::sync::Arc::new(Env::new());
    let e = env.clone();
    blocking(move || e.local(&["migrate"]).assert().success()).await;
    let (url, _stop) = serve(&env.database).await;
    let sdk = user_client::Client::new(&url).unwrap();
    sdk.register("alice", "alice@example.com", "correct horse").await.unwrap();
    blocking(move || {
        let r = |args: &[&str]| env.remote(&url, args);
        r(&["login", "alice", "--password-stdin"]).write_stdin("correct horse\n").assert().success();
        let mine = json(&mut r(&["identities"]));
        assert_eq!((mine["identities"].clone(), mine["has_password"].clone()), (serde_json::json!([]), true.into()));
        let msg = stderr(&mut r(&["identities", "unlink", "google"]), 1);
        assert!(msg.contains("no identity"), "{msg}");
        let operator = json(&mut env.local(&["user", "identities", "alice"]));
        assert_eq!(operator["has_password"], true);
        let table = env.local(&["user", "identities", "alice"]).assert().success().get_output().stdout.clone();
        assert!(String::from_utf8(table).unwrap().contains("password: set"));
        // Remotely, a non-admin is refused; an admin hears it is the database host's.
        let msg = stderr(&mut r(&["user", "identities", "alice"]), 1);
        assert!(msg.contains("admin"), "{msg}");
    })
    .await;
}
