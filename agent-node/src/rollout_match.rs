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
//!
//! [`Matcher`] owns everything this takes: who owns which file, what was decided, the claims,
//! and the per-folder first-submission locks; it reaches the windows only through
//! [`Windows`]. Its `deciding` lock is held across a whole decision (captures included); its
//! `std` locks are leaves, each held for one map operation (see `crate::node` for the order).

mod decide;
mod watch;

use std::{
    collections::{HashMap, HashSet},
    path::{Path, PathBuf},
    sync::{Arc, Mutex, atomic::Ordering},
    time::{Duration, Instant},
};

use proto::v1;
use shared::{ids::SessionId, sync::LockExt};

use self::decide::{Choice, Current, Decision, Rollout, Window};
pub(crate) use self::watch::{WatchError, start_watching};
use crate::{
    hub::Hub,
    registry::SessionRecord,
    session::TailCmd,
    tmux::TmuxCli,
    transcript::locate::{self, Head},
    windows::Windows,
};

/// How long a rollout no screen shows is looked at again on its next writes: a screen may lag
/// behind the file by a redraw. After that it is not ours for good.
const SCREEN_GRACE: Duration = Duration::from_secs(10);

/// Which rollout is whose: the matcher's own state, and what it needs to look and to bind.
#[derive(Debug)]
pub(crate) struct Matcher {
    windows: Arc<Windows>,
    tmux: TmuxCli,
    hub: Hub,
    /// `$CODEX_HOME/sessions`, where Codex writes rollouts.
    sessions_dir: PathBuf,
    /// Rollout path → session id, for routing file events (earlier rollouts included).
    bound_paths: Mutex<HashMap<PathBuf, String>>,
    /// Rollouts decided for good as not ours: later writes to them are not looked at again.
    settled: Mutex<HashSet<PathBuf>>,
    /// When a rollout was first found unwitnessed by any screen.
    unwitnessed: Mutex<HashMap<PathBuf, Instant>>,
    /// Header times of current rollouts (they never change), so a decision reads one head.
    created: Mutex<HashMap<PathBuf, i64>>,
    /// Text being typed into a window (session id → text): the proof that a new rollout with
    /// that first message is the window's.
    claims: Mutex<HashMap<SessionId, String>>,
    /// Serialises first submissions per working directory.
    first_submissions: Mutex<HashMap<PathBuf, Arc<tokio::sync::Mutex<()>>>>,
    /// Serialises decisions.
    deciding: tokio::sync::Mutex<()>,
}

impl Matcher {
    /// A matcher for rollouts under `sessions_dir`, binding them to `windows`.
    pub(crate) fn new(
        windows: Arc<Windows>,
        tmux: TmuxCli,
        hub: Hub,
        sessions_dir: PathBuf,
    ) -> Self {
        Self {
            windows,
            tmux,
            hub,
            sessions_dir,
            bound_paths: Mutex::default(),
            settled: Mutex::default(),
            unwitnessed: Mutex::default(),
            created: Mutex::default(),
            claims: Mutex::default(),
            first_submissions: Mutex::default(),
            deciding: tokio::sync::Mutex::new(()),
        }
    }

    /// Where Codex writes rollouts.
    pub(crate) fn sessions_dir(&self) -> &Path {
        &self.sessions_dir
    }

    /// Routes events of `path` to `session_id`'s tail.
    pub(crate) fn own(&self, path: &Path, session_id: &str) {
        self.bound_paths
            .locked()
            .insert(path.to_owned(), session_id.to_owned());
    }

    /// Records that `text` is being typed into window `session_id` (its claim on a new rollout
    /// whose first message is `text`), until [`Self::withdraw_claim`].
    pub(crate) fn claim(&self, session_id: &str, text: &str) {
        self.claims
            .locked()
            .insert(SessionId::new(session_id), text.to_owned());
    }

    /// The typing into `session_id` is over.
    pub(crate) fn withdraw_claim(&self, session_id: &str) {
        self.claims.locked().remove(session_id);
    }

    /// The lock a window without a rollout holds while its first message is submitted, one per
    /// folder (see the module documentation, proof 2).
    pub(crate) fn first_submission_lock(&self, cwd: &Path) -> Arc<tokio::sync::Mutex<()>> {
        self.first_submissions
            .locked()
            .entry(cwd.to_owned())
            .or_default()
            .clone()
    }

