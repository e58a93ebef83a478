//! Fuzzes request-body handling end to end: arbitrary bytes as the JSON body
//! of every body-taking route, through the real warp filters. Whatever comes
//! in, the answer is the contract's: a 2xx, or `{"message", "status"}` with a
//! 4xx — never a panic, never a 5xx.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use user_core::{ServiceConfig, UserService};
use user_server::{AppState, CookiePolicy};

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap())
}

fn state() -> &'static AppState {
    static STATE: OnceLock<AppState> = OnceLock::new();
    STATE.get_or_init(|| {
        runtime().block_on(async {
            let store = user_core::store::open("sqlite::memory:").await.unwrap();
            store.migrate().await.unwrap();
            let config = ServiceConfig {
                hashing: user_core::auth::HashingConfig::insecure_for_tests(),
                ..ServiceConfig::default()
            };
            let service = UserService::new(store, config).await.unwrap();
            let cookies = CookiePolicy { secure: false };
            AppState { service, cookies, policy: Default::default(), metrics_public: true, public_url: None }
        })
    })
}

fuzz_target!(|body: &[u8]| {
    let routes = user_server::routes(state().clone());
    runtime().block_on(async {
        for (method, path) in [("POST", "/user/register"), ("POST", "/user/login"), ("PUT", "/user/update")] {
            let response = warp::test::request()
                .method(method)
                .path(path)
                .header("content-type", "application/json")
                .body(body.to_vec())
                .reply(&routes)
                .await;
            let status = response.status().as_u16();
            assert!(status < 500, "{method} {path} answered {status}");
            if status >= 400 {
                let json: serde_json::Value = serde_json::from_slice(response.body()).expect("error bodies are JSON");
                assert_eq!(json["status"], status);
                assert!(json["message"].is_string());
            }
        }
    });
});
