//! From node events to Telegram, in order, per session — and the ack discipline that makes
//! delivery loss-free: an event's sequence is acked (in SQLite, then to the node) only after
//! everything it produced was accepted by Telegram. Status edits are best effort and coalesced;
//! final answers, commentary and turn outcomes are awaited.

use std::{collections::HashMap, sync::Arc, time::Duration};

use proto::v1::{self, node_msg, session_event::Kind};
use tokio::sync::mpsc;

use crate::{
    app::App,
    nodes::Inbound,
    store::{Binding, Surface},
    telegram::{
        api::{MediaKind, TgError, Upload},
        outbox::{Class, Edit, MediaSend, Send},
        render::{self, MESSAGE_LIMIT, escape_html},
    },
};

/// Status lines kept in a topic's status message.
const STATUS_LINES: usize = 12;
/// Longest status line.
const STATUS_LINE_CHARS: usize = 160;
/// Queue per session; a node that outruns Telegram waits (back-pressure through the link).
const SESSION_QUEUE: usize = 256;

/// Routes everything nodes send to one task per session.
pub async fn run(app: Arc<App>, mut inbound: mpsc::Receiver<Inbound>) {
    let mut sessions: HashMap<(String, String), mpsc::Sender<v1::NodeMsg>> = HashMap::new();
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
            _ => continue,
        };
        let key = (node.clone(), session.clone());
        let tx = sessions.entry(key).or_insert_with(|| {
            let (tx, rx) = mpsc::channel(SESSION_QUEUE);
            tokio::spawn(SessionDelivery::new(app.clone(), node, session).run(rx));
            tx
        });
        if tx.send(msg).await.is_err() {
            tracing::warn!("a session delivery task ended");
        }
    }
}

struct SessionDelivery {
    app: Arc<App>,
    node: String,
    session: String,
    acked: u64,
    busy: bool,
    /// The turn's start was seen by this process (so its messages are all known here).
    turn_seen: bool,
    final_sent: bool,
    last_assistant: Option<String>,
    prompt: Option<(String, Vec<(Surface, i32)>)>,
    /// The draft id of the running turn (its start's sequence).
    turn_draft: Option<u64>,
    /// Images already sent in this turn (a viewed image the answer names again is not resent).
    turn_images: std::collections::HashSet<String>,
}

impl SessionDelivery {
    fn new(app: Arc<App>, node: String, session: String) -> Self {
        let acked = app.store.acked(&node, &session).unwrap_or(0);
        Self {
            app,
            node,
            session,
            acked,
            busy: false,
            turn_seen: false,
            final_sent: false,
            last_assistant: None,
            prompt: None,
            turn_draft: None,
            turn_images: std::collections::HashSet::new(),
        }
    }

    fn bindings(&self) -> Vec<Binding> {
        self.app
            .store
            .bindings_of(&self.node, &self.session)
            .unwrap_or_default()
    }

    async fn run(mut self, mut rx: mpsc::Receiver<v1::NodeMsg>) {
        let mut typing = tokio::time::interval(Duration::from_secs(4));
        loop {
            let msg = tokio::select! {
                msg = rx.recv() => match msg { Some(m) => m, None => break },
                _ = typing.tick(), if self.busy => {
                    for b in self.bindings() {
                        self.app.outbox.typing(b.surface);
                    }
                    continue;
                }
            };
            match msg.kind {
                Some(node_msg::Kind::Event(e)) => self.event(e).await,
                Some(node_msg::Kind::Terminal(t)) => self.terminal(&t).await,
                Some(node_msg::Kind::Lifecycle(l)) => self.lifecycle(&l),
                _ => {}
            }
        }
    }

    async fn event(&mut self, e: v1::SessionEvent) {
        if e.seq <= self.acked {
            return; // replayed, already delivered
        }
        tracing::debug!(session.id = %self.session, seq = e.seq, acked = self.acked, "delivering an event");
        for b in self.bindings() {
            self.deliver(&b, &e).await;
        }
        self.acked = e.seq;
        if let Err(err) = self.app.store.ack(&self.node, &self.session, e.seq) {
            tracing::error!(error = %err, "saving an ack failed");
            return;
        }
        if let Some(node) = self.app.node(&self.node) {
            node.ack(&self.session, e.seq).await;
        }
    }

