//! What the fake records and tests observe: users, topics, the bot's messages with their edit
//! history (text and media), message drafts, chat actions, callback answers and the API call log.
//! Plain data with public fields; `model` keeps them, the harness hands out clones.

use std::time::Duration;

use bytes::Bytes;
use serde_json::{Value, json};

use super::html::Entity;
use super::params::ApiError;

/// A Telegram user (a person, never the bot).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// User id; also the id of the private chat with the bot.
    pub id: i64,
    /// Display name.
    pub first_name: String,
    /// `@username` without the `@`.
    pub username: Option<String>,
}

impl User {
    /// The Bot API `User` object.
    pub fn to_json(&self) -> Value {
        json!({
            "id": self.id,
            "is_bot": false,
            "first_name": self.first_name,
            "username": self.username,
            "language_code": "en",
        })
    }
}

/// What kind of chat a test created.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChatKind {
    /// A supergroup with topics (`is_forum: true`).
    Forum,
    /// A basic group: no topics; the real server ignores `message_thread_id` there.
    Group,
    /// A private chat with a user, without topics.
    Private,
    /// A private chat with topics (the bot's threaded mode).
    PrivateWithTopics,
}

/// A forum topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topic {
    /// `message_thread_id`, equal to the id of the creation service message.
    pub thread_id: i64,
    /// Current name.
    pub name: String,
    /// Icon colour (RGB).
    pub icon_color: u32,
    /// Closed topics accept no messages from ordinary users.
    pub closed: bool,
    /// Deleted topics make sends fail with `message thread not found`.
    pub deleted: bool,
    /// Whether the bot created it (via createForumTopic).
    pub by_bot: bool,
}

/// One version of a bot message's content.
#[derive(Debug, Clone, PartialEq)]
pub struct Revision {
    /// Text (or caption) as the bot sent it, e.g. with HTML tags.
    pub source: String,
    /// `parse_mode` as sent.
    pub parse_mode: Option<String>,
    /// Text (or caption) as a user sees it, entities stripped.
    pub text: String,
    /// Entities after parsing.
    pub entities: Vec<Entity>,
    /// `reply_markup` as stored by Telegram (`None` when the message has none).
    pub reply_markup: Option<Value>,
    /// The attached file in this version (`None` for text). For [`BotMessage::current`] this is
    /// always equal to [`BotMessage::media`]; editMessageMedia changes it.
    pub media: Option<Media>,
}

/// Kind of media the bot sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediaKind {
    /// sendPhoto / InputMediaPhoto.
    Photo,
    /// sendDocument / InputMediaDocument.
    Document,
    /// sendVideo / InputMediaVideo.
    Video,
    /// sendAudio / InputMediaAudio.
    Audio,
    /// sendAnimation / InputMediaAnimation (the message carries `animation` and `document`).
    Animation,
}

impl MediaKind {
    /// The message field and `InputMedia` type: `photo`, `document`, `video`, `audio`,
    /// `animation`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Photo => "photo",
            Self::Document => "document",
            Self::Video => "video",
            Self::Audio => "audio",
            Self::Animation => "animation",
        }
    }
}

/// One size of a photo, or a thumbnail: a downloadable file of its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PhotoSize {
    /// Its `file_id` (getFile works on it).
    pub file_id: String,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
}

/// A file the bot sent with a message (uploaded, or re-sent by `file_id`).
#[derive(Debug, Clone, PartialEq)]
pub struct Media {
    /// Photo, document, video, audio or animation.
    pub kind: MediaKind,
    /// The `file_id` Telegram assigned (for photos: the largest size).
    pub file_id: String,
    /// File name from the multipart part (or of the re-sent file), if any.
    pub file_name: Option<String>,
    /// Content type from the multipart part (or of the re-sent file), if any.
    pub mime_type: Option<String>,
    /// The file's bytes.
    pub bytes: Bytes,
    /// Photos: the smaller sizes Telegram generated, smallest first (the full size is `file_id`).
    pub sizes: Vec<PhotoSize>,
    /// The thumbnail the bot uploaded with a video, audio, animation or document, if Telegram kept
    /// it (a JPEG, PNG or GIF of at most 320×320 and 200 kB; anything else is dropped silently).
    pub thumbnail: Option<PhotoSize>,
    /// Photos: the full size's width; videos and animations: `width` as sent (0 when not given).
    pub width: Option<u32>,
    /// Photos: the full size's height; videos and animations: `height` as sent (0 when not given).
    pub height: Option<u32>,
    /// `duration` in seconds as sent (videos, animations and audio; 0 when not given).
    pub duration: Option<u32>,
    /// Audio `performer`.
    pub performer: Option<String>,
    /// Audio `title`.
    pub title: Option<String>,
}

/// An inline keyboard button of a bot message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Button {
    /// Label.
    pub text: String,
    /// `callback_data`, for callback buttons.
    pub callback_data: Option<String>,
    /// `url`, for link buttons.
    pub url: Option<String>,
}

