//! The Bot API methods the fake implements, as synchronous functions over [`State`].
//!
//! `call` maps a method name (case-insensitive, as in the Bot API) to its handler; `None` means
//! the fake does not model the method and the server answers 404. getUpdates is the one
//! asynchronous method: `server` runs its long poll and only borrows parameter parsing from here.
//! Validation order and error texts follow the real server (`tdlib/telegram-bot-api`'s
//! `Client.cpp` and tdlib), so the first error a client sees is the one Telegram would send.

mod media;
mod messages;
mod topics;

use serde_json::{Value, json};

use super::flood::FloodEvent;
use super::model::{CallbackAnswer, ChatAction, ChatKind, MediaKind, State};
use super::params::{ApiError, Params};

pub(super) use media::{MAX_DOWNLOAD, MAX_THUMBNAIL_SIDE, image_size};
pub(super) use topics::{ICON_COLORS, clean_name, delete_topic_messages};

type Res<T> = Result<T, ApiError>;

/// Runs `method` (any case) or returns `None` for a method the fake does not know.
pub(super) fn call(st: &mut State, method: &str, p: &Params) -> Option<Res<Value>> {
    let m = method.to_ascii_lowercase();
    Some(match m.as_str() {
        "getme" => get_me(st, p),
        "getchatmember" => get_chat_member(st, p),
        "deletewebhook" => delete_webhook(st, p),
        "getwebhookinfo" => p
            .check_known("getWebhookInfo", &[])
            .map(|()| json!({ "url": "", "has_custom_certificate": false, "pending_update_count": st.updates.len() })),
        "setmycommands" => set_my_commands(st, p),
        "getmycommands" => get_my_commands(st, p),
        "deletemycommands" => delete_my_commands(st, p),
        "sendmessage" => messages::send(st, p),
        "editmessagetext" => messages::edit_text(st, p),
        "editmessagereplymarkup" => messages::edit_markup(st, p),
        "deletemessage" => messages::delete(st, p),
        "answercallbackquery" => answer_callback_query(st, p),
        "sendchataction" => send_chat_action(st, p),
        "createforumtopic" => topics::create(st, p),
        "editforumtopic" => topics::edit(st, p),
        "closeforumtopic" => topics::set_closed(st, p, "closeForumTopic", true),
        "reopenforumtopic" => topics::set_closed(st, p, "reopenForumTopic", false),
        "deleteforumtopic" => topics::delete(st, p),
        "sendmessagedraft" => messages::send_draft(st, p),
        "sendphoto" => media::send(st, p, MediaKind::Photo),
        "senddocument" => media::send(st, p, MediaKind::Document),
        "sendvideo" => media::send(st, p, MediaKind::Video),
        "sendaudio" => media::send(st, p, MediaKind::Audio),
        "sendanimation" => media::send(st, p, MediaKind::Animation),
        "editmessagemedia" => media::edit_media(st, p),
        "getfile" => media::get_file(st, p),
        _ => return None,
    })
}

/// Parameters of getUpdates after the real server's clamping: offset, limit 1–100, timeout 0–50 s.
pub(super) fn get_updates_params(st: &mut State, p: &Params) -> Res<(i64, usize, u64)> {
    p.check_known(
        "getUpdates",
        &["offset", "limit", "timeout", "allowed_updates"],
    )?;
    // Like td::to_integer, a malformed number reads as 0 and then gets clamped.
    let int = |name: &str, default: i64| p.int(name).ok().flatten().unwrap_or(default);
    let offset = int("offset", 0);
    let limit = int("limit", 100).clamp(1, 100) as usize;
    let timeout = int("timeout", 0).clamp(0, 50) as u64;
    if let Some(v) = p.json("allowed_updates", "allowed updates")? {
        let kinds: Vec<String> = v
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|k| k.as_str().map(str::to_owned))
            .collect();
        // An empty list means "the default set", which covers everything the fake emits.
        st.allowed_updates = (!kinds.is_empty()).then_some(kinds);
    }
    Ok((offset, limit, timeout))
}

/// Refuses business connections and other things the fake does not model instead of ignoring them.
fn no_business(p: &Params) -> Res<()> {
    if p.has("business_connection_id") {
        return Err(ApiError::bad("business connection not found"));
    }
    if p.has("direct_messages_topic_id") {
        return Err(ApiError::bad(
            "fake_telegram: direct messages topics are not modelled",
        ));
    }
    Ok(())
}

