//! From node events to Telegram, in order, per session — and the ack discipline that makes
//! delivery loss-free: an event's sequence is acked (in SQLite with the session's turn state,
//! then to the node) only after everything it produced was accepted by Telegram or refused for
//! good. The outbox retries network failures and server errors until they go through, so a
//! session whose chat cannot send waits, in order, without acking. Status edits are best effort
//! and coalesced; final answers, commentary and turn outcomes are awaited.
//!
//! What an event shows is decided once per session by [`crate::router::turn`]; this module only
//! renders those decisions into each topic bound to the session. Each session has its own task
//! and queue, and routing never waits for one, so a session waiting for its chat's Telegram
//! budget delays no other session and no node reply.

use shared::{
    ids::{NodeName, SessionId},
    sync::LockExt,
};
use std::{collections::HashMap, sync::Arc, time::Duration};

use proto::v1::{self, node_msg};
use tokio::sync::mpsc;

use crate::{
    app::App,
    nodes::Inbound,
    router::{
        prompt, status,
        turn::{Post, Turn},
    },
    store::{Binding, Surface},
    telegram::{
        api::{MediaKind, TgError, Upload},
        callback::{Callback, PromptKey},
        outbox::{Class, Edit, MediaSend, Send},
        render::{self, MESSAGE_LIMIT, escape_html},
    },
};

/// An answer longer than this many messages goes as a file instead.
const MAX_PARTS: usize = 4;

/// Characters of a shell command's output shown in a topic (its end).
const SHELL_OUTPUT_CHARS: usize = 3000;

/// The last `max` characters of `text` (with "…" before when cut).
fn tail_chars(text: &str, max: usize) -> String {
    let count = text.chars().count();
    if count <= max {
        return text.to_owned();
    }
    let tail: String = text.chars().skip(count - max).collect();
    format!("…{tail}")
}

/// Each session's queue to its delivery task.
type Sessions = HashMap<(NodeName, SessionId), mpsc::UnboundedSender<v1::NodeMsg>>;

/// Starts routing everything nodes send to one task per session (see [`dispatch`]), under
/// supervision: the receiver and the sessions' queues outlive a panic of the routing loop, so a
/// restart neither drops what nodes sent meanwhile nor starts a second task for a session.
pub(crate) fn spawn(app: Arc<App>, inbound: mpsc::Receiver<Inbound>) {
    let inbound = Arc::new(tokio::sync::Mutex::new(inbound));
    let sessions: Arc<std::sync::Mutex<Sessions>> = Arc::default();
    shared::shutdown::supervise(
        "event dispatcher",
        tokio_util::sync::CancellationToken::new(),
        move || dispatch(app.clone(), inbound.clone(), sessions.clone()),
    );
}

/// Routes everything nodes send to one task per session, until every sender is gone. Never
/// waits on a session: each has an unbounded queue (what a node sends is bounded by what Codex
/// writes; a session that cannot deliver keeps its backlog, unacked, in memory and the node
/// keeps it on disk).
async fn dispatch(
    app: Arc<App>,
    inbound: Arc<tokio::sync::Mutex<mpsc::Receiver<Inbound>>>,
    sessions: Arc<std::sync::Mutex<Sessions>>,
) {
    let mut inbound = inbound.lock().await;
    while let Some(Inbound { node, msg }) = inbound.recv().await {
        let session = match &msg.kind {
            Some(node_msg::Kind::Event(e)) => e.session_id.clone(),
            Some(node_msg::Kind::Terminal(t)) => t.session_id.clone(),
            Some(node_msg::Kind::Lifecycle(l)) => l
                .session
                .as_ref()
                .map(|s| s.session_id.clone())
                .unwrap_or_default(),
            Some(node_msg::Kind::Outgoing(o)) => {
                app.relay_outgoing(node, o.clone());
                continue;
            }
            Some(node_msg::Kind::JobEvent(e)) => {
                if let Some(jobs) = app.jobs() {
                    jobs.event(node, e.clone());
                }
                continue;
            }
            _ => continue,
        };
        let key = (NodeName::new(node.as_str()), SessionId::new(session));
        let mut msg = msg;
        // A task that ended (a panic) is started again; it resumes from the acked position.
        let mut sessions = sessions.locked();
        for _ in 0..2 {
            let tx = sessions.entry(key.clone()).or_insert_with(|| {
                let (tx, rx) = mpsc::unbounded_channel();
                tokio::spawn(SessionDelivery::run(
                    app.clone(),
                    key.0.clone(),
                    key.1.clone(),
                    rx,
                ));
                tx
            });
            match tx.send(msg) {
                Ok(()) => break,
                Err(mpsc::error::SendError(back)) => {
                    tracing::error!(session.id = %key.1, "a session's delivery task had ended; starting it again");
                    sessions.remove(&key);
                    msg = back;
                }
            }
        }
    }
}

