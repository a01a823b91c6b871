//! createForumTopic, editForumTopic, closeForumTopic, reopenForumTopic, deleteForumTopic.
//!
//! Forum supergroups and private chats with topics accept topics; close/reopen are
//! supergroup-only (tdlib: "the chat is not a supergroup forum"). Names are cleaned like tdlib's
//! `clean_name`: trimmed, cut to 128 characters, and refused when empty. Deleting a topic deletes its
//! messages; later sends to it fail with `message thread not found`, the only way a bot learns
//! of the deletion.

use serde_json::{Value, json};

use super::Res;
use crate::fake_telegram::model::{ChatKind, Msg, State, Topic};
use crate::fake_telegram::params::{ApiError, Params};

/// Topic icon colours the Bot API accepts.
pub(crate) const ICON_COLORS: [u32; 6] =
    [0x6FB9F0, 0xFFD67E, 0xCB86DB, 0x8EEE98, 0xFF93B2, 0xFB6F5F];

/// tdlib's `clean_name(name, 128)`; `None` if nothing is left.
pub(crate) fn clean_name(name: &str) -> Option<String> {
    let cleaned: String = name
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let cut: String = cleaned.trim().chars().take(128).collect();
    let cut = cut.trim_end().to_owned();
    (!cut.is_empty()).then_some(cut)
}

/// Checks that `chat_id` can hold topics and returns its kind.
fn forum(st: &State, chat_id: i64, supergroup_only: bool) -> Res<ChatKind> {
    let chat = st.chat(chat_id)?;
    match chat.kind {
        ChatKind::Forum => Ok(chat.kind),
        ChatKind::PrivateWithTopics if !supergroup_only => Ok(chat.kind),
        ChatKind::PrivateWithTopics => Err(ApiError::bad("the chat is not a supergroup forum")),
        ChatKind::Group | ChatKind::Private => Err(ApiError::bad("the chat is not a forum")),
    }
}

/// The live topic `message_thread_id` names.
fn topic<'a>(st: &'a mut State, chat_id: i64, p: &Params) -> Res<(&'a mut Topic, bool)> {
    let thread = p.thread_id()?;
    let chat = st.chat_mut(chat_id)?;
    let can_manage = chat.kind != ChatKind::Forum || chat.bot_can_manage_topics;
    match thread.and_then(|t| chat.topics.get_mut(&t)) {
        Some(t) if !t.deleted => Ok((t, can_manage)),
        _ => Err(ApiError::bad("message thread not found")),
    }
}

pub(super) fn create(st: &mut State, p: &Params) -> Res<Value> {
    p.check_known(
        "createForumTopic",
        &["chat_id", "name", "icon_color", "icon_custom_emoji_id"],
    )?;
    let chat_id = p.chat_id()?;
    let kind = forum(st, chat_id, false)?;
    if kind == ChatKind::Forum && !st.chat(chat_id)?.bot_can_manage_topics {
        return Err(ApiError::bad("not enough rights to create a topic"));
    }
    let name = clean_name(&p.str("name").unwrap_or_default())
        .ok_or_else(|| ApiError::bad("name must be non-empty"))?;
    let icon_color = match p.int("icon_color")? {
        None => ICON_COLORS[0],
        Some(c) if ICON_COLORS.iter().any(|&a| i64::from(a) == c) => c as u32,
        Some(_) => return Err(ApiError::bad("TOPIC_ICON_COLOR_INVALID")),
    };
    let from = st.bot_json();
    let created = json!({ "name": name, "icon_color": icon_color });
    let msg = st.post_service(chat_id, &from, None, "forum_topic_created", created)?;
    let thread_id = msg["message_id"].as_i64().unwrap_or_default();
    st.chat_mut(chat_id)?.topics.insert(
        thread_id,
        Topic {
            thread_id,
            name: name.clone(),
            icon_color,
            closed: false,
            deleted: false,
            by_bot: true,
        },
    );
    Ok(json!({ "message_thread_id": thread_id, "name": name, "icon_color": icon_color }))
}

pub(super) fn edit(st: &mut State, p: &Params) -> Res<Value> {
    p.check_known(
        "editForumTopic",
        &[
            "chat_id",
            "message_thread_id",
            "name",
            "icon_custom_emoji_id",
        ],
    )?;
    let chat_id = p.chat_id()?;
    forum(st, chat_id, false)?;
    let raw = p.str("name");
    let name = match raw.as_deref() {
        None => None,
        Some(n) => Some(clean_name(n).ok_or_else(|| ApiError::bad("name must be non-empty"))?),
    };
    let (topic, can_manage) = topic(st, chat_id, p)?;
    if !can_manage && !topic.by_bot {
        return Err(ApiError::bad("not enough rights to edit the topic"));
    }
    let Some(name) = name else {
        return Ok(json!(true));
    };
    if topic.name == name {
        return Err(ApiError::bad("TOPIC_NOT_MODIFIED"));
    }
    topic.name = name.clone();
    let thread = topic.thread_id;
    let from = st.bot_json();
    st.post_service(
        chat_id,
        &from,
        Some(thread),
        "forum_topic_edited",
        json!({ "name": name }),
    )?;
    Ok(json!(true))
}

pub(super) fn set_closed(st: &mut State, p: &Params, method: &str, closed: bool) -> Res<Value> {
    p.check_known(method, &["chat_id", "message_thread_id"])?;
    let chat_id = p.chat_id()?;
    forum(st, chat_id, true)?;
    let (topic, can_manage) = topic(st, chat_id, p)?;
    if !can_manage && !topic.by_bot {
        return Err(ApiError::bad("not enough rights to close the topic"));
    }
    if topic.closed == closed {
        return Err(ApiError::bad("TOPIC_NOT_MODIFIED"));
    }
    topic.closed = closed;
    let thread = topic.thread_id;
    let field = if closed {
        "forum_topic_closed"
    } else {
        "forum_topic_reopened"
    };
    let from = st.bot_json();
    st.post_service(chat_id, &from, Some(thread), field, json!({}))?;
    Ok(json!(true))
}

pub(super) fn delete(st: &mut State, p: &Params) -> Res<Value> {
    p.check_known("deleteForumTopic", &["chat_id", "message_thread_id"])?;
    let chat_id = p.chat_id()?;
    forum(st, chat_id, false)?;
    let (topic, can_manage) = topic(st, chat_id, p)?;
    if !can_manage {
        return Err(ApiError::bad("not enough rights to delete the topic"));
    }
    topic.deleted = true;
    let thread = topic.thread_id;
    delete_topic_messages(st, chat_id, thread);
    Ok(json!(true))
}

/// Marks every message of a deleted topic deleted, as Telegram does.
pub(crate) fn delete_topic_messages(st: &mut State, chat_id: i64, thread: i64) {
    let Some(chat) = st.chats.get_mut(&chat_id) else {
        return;
    };
    for msg in chat.messages.values_mut() {
        match msg {
            Msg::Bot(ix) => {
                let m = &mut st.bot_messages[*ix];
                if m.thread_id == Some(thread) {
                    m.deleted = true;
                }
            }
            Msg::Other { json, deleted } => {
                if json["message_thread_id"].as_i64() == Some(thread) {
                    *deleted = true;
                }
            }
        }
    }
}
