//! End to end with a real SMTP server (aiosmtpd from PyPI) on loopback: the
//! links in the mails work, and a mail acknowledged before a SIGKILL of the
//! server still arrives after a restart.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::json;

use crate::common::browser::{browser, browser_available, free_port, outcome, start_chromedriver};
use crate::common::process::{Server, eventually};

/// aiosmtpd writing every message it accepts to a Maildir; killed on drop.
struct SmtpCatcher {
    child: Child,
    maildir: PathBuf,
}

impl Drop for SmtpCatcher {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whether aiosmtpd can run here; without it the test prints why it skips,
/// unless `USER_TEST_REQUIRE_SMTP=1` (set in `.ci/run`) makes that a failure.
fn aiosmtpd_available() -> bool {
    let ok = Command::new("python3")
        .args(["-c", "import aiosmtpd"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        assert!(
            std::env::var("USER_TEST_REQUIRE_SMTP").as_deref() != Ok("1"),
            "USER_TEST_REQUIRE_SMTP=1 but aiosmtpd is missing: python3 -m pip install aiosmtpd"
        );
        user_core::testing::skipped("no SMTP catcher: aiosmtpd is not installed (python3 -m pip install aiosmtpd)");
    }
    ok
}

fn start_catcher(port: u16, dir: &Path) -> SmtpCatcher {
    let maildir = dir.join("maildir");
    let child = Command::new("python3")
        .args(["-m", "aiosmtpd", "-n", "-l", &format!("127.0.0.1:{port}"), "-c", "aiosmtpd.handlers.Mailbox"])
        .arg(&maildir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let catcher = SmtpCatcher { child, maildir };
    // Ready when it accepts connections: a server started before that would
    // spend its attempts on a catcher still importing Python.
    for _ in 0..400 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return catcher;
        }
        std::thread::sleep(std::time::Duration::from_millis(25));
    }
    panic!("aiosmtpd did not start listening on {port}");
}

/// The messages delivered so far, each decoded enough to read its links
/// (quoted-printable soft breaks joined, `=3D` back to `=`).
fn mails(catcher: &SmtpCatcher) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(catcher.maildir.join("new")) else { return Vec::new() };
    let mut mails: Vec<(std::time::SystemTime, String)> = entries
        .filter_map(Result::ok)
        .map(|e| {
            let text = std::fs::read_to_string(e.path()).unwrap();
            let decoded = text.replace("=\r\n", "").replace("=\n", "").replace("=3D", "=");
            (e.metadata().unwrap().modified().unwrap(), decoded)
        })
        .collect();
    mails.sort();
    mails.into_iter().map(|(_, m)| m).collect()
}

/// The token of the first link to `page` in `mail`.
fn link_token(mail: &str, page: &str) -> String {
    let start = mail.find(&format!("{page}?token=")).unwrap_or_else(|| panic!("no {page} link in {mail}"));
    mail[start + page.len() + 7..].chars().take_while(|c| c.is_ascii_alphanumeric() || "-_".contains(*c)).collect()
}

fn env(database: &str, smtp_port: u16) -> Vec<(&'static str, String)> {
    vec![
        ("USER_DATABASE_URL", database.to_owned()),
        ("USER_MAIL_SMTP_URL", format!("smtp://127.0.0.1:{smtp_port}?tls=none")),
        ("USER_MAIL_FROM", "Music <no-reply@music.example>".to_owned()),
        ("USER_PUBLIC_URL", "https://music.example".to_owned()),
        ("USER_TASKS_LEASE", "1s".to_owned()),
        ("USER_TASKS_BACKOFF_BASE", "50ms".to_owned()),
        ("USER_TASKS_BACKOFF_CAP", "200ms".to_owned()),
        ("USER_TASKS_POLL_INTERVAL", "100ms".to_owned()),
        // While no mail server is up a mail waits; with short backoffs, ten
        // attempts would make it dead within a second or two.
        ("USER_TASKS_MAX_ATTEMPTS", "100000".to_owned()),
    ]
}

