//! Integration tests of the built `user-cli` binary in both modes.
//!
//! One binary per crate: each test binary links the whole dependency tree,
//! so one link instead of several; the modules below are the former files.

mod cli;
