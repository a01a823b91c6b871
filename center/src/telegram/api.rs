//! The Bot API calls the center makes, on teloxide's client, with errors sorted into the cases
//! the center handles by name. Error texts are scrubbed of the bot token (HTTP client errors
//! quote the request URL, which contains it).
//!
//! Besides messages this covers media (uploads from memory, media edits, getFile and downloads
//! with size caps) and `sendMessageDraft`, which teloxide 0.17 does not model and which is sent
//! as a custom JSON payload through teloxide's own request machinery. With an [`Audit`]
//! attached ([`Tg::with_audit`]), every call except getUpdates leaves one line in it.

mod topics;

use std::{future::Future, sync::Arc, time::Duration};

use serde::Serialize;
use teloxide::{
    payloads::{
        AnswerCallbackQuerySetters, EditMessageMediaSetters, EditMessageTextSetters,
        GetUpdatesSetters, SendAnimationSetters, SendAudioSetters, SendChatActionSetters,
        SendDocumentSetters, SendMessageSetters, SendPhotoSetters, SendVideoSetters,
    },
    prelude::*,
    requests::{JsonRequest, Payload},
    types::{
        BotCommand, CallbackQueryId, ChatAction, FileId, InlineKeyboardButton,
        InlineKeyboardMarkup, InputFile, InputMedia, InputMediaAnimation, InputMediaAudio,
        InputMediaDocument, InputMediaPhoto, InputMediaVideo, MessageId, ParseMode,
        ReplyParameters, ThreadId, True, Update,
    },
};

use super::audit::{Audit, Digest, Entry, Hasher};
use crate::store::Surface;

/// Rows of `(label, callback data)` buttons.
pub type Keyboard = Vec<Vec<(String, String)>>;

const MIB: u64 = 1 << 20;
/// The largest file the Bot API lets a bot download (getFile).
pub const MAX_DOWNLOAD: u64 = 20 * MIB;
/// The largest photo a bot may upload.
pub const MAX_PHOTO_UPLOAD: u64 = 10 * MIB;
/// The largest file of any other kind a bot may upload.
pub const MAX_UPLOAD: u64 = 50 * MIB;
/// The longest caption, in UTF-16 code units after entity parsing.
pub const MAX_CAPTION: usize = 1024;

/// How long an upload or a download may take. teloxide's client gives every call 17 s, which
/// suits JSON calls but not 50 MB over a slow uplink, so media goes through a second client.
const MEDIA_TIMEOUT: Duration = Duration::from_secs(300);

/// A failed call, sorted by what the caller does about it.
#[derive(Debug, Clone, thiserror::Error)]
pub enum TgError {
    /// Flood control: wait this long, then retry.
    #[error("too many requests; retry after {0:?}")]
    RetryAfter(Duration),
    /// An edit that changes nothing (a success for us).
    #[error("message is not modified")]
    NotModified,
    /// The HTML did not parse; resend as plain text.
    #[error("can't parse entities: {0}")]
    ParseEntities(String),
    /// The topic is gone (deleted).
    #[error("message thread not found")]
    ThreadNotFound,
    /// The message to edit or delete does not exist.
    #[error("message not found")]
    MessageGone,
    /// A file over the Bot API's limits (upload, getFile) or over the caller's download cap.
    #[error("file is too big")]
    FileTooBig,
    /// Could not reach the Bot API (nothing was delivered, or we cannot know).
    #[error("network: {0}")]
    Network(String),
    /// The Bot API (or a proxy in front of it) failed with a 5xx: worth retrying.
    #[error("Telegram server error: {0}")]
    Server(String),
    /// Anything else Telegram refused.
    #[error("{0}")]
    Other(String),
}

/// What kind of media a file is sent as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediaKind {
    /// A compressed picture (sendPhoto).
    Photo,
    /// Any file, sent as is (sendDocument).
    Document,
    /// A playable video (sendVideo).
    Video,
    /// A GIF or silent video, looped (sendAnimation).
    Animation,
    /// Music (sendAudio).
    Audio,
}

impl MediaKind {
    /// `photo`, `document`, `video`, `animation` or `audio`.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "photo" => Self::Photo,
            "document" => Self::Document,
            "video" => Self::Video,
            "animation" => Self::Animation,
            "audio" => Self::Audio,
            _ => return None,
        })
    }

    /// The name [`MediaKind::parse`] reads.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Photo => "photo",
            Self::Document => "document",
            Self::Video => "video",
            Self::Animation => "animation",
            Self::Audio => "audio",
        }
    }

    /// The largest upload Telegram accepts for this kind.
    pub fn max_upload(self) -> u64 {
        match self {
            Self::Photo => MAX_PHOTO_UPLOAD,
            _ => MAX_UPLOAD,
        }
    }

    fn send_method(self) -> &'static str {
        match self {
            Self::Photo => "sendPhoto",
            Self::Document => "sendDocument",
            Self::Video => "sendVideo",
            Self::Animation => "sendAnimation",
            Self::Audio => "sendAudio",
        }
    }
}

