//! [`Node`]: the windows this machine runs, their transcripts and terminals, and the requests a
//! center may make of them. One `Node` serves any number of links over its life (one at a time);
//! the same type runs in the `agent-node` binary and embedded in the center.
//!
//! A node is a few owners, each a type in its own module that alone touches its state:
//!
//! - [`Windows`] (`crate::windows`): the registry, the running `SessionRt`s, registry
//!   persistence, and the lock that serialises creating windows;
//! - [`Matcher`] (`crate::rollout_match`): which rollout is whose, the claims (text being typed,
//!   the proof for a new rollout) and the per-folder first-submission locks;
//! - [`Outbox`] (`crate::control`): `agent-node send` relays and the files they offer;
//! - `Hub` (`crate::hub`): the attached link;
//! - [`Jobs`] (`crate::jobs`): headless `codex exec` jobs, their folders and event logs, and
//!   the delivery of their events to the attached link.
//!
//! This module only builds them and wires them together; they get what they need from each
//! other as values (an `Arc<Windows>`, a `Hub`), never by reaching back into `Node`.
//!
//! **Lock order.** A lock may only be taken while holding locks *above* it in this list:
//!
//! 1. `Windows::creating` (tokio; held across the tmux calls that create a window);
//! 2. a first-submission lock of the `Matcher` (tokio, one per folder; held while a first
//!    message is typed and confirmed, which may rescan rollouts and so take 3);
//! 3. `Matcher::deciding` (tokio; held across one decision, its captures and its binding);
//! 4. `Jobs::creating` (tokio; held across spawning one job's process), then a job's
//!    `delivery` (tokio; held across appending one event to its log and sending it to the link,
//!    or across one replay); neither is taken with 1–3 held;
//! 5. the `std` mutexes: the registry and the runtimes of `Windows`, the `Matcher`'s maps and
//!    claims, the `Outbox`'s relays and offered files, the `Hub`'s state, a `SessionRt`'s
//!    leftover, the job table and each job's state in `Jobs`. These are leaves: each is held for one operation inside its owner's method,
//!    never two at once, never across an `.await` and never while calling another owner (no
//!    owner hands out a guard of one). All of them are locked with
//!    [`shared::sync::LockExt::locked`], so a panic elsewhere does not poison them for good.

use std::{
    collections::HashMap,
    path::PathBuf,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Instant,
};

use proto::v1;
use shared::ids::SessionId;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::{
    browse::Roots,
    config::NodeConfig,
    control::{self, Outbox},
    files,
    hub::Hub,
    jobs::Jobs,
    registry::{self, SessionRecord},
    rollout_match::{self, Matcher},
    session::{self, SessionDeps, SessionRt, TailCmd},
    tmux::TmuxCli,
    windows::Windows,
};

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

impl From<rollout_match::WatchError> for StartError {
    fn from(err: rollout_match::WatchError) -> Self {
        Self::Watch {
            path: err.path,
            message: err.message,
        }
    }
}

/// A running node. Cheap to clone.
#[derive(Clone)]
pub struct Node {
    pub(crate) inner: Arc<Inner>,
}

/// The owners (see the module documentation) and the node's fixed parts.
pub(crate) struct Inner {
    pub(crate) cfg: NodeConfig,
    pub(crate) roots: Roots,
    pub(crate) tmux: TmuxCli,
    pub(crate) hub: Hub,
    pub(crate) windows: Arc<Windows>,
    pub(crate) matcher: Arc<Matcher>,
    pub(crate) outbox: Arc<Outbox>,
    pub(crate) jobs: Arc<Jobs>,
    pub(crate) unknown_records: Arc<AtomicU64>,
    pub(crate) started: Instant,
    pub(crate) token: CancellationToken,
    /// Notified when a renewed fleet certificate was installed (the server rebinds with it).
    pub(crate) certificate_changed: Notify,
    /// Failed turns (session, seq) that switched the Codex account (`[accounts] rotate`).
    pub(crate) rotated: Arc<std::sync::Mutex<std::collections::HashSet<(String, u64)>>>,
}