    async fn deliver(&mut self, b: &Binding, e: &v1::SessionEvent) {
        let Some(kind) = &e.kind else { return };
        let s = b.surface;
        match kind {
            Kind::TurnStarted(_) => {
                self.turn_draft = Some(e.seq);
                self.turn_images.clear();
                self.turn_seen = true;
                self.final_sent = false;
                self.last_assistant = None;
            }
            Kind::AssistantMessage(m) if m.phase() == v1::MessagePhase::Final => {
                self.final_sent = true;
                self.last_assistant = Some(m.text.clone());
                self.markdown(s, &m.text, Class::Final).await;
                // Images the answer names (what Codex generated or edited) follow as photos.
                for path in image_paths(&m.text, &b.cwd) {
                    if !self.turn_images.insert(path.clone()) {
                        continue;
                    }
                    let node = self.node.clone();
                    let app = self.app.clone();
                    tokio::spawn(async move { photo_from_node(&app, &node, s, &path).await });
                }
            }
            Kind::AssistantMessage(m) => {
                self.last_assistant = Some(m.text.clone());
                self.markdown(s, &m.text, Class::Message).await;
            }
            Kind::TurnCompleted(t) => {
                // Codex writes the final answer as a message before completing the turn; only a
                // turn whose messages were all seen here and did not include it gets it from
                // here (a replay that starts mid-turn must not send it twice).
                let answer = t.last_agent_message.trim();
                if self.turn_seen
                    && !self.final_sent
                    && !answer.is_empty()
                    && self.last_assistant.as_deref().map(str::trim) != Some(answer)
                {
                    self.markdown(s, &t.last_agent_message, Class::Final).await;
                }
                self.turn_seen = false;
                self.final_sent = false;
                self.close_status(s, "✔ Done").await;
            }
            Kind::TurnAborted(a) => {
                let why = if a.reason == "interrupted" || a.reason.is_empty() {
                    "⏹ Interrupted.".to_owned()
                } else {
                    format!("⏹ Turn ended: {}", a.reason)
                };
                self.close_status(s, &why).await;
                self.text(s, &why).await;
            }
            Kind::Error(err) => {
                let what = match err.kind() {
                    v1::CodexErrorKind::UsageLimit => "⚠️ Codex hit a usage limit",
                    v1::CodexErrorKind::Auth => "⚠️ Codex could not authenticate",
                    _ => "⚠️ Codex reported an error",
                };
                let text = format!("{what}: {}", err.message);
                self.close_status(s, "⚠️ Failed").await;
                self.text(s, &text).await;
            }
            Kind::Reasoning(r) => {
                self.status_line(s, format!("💭 {}", first_line(&r.text)))
                    .await
            }
            Kind::ToolCall(c) if c.name == "view_image" => {
                let path = serde_json::from_str::<serde_json::Value>(&c.arguments)
                    .ok()
                    .and_then(|v| v.get("path").and_then(|p| p.as_str()).map(str::to_owned))
                    .unwrap_or_default();
                self.status_line(
                    s,
                    format!("🖼 viewed {}", path.rsplit('/').next().unwrap_or(&path)),
                )
                .await;
                if !path.is_empty() {
                    // Off the ack path: reading over the link while this session's queue is
                    // full could wait on the link itself. Images are best effort.
                    let path = if path.starts_with('/') {
                        path
                    } else {
                        format!("{}/{path}", b.cwd.trim_end_matches('/'))
                    };
                    self.turn_images.insert(path.clone());
                    let node = self.node.clone();
                    let app = self.app.clone();
                    tokio::spawn(async move { photo_from_node(&app, &node, s, &path).await });
                }
            }
            Kind::ToolCall(c) => {
                let what = if c.command.is_empty() {
                    c.name.clone()
                } else {
                    c.command.clone()
                };
                self.status_line(s, format!("⚙️ {}", first_line(&what)))
                    .await;
            }
            Kind::ToolResult(r) => {
                let mark = if !r.has_exit_code || r.exit_code == 0 {
                    "✅"
                } else {
                    "❌"
                };
                let code = if r.has_exit_code && r.exit_code != 0 {
                    format!(" (exit {})", r.exit_code)
                } else {
                    String::new()
                };
                self.status_line(s, format!("{mark} {}{code}", first_line(&r.command)))
                    .await;
            }
            Kind::Patch(p) => {
                let files = p
                    .files
                    .iter()
                    .map(|f| f.rsplit('/').next().unwrap_or(f))
                    .collect::<Vec<_>>()
                    .join(", ");
                self.status_line(s, format!("📝 edited {files}")).await;
            }
            Kind::Plan(p) => {
                let done = p.steps.iter().filter(|s| s.status == "completed").count();
                self.status_line(s, format!("📋 plan: {done}/{} done", p.steps.len()))
                    .await;
            }
            Kind::UserMessage(_) | Kind::TokenUsage(_) => {}
        }
    }

    /// A live preview of the running turn (sendMessageDraft; private chats, when enabled).
    /// It shows the turn's status lines as they grow, in the chat's composer area.
    fn draft(&self, s: Surface, body: &str) {
        if !self.app.cfg.drafts || s.chat_id <= 0 || body.trim().is_empty() {
            return;
        }
        // One draft per turn; Telegram wants a non-zero id.
        let id = self.turn_draft.unwrap_or(1).max(1) as i64;
        self.app.outbox.draft(s, id, escape_html(body));
    }