/// Whether what an event produced is settled (accepted or refused for good) so it may be acked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Settled {
    Yes,
    /// The outbox stopped (shutdown): nothing may be acked.
    No,
}

struct SessionDelivery {
    app: Arc<App>,
    node: NodeName,
    session: SessionId,
    acked: u64,
    busy: bool,
    turn: Turn,
    /// The question on show in the session's topics.
    prompt: prompt::Prompt,
}

impl SessionDelivery {
    async fn run(
        app: Arc<App>,
        node: NodeName,
        session: SessionId,
        mut rx: mpsc::UnboundedReceiver<v1::NodeMsg>,
    ) {
        // Never "nothing acked" on a database error: that would deliver everything again.
        let mut failures = 0;
        let (acked, saved) = loop {
            match app.store.acked_turn(&node, &session) {
                Ok(v) => break v,
                Err(err) => {
                    failures += 1;
                    tracing::error!(session.id = %session, error = %err, "reading the acked position failed; retrying");
                    tokio::time::sleep(shared::backoff::delay(failures)).await;
                }
            }
        };
        let mut this = Self {
            app,
            node,
            session,
            acked,
            busy: false,
            turn: Turn::restore(&saved),
            prompt: prompt::Prompt::default(),
        };
        let mut typing = tokio::time::interval(Duration::from_secs(4));
        loop {
            let msg = tokio::select! {
                msg = rx.recv() => match msg { Some(m) => m, None => break },
                _ = typing.tick(), if this.busy => {
                    for b in this.bindings() {
                        this.app.outbox.typing(b.surface);
                    }
                    continue;
                }
            };
            match msg.kind {
                Some(node_msg::Kind::Event(e)) => {
                    let settled = this.event(e).await;
                    // Shutting down: later events stay unacked for the next start.
                    if settled == Settled::No {
                        return;
                    }
                }
                Some(node_msg::Kind::Terminal(t)) => this.terminal(&t).await,
                Some(node_msg::Kind::Lifecycle(l)) => this.lifecycle(&l),
                _ => {}
            }
        }
    }

    fn bindings(&self) -> Vec<Binding> {
        match self.app.store.bindings_of(&self.node, &self.session) {
            Ok(b) => b,
            Err(err) => {
                tracing::error!(session.id = %self.session, error = %err, "reading bindings failed");
                Vec::new()
            }
        }
    }

