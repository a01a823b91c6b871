//! sendMessage, sendMessageDraft, editMessageText, editMessageReplyMarkup, deleteMessage, and the
//! text and keyboard validation that the media methods share: parse modes, explicit entities,
//! limits measured after parsing in UTF-16 units, inline keyboards (`callback_data` 1–64 bytes),
//! targets (chat, topic, reply) and the "message is not modified" rule.

use serde_json::{Map, Value, json};

use super::{Res, admit, no_business};
use crate::fake_telegram::html::{self, Entity, utf16_len};
use crate::fake_telegram::model::{
    BotMessage, ChatKind, Draft, Media, Msg, Revision, State, unix_now,
};
use crate::fake_telegram::params::{ApiError, Params};

/// Parameters every send method has.
pub(super) const SEND_COMMON: &[&str] = &[
    "business_connection_id",
    "chat_id",
    "message_thread_id",
    "direct_messages_topic_id",
    "disable_notification",
    "protect_content",
    "allow_paid_broadcast",
    "message_effect_id",
    "suggested_post_parameters",
    "reply_parameters",
    "reply_markup",
    "reply_to_message_id",
    "allow_sending_without_reply",
];

pub(super) const MAX_TEXT: usize = 4096;
pub(super) const MAX_CAPTION: usize = 1024;
pub(super) const MAX_CALLBACK_DATA: usize = 64;

const ENTITY_TYPES: &[&str] = &[
    "mention",
    "hashtag",
    "cashtag",
    "bot_command",
    "url",
    "email",
    "phone_number",
    "bold",
    "italic",
    "underline",
    "strikethrough",
    "spoiler",
    "blockquote",
    "expandable_blockquote",
    "code",
    "pre",
    "text_link",
    "text_mention",
    "custom_emoji",
    "date_time",
];

/// Parses `source` with the request's `parse_mode`, or takes `entities_key` as explicit entities.
pub(super) fn format(p: &Params, source: String, entities_key: &str) -> Res<Revision> {
    let parse_mode = p.str("parse_mode");
    let plain = parse_mode
        .as_deref()
        .is_none_or(|m| m.eq_ignore_ascii_case("none"));
    let entities = if plain {
        p.json(entities_key, "entities")?
    } else {
        None
    };
    format_parts(source, parse_mode, entities)
}

/// Parses `source` with `parse_mode`, or takes `entities` (a JSON array) as explicit entities.
pub(super) fn format_parts(
    source: String,
    parse_mode: Option<String>,
    entities: Option<Value>,
) -> Res<Revision> {
    let parse_mode = parse_mode.filter(|m| !m.is_empty());
    let mode = parse_mode.as_deref().map(str::to_ascii_lowercase);
    let (text, entities) = match mode.as_deref() {
        // The real server does not parse an empty text (an empty caption or draft).
        _ if source.is_empty() => (String::new(), Vec::new()),
        None | Some("none") => (source.clone(), explicit_entities(entities, &source)?),
        Some("html") => {
            let parsed = html::parse(&source)
                .map_err(|e| ApiError::bad(format!("can't parse entities: {e}")))?;
            (parsed.text, parsed.entities)
        }
        Some(m @ ("markdown" | "markdownv2")) => {
            return Err(ApiError::bad(format!(
                "fake_telegram: parse_mode {m} is not modelled; use HTML"
            )));
        }
        Some(_) => return Err(ApiError::bad("unsupported parse_mode")),
    };
    Ok(Revision {
        source,
        parse_mode,
        text,
        entities,
        reply_markup: None,
        media: None,
    })
}

fn explicit_entities(entities: Option<Value>, text: &str) -> Res<Vec<Entity>> {
    let Some(Value::Array(list)) = entities else {
        return Ok(Vec::new());
    };
    let len = utf16_len(text);
    let mut out = Vec::new();
    for e in &list {
        let bad = |what: &str| ApiError::bad(format!("can't parse MessageEntity: {what}"));
        let kind = e["type"]
            .as_str()
            .ok_or_else(|| bad("Field \"type\" must be of type String"))?;
        if !ENTITY_TYPES.contains(&kind) {
            return Err(bad("Unsupported type specified"));
        }
        let offset = e["offset"]
            .as_u64()
            .ok_or_else(|| bad("Field \"offset\" must be a valid Number"))?;
        let length = e["length"]
            .as_u64()
            .ok_or_else(|| bad("Field \"length\" must be a valid Number"))?;
        let (offset, length) = (offset as usize, length as usize);
        if length == 0 || offset + length > len {
            return Err(ApiError::bad(format!(
                "fake_telegram: entity {kind} at {offset}+{length} lies outside the text of {len} UTF-16 units"
            )));
        }
        out.push(Entity {
            kind: kind.to_owned(),
            offset,
            length,
            url: e["url"].as_str().map(str::to_owned),
            language: e["language"].as_str().map(str::to_owned),
            custom_emoji_id: e["custom_emoji_id"].as_str().map(str::to_owned),
        });
    }
    Ok(out)
}

