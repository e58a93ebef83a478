//! The remote session, kept between runs in a file only its owner can read.

use std::io::Write;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use user_client::SavedSession;

use crate::failure::Failure;

/// What the credentials file holds.
#[derive(Serialize, Deserialize)]
struct Credentials {
    server: String,
    #[serde(flatten)]
    session: SavedSession,
}

/// `USER_CLI_CREDENTIALS`, or `<config dir>/user-cli/credentials.json`.
fn path() -> Result<PathBuf, Failure> {
    if let Some(p) = std::env::var_os("USER_CLI_CREDENTIALS") {
        return Ok(PathBuf::from(p));
    }
    dirs::config_dir()
        .map(|d| d.join("user-cli").join("credentials.json"))
        .ok_or_else(|| Failure::Usage("no config directory; set USER_CLI_CREDENTIALS to a file path".into()))
}

/// The saved session for `server`, if any.
pub fn load(server: &str) -> Option<SavedSession> {
    let text = std::fs::read_to_string(path().ok()?).ok()?;
    let saved: Credentials = serde_json::from_str(&text).ok()?;
    (saved.server == server).then_some(saved.session)
}

/// Saves the session for `server`, readable by the owner only (0600).
pub fn save(server: &str, session: SavedSession) -> Result<(), Failure> {
    let path = path()?;
    let fail = |e: std::io::Error| Failure::Refused(format!("cannot write {}: {e}", path.display()));
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(fail)?;
    }
    let body = serde_json::to_vec_pretty(&Credentials { server: server.to_owned(), session })
        .map_err(|e| Failure::Refused(e.to_string()))?;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(&path).map_err(fail)?;
    // An existing file keeps its mode on open: tighten it too.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(std::fs::Permissions::from_mode(0o600)).map_err(fail)?;
    }
    file.write_all(&body).map_err(fail)
}

/// Removes the credentials file.
pub fn remove() -> Result<(), Failure> {
    let path = path()?;
    match std::fs::remove_file(&path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(Failure::Refused(format!("cannot remove {}: {e}", path.display())))
        }
        _ => Ok(()),
    }
}
