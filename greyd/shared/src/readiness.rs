//! Telling the service manager the daemon is up: `READY=1` to systemd's
//! `NOTIFY_SOCKET` (Type=notify units), once the listeners are bound and
//! privileges dropped. Without `NOTIFY_SOCKET` (OpenBSD's rc.d, a shell) it does nothing.

/// Send `READY=1` and a one-line status; a failure is logged, not fatal (the daemon serves anyway).
pub fn notify_ready(status: &str) {
    if let Err(e) = sd_notify::notify(&[sd_notify::NotifyState::Ready, sd_notify::NotifyState::Status(status)]) {
        tracing::warn!("cannot tell the service manager we are ready: {e}");
    }
}

/// Send `STOPPING=1`, so systemd shows the daemon shutting down rather than failed.
pub fn notify_stopping() {
    let _ = sd_notify::notify(&[sd_notify::NotifyState::Stopping]);
}