/// A file to upload from memory.
#[derive(Debug, Clone)]
pub struct Upload {
    /// How Telegram should present it.
    pub kind: MediaKind,
    /// The name shown for documents (and the multipart file name for every kind).
    pub file_name: String,
    /// The content (shared: the outbox may send it more than once).
    pub bytes: Arc<Vec<u8>>,
}

/// Who made a call, for the audit: the outbox (with a send's class) or a caller directly.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Origin {
    /// The outbox's priority class of a send, as the audit names it (`final`, `message`,
    /// `status`); `None` for everything else.
    pub(super) class: Option<&'static str>,
    pub(super) paced: bool,
}

tokio::task_local! {
    static ORIGIN: Origin;
}

/// Runs `f` with its calls recorded in the audit as made by `origin`.
pub(super) async fn on_behalf<F: Future>(origin: Origin, f: F) -> F::Output {
    ORIGIN.scope(origin, f).await
}

/// What the audit records about a call besides its outcome.
struct Call {
    method: &'static str,
    chat_id: Option<i64>,
    thread_id: Option<i32>,
    message_id: Option<i32>,
    payload: Option<Digest>,
}

impl Call {
    fn new(method: &'static str, chat_id: Option<i64>) -> Self {
        Self {
            method,
            chat_id,
            thread_id: None,
            message_id: None,
            payload: None,
        }
    }
}

/// `sendMessageDraft` (Bot API 9.3+, newer than teloxide 0.17), sent as JSON by teloxide.
#[derive(Debug, Clone, Serialize)]
struct SendMessageDraft {
    chat_id: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    message_thread_id: Option<i32>,
    draft_id: i64,
    text: String,
    parse_mode: ParseMode,
}

impl Payload for SendMessageDraft {
    type Output = True;
    const NAME: &'static str = "sendMessageDraft";
}

/// The client.
#[derive(Clone)]
pub struct Tg {
    bot: Bot,
    /// The same bot on a client with a long timeout, for uploads and downloads.
    media: Bot,
    token: String,
    audit: Option<Audit>,
}

impl Tg {
    /// A client for `token` on `api_url`.
    pub fn new(token: &str, api_url: &str) -> Result<Self, TgError> {
        let url = reqwest_url(api_url)?;
        let mut client = teloxide::net::default_reqwest_settings().timeout(MEDIA_TIMEOUT);
        // Bot::new honours TELOXIDE_PROXY; so does the media client.
        if let Ok(proxy) = std::env::var("TELOXIDE_PROXY") {
            let proxy = reqwest::Proxy::all(proxy)
                .map_err(|e| TgError::Other(format!("bad TELOXIDE_PROXY: {e}")))?;
            client = client.proxy(proxy);
        }
        let client = client
            .build()
            .map_err(|e| TgError::Other(format!("cannot build the HTTP client: {e}")))?;
        Ok(Self {
            bot: Bot::new(token).set_api_url(url.clone()),
            media: Bot::with_client(token, client).set_api_url(url),
            token: token.to_owned(),
            audit: None,
        })
    }

    /// The same client, recording every call (except getUpdates) in `audit`.
    pub fn with_audit(mut self, audit: Audit) -> Tg {
        self.audit = Some(audit);
        self
    }

    fn scrub(&self, text: &str) -> String {
        if self.token.is_empty() {
            text.to_owned()
        } else {
            text.replace(&self.token, "<token>")
        }
    }

    fn classify(&self, err: &teloxide::RequestError) -> TgError {
        if let teloxide::RequestError::RetryAfter(secs) = err {
            return TgError::RetryAfter(secs.duration().max(Duration::from_millis(500)));
        }
        let network = matches!(
            err,
            teloxide::RequestError::Network(_) | teloxide::RequestError::Io(_)
        );
        // A body that is not the Bot API's JSON comes from a proxy or a front end that failed
        // (Telegram answers 502/504 with HTML when it is overloaded).
        if let teloxide::RequestError::InvalidJson { raw, .. } = err {
            let head: String = raw.chars().take(80).collect();
            return TgError::Server(self.scrub(&head));
        }
        sort(self.scrub(&err.to_string()), network)
    }

    fn network(&self, err: reqwest::Error) -> TgError {
        TgError::Network(self.scrub(&err.without_url().to_string()))
    }

    /// Whether calls are recorded (digests are computed only then).
    fn auditing(&self) -> bool {
        self.audit.is_some()
    }

    /// Records `call` with `result` in the audit, if there is one.
    fn record<T>(&self, call: Call, result: &Result<T, TgError>) {
        let Some(audit) = &self.audit else { return };
        let origin = ORIGIN.try_with(|o| *o).unwrap_or_default();
        let (outcome, error, retry_after_s) = match result {
            Ok(_) => ("ok", None, None),
            Err(e @ TgError::RetryAfter(d)) => {
                ("retry_after", Some(e.to_string()), Some(d.as_secs_f64()))
            }
            Err(e) => ("error", Some(self.scrub(&e.to_string())), None),
        };
        let (payload_sha256, bytes) = match call.payload {
            Some(d) => (Some(d.sha256), d.bytes),
            None => (None, 0),
        };
        audit.record(Entry {
            ts_ms: 0,
            method: call.method,
            chat_id: call.chat_id,
            thread_id: call.thread_id,
            message_id: call.message_id,
            class: origin.class,
            paced: origin.paced,
            outcome,
            error,
            retry_after_s,
            payload_sha256,
            bytes,
        });
    }