    async fn event(&mut self, e: v1::SessionEvent) -> Settled {
        if e.seq <= self.acked {
            return Settled::Yes; // replayed, already delivered
        }
        let Some(kind) = &e.kind else {
            return Settled::Yes;
        };
        tracing::debug!(session.id = %self.session, seq = e.seq, acked = self.acked, "delivering an event");
        let posts = self.turn.on_event(e.seq, kind);
        let bindings = self.bindings();
        // Images are picked once per event for all topics (never twice in a turn).
        let mut images: Vec<String> = Vec::new();
        if let Some(cwd) = bindings.first().map(|b| b.cwd.clone()) {
            for post in &posts {
                let found = match post {
                    Post::ImagesNamed(text) => image_paths(text, &cwd),
                    Post::ImageViewed(path) if path.starts_with('/') => vec![path.clone()],
                    Post::ImageViewed(path) => {
                        vec![format!("{}/{path}", cwd.trim_end_matches('/'))]
                    }
                    _ => Vec::new(),
                };
                images.extend(found.into_iter().filter(|p| self.turn.first_time_image(p)));
            }
        }
        // A user message is ours (typed from Telegram) or typed at the desk: decided once.
        let desk: Vec<&str> = posts
            .iter()
            .filter_map(|p| match p {
                Post::UserText(text) if !self.app.typed.take(&self.node, &self.session, text) => {
                    Some(text.as_str())
                }
                _ => None,
            })
            .collect();
        for b in &bindings {
            let shows = self.app.verbose.get(&self.app.store, b.surface);
            for post in &posts {
                let shown = match post {
                    Post::Markdown {
                        final_answer: false,
                        ..
                    } => shows.commentary,
                    Post::ReasoningLine(_) => shows.reasoning,
                    Post::StatusLine(_) => shows.tools,
                    Post::ShellOutput { .. } => shows.shell,
                    Post::UserText(text) => shows.desk && desk.contains(&text.as_str()),
                    _ => true,
                };
                if shown && self.post(b, post).await == Settled::No {
                    return Settled::No;
                }
            }
            for path in &images {
                // Off the ack path: reading over the link while this session's queue is full
                // could wait on the link itself. Images are best effort.
                let (app, node, s, path) =
                    (self.app.clone(), self.node.clone(), b.surface, path.clone());
                tokio::spawn(async move { photo_from_node(&app, &node, s, &path).await });
            }
        }
        self.acked = e.seq;
        if let Err(err) =
            self.app
                .store
                .ack_with_turn(&self.node, &self.session, e.seq, &self.turn.saved())
        {
            tracing::error!(error = %err, "saving an ack failed");
            return Settled::Yes;
        }
        if let Some(node) = self.app.node(&self.node) {
            node.ack(&self.session, e.seq).await;
        }
        Settled::Yes
    }

    /// Shows one decision in one topic.
    async fn post(&self, b: &Binding, post: &Post) -> Settled {
        let s = b.surface;
        match post {
            Post::Markdown { text, final_answer } => {
                let class = if *final_answer {
                    Class::Final
                } else {
                    Class::Message
                };
                let parts = markdown_parts(text);
                if parts.len() > MAX_PARTS {
                    return self.send_as_document(s, text, parts.len(), class).await;
                }
                self.send_parts(s, parts, class).await
            }
            Post::Notice(text) => {
                self.send_parts(s, vec![(escape_html(text), text.clone())], Class::Message)
                    .await
            }
            Post::RetryOffer {
                text,
                account,
                input,
            } => {
                if let Some(input) = input {
                    self.app.typed.offer_retry(&self.node, &self.session, input);
                }
                self.offer_retry(s, text, account).await
            }
            Post::StatusLine(line) | Post::ReasoningLine(line) => {
                self.status_line(s, line.clone()).await;
                Settled::Yes
            }
            Post::ShellOutput { command, output } => {
                let output = tail_chars(output.trim_end(), SHELL_OUTPUT_CHARS);
                let html = format!(
                    "<b>$ {}</b>\n<pre>{}</pre>",
                    escape_html(&crate::text::first_line(command)),
                    escape_html(&output)
                );
                let plain = format!("$ {}\n{output}", crate::text::first_line(command));
                self.send_parts(s, vec![(html, plain)], Class::Message)
                    .await
            }
            Post::UserText(text) => {
                let text = format!("🖥 at the desk: {text}");
                let parts = markdown_parts(&text);
                self.send_parts(s, parts, Class::Message).await
            }
            Post::CloseStatus { outcome, answered } => {
                self.close_status(s, outcome, *answered);
                Settled::Yes
            }
            Post::ImagesNamed(_) | Post::ImageViewed(_) => Settled::Yes,
        }
    }