impl Node {
    /// Loads the registry, adopts the windows that still exist, and starts watching transcripts.
    /// Everything stops when `token` is cancelled; tmux windows are never killed on shutdown.
    pub async fn start(cfg: NodeConfig, token: CancellationToken) -> Result<Self, StartError> {
        cfg.validate()?;
        let windows = Arc::new(Windows::load(&cfg.state_dir)?);
        let tmux = TmuxCli::new(&cfg.tmux_socket, &cfg.tmux_session, cfg.window_size);
        let hub = Hub::default();
        let matcher = Arc::new(Matcher::new(
            windows.clone(),
            tmux.clone(),
            hub.clone(),
            cfg.codex_home.join("sessions"),
        ));
        let inbox = files::inbox(&cfg.state_dir);
        let sendable = cfg
            .roots
            .iter()
            .map(|r| r.path.clone())
            .chain([inbox.clone()])
            .chain(cfg.send_roots.iter().cloned())
            .collect();
        let outbox = Arc::new(Outbox::new(hub.clone(), sendable));
        let jobs = Arc::new(Jobs::load(
            &cfg.state_dir,
            &cfg.codex_home,
            cfg.jobs.clone(),
            hub.clone(),
            token.clone(),
        ));
        let inner = Arc::new(Inner {
            roots: Roots::new(&cfg.roots),
            tmux,
            hub,
            windows,
            matcher,
            outbox,
            jobs,
            unknown_records: Arc::new(AtomicU64::new(0)),
            started: Instant::now(),
            token,
            certificate_changed: Notify::new(),
            rotated: Arc::default(),
            cfg,
        });
        let node = Self { inner };
        files::sweep_partial_uploads(&inbox);
        node.adopt().await?;
        node.spawn_registry_flusher();
        rollout_match::start_watching(node.inner.matcher.clone(), node.inner.token.clone())?;
        node.spawn_liveness();
        node.spawn_desk_watch();
        node.inner.jobs.recover();
        tracing::info!(
            node.name = %node.inner.cfg.name,
            tmux.socket = %node.inner.cfg.tmux_socket,
            sessions = node.inner.windows.runtimes().len(),
            "node started"
        );
        Ok(node)
    }

    /// Resolves when a renewed fleet certificate was installed.
    pub async fn certificate_changed(&self) {
        self.inner.certificate_changed.notified().await;
    }

    /// Serves the control socket (`agent-node send`) until `token` is cancelled.
    pub fn serve_control(&self, token: CancellationToken) -> std::io::Result<PathBuf> {
        control::serve(self.inner.outbox.clone(), &self.inner.cfg.state_dir, token)
    }

    /// Finds the windows of the registry again after a restart (by the session id stored on each
    /// window), marks the missing ones exited, and starts their runtimes.
    async fn adopt(&self) -> Result<(), StartError> {
        let panes = self.inner.tmux.list_panes().await?;
        for mut record in self.inner.windows.records() {
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
            self.inner.windows.put(record.clone());
            if alive {
                tracing::info!(session.id = %record.session_id, window.id = %record.window_id, "window adopted");
            }
            if alive || record.rollout.is_some() {
                self.spawn_runtime(&record, alive);
            }
        }
        self.inner.windows.mark_dirty();
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
            on_usage_limit: {
                let cfg = self.inner.cfg.clone();
                let rotated = self.inner.rotated.clone();
                Arc::new(move |id: &str, seq: u64| {
                    // Each failed turn switches once, however often it is read.
                    if !shared::sync::LockExt::locked(&*rotated).insert((id.to_owned(), seq)) {
                        return None;
                    }
                    crate::accounts::rotate(&cfg)
                })
            },
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
            let chain = self.inner.windows.chain(&record.session_id);
            for segment in chain.segments() {
                self.inner.matcher.own(&segment.path, &record.session_id);
            }
            let _ = rt.tail_tx.try_send(TailCmd::Bind { chain, start: from });
        }
        if alive {
            rt.kick_screen();
        }
        self.inner.windows.add_runtime(rt.clone());
        rt
    }

    /// Marks a window exited (once) and tells the center.
    pub(crate) fn mark_exited(&self, id: &str, kind: v1::LifecycleKind) {
        if !self.inner.windows.mark_exited(id) {
            return;
        }
        tracing::info!(session.id = %id, ?kind, "window ended");
        if let Some(record) = self.inner.windows.record(id) {
            let node = self.clone();
            tokio::spawn(async move { node.lifecycle(kind, &record).await });
        }
    }

    /// Tells the center that `record`'s window went through `kind`.
    pub(crate) async fn lifecycle(&self, kind: v1::LifecycleKind, record: &SessionRecord) {
        let msg = self.inner.windows.lifecycle(kind, record);
        self.inner.hub.send(msg).await;
    }

    /// Writes the registry after changes until the node stops.
    fn spawn_registry_flusher(&self) {
        let windows = self.inner.windows.clone();
        let token = self.inner.token.clone();
        let stop = token.clone();
        shared::shutdown::supervise("registry flush", stop, move || {
            let (windows, token) = (windows.clone(), token.clone());
            async move { windows.flush_until_cancelled(&token).await }
        });
    }

    /// Notices windows that disappear while idle (killed from tmux, tmux server gone). A window
    /// must be missing twice in a row: one failed look proves nothing.
    fn spawn_liveness(&self) {
        let node = self.clone();
        let token = self.inner.token.clone();
        shared::shutdown::supervise("window liveness", token, move || {
            let node = node.clone();
            async move {
                let mut missing: HashMap<SessionId, u32> = HashMap::new();
                let mut tick = tokio::time::interval(node.inner.cfg.liveness_interval);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tokio::select! {
                        () = node.inner.token.cancelled() => break,
                        _ = tick.tick() => {}
                    }
                    let live: Vec<Arc<SessionRt>> = node
                        .inner
                        .windows
                        .runtimes()
                        .into_iter()
                        .filter(|rt| rt.alive.load(Ordering::Relaxed))
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
            }
        });
    }
}
