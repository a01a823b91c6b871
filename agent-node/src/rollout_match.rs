//! Which rollout belongs to which window, proven without guessing by directory alone.
//!
//! Codex creates a session's rollout only when its first message is submitted, and with its
//! shared daemon the process that writes it may not even run in the window's pane, so neither
//! process ids nor a hook's `TMUX_PANE` can be trusted. And a window does not keep one rollout:
//! `/new`, `/fork` or `/resume` typed into Codex make it write another file from then on (for
//! `/new`, created when the next message is submitted), and answers must keep flowing. So every
//! rollout nobody owns yet is offered to the live windows of its folder, bound or not, with
//! these proofs ([`decide`] holds the rules, over plain data):
//!
//! 1. **Resume**: the thread id we passed to `codex resume` names the file. Bound at creation.
//! 2. **What we typed**: while the node types into a window it records a claim (window, text);
//!    for a window without a rollout it first takes a per-folder lock, so at most one such
//!    window per folder is being typed into at a time. A rollout created after the window (and
//!    after the window's current rollout), whose `session_meta.cwd` is the window's folder and
//!    whose first user message is the claimed text, belongs to that window.
//! 3. **What its screen shows** (typed at the desk, or a claim that does not match, e.g. text
//!    Codex rewrote): the one window of that folder whose pane shows the first message. Never by
//!    elimination alone, not even with a single window in the folder: a `codex` started at the
//!    desk in the same folder, in another pane or outside our tmux server, shows its messages in
//!    its own terminal, not in ours, so it is never captured (and a window we are typing other
//!    text into shows that text, not the desk's). A `/fork` of a window's thread
//!    (`forked_from_id`) is offered to that window only.
//!
//! Anything else is not bound, and the reason is logged. A bound window that gets a new rollout
//! is *switched*: the registry keeps the old file with the sequences it covered and the tail
//! reads the new one after it (see [`crate::transcript::chain`]).

mod decide;
mod watch;

use std::{
    collections::{HashMap, HashSet},
    path::{Path, PathBuf},
    sync::{Mutex, atomic::Ordering},
    time::{Duration, Instant},
};

use proto::v1;

use self::decide::{Choice, Current, Decision, Rollout, Window};
pub(crate) use self::watch::start_watching;
use crate::{
    node::Node,
    registry::SessionRecord,
    session::TailCmd,
    transcript::locate::{self, Head},
};
use shared::sync::LockExt;

/// How long a rollout no screen shows is looked at again on its next writes: a screen may lag
/// behind the file by a redraw. After that it is not ours for good.
const SCREEN_GRACE: Duration = Duration::from_secs(10);

/// The matcher's own state: who owns which file, and what was already decided.
#[derive(Debug, Default)]
pub(crate) struct Matcher {
    /// Rollout path → session id, for routing file events (earlier rollouts included).
    bound_paths: Mutex<HashMap<PathBuf, String>>,
    /// Rollouts decided for good as not ours: later writes to them are not looked at again.
    settled: Mutex<HashSet<PathBuf>>,
    /// When a rollout was first found unwitnessed by any screen.
    unwitnessed: Mutex<HashMap<PathBuf, Instant>>,
    /// Header times of current rollouts (they never change), so a decision reads one head.
    created: Mutex<HashMap<PathBuf, i64>>,
    /// Serialises decisions.
    deciding: tokio::sync::Mutex<()>,
}

impl Matcher {
    /// Routes events of `path` to `session_id`'s tail.
    pub(crate) fn own(&self, path: &Path, session_id: &str) {
        self.bound_paths
            .locked()
            .insert(path.to_owned(), session_id.to_owned());
    }

    fn owner(&self, path: &Path) -> Option<String> {
        self.bound_paths.locked().get(path).cloned()
    }

    fn is_settled(&self, path: &Path) -> bool {
        self.settled.locked().contains(path)
    }

    /// Has `path` gone unwitnessed for longer than [`SCREEN_GRACE`]?
    fn unwitnessed_for_good(&self, path: &Path) -> bool {
        let mut seen = self.unwitnessed.locked();
        let first = *seen.entry(path.to_owned()).or_insert_with(Instant::now);
        first.elapsed() >= SCREEN_GRACE
    }

