//! Telling systemd how the daemon is doing, for `Type=notify` units (the protocol of
//! sd_notify(3)): one datagram per state change to the socket named by `$NOTIFY_SOCKET`.
//!
//! The protocol is a single `sendto`, so it is written here rather than pulled in. Outside
//! systemd the variable is unset and every call is a no-op; a notification that cannot be sent
//! is logged and otherwise ignored, since the service manager's view is not worth failing for.

use std::io;
use std::os::unix::net::UnixDatagram;

/// The variable systemd sets for `Type=notify` services.
const NOTIFY_SOCKET: &str = "NOTIFY_SOCKET";

/// `READY=1`: start-up is over (the API, when configured, is listening).
pub fn ready() {
    notify("READY=1\nSTATUS=running");
}

/// `STATUS=...`: a one-line status that `systemctl status` shows.
pub fn status(status: &str) {
    let line = status.replace('\n', " ");
    notify(&format!("STATUS={line}"));
}

/// `STOPPING=1`: shutdown has begun.
pub fn stopping() {
    notify("STOPPING=1");
}

fn notify(message: &str) {
    let Some(socket) = std::env::var_os(NOTIFY_SOCKET) else {
        return;
    };
    let socket = socket.to_string_lossy();
    if let Err(e) = send(&socket, message) {
        tracing::warn!(socket = %socket, "cannot notify the service manager: {e}");
    }
}

fn send(socket: &str, message: &str) -> io::Result<()> {
    let datagram = UnixDatagram::unbound()?;
    match socket.strip_prefix('@') {
        // A leading `@` names a socket in the abstract namespace.
        Some(name) => {
            use std::os::linux::net::SocketAddrExt;
            let address = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
            datagram.send_to_addr(message.as_bytes(), &address)?;
        }
        None => {
            datagram.send_to(message.as_bytes(), socket)?;
        }
    }
    Ok(())
}
