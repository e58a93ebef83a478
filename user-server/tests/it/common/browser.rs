//! A headless Chromium driven over WebDriver (fantoccini and Debian's
//! chromedriver), for the tests of the built-in pages.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::json;

/// A free TCP port on loopback.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// chromedriver on a free loopback port; killed on drop.
pub struct Chromedriver {
    child: Child,
    pub url: String,
}

impl Drop for Chromedriver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whether Debian's chromium and chromedriver are here; without them the test
/// prints why it skips, unless `USER_TEST_REQUIRE_BROWSER=1` (set in `.ci/run`).
pub fn browser_available() -> bool {
    let ok = Path::new("/usr/bin/chromium").exists() && Path::new("/usr/bin/chromedriver").exists();
    if !ok {
        assert!(
            std::env::var("USER_TEST_REQUIRE_BROWSER").as_deref() != Ok("1"),
            "USER_TEST_REQUIRE_BROWSER=1 but chromium or chromedriver is missing: apt-get install chromium chromium-driver"
        );
        user_core::testing::skipped("no browser: apt-get install chromium chromium-driver");
    }
    ok
}

pub async fn start_chromedriver() -> Chromedriver {
    let port = free_port();
    let child = Command::new("/usr/bin/chromedriver")
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let driver = Chromedriver { child, url: format!("http://127.0.0.1:{port}") };
    let client = crate::common::http().build().unwrap();
    let status = format!("{}/status", driver.url);
    for _ in 0..200 {
        if client.get(&status).send().await.is_ok_and(|r| r.status().is_success()) {
            return driver;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("chromedriver did not start");
}

/// A headless Chromium session with the flags this machine needs (no
/// network beyond loopback, a fresh profile).
pub async fn browser(driver: &Chromedriver, profile: &Path) -> fantoccini::Client {
    let args = [
        "--headless=new".to_owned(),
        "--no-sandbox".to_owned(),
        "--disable-gpu".to_owned(),
        "--disable-background-networking".to_owned(),
        "--disable-component-update".to_owned(),
        "--disable-sync".to_owned(),
        "--no-first-run".to_owned(),
        format!("--user-data-dir={}", profile.display()),
    ];
    let mut capabilities = serde_json::Map::new();
    capabilities.insert("goog:chromeOptions".into(), json!({"binary": "/usr/bin/chromium", "args": args}));
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    fantoccini::ClientBuilder::new(connector).capabilities(capabilities).connect(&driver.url).await.unwrap()
}

/// The outcome line the page shows once its request answered.
pub async fn outcome(page: &fantoccini::Client) -> String {
    use fantoccini::Locator;
    let shown = page.wait().at_most(Duration::from_secs(20)).for_element(Locator::Css("#outcome:not([hidden])"));
    shown.await.unwrap().text().await.unwrap()
}