    fn text_digest(&self, text: &str) -> Option<Digest> {
        self.auditing().then(|| Digest::of(&[text.as_bytes()]))
    }

    /// Sends a message (HTML or plain); returns its id.
    pub async fn send(
        &self,
        surface: Surface,
        text: &str,
        html: bool,
        keyboard: Option<&Keyboard>,
        reply_to: Option<i32>,
    ) -> Result<i32, TgError> {
        let mut req = self.bot.send_message(ChatId(surface.chat_id), text);
        if html {
            req = req.parse_mode(ParseMode::Html);
        }
        if let Some(t) = topic(surface) {
            req = req.message_thread_id(ThreadId(MessageId(t)));
        }
        if let Some(k) = keyboard {
            req = req.reply_markup(markup(k));
        }
        if let Some(id) = reply_to {
            req = req.reply_parameters(
                ReplyParameters::new(MessageId(id)).allow_sending_without_reply(),
            );
        }
        let result = req.await.map(|m| m.id.0).map_err(|e| self.classify(&e));
        let mut call = Call::new("sendMessage", Some(surface.chat_id));
        call.thread_id = topic(surface);
        call.message_id = result.as_ref().ok().copied();
        call.payload = self.text_digest(text);
        self.record(call, &result);
        result
    }

    /// Replaces a message's text (and keyboard: `None` removes it).
    pub async fn edit(
        &self,
        chat_id: i64,
        message_id: i32,
        text: &str,
        html: bool,
        keyboard: Option<&Keyboard>,
    ) -> Result<(), TgError> {
        let mut req = self
            .bot
            .edit_message_text(ChatId(chat_id), MessageId(message_id), text);
        if html {
            req = req.parse_mode(ParseMode::Html);
        }
        if let Some(k) = keyboard {
            req = req.reply_markup(markup(k));
        }
        let result = match req.await {
            Ok(_) => Ok(()),
            Err(e) => match self.classify(&e) {
                TgError::NotModified => Ok(()),
                other => Err(other),
            },
        };
        let mut call = Call::new("editMessageText", Some(chat_id));
        call.message_id = Some(message_id);
        call.payload = self.text_digest(text);
        self.record(call, &result);
        result
    }

    /// Deletes a message.
    pub async fn delete(&self, chat_id: i64, message_id: i32) -> Result<(), TgError> {
        let result = self
            .bot
            .delete_message(ChatId(chat_id), MessageId(message_id))
            .await
            .map(drop)
            .map_err(|e| self.classify(&e));
        let mut call = Call::new("deleteMessage", Some(chat_id));
        call.message_id = Some(message_id);
        self.record(call, &result);
        result
    }

    /// Answers a button press (a toast when `text` is given).
    pub async fn answer_callback(&self, id: &str, text: Option<&str>) -> Result<(), TgError> {
        let mut req = self
            .bot
            .answer_callback_query(CallbackQueryId(id.to_owned()));
        let text = text.map(|t| t.chars().take(200).collect::<String>());
        if let Some(t) = &text {
            req = req.text(t.clone());
        }
        let result = req.await.map(drop).map_err(|e| self.classify(&e));
        let mut call = Call::new("answerCallbackQuery", None);
        call.payload = text.as_deref().and_then(|t| self.text_digest(t));
        self.record(call, &result);
        result
    }

    /// Shows "typing…" in a topic for about 5 s.
    pub async fn typing(&self, surface: Surface) -> Result<(), TgError> {
        let mut req = self
            .bot
            .send_chat_action(ChatId(surface.chat_id), ChatAction::Typing);
        if let Some(t) = topic(surface) {
            req = req.message_thread_id(ThreadId(MessageId(t)));
        }
        let result = req.await.map(drop).map_err(|e| self.classify(&e));
        let mut call = Call::new("sendChatAction", Some(surface.chat_id));
        call.thread_id = topic(surface);
        self.record(call, &result);
        result
    }

    /// The bot's own username (from getMe), to tell commands meant for it (`/cmd@this_bot`)
    /// from commands meant for other bots in the same group.
    pub async fn username(&self) -> Result<String, TgError> {
        let result = self
            .bot
            .get_me()
            .await
            .map(|me| me.user.username.unwrap_or_default())
            .map_err(|e| self.classify(&e));
        self.record(Call::new("getMe", None), &result);
        result
    }

    /// Sets the command menu.
    pub async fn set_commands(&self, commands: &[(&str, &str)]) -> Result<(), TgError> {
        let list = commands
            .iter()
            .map(|(c, d)| BotCommand::new(*c, *d))
            .collect::<Vec<_>>();
        let result = self
            .bot
            .set_my_commands(list)
            .await
            .map(drop)
            .map_err(|e| self.classify(&e));
        let mut call = Call::new("setMyCommands", None);
        if self.auditing() {
            let listed: String = commands
                .iter()
                .map(|(c, d)| format!("{c}\t{d}\n"))
                .collect();
            call.payload = self.text_digest(&listed);
        }
        self.record(call, &result);
        result
    }