    fn settle(&self, path: &Path) {
        self.unwitnessed.locked().remove(path);
        self.settled.locked().insert(path.to_owned());
    }

    /// When `path`'s header was written, read once.
    fn created_ms(&self, path: &Path) -> Option<i64> {
        if let Some(ms) = self.created.locked().get(path) {
            return Some(*ms);
        }
        let head = locate::read_head(path).ok()?;
        self.created
            .locked()
            .insert(path.to_owned(), head.created_ms);
        Some(head.created_ms)
    }
}

/// Routes a changed file: wakes the window that tails it, or decides whose it is.
pub(crate) async fn consider(node: &Node, path: &Path) {
    if !locate::is_rollout(path) {
        return;
    }
    let matcher = &node.inner.matcher;
    if wake_owner(node, path) || matcher.is_settled(path) {
        return;
    }
    let _deciding = matcher.deciding.lock().await;
    // Another decision may have bound it while we waited.
    if wake_owner(node, path) {
        return;
    }
    let live: Vec<SessionRecord> = node
        .registry()
        .all()
        .filter(|r| !r.exited)
        .cloned()
        .collect();
    if live.is_empty() {
        return;
    }
    let Ok(head) = locate::read_head(path) else {
        return;
    };
    if head.thread_id.is_empty() || node.registry().knows_thread(&head.thread_id) {
        return;
    }
    let decision = decide_for(node, &head, &live).await;
    let mut last_look = head.first_user_message.is_some();
    match decision {
        Decision::Bind(choice, proof) => {
            tracing::debug!(session.id = %choice.session_id, ?proof, rollout = %path.display(), "a new Codex transcript is a window's");
            apply(node, &choice, path, &head).await;
        }
        Decision::Wait | Decision::AskScreens(_) => {}
        Decision::Unwitnessed => {
            last_look = matcher.unwitnessed_for_good(path);
            tracing::debug!(rollout = %path.display(), settled = last_look, "no screen of its folder shows a new Codex transcript's first message");
        }
        Decision::NotOurs(why) => {
            tracing::debug!(rollout = %path.display(), why, "a new Codex transcript is not ours")
        }
        Decision::Ambiguous(ids) => tracing::warn!(
            rollout = %path.display(),
            windows = ?ids,
            "a new Codex transcript matches several windows in the same folder; not binding it"
        ),
    }
    // With its first message written, nothing later changes whose it is.
    if last_look {
        matcher.settle(path);
    }
}

/// Wakes the tail of the window that owns `path`; false if nobody owns it.
fn wake_owner(node: &Node, path: &Path) -> bool {
    let Some(id) = node.inner.matcher.owner(path) else {
        return false;
    };
    if let Some(rt) = node.session(&id) {
        rt.wake_tail();
    }
    true
}

/// Gathers the facts [`decide::decide`] needs, and the screens if it asks for them.
async fn decide_for(node: &Node, head: &Head, live: &[SessionRecord]) -> Decision {
    let claims = node.inner.claims.locked().clone();
    let cwds: Vec<String> = live
        .iter()
        .map(|r| r.cwd.to_string_lossy().into_owned())
        .collect();
    let currents: Vec<Option<Current<'_>>> = live
        .iter()
        .map(|r| {
            let (thread_id, path) = (r.thread_id.as_deref()?, r.rollout.as_deref()?);
            Some(Current {
                thread_id,
                created_ms: node.inner.matcher.created_ms(path).unwrap_or(i64::MAX),
            })
        })
        .collect();
    let windows: Vec<Window<'_>> = live
        .iter()
        .zip(&cwds)
        .zip(&currents)
        .map(|((r, cwd), current)| Window {
            session_id: &r.session_id,
            cwd,
            created_ms: r.created_unix_ms,
            current: *current,
            claim: claims.get(&r.session_id).map(String::as_str),
        })
        .collect();
    let rollout = Rollout {
        thread_id: &head.thread_id,
        cwd: &head.cwd,
        created_ms: head.created_ms,
        first_user_message: head.first_user_message.as_deref(),
        forked_from: head.forked_from.as_deref(),
    };
    match decide::decide(&rollout, &windows) {
        Decision::AskScreens(choices) => {
            let first = head.first_user_message.as_deref().unwrap_or_default();
            let shown = screens_show(node, &choices, live, first).await;
            decide::by_screens(choices, &shown)
        }
        other => other,
    }
}