/// Validates `reply_markup` and returns it in the canonical form Telegram echoes back
/// (`None` for no keyboard, including an empty inline keyboard).
pub(super) fn reply_markup(p: &Params, inline_only: bool) -> Res<Option<Value>> {
    let Some(v) = p.json("reply_markup", "reply keyboard markup")? else {
        return Ok(None);
    };
    let Some(obj) = v.as_object() else {
        return Err(ApiError::bad("object expected as reply markup"));
    };
    if let Some(kb) = obj.get("inline_keyboard") {
        let rows_err = || {
            ApiError::bad(
                "Field \"inline_keyboard\" of the InlineKeyboardMarkup must be an Array of Arrays",
            )
        };
        let mut rows = Vec::new();
        for row in kb.as_array().ok_or_else(rows_err)? {
            let mut out = Vec::new();
            for b in row.as_array().ok_or_else(rows_err)? {
                out.push(inline_button(b)?);
            }
            if !out.is_empty() {
                rows.push(Value::Array(out));
            }
        }
        return Ok((!rows.is_empty()).then(|| json!({ "inline_keyboard": rows })));
    }
    if inline_only {
        return Err(ApiError::bad("inline keyboard expected"));
    }
    let is_keyboard = ["keyboard", "remove_keyboard", "force_reply"]
        .iter()
        .any(|k| obj.contains_key(*k));
    Ok(is_keyboard.then_some(v))
}

fn inline_button(b: &Value) -> Res<Value> {
    let bad = |what: &str| ApiError::bad(format!("can't parse inline keyboard button: {what}"));
    let obj = b
        .as_object()
        .ok_or_else(|| bad("InlineKeyboardButton must be an Object"))?;
    let text = obj
        .get("text")
        .and_then(Value::as_str)
        .ok_or_else(|| bad("Field \"text\" must be of type String"))?;
    if text.is_empty() {
        // Telegram silently drops such a button; a button the user can never press is a bug.
        return Err(ApiError::bad(
            "fake_telegram: inline keyboard button text is empty (Telegram would drop the button)",
        ));
    }
    let mut out = Map::new();
    out.insert("text".into(), json!(text));
    let nonempty = |k: &str| obj.get(k).and_then(Value::as_str).filter(|s| !s.is_empty());
    if let Some(url) = nonempty("url") {
        let ok = ["http://", "https://", "tg://"]
            .iter()
            .any(|s| url.starts_with(s) && url.len() > s.len());
        if !ok {
            return Err(ApiError::bad("BUTTON_URL_INVALID"));
        }
        out.insert("url".into(), json!(url));
    } else if let Some(data) = nonempty("callback_data") {
        if data.len() > MAX_CALLBACK_DATA {
            return Err(ApiError::bad("BUTTON_DATA_INVALID"));
        }
        out.insert("callback_data".into(), json!(data));
    } else if let Some((k, v)) = [
        "callback_game",
        "pay",
        "switch_inline_query",
        "switch_inline_query_chosen_chat",
        "switch_inline_query_current_chat",
        "login_url",
        "web_app",
        "copy_text",
    ]
    .iter()
    .find_map(|k| obj.get(*k).map(|v| (*k, v)))
    {
        out.insert(k.into(), v.clone());
    } else {
        return Err(bad("Text buttons are unallowed in the inline keyboard"));
    }
    Ok(Value::Object(out))
}

/// Where a send lands: chat, topic and replied-to message, checked like the real server.
pub(super) fn target(st: &State, chat_id: i64, p: &Params) -> Res<(Option<i64>, Option<i64>)> {
    let chat = st.chat(chat_id)?;
    let mut thread = chat.resolve_thread(p.thread_id()?)?;
    if let Some(t) = thread
        && chat.topics[&t].closed
        && !chat.bot_can_manage_topics
    {
        return Err(ApiError::bad("TOPIC_CLOSED"));
    }
    let (reply_to, allow_without) = match p.json("reply_parameters", "reply parameters")? {
        Some(rp) => (
            rp["message_id"].as_i64(),
            rp["allow_sending_without_reply"].as_bool().unwrap_or(false),
        ),
        None => (
            p.int("reply_to_message_id")?,
            p.bool("allow_sending_without_reply"),
        ),
    };
    let Some(reply_to) = reply_to else {
        return Ok((thread, None));
    };
    let found = match chat.messages.get(&reply_to) {
        Some(Msg::Bot(ix)) => {
            (!st.bot_messages[*ix].deleted).then(|| st.bot_messages[*ix].thread_id)
        }
        Some(Msg::Other {
            json,
            deleted: false,
        }) => Some(json["message_thread_id"].as_i64()),
        _ => None,
    };
    match found {
        Some(reply_thread) => {
            // A reply without message_thread_id goes to the replied message's topic.
            if thread.is_none() && chat.kind != crate::fake_telegram::ChatKind::Group {
                thread = reply_thread.filter(|t| chat.topics.contains_key(t));
            }
            Ok((thread, Some(reply_to)))
        }
        None if allow_without => Ok((thread, None)),
        None => Err(ApiError::bad("message to be replied not found")),
    }
}