    /// Looks at every rollout again (after missed file events, or while waiting for a bind).
    pub(crate) async fn rescan(&self) {
        for path in locate::all_rollouts(&self.sessions_dir) {
            self.consider(&path).await;
        }
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

    /// Routes a changed file: wakes the window that tails it, or decides whose it is.
    pub(crate) async fn consider(&self, path: &Path) {
        if !locate::is_rollout(path) {
            return;
        }
        if self.wake_owner(path) || self.is_settled(path) {
            return;
        }
        let _deciding = self.deciding.lock().await;
        // Another decision may have bound it while we waited.
        if self.wake_owner(path) {
            return;
        }
        let live = self.windows.live_records();
        if live.is_empty() {
            return;
        }
        let Ok(head) = locate::read_head(path) else {
            return;
        };
        if head.thread_id.is_empty() || self.windows.knows_thread(&head.thread_id) {
            return;
        }
        let decision = self.decide_for(&head, &live).await;
        let mut last_look = head.first_user_message.is_some();
        match decision {
            Decision::Bind(choice, proof) => {
                tracing::debug!(session.id = %choice.session_id, ?proof, rollout = %path.display(), "a new Codex transcript is a window's");
                self.apply(&choice, path, &head).await;
            }
            Decision::Wait | Decision::AskScreens(_) => {}
            Decision::Unwitnessed => {
                last_look = self.unwitnessed_for_good(path);
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
            self.settle(path);
        }
    }

    /// Wakes the tail of the window that owns `path`; false if nobody owns it.
    fn wake_owner(&self, path: &Path) -> bool {
        let Some(id) = self.owner(path) else {
            return false;
        };
        if let Some(rt) = self.windows.runtime(&id) {
            rt.wake_tail();
        }
        true
    }

    /// Gathers the facts [`decide::decide`] needs, and the screens if it asks for them.
    async fn decide_for(&self, head: &Head, live: &[SessionRecord]) -> Decision {
        let claims = self.claims.locked().clone();
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
                    created_ms: self.created_ms(path).unwrap_or(i64::MAX),
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
                let shown = self.screens_show(&choices, live, first).await;
                decide::by_screens(choices, &shown)
            }
            other => other,
        }
    }

    /// For each choice: does its pane show `first`? (A failed capture shows nothing.)
    async fn screens_show(
        &self,
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
                Some(pane) => self.tmux.capture(pane, false).await.ok(),
                None => None,
            };
            shown.push(screen.is_some_and(|s| decide::screen_shows(&s, first)));
        }
        shown
    }

    /// Carries out a binding decision.
    async fn apply(&self, choice: &Choice, path: &Path, head: &Head) {
        if choice.switch {
            self.switch(&choice.session_id, path, head).await;
        } else {
            self.bind(&choice.session_id, path, head).await;
        }
    }

    /// Records that `path` is the first rollout of `session_id` and starts tailing it.
    async fn bind(&self, session_id: &str, path: &Path, head: &Head) {
        self.windows.update(session_id, |r| {
            r.thread_id = Some(head.thread_id.clone());
            r.rollout = Some(path.to_owned());
        });
        self.windows.mark_dirty();
        self.own(path, session_id);
        tracing::info!(session.id = %session_id, thread.id = %head.thread_id, rollout = %path.display(), "transcript bound");
        if let Some(rt) = self.windows.runtime(session_id) {
            let (chain, start) = self.windows.chain_and_start(session_id);
            let _ = rt.tail_tx.send(TailCmd::Bind { chain, start }).await;
        }
        self.announce_bound(session_id).await;
    }

    /// Codex moved `session_id` to the new rollout `path`: the old file ends where the window
    /// left it, the new one continues the session's sequences, and the tail moves over.
    async fn switch(&self, session_id: &str, path: &Path, head: &Head) {
        let Some(old) = self.windows.record(session_id).and_then(|r| r.rollout) else {
            return;
        };
        let old_base = self
            .windows
            .chain(session_id)
            .segments()
            .last()
            .map_or(0, |s| s.base);
        let file_len = std::fs::metadata(&old).map_or(0, |m| m.len());
        // What the tail already delivered counts too, so no sequence is ever handed out twice.
        let read = self.windows.runtime(session_id).map_or(0, |rt| {
            rt.read_to.load(Ordering::Relaxed).saturating_sub(old_base)
        });
        let base = self.windows.switch_rollout(
            session_id,
            path.to_owned(),
            head.thread_id.clone(),
            file_len.max(read),
        );
        let Some(base) = base else {
            return;
        };
        // Persist before any event of the new file can be acked: a restart must know this base.
        self.windows.save();
        self.own(path, session_id);
        tracing::info!(
            session.id = %session_id,
            thread.id = %head.thread_id,
            rollout = %path.display(),
            previous = %old.display(),
            base,
            "Codex moved the window to a new transcript"
        );
        if let Some(rt) = self.windows.runtime(session_id) {
            let cmd = TailCmd::Switch {
                path: path.to_owned(),
                thread_id: head.thread_id.clone(),
                base,
            };
            let _ = rt.tail_tx.send(cmd).await;
        }
        self.announce_bound(session_id).await;
    }

    /// Tells the center that `session_id` has a (new) transcript.
    async fn announce_bound(&self, session_id: &str) {
        if let Some(record) = self.windows.record(session_id) {
            let msg = self.windows.lifecycle(v1::LifecycleKind::Bound, &record);
            self.hub.send(msg).await;
        }
    }
}
