//! The Bot API calls the center makes, on teloxide's client, with errors sorted into the cases
//! the center handles by name. Error texts are scrubbed of the bot token (HTTP client errors
//! quote the request URL, which contains it).

use std::time::Duration;

use teloxide::{
    payloads::{
        AnswerCallbackQuerySetters, EditMessageTextSetters, GetUpdatesSetters,
        SendChatActionSetters, SendMessageSetters,
    },
    prelude::*,
    types::{
        BotCommand, CallbackQueryId, ChatAction, InlineKeyboardButton, InlineKeyboardMarkup,
        MessageId, ParseMode, ReplyParameters, ThreadId, Update,
    },
};

use crate::store::Surface;

/// Rows of `(label, callback data)` buttons.
pub type Keyboard = Vec<Vec<(String, String)>>;

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
    /// Could not reach the Bot API (nothing was delivered, or we cannot know).
    #[error("network: {0}")]
    Network(String),
    /// Anything else Telegram refused.
    #[error("{0}")]
    Other(String),
}

/// The client.
#[derive(Clone)]
pub struct Tg {
    bot: Bot,
    token: String,
}

impl Tg {
    /// A client for `token` on `api_url`.
    pub fn new(token: &str, api_url: &str) -> Result<Self, TgError> {
        let url = reqwest_url(api_url)?;
        Ok(Self {
            bot: Bot::new(token).set_api_url(url),
            token: token.to_owned(),
        })
    }

    fn classify(&self, err: &teloxide::RequestError) -> TgError {
        if let teloxide::RequestError::RetryAfter(secs) = err {
            return TgError::RetryAfter(secs.duration().max(Duration::from_millis(500)));
        }
        let text = err.to_string().replace(&self.token, "<token>");
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
        } else if matches!(
            err,
            teloxide::RequestError::Network(_) | teloxide::RequestError::Io(_)
        ) {
            TgError::Network(text)
        } else {
            TgError::Other(text)
        }
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
        if surface.thread_id > 1 {
            req = req.message_thread_id(ThreadId(MessageId(surface.thread_id)));
        }
        if let Some(k) = keyboard {
            req = req.reply_markup(markup(k));
        }
        if let Some(id) = reply_to {
            req = req.reply_parameters(
                ReplyParameters::new(MessageId(id)).allow_sending_without_reply(),
            );
        }
        req.await.map(|m| m.id.0).map_err(|e| self.classify(&e))
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
        match req.await {
            Ok(_) => Ok(()),
            Err(e) => match self.classify(&e) {
                TgError::NotModified => Ok(()),
                other => Err(other),
            },
        }
    }

    /// Deletes a message.
    pub async fn delete(&self, chat_id: i64, message_id: i32) -> Result<(), TgError> {
        self.bot
            .delete_message(ChatId(chat_id), MessageId(message_id))
            .await
            .map(drop)
            .map_err(|e| self.classify(&e))
    }

    /// Answers a button press (a toast when `text` is given).
    pub async fn answer_callback(&self, id: &str, text: Option<&str>) -> Result<(), TgError> {
        let mut req = self
            .bot
            .answer_callback_query(CallbackQueryId(id.to_owned()));
        if let Some(t) = text {
            req = req.text(t.chars().take(200).collect::<String>());
        }
        req.await.map(drop).map_err(|e| self.classify(&e))
    }

    /// Shows "typing…" in a topic for about 5 s.
    pub async fn typing(&self, surface: Surface) -> Result<(), TgError> {
        let mut req = self
            .bot
            .send_chat_action(ChatId(surface.chat_id), ChatAction::Typing);
        if surface.thread_id > 1 {
            req = req.message_thread_id(ThreadId(MessageId(surface.thread_id)));
        }
        req.await.map(drop).map_err(|e| self.classify(&e))
    }

    /// Sets the command menu.
    pub async fn set_commands(&self, commands: &[(&str, &str)]) -> Result<(), TgError> {
        let list = commands
            .iter()
            .map(|(c, d)| BotCommand::new(*c, *d))
            .collect::<Vec<_>>();
        self.bot
            .set_my_commands(list)
            .await
            .map(drop)
            .map_err(|e| self.classify(&e))
    }

    /// One long poll.
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
