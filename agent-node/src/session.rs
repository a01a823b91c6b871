//! The runtime of one Codex window: a tail task that reads its transcript and emits events, and
//! a screen task that reads its terminal state.
//!
//! The tail task is the only reader of the window's rollout. It delivers events to the attached
//! center link (if any) and to in-node observers (input confirmation). When a center attaches,
//! the tail rewinds to the center's acked sequence and reads forward again, so replay and live
//! delivery are one code path and nothing is sent twice on one link.
//!
//! The screen task captures the pane when something suggests a change (an event, an input, a
//! request) and, only while a turn runs or a prompt is shown, every `busy_refresh`.

use std::{
    path::PathBuf,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering},
    },
    time::Duration,
};

use proto::v1::{self, node_msg, session_event::Kind};
use tokio::{
    io::{AsyncReadExt, AsyncSeekExt},
    sync::{Notify, broadcast, mpsc, watch},
};
use tokio_util::sync::CancellationToken;

use crate::{
    hub::Hub,
    screen::{self, PaneFacts, Screen},
    tmux::{self, TmuxCli},
    transcript::{
        parse::{Record, parse_line},
        tail::Tailer,
    },
};

/// Commands for the tail task.
#[derive(Debug)]
pub(crate) enum TailCmd {
    /// Deliver to this link from `from` on (rewinding if needed).
    Attach {
        sink: mpsc::Sender<v1::NodeMsg>,
        from: u64,
    },
    /// The window's rollout is known: tail it from `start`.
    Bind { path: PathBuf, start: u64 },
    /// The file changed.
    Wake,
}

/// Capacity of the tail task's command queue; wake-ups beyond it are redundant and dropped.
const TAIL_QUEUE: usize = 64;
/// Capacity of the in-node event fan-out (observers that lag just miss old events).
const EVENT_FANOUT: usize = 256;
/// Read at most this much of a rollout per step, so one huge append cannot stall the task.
const READ_CHUNK: usize = 1 << 20;

/// Shared state of one window's runtime.
#[derive(Debug)]
pub(crate) struct SessionRt {
    pub(crate) id: String,
    pub(crate) pane_id: String,
    pub(crate) tail_tx: mpsc::Sender<TailCmd>,
    pub(crate) events: broadcast::Sender<Arc<v1::SessionEvent>>,
    pub(crate) screen: watch::Sender<v1::TerminalState>,
    pub(crate) screen_kick: Notify,
    pub(crate) turn_active: AtomicBool,
    pub(crate) inputs_pending: AtomicUsize,
    pub(crate) alive: AtomicBool,
    pub(crate) token: CancellationToken,
}

impl SessionRt {
    /// Asks the screen task for a fresh capture.
    pub(crate) fn kick_screen(&self) {
        self.screen_kick.notify_one();
    }

    /// Wakes the tail task (its rollout changed).
    pub(crate) fn wake_tail(&self) {
        let _ = self.tail_tx.try_send(TailCmd::Wake);
    }

    /// Current screen state.
    pub(crate) fn screen_state(&self) -> v1::TerminalState {
        self.screen.borrow().clone()
    }
}

/// What the tasks need from the node.
#[derive(Clone)]
pub(crate) struct SessionDeps {
    pub(crate) tmux: TmuxCli,
    pub(crate) hub: Hub,
    pub(crate) busy_refresh: Duration,
    pub(crate) unknown_records: Arc<AtomicU64>,
    /// Called once when the window is found dead or gone.
    pub(crate) on_exit: Arc<dyn Fn(&str) + Send + Sync>,
}