    /// One long poll (never audited: polls would drown everything else).
    pub async fn get_updates(
        &self,
        offset: i32,
        timeout: Duration,
    ) -> Result<Vec<Update>, TgError> {
        self.bot
            .get_updates()
            .offset(offset)
            .timeout(timeout.as_secs() as u32)
            .await
            .map_err(|e| self.classify(&e))
    }

    /// Sends a file as `upload.kind` with a caption (HTML or plain); returns the message id.
    /// Files over Telegram's upload limit fail with [`TgError::FileTooBig`] without a call.
    pub async fn send_media(
        &self,
        surface: Surface,
        upload: &Upload,
        caption: &str,
        html: bool,
        keyboard: Option<&Keyboard>,
        reply_to: Option<i32>,
    ) -> Result<i32, TgError> {
        if upload.bytes.len() as u64 > upload.kind.max_upload() {
            return Err(TgError::FileTooBig);
        }
        /// Sets the options every send* method shares and sends.
        macro_rules! send {
            ($req:expr) => {{
                let mut req = $req;
                if !caption.is_empty() {
                    req = req.caption(caption);
                    if html {
                        req = req.parse_mode(ParseMode::Html);
                    }
                }
                if let Some(t) = topic(surface) {
                    req = req.message_thread_id(ThreadId(MessageId(t)));
                }
                if let Some(k) = keyboard {
                    req = req.reply_markup(markup(k));
                }
                if let Some(id) = reply_to {
                    req = req.reply_parameters(
                        ReplyParameters::new(MessageId(id)).allow_sending_without_reply(),
                    );
                }
                req.await
            }};
        }
        let chat = ChatId(surface.chat_id);
        let file = input_file(upload);
        let sent = match upload.kind {
            MediaKind::Photo => send!(self.media.send_photo(chat, file)),
            MediaKind::Document => send!(self.media.send_document(chat, file)),
            MediaKind::Video => send!(self.media.send_video(chat, file)),
            MediaKind::Animation => send!(self.media.send_animation(chat, file)),
            MediaKind::Audio => send!(self.media.send_audio(chat, file)),
        };
        let result = sent.map(|m| m.id.0).map_err(|e| self.classify(&e));
        let mut call = Call::new(upload.kind.send_method(), Some(surface.chat_id));
        call.thread_id = topic(surface);
        call.message_id = result.as_ref().ok().copied();
        if self.auditing() {
            call.payload = Digest::of_upload(caption, &upload.bytes).await;
        }
        self.record(call, &result);
        result
    }

    /// Replaces a media message's file and caption (and keyboard: `None` removes it).
    pub async fn edit_media(
        &self,
        chat_id: i64,
        message_id: i32,
        upload: &Upload,
        caption: &str,
        html: bool,
        keyboard: Option<&Keyboard>,
    ) -> Result<(), TgError> {
        if upload.bytes.len() as u64 > upload.kind.max_upload() {
            return Err(TgError::FileTooBig);
        }
        /// Sets the caption of an InputMedia*.
        macro_rules! captioned {
            ($media:expr) => {{
                let mut media = $media;
                if !caption.is_empty() {
                    media = media.caption(caption);
                    if html {
                        media = media.parse_mode(ParseMode::Html);
                    }
                }
                media
            }};
        }
        let file = input_file(upload);
        let media = match upload.kind {
            MediaKind::Photo => InputMedia::Photo(captioned!(InputMediaPhoto::new(file))),
            MediaKind::Document => InputMedia::Document(captioned!(InputMediaDocument::new(file))),
            MediaKind::Video => InputMedia::Video(captioned!(InputMediaVideo::new(file))),
            MediaKind::Animation => {
                InputMedia::Animation(captioned!(InputMediaAnimation::new(file)))
            }
            MediaKind::Audio => InputMedia::Audio(captioned!(InputMediaAudio::new(file))),
        };
        let mut req = self
            .media
            .edit_message_media(ChatId(chat_id), MessageId(message_id), media);
        if let Some(k) = keyboard {
            req = req.reply_markup(markup(k));
        }
        let result = match req.await {
            Ok(_) => Ok(()),
            Err(e) => match self.classify(&e) {
                TgError::NotModified => Ok(()),
                other => Err(other),
            },
        };
        let mut call = Call::new("editMessageMedia", Some(chat_id));
        call.message_id = Some(message_id);
        if self.auditing() {
            call.payload = Digest::of_upload(caption, &upload.bytes).await;
        }
        self.record(call, &result);
        result
    }

    /// Looks a file up (getFile): its download path and size. Files over 20 MB fail with
    /// [`TgError::FileTooBig`].
    pub async fn file_info(&self, file_id: &str) -> Result<(String, u64), TgError> {
        let result = self
            .bot
            .get_file(FileId(file_id.to_owned()))
            .await
            .map(|f| (f.path, u64::from(f.meta.size)))
            .map_err(|e| self.classify(&e));
        let mut call = Call::new("getFile", None);
        call.payload = self.text_digest(file_id);
        self.record(call, &result);
        result
    }

