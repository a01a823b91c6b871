//! What the fake records and tests observe: users, topics, the bot's messages with their edit
//! history, chat actions, callback answers and the API call log. Plain data with public fields;
//! `model` keeps them, the harness hands out clones.

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
}

/// Kind of media the bot sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediaKind {
    /// sendPhoto.
    Photo,
    /// sendDocument.
    Document,
}

/// A file the bot uploaded with a message.
#[derive(Debug, Clone, PartialEq)]
pub struct Media {
    /// Photo or document.
    pub kind: MediaKind,
    /// The `file_id` Telegram assigned.
    pub file_id: String,
    /// File name from the multipart part, if any.
    pub file_name: Option<String>,
    /// Content type from the multipart part, if any.
    pub mime_type: Option<String>,
    /// The uploaded bytes.
    pub bytes: Bytes,
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
    /// Earlier contents, oldest first (one entry per successful edit).
    pub history: Vec<Revision>,
    /// Attached photo or document.
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

/// One call the bot made, and how it ended.
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
}
