//! Long polling for updates, with a watchdog: if no poll has succeeded for the configured time,
//! the process exits with status 75 so the service manager restarts it.

use std::{
    sync::{
        Arc,
        atomic::{AtomicI64, Ordering},
    },
    time::{Duration, Instant},
};

use tokio_util::sync::CancellationToken;

use super::api::TgError;
use crate::app::App;

/// Exit status when polling stalls (EX_TEMPFAIL: "try again later").
pub const WATCHDOG_EXIT: i32 = 75;

/// Polls until `token` is cancelled.
pub async fn run(app: Arc<App>, token: CancellationToken) {
    let started = Instant::now();
    let last_ok = Arc::new(AtomicI64::new(0));
    spawn_watchdog(app.cfg.watchdog, started, last_ok.clone(), token.clone());
    // systemd (Type=notify): ready now; the watchdog is petted only while polling succeeds.
    let limit = app.cfg.watchdog;
    let seen = last_ok.clone();
    shared::systemd::ready_and_watchdog(move || {
        let last = Duration::from_millis(seen.load(Ordering::Relaxed) as u64);
        started.elapsed().saturating_sub(last) < limit
    });
    let mut offset: i32 = app
        .store
        .last_update_id()
        .ok()
        .flatten()
        .map_or(0, |id| (id + 1) as i32);
    let mut failures: u32 = 0;
    let timeout = app.cfg.poll_timeout;
    loop {
        let poll = app.outbox.tg().get_updates(offset, timeout);
        let result = tokio::select! {
            () = token.cancelled() => return,
            r = tokio::time::timeout(timeout + Duration::from_secs(15), poll) => r,
        };
        match result {
            Ok(Ok(updates)) => {
                failures = 0;
                last_ok.store(started.elapsed().as_millis() as i64, Ordering::Relaxed);
                for update in updates {
                    offset = offset.max(update.id.0 as i32 + 1);
                    app.dispatch(&update);
                }
            }
            Ok(Err(TgError::RetryAfter(d))) => tokio::time::sleep(d).await,
            Ok(Err(err)) => {
                failures += 1;
                let hint = if err.to_string().contains("terminated by other getUpdates") {
                    " (another process is polling this bot token)"
                } else {
                    ""
                };
                tracing::warn!(error = %err, failures, "polling failed{hint}");
                tokio::time::sleep(backoff(failures)).await;
            }
            Err(_) => {
                failures += 1;
                tracing::warn!(failures, "polling timed out");
                tokio::time::sleep(backoff(failures)).await;
            }
        }
    }
}

fn backoff(failures: u32) -> Duration {
    shared::backoff::delay(failures + 1)
}

fn spawn_watchdog(
    limit: Duration,
    started: Instant,
    last_ok: Arc<AtomicI64>,
    token: CancellationToken,
) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(5));
        loop {
            tokio::select! {
                () = token.cancelled() => return,
                _ = tick.tick() => {}
            }
            let last = Duration::from_millis(last_ok.load(Ordering::Relaxed) as u64);
            let since = started.elapsed().saturating_sub(last);
            if since > limit {
                tracing::error!(stalled = ?since, "no successful poll for too long; exiting so the service manager restarts the center");
                std::process::exit(WATCHDOG_EXIT);
            }
        }
    });
}
