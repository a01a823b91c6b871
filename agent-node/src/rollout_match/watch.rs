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

use crate::{
    node::{Node, StartError},
    transcript::locate,
};
use shared::sync::LockExt;

/// Queue of changed paths from the watcher thread; on overflow everything is rescanned.
const EVENT_QUEUE: usize = 4096;

/// Starts the transcript watcher for `node`.
pub(crate) fn start_watching(node: &Node) -> Result<(), StartError> {
    let dir = node.sessions_dir();
    let watch_err = |e: &dyn std::fmt::Display| StartError::Watch {
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
    let node = node.clone();
    tokio::spawn(async move {
        let _watcher = watcher; // dropped (and unwatched) when the task ends
        route_events(node, rx, overflow).await;
    });
    Ok(())
}

/// Hands every changed path to the matcher, batching what queued up meanwhile.
async fn route_events(node: Node, mut rx: mpsc::Receiver<PathBuf>, overflow: Arc<AtomicBool>) {
    loop {
        let first = tokio::select! {
            () = node.inner.token.cancelled() => break,
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
                    super::consider(&node, &rollout).await;
                }
            } else {
                super::consider(&node, &path).await;
            }
        }
        if overflow.swap(false, Ordering::Relaxed) {
            tracing::info!("file events overflowed; rescanning transcripts");
            let sessions: Vec<_> = node.inner.sessions.locked().values().cloned().collect();
            for rt in sessions {
                rt.wake_tail();
            }
            node.rescan_rollouts().await;
        }
    }
}
