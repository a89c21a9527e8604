//! Readiness for a service manager (systemd `Type=notify`, issue 16): the
//! states the process reports on `$NOTIFY_SOCKET` (sd_notify(3)). Without
//! that variable every call does nothing, so running by hand is unchanged.
//!
//! `READY=1` goes once every listener is bound and the tree serves (so
//! `systemctl start` returns when connections are accepted);
//! `RELOADING=1` and `READY=1` bracket a SIGHUP reload (so `systemctl
//! reload` returns when it is done, applied or refused); `STOPPING=1`
//! goes when a stop signal is handled.

use sd_notify::NotifyState;

/// Tells the manager the server is serving, with a status line.
pub fn ready(status: &str) {
    send(&[NotifyState::Ready, NotifyState::Status(status)]);
}

/// Tells the manager a reload started. `MONOTONIC_USEC` lets systemd tell
/// this reload's `READY=1` from an earlier one (`Type=notify-reload`).
pub fn reloading() {
    let mut states = vec![NotifyState::Reloading];
    if let Ok(now) = NotifyState::monotonic_usec_now() {
        states.push(now);
    }
    send(&states);
}

/// Tells the manager the server is stopping.
pub fn stopping() {
    send(&[NotifyState::Stopping, NotifyState::Status("stopping")]);
}

fn send(states: &[NotifyState<'_>]) {
    // A manager that went away must not stop the server: log and go on.
    if let Err(e) = sd_notify::notify(states) {
        tracing::warn!(error = %e, "cannot notify the service manager");
    }
}