    /// A live preview of the running turn (sendMessageDraft; private chats, when enabled).
    /// It shows the turn's status lines as they grow, in the chat's composer area.
    fn draft(&self, s: Surface, body: &str) {
        if !self.app.cfg.drafts || s.chat_id <= 0 || body.trim().is_empty() {
            return;
        }
        // One draft per turn; Telegram wants a non-zero id.
        let id = self.turn.started_at().unwrap_or(1).max(1) as i64;
        self.app.outbox.draft(s, id, escape_html(body));
    }

    /// A very long answer as one Markdown file with a short caption: one call instead of many,
    /// and readable on a phone.
    async fn send_as_document(&self, s: Surface, md: &str, parts: usize, class: Class) -> Settled {
        let caption = format!(
            "📄 A long answer ({} characters, {parts} messages' worth): here it is as a file.",
            md.chars().count()
        );
        let sent = self
            .app
            .outbox
            .send_media(MediaSend {
                surface: s,
                upload: Upload {
                    kind: MediaKind::Document,
                    file_name: "answer.md".into(),
                    bytes: Arc::new(md.as_bytes().to_vec()),
                },
                caption_html: escape_html(&caption),
                caption_plain: caption,
                keyboard: None,
                reply_to: None,
                class,
            })
            .await;
        match sent {
            Ok(Ok(_)) => Settled::Yes,
            Ok(Err(TgError::ThreadNotFound)) => {
                self.app
                    .on_topic_gone(s, crate::app::TopicGone::Deleted)
                    .await;
                Settled::Yes
            }
            Ok(Err(err)) => {
                tracing::warn!(chat.id = s.chat_id, error = %err, "a long answer was refused as a file; sending it as messages");
                self.send_parts(s, markdown_parts(md), class).await
            }
            Err(_) => Settled::No,
        }
    }

    /// Sends the parts in order and waits until Telegram accepted or refused each.
    async fn send_parts(&self, s: Surface, parts: Vec<(String, String)>, class: Class) -> Settled {
        for w in queue_parts(&self.app.outbox, s, parts, class) {
            if let Some(settled) = self.settle(s, w.await).await {
                return settled;
            }
        }
        Settled::Yes
    }

    /// What one send's outcome means for the event: `None` to go on with its next part.
    async fn settle(
        &self,
        s: Surface,
        outcome: Result<Result<i32, TgError>, tokio::sync::oneshot::error::RecvError>,
    ) -> Option<Settled> {
        match outcome {
            Ok(Ok(_)) => None,
            Ok(Err(TgError::ThreadNotFound)) => {
                self.app
                    .on_topic_gone(s, crate::app::TopicGone::Deleted)
                    .await;
                Some(Settled::Yes)
            }
            Ok(Err(err)) => {
                tracing::warn!(chat.id = s.chat_id, error = %err, "a message was refused");
                None
            }
            Err(_) => {
                tracing::warn!("the outbox stopped; the event stays unacked");
                Some(Settled::No)
            }
        }
    }

    /// A usage-limit notice with the button that retries the turn on the account the node
    /// switched to.
    async fn offer_retry(&self, s: Surface, text: &str, account: &str) -> Settled {
        let data = Callback::Retry {
            session: self.session.to_string(),
        }
        .encode();
        let sent = self
            .app
            .outbox
            .send(Send {
                surface: s,
                html: escape_html(text),
                plain: text.to_owned(),
                keyboard: Some(vec![vec![(format!("🔁 Retry on {account}"), data)]]),
                reply_to: None,
                class: Class::Message,
            })
            .await;
        self.settle(s, sent).await.unwrap_or(Settled::Yes)
    }

