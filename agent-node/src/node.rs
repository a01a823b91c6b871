//! [`Node`]: the windows this machine runs, their transcripts and terminals, and the requests a
//! center may make of them. One `Node` serves any number of links over its life (one at a time);
//! the same type runs in the `agent-node` binary and embedded in the center.

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Instant, SystemTime, UNIX_EPOCH},
};

use proto::v1::{self, node_msg};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::{
    browse::Roots,
    config::NodeConfig,
    hub::Hub,
    registry::{self, Registry, SessionRecord},
    rollout_match::Matcher,
    session::{self, SessionDeps, SessionRt, TailCmd},
    tmux::TmuxCli,
    transcript::locate,
};
use shared::sync::LockExt;

/// Exited windows are forgotten this long after they were created.
const KEEP_EXITED_MS: i64 = 7 * 24 * 3600 * 1000;

/// Why a node could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The registry could not be loaded.
    #[error(transparent)]
    Registry(#[from] registry::Error),
    /// tmux is not usable.
    #[error(transparent)]
    Tmux(#[from] crate::tmux::Error),
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] shared::config::ConfigError),
    /// The transcript directory cannot be watched.
    #[error("cannot watch {path}: {message}")]
    Watch {
        /// The directory.
        path: PathBuf,
        /// Why.
        message: String,
    },
}

/// A running node. Cheap to clone.
#[derive(Clone)]
pub struct Node {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) cfg: NodeConfig,
    pub(crate) roots: Roots,
    pub(crate) tmux: TmuxCli,
    pub(crate) hub: Hub,
    pub(crate) registry: Mutex<Registry>,
    registry_dirty: Notify,
    pub(crate) sessions: Mutex<HashMap<String, Arc<SessionRt>>>,
    /// Which rollout is whose (see `crate::rollout_match`).
    pub(crate) matcher: Matcher,
    /// Text being typed into a window (session id → text): the proof that a new rollout with
    /// that first message is the window's (see `crate::rollout_match`).
    pub(crate) claims: Mutex<HashMap<String, String>>,
    /// Serialises first submissions per working directory (see `crate::rollout_match`).
    pub(crate) cwd_locks: Mutex<HashMap<PathBuf, Arc<tokio::sync::Mutex<()>>>>,
    pub(crate) create_lock: tokio::sync::Mutex<()>,
    pub(crate) unknown_records: Arc<AtomicU64>,
    pub(crate) started: Instant,
    pub(crate) token: CancellationToken,
    /// Notified when a renewed fleet certificate was installed (the server rebinds with it).
    pub(crate) certificate_changed: Notify,
    /// `agent-node send` requests waiting for the center.
    pub(crate) relays: crate::control::Relays,
    /// Files `agent-node send` offered: the only non-images the center may read.
    pub(crate) offered: Mutex<std::collections::HashSet<PathBuf>>,
}

pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

impl Node {
    /// Loads the registry, adopts the windows that still exist, and starts watching transcripts.
    /// Everything stops when `token` is cancelled; tmux windows are never killed on shutdown.
    pub async fn start(cfg: NodeConfig, token: CancellationToken) -> Result<Self, StartError> {
        cfg.validate()?;
        let mut registry = Registry::load(&cfg.state_dir)?;
        registry.prune_exited(now_ms() - KEEP_EXITED_MS);
        let inner = Arc::new(Inner {
            roots: Roots::new(&cfg.roots),
            tmux: TmuxCli::new(&cfg.tmux_socket, &cfg.tmux_session, cfg.window_size),
            hub: Hub::default(),
            registry: Mutex::new(registry),
            registry_dirty: Notify::new(),
            sessions: Mutex::new(HashMap::new()),
            matcher: Matcher::default(),
            claims: Mutex::new(HashMap::new()),
            cwd_locks: Mutex::new(HashMap::new()),
            create_lock: tokio::sync::Mutex::new(()),
            unknown_records: Arc::new(AtomicU64::new(0)),
            started: Instant::now(),
            token,
            certificate_changed: Notify::new(),
            relays: crate::control::Relays::default(),
            offered: Mutex::new(std::collections::HashSet::new()),
            cfg,
        });
        let node = Self { inner };
        crate::files::sweep_partial_uploads(&node.inner.cfg.state_dir.join("inbox"));
        node.adopt().await?;
        node.spawn_registry_flusher();
        crate::rollout_match::start_watching(&node)?;
        node.spawn_liveness();
        tracing::info!(
            node.name = %node.inner.cfg.name,
            tmux.socket = %node.inner.cfg.tmux_socket,
            sessions = node.inner.sessions.locked().len(),
            "node started"
        );
        Ok(node)
    }