async fn post(client: &reqwest::Client, url: String, body: serde_json::Value) -> u16 {
    client.post(url).json(&body).send().await.unwrap().status().as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mails_over_smtp_carry_links_that_verify_and_reset() {
    if !aiosmtpd_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let catcher = start_catcher(port, dir.path());
    let database = format!("sqlite://{}", dir.path().join("users.db").display());
    let server = Server::start(&env(&database, port));
    let base = server.base.clone();
    let client = crate::common::http().build().unwrap();

    let alice = json!({"username": "alice", "password": "correct horse", "email": "alice@example.com"});
    assert_eq!(post(&client, format!("{base}/user/register"), alice).await, 200);
    eventually("the verification mail", Duration::from_secs(30), || !mails(&catcher).is_empty()).await;
    let verify = mails(&catcher).remove(0);
    assert!(verify.contains("To: alice@example.com"), "{verify}");
    assert!(verify.contains("From: Music <no-reply@music.example>"), "{verify}");
    assert!(verify.contains("multipart/alternative"), "plain text and HTML: {verify}");
    let token = link_token(&verify, "https://music.example/account/verify");
    assert_eq!(post(&client, format!("{base}/user/email/verify"), json!({"token": token})).await, 200);

    let forgot = json!({"email": "alice@example.com"});
    assert_eq!(post(&client, format!("{base}/user/password/forgot"), forgot).await, 202);
    let nobody = json!({"email": "nobody@example.com"});
    assert_eq!(post(&client, format!("{base}/user/password/forgot"), nobody).await, 202);
    eventually("the reset mail", Duration::from_secs(30), || mails(&catcher).len() >= 2).await;
    let reset = mails(&catcher).remove(1);
    let token = link_token(&reset, "https://music.example/account/reset");
    let body = json!({"token": token, "password": "a brand new secret"});
    assert_eq!(post(&client, format!("{base}/user/password/reset"), body).await, 200);
    let login = json!({"username": "alice", "password": "a brand new secret"});
    assert_eq!(post(&client, format!("{base}/user/login"), login).await, 200);
    eventually("the password-changed notice", Duration::from_secs(30), || mails(&catcher).len() >= 3).await;
    let all = mails(&catcher);
    assert!(all.iter().all(|m| m.contains("To: alice@example.com")), "no mail to the unknown address");
    assert_eq!(all.len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mail_acknowledged_before_a_sigkill_arrives_after_the_restart() {
    if !aiosmtpd_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let database = format!("sqlite://{}", dir.path().join("users.db").display());
    let client = crate::common::http().build().unwrap();
    // No mail server yet: the relay's attempts fail and the task waits.
    let mut server = Server::start(&env(&database, port));
    let alice = json!({"username": "alice", "password": "correct horse", "email": "alice@example.com"});
    assert_eq!(post(&client, format!("{}/user/register", server.base), alice).await, 200);
    server.kill();

    let catcher = start_catcher(port, dir.path());
    let _restarted = Server::start(&env(&database, port));
    eventually("the mail after the restart", Duration::from_secs(60), || !mails(&catcher).is_empty()).await;
    let mail = mails(&catcher).remove(0);
    assert!(mail.contains("/account/verify?token="), "{mail}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mail_webhook_gets_each_mail_signed_like_task_events() {
    let (webhook, received) = crate::common::process::start_receiver().await;
    let dir = tempfile::tempdir().unwrap();
    let database = format!("sqlite://{}", dir.path().join("users.db").display());
    let server = Server::start(&[
        ("USER_DATABASE_URL", database),
        ("USER_MAIL_WEBHOOK_URL", webhook),
        ("USER_MAIL_WEBHOOK_SECRET", crate::common::process::SECRET.to_owned()),
        ("USER_TASKS_POLL_INTERVAL", "100ms".to_owned()),
        // While no mail server is up a mail waits; with short backoffs, ten
        // attempts would make it dead within a second or two.
        ("USER_TASKS_MAX_ATTEMPTS", "100000".to_owned()),
    ]);
    let client = crate::common::http().build().unwrap();
    let alice = json!({"username": "alice", "password": "correct horse", "email": "alice@example.com"});
    assert_eq!(post(&client, format!("{}/user/register", server.base), alice).await, 200);
    let forgot = json!({"email": "alice@example.com"});
    assert_eq!(post(&client, format!("{}/user/password/forgot", server.base), forgot).await, 202);
    eventually("two signed mails", Duration::from_secs(30), || received.lock().unwrap().ids.len() == 2).await;
    let r = received.lock().unwrap();
    assert_eq!(r.bad_signatures, 0);
    assert!(r.ids.values().all(|n| *n == 1), "each mail once: {:?}", r.ids);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_a_browser_a_person_verifies_and_resets_from_the_links_in_the_mails() {
    use fantoccini::Locator;
    if !aiosmtpd_available() || !browser_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let smtp_port = free_port();
    let catcher = start_catcher(smtp_port, dir.path());
    let database = format!("sqlite://{}", dir.path().join("users.db").display());
    let listen_port = free_port();
    let base = format!("http://127.0.0.1:{listen_port}");
    let mut env = env(&database, smtp_port);
    env.retain(|(k, _)| *k != "USER_PUBLIC_URL");
    env.push(("USER_PUBLIC_URL", base.clone()));
    env.push(("USER_LISTEN", format!("127.0.0.1:{listen_port}")));
    let _server = Server::start(&env);
    let client = crate::common::http().build().unwrap();
    let alice = json!({"username": "alice", "password": "correct horse", "email": "alice@example.com"});
    assert_eq!(post(&client, format!("{base}/user/register"), alice).await, 200);
    eventually("the verification mail", Duration::from_secs(30), || !mails(&catcher).is_empty()).await;
    let verify_link =
        format!("{base}/account/verify?token={}", link_token(&mails(&catcher)[0], &format!("{base}/account/verify")));

    let driver = start_chromedriver().await;
    let page = browser(&driver, &dir.path().join("profile")).await;
    page.goto(&verify_link).await.unwrap();
    page.find(Locator::Css("button[type=submit]")).await.unwrap().click().await.unwrap();
    assert!(outcome(&page).await.contains("Your address is confirmed"));

    let forgot = json!({"email": "alice@example.com"});
    assert_eq!(post(&client, format!("{base}/user/password/forgot"), forgot).await, 202);
    eventually("the reset mail", Duration::from_secs(30), || mails(&catcher).len() >= 2).await;
    let token = link_token(&mails(&catcher)[1], &format!("{base}/account/reset"));
    page.goto(&format!("{base}/account/reset?token={token}")).await.unwrap();
    page.find(Locator::Css("input[name=password]")).await.unwrap().send_keys("a brand new secret").await.unwrap();
    page.find(Locator::Css("input[name=repeat]")).await.unwrap().send_keys("a brand new secret").await.unwrap();
    page.find(Locator::Css("button[type=submit]")).await.unwrap().click().await.unwrap();
    assert!(outcome(&page).await.contains("Your password is changed"));
    page.close().await.unwrap();

    let old = json!({"username": "alice", "password": "correct horse"});
    assert_eq!(post(&client, format!("{base}/user/login"), old).await, 401);
    let new = json!({"username": "alice", "password": "a brand new secret"});
    assert_eq!(post(&client, format!("{base}/user/login"), new).await, 200);
}
