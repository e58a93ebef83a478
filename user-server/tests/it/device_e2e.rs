//! Device sign-in end to end: a "TV" (the SDK's `DeviceLogin`) polls
//! `/oauth/token` while a person, in headless Chromium, opens the
//! verification page, signs in there, types the code, sees the device and
//! approves it.

use std::time::Duration;

use fantoccini::Locator;

use crate::common::browser::{browser, browser_available, outcome, start_chromedriver};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_a_browser_a_person_signs_a_waiting_tv_in_by_its_code() {
    if !browser_available() {
        return;
    }
    let mut config = user_server::Config::for_tests("memory:");
    config.service.oauth_clients = vec!["tv-app".into()];
    let server = user_server::start(&config).await.unwrap();
    let base = format!("http://{}", server.addr);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(server.run(async move {
        let _ = stopped.await;
    }));
    let phone = user_client::Client::new(&base).unwrap();
    phone.register("alice", "alice@example.com", "correct horse").await.unwrap();

    let tv = user_client::Client::builder(&base).device_name("Living room TV").build().unwrap();
    let login = tv.start_device_login("tv-app").await.unwrap();
    let link = login.verification_uri().to_owned();
    let code = login.user_code().to_owned();
    let waiting = tokio::spawn(login.wait());

    let dir = tempfile::tempdir().unwrap();
    let driver = start_chromedriver().await;
    let page = browser(&driver, &dir.path().join("profile")).await;
    page.goto(&link).await.unwrap();
    page.wait().at_most(Duration::from_secs(20)).for_element(Locator::Css("main#sign-in")).await.unwrap();
    page.find(Locator::Css("input[name=username]")).await.unwrap().send_keys("alice").await.unwrap();
    page.find(Locator::Css("input[name=password]")).await.unwrap().send_keys("correct horse").await.unwrap();
    page.find(Locator::Css("button[type=submit]")).await.unwrap().click().await.unwrap();

    // Signed in, the page reloads and asks for the code; typed as people
    // type, in lower case and without the dash.
    let field = page.wait().at_most(Duration::from_secs(20)).for_element(Locator::Css("input[name=user_code]"));
    field.await.unwrap().send_keys(&code.replace('-', "").to_lowercase()).await.unwrap();
    page.find(Locator::Css("main#enter-code button[type=submit]")).await.unwrap().click().await.unwrap();
    // The page names the device asking.
    let confirm = page.wait().at_most(Duration::from_secs(20)).for_element(Locator::Css("main#confirm"));
    let text = confirm.await.unwrap().text().await.unwrap();
    assert!(text.contains("Living room TV") && text.contains(&code) && text.contains("alice"), "{text}");
    page.find(Locator::Css("button[value=true]")).await.unwrap().click().await.unwrap();
    assert!(outcome(&page).await.contains("the device is signed in"));
    page.close().await.unwrap();

    let signed_in = tokio::time::timeout(Duration::from_secs(60), waiting).await.unwrap().unwrap().unwrap();
    assert_eq!(
        signed_in.me().await.unwrap().username.as_deref(),
        Some("alice"),
        "the TV calls the API with its own token"
    );
    phone.login("alice", "correct horse").await.unwrap();
    let sessions = phone.sessions().await.unwrap();
    assert!(sessions.iter().any(|s| s.device_name.as_deref() == Some("Living room TV")));
    let _ = stop.send(());
}
