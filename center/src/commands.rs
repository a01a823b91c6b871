//! Slash commands in a topic. Commands the center does not know go to Codex as text, so Codex's
//! own slash commands (`/model`, `/compact`, …) work from Telegram too.

mod codex_status;

use std::sync::Arc;

use proto::v1::{self, reply::Result as R, request::Op};

use crate::{
    app::{App, CALL_TIMEOUT},
    inbox::UpdateLease,
    nodes::CallError,
    pending::PendingInput,
    store::STATE_UNREADABLE,
    store::{Binding, InputMode, Surface},
    telegram::{
        api::{MediaKind, Upload},
        callback::{Callback, PromptKey},
        command::Command,
        outbox::{Class, Edit, EditMedia, MediaSend, Send},
        render::escape_html,
    },
};

const HELP: &str = "Each topic is the remote control of one live Codex session running in tmux.\n\
Send a message in an unbound topic (or /bind) to pick a folder and start or resume Codex there; \
after that, every message is typed into Codex and its answers come back here.\n\
Jobs (/run, /plan, /review) run Codex headless in the topic's folder (or the chat's /workdir) \
and send the answer back; /model, /permissions, /approvals, /search, /experimental and \
/personality set what jobs use, except in a bound topic, where they are Codex's own commands \
and are typed into it.\n\n";