    /// Downloads a file by its getFile path, refusing with [`TgError::FileTooBig`] as soon as
    /// more than `max_bytes` arrive (or are announced).
    pub async fn download(&self, file_path: &str, max_bytes: u64) -> Result<Vec<u8>, TgError> {
        let mut hasher = Hasher::default();
        let result = self.fetch(file_path, max_bytes, &mut hasher).await;
        let mut call = Call::new("downloadFile", None);
        if self.auditing() {
            call.payload = Some(hasher.finish());
        }
        self.record(call, &result);
        result
    }

    async fn fetch(
        &self,
        file_path: &str,
        max_bytes: u64,
        hasher: &mut Hasher,
    ) -> Result<Vec<u8>, TgError> {
        let mut url = self.media.api_url();
        url.path_segments_mut()
            .map_err(|()| TgError::Other("bad Bot API URL".into()))?
            .pop_if_empty()
            .push("file")
            .push(&format!("bot{}", self.token))
            .extend(file_path.split('/'));
        let mut resp = self
            .media
            .client()
            .get(url)
            .timeout(MEDIA_TIMEOUT)
            .send()
            .await
            .map_err(|e| self.network(e))?;
        let status = resp.status();
        if !status.is_success() {
            let body = resp.text().await.unwrap_or_default();
            let description = serde_json::from_str::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| v["description"].as_str().map(str::to_owned))
                .unwrap_or_else(|| body.chars().take(200).collect());
            let text = self.scrub(&format!("download failed ({status}): {description}"));
            return Err(sort(text, false));
        }
        if resp.content_length().is_some_and(|n| n > max_bytes) {
            return Err(TgError::FileTooBig);
        }
        let capacity = resp.content_length().unwrap_or(0).min(max_bytes);
        let mut out = Vec::with_capacity(usize::try_from(capacity).unwrap_or(0));
        while let Some(chunk) = resp.chunk().await.map_err(|e| self.network(e))? {
            if (out.len() + chunk.len()) as u64 > max_bytes {
                return Err(TgError::FileTooBig);
            }
            if self.auditing() {
                hasher.update(&chunk);
            }
            out.extend_from_slice(&chunk);
        }
        Ok(out)
    }

    /// Shows (or updates) an ephemeral draft of a message being written (sendMessageDraft;
    /// private chats only, `draft_id` non-zero, HTML text).
    pub async fn send_draft(
        &self,
        surface: Surface,
        draft_id: i64,
        html: &str,
    ) -> Result<(), TgError> {
        let payload = SendMessageDraft {
            chat_id: surface.chat_id,
            message_thread_id: topic(surface),
            draft_id,
            text: html.to_owned(),
            parse_mode: ParseMode::Html,
        };
        let result = JsonRequest::new(self.bot.clone(), payload)
            .await
            .map(drop)
            .map_err(|e| self.classify(&e));
        let mut call = Call::new("sendMessageDraft", Some(surface.chat_id));
        call.thread_id = topic(surface);
        call.payload = self.text_digest(html);
        self.record(call, &result);
        result
    }
}

/// Sorts an error text (already free of the token) into the cases the center handles.
fn sort(text: String, network: bool) -> TgError {
    let lower = text.to_lowercase();
    if lower.contains("message is not modified") {
        TgError::NotModified
    } else if lower.contains("can't parse entities") || lower.contains("can't find end") {
        TgError::ParseEntities(text)
    } else if lower.contains("thread not found") || lower.contains("topic_deleted") {
        TgError::ThreadNotFound
    } else if lower.contains("message to edit not found")
        || lower.contains("message to delete not found")
        || lower.contains("message can't be edited")
    {
        TgError::MessageGone
    } else if lower.contains("file is too big")
        || lower.contains("request entity too large")
        || lower.contains("file_too_big")
    {
        TgError::FileTooBig
    } else if network {
        TgError::Network(text)
    } else if [
        "internal server error",
        "bad gateway",
        "service unavailable",
        "gateway timeout",
    ]
    .iter()
    .any(|e| lower.contains(e))
    {
        TgError::Server(text)
    } else {
        TgError::Other(text)
    }
}

/// The `message_thread_id` to send: a topic, never General (1) or "no topic" (0).
fn topic(surface: Surface) -> Option<i32> {
    (surface.thread_id > 1).then_some(surface.thread_id)
}

fn input_file(upload: &Upload) -> InputFile {
    InputFile::memory(upload.bytes.as_ref().clone()).file_name(upload.file_name.clone())
}

fn markup(k: &Keyboard) -> InlineKeyboardMarkup {
    InlineKeyboardMarkup::new(k.iter().map(|row| {
        row.iter()
            .map(|(label, data)| InlineKeyboardButton::callback(label.clone(), data.clone()))
            .collect::<Vec<_>>()
    }))
}

fn reqwest_url(api_url: &str) -> Result<reqwest::Url, TgError> {
    reqwest::Url::parse(api_url).map_err(|e| TgError::Other(format!("bad Bot API URL: {e}")))
}

