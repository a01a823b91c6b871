//! The runtime of one Codex window: a tail task that reads its transcript and emits events, and
//! a screen task that reads its terminal state.
//!
//! The tail task is the only reader of the window's rollouts. It delivers events to the attached
//! center link (if any) and to in-node observers (input confirmation). When a center attaches,
//! the tail rewinds to the center's acked sequence and reads forward again, so replay and live
//! delivery are one code path and nothing is sent twice on one link. When Codex moves the window
//! to a new rollout file, the tail reads the old file to its end and goes on with the new one
//! from its start; sequences continue across files (see [`crate::transcript::chain`]), so a
//! rewind may start in a file the window has already left.
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
use shared::{
    ids::{SessionId, ThreadId},
    sync::LockExt,
};
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
        chain::{Chain, Segment},
        parse::{Record, parse_line},
        status::StatusTracker,
        tail::{Line, Tailer},
    },
};

/// Commands for the tail task.
#[derive(Debug)]
pub(crate) enum TailCmd {
    /// Deliver to this link the events after sequence `from` (rewinding if needed).
    Attach {
        sink: mpsc::Sender<v1::NodeMsg>,
        from: u64,
    },
    /// The window's rollouts are known: deliver the events after sequence `start` (or after
    /// where an attached link asked, if that is later).
    Bind { chain: Chain, start: u64 },
    /// Codex moved the window to the rollout `path` of thread `thread_id`, whose byte 0 has
    /// sequence `base` (where the current file ends).
    Switch {
        path: PathBuf,
        thread_id: ThreadId,
        base: u64,
    },
    /// The file changed.
    Wake,
}

/// Capacity of the tail task's command queue; wake-ups beyond it are redundant and dropped.
const TAIL_QUEUE: usize = 64;
/// Capacity of the in-node event fan-out (observers that lag just miss old events).
const EVENT_FANOUT: usize = 256;
/// Read at most this much of a rollout per step, so one huge append cannot stall the task.
const READ_CHUNK: usize = 1 << 20;
/// When the tail starts mid-file, at most this much before it is read back for `/status`.
const PRIME_MAX: u64 = 16 << 20;

/// Shared state of one window's runtime.
#[derive(Debug)]
pub(crate) struct SessionRt {
    pub(crate) id: SessionId,
    pub(crate) pane_id: String,
    pub(crate) tail_tx: mpsc::Sender<TailCmd>,
    pub(crate) events: broadcast::Sender<Arc<v1::SessionEvent>>,
    pub(crate) screen: watch::Sender<v1::TerminalState>,
    pub(crate) screen_kick: Notify,
    pub(crate) turn_active: AtomicBool,
    pub(crate) inputs_pending: AtomicUsize,
    /// Sequence just past the last rollout line the tail read (where a switch may start).
    pub(crate) read_to: AtomicU64,
    pub(crate) alive: AtomicBool,
    pub(crate) token: CancellationToken,
    /// Text the node pasted that a question then covered (see `requests::typing`): it waits in
    /// Codex's composer and is taken out before anything else is typed.
    pub(crate) leftover: std::sync::Mutex<Option<String>>,
    /// The model and token use the rollouts read so far report (for `/status`).
    pub(crate) codex: std::sync::Mutex<StatusTracker>,
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

    /// The model and token use, once the rollout said.
    pub(crate) fn codex_status(&self) -> Option<v1::CodexStatus> {
        self.codex.locked().get()
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
    /// Called when a turn of (session, seq) just failed on a usage limit: the account new
    /// windows and jobs switched to, if `[accounts] rotate` did switch.
    pub(crate) on_usage_limit: UsageLimitHook,
}

/// See [`SessionDeps::on_usage_limit`].
pub(crate) type UsageLimitHook = Arc<dyn Fn(&str, u64) -> Option<String> + Send + Sync>;

/// A usage limit older than this when read (a replay, a restart) switches no account.
const ROTATE_WITHIN_MS: i64 = 120_000;

/// Starts the tasks of one window. `alive = false` starts only the tail (an exited window whose
/// last events may still be undelivered).
pub(crate) fn spawn(
    id: SessionId,
    pane_id: String,
    alive: bool,
    deps: SessionDeps,
    parent: &CancellationToken,
) -> Arc<SessionRt> {
    let (tail_tx, tail_rx) = mpsc::channel(TAIL_QUEUE);
    let (events, _) = broadcast::channel(EVENT_FANOUT);
    let initial = v1::TerminalState {
        session_id: id.to_string(),
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
        read_to: AtomicU64::new(0),
        alive: AtomicBool::new(alive),
        token: parent.child_token(),
        leftover: std::sync::Mutex::new(None),
        codex: std::sync::Mutex::new(StatusTracker::default()),
    });
    let tail = TailTask {
        rt: rt.clone(),
        deps: deps.clone(),
        rx: tail_rx,
        chain: Chain::default(),
        index: 0,
        pending: 0,
        tailer: Tailer::default(),
        inode: 0,
        sink: None,
        thread_id: ThreadId::default(),
        prime: None,
    };
    tokio::spawn(tail.run());
    if alive {
        // What the screen shows is read afresh each round, so a loop that panicked starts again
        // with nothing lost.
        let (screen_rt, token) = (rt.clone(), rt.token.clone());
        shared::shutdown::supervise("window screen", token, move || {
            screen_loop(screen_rt.clone(), deps.clone())
        });
    }
    rt
}

