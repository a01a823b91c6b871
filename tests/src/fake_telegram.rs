//! A strict fake of the Telegram Bot API on loopback, for tests that cannot reach Telegram.
//!
//! The center (and teloxide inside it) talks to it over real HTTP via `TELEGRAM_API_URL` /
//! `Bot::set_api_url`, exactly as to `api.telegram.org`. It is strict on purpose: parameters,
//! limits, HTML parse mode, topics, inline keyboards, edits and flood control are validated
//! with Telegram's own error texts (taken from the Bot API server's and tdlib's sources), so a
//! test passes only if the real service would have accepted the same calls. Unknown parameters
//! and unmodelled features are refused with descriptions starting `fake_telegram:`.
//!
//! Tests play the users: they create chats, users and topics, inject messages, commands, button
//! presses, files of every kind (photos, documents, stickers, audio, videos, animations, voice and
//! video notes, albums) (`inject`), and observe what the bot did — messages with their edit
//! history (text and media), message drafts, chat actions, callback answers, every API call and
//! every 429 — either directly or with [`FakeTelegram::wait_for`], which wakes on changes instead
//! of polling.
//!
//! Layout: `server` (HTTP, long polling), `methods` (one function per Bot API method), `html`
//! (parse mode), `flood` (rate limits), `model` (state and JSON shapes), `records` (what tests
//! observe), `params` (parameter coercion, errors), `inject` (the users' side), `png` and `webp`
//! (images).

mod flood;
mod html;
mod inject;
mod methods;
mod model;
mod params;
mod png;
mod records;
mod server;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_media;
mod webp;

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context as _, bail};
use bytes::Bytes;
use serde_json::Value;
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;

pub use flood::{FloodEvent, FloodLimits, FloodReason};
pub use html::{Entity, Parsed, parse as parse_html, utf16_len};
pub use inject::{AlbumItem, AudioFile, Injected, StickerFile, StickerFormat, VideoFile};
pub use params::ApiError;
pub use png::sample_png;
pub use records::{
    ApiCall, BotMessage, Button, CallbackAnswer, ChatAction, ChatKind, Draft, Media, MediaKind,
    PhotoSize, Revision, Topic, User,
};
pub use webp::sample_webp;

use model::State;
use server::Shared;

/// A running fake Bot API server. Clones share the server; it stops when the last clone drops.
#[derive(Clone)]
pub struct FakeTelegram {
    shared: Arc<Shared>,
    addr: SocketAddr,
    _server: Arc<ServerTask>,
}

struct ServerTask(JoinHandle<()>);

impl Drop for ServerTask {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Read access to the fake's state inside [`FakeTelegram::inspect`] and
/// [`FakeTelegram::wait_for`] predicates.
pub struct View<'a>(&'a State);

// === impl View ===

