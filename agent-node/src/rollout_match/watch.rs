//! File events for the matcher: `notify` (inotify) on `$CODEX_HOME/sessions`, recursively.
//! Events only say "look again"; a full rescan covers any that overflowed the queue.

use std::{
    collections::HashSet,
    path::PathBuf,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
};

use notify::Watcher;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::Matcher;
use crate::transcript::locate;

/// Queue of changed paths from the watcher thread; on overflow everything is rescanned.
const EVENT_QUEUE: usize = 4096;

/// The transcript directory cannot be watched.
#[derive(Debug, thiserror::Error)]
#[error("cannot watch {path}: {message}")]
pub(crate) struct WatchError {
    /// The directory.
    pub(crate) path: PathBuf,
    /// Why.
    pub(crate) message: String,
}

/// Starts handing file events under the matcher's sessions directory to `matcher`, until
/// `token` is cancelled.
pub(crate) fn start_watching(
    matcher: Arc<Matcher>,
    token: CancellationToken,
) -> Result<(), WatchError> {
    let dir = matcher.sessions_dir().to_owned();
    let watch_err = |e: &dyn std::fmt::Display| WatchError {
        path: dir.clone(),
        message: e.to_string(),
    };
    std::fs::create_dir_all(&dir).map_err(|e| watch_err(&e))?;
    let (tx, rx) = mpsc::channel::<PathBuf>(EVENT_QUEUE);
    let overflow = Arc::new(AtomicBool::new(false));
    let flag = overflow.clone();
    let mut watcher =
        notify::recommended_watcher(move |res: notify::Result<notify::Event>| match res {
            // Our own reads show up as access events: reacting to them would loop forever.
            Ok(event) if matches!(event.kind, notify::EventKind::Access(_)) => {}
            Ok(event) => {
                for path in event.paths {
                    if tx.try_send(path).is_err() {
                        flag.store(true, Ordering::Relaxed);
                    }
                }
            }
            Err(_) => flag.store(true, Ordering::Relaxed),
        })
        .map_err(|e| watch_err(&e))?;
    watcher
        .watch(&dir, notify::RecursiveMode::Recursive)
        .map_err(|e| watch_err(&e))?;
    // Supervised: the receiver and the watch outlive a panic of the loop, and a loop started
    // again rescans first, since the batch being handled when it failed may be lost.
    let rx = Arc::new(tokio::sync::Mutex::new(rx));
    let started_before = Arc::new(AtomicBool::new(false));
    shared::shutdown::supervise("rollout watcher", token.clone(), move || {
        let _watch = &watcher; // dropped (and unwatched) when the supervision ends
        let restart = started_before.swap(true, Ordering::Relaxed);
        route_events(
            matcher.clone(),
            rx.clone(),
            overflow.clone(),
            token.clone(),
            restart,
        )
    });
    Ok(())
}

/// Hands every changed path to the matcher, batching what queued up meanwhile; after a restart
/// (`rescan_first`) it looks at every transcript once before.
async fn route_events(
    matcher: Arc<Matcher>,
    rx: Arc<tokio::sync::Mutex<mpsc::Receiver<PathBuf>>>,
    overflow: Arc<AtomicBool>,
    token: CancellationToken,
    rescan_first: bool,
) {
    let mut rx = rx.lock().await;
    if rescan_first {
        tracing::info!("the rollout watcher started again; rescanning transcripts");
        rescan(&matcher).await;
    }
    loop {
        let first = tokio::select! {
            () = token.cancelled() => break,
            p = rx.recv() => match p { Some(p) => p, None => break },
        };
        let mut paths = HashSet::from([first]);
        while let Ok(p) = rx.try_recv() {
            paths.insert(p);
        }
        for path in paths {
            if path.is_dir() {
                // A new date folder: files may have landed before its watch was added.
                for rollout in locate::all_rollouts(&path) {
                    matcher.consider(&rollout).await;
                }
            } else {
                matcher.consider(&path).await;
            }
        }
        if overflow.swap(false, Ordering::Relaxed) {
            tracing::info!("file events overflowed; rescanning transcripts");
            rescan(&matcher).await;
        }
    }
}

/// Has every window read its transcript and the matcher look at every rollout again: what
/// file events were missed is found this way.
async fn rescan(matcher: &Matcher) {
    for rt in matcher.windows.runtimes() {
        rt.wake_tail();
    }
    matcher.rescan().await;
}