/// Applies flood control to a send or edit in `chat_id`, recording any 429.
fn admit(st: &mut State, method: &str, chat_id: i64) -> Res<()> {
    let is_group = st
        .chats
        .get(&chat_id)
        .is_some_and(|c| matches!(c.kind, ChatKind::Forum | ChatKind::Group));
    let now = tokio::time::Instant::now();
    match st.flood.admit(method, chat_id, is_group, now) {
        Ok(()) => Ok(()),
        Err((secs, reason)) => {
            let at = st.elapsed();
            st.flood.events.push(FloodEvent {
                method: method.to_owned(),
                chat_id: Some(chat_id),
                retry_after: secs,
                reason,
                at,
            });
            Err(ApiError::retry_after(secs))
        }
    }
}

fn get_me(st: &State, p: &Params) -> Res<Value> {
    p.check_known("getMe", &[])?;
    let topics = st
        .chats
        .values()
        .any(|c| c.kind == ChatKind::PrivateWithTopics);
    let mut me = st.bot_json();
    me["can_join_groups"] = json!(true);
    me["can_read_all_group_messages"] = json!(false);
    me["supports_inline_queries"] = json!(false);
    me["can_connect_to_business"] = json!(false);
    me["has_main_web_app"] = json!(false);
    me["has_topics_enabled"] = json!(topics);
    Ok(me)
}

/// getChatMember, for the bot itself only (the fake keeps no member lists): an administrator
/// in groups and forums (the rights `add_bot` grants, Manage topics as set with
/// `set_bot_can_manage_topics`), a member of its private chats. The real server reads
/// `user_id` before it looks the chat up, so a bad `user_id` is reported first.
fn get_chat_member(st: &State, p: &Params) -> Res<Value> {
    p.check_known("getChatMember", &["chat_id", "user_id"])?;
    let user_id = match p.int("user_id")? {
        Some(id) if id > 0 => id,
        _ => return Err(ApiError::bad("invalid user_id specified")),
    };
    let chat = st.chat(p.chat_id()?)?;
    if user_id != st.bot_id {
        return Err(ApiError::bad(
            "fake_telegram: getChatMember is modelled for the bot itself only",
        ));
    }
    let user = st.bot_json();
    if !matches!(chat.kind, ChatKind::Forum | ChatKind::Group) {
        return Ok(json!({ "user": user, "status": "member" }));
    }
    let mut member = json!({ "user": user, "status": "administrator" });
    for right in [
        "can_be_edited",
        "is_anonymous",
        "can_manage_chat",
        "can_delete_messages",
        "can_manage_video_chats",
        "can_restrict_members",
        "can_promote_members",
        "can_change_info",
        "can_invite_users",
        "can_post_stories",
        "can_edit_stories",
        "can_delete_stories",
        "can_pin_messages",
    ] {
        member[right] = json!(right != "can_be_edited" && right != "is_anonymous");
    }
    member["can_manage_topics"] = json!(chat.bot_can_manage_topics);
    Ok(member)
}

fn delete_webhook(st: &mut State, p: &Params) -> Res<Value> {
    p.check_known("deleteWebhook", &["drop_pending_updates"])?;
    if p.bool("drop_pending_updates") {
        st.updates.clear();
    }
    Ok(json!(true))
}

const SCOPES: &[&str] = &[
    "default",
    "all_private_chats",
    "all_group_chats",
    "all_chat_administrators",
    "chat",
    "chat_administrators",
    "chat_member",
];

/// The key commands are stored under: scope plus language.
fn commands_key(p: &Params) -> Res<String> {
    let scope = p
        .json("scope", "bot command scope")?
        .unwrap_or_else(|| json!({ "type": "default" }));
    let kind = scope["type"].as_str().unwrap_or_default();
    if !SCOPES.contains(&kind) {
        return Err(ApiError::bad("unsupported bot command scope type"));
    }
    if kind.starts_with("chat") && scope["chat_id"].is_null() {
        return Err(ApiError::bad("chat_id is empty"));
    }
    let lang = p.str("language_code").unwrap_or_default();
    Ok(format!("{scope}|{lang}"))
}

