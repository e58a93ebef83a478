//! Integration tests of the SDK against a real server in this process.
//!
//! One binary per crate: each test binary links the whole dependency tree,
//! so one link instead of several; the modules below are the former files.

mod client;
mod common;
mod device;
mod factors;
mod shared_refresh;