/// What getMe says about the bot (for `center preflight`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BotInfo {
    /// The bot's user id.
    pub id: u64,
    /// Its username, without `@`.
    pub username: String,
    /// Privacy mode is off: the bot receives every message in groups, not only commands,
    /// replies to it and messages in groups where it is an admin.
    pub can_read_all_group_messages: bool,
}

/// The bot's own membership in a chat, reduced to what the center needs there (for
/// `center preflight`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BotRights {
    /// Telegram's status: `creator`, `administrator`, `member`, `restricted`, `left` or `kicked`.
    pub status: &'static str,
    /// Creator or administrator (such a bot also receives every message, privacy mode or not).
    pub admin: bool,
    /// May post messages (a bot may always edit and delete its own).
    pub can_send: bool,
    /// May delete other users' messages.
    pub can_delete_others: bool,
    /// May create, rename, close and reopen forum topics.
    pub can_manage_topics: bool,
}

// Preflight calls: read-only, audited like the rest.
impl Tg {
    /// getMe.
    pub async fn me(&self) -> Result<BotInfo, TgError> {
        let result = self
            .bot
            .get_me()
            .await
            .map(|me| BotInfo {
                id: me.user.id.0,
                username: me.user.username.clone().unwrap_or_default(),
                can_read_all_group_messages: me.can_read_all_group_messages,
            })
            .map_err(|e| self.classify(&e));
        self.record(Call::new("getMe", None), &result);
        result
    }

