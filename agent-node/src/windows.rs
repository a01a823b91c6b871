//! The node's windows, in one owner: the registry (what each window is, persisted across
//! restarts), the running [`SessionRt`] of each, and the lock that serialises creating windows.
//!
//! Why one owner: a window is added, looked up, marked exited and written to disk from requests,
//! the matcher, the liveness check and the link; with the registry and the runtimes behind one
//! type's methods, each of those is one short critical section here, never a guard held by a
//! caller. No method returns a guard of a `std` lock or takes one while calling out, so neither
//! lock can be held across an `.await` or taken in the wrong order (see `crate::node` for the
//! node's lock order).

use std::{
    collections::HashMap,
    path::Path,
    sync::{Arc, Mutex, atomic::Ordering},
    time::Duration,
};

use proto::v1::{self, node_msg};
use shared::{
    ids::{SessionId, ThreadId},
    sync::LockExt,
};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::{
    registry::{self, Registry, SessionRecord},
    session::SessionRt,
    transcript::chain::Chain,
    worktree::{self, Worktree},
};

/// Exited windows are forgotten this long after they were created.
const KEEP_EXITED_MS: i64 = 7 * 24 * 3600 * 1000;

/// The registry is written at most this often while windows change.
const FLUSH_INTERVAL: Duration = Duration::from_millis(200);

/// Every window of this node: its record and, once started, its runtime.
#[derive(Debug)]
pub(crate) struct Windows {
    registry: Mutex<Registry>,
    runtimes: Mutex<HashMap<SessionId, Arc<SessionRt>>>,
    /// Set when the registry changed and is not on disk yet.
    dirty: Notify,
    /// Serialises window creation (an idempotency key is checked and used in one step).
    creating: tokio::sync::Mutex<()>,
    /// The git worktrees the node created for windows (by path; see [`crate::worktree`]).
    worktrees: Mutex<worktree::Table>,
}

impl Windows {
    /// Loads the registry from `state_dir`, forgetting windows that exited long ago.
    pub(crate) fn load(state_dir: &Path) -> Result<Self, registry::Error> {
        let mut registry = Registry::load(state_dir)?;
        registry.prune_exited(shared::clock::now_unix_ms() - KEEP_EXITED_MS);
        Ok(Self {
            registry: Mutex::new(registry),
            runtimes: Mutex::new(HashMap::new()),
            dirty: Notify::new(),
            creating: tokio::sync::Mutex::new(()),
            worktrees: Mutex::new(worktree::Table::load(state_dir)),
        })
    }

    /// Held while a window is created; one creation at a time.
    pub(crate) async fn creating(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.creating.lock().await
    }

    // --- records ---

    /// The record of window `id`.
    pub(crate) fn record(&self, id: &str) -> Option<SessionRecord> {
        self.registry.locked().get(id).cloned()
    }

    /// Every record, exited windows included.
    pub(crate) fn records(&self) -> Vec<SessionRecord> {
        self.registry.locked().all().cloned().collect()
    }

    /// The records of windows that have not exited.
    pub(crate) fn live_records(&self) -> Vec<SessionRecord> {
        self.registry
            .locked()
            .all()
            .filter(|r| !r.exited)
            .cloned()
            .collect()
    }

    /// The first record that `pred` accepts.
    pub(crate) fn find(&self, pred: impl Fn(&SessionRecord) -> bool) -> Option<SessionRecord> {
        self.registry.locked().all().find(|r| pred(r)).cloned()
    }

    /// (thread id, session id) of every live window with a known thread.
    pub(crate) fn open_threads(&self) -> Vec<(ThreadId, SessionId)> {
        self.registry
            .locked()
            .all()
            .filter(|r| !r.exited)
            .filter_map(|r| Some((r.thread_id.clone()?, r.session_id.clone())))
            .collect()
    }

    /// Whether some window's rollouts already include thread `thread_id`.
    pub(crate) fn knows_thread(&self, thread_id: &str) -> bool {
        self.registry.locked().knows_thread(thread_id)
    }

    /// Adds or replaces a window's record.
    pub(crate) fn put(&self, record: SessionRecord) {
        self.registry.locked().put(record);
    }

    /// Changes window `id`'s record; false if there is no such window.
    pub(crate) fn update(&self, id: &str, f: impl FnOnce(&mut SessionRecord)) -> bool {
        self.registry.locked().update(id, f)
    }

    /// Every rollout file window `id` wrote, with their sequence bases.
    pub(crate) fn chain(&self, id: &str) -> Chain {
        self.registry.locked().chain(id)
    }

    /// Window `id`'s rollouts and where its events start, read together.
    pub(crate) fn chain_and_start(&self, id: &str) -> (Chain, u64) {
        let registry = self.registry.locked();
        let start = registry.get(id).map_or(0, |r| r.start_offset);
        (registry.chain(id), start)
    }