struct TailTask {
    rt: Arc<SessionRt>,
    deps: SessionDeps,
    rx: mpsc::Receiver<TailCmd>,
    /// The window's rollouts; empty until the first is known.
    chain: Chain,
    /// The segment being read.
    index: usize,
    /// Where delivery starts once the first rollout is known (a sequence).
    pending: u64,
    /// Position in the current segment's file.
    tailer: Tailer,
    inode: u64,
    sink: Option<mpsc::Sender<v1::NodeMsg>>,
    thread_id: ThreadId,
    /// The tail entered segment `.0` at offset `.1`: what `/status` needs may lie before it.
    prime: Option<(usize, u64)>,
}

/// How one pass over a segment's file ended.
enum Pass {
    /// Everything there is was read.
    Caught,
    /// The segment's end was reached, or its file is gone: go on with the next one.
    Finished,
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
            if let Some((index, offset)) = self.prime.take()
                && let Err(err) = self.prime_status(index, offset).await
            {
                tracing::debug!(session.id = %self.rt.id, error = %err, "reading the rollout for /status failed");
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
                self.seek(from);
            }
            TailCmd::Bind { chain, start } => {
                // A link attached before the bind may have asked for a later sequence.
                let from = self.position_seq().max(start);
                self.chain = chain;
                self.seek(from);
            }
            TailCmd::Switch {
                path,
                thread_id,
                base,
            } => self.switch(path, thread_id, base),
            TailCmd::Wake => {}
        }
    }

    /// The sequence delivery has reached.
    fn position_seq(&self) -> u64 {
        if self.chain.segments().is_empty() {
            self.pending
        } else {
            self.chain.seq(self.index, self.tailer.line_offset())
        }
    }

    /// Positions the tail so that the events after sequence `seq` come next.
    fn seek(&mut self, seq: u64) {
        match self.chain.position(seq) {
            Some(p) => self.enter(p.index, p.offset),
            None => self.pending = seq,
        }
    }

    /// Starts reading segment `index` at file offset `offset`.
    fn enter(&mut self, index: usize, offset: u64) {
        self.index = index;
        self.tailer.reset(offset);
        self.inode = 0;
        if offset > 0 {
            self.prime = Some((index, offset));
        }
        if let Some(segment) = self.chain.get(index)
            && !segment.thread_id.is_empty()
        {
            self.thread_id = segment.thread_id.clone();
        }
    }

    /// Reads the model and token counts in the `PRIME_MAX` bytes before `offset` of segment
    /// `index`, unless they are known: a tail that starts there (a restarted node resumes
    /// where the center's acknowledgements are) would otherwise know them only after the next
    /// model call.
    async fn prime_status(&mut self, index: usize, offset: u64) -> std::io::Result<()> {
        if self.rt.codex_status().is_some() {
            return Ok(());
        }
        let Some(segment) = self.chain.get(index).cloned() else {
            return Ok(());
        };
        let from = offset.saturating_sub(PRIME_MAX);
        let mut file = tokio::fs::File::open(&segment.path).await?;
        file.seek(std::io::SeekFrom::Start(from)).await?;
        let mut bytes = Vec::new();
        file.take(offset - from).read_to_end(&mut bytes).await?;
        self.rt
            .codex
            .locked()
            .prime(&bytes, segment.base + from, from > 0);
        Ok(())
    }

    /// The current file ends at `base`; the window goes on in `path`. The tail keeps its place:
    /// the rest of the old file is read first, then the new one from its start.
    fn switch(&mut self, path: PathBuf, thread_id: ThreadId, base: u64) {
        let at = self.position_seq();
        let was_bound = !self.chain.segments().is_empty();
        let base = self.chain.switch(path, thread_id, base);
        if !was_bound {
            self.seek(at.max(base));
        } else if at > base {
            // Lines past the end the node recorded were already delivered; the center will
            // take the new file's first events for duplicates up to `at`.
            tracing::warn!(session.id = %self.rt.id, at, base, "rollout switch behind delivered events");
        }
        tracing::info!(session.id = %self.rt.id, base, "tail moves to the new rollout after the current one");
    }

    /// Reads every segment from the current position on, moving to the next segment when one
    /// is finished.
    async fn read_new(&mut self) -> std::io::Result<()> {
        loop {
            let Some(segment) = self.chain.get(self.index).cloned() else {
                return Ok(());
            };
            let pass = match self.read_segment(&segment).await {
                Ok(pass) => pass,
                // A file the window has left and that is gone now has nothing more to give.
                Err(err) if segment.end.is_some() => {
                    tracing::info!(session.id = %self.rt.id, rollout = %segment.path.display(), error = %err, "earlier rollout unreadable; skipping to the next");
                    Pass::Finished
                }
                Err(err) => return Err(err),
            };
            match pass {
                Pass::Finished if self.chain.has_next(self.index) => {
                    self.enter(self.index + 1, 0);
                }
                _ => return Ok(()),
            }
        }
    }

    /// Reads `segment`'s file from the tail's offset to its end (or the segment's end).
    async fn read_segment(&mut self, segment: &Segment) -> std::io::Result<Pass> {
        let mut file = tokio::fs::File::open(&segment.path).await?;
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
            if segment.finished_at(self.tailer.line_offset()) {
                return Ok(Pass::Finished);
            }
            file.seek(std::io::SeekFrom::Start(self.tailer.read_offset()))
                .await?;
            let n = file.read(&mut buf).await?;
            if n == 0 {
                // A file the window has left ends here even if it is shorter than recorded.
                return Ok(if segment.end.is_some() {
                    Pass::Finished
                } else {
                    Pass::Caught
                });
            }
            for line in self.tailer.push(&buf[..n]) {
                if !segment.holds(line.end) {
                    // Written after the window moved on: not this session's any more.
                    return Ok(Pass::Finished);
                }
                self.line(line, segment.base).await;
            }
        }
    }

    async fn line(&mut self, line: Line, base: u64) {
        self.rt.read_to.store(base + line.end, Ordering::Relaxed);
        if line.too_long {
            self.deps.unknown_records.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(session.id = %self.rt.id, offset = line.start, "a rollout line too long to read; skipped");
            return;
        }
        if line.text.trim().is_empty() {
            return;
        }
        let record = parse_line(&line.text);
        if let Ok(record) = &record {
            self.rt.codex.locked().observe(base + line.end, record);
        }
        let (timestamp_ms, kind) = match record {
            Ok(Record::Event { timestamp_ms, kind }) => (timestamp_ms, kind),
            Ok(Record::Meta { thread_id, .. }) => {
                if self.thread_id.is_empty() {
                    self.thread_id = thread_id.into();
                }
                return;
            }
            Ok(Record::Ignored | Record::TurnSettings { .. } | Record::TurnTokens(_)) => return,
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
        let mut kind = kind;
        if let Kind::Error(e) = &mut kind
            && e.kind() == v1::CodexErrorKind::UsageLimit
            && timestamp_ms > 0
            && shared::clock::now_unix_ms() - timestamp_ms < ROTATE_WITHIN_MS
            && let Some(account) = (self.deps.on_usage_limit)(&self.rt.id, base + line.end)
        {
            e.message = format!(
                "{} — new windows and jobs on this machine now use the Codex account {account} \
                 (this window keeps its own)",
                e.message
            );
            e.switched_to_account = account;
        }
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
            session_id: self.rt.id.to_string(),
            seq: base + line.end,
            offset: base + line.start,
            thread_id: self.thread_id.to_string(),
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
            state.prompt_id = shared::prompt::prompt_id(text);
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