    /// Resolves when a renewed fleet certificate was installed.
    pub async fn certificate_changed(&self) {
        self.inner.certificate_changed.notified().await;
    }

    /// The configuration this node runs with.
    pub fn config(&self) -> &NodeConfig {
        &self.inner.cfg
    }

    /// Finds the windows of the registry again after a restart (by the session id stored on each
    /// window), marks the missing ones exited, and starts their runtimes.
    async fn adopt(&self) -> Result<(), StartError> {
        let panes = self.inner.tmux.list_panes().await?;
        let records: Vec<SessionRecord> = self.registry().all().cloned().collect();
        for mut record in records {
            let pane = panes
                .iter()
                .find(|p| p.session_id == record.session_id && !record.session_id.is_empty());
            let alive = match pane {
                Some(p) if !record.exited => {
                    record.pane_id = p.pane_id.clone();
                    record.window_id = p.window_id.clone();
                    !p.dead
                }
                _ => false,
            };
            if !alive && !record.exited {
                record.exited = true;
                tracing::info!(session.id = %record.session_id, "window gone while the node was away");
            }
            self.registry().put(record.clone());
            if alive {
                tracing::info!(session.id = %record.session_id, window.id = %record.window_id, "window adopted");
            }
            if alive || record.rollout.is_some() {
                self.spawn_runtime(&record, alive);
            }
        }
        self.mark_registry_dirty();
        Ok(())
    }

    /// Starts the runtime of a window and connects it to the attached link and its rollout.
    pub(crate) fn spawn_runtime(&self, record: &SessionRecord, alive: bool) -> Arc<SessionRt> {
        let weak = Arc::downgrade(&self.inner);
        let deps = SessionDeps {
            tmux: self.inner.tmux.clone(),
            hub: self.inner.hub.clone(),
            busy_refresh: self.inner.cfg.busy_refresh,
            unknown_records: self.inner.unknown_records.clone(),
            on_exit: Arc::new(move |id: &str| {
                if let Some(inner) = weak.upgrade() {
                    Node { inner }.mark_exited(id, v1::LifecycleKind::Exited);
                }
            }),
        };
        let rt = session::spawn(
            record.session_id.clone(),
            record.pane_id.clone(),
            alive,
            deps,
            &self.inner.token,
        );
        let from = record.acked_seq.max(record.start_offset);
        if let Some(sink) = self.inner.hub.sink() {
            let _ = rt.tail_tx.try_send(TailCmd::Attach { sink, from });
        }
        if record.rollout.is_some() {
            // Every file the window wrote, so a replay can start in one it has left.
            let chain = self.registry().chain(&record.session_id);
            for segment in chain.segments() {
                self.inner.matcher.own(&segment.path, &record.session_id);
            }
            let _ = rt.tail_tx.try_send(TailCmd::Bind { chain, start: from });
        }
        if alive {
            rt.kick_screen();
        }
        self.inner
            .sessions
            .locked()
            .insert(record.session_id.clone(), rt.clone());
        rt
    }

