//! Nothing here: see `sdk.rs` and `embed.rs`.