    /// Sends Markdown as HTML parts and waits until Telegram accepted all of them.
    async fn markdown(&self, s: Surface, md: &str, class: Class) {
        self.send_parts(s, markdown_parts(md), class).await;
    }

    async fn text(&self, s: Surface, text: &str) {
        self.send_parts(
            s,
            vec![(escape_html(text), text.to_owned())],
            Class::Message,
        )
        .await;
    }

    async fn send_parts(&self, s: Surface, parts: Vec<(String, String)>, class: Class) {
        for w in queue_parts(&self.app.outbox, s, parts, class) {
            match w.await {
                Ok(Ok(_)) => {}
                Ok(Err(TgError::ThreadNotFound)) => {
                    self.app.on_topic_gone(s, "the topic was deleted").await;
                    return;
                }
                Ok(Err(err)) => {
                    tracing::warn!(chat.id = s.chat_id, error = %err, "a message was refused")
                }
                Err(_) => tracing::warn!("the outbox stopped"),
            }
        }
    }

    async fn status_line(&self, s: Surface, line: String) {
        let line: String = line.chars().take(STATUS_LINE_CHARS).collect();
        let store = &self.app.store;
        match store.status(s) {
            Ok(Some((id, body))) => {
                let mut lines: Vec<&str> = body.lines().collect();
                lines.push(&line);
                let keep = lines.len().saturating_sub(STATUS_LINES);
                let body = lines[keep..].join("\n");
                self.draft(s, &body);
                let _ = store.set_status(s, id, &body);
                edit_status(&self.app, s.chat_id, id, body);
            }
            Ok(None) => {
                self.draft(s, &line);
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
                    Ok(Ok(id)) => {
                        let _ = store.set_status(s, id, &line);
                    }
                    Ok(Err(TgError::ThreadNotFound)) => {
                        self.app.on_topic_gone(s, "the topic was deleted").await
                    }
                    _ => {}
                }
            }
            Err(err) => tracing::error!(error = %err, "reading a status message failed"),
        }
    }

    /// Ends the turn's status message with an outcome line; the next turn starts a new one. A
    /// status that only says the message was delivered is left as it is (one edit saved from
    /// the group's 20-a-minute budget).
    async fn close_status(&self, s: Surface, outcome: &str) {
        if let Ok(Some((id, body))) = self.app.store.status(s) {
            if body.lines().count() > 1 || !body.starts_with('✓') {
                edit_status(&self.app, s.chat_id, id, format!("{body}\n{outcome}"));
            }
            let _ = self.app.store.clear_status(s);
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
        if t.state() == v1::ScreenState::Prompt {
            if self
                .prompt
                .as_ref()
                .is_some_and(|(text, _)| *text == t.prompt_text)
            {
                return;
            }
            let mut shown = Vec::new();
            for b in self.bindings() {
                let mut kb: Vec<Vec<(String, String)>> = t
                    .choices
                    .iter()
                    .map(|c| {
                        vec![(
                            short_label(&format!("{}. {}", c.key, c.label)),
                            format!("k|{}|{}", self.session, c.key),
                        )]
                    })
                    .collect();
                kb.push(vec![(
                    "⎋ Esc".to_owned(),
                    format!("k|{}|esc", self.session),
                )]);
                let html = format!(
                    "❓ <b>Codex is asking</b>\n<pre>{}</pre>",
                    escape_html(&t.prompt_text)
                );
                let sent = self
                    .app
                    .outbox
                    .send(Send {
                        surface: b.surface,
                        plain: t.prompt_text.clone(),
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
            self.prompt = Some((t.prompt_text.clone(), shown));
        } else if let Some((text, shown)) = self.prompt.take() {
            for (s, id) in shown {
                let body = format!("{text}\n\n✔ Answered");
                drop(self.app.outbox.edit(Edit {
                    chat_id: s.chat_id,
                    message_id: id,
                    html: format!("<pre>{}</pre>\n✔ Answered", escape_html(&text)),
                    plain: body,
                    keyboard: None,
                }));
            }
        }
    }

    fn lifecycle(&self, l: &v1::WindowLifecycle) {
        if l.kind() == v1::LifecycleKind::Exited {
            for b in self.bindings() {
                self.app.notice(
                    b.surface,
                    "⚠️ Codex exited in this window. /kill closes it; /resume starts it again.",
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

/// Shows `body` (one line per step) in a status message; queued edits of it are coalesced.
pub(crate) fn edit_status(app: &App, chat_id: i64, message_id: i32, body: String) {
    drop(app.outbox.edit(Edit {
        chat_id,
        message_id,
        html: escape_html(&body),
        plain: body,
        keyboard: None,
    }));
}

fn first_line(s: &str) -> String {
    s.lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .trim()
        .to_owned()
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
    let (name, bytes) =
        match crate::transfer::read_file(&node, path, crate::telegram::api::MAX_UPLOAD).await {
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
                app.on_topic_gone(s, "the topic was deleted").await;
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