fn set_my_commands(st: &mut State, p: &Params) -> Res<Value> {
    p.check_known("setMyCommands", &["commands", "scope", "language_code"])?;
    let list = match p.json("commands", "commands")? {
        None => Vec::new(),
        Some(Value::Array(list)) => list,
        Some(_) => return Err(ApiError::bad("expected an Array of BotCommand")),
    };
    let mut out = Vec::new();
    for c in &list {
        let field = |name: &str| {
            c.get(name).and_then(Value::as_str).ok_or_else(|| {
                ApiError::bad(format!(
                    "can't parse BotCommand: Field \"{name}\" must be of type String"
                ))
            })
        };
        let (command, description) = (field("command")?.trim(), field("description")?.trim());
        let command = command.strip_prefix('/').unwrap_or(command);
        if command.is_empty() {
            return Err(ApiError::bad("command must be non-empty"));
        }
        if command.chars().count() > 32 {
            return Err(ApiError::bad("command length must not exceed 32"));
        }
        if !command
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        {
            return Err(ApiError::bad("BOT_COMMAND_INVALID"));
        }
        if description.is_empty() {
            return Err(ApiError::bad("command description must be non-empty"));
        }
        if description.chars().count() > 256 {
            return Err(ApiError::bad(
                "command description length must not exceed 256",
            ));
        }
        out.push(json!({ "command": command, "description": description }));
    }
    if out.len() > 100 {
        return Err(ApiError::bad("BOT_COMMANDS_TOO_MUCH"));
    }
    let key = commands_key(p)?;
    st.commands.insert(key, Value::Array(out));
    Ok(json!(true))
}

fn get_my_commands(st: &State, p: &Params) -> Res<Value> {
    p.check_known("getMyCommands", &["scope", "language_code"])?;
    let key = commands_key(p)?;
    Ok(st.commands.get(&key).cloned().unwrap_or_else(|| json!([])))
}

fn delete_my_commands(st: &mut State, p: &Params) -> Res<Value> {
    p.check_known("deleteMyCommands", &["scope", "language_code"])?;
    let key = commands_key(p)?;
    st.commands.remove(&key);
    Ok(json!(true))
}

fn answer_callback_query(st: &mut State, p: &Params) -> Res<Value> {
    p.check_known(
        "answerCallbackQuery",
        &[
            "callback_query_id",
            "text",
            "show_alert",
            "url",
            "cache_time",
        ],
    )?;
    let too_old =
        || ApiError::bad("query is too old and response timeout expired or query ID is invalid");
    let id = p.str("callback_query_id").ok_or_else(too_old)?;
    let text = p.str("text");
    if text.as_deref().is_some_and(|t| t.chars().count() > 200) {
        return Err(ApiError::bad("MESSAGE_TOO_LONG"));
    }
    let deadline = st.callback_deadline;
    let query = st.queries.get_mut(&id).ok_or_else(too_old)?;
    if query.answered || query.created.elapsed() > deadline {
        return Err(too_old());
    }
    query.answered = true;
    st.callback_answers.push(CallbackAnswer {
        query_id: id,
        text,
        show_alert: p.bool("show_alert"),
        url: p.str("url"),
    });
    Ok(json!(true))
}

const ACTIONS: &[&str] = &[
    "cancel",
    "typing",
    "record_video",
    "upload_video",
    "record_audio",
    "record_voice",
    "upload_audio",
    "upload_voice",
    "upload_photo",
    "upload_document",
    "choose_sticker",
    "pick_up_location",
    "find_location",
    "record_video_note",
    "upload_video_note",
];

fn send_chat_action(st: &mut State, p: &Params) -> Res<Value> {
    p.check_known(
        "sendChatAction",
        &[
            "business_connection_id",
            "chat_id",
            "message_thread_id",
            "action",
        ],
    )?;
    no_business(p)?;
    let thread_id = p.thread_id()?;
    let action = p.str("action").unwrap_or_default().to_ascii_lowercase();
    if !ACTIONS.contains(&action.as_str()) {
        return Err(ApiError::bad("wrong parameter action in request"));
    }
    let chat_id = p.chat_id()?;
    st.chat(chat_id)?;
    // The real server does not check the topic here (it uses check_chat, not
    // check_message_topic), so neither does the fake; the action is recorded as sent.
    let at = st.elapsed();
    st.chat_actions.push(ChatAction {
        chat_id,
        thread_id,
        action,
        at,
    });
    Ok(json!(true))
}