impl App {
    /// Runs one of the bot's commands. `lease` keeps the update unfinished in the inbox while
    /// input it carries waits.
    pub(crate) async fn command(
        self: &Arc<Self>,
        surface: Surface,
        cmd: Command,
        args: &str,
        msg_id: i32,
        lease: UpdateLease,
    ) {
        let Ok(binding) = self.binding(surface) else {
            self.notice(surface, STATE_UNREADABLE, Some(msg_id));
            return;
        };
        let unbound =
            "This topic is not bound to a Codex session. Send a message or /bind to start one.";
        match cmd {
            // In a bound topic these are Codex's own TUI commands: typed into it as sent.
            cmd if cmd.codex_in_bound_topics() && binding.is_some() => {
                let text = if args.is_empty() {
                    format!("/{}", cmd.name())
                } else {
                    format!("/{} {args}", cmd.name())
                };
                self.input_or_bind(
                    surface,
                    PendingInput {
                        text,
                        reply_to: msg_id,
                        mode: binding.map_or(InputMode::Steer, |b| b.mode),
                        leases: vec![lease],
                    },
                )
                .await;
            }
            Command::Start | Command::Help => {
                let mut text = escape_html(HELP);
                for c in Command::ALL {
                    text += &format!("/{} — {}\n", c.name(), escape_html(c.description()));
                }
                self.say(surface, text, Some(msg_id));
            }
            Command::Bind | Command::Resume => match binding {
                Some(b) => self.notice(
                    surface,
                    &format!(
                        "This topic is bound to a session in {}. Use /unbind first.",
                        b.cwd
                    ),
                    Some(msg_id),
                ),
                None => self.start_bind(surface, None).await,
            },
            Command::Queue | Command::Steer => {
                let mode = if cmd == Command::Queue {
                    InputMode::Queue
                } else {
                    InputMode::Steer
                };
                if args.is_empty() {
                    self.notice(
                        surface,
                        &format!("Usage: /{} <text>", cmd.name()),
                        Some(msg_id),
                    );
                } else {
                    self.input_or_bind(
                        surface,
                        PendingInput {
                            text: args.to_owned(),
                            reply_to: msg_id,
                            mode,
                            leases: vec![lease],
                        },
                    )
                    .await;
                }
            }
            Command::Switch => match binding {
                None => self.notice(surface, unbound, Some(msg_id)),
                Some(b) => {
                    let mode = match b.mode {
                        InputMode::Steer => InputMode::Queue,
                        InputMode::Queue => InputMode::Steer,
                    };
                    let _ = self.store.set_mode(surface, mode);
                    let text = match mode {
                        InputMode::Steer => "Messages now steer: they are sent at once (Enter).",
                        InputMode::Queue => {
                            "Messages are now queued: they run after the current turn (Tab)."
                        }
                    };
                    self.notice(surface, text, Some(msg_id));
                }
            },
            Command::Status => self.status(surface, binding, msg_id).await,
            // Codex's own `/status`, which ours would otherwise hide. Its answer is drawn on
            // Codex's screen (never in the transcript), so a screenshot follows the receipt.
            Command::CodexStatus => match binding {
                None => self.notice(surface, unbound, Some(msg_id)),
                Some(b) => {
                    let input = PendingInput {
                        text: "/status".to_owned(),
                        reply_to: msg_id,
                        mode: b.mode,
                        leases: vec![lease],
                    };
                    let typed = self.send_input(b.clone(), input);
                    let app = self.clone();
                    tokio::spawn(async move {
                        if typed.await.is_ok() {
                            // Let Codex finish drawing its status card.
                            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
                            app.screenshot(&b, msg_id).await;
                        }
                    });
                }
            },
            Command::Run
            | Command::Plan
            | Command::Review
            | Command::Diff
            | Command::Jobs
            | Command::Job
            | Command::Info
            | Command::Cancel
            | Command::Approve
            | Command::Reject
            | Command::Workdir
            | Command::Schedule
            | Command::RunSession
            | Command::Session
            | Command::Video
            | Command::DebugConfig
            | Command::Model
            | Command::Permissions
            | Command::Approvals
            | Command::Search
            | Command::Experimental
            | Command::Personality
            | Command::Mcp => match self.jobs() {
                Some(jobs) => {
                    let ctx = crate::jobs::commands::Context {
                        surface,
                        message_id: msg_id,
                        binding,
                    };
                    jobs.command(ctx, cmd, args).await;
                }
                None => self.notice(
                    surface,
                    "Jobs are not running on this center.",
                    Some(msg_id),
                ),
            },
            Command::Health => crate::health::command(self, surface, args, msg_id).await,
            Command::Toolbar => crate::toolbar::command(self, surface, binding, msg_id).await,
            Command::Cleanup => crate::cleanup::command(self, surface, msg_id).await,
            Command::CodexLogin | Command::CodexAccount => {
                crate::accounts::command(self, surface, cmd, args, msg_id).await
            }
            Command::Verbose => {
                let text = self.verbose.command(&self.store, surface, args);
                self.notice(surface, &text, Some(msg_id));
            }
            Command::Nodes => self.nodes_overview(surface, msg_id),
            Command::Node => self.node_command(surface, args, msg_id).await,
            Command::Screenshot => match binding {
                None => self.notice(surface, unbound, Some(msg_id)),
                Some(b) => self.screenshot(&b, msg_id).await,
            },
            Command::History => self.history(surface, 0, Some(msg_id), None).await,
            Command::Esc | Command::Interrupt => match binding {
                None => self.notice(surface, unbound, Some(msg_id)),
                Some(b) => {
                    let key = if cmd == Command::Esc {
                        v1::NamedKey::Escape
                    } else {
                        v1::NamedKey::CtrlC
                    };
                    let text = self.press_named_key(&b, key).await;
                    self.notice(surface, &text, Some(msg_id));
                }
            },
            Command::Unbind => match self.store.remove_binding(surface) {
                Ok(Some(b)) => {
                    let _ = self.store.clear_status(surface);
                    self.notice(
                        surface,
                        &format!("Unbound. The Codex window in {} keeps running; attach with tmux to see it.", b.cwd),
                        Some(msg_id),
                    );
                }
                // A read-only topic (no window) is unbound by ending that.
                _ if matches!(self.store.drop_replay(surface), Ok(true)) => self.notice(
                    surface,
                    "Unbound: this topic no longer shows that session.",
                    Some(msg_id),
                ),
                _ => self.notice(surface, unbound, Some(msg_id)),
            },
            Command::Kill => {
                match binding {
                    None => self.notice(surface, unbound, Some(msg_id)),
                    Some(b) => {
                        // A window in a worktree the node made: asks about the worktree.
                        if crate::worktree::kill(self, surface, &b, msg_id).await {
                            return;
                        }
                        let op = Op::KillWindow(v1::KillWindow {
                            session_id: b.session_id.to_string(),
                            ..Default::default()
                        });
                        match self.call(&b, op).await {
                            Ok(_)
                            | Err(CallError::Failed {
                                code: v1::ErrorCode::NotFound,
                                ..
                            }) => {
                                let _ = self.store.remove_binding(surface);
                                let _ = self.store.clear_status(surface);
                                self.notice(surface, "Window closed and topic unbound. /resume brings the session back.", Some(msg_id));
                            }
                            Err(err) => self.notice(
                                surface,
                                &format!("Could not close the window: {err}"),
                                Some(msg_id),
                            ),
                        }
                    }
                }
            }
        }
    }

