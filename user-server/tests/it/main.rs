//! Integration tests of `user-server`: the warp filters in process, and the built binary over real sockets.
//!
//! One binary per crate: each test binary links the whole dependency tree,
//! so one link instead of several; the modules below are the former files.

mod api;
mod common;
mod device_e2e;
mod github_flow;
mod mail_e2e;
mod nats;
mod oidc_flow;
mod passkeys_e2e;
mod relay_e2e;
mod replicas;
mod security;
mod server;
mod traces;