    /// getChatMember of the bot itself (`bot_id` from [`Tg::me`]) in `chat_id`.
    pub async fn bot_rights(&self, chat_id: i64, bot_id: u64) -> Result<BotRights, TgError> {
        use teloxide::types::{ChatMemberKind as K, UserId};
        let result = self
            .bot
            .get_chat_member(ChatId(chat_id), UserId(bot_id))
            .await
            .map(|member| {
                let (status, admin, can_send, can_delete_others, can_manage_topics) =
                    match &member.kind {
                        K::Owner(_) => ("creator", true, true, true, true),
                        K::Administrator(a) => (
                            "administrator",
                            true,
                            true,
                            a.can_delete_messages,
                            a.can_manage_topics,
                        ),
                        K::Member(_) => ("member", false, true, false, false),
                        K::Restricted(r) => (
                            "restricted",
                            false,
                            r.is_member && r.can_send_messages,
                            false,
                            r.can_manage_topics,
                        ),
                        K::Left => ("left", false, false, false, false),
                        K::Banned(_) => ("kicked", false, false, false, false),
                    };
                BotRights {
                    status,
                    admin,
                    can_send,
                    can_delete_others,
                    can_manage_topics,
                }
            })
            .map_err(|e| self.classify(&e));
        self.record(Call::new("getChatMember", Some(chat_id)), &result);
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telegram::audit::{self, Audit};
    use e2e::fake_telegram::{FakeTelegram, sample_png};
    use serde_json::Value;

    const TOKEN: &str = "123456:AAsecret-bot-token";
    const SECRET: &str = "AAsecret";

    fn sha(parts: &[&[u8]]) -> String {
        Digest::of(parts).sha256
    }

    fn surface(chat_id: i64) -> Surface {
        Surface {
            chat_id,
            thread_id: 0,
        }
    }

    /// Every field an audit line has, present (perhaps null) on `line`.
    fn assert_shape(line: &Value) {
        for key in [
            "ts_ms",
            "method",
            "chat_id",
            "thread_id",
            "message_id",
            "class",
            "paced",
            "outcome",
            "error",
            "retry_after_s",
            "payload_sha256",
            "bytes",
        ] {
            assert!(line.get(key).is_some(), "{key} missing in {line}");
        }
    }

    #[test]
    fn errors_are_sorted_by_text() {
        let s = |t: &str| sort(t.to_owned(), false);
        assert!(matches!(
            s("Bad Request: file is too big"),
            TgError::FileTooBig
        ));
        assert!(matches!(s("Request Entity Too Large"), TgError::FileTooBig));
        assert!(matches!(
            s("Bad Request: message is too long"),
            TgError::Other(_)
        ));
        assert!(matches!(
            s("Bad Request: can't parse entities: x"),
            TgError::ParseEntities(_)
        ));
        assert!(matches!(
            s("Bad Request: message to delete not found"),
            TgError::MessageGone
        ));
        assert!(matches!(
            sort("timed out".into(), true),
            TgError::Network(_)
        ));
        for k in [
            MediaKind::Photo,
            MediaKind::Document,
            MediaKind::Video,
            MediaKind::Animation,
            MediaKind::Audio,
        ] {
            assert_eq!(MediaKind::parse(k.as_str()), Some(k));
        }
        assert_eq!(MediaKind::parse("voice"), None);
        assert_eq!(MediaKind::Photo.max_upload(), 10 << 20);
        assert_eq!(MediaKind::Video.max_upload(), 50 << 20);
    }

    #[tokio::test]
    async fn every_call_leaves_one_audit_line_without_the_token() {
        let fake = FakeTelegram::start(TOKEN).await.unwrap();
        let user = fake.create_user("Ann");
        let chat = fake.create_private_chat(&user, false);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let tg = Tg::new(TOKEN, &fake.api_url())
            .unwrap()
            .with_audit(Audit::open(&path).unwrap());
        let here = surface(chat);

        let id = tg.send(here, "<b>hi</b>", true, None, None).await.unwrap();
        tg.edit(chat, id, "<b>hi</b> there", true, None)
            .await
            .unwrap();
        // Not modified is a success.
        tg.edit(chat, id, "<b>hi</b> there", true, None)
            .await
            .unwrap();
        let bad = tg.send(here, "<b>bad", true, None, None).await;
        assert!(matches!(bad, Err(TgError::ParseEntities(_))), "{bad:?}");
        fake.force_retry_after(1, 3);
        let flood = tg.send(here, "later", false, None, None).await;
        assert!(matches!(flood, Err(TgError::RetryAfter(_))), "{flood:?}");
        tg.typing(here).await.unwrap();
        tg.set_commands(&[("status", "Show status")]).await.unwrap();
        assert!(
            tg.answer_callback("no-such-query", Some("hi"))
                .await
                .is_err()
        );
        let png = Arc::new(sample_png(8, 8, [1, 2, 3]));
        let photo = Upload {
            kind: MediaKind::Photo,
            file_name: "a.png".into(),
            bytes: png.clone(),
        };
        let photo_id = tg
            .send_media(here, &photo, "<i>cap</i>", true, None, Some(id))
            .await
            .unwrap();
        let doc = Upload {
            kind: MediaKind::Document,
            file_name: "notes.txt".into(),
            bytes: Arc::new(b"hello world".to_vec()),
        };
        tg.send_media(here, &doc, "", false, None, None)
            .await
            .unwrap();
        let posted = fake
            .send_document(
                &user,
                chat,
                None,
                "in.bin",
                "application/octet-stream",
                vec![9u8; 1000],
                None,
            )
            .unwrap();
        let (file_path, size) = tg.file_info(&posted.file_id.unwrap()).await.unwrap();
        assert_eq!(size, 1000);
        let got = tg.download(&file_path, MAX_DOWNLOAD).await.unwrap();
        assert_eq!(got, vec![9u8; 1000]);
        let capped = tg.download(&file_path, 999).await;
        assert!(matches!(capped, Err(TgError::FileTooBig)), "{capped:?}");
        assert!(tg.file_info("no-such-file").await.is_err());
        tg.delete(chat, photo_id).await.unwrap();
        let again = tg.delete(chat, photo_id).await;
        assert!(matches!(again, Err(TgError::MessageGone)), "{again:?}");
        // Polls are not audited.
        tg.get_updates(0, Duration::ZERO).await.unwrap();

        let lines = audit::read_all(&path).unwrap();
        let methods: Vec<&str> = lines
            .iter()
            .map(|l| l["method"].as_str().unwrap())
            .collect();
        assert_eq!(
            methods,
            [
                "sendMessage",
                "editMessageText",
                "editMessageText",
                "sendMessage",
                "sendMessage",
                "sendChatAction",
                "setMyCommands",
                "answerCallbackQuery",
                "sendPhoto",
                "sendDocument",
                "getFile",
                "downloadFile",
                "downloadFile",
                "getFile",
                "deleteMessage",
                "deleteMessage",
            ]
        );
        lines.iter().for_each(assert_shape);
        let first = &lines[0];
        assert_eq!(first["chat_id"], chat);
        assert_eq!(first["message_id"], id);
        assert!(first["thread_id"].is_null());
        assert!(first["class"].is_null(), "direct calls have no class");
        assert_eq!(first["paced"], false);
        assert_eq!(first["outcome"], "ok");
        assert!(first["error"].is_null());
        assert!(first["retry_after_s"].is_null());
        assert_eq!(first["payload_sha256"], sha(&[b"<b>hi</b>"]));
        assert_eq!(first["bytes"], 9);
        assert_eq!(lines[1]["message_id"], id);
        assert_eq!(lines[2]["outcome"], "ok");
        assert_eq!(lines[3]["outcome"], "error");
        assert!(lines[3]["message_id"].is_null());
        let why = lines[3]["error"].as_str().unwrap();
        assert!(why.contains("can't parse entities"), "{why}");
        assert_eq!(lines[4]["outcome"], "retry_after");
        assert_eq!(lines[4]["retry_after_s"], 3.0);
        assert_eq!(lines[7]["outcome"], "error");
        let photo_line = &lines[8];
        assert_eq!(photo_line["message_id"], photo_id);
        assert_eq!(photo_line["payload_sha256"], sha(&[b"<i>cap</i>", &png]));
        assert_eq!(photo_line["bytes"], png.len() + 10);
        assert_eq!(lines[9]["payload_sha256"], sha(&[b"hello world"]));
        assert_eq!(lines[11]["payload_sha256"], sha(&[&[9u8; 1000]]));
        assert_eq!(lines[11]["bytes"], 1000);
        assert_eq!(lines[12]["error"], "file is too big");
        assert_eq!(lines[13]["outcome"], "error");
        assert_eq!(lines[15]["error"], "message not found");
        let raw = std::fs::read_to_string(&path).unwrap();
        assert!(!raw.contains(SECRET), "the token leaked into the audit");
        assert!(!raw.contains("<b>hi</b>"), "texts are never written");
    }

    #[tokio::test]
    async fn network_errors_name_no_token() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        // Nothing listens on port 1.
        let tg = Tg::new(TOKEN, "http://127.0.0.1:1")
            .unwrap()
            .with_audit(Audit::open(&path).unwrap());
        let sent = tg.send(surface(5), "hi", false, None, None).await;
        let Err(TgError::Network(why)) = sent else {
            panic!("{sent:?}")
        };
        assert!(!why.contains(SECRET), "{why}");
        let got = tg.download("documents/file_1.bin", 10).await;
        let Err(TgError::Network(why)) = got else {
            panic!("{got:?}")
        };
        assert!(!why.contains(SECRET), "{why}");
        let lines = audit::read_all(&path).unwrap();
        assert_eq!(lines.len(), 2);
        assert!(lines.iter().all(|l| l["outcome"] == "error"));
        let raw = std::fs::read_to_string(&path).unwrap();
        assert!(!raw.contains(SECRET), "the token leaked into the audit");
    }