    /// A node request for a bound topic.
    pub(crate) async fn call(&self, b: &Binding, op: Op) -> Result<R, CallError> {
        match self.node(&b.node) {
            Some(node) => node.call(op, CALL_TIMEOUT).await,
            None => Err(CallError::Offline),
        }
    }

    /// Presses Esc or Ctrl-C in the binding's window (`/esc`, `/interrupt`, the toolbar);
    /// returns what happened, for the user.
    pub(crate) async fn press_named_key(&self, b: &Binding, key: v1::NamedKey) -> String {
        let op = Op::SendKey(v1::SendKey {
            session_id: b.session_id.to_string(),
            key: Some(v1::send_key::Key::Named(key as i32)),
            expect_prompt: String::new(),
        });
        match self.call(b, op).await {
            Ok(_) if key == v1::NamedKey::Escape => "⎋ Escape sent.".to_owned(),
            Ok(_) => "Ctrl-C sent.".to_owned(),
            Err(err) => format!("Not sent: {err}"),
        }
    }

    /// Sends HTML to a topic (not awaited).
    pub(crate) fn say(&self, surface: Surface, html: String, reply_to: Option<i32>) {
        drop(self.outbox.send(Send {
            surface,
            plain: html.clone(),
            html,
            keyboard: None,
            reply_to,
            class: Class::Message,
        }));
    }