/// Starts the tasks of one window. `alive = false` starts only the tail (an exited window whose
/// last events may still be undelivered).
pub(crate) fn spawn(
    id: String,
    pane_id: String,
    alive: bool,
    deps: SessionDeps,
    parent: &CancellationToken,
) -> Arc<SessionRt> {
    let (tail_tx, tail_rx) = mpsc::channel(TAIL_QUEUE);
    let (events, _) = broadcast::channel(EVENT_FANOUT);
    let initial = v1::TerminalState {
        session_id: id.clone(),
        state: if alive {
            v1::ScreenState::Starting
        } else {
            v1::ScreenState::Dead
        } as i32,
        ..Default::default()
    };
    let rt = Arc::new(SessionRt {
        id,
        pane_id,
        tail_tx,
        events,
        screen: watch::Sender::new(initial),
        screen_kick: Notify::new(),
        turn_active: AtomicBool::new(false),
        inputs_pending: AtomicUsize::new(0),
        alive: AtomicBool::new(alive),
        token: parent.child_token(),
    });
    let tail = TailTask {
        rt: rt.clone(),
        deps: deps.clone(),
        rx: tail_rx,
        path: None,
        tailer: Tailer::default(),
        inode: 0,
        sink: None,
        thread_id: String::new(),
    };
    tokio::spawn(tail.run());
    if alive {
        tokio::spawn(screen_loop(rt.clone(), deps));
    }
    rt
}

struct TailTask {
    rt: Arc<SessionRt>,
    deps: SessionDeps,
    rx: mpsc::Receiver<TailCmd>,
    path: Option<PathBuf>,
    tailer: Tailer,
    inode: u64,
    sink: Option<mpsc::Sender<v1::NodeMsg>>,
    thread_id: String,
}

impl TailTask {
    async fn run(mut self) {
        loop {
            tokio::select! {
                biased;
                () = self.rt.token.cancelled() => break,
                cmd = self.rx.recv() => match cmd {
                    Some(cmd) => self.handle(cmd),
                    None => break,
                },
            }
            // Fold queued commands into this read.
            while let Ok(cmd) = self.rx.try_recv() {
                self.handle(cmd);
            }
            if let Err(err) = self.read_new().await {
                tracing::debug!(session.id = %self.rt.id, error = %err, "rollout read failed");
            }
        }
    }

    fn handle(&mut self, cmd: TailCmd) {
        match cmd {
            TailCmd::Attach { sink, from } => {
                self.sink = Some(sink);
                self.tailer.reset(from);
            }
            TailCmd::Bind { path, start } => {
                // A link attached before the bind may have asked for an earlier offset.
                let from = self.tailer.line_offset().max(start);
                self.path = Some(path);
                self.tailer.reset(from);
                self.inode = 0;
            }
            TailCmd::Wake => {}
        }
    }

    async fn read_new(&mut self) -> std::io::Result<()> {
        let Some(path) = self.path.clone() else {
            return Ok(());
        };
        let mut file = tokio::fs::File::open(&path).await?;
        let meta = file.metadata().await?;
        let inode = std::os::unix::fs::MetadataExt::ino(&meta);
        if self.inode != 0 && inode != self.inode {
            tracing::info!(session.id = %self.rt.id, "rollout replaced; reading it from the start");
            self.tailer.reset(0);
        }
        self.inode = inode;
        if meta.len() < self.tailer.read_offset() {
            tracing::info!(session.id = %self.rt.id, "rollout truncated; reading it from the start");
            self.tailer.reset(0);
        }
        let mut buf = vec![0u8; READ_CHUNK];
        loop {
            file.seek(std::io::SeekFrom::Start(self.tailer.read_offset()))
                .await?;
            let n = file.read(&mut buf).await?;
            if n == 0 {
                return Ok(());
            }
            for line in self.tailer.push(&buf[..n]) {
                self.line(line).await;
            }
        }
    }