/// Records a new bot message and returns its Bot API JSON.
pub(super) fn post(
    st: &mut State,
    chat_id: i64,
    (thread_id, reply_to): (Option<i64>, Option<i64>),
    mut current: Revision,
    media: Option<Media>,
) -> Res<Value> {
    current.media.clone_from(&media);
    let ix = st.bot_messages.len();
    let chat = st.chat_mut(chat_id)?;
    let message_id = chat.next_id();
    chat.messages.insert(message_id, Msg::Bot(ix));
    st.bot_messages.push(BotMessage {
        chat_id,
        message_id,
        thread_id,
        date: unix_now(),
        edit_date: None,
        current,
        history: Vec::new(),
        media,
        reply_to,
        deleted: false,
    });
    Ok(st.message_json(chat_id, message_id).unwrap_or_default())
}

pub(super) fn send(st: &mut State, p: &Params) -> Res<Value> {
    let extra = [
        "text",
        "parse_mode",
        "entities",
        "link_preview_options",
        "disable_web_page_preview",
    ];
    p.check_known("sendMessage", &[SEND_COMMON, &extra].concat())?;
    no_business(p)?;
    let text = p
        .str("text")
        .ok_or_else(|| ApiError::bad("message text is empty"))?;
    let mut rev = format(p, text, "entities")?;
    if utf16_len(&rev.text) > MAX_TEXT {
        return Err(ApiError::bad("message is too long"));
    }
    if rev.text.trim().is_empty() {
        return Err(ApiError::bad("message must be non-empty"));
    }
    p.json("link_preview_options", "link preview options")?;
    rev.reply_markup = reply_markup(p, false)?;
    let chat_id = p.chat_id()?;
    let target = target(st, chat_id, p)?;
    admit(st, "sendmessage", chat_id)?;
    post(st, chat_id, target, rev, None)
}

/// sendMessageDraft (Bot API 9.3+): an ephemeral preview of a message being generated, for private
/// chats only. The real server passes the text through tdlib, which allows an empty text (shown
/// as "Thinking..."); groups are refused by Telegram with `TEXTDRAFT_PEER_INVALID`.
pub(super) fn send_draft(st: &mut State, p: &Params) -> Res<Value> {
    p.check_known(
        "sendMessageDraft",
        &[
            "chat_id",
            "message_thread_id",
            "draft_id",
            "text",
            "parse_mode",
            "entities",
            "can_stop",
            "keep_on_stop",
        ],
    )?;
    let thread = p.thread_id()?;
    // td::to_integer: a malformed number reads as 0.
    let draft_id = p.int("draft_id").ok().flatten().unwrap_or(0);
    let rev = format(p, p.str("text").unwrap_or_default(), "entities")?;
    let chat_id = p.chat_id()?;
    let chat = st.chat(chat_id)?;
    if !matches!(chat.kind, ChatKind::Private | ChatKind::PrivateWithTopics) {
        return Err(ApiError::bad("TEXTDRAFT_PEER_INVALID"));
    }
    if draft_id == 0 {
        // Telegram's own text for this is not known; the Bot API only says "must be non-zero".
        return Err(ApiError::bad("fake_telegram: draft_id must be non-zero"));
    }
    if utf16_len(&rev.text) > MAX_TEXT {
        return Err(ApiError::bad("MESSAGE_TOO_LONG"));
    }
    let thread_id = chat.resolve_thread(thread)?;
    admit(st, "sendmessagedraft", chat_id)?;
    let at = st.elapsed();
    st.drafts.push(Draft {
        chat_id,
        thread_id,
        draft_id,
        text: rev.text,
        source: rev.source,
        parse_mode: rev.parse_mode,
        entities: rev.entities,
        can_stop: p.bool("can_stop"),
        at,
    });
    Ok(json!(true))
}