/// For each choice: does its pane show `first`? (A failed capture shows nothing.)
async fn screens_show(
    node: &Node,
    choices: &[Choice],
    live: &[SessionRecord],
    first: &str,
) -> Vec<bool> {
    let mut shown = Vec::with_capacity(choices.len());
    for choice in choices {
        let pane = live
            .iter()
            .find(|r| r.session_id == choice.session_id)
            .map(|r| r.pane_id.as_str());
        let screen = match pane {
            Some(pane) => node.inner.tmux.capture(pane, false).await.ok(),
            None => None,
        };
        shown.push(screen.is_some_and(|s| decide::screen_shows(&s, first)));
    }
    shown
}

/// Carries out a binding decision.
async fn apply(node: &Node, choice: &Choice, path: &Path, head: &Head) {
    if choice.switch {
        switch(node, &choice.session_id, path, head).await;
    } else {
        bind(node, &choice.session_id, path, head).await;
    }
}

/// Records that `path` is the first rollout of `session_id` and starts tailing it.
pub(crate) async fn bind(node: &Node, session_id: &str, path: &Path, head: &Head) {
    node.registry().update(session_id, |r| {
        r.thread_id = Some(head.thread_id.clone());
        r.rollout = Some(path.to_owned());
    });
    node.mark_registry_dirty();
    node.inner.matcher.own(path, session_id);
    tracing::info!(session.id = %session_id, thread.id = %head.thread_id, rollout = %path.display(), "transcript bound");
    if let Some(rt) = node.session(session_id) {
        let (chain, start) = {
            let registry = node.registry();
            let start = registry.get(session_id).map_or(0, |r| r.start_offset);
            (registry.chain(session_id), start)
        };
        let _ = rt.tail_tx.send(TailCmd::Bind { chain, start }).await;
    }
    if let Some(record) = node.record(session_id) {
        node.lifecycle(v1::LifecycleKind::Bound, &record).await;
    }
}

/// Codex moved `session_id` to the new rollout `path`: the old file ends where the window
/// left it, the new one continues the session's sequences, and the tail moves over.
async fn switch(node: &Node, session_id: &str, path: &Path, head: &Head) {
    let Some(old) = node.record(session_id).and_then(|r| r.rollout) else {
        return;
    };
    let old_base = node
        .registry()
        .chain(session_id)
        .segments()
        .last()
        .map_or(0, |s| s.base);
    let file_len = std::fs::metadata(&old).map_or(0, |m| m.len());
    // What the tail already delivered counts too, so no sequence is ever handed out twice.
    let read = node.session(session_id).map_or(0, |rt| {
        rt.read_to.load(Ordering::Relaxed).saturating_sub(old_base)
    });
    let base = node.registry().switch_rollout(
        session_id,
        path.to_owned(),
        head.thread_id.clone(),
        file_len.max(read),
    );
    let Some(base) = base else {
        return;
    };
    // Persist before any event of the new file can be acked: a restart must know this base.
    if let Err(err) = node.registry().save() {
        tracing::warn!(error = %err, "saving the window registry failed");
    }
    node.inner.matcher.own(path, session_id);
    tracing::info!(
        session.id = %session_id,
        thread.id = %head.thread_id,
        rollout = %path.display(),
        previous = %old.display(),
        base,
        "Codex moved the window to a new transcript"
    );
    if let Some(rt) = node.session(session_id) {
        let cmd = TailCmd::Switch {
            path: path.to_owned(),
            thread_id: head.thread_id.clone(),
            base,
        };
        let _ = rt.tail_tx.send(cmd).await;
    }
    if let Some(record) = node.record(session_id) {
        node.lifecycle(v1::LifecycleKind::Bound, &record).await;
    }
}
