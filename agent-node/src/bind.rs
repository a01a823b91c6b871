//! Which rollout belongs to which window, proven without guessing by directory alone.
//!
//! Codex creates a fresh session's rollout only when the first message is submitted, and with
//! its shared daemon the process that writes it may not even run in the window's pane, so
//! neither process ids nor a hook's `TMUX_PANE` can be trusted. The proof used:
//!
//! 1. **Resume**: the thread id we passed to `codex resume` names the file. Bound at creation.
//! 2. **First message we typed**: before typing into a window that has no rollout yet, the node
//!    takes a per-directory lock and records a claim (window, text). A rollout created after the
//!    window, whose `session_meta.cwd` is the window's directory and whose first user message is
//!    the claimed text, belongs to that window. The lock means at most one unbound window per
//!    directory is being typed into at a time, so two windows in one directory never cross.
//! 3. **Typed at the desk** (no claim): if exactly one unbound window has that directory and was
//!    created before the rollout, it is that one; if several, the one whose screen shows the
//!    first message. Otherwise nothing is bound (and the ambiguity is logged), never a guess.
//!
//! File events come from `notify` (inotify) on `$CODEX_HOME/sessions`, recursively.

use std::{
    collections::HashSet,
    path::{Path, PathBuf},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
};

use notify::Watcher;
use proto::v1;
use tokio::sync::mpsc;

use crate::{
    input,
    node::{Node, StartError},
    session::TailCmd,
    transcript::locate::{self, Head},
};

/// Queue of changed paths from the watcher thread; on overflow everything is rescanned.
const EVENT_QUEUE: usize = 4096;
/// Clock skew tolerated between a window's creation and its rollout's header.
const SKEW_MS: i64 = 2000;

/// Starts the transcript watcher for `node`.
pub(crate) fn start_watching(node: &Node) -> Result<(), StartError> {
    let dir = node.sessions_dir();
    let watch_err = |e: &dyn std::fmt::Display| StartError::Watch {
        path: dir.clone(),
        message: e.to_string(),
    };
    std::fs::create_dir_all(&dir).map_err(|e| watch_err(&e))?;
    let (tx, mut rx) = mpsc::channel::<PathBuf>(EVENT_QUEUE);
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
                        consider(&node, &rollout).await;
                    }
                } else {
                    consider(&node, &path).await;
                }
            }
            if overflow.swap(false, Ordering::Relaxed) {
                tracing::info!("file events overflowed; rescanning transcripts");
                for rt in node.inner.sessions.lock().expect("sessions lock").values() {
                    rt.wake_tail();
                }
                node.rescan_rollouts().await;
            }
        }
    });
    Ok(())
}

/// Routes a changed file: wakes the window that tails it, or tries to bind it to a window.
pub(crate) async fn consider(node: &Node, path: &Path) {
    if !locate::is_rollout(path) {
        return;
    }
    let owner = node
        .inner
        .bound_paths
        .lock()
        .expect("paths lock")
        .get(path)
        .cloned();
    if let Some(id) = owner {
        if let Some(rt) = node.session(&id) {
            rt.wake_tail();
        }
        return;
    }
    let _guard = node.inner.bind_lock.lock().await;
    let unbound: Vec<_> = node
        .registry()
        .all()
        .filter(|r| !r.exited && r.thread_id.is_none())
        .cloned()
        .collect();
    if unbound.is_empty() {
        return;
    }
    let Ok(head) = locate::read_head(path) else {
        return;
    };
    if head.thread_id.is_empty()
        || node
            .registry()
            .all()
            .any(|r| r.thread_id.as_deref() == Some(head.thread_id.as_str()))
    {
        return;
    }
    let candidates: Vec<_> = unbound
        .iter()
        .filter(|r| {
            r.cwd.to_string_lossy() == head.cwd && head.created_ms + SKEW_MS >= r.created_unix_ms
        })
        .collect();
    if candidates.is_empty() {
        return;
    }
    // The first message may not be written yet; a later change brings us back here.
    let Some(first) = head.first_user_message.clone() else {
        return;
    };
    let chosen = {
        let claims = node.inner.claims.lock().expect("claims lock");
        candidates
            .iter()
            .filter(|r| {
                claims
                    .get(&r.session_id)
                    .is_some_and(|text| input::is_same_message(&input::normalize(text), &first))
            })
            .min_by_key(|r| r.created_unix_ms)
            .map(|r| r.session_id.clone())
    };
    let chosen = match chosen {
        Some(id) => Some(id),
        None if candidates.len() == 1 => Some(candidates[0].session_id.clone()),
        None => by_screen(node, &candidates, &first).await,
    };
    match chosen {
        Some(id) => bind(node, &id, path, &head).await,
        None => tracing::warn!(
            rollout = %path.display(),
            "a new Codex transcript matches several windows in the same folder; not binding it"
        ),
    }
}

/// The one candidate whose screen shows the message's first line, if exactly one does.
async fn by_screen(
    node: &Node,
    candidates: &[&crate::registry::SessionRecord],
    first: &str,
) -> Option<String> {
    let needle: String = locate::one_line(first, 40).trim_end_matches('…').to_owned();
    if needle.len() < 4 {
        return None;
    }
    let mut hits = Vec::new();
    for r in candidates {
        if let Ok(screen) = node.inner.tmux.capture(&r.pane_id, false).await
            && screen.contains(&needle)
        {
            hits.push(r.session_id.clone());
        }
    }
    (hits.len() == 1).then(|| hits.remove(0))
}

/// Records that `path` is the rollout of `session_id` and starts tailing it from the start.
pub(crate) async fn bind(node: &Node, session_id: &str, path: &Path, head: &Head) {
    node.registry().update(session_id, |r| {
        r.thread_id = Some(head.thread_id.clone());
        r.rollout = Some(path.to_owned());
    });
    node.mark_registry_dirty();
    node.inner
        .bound_paths
        .lock()
        .expect("paths lock")
        .insert(path.to_owned(), session_id.to_owned());
    tracing::info!(session.id = %session_id, thread.id = %head.thread_id, rollout = %path.display(), "transcript bound");
    if let Some(rt) = node.session(session_id) {
        let start = node.record(session_id).map_or(0, |r| r.start_offset);
        let _ = rt
            .tail_tx
            .send(TailCmd::Bind {
                path: path.to_owned(),
                start,
            })
            .await;
    }
    if let Some(record) = node.record(session_id) {
        node.lifecycle(v1::LifecycleKind::Bound, &record).await;
    }
}