    /// Adds a tool line to the turn's status message, or posts it when there is none yet (with
    /// the turn's receipt if that has not gone out, else as a message of its own).
    async fn status_line(&self, s: Surface, line: String) {
        let mut post = None;
        let updated = self.app.store.update_status(s, |current| {
            let step = status::step(current, status::Event::Line(&line));
            if let Some(edit) = &step.edit {
                self.draft(s, &edit.body);
            }
            queue_edit(&self.app, s, step.edit);
            post = step.post;
            step.change
        });
        if let Err(err) = updated {
            tracing::error!(error = %err, "updating a status message failed");
            return;
        }
        let Some(line) = post else { return };
        self.draft(s, &line);
        // The turn's receipt has not gone out yet: it takes the line along (no extra message).
        if self.app.line_on_pending_receipt(s, &line, status::LINES) {
            return;
        }
        let sent = self
            .app
            .outbox
            .send(Send {
                surface: s,
                html: escape_html(&line),
                plain: line.clone(),
                keyboard: None,
                reply_to: None,
                class: Class::Status,
            })
            .await;
        match sent {
            Ok(Ok(message_id)) => {
                let posted = self.app.store.update_status(s, |current| {
                    let event = status::Event::Posted {
                        message_id,
                        line: &line,
                    };
                    status::step(current, event).change
                });
                if let Err(err) = posted {
                    tracing::error!(error = %err, "updating a status message failed");
                }
            }
            Ok(Err(TgError::ThreadNotFound)) => {
                self.app
                    .on_topic_gone(s, crate::app::TopicGone::Deleted)
                    .await
            }
            _ => {}
        }
    }

    /// Ends the turn's status message with an outcome line; the next turn starts a new one. A
    /// turn whose answer was posted needs no "Done" (the answer closes it for the user), and a
    /// status that only says the message was delivered is left as it is: edits saved from the
    /// group's 20-a-minute budget.
    fn close_status(&self, s: Surface, outcome: &str, answered: bool) {
        let closed = self.app.store.update_status(s, |current| {
            let step = status::step(current, status::Event::Close { outcome, answered });
            queue_edit(&self.app, s, step.edit);
            step.change
        });
        if let Err(err) = closed {
            tracing::error!(error = %err, "closing a status message failed");
        }
    }

    async fn terminal(&mut self, t: &v1::TerminalState) {
        self.busy = t.state() == v1::ScreenState::Busy;
        if matches!(t.state(), v1::ScreenState::Ready | v1::ScreenState::Busy) {
            for b in self.bindings() {
                self.app.release_held(b.surface);
            }
        }
        if self.busy {
            for b in self.bindings() {
                self.app.outbox.typing(b.surface);
            }
        }
        let screen = if t.state() == v1::ScreenState::Prompt {
            prompt::Screen::Asking(&t.prompt_text)
        } else {
            prompt::Screen::Other
        };
        let step = self.prompt.on_screen(screen);
        if let Some((shown, why)) = step.close {
            close_prompt(&self.app, &shown.text, &shown.messages, why);
        }
        let Some(text) = step.show else { return };
        // Buttons name the question (nodes that do not name questions get none).
        let prompt_id = (!t.prompt_id.is_empty()).then(|| t.prompt_id.clone());
        let mut shown = Vec::new();
        for b in self.bindings() {
            let mut kb: Vec<Vec<(String, String)>> = t
                .choices
                .iter()
                .map(|c| {
                    vec![(
                        short_label(&format!("{}. {}", c.key, c.label)),
                        prompt_button(&self.session, &c.key, prompt_id.clone()),
                    )]
                })
                .collect();
            kb.push(vec![(
                "⎋ Esc".to_owned(),
                Callback::Key {
                    session: self.session.to_string(),
                    key: PromptKey::Escape,
                    prompt: prompt_id.clone(),
                }
                .encode(),
            )]);
            let html = format!(
                "❓ <b>Codex is asking</b>\n<pre>{}</pre>",
                escape_html(&text)
            );
            let sent = self
                .app
                .outbox
                .send(Send {
                    surface: b.surface,
                    plain: text.clone(),
                    html,
                    keyboard: Some(kb),
                    reply_to: None,
                    class: Class::Final,
                })
                .await;
            if let Ok(Ok(id)) = sent {
                shown.push((b.surface, id));
            }
        }
        self.prompt.showing(&text, shown);
    }