    pub(crate) async fn status(&self, surface: Surface, binding: Option<Binding>, msg_id: i32) {
        let jobs_line = self
            .jobs()
            .map(|jobs| jobs.status_line(surface.chat_id, binding.as_ref()))
            .unwrap_or_default();
        let Some(b) = binding else {
            self.notice(
                surface,
                &format!(
                    "Not bound. Send a message or /bind to start a Codex session here.\n{jobs_line}"
                ),
                Some(msg_id),
            );
            return;
        };
        let online = self.node(&b.node).is_some_and(|n| n.online());
        let mut text = format!(
            "<b>Folder</b> <code>{}</code>\n<b>Machine</b> {} ({})\n<b>Input</b> {}",
            escape_html(&b.cwd),
            escape_html(&b.node),
            if online { "online" } else { "offline" },
            match b.mode {
                InputMode::Steer => "steer (Enter)",
                InputMode::Queue => "queue (Tab)",
            }
        );
        if let Ok(R::Windows(w)) = self.call(&b, Op::ListWindows(v1::ListWindows {})).await
            && let Some(s) = w.sessions.iter().find(|s| s.session_id == b.session_id)
        {
            text += &format!(
                "\n<b>Window</b> {} ({})",
                escape_html(&s.window_name),
                if s.alive { "running" } else { "exited" }
            );
            if !s.thread_id.is_empty() {
                text += &format!(
                    "\n<b>Codex session</b> <code>{}</code>",
                    escape_html(&s.thread_id)
                );
            }
            // Older nodes, and windows before their first turn, have nothing to say here.
            if let Some(c) = &s.codex {
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs() as i64);
                text += &codex_status::lines(c, now);
            }
        }
        let op = Op::CapturePane(v1::CapturePane {
            session_id: b.session_id.to_string(),
            ansi: false,
        });
        if let Ok(R::Capture(c)) = self.call(&b, op).await
            && let Some(state) = c.state
        {
            let what = match state.state() {
                v1::ScreenState::Ready => "ready".to_owned(),
                v1::ScreenState::Busy => format!("working — {}", state.status_line),
                v1::ScreenState::Prompt => "waiting for an answer".to_owned(),
                v1::ScreenState::Dead => "exited".to_owned(),
                v1::ScreenState::Shell => "not running (a shell is)".to_owned(),
                _ => "starting".to_owned(),
            };
            text += &format!("\n<b>Codex</b> {}", escape_html(&what));
        }
        if !jobs_line.is_empty() {
            text += &format!("\n{}", escape_html(&jobs_line));
        }
        self.say(surface, text, Some(msg_id));
    }

    async fn node_command(self: &Arc<Self>, surface: Surface, args: &str, msg_id: i32) {
        let words: Vec<&str> = args.split_whitespace().collect();
        match words.as_slice() {
            ["add", name, endpoint, code] => {
                // The message holds a one-time secret: take it off the chat first.
                let _ = self.outbox.tg().delete(surface.chat_id, msg_id).await;
                let text = match self.add_remote_node(name, endpoint, code).await {
                    Ok(()) => format!("✅ {name} enrolled; connecting to {endpoint}…"),
                    Err(err) => format!("✗ {err}"),
                };
                self.notice(surface, &text, None);
            }
            // The answer holds a secret: only where nobody else reads along.
            ["add", _] if surface.chat_id < 0 => {
                self.notice(
                    surface,
                    "Send /node add <name> to me in a private chat: the answer holds a one-time secret.",
                    Some(msg_id),
                );
            }
            ["add", name] => {
                let text = match self.invite_node(name) {
                    Ok(code) => format!(
                        "Join code for {name} (valid 1 h, works once). On the machine run:\n\nagent-node join --name {name} --center <this-center>:<port> <enroll-host:port> {code}"
                    ),
                    Err(err) => format!("✗ {err}"),
                };
                self.notice(surface, &text, Some(msg_id));
            }
            ["add", ..] => {
                let _ = self.outbox.tg().delete(surface.chat_id, msg_id).await;
                self.notice(surface, "Usage: /node add <name> <host:port> <join code> (the code comes from `agent-node init`)", None);
            }
            ["remove", name] => {
                let text = if self.revoke_node(name) {
                    format!("{name} is revoked: disconnected, and it will not be dialled again.")
                } else {
                    format!("There is no node {name}.")
                };
                self.notice(surface, &text, Some(msg_id));
            }
            ["upgrade", target] => self.upgrade_from_chat(surface, target, msg_id),
            _ => self.notice(
                surface,
                "Usage: /node add <name> <host:port> <code>, /node remove <name>, or /node upgrade <name|all>",
                Some(msg_id),
            ),
        }
    }

    fn nodes_overview(&self, surface: Surface, msg_id: i32) {
        let mut text = "<b>Machines</b>\n".to_owned();
        for (name, online) in self.known_nodes() {
            let conn = self.node(&name);
            let beat = conn.as_ref().and_then(|c| c.last_heartbeat());
            let state = if online { "🟢 online" } else { "⚪ offline" };
            text += &format!("\n<b>{}</b> — {state}", escape_html(&name));
            if let Some(c) = &conn {
                text += &format!(", version {}", escape_html(&c.version()));
            }
            if let Some(h) = beat {
                text += &format!(
                    ", {} window(s) running, load {:.2}, {} GiB free, up {}, last seen {}",
                    h.live_windows,
                    h.load1,
                    h.disk_free_bytes / (1 << 30),
                    duration(h.uptime_secs),
                    clock(h.unix_ms)
                );
                // Rollout records this node's parser did not know (a newer Codex): counted and
                // skipped, never fatal — worth knowing before anything goes missing.
                if h.unknown_records > 0 {
                    text += &format!(
                        ", {} transcript record(s) of unknown kinds skipped",
                        h.unknown_records
                    );
                }
            }
        }
        self.say(surface, text, Some(msg_id));
    }

    /// Codex's screen as a PNG with its colours (text in `<pre>` if it cannot be drawn), with a
    /// refresh button.
    pub(crate) async fn screenshot(&self, b: &Binding, msg_id: i32) {
        match self.screen_png(b).await {
            Ok(Shot::Image(upload, caption)) => {
                let sent = self.outbox.send_media(MediaSend {
                    surface: b.surface,
                    upload,
                    caption_html: escape_html(&caption),
                    caption_plain: caption,
                    keyboard: Some(refresh_button(&b.session_id)),
                    reply_to: Some(msg_id),
                    class: Class::Message,
                });
                if let Ok(Err(err)) = sent.await {
                    self.notice(b.surface, &format!("No screenshot: {err}"), Some(msg_id));
                }
            }
            Ok(Shot::Text(screen)) => self.say(
                b.surface,
                format!("<pre>{}</pre>", escape_html(&screen)),
                Some(msg_id),
            ),
            Err(err) => self.notice(b.surface, &format!("No screenshot: {err}"), Some(msg_id)),
        }
    }

    /// The refresh button of a screenshot: draws the screen again into the same message.
    pub(crate) async fn refresh_screenshot(
        &self,
        surface: Surface,
        session: &str,
        message_id: Option<i32>,
    ) -> String {
        let Ok(b) = self.binding(surface) else {
            return STATE_UNREADABLE.into();
        };
        let Some(b) = b.filter(|b| b.session_id == session) else {
            return "This topic is no longer bound to that window.".into();
        };
        let Some(message_id) = message_id else {
            return "This message is too old to refresh; send /screenshot.".into();
        };
        match self.screen_png(&b).await {
            Ok(Shot::Image(upload, caption)) => {
                let done = self.outbox.edit_media(EditMedia {
                    chat_id: surface.chat_id,
                    message_id,
                    upload,
                    caption_html: escape_html(&caption),
                    caption_plain: caption,
                    keyboard: Some(refresh_button(&b.session_id)),
                });
                match done.await {
                    Ok(Ok(())) => "Refreshed.".into(),
                    Ok(Err(err)) => format!("Could not refresh: {err}"),
                    Err(_) => "Could not refresh.".into(),
                }
            }
            Ok(Shot::Text(_)) => "The screen cannot be drawn; send /screenshot.".into(),
            Err(err) => format!("No screenshot: {err}"),
        }
    }

    async fn screen_png(&self, b: &Binding) -> Result<Shot, crate::nodes::CallError> {
        let op = Op::CapturePane(v1::CapturePane {
            session_id: b.session_id.to_string(),
            ansi: true,
        });
        let c = match self.call(b, op).await? {
            R::Capture(c) => c,
            other => {
                return Err(crate::nodes::CallError::Failed {
                    code: v1::ErrorCode::Internal,
                    message: format!("unexpected reply {other:?}"),
                });
            }
        };
        let caption = screen_caption(c.state.as_ref());
        if c.ansi.trim().is_empty() && !c.text.trim().is_empty() {
            // An older node sends no colours: show the text.
            return Ok(Shot::Text(screen_text(&c.text)));
        }
        match crate::media::pane_image::render_png(&c.ansi) {
            Ok(png) => Ok(Shot::Image(
                Upload {
                    kind: MediaKind::Photo,
                    file_name: "screen.png".into(),
                    bytes: std::sync::Arc::new(png),
                },
                caption,
            )),
            Err(err) => {
                tracing::warn!(error = %err, "cannot draw the screen; sending it as text");
                Ok(Shot::Text(screen_text(&c.text)))
            }
        }
    }

    /// Shows a page of the conversation, newest first; ◀ ▶ buttons page through it.
    /// `page_of` is the history message a ◀ ▶ button belongs to (edited in place).
    pub(crate) async fn history(
        &self,
        surface: Surface,
        skip: u32,
        msg_id: Option<i32>,
        page_of: Option<i32>,
    ) {
        const PER_PAGE: u32 = 5;
        let b = match self.binding(surface) {
            Ok(Some(b)) => b,
            Ok(None) => {
                self.notice(
                    surface,
                    "This topic is not bound to a Codex session.",
                    msg_id,
                );
                return;
            }
            Err(_) => {
                self.notice(surface, STATE_UNREADABLE, msg_id);
                return;
            }
        };
        let op = Op::GetHistory(v1::GetHistory {
            session_id: b.session_id.to_string(),
            skip,
            limit: PER_PAGE,
            thread_id: String::new(),
        });
        let h = match self.call(&b, op).await {
            Ok(R::History(h)) => h,
            Ok(_) => return,
            Err(err) => {
                self.notice(surface, &format!("No history: {err}"), msg_id);
                return;
            }
        };
        if h.entries.is_empty() {
            self.notice(surface, "No messages yet.", msg_id);
            return;
        }
        let mut text = format!(
            "<b>History</b> ({}–{} of {}, newest first)\n",
            skip + 1,
            skip + h.entries.len() as u32,
            h.total
        );
        for e in &h.entries {
            let who = if e.role == "user" { "👤" } else { "🤖" };
            let when = clock(e.timestamp_ms);
            let body: String = e.text.chars().take(500).collect();
            text += &format!("\n{who} <i>{when}</i>\n{}\n", escape_html(&body));
        }
        let mut row = Vec::new();
        if skip > 0 {
            row.push((
                "◀ Newer".to_owned(),
                Callback::History {
                    skip: skip.saturating_sub(PER_PAGE),
                }
                .encode(),
            ));
        }
        if skip + PER_PAGE < h.total {
            row.push((
                "Older ▶".to_owned(),
                Callback::History {
                    skip: skip + PER_PAGE,
                }
                .encode(),
            ));
        }
        let keyboard = (!row.is_empty()).then(|| vec![row]);
        match page_of {
            Some(message_id) => drop(self.outbox.edit(Edit {
                chat_id: surface.chat_id,
                message_id,
                plain: text.clone(),
                html: text,
                keyboard,
                status_of: None,
            })),
            None => drop(self.outbox.send(Send {
                surface,
                plain: text.clone(),
                html: text,
                keyboard,
                reply_to: msg_id,
                class: Class::Message,
            })),
        }
    }

    /// A prompt button: sends the choice's key if the topic is still bound to that session.
    /// Presses `key` in answer to question `prompt` (the node presses nothing unless that very
    /// question is on screen). A question that is gone loses its buttons.
    pub(crate) async fn prompt_key(
        &self,
        surface: Surface,
        session: &str,
        key: PromptKey,
        prompt: Option<String>,
        message_id: Option<i32>,
    ) -> String {
        let Ok(b) = self.binding(surface) else {
            return STATE_UNREADABLE.into();
        };
        let Some(b) = b.filter(|b| b.session_id == session) else {
            return "This prompt belongs to a session that is no longer bound here.".into();
        };
        let k = match key {
            PromptKey::Escape => v1::send_key::Key::Named(v1::NamedKey::Escape as i32),
            PromptKey::Choice(c) => v1::send_key::Key::Choice(c.to_string()),
        };
        let op = Op::SendKey(v1::SendKey {
            session_id: b.session_id.to_string(),
            key: Some(k),
            expect_prompt: prompt.unwrap_or_default(),
        });
        match self.call(&b, op).await {
            Ok(_) => "Sent.".into(),
            Err(CallError::Failed {
                code: v1::ErrorCode::Stale,
                ..
            }) => {
                if let Some(id) = message_id {
                    drop(self.outbox.edit(Edit {
                        chat_id: surface.chat_id,
                        message_id: id,
                        html: "❓ This question is no longer on screen.".into(),
                        plain: "❓ This question is no longer on screen.".into(),
                        keyboard: None,
                        status_of: None,
                    }));
                }
                "This question is no longer on screen; nothing was pressed.".into()
            }
            Err(err) => format!("Not sent: {err}"),
        }
    }
}

