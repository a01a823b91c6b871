//! Where alerts go: the allowed users' private chats by default, or one ops topic chosen with
//! `/health alerts here` (kept in the store, so it survives restarts). A team that runs the
//! fleet together reads alerts in one place, and a topic keeps their history.
//!
//! An ops topic that is gone (deleted, the bot removed from its group) is forgotten and that
//! alert, like every later one, goes to the private chats; one that refuses an alert for another
//! reason (closed, a right taken away) keeps being chosen, and that alert goes in private — an
//! alert is never lost to a stale setting.

use std::sync::Arc;

use crate::{
    app::App,
    store::Surface,
    telegram::{
        api::{Keyboard, TgError},
        outbox::{Class, Send},
        render::escape_html,
    },
};

/// The store keeps center-wide settings as settings of chat 0 (no Telegram chat has id 0).
const CENTER_WIDE: i64 = 0;
/// The setting that names the ops topic: `<chat id>:<thread id>`.
const KEY: &str = "alerts.topic";

/// The ops topic alerts go to, if one was chosen.
pub(crate) fn ops_topic(app: &App) -> Option<Surface> {
    let value = app.store.chat_setting(CENTER_WIDE, KEY).ok().flatten()?;
    parse(&value)
}

fn parse(value: &str) -> Option<Surface> {
    let (chat, thread) = value.split_once(':')?;
    Some(Surface {
        chat_id: chat.parse().ok()?,
        thread_id: thread.parse().ok()?,
    })
}

/// `/health alerts [here|private]`: shows or moves where alerts go; returns the answer.
pub(crate) fn command(app: &App, surface: Surface, arg: &str) -> String {
    let set = |value: Option<String>| {
        app.store
            .set_chat_setting(CENTER_WIDE, KEY, value.as_deref())
            .map_err(|err| tracing::error!(error = %err, "saving where alerts go failed"))
    };
    match arg {
        "" => match ops_topic(app) {
            Some(s) if s == surface => "Alerts go to this topic.".into(),
            Some(_) => "Alerts go to another topic (send /health alerts here to move them).".into(),
            None => {
                "Alerts go to the allowed users in private (/health alerts here sends them here)."
                    .into()
            }
        },
        "here" if surface.chat_id > 0 => {
            "Alerts already come to each allowed user in private; send this in a group topic the team reads."
                .into()
        }
        "here" if !app.cfg.alerts.enabled => {
            "Alerts are off ([alerts] enabled = false in the center's config).".into()
        }
        "here" => match set(Some(format!("{}:{}", surface.chat_id, surface.thread_id))) {
            Ok(()) => "✅ Alerts about the machines now go to this topic.".into(),
            Err(()) => crate::store::STATE_UNREADABLE.into(),
        },
        "private" => match set(None) {
            Ok(()) => "✅ Alerts now go to the allowed users in private.".into(),
            Err(()) => crate::store::STATE_UNREADABLE.into(),
        },
        _ => "Usage: /health alerts [here|private]".into(),
    }
}

/// Sends an alert where alerts go (not awaited).
pub(crate) fn send(app: &Arc<App>, text: &str) {
    tracing::info!(alert = %text, "health alert");
    send_with_keyboard(app, text, None);
}

/// Sends a message where alerts go, with buttons (not awaited).
pub(crate) fn send_with_keyboard(app: &Arc<App>, text: &str, keyboard: Option<Keyboard>) {
    let Some(topic) = ops_topic(app) else {
        app.tell_owners_with(text, keyboard.as_ref());
        return;
    };
    let sent = app.outbox.send(Send {
        surface: topic,
        html: escape_html(text),
        plain: text.to_owned(),
        keyboard: keyboard.clone(),
        reply_to: None,
        class: Class::Final,
    });
    let app = app.clone();
    let text = text.to_owned();
    tokio::spawn(async move {
        match sent.await {
            Ok(Ok(_)) => {}
            Ok(Err(err)) if topic_gone(&err) => {
                tracing::warn!(error = %err, "the alerts topic is gone; back to private chats");
                if ops_topic(&app) == Some(topic)
                    && let Err(err) = app.store.set_chat_setting(CENTER_WIDE, KEY, None)
                {
                    tracing::error!(error = %err, "forgetting the alerts topic failed");
                }
                app.tell_owners_with(
                    &format!(
                        "{text}\n\n(The alerts topic is gone, so alerts go to you in private again.)"
                    ),
                    keyboard.as_ref(),
                );
            }
            // Refused for another reason (a closed topic, a right taken away): this alert
            // goes in private, and the topic stays chosen.
            Ok(Err(err)) => {
                tracing::warn!(error = %err, "the alerts topic refused an alert");
                app.tell_owners_with(
                    &format!("{text}\n\n(The alerts topic refused this message: {err}.)"),
                    keyboard.as_ref(),
                );
            }
            // The outbox stopped: the center is shutting down.
            Err(_) => {}
        }
    });
}

/// Whether a refusal means the ops topic (or its group, for the bot) is gone for good.
fn topic_gone(err: &TgError) -> bool {
    match err {
        TgError::ThreadNotFound => true,
        TgError::Other(why) => {
            let why = why.to_lowercase();
            [
                "chat not found",
                "kicked",
                "not a member",
                "group chat was deleted",
            ]
            .iter()
            .any(|gone| why.contains(gone))
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_setting_names_a_topic() {
        assert_eq!(
            parse("-1001:42"),
            Some(Surface {
                chat_id: -1001,
                thread_id: 42
            })
        );
        assert_eq!(parse("-1001"), None);
        assert_eq!(parse("x:1"), None);
    }

    #[test]
    fn only_a_topic_or_group_that_is_gone_is_forgotten() {
        assert!(topic_gone(&TgError::ThreadNotFound));
        assert!(topic_gone(&TgError::Other(
            "Forbidden: bot was kicked from the supergroup chat".into()
        )));
        assert!(topic_gone(&TgError::Other(
            "Bad Request: chat not found".into()
        )));
        assert!(!topic_gone(&TgError::Other(
            "Bad Request: TOPIC_CLOSED".into()
        )));
        assert!(!topic_gone(&TgError::Other(
            "Bad Request: not enough rights to send text messages to the chat".into()
        )));
    }
}