    async fn line(&mut self, line: crate::transcript::tail::Line) {
        if line.text.trim().is_empty() {
            return;
        }
        let (timestamp_ms, kind) = match parse_line(&line.text) {
            Ok(Record::Event { timestamp_ms, kind }) => (timestamp_ms, kind),
            Ok(Record::Meta { thread_id, .. }) => {
                if self.thread_id.is_empty() {
                    self.thread_id = thread_id;
                }
                return;
            }
            Ok(Record::Ignored) => return,
            Ok(Record::Unknown(kind)) => {
                self.deps.unknown_records.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(session.id = %self.rt.id, offset = line.start, record = %kind, "unknown rollout record");
                return;
            }
            Err(err) => {
                self.deps.unknown_records.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(session.id = %self.rt.id, offset = line.start, error = %err, "unparsable rollout line");
                return;
            }
        };
        match &kind {
            Kind::TurnStarted(_) => {
                self.rt.turn_active.store(true, Ordering::Relaxed);
                self.rt.kick_screen();
            }
            Kind::TurnCompleted(_) | Kind::TurnAborted(_) | Kind::Error(_) => {
                self.rt.turn_active.store(false, Ordering::Relaxed);
                self.rt.kick_screen();
            }
            _ => {}
        }
        let event = Arc::new(v1::SessionEvent {
            session_id: self.rt.id.clone(),
            seq: line.end,
            offset: line.start,
            thread_id: self.thread_id.clone(),
            timestamp_ms,
            kind: Some(kind),
        });
        let _ = self.rt.events.send(event.clone());
        if let Some(sink) = &self.sink {
            let msg = v1::NodeMsg {
                kind: Some(node_msg::Kind::Event((*event).clone())),
            };
            if sink.send(msg).await.is_err() {
                // The link closed; the next attach rewinds to what the center acked.
                self.sink = None;
            }
        }
    }
}

/// Keeps `rt.screen` current; see the module comment for when it captures.
async fn screen_loop(rt: Arc<SessionRt>, deps: SessionDeps) {
    let mut last = Screen::Starting;
    loop {
        let active = rt.turn_active.load(Ordering::Relaxed)
            || rt.inputs_pending.load(Ordering::Relaxed) > 0
            || matches!(
                last,
                Screen::Starting | Screen::Busy(_) | Screen::Prompt { .. }
            );
        tokio::select! {
            biased;
            () = rt.token.cancelled() => break,
            () = rt.screen_kick.notified() => {}
            () = tokio::time::sleep(deps.busy_refresh), if active => {}
        }
        let screen = match deps.tmux.snapshot(&rt.pane_id).await {
            Ok((info, text)) => screen::classify(
                &text,
                PaneFacts {
                    dead: info.dead,
                    current_command: &info.current_command,
                },
            ),
            Err(tmux::Error::Gone) => Screen::Dead,
            Err(err) => {
                // One failed capture proves nothing about the window; try again later.
                tracing::debug!(session.id = %rt.id, error = %err, "capture failed");
                continue;
            }
        };
        if screen == last {
            continue;
        }
        last = screen.clone();
        let state = to_wire(&rt.id, &screen);
        rt.screen.send_replace(state.clone());
        deps.hub
            .send(v1::NodeMsg {
                kind: Some(node_msg::Kind::Terminal(state)),
            })
            .await;
        if screen == Screen::Dead {
            rt.alive.store(false, Ordering::Relaxed);
            (deps.on_exit)(&rt.id);
            break;
        }
    }
}

/// The wire form of a screen state.
pub(crate) fn to_wire(session_id: &str, screen: &Screen) -> v1::TerminalState {
    let mut state = v1::TerminalState {
        session_id: session_id.to_owned(),
        ..Default::default()
    };
    let kind = match screen {
        Screen::Starting => v1::ScreenState::Starting,
        Screen::Ready => v1::ScreenState::Ready,
        Screen::Busy(line) => {
            state.status_line = line.clone();
            v1::ScreenState::Busy
        }
        Screen::Prompt { text, choices } => {
            state.prompt_text = text.clone();
            state.choices = choices
                .iter()
                .map(|c| v1::PromptChoice {
                    key: c.key.clone(),
                    label: c.label.clone(),
                })
                .collect();
            v1::ScreenState::Prompt
        }
        Screen::Dead => v1::ScreenState::Dead,
        Screen::Shell => v1::ScreenState::Shell,
    };
    state.state = kind as i32;
    state
}