    fn lifecycle(&self, l: &v1::WindowLifecycle) {
        if l.kind() == v1::LifecycleKind::Exited {
            for b in self.bindings() {
                self.app.notice(
                    b.surface,
                    "⚠️ Codex exited in this window. Your next message here starts it again (resuming this conversation); /kill closes the window.",
                    None,
                );
            }
        }
    }
}

/// Markdown as (HTML, plain fallback) message parts within Telegram's length limit.
pub(crate) fn markdown_parts(md: &str) -> Vec<(String, String)> {
    let html = render::markdown_to_html(md, MESSAGE_LIMIT);
    let plain = render::plain_parts(md, MESSAGE_LIMIT);
    html.into_iter()
        .enumerate()
        .map(|(i, h)| (h, plain.get(i).cloned().unwrap_or_default()))
        .collect()
}

/// Queues the non-empty parts as messages, in order; each receiver says what Telegram did.
pub(crate) fn queue_parts(
    outbox: &crate::telegram::outbox::Outbox,
    s: Surface,
    parts: Vec<(String, String)>,
    class: Class,
) -> Vec<tokio::sync::oneshot::Receiver<Result<i32, TgError>>> {
    parts
        .into_iter()
        .filter(|(h, _)| !h.trim().is_empty())
        .map(|(html, plain)| {
            let plain = if plain.trim().is_empty() {
                html.clone()
            } else {
                plain
            };
            outbox.send(Send {
                surface: s,
                html,
                plain,
                keyboard: None,
                reply_to: None,
                class,
            })
        })
        .collect()
}

/// Shows a receipt's outcome: never dropped for an answer (the receipt must end as Delivered or
/// Not delivered), and an edit of the status message queued with it keeps that.
pub(crate) fn edit_receipt(app: &App, s: Surface, message_id: i32, body: String) {
    edit_message(app, s, message_id, body, false);
}

/// Queues the edit a status decision named, if any.
pub(crate) fn queue_edit(app: &App, s: Surface, edit: Option<status::EditTo>) {
    if let Some(edit) = edit {
        let moot_after_answer = edit.kind == status::EditKind::Status;
        edit_message(app, s, edit.message_id, edit.body, moot_after_answer);
    }
}

fn edit_message(app: &App, s: Surface, message_id: i32, body: String, moot_after_answer: bool) {
    drop(app.outbox.edit(Edit {
        chat_id: s.chat_id,
        message_id,
        html: escape_html(&body),
        plain: body,
        keyboard: None,
        status_of: moot_after_answer.then_some(s),
    }));
}

/// The data of a button that answers question `prompt` with `key` (a choice's key as Codex
/// shows it; one that is not a single letter or digit gets a button that says it has expired).
fn prompt_button(session: &str, key: &str, prompt: Option<String>) -> String {
    let mut chars = key.chars();
    match (chars.next(), chars.next()) {
        (Some(c), None) if c.is_ascii_alphanumeric() => Callback::Key {
            session: session.to_owned(),
            key: PromptKey::Choice(c),
            prompt,
        }
        .encode(),
        _ => format!("k|{session}|?"),
    }
}

/// Ends shown question messages: their buttons go, a line says why.
fn close_prompt(app: &App, text: &str, shown: &[(Surface, i32)], why: &str) {
    for (s, id) in shown {
        drop(app.outbox.edit(Edit {
            chat_id: s.chat_id,
            message_id: *id,
            html: format!("<pre>{}</pre>\n{why}", escape_html(text)),
            plain: format!("{text}\n\n{why}"),
            keyboard: None,
            status_of: None,
        }));
    }
}

fn short_label(s: &str) -> String {
    if s.chars().count() <= 60 {
        return s.to_owned();
    }
    let cut: String = s.chars().take(59).collect();
    format!("{cut}…")
}

