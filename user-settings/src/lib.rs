//! The settings `user-server` and `user-cli` share, without the HTTP stack:
//! [`ServiceSettings`] (how `UserService` is built, so both hash, sign and
//! lock out alike), the value types they use, and [`load`], which reads
//! settings from flags, `USER_*` variables and a TOML config file.
//!
//! ```
//! use clap::Parser;
//!
//! #[derive(Parser)]
//! struct Cli {
//!     /// The TOML file to read settings from.
//!     #[arg(long, env = "USER_CONFIG_FILE")]
//!     config: Option<std::path::PathBuf>,
//!     #[command(flatten)]
//!     service: user_settings::ServiceSettings,
//! }
//!
//! let loaded = user_settings::load::<Cli, _, _>(["app", "--access-ttl", "5m"], user_settings::UnknownKeys::Refuse)?;
//! assert_eq!(loaded.settings.service.access_ttl.to_string(), "5m");
//! # Ok::<(), user_settings::LoadError>(())
//! ```

mod file;
mod service;
mod values;

pub use file::{Loaded, Sources, UnknownKeys, load};
pub use service::ServiceSettings;
pub use values::{DurationOrOff, JwtAlgorithm, LoadError, Secret};

/// The content of `path` (trimmed) for `setting`, unless no file is given.
///
/// # Errors
/// When the setting is also given directly (`given`), or the file cannot be read.
pub fn read_secret_file(
    setting: &str,
    path: &Option<std::path::PathBuf>,
    given: bool,
) -> Result<Option<String>, LoadError> {
    let Some(path) = path else { return Ok(None) };
    if given {
        return Err(LoadError::Invalid(format!("give {setting} or {setting}_FILE, not both")));
    }
    let text = std::fs::read_to_string(path)
        .map_err(|e| LoadError::Invalid(format!("{setting}_FILE {}: {e}", path.display())))?;
    Ok(Some(text.trim().to_owned()))
}