/// A message the bot sent, with its current content and its edit history.
#[derive(Debug, Clone, PartialEq)]
pub struct BotMessage {
    /// Chat it was sent to.
    pub chat_id: i64,
    /// Its id in that chat.
    pub message_id: i64,
    /// Topic, if sent into one.
    pub thread_id: Option<i64>,
    /// Unix time of sending.
    pub date: i64,
    /// Unix time of the last edit.
    pub edit_date: Option<i64>,
    /// Current content.
    pub current: Revision,
    /// Earlier contents, oldest first (one entry per successful edit, media edits included).
    pub history: Vec<Revision>,
    /// Attached file now (always equal to `current.media`).
    pub media: Option<Media>,
    /// `reply_parameters.message_id` / `reply_to_message_id`.
    pub reply_to: Option<i64>,
    /// Deleted by deleteMessage.
    pub deleted: bool,
}

impl BotMessage {
    /// Current text (or caption) as a user sees it.
    pub fn text(&self) -> &str {
        &self.current.text
    }

    /// Current caption, for a media message (`Some("")` when it has none); `None` for text.
    pub fn caption(&self) -> Option<&str> {
        self.media.as_ref().map(|_| self.current.text.as_str())
    }

    /// Kind of the attached file now, if any.
    pub fn media_kind(&self) -> Option<MediaKind> {
        self.media.as_ref().map(|m| m.kind)
    }

    /// Every version of the attached file, oldest first, the current one last (`None` where the
    /// message was text).
    pub fn media_history(&self) -> Vec<Option<&Media>> {
        self.history
            .iter()
            .chain(std::iter::once(&self.current))
            .map(|r| r.media.as_ref())
            .collect()
    }

    /// The inline keyboard's buttons, row by row flattened.
    pub fn buttons(&self) -> Vec<Button> {
        let rows = self
            .current
            .reply_markup
            .as_ref()
            .and_then(|m| m.get("inline_keyboard"))
            .and_then(Value::as_array);
        rows.into_iter()
            .flatten()
            .filter_map(Value::as_array)
            .flatten()
            .map(|b| Button {
                text: b["text"].as_str().unwrap_or_default().to_owned(),
                callback_data: b["callback_data"].as_str().map(str::to_owned),
                url: b["url"].as_str().map(str::to_owned),
            })
            .collect()
    }
}

/// A sendChatAction call that succeeded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatAction {
    /// Chat.
    pub chat_id: i64,
    /// Topic, if any.
    pub thread_id: Option<i64>,
    /// `typing`, `upload_document`, ...
    pub action: String,
    /// Time since the server started.
    pub at: Duration,
}

/// A successful answerCallbackQuery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallbackAnswer {
    /// The query answered.
    pub query_id: String,
    /// Notification text.
    pub text: Option<String>,
    /// Alert instead of a toast.
    pub show_alert: bool,
    /// URL to open.
    pub url: Option<String>,
}

/// A sendMessageDraft call that succeeded: the ephemeral preview a user saw.
#[derive(Debug, Clone, PartialEq)]
pub struct Draft {
    /// Private chat.
    pub chat_id: i64,
    /// Topic, if any.
    pub thread_id: Option<i64>,
    /// `draft_id` (non-zero; updates with the same id animate into each other).
    pub draft_id: i64,
    /// Text as a user sees it, entities stripped (empty: the "Thinking..." placeholder).
    pub text: String,
    /// Text as the bot sent it, e.g. with HTML tags.
    pub source: String,
    /// `parse_mode` as sent.
    pub parse_mode: Option<String>,
    /// Entities after parsing.
    pub entities: Vec<Entity>,
    /// `can_stop` as sent.
    pub can_stop: bool,
    /// Time since the server started.
    pub at: Duration,
}

/// One call the bot made (every method, every outcome, file downloads as `file/<path>`), and how
/// it ended.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiCall {
    /// Order of completion, from 1.
    pub seq: u64,
    /// Method name as called (case preserved).
    pub method: String,
    /// Parameters as received; uploads are summarised as `{"upload":{"file_name","size"}}`.
    pub params: Value,
    /// `result` or the error answered.
    pub outcome: Result<Value, ApiError>,
    /// Time since the server started, at completion.
    pub at: Duration,
    /// `chat_id` parameter, when it is an integer.
    pub chat_id: Option<i64>,
    /// The message the call made or named: the result's `message_id` if the result is a message,
    /// else the `message_id` parameter (e.g. deleteMessage, a failed edit).
    pub message_id: Option<i64>,
}

impl ApiCall {
    /// Whether the call succeeded.
    pub fn is_ok(&self) -> bool {
        self.outcome.is_ok()
    }

    /// The error answered, if any.
    pub fn error(&self) -> Option<&ApiError> {
        self.outcome.as_ref().err()
    }

    /// `error_code` of a failed call.
    pub fn error_code(&self) -> Option<u16> {
        self.error().map(|e| e.code)
    }

    /// `description` of a failed call.
    pub fn description(&self) -> Option<&str> {
        self.error().map(|e| e.description.as_str())
    }

    /// `parameters.retry_after` of a 429.
    pub fn retry_after(&self) -> Option<u32> {
        self.error().and_then(|e| e.retry_after)
    }
}
