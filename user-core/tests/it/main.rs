//! Integration tests of `user-core` through its public API, as an embedder uses it.
//!
//! One binary per crate: each test binary links the whole dependency tree,
//! so one link instead of several; the modules below are the former files.

mod properties;
mod relay;
mod service;
