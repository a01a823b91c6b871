//! systemd's notify protocol (`Type=notify`, `WatchdogSec=`): tell the service manager when the
//! daemon is ready and, while it is healthy, keep petting the watchdog. Does nothing when not
//! started by systemd (`NOTIFY_SOCKET` unset).

use std::time::Duration;

/// Sends one notification (e.g. `READY=1`); false if there is no service manager to tell.
pub fn notify(state: &str) -> bool {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return false;
    };
    let Ok(socket) = std::os::unix::net::UnixDatagram::unbound() else {
        return false;
    };
    let path = std::path::PathBuf::from(path);
    // Abstract sockets ("@name") are not reachable through a path; send to the path form only.
    socket.send_to(state.as_bytes(), &path).is_ok()
}

/// The watchdog interval systemd expects pings at, if any (half of `WatchdogSec`).
pub fn watchdog_interval() -> Option<Duration> {
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.parse().ok()?;
    (usec > 0).then(|| Duration::from_micros(usec / 2))
}

/// Says `READY=1` and, if systemd asked for a watchdog, pings it while `healthy()` holds (a
/// stalled daemon stops pinging and gets restarted).
pub fn ready_and_watchdog(healthy: impl Fn() -> bool + Send + 'static) {
    notify("READY=1");
    let Some(every) = watchdog_interval() else {
        return;
    };
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        loop {
            tick.tick().await;
            if healthy() {
                notify("WATCHDOG=1");
            }
        }
    });
}

#[cfg(test)]
mod tests {
    #[test]
    fn without_systemd_nothing_happens() {
        if std::env::var_os("NOTIFY_SOCKET").is_none() {
            assert!(!super::notify("READY=1"));
        }
    }
}