fn duration(secs: u64) -> String {
    match secs {
        s if s < 120 => format!("{s} s"),
        s if s < 7200 => format!("{} min", s / 60),
        s => format!("{} h", s / 3600),
    }
}

pub(crate) fn clock(unix_ms: i64) -> String {
    if unix_ms <= 0 {
        return String::new();
    }
    let Ok(t) = time::OffsetDateTime::from_unix_timestamp(unix_ms / 1000) else {
        return String::new();
    };
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02} UTC",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute()
    )
}

/// A screenshot, drawn or as text.
enum Shot {
    Image(Upload, String),
    Text(String),
}

fn refresh_button(session: &str) -> Vec<Vec<(String, String)>> {
    let data = Callback::Refresh {
        session: session.to_owned(),
    };
    vec![vec![("🔄 Refresh".to_owned(), data.encode())]]
}

/// One line under a screenshot: what Codex is doing and when the picture was taken.
fn screen_caption(state: Option<&v1::TerminalState>) -> String {
    let what = match state.map(|s| s.state()) {
        Some(v1::ScreenState::Ready) => "ready for input",
        Some(v1::ScreenState::Busy) => "working",
        Some(v1::ScreenState::Prompt) => "waiting for an answer",
        Some(v1::ScreenState::Starting) => "starting",
        Some(v1::ScreenState::Dead) => "exited",
        Some(v1::ScreenState::Shell) => "a shell, not Codex",
        _ => "unknown state",
    };
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    format!(
        "Codex: {what} · {:02}:{:02}:{:02} UTC",
        secs / 3600 % 24,
        secs / 60 % 60,
        secs % 60
    )
}

/// The screen as text for a `<pre>`: trailing blank lines dropped, the bottom kept if long.
fn screen_text(text: &str) -> String {
    let lines: Vec<&str> = text.lines().map(str::trim_end).collect();
    let end = lines
        .iter()
        .rposition(|l| !l.is_empty())
        .map_or(0, |i| i + 1);
    let mut screen = lines[..end].join("\n");
    while crate::telegram::render::utf16_len(&screen) > 3900 {
        match screen.split_once('\n') {
            Some((_, rest)) => screen = rest.to_owned(),
            None => break,
        }
    }
    if screen.trim().is_empty() {
        screen = "(the screen is empty)".into();
    }
    screen
}

#[cfg(test)]
mod tests {
    #[test]
    fn clock_formats_utc() {
        assert_eq!(super::clock(0), "");
        assert_eq!(super::clock(1_795_278_712_123), "2026-11-21 16:31 UTC");
    }
}