/// Sends an image that lives on the session's node (one Codex viewed) as a photo, or as a
/// document when Telegram's photo rules do not fit; waits until Telegram accepted it.
async fn photo_from_node(app: &Arc<App>, node_name: &str, s: Surface, path: &str) {
    let Some(node) = app.node(node_name) else {
        return;
    };
    let (name, bytes) = match crate::nodes::transfer::read_file(
        &node,
        path,
        crate::telegram::api::MAX_UPLOAD,
    )
    .await
    {
        Ok(f) => f,
        Err(err) => {
            tracing::info!(path, error = %err, "an image Codex viewed cannot be sent");
            return;
        }
    };
    // Only real images leave the machine this way, whatever path a tool call named.
    if !agent_node::files::is_image(&bytes) {
        tracing::info!(path, "not an image; not sent");
        return;
    }
    let kind = if bytes.len() as u64 <= crate::telegram::api::MAX_PHOTO_UPLOAD {
        MediaKind::Photo
    } else {
        MediaKind::Document
    };
    let caption = format!("🖼 {name}");
    let mut upload = Upload {
        kind,
        file_name: name,
        bytes: Arc::new(bytes),
    };
    for attempt in 0..2 {
        let sent = app
            .outbox
            .send_media(MediaSend {
                surface: s,
                upload: upload.clone(),
                caption_html: escape_html(&caption),
                caption_plain: caption.clone(),
                keyboard: None,
                reply_to: None,
                class: Class::Message,
            })
            .await;
        match sent {
            Ok(Ok(_)) => return,
            Ok(Err(TgError::ThreadNotFound)) => {
                app.on_topic_gone(s, crate::app::TopicGone::Deleted).await;
                return;
            }
            // Telegram refuses photos of odd sizes or formats; a document always works.
            Ok(Err(err)) if attempt == 0 && upload.kind == MediaKind::Photo => {
                tracing::info!(error = %err, "photo refused; sending the image as a document");
                upload.kind = MediaKind::Document;
            }
            Ok(Err(err)) => {
                tracing::warn!(error = %err, "an image was refused");
                return;
            }
            Err(_) => return,
        }
    }
}

/// At most this many images named in one answer are sent.
const MAX_ANSWER_IMAGES: usize = 5;

/// Image files an answer names (`![..](out.png)`, `` `chart.png` ``, `/tmp/plot.jpg`), as absolute
/// paths (relative ones against the session's folder), without duplicates. Whether each exists
/// and really is an image is checked when it is read.
pub(crate) fn image_paths(text: &str, cwd: &str) -> Vec<String> {
    const EXTS: [&str; 5] = [".png", ".jpg", ".jpeg", ".gif", ".webp"];
    let mut out: Vec<String> = Vec::new();
    let tokens = text.split(|c: char| {
        c.is_whitespace()
            || matches!(
                c,
                '`' | '(' | ')' | '[' | ']' | '<' | '>' | '"' | '\'' | '*'
            )
    });
    for token in tokens {
        let token = token.trim_end_matches(['.', ',', ';', ':', '!', '?']);
        let lower = token.to_ascii_lowercase();
        if token.len() < 5
            || token.contains("://")
            || !EXTS.iter().any(|e| lower.ends_with(e))
            || token.split('/').any(|part| part == "..")
        {
            continue;
        }
        let path = if token.starts_with('/') {
            token.to_owned()
        } else {
            format!(
                "{}/{}",
                cwd.trim_end_matches('/'),
                token.trim_start_matches("./")
            )
        };
        if !out.contains(&path) {
            out.push(path);
        }
        if out.len() == MAX_ANSWER_IMAGES {
            break;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::image_paths;

    #[test]
    fn answers_name_images_in_many_ways() {
        let text = "Saved `chart.png` and ![plot](./out/plot.JPG); see /tmp/a.webp, \
                    https://x.io/y.png, ../secret.png and chart.png again.";
        assert_eq!(
            image_paths(text, "/work/p/"),
            ["/work/p/chart.png", "/work/p/out/plot.JPG", "/tmp/a.webp"]
        );
        assert!(image_paths("no images here.", "/w").is_empty());
        let many: String = (0..9).map(|i| format!("f{i}.png ")).collect();
        assert_eq!(image_paths(&many, "/w").len(), 5);
    }
}