/// The bot message an edit names, or the error Telegram gives for it.
pub(super) fn editable(st: &State, p: &Params, method: &str, known: &[&str]) -> Res<(i64, usize)> {
    p.check_known(method, known)?;
    no_business(p)?;
    if !p.has("chat_id") && p.has("inline_message_id") {
        return Err(ApiError::bad(
            "fake_telegram: inline messages are not modelled",
        ));
    }
    let chat_id = p.chat_id()?;
    let message_id = p.message_id()?;
    let chat = st.chat(chat_id)?;
    match chat.messages.get(&message_id) {
        Some(Msg::Bot(ix)) if !st.bot_messages[*ix].deleted => Ok((chat_id, *ix)),
        Some(Msg::Other { deleted: false, .. }) => Err(ApiError::bad("message can't be edited")),
        _ => Err(ApiError::bad("message to edit not found")),
    }
}

pub(super) fn not_modified() -> ApiError {
    ApiError::bad(
        "message is not modified: specified new message content and reply markup are exactly the same as a current content and reply markup of the message",
    )
}

/// Replaces a bot message's content (text, caption, keyboard and media) and keeps the old one.
pub(super) fn apply_edit(st: &mut State, ix: usize, rev: Revision) -> Res<Value> {
    let m = &mut st.bot_messages[ix];
    m.media.clone_from(&rev.media);
    let old = std::mem::replace(&mut m.current, rev);
    m.history.push(old);
    m.edit_date = Some(unix_now());
    let (chat_id, message_id) = (m.chat_id, m.message_id);
    Ok(st.message_json(chat_id, message_id).unwrap_or_default())
}

pub(super) fn edit_text(st: &mut State, p: &Params) -> Res<Value> {
    let text = p
        .str("text")
        .ok_or_else(|| ApiError::bad("message text is empty"));
    let known = [
        "business_connection_id",
        "chat_id",
        "message_id",
        "inline_message_id",
        "text",
        "parse_mode",
        "entities",
        "link_preview_options",
        "disable_web_page_preview",
        "reply_markup",
    ];
    p.check_known("editMessageText", &known)?;
    let mut rev = format(p, text?, "entities")?;
    if utf16_len(&rev.text) > MAX_TEXT {
        return Err(ApiError::bad("MESSAGE_TOO_LONG"));
    }
    if rev.text.trim().is_empty() {
        return Err(ApiError::bad("message must be non-empty"));
    }
    // Omitting reply_markup removes the keyboard, as on Telegram.
    rev.reply_markup = reply_markup(p, true)?;
    let (chat_id, ix) = editable(st, p, "editMessageText", &known)?;
    let cur = &st.bot_messages[ix];
    if cur.media.is_some() {
        return Err(ApiError::bad("there is no text in the message to edit"));
    }
    if cur.current.text == rev.text
        && cur.current.entities == rev.entities
        && cur.current.reply_markup == rev.reply_markup
    {
        return Err(not_modified());
    }
    admit(st, "editmessagetext", chat_id)?;
    apply_edit(st, ix, rev)
}

pub(super) fn edit_markup(st: &mut State, p: &Params) -> Res<Value> {
    let known = [
        "business_connection_id",
        "chat_id",
        "message_id",
        "inline_message_id",
        "reply_markup",
    ];
    p.check_known("editMessageReplyMarkup", &known)?;
    let markup = reply_markup(p, true)?;
    let (chat_id, ix) = editable(st, p, "editMessageReplyMarkup", &known)?;
    let cur = &st.bot_messages[ix];
    if cur.current.reply_markup == markup {
        return Err(not_modified());
    }
    let rev = Revision {
        reply_markup: markup,
        ..cur.current.clone()
    };
    admit(st, "editmessagereplymarkup", chat_id)?;
    apply_edit(st, ix, rev)
}

pub(super) fn delete(st: &mut State, p: &Params) -> Res<Value> {
    p.check_known("deleteMessage", &["chat_id", "message_id"])?;
    let chat_id = p.chat_id()?;
    let message_id = p.message_id()?;
    let gone = || ApiError::bad("message to delete not found");
    let chat = st
        .chats
        .get_mut(&chat_id)
        .ok_or_else(|| ApiError::bad("chat not found"))?;
    match chat.messages.get_mut(&message_id).ok_or_else(gone)? {
        Msg::Bot(ix) => {
            let m = &mut st.bot_messages[*ix];
            if m.deleted {
                return Err(gone());
            }
            m.deleted = true;
        }
        Msg::Other { deleted, .. } => {
            if *deleted {
                return Err(gone());
            }
            *deleted = true;
        }
    }
    Ok(json!(true))
}