    pub(crate) fn registry(&self) -> std::sync::MutexGuard<'_, Registry> {
        self.inner.registry.locked()
    }

    pub(crate) fn session(&self, id: &str) -> Option<Arc<SessionRt>> {
        self.inner.sessions.locked().get(id).cloned()
    }

    pub(crate) fn record(&self, id: &str) -> Option<SessionRecord> {
        self.registry().get(id).cloned()
    }

    /// Marks a window exited (once) and tells the center.
    pub(crate) fn mark_exited(&self, id: &str, kind: v1::LifecycleKind) {
        let mut changed = false;
        self.registry().update(id, |r| {
            changed = !r.exited;
            r.exited = true;
        });
        if let Some(rt) = self.session(id) {
            rt.alive.store(false, Ordering::Relaxed);
        }
        if !changed {
            return;
        }
        self.mark_registry_dirty();
        tracing::info!(session.id = %id, ?kind, "window ended");
        if let Some(record) = self.record(id) {
            let node = self.clone();
            tokio::spawn(async move { node.lifecycle(kind, &record).await });
        }
    }

    pub(crate) async fn lifecycle(&self, kind: v1::LifecycleKind, record: &SessionRecord) {
        let msg = v1::NodeMsg {
            kind: Some(node_msg::Kind::Lifecycle(v1::WindowLifecycle {
                kind: kind as i32,
                session: Some(self.info(record)),
            })),
        };
        self.inner.hub.send(msg).await;
    }

    /// The wire description of a window.
    pub(crate) fn info(&self, r: &SessionRecord) -> v1::SessionInfo {
        let alive = !r.exited
            && self
                .session(&r.session_id)
                .is_some_and(|rt| rt.alive.load(Ordering::Relaxed));
        v1::SessionInfo {
            session_id: r.session_id.clone(),
            window_id: r.window_id.clone(),
            pane_id: r.pane_id.clone(),
            cwd: r.cwd.to_string_lossy().into_owned(),
            thread_id: r.thread_id.clone().unwrap_or_default(),
            created_unix_ms: r.created_unix_ms,
            alive,
            window_name: r.window_name.clone(),
        }
    }

    /// Records the center's ack (persisted lazily).
    pub(crate) fn ack(&self, session_id: &str, seq: u64) {
        let updated = self.registry().update(session_id, |r| {
            r.acked_seq = r.acked_seq.max(seq);
        });
        if updated {
            self.mark_registry_dirty();
        }
    }

    pub(crate) fn mark_registry_dirty(&self) {
        self.inner.registry_dirty.notify_one();
    }

    /// Writes the registry after changes, at most every 200 ms, and once more at shutdown.
    fn spawn_registry_flusher(&self) {
        let node = self.clone();
        tokio::spawn(async move {
            loop {
                let stop = tokio::select! {
                    () = node.inner.registry_dirty.notified() => false,
                    () = node.inner.token.cancelled() => true,
                };
                if let Err(err) = node.registry().save() {
                    tracing::warn!(error = %err, "saving the window registry failed");
                }
                if stop {
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            }
        });
    }

    /// Notices windows that disappear while idle (killed from tmux, tmux server gone). A window
    /// must be missing twice in a row: one failed look proves nothing.
    fn spawn_liveness(&self) {
        let node = self.clone();
        tokio::spawn(async move {
            let mut missing: HashMap<String, u32> = HashMap::new();
            let mut tick = tokio::time::interval(node.inner.cfg.liveness_interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    () = node.inner.token.cancelled() => break,
                    _ = tick.tick() => {}
                }
                let live: Vec<Arc<SessionRt>> = node
                    .inner
                    .sessions
                    .locked()
                    .values()
                    .filter(|rt| rt.alive.load(Ordering::Relaxed))
                    .cloned()
                    .collect();
                if live.is_empty() {
                    continue;
                }
                let Ok(panes) = node.inner.tmux.list_panes().await else {
                    continue;
                };
                for rt in live {
                    match panes.iter().find(|p| p.pane_id == rt.pane_id) {
                        Some(p) => {
                            missing.remove(&rt.id);
                            if p.dead {
                                rt.kick_screen();
                            }
                        }
                        None => {
                            let n = missing.entry(rt.id.clone()).or_default();
                            *n += 1;
                            if *n >= 2 {
                                missing.remove(&rt.id);
                                node.mark_exited(&rt.id, v1::LifecycleKind::Exited);
                                rt.kick_screen();
                            }
                        }
                    }
                }
            }
        });
    }

    /// A per-directory lock for first submissions.
    pub(crate) fn cwd_lock(&self, cwd: &Path) -> Arc<tokio::sync::Mutex<()>> {
        self.inner
            .cwd_locks
            .locked()
            .entry(cwd.to_owned())
            .or_default()
            .clone()
    }

    /// Rollout directory under Codex's home.
    pub(crate) fn sessions_dir(&self) -> PathBuf {
        self.inner.cfg.codex_home.join("sessions")
    }

    /// Looks at every rollout again (after missed file events, or while waiting for a bind).
    pub(crate) async fn rescan_rollouts(&self) {
        for path in locate::all_rollouts(&self.sessions_dir()) {
            crate::rollout_match::consider(self, &path).await;
        }
    }
}