    /// Moves window `id` to a new rollout (see [`Registry::switch_rollout`]).
    pub(crate) fn switch_rollout(
        &self,
        id: &str,
        path: std::path::PathBuf,
        thread_id: shared::ids::ThreadId,
        old_len: u64,
    ) -> Option<u64> {
        self.registry
            .locked()
            .switch_rollout(id, path, thread_id, old_len)
    }

    /// Records the center's ack (persisted lazily).
    pub(crate) fn ack(&self, id: &str, seq: u64) {
        let updated = self.update(id, |r| r.acked_seq = r.acked_seq.max(seq));
        if updated {
            self.mark_dirty();
        }
    }

    /// Marks window `id` exited and its runtime not alive; true if it was not exited before.
    pub(crate) fn mark_exited(&self, id: &str) -> bool {
        let mut changed = false;
        self.update(id, |r| {
            changed = !r.exited;
            r.exited = true;
        });
        if let Some(rt) = self.runtime(id) {
            rt.alive.store(false, Ordering::Relaxed);
        }
        if changed {
            self.mark_dirty();
        }
        changed
    }

    // --- persistence ---

    /// The registry changed: the flusher writes it soon.
    pub(crate) fn mark_dirty(&self) {
        self.dirty.notify_one();
    }

    /// Writes the registry now (a failure is logged; the next change tries again).
    pub(crate) fn save(&self) {
        if let Err(err) = self.registry.locked().save() {
            tracing::warn!(error = %err, "saving the window registry failed");
        }
    }

    /// Writes the registry after changes, at most every [`FLUSH_INTERVAL`], and once more when
    /// `token` is cancelled.
    pub(crate) async fn flush_until_cancelled(&self, token: &CancellationToken) {
        loop {
            let stop = tokio::select! {
                () = self.dirty.notified() => false,
                () = token.cancelled() => true,
            };
            self.save();
            if stop {
                break;
            }
            tokio::time::sleep(FLUSH_INTERVAL).await;
        }
    }

    // --- worktrees ---

    /// The worktree the node created that holds `cwd` (the window's folder), if any.
    pub(crate) fn worktree_holding(&self, cwd: &Path) -> Option<Worktree> {
        self.worktrees.locked().holding(cwd).cloned()
    }

    /// Remembers a worktree the node created (written at once: it must survive a crash).
    pub(crate) fn put_worktree(&self, w: Worktree) {
        if let Err(err) = self.worktrees.locked().put(w) {
            tracing::warn!(error = %err, "saving the worktree table failed");
        }
    }

    /// Forgets a worktree that was removed or is gone.
    pub(crate) fn forget_worktree(&self, path: &Path) {
        if let Err(err) = self.worktrees.locked().forget(path) {
            tracing::warn!(error = %err, "saving the worktree table failed");
        }
    }

    // --- runtimes ---

    /// The runtime of window `id`, once started.
    pub(crate) fn runtime(&self, id: &str) -> Option<Arc<SessionRt>> {
        self.runtimes.locked().get(id).cloned()
    }

    /// Every started runtime.
    pub(crate) fn runtimes(&self) -> Vec<Arc<SessionRt>> {
        self.runtimes.locked().values().cloned().collect()
    }

    /// Adds (or replaces) the runtime of window `rt.id`.
    pub(crate) fn add_runtime(&self, rt: Arc<SessionRt>) {
        self.runtimes.locked().insert(rt.id.clone(), rt);
    }

    // --- wire ---

    /// The wire description of a window.
    pub(crate) fn info(&self, r: &SessionRecord) -> v1::SessionInfo {
        let alive = !r.exited
            && self
                .runtime(&r.session_id)
                .is_some_and(|rt| rt.alive.load(Ordering::Relaxed));
        v1::SessionInfo {
            session_id: r.session_id.to_string(),
            window_id: r.window_id.clone(),
            pane_id: r.pane_id.clone(),
            cwd: r.cwd.to_string_lossy().into_owned(),
            thread_id: r
                .thread_id
                .as_ref()
                .map(ToString::to_string)
                .unwrap_or_default(),
            created_unix_ms: r.created_unix_ms,
            alive,
            window_name: r.window_name.clone(),
            codex: self.runtime(&r.session_id).and_then(|rt| rt.codex_status()),
            worktree: self.worktree_holding(&r.cwd).map(|w| w.to_wire()),
            desk: registry::is_desk_session(&r.session_id),
        }
    }

    /// The lifecycle message telling the center that `record`'s window went through `kind`.
    pub(crate) fn lifecycle(&self, kind: v1::LifecycleKind, record: &SessionRecord) -> v1::NodeMsg {
        v1::NodeMsg {
            kind: Some(node_msg::Kind::Lifecycle(v1::WindowLifecycle {
                kind: kind as i32,
                session: Some(self.info(record)),
            })),
        }
    }
}