impl View<'_> {
    /// Every message the bot sent, in sending order (deleted ones have `deleted` set).
    pub fn bot_messages(&self) -> &[BotMessage] {
        &self.0.bot_messages
    }

    /// The bot's live (not deleted) messages in one chat and topic (`None` = outside topics).
    pub fn messages_in(&self, chat_id: i64, thread_id: Option<i64>) -> Vec<&BotMessage> {
        self.0
            .bot_messages
            .iter()
            .filter(|m| m.chat_id == chat_id && m.thread_id == thread_id && !m.deleted)
            .collect()
    }

    /// One bot message.
    pub fn bot_message(&self, chat_id: i64, message_id: i64) -> Option<&BotMessage> {
        self.0
            .bot_messages
            .iter()
            .find(|m| m.chat_id == chat_id && m.message_id == message_id)
    }

    /// Topics of a chat, deleted ones included.
    pub fn topics(&self, chat_id: i64) -> Vec<&Topic> {
        self.0
            .chats
            .get(&chat_id)
            .map(|c| c.topics.values().collect())
            .unwrap_or_default()
    }

    /// One topic.
    pub fn topic(&self, chat_id: i64, thread_id: i64) -> Option<&Topic> {
        self.0.chats.get(&chat_id)?.topics.get(&thread_id)
    }

    /// Successful sendChatAction calls.
    pub fn chat_actions(&self) -> &[ChatAction] {
        &self.0.chat_actions
    }

    /// Successful answerCallbackQuery calls.
    pub fn callback_answers(&self) -> &[CallbackAnswer] {
        &self.0.callback_answers
    }

    /// Successful sendMessageDraft calls, in order.
    pub fn drafts(&self) -> &[Draft] {
        &self.0.drafts
    }

    /// The bot's messages that carry a file now or did before an edit, in sending order.
    pub fn bot_media_messages(&self) -> Vec<&BotMessage> {
        self.0
            .bot_messages
            .iter()
            .filter(|m| m.media_history().iter().any(Option::is_some))
            .collect()
    }

    /// The bytes of a stored file (`None` for an unknown `file_id`; empty for a file injected
    /// with only a declared size).
    pub fn file_bytes(&self, file_id: &str) -> Option<Bytes> {
        self.0.files.get(file_id).map(|f| f.bytes.clone())
    }

    /// Every call, in completion order.
    pub fn calls(&self) -> &[ApiCall] {
        &self.0.calls
    }

    /// Every 429 served.
    pub fn flood_events(&self) -> &[FloodEvent] {
        &self.0.flood.events
    }

    /// Commands set for `scope` (a BotCommandScope; `None` = default) and language (`""` = all),
    /// as `(command, description)`.
    pub fn commands(&self, scope: Option<&Value>, language: &str) -> Vec<(String, String)> {
        let default = serde_json::json!({ "type": "default" });
        let key = format!("{}|{language}", scope.unwrap_or(&default));
        self.0
            .commands
            .get(&key)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(|c| {
                let s = |k: &str| c[k].as_str().unwrap_or_default().to_owned();
                (s("command"), s("description"))
            })
            .collect()
    }

    /// Updates queued and not yet confirmed by the bot.
    pub fn pending_updates(&self) -> usize {
        self.0.updates.len()
    }

    /// How many getUpdates calls have started (a long poll counts when it begins waiting).
    pub fn polls_started(&self) -> u64 {
        self.0.poll_generation
    }

    /// Highest update id the bot has confirmed with a later getUpdates offset.
    pub fn confirmed_through(&self) -> i64 {
        self.0.confirmed_through
    }
}

// === impl FakeTelegram ===

