//! systemd's readiness protocol (`sd_notify`, for `Type=notify` units): one
//! datagram to the socket `NOTIFY_SOCKET` names, written here with the
//! standard library rather than libsystemd.

use std::os::unix::net::UnixDatagram;

/// Tells the service manager `state` (`READY=1`, `STOPPING=1`, …) when one
/// is listening (`NOTIFY_SOCKET` set); otherwise does nothing.
///
/// # Errors
/// When the socket cannot be reached; callers log it, serving goes on.
pub fn notify(state: &str) -> std::io::Result<()> {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else { return Ok(()) };
    let socket = UnixDatagram::unbound()?;
    let bytes = std::os::unix::ffi::OsStrExt::as_bytes(path.as_os_str());
    match bytes.strip_prefix(b"@") {
        // An abstract socket (Linux): `@` stands for the leading NUL.
        Some(name) => {
            use std::os::linux::net::SocketAddrExt as _;
            let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
            socket.send_to_addr(state.as_bytes(), &addr)?;
        }
        None => {
            socket.send_to(state.as_bytes(), &path)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn without_a_notify_socket_nothing_is_sent() {
        // The test process has no NOTIFY_SOCKET (its own tests set it on
        // a child process, never here: the environment is shared).
        if std::env::var_os("NOTIFY_SOCKET").is_none() {
            super::notify("READY=1").unwrap();
        }
    }
}