    #[tokio::test]
    async fn oversized_files_are_refused() {
        let fake = FakeTelegram::start(TOKEN).await.unwrap();
        let user = fake.create_user("Ann");
        let chat = fake.create_private_chat(&user, false);
        let tg = Tg::new(TOKEN, &fake.api_url()).unwrap();
        // Over the photo limit: refused before any upload.
        let big = Upload {
            kind: MediaKind::Photo,
            file_name: "big.png".into(),
            bytes: Arc::new(vec![0; (MAX_PHOTO_UPLOAD + 1) as usize]),
        };
        let r = tg
            .send_media(surface(chat), &big, "", false, None, None)
            .await;
        assert!(matches!(r, Err(TgError::FileTooBig)), "{r:?}");
        assert!(fake.calls_to("sendPhoto").is_empty());
        // Over getFile's 20 MB: Telegram's "file is too big".
        let posted = fake
            .send_document(
                &user,
                chat,
                None,
                "huge.bin",
                "application/octet-stream",
                vec![1u8; (MAX_DOWNLOAD + 1) as usize],
                None,
            )
            .unwrap();
        let r = tg.file_info(&posted.file_id.unwrap()).await;
        assert!(matches!(r, Err(TgError::FileTooBig)), "{r:?}");
    }

    /// Needs sendMessageDraft and editMessageMedia in the fake.
    #[tokio::test]
    async fn drafts_and_media_edits() {
        let fake = FakeTelegram::start(TOKEN).await.unwrap();
        let user = fake.create_user("Ann");
        let chat = fake.create_private_chat(&user, false);
        let group = fake.create_group("team");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let tg = Tg::new(TOKEN, &fake.api_url())
            .unwrap()
            .with_audit(Audit::open(&path).unwrap());

        tg.send_draft(surface(chat), 7, "<b>think</b>ing")
            .await
            .unwrap();
        let calls = fake.calls_to("sendMessageDraft");
        assert_eq!(calls.len(), 1);
        let p = &calls[0].params;
        assert_eq!(p["draft_id"].to_string().trim_matches('"'), "7");
        assert_eq!(p["parse_mode"], "HTML");
        assert_eq!(p["text"], "<b>think</b>ing");
        assert!(p.get("message_thread_id").is_none_or(Value::is_null));
        // Drafts exist in private chats only.
        assert!(tg.send_draft(surface(group), 7, "x").await.is_err());

        let photo = |rgb| Upload {
            kind: MediaKind::Photo,
            file_name: "p.png".into(),
            bytes: Arc::new(sample_png(4, 4, rgb)),
        };
        let v1 = photo([1, 1, 1]);
        let id = tg
            .send_media(surface(chat), &v1, "v1", false, None, None)
            .await
            .unwrap();
        let v2 = photo([2, 2, 2]);
        let kb: Keyboard = vec![vec![("ok".into(), "ok".into())]];
        tg.edit_media(chat, id, &v2, "<b>v2</b>", true, Some(&kb))
            .await
            .unwrap();
        let m = fake.bot_message(chat, i64::from(id)).unwrap();
        assert_eq!(m.current.text, "v2");
        assert_eq!(
            m.media.as_ref().map(|f| f.bytes.to_vec()),
            Some(v2.bytes.to_vec())
        );

        let lines = audit::read_all(&path).unwrap();
        let methods: Vec<&str> = lines
            .iter()
            .map(|l| l["method"].as_str().unwrap())
            .collect();
        assert_eq!(
            methods,
            [
                "sendMessageDraft",
                "sendMessageDraft",
                "sendPhoto",
                "editMessageMedia"
            ]
        );
        assert_eq!(lines[0]["payload_sha256"], sha(&[b"<b>think</b>ing"]));
        assert_eq!(lines[1]["outcome"], "error");
        assert_eq!(lines[3]["message_id"], id);
        assert_eq!(lines[3]["payload_sha256"], sha(&[b"<b>v2</b>", &v2.bytes]));
    }
}