impl FakeTelegram {
    /// Binds `127.0.0.1:0` and serves the Bot API for `token` (`<bot id>:<secret>`).
    pub async fn start(token: &str) -> anyhow::Result<Self> {
        let bot_id = token
            .split_once(':')
            .and_then(|(id, secret)| (!secret.is_empty()).then_some(id))
            .and_then(|id| id.parse::<i64>().ok())
            .with_context(|| format!("bot token {token:?} is not `<numeric id>:<secret>`"))?;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .context("binding the fake Telegram server")?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            token: token.to_owned(),
            state: Mutex::new(State::new(bot_id)),
            updates: Notify::new(),
            changed: watch::channel(0).0,
        });
        let app = server::router(shared.clone());
        let task = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::error!("fake Telegram server stopped: {e}");
            }
        });
        Ok(Self {
            shared,
            addr,
            _server: Arc::new(ServerTask(task)),
        })
    }

    /// Base URL for `TELEGRAM_API_URL` / `Bot::set_api_url`, e.g. `http://127.0.0.1:PORT`.
    pub fn api_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `api_url()/bot<token>`, the prefix of every method URL.
    pub fn bot_url(&self) -> String {
        format!("{}/bot{}", self.api_url(), self.shared.token)
    }

    /// The token the server accepts.
    pub fn token(&self) -> &str {
        &self.shared.token
    }

    /// The bot's user id (the numeric part of the token).
    pub fn bot_id(&self) -> i64 {
        self.shared.lock().bot_id
    }

    /// Runs `f` over the current state.
    pub fn inspect<T>(&self, f: impl FnOnce(&View<'_>) -> T) -> T {
        let st = self.shared.lock();
        f(&View(&st))
    }

    /// Every message the bot sent, in sending order.
    pub fn bot_messages(&self) -> Vec<BotMessage> {
        self.inspect(|v| v.bot_messages().to_vec())
    }

    /// The bot's live messages in one chat and topic (`None` = outside topics).
    pub fn messages_in(&self, chat_id: i64, thread_id: Option<i64>) -> Vec<BotMessage> {
        self.inspect(|v| {
            v.messages_in(chat_id, thread_id)
                .into_iter()
                .cloned()
                .collect()
        })
    }

    /// One bot message, deleted or not.
    pub fn bot_message(&self, chat_id: i64, message_id: i64) -> Option<BotMessage> {
        self.inspect(|v| v.bot_message(chat_id, message_id).cloned())
    }

    /// One topic.
    pub fn topic(&self, chat_id: i64, thread_id: i64) -> Option<Topic> {
        self.inspect(|v| v.topic(chat_id, thread_id).cloned())
    }

    /// Successful sendChatAction calls.
    pub fn chat_actions(&self) -> Vec<ChatAction> {
        self.inspect(|v| v.chat_actions().to_vec())
    }

    /// Successful answerCallbackQuery calls.
    pub fn callback_answers(&self) -> Vec<CallbackAnswer> {
        self.inspect(|v| v.callback_answers().to_vec())
    }

    /// Successful sendMessageDraft calls, in order.
    pub fn drafts(&self) -> Vec<Draft> {
        self.inspect(|v| v.drafts().to_vec())
    }

    /// Successful sendMessageDraft calls in one chat and topic (`None` = outside topics).
    pub fn drafts_in(&self, chat_id: i64, thread_id: Option<i64>) -> Vec<Draft> {
        self.inspect(|v| {
            v.drafts()
                .iter()
                .filter(|d| d.chat_id == chat_id && d.thread_id == thread_id)
                .cloned()
                .collect()
        })
    }

    /// The bot's messages that carry a file now or did before an edit, with their media history
    /// ([`BotMessage::media_history`]), in sending order.
    pub fn bot_media_messages(&self) -> Vec<BotMessage> {
        self.inspect(|v| v.bot_media_messages().into_iter().cloned().collect())
    }

    /// The bytes of a stored file, as the download URL serves them (`None` for an unknown
    /// `file_id`).
    pub fn file_bytes(&self, file_id: &str) -> Option<Bytes> {
        self.inspect(|v| v.file_bytes(file_id))
    }

    /// Every API call so far.
    pub fn calls(&self) -> Vec<ApiCall> {
        self.inspect(|v| v.calls().to_vec())
    }

    /// Calls of one method (case-insensitive).
    pub fn calls_to(&self, method: &str) -> Vec<ApiCall> {
        self.inspect(|v| {
            v.calls()
                .iter()
                .filter(|c| c.method.eq_ignore_ascii_case(method))
                .cloned()
                .collect()
        })
    }

    /// Every 429 served.
    pub fn flood_events(&self) -> Vec<FloodEvent> {
        self.inspect(|v| v.flood_events().to_vec())
    }

    /// How many 429s were served.
    pub fn count_429(&self) -> usize {
        self.inspect(|v| v.flood_events().len())
    }

    /// Turns flood control on with `limits`, or off with `None` (the default).
    pub fn set_flood_limits(&self, limits: Option<FloodLimits>) {
        self.shared.lock().flood.limits = limits;
    }

    /// The next `n` sends or edits (any chat) fail with 429 `retry_after = secs`.
    pub fn force_retry_after(&self, n: u32, secs: u32) {
        self.shared.lock().flood.force(None, n, secs);
    }

    /// The next `n` sends or edits to `chat` fail with 429 `retry_after = secs` (a chat whose
    /// budget is spent; other chats are not affected).
    pub fn force_retry_after_in(&self, chat: i64, n: u32, secs: u32) {
        self.shared.lock().flood.force_in(Some(chat), None, n, secs);
    }

    /// The next `n` calls of `method` (any method, e.g. `answerCallbackQuery`) fail with 429.
    pub fn force_retry_after_on(&self, method: &str, n: u32, secs: u32) {
        self.shared.lock().flood.force(Some(method), n, secs);
    }

    /// The next `n` calls of `method` fail as they do when Telegram's front end is down: HTTP 502
    /// with an HTML page instead of JSON. Nothing is delivered.
    pub fn force_server_error_on(&self, method: &str, n: u32) {
        self.shared
            .lock()
            .server_errors
            .push((method.to_ascii_lowercase(), n));
    }

    /// How long a callback query stays answerable (default 15 s).
    pub fn set_callback_deadline(&self, deadline: Duration) {
        self.shared.lock().callback_deadline = deadline;
    }

    /// Whether the bot is a forum admin with `can_manage_topics` (default yes). Without it,
    /// topic management fails and closed topics refuse the bot's messages (`TOPIC_CLOSED`).
    pub fn set_bot_can_manage_topics(&self, chat_id: i64, can: bool) -> anyhow::Result<()> {
        let mut st = self.shared.lock();
        let chat = st.chats.get_mut(&chat_id).context("no such chat")?;
        chat.bot_can_manage_topics = can;
        Ok(())
    }

    /// Waits until `f` returns `Some`, re-checking after every change (never by polling).
    /// On timeout the error names `what` and summarises recent bot messages and calls.
    /// `f` runs under the state lock: it must only read the [`View`], not call `self`.
    pub async fn wait_for<T>(
        &self,
        what: &str,
        timeout: Duration,
        mut f: impl FnMut(&View<'_>) -> Option<T>,
    ) -> anyhow::Result<T> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut rx = self.shared.changed.subscribe();
        loop {
            rx.borrow_and_update();
            if let Some(found) = self.inspect(&mut f) {
                return Ok(found);
            }
            match tokio::time::timeout_at(deadline, rx.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => bail!("fake Telegram stopped while waiting for {what}"),
                Err(_) => bail!(
                    "timed out after {timeout:?} waiting for {what}\n{}",
                    self.summary()
                ),
            }
        }
    }

    /// Waits for a bot message (current content, not deleted) matching `pred`.
    pub async fn wait_for_message(
        &self,
        what: &str,
        timeout: Duration,
        mut pred: impl FnMut(&BotMessage) -> bool,
    ) -> anyhow::Result<BotMessage> {
        self.wait_for(what, timeout, |v| {
            v.bot_messages()
                .iter()
                .find(|m| !m.deleted && pred(m))
                .cloned()
        })
        .await
    }

    /// Waits until the bot confirmed (via getUpdates offset) the update `update_id`.
    pub async fn wait_until_confirmed(
        &self,
        update_id: i64,
        timeout: Duration,
    ) -> anyhow::Result<()> {
        let what = format!("the bot to confirm update {update_id}");
        self.wait_for(&what, timeout, |v| {
            (v.confirmed_through() >= update_id).then_some(())
        })
        .await
    }

    /// The last bot messages and calls, for failure messages.
    pub fn summary(&self) -> String {
        self.inspect(|v| {
            let mut out = String::from("last bot messages:\n");
            let msgs = v.bot_messages();
            for m in &msgs[msgs.len().saturating_sub(10)..] {
                let text: String = m.current.text.chars().take(120).collect();
                let _ = writeln!(
                    out,
                    "  chat {} thread {:?} #{}{}: {text:?}",
                    m.chat_id,
                    m.thread_id,
                    m.message_id,
                    if m.deleted { " (deleted)" } else { "" }
                );
            }
            out.push_str("last calls:\n");
            let calls = v.calls();
            for c in &calls[calls.len().saturating_sub(15)..] {
                let outcome = match &c.outcome {
                    Ok(_) => "ok".to_owned(),
                    Err(e) => format!("{} {}", e.code, e.description),
                };
                let _ = writeln!(out, "  #{} {}: {outcome}", c.seq, c.method);
            }
            out
        })
    }

    /// Records a state change made by the harness and wakes long polls and waiters.
    fn changed(&self) {
        self.shared.updates.notify_waiters();
        self.shared.bump();
    }
}
