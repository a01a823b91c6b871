//! The users' side of the fake: creating users, chats and topics, and injecting the updates a real
//! Telegram client would cause — messages and commands (with `bot_command` entities), photos (in
//! several sizes), documents, voice notes, stickers, audio, videos, animations, video notes and
//! albums (every file and thumbnail registered so getFile works), button presses (only on buttons
//! that exist), and topic creation, renaming, closing and deletion.
//!
//! Injection refuses what a real user could not do (post into a closed or deleted topic, press a
//! button that is not there, use topics where there are none) with an `anyhow` error, because
//! such a call is a mistake in the test, not behaviour of the bot.

use anyhow::{Context as _, bail, ensure};
use bytes::Bytes;
use serde_json::{Value, json};

mod media;
mod topics;

pub use media::{AlbumItem, AudioFile, StickerFile, StickerFormat, VideoFile};

use super::FakeTelegram;
use super::model::{Chat, ChatKind, Msg, PendingQuery, State, User, strip_nulls, unix_now};
use media::Content;

/// What an injection produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Injected {
    /// The queued update.
    pub update_id: i64,
    /// The new message, for message injections (for topic creation: the topic's thread id).
    pub message_id: Option<i64>,
    /// Topic the message is in.
    pub thread_id: Option<i64>,
    /// Callback query id, for button presses.
    pub query_id: Option<String>,
    /// `file_id` of the injected file (for photos: the largest size).
    pub file_id: Option<String>,
    /// Every downloadable file of the message: for photos each size, smallest first (the last is
    /// `file_id`); otherwise `file_id` and then the thumbnail, if any.
    pub file_ids: Vec<String>,
    /// `media_group_id`, for album items.
    pub media_group_id: Option<String>,
}

/// `bot_command` entities for every `/command` at the start of a word, as Telegram adds them.
fn command_entities(text: &str) -> Vec<Value> {
    let mut out = Vec::new();
    let mut utf16 = 0usize;
    let mut prev_space = true;
    let chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '/' && prev_space {
            let mut j = i + 1;
            while j < chars.len()
                && (chars[j].is_ascii_alphanumeric() || chars[j] == '_' || chars[j] == '@')
            {
                j += 1;
            }
            if j - i > 1 && j - i <= 65 {
                out.push(json!({ "type": "bot_command", "offset": utf16, "length": j - i }));
                utf16 += j - i;
                i = j;
                prev_space = false;
                continue;
            }
        }
        prev_space = c.is_whitespace();
        utf16 += c.len_utf16();
        i += 1;
    }
    out
}

/// Checks that `user` may post into `thread` of `chat` and returns the thread's creation message.
fn check_post(chat: &Chat, user: &User, thread: Option<i64>) -> anyhow::Result<Option<Value>> {
    if let Some(owner) = &chat.user {
        ensure!(
            owner.id == user.id,
            "{} is not the user of private chat {}",
            user.first_name,
            chat.id
        );
    }
    let Some(t) = thread else {
        return Ok(None);
    };
    ensure!(
        matches!(chat.kind, ChatKind::Forum | ChatKind::PrivateWithTopics),
        "chat {} has no topics",
        chat.id
    );
    let topic = chat
        .topics
        .get(&t)
        .with_context(|| format!("no topic {t} in chat {}", chat.id))?;
    ensure!(!topic.deleted, "topic {t} was deleted");
    ensure!(
        !topic.closed,
        "topic {t} is closed; ordinary users cannot post there"
    );
    Ok(match chat.messages.get(&t) {
        Some(Msg::Other {
            json,
            deleted: false,
        }) => Some(json.clone()),
        _ => None,
    })
}

/// Posts a user message (checked, then stored with its files) and queues its update; the caller
/// holds the lock and wakes waiters afterwards.
fn post_locked(
    st: &mut State,
    user: &User,
    chat_id: i64,
    thread: Option<i64>,
    reply_to: Option<i64>,
    content: Content<'_>,
    media_group_id: Option<&str>,
) -> anyhow::Result<Injected> {
    let chat = st
        .chats
        .get(&chat_id)
        .with_context(|| format!("no chat {chat_id}"))?;
    let topic_root = check_post(chat, user, thread)?;
    let mut thread = thread;
    let mut reply = topic_root;
    if let Some(r) = reply_to {
        let replied = st
            .message_json(chat_id, r)
            .with_context(|| format!("no message {r} in chat {chat_id} to reply to"))?;
        if thread.is_none() {
            // Replies in a basic group start a thread; in topics they stay in the topic.
            thread = replied["message_thread_id"].as_i64().or(match chat.kind {
                ChatKind::Group => Some(r),
                _ => None,
            });
        }
        reply = Some(replied);
    }
    let is_topic = thread.is_some_and(|t| chat.topics.contains_key(&t));
    let mut msg = json!({
        "from": user.to_json(),
        "chat": chat.to_json(),
        "date": unix_now(),
        "message_thread_id": thread,
        "is_topic_message": is_topic.then_some(true),
        "reply_to_message": reply,
        "media_group_id": media_group_id,
    });
    media::check(&content)?;
    let stored = media::store(st, content);
    for (key, value) in stored.fields {
        msg[key] = value;
    }
    let chat = st.chats.get_mut(&chat_id).context("chat vanished")?;
    let message_id = chat.next_id();
    msg["message_id"] = json!(message_id);
    strip_nulls(&mut msg);
    chat.messages.insert(
        message_id,
        Msg::Other {
            json: msg.clone(),
            deleted: false,
        },
    );
    let update_id = st.push_update("message", msg);
    Ok(Injected {
        update_id,
        message_id: Some(message_id),
        thread_id: thread,
        query_id: None,
        file_id: stored.file_id,
        file_ids: stored.file_ids,
        media_group_id: media_group_id.map(str::to_owned),
    })
}

// === impl FakeTelegram (users' side) ===

impl FakeTelegram {
    /// A new user; the username is the lower-cased first name.
    pub fn create_user(&self, first_name: &str) -> User {
        let mut st = self.shared.lock();
        let id = st.next_user_id;
        st.next_user_id += 1;
        User {
            id,
            first_name: first_name.to_owned(),
            username: Some(first_name.to_ascii_lowercase().replace(' ', "_")),
        }
    }

    fn add_chat(&self, id: i64, kind: ChatKind, title: &str, user: Option<User>) -> i64 {
        let mut st = self.shared.lock();
        st.chats.insert(
            id,
            Chat {
                id,
                kind,
                title: title.to_owned(),
                user,
                topics: Default::default(),
                messages: Default::default(),
                // Message 1 is the chat's creation; in a forum, thread 1 is General.
                next_message_id: 2,
                bot_can_manage_topics: true,
            },
        );
        id
    }

    fn next_seq(&self) -> i64 {
        let mut st = self.shared.lock();
        st.next_chat_seq += 1;
        st.next_chat_seq
    }

    /// A forum supergroup (the bot is an admin with `can_manage_topics`). Returns its chat id.
    pub fn create_forum(&self, title: &str) -> i64 {
        let id = -1_001_000_000_000 - self.next_seq();
        self.add_chat(id, ChatKind::Forum, title, None)
    }

    /// A basic group without topics. Returns its chat id.
    pub fn create_group(&self, title: &str) -> i64 {
        let id = -4_000_000_000 - self.next_seq();
        self.add_chat(id, ChatKind::Group, title, None)
    }

    /// The private chat between `user` and the bot (its id is the user's id), with topics if
    /// `with_topics` (the bot's threaded mode). Returns its chat id.
    pub fn create_private_chat(&self, user: &User, with_topics: bool) -> i64 {
        let kind = if with_topics {
            ChatKind::PrivateWithTopics
        } else {
            ChatKind::Private
        };
        self.add_chat(user.id, kind, "", Some(user.clone()))
    }

    /// `user` adds the bot to group `chat_id` as an administrator: the bot gets `my_chat_member`
    /// with `user` as the one who did it. (Chats made by `create_forum`/`create_group` already
    /// have the bot, as if it had been added before the center ever ran.) Returns the update id.
    pub fn add_bot(&self, user: &User, chat_id: i64) -> anyhow::Result<i64> {
        self.bot_membership(user, chat_id, "left", "administrator")
    }

    /// `user` removes the bot from group `chat_id`: `my_chat_member` with status `left`.
    pub fn remove_bot(&self, user: &User, chat_id: i64) -> anyhow::Result<i64> {
        self.bot_membership(user, chat_id, "administrator", "left")
    }

    fn bot_membership(
        &self,
        user: &User,
        chat_id: i64,
        old: &str,
        new: &str,
    ) -> anyhow::Result<i64> {
        let mut st = self.shared.lock();
        let chat = st.chat(chat_id).map_err(|e| anyhow::anyhow!("{e:?}"))?;
        ensure!(chat.id < 0, "the bot is always in its private chats");
        let chat = chat.to_json();
        let bot = st.bot_json();
        let member = |status: &str| {
            let mut m = json!({ "user": bot, "status": status });
            if status == "administrator" {
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
                ] {
                    m[right] = json!(right != "can_be_edited" && right != "is_anonymous");
                }
                m["can_pin_messages"] = json!(true);
                m["can_manage_topics"] = json!(true);
            }
            m
        };
        let body = json!({
            "chat": chat,
            "from": user.to_json(),
            "date": unix_now(),
            "old_chat_member": member(old),
            "new_chat_member": member(new),
        });
        let id = st.push_update("my_chat_member", body);
        drop(st);
        self.changed();
        Ok(id)
    }

    /// Queues any update (escape hatch for shapes this module does not build). Returns its id.
    pub fn inject_update(&self, kind: &'static str, body: Value) -> i64 {
        let id = self.shared.lock().push_update(kind, body);
        self.changed();
        id
    }

    fn post_user_message(
        &self,
        user: &User,
        chat_id: i64,
        thread: Option<i64>,
        reply_to: Option<i64>,
        content: Content<'_>,
    ) -> anyhow::Result<Injected> {
        let mut st = self.shared.lock();
        let injected = post_locked(&mut st, user, chat_id, thread, reply_to, content, None)?;
        drop(st);
        self.changed();
        Ok(injected)
    }

    /// `user` sends `text` (commands get `bot_command` entities) to a chat, in topic `thread_id`
    /// or outside topics (`None`).
    pub fn send_text(
        &self,
        user: &User,
        chat_id: i64,
        thread_id: Option<i64>,
        text: &str,
    ) -> anyhow::Result<Injected> {
        self.post_user_message(user, chat_id, thread_id, None, Content::Text(text))
    }

    /// `user` replies to message `reply_to` with `text`, in the replied message's topic.
    pub fn reply_text(
        &self,
        user: &User,
        chat_id: i64,
        reply_to: i64,
        text: &str,
    ) -> anyhow::Result<Injected> {
        self.post_user_message(user, chat_id, None, Some(reply_to), Content::Text(text))
    }

    /// `user` sends a photo (PNG, JPEG or GIF bytes; see [`super::sample_png`]). Like Telegram,
    /// the message carries several sizes, the original last; `file_id` is the original.
    pub fn send_photo(
        &self,
        user: &User,
        chat_id: i64,
        thread_id: Option<i64>,
        bytes: impl Into<Bytes>,
        caption: Option<&str>,
    ) -> anyhow::Result<Injected> {
        self.post_user_message(
            user,
            chat_id,
            thread_id,
            None,
            Content::Photo(bytes.into(), caption),
        )
    }

    /// `user` sends a document.
    #[allow(clippy::too_many_arguments)]
    pub fn send_document(
        &self,
        user: &User,
        chat_id: i64,
        thread_id: Option<i64>,
        file_name: &str,
        mime_type: &str,
        bytes: impl Into<Bytes>,
        caption: Option<&str>,
    ) -> anyhow::Result<Injected> {
        let bytes = bytes.into();
        let size = bytes.len() as u64;
        let content = Content::Document(
            file_name.to_owned(),
            mime_type.to_owned(),
            bytes,
            size,
            caption,
        );
        self.post_user_message(user, chat_id, thread_id, None, content)
    }

    /// `user` sends a document of `declared_size` bytes without the test allocating them: up to
    /// the 20 MB download limit the file holds that many zero bytes; above it, it exists only as
    /// a size, and getFile answers `Bad Request: file is too big` as it would for the real file.
    pub fn send_document_sized(
        &self,
        user: &User,
        chat_id: i64,
        thread_id: Option<i64>,
        file_name: &str,
        mime_type: &str,
        declared_size: u64,
    ) -> anyhow::Result<Injected> {
        let bytes = if declared_size <= super::methods::MAX_DOWNLOAD as u64 {
            Bytes::from(vec![0u8; declared_size as usize])
        } else {
            Bytes::new()
        };
        let content = Content::Document(
            file_name.to_owned(),
            mime_type.to_owned(),
            bytes,
            declared_size,
            None,
        );
        self.post_user_message(user, chat_id, thread_id, None, content)
    }

    /// `user` sends a voice note.
    pub fn send_voice(
        &self,
        user: &User,
        chat_id: i64,
        thread_id: Option<i64>,
        bytes: impl Into<Bytes>,
        duration_secs: u32,
    ) -> anyhow::Result<Injected> {
        self.post_user_message(
            user,
            chat_id,
            thread_id,
            None,
            Content::Voice(bytes.into(), duration_secs),
        )
    }

    /// `user` presses the inline button with `callback_data` under bot message `message_id`.
    pub fn press_button(
        &self,
        user: &User,
        chat_id: i64,
        message_id: i64,
        callback_data: &str,
    ) -> anyhow::Result<Injected> {
        let mut st = self.shared.lock();
        let chat = st
            .chats
            .get(&chat_id)
            .with_context(|| format!("no chat {chat_id}"))?;
        if let Some(owner) = &chat.user {
            ensure!(
                owner.id == user.id,
                "{} is not in private chat {chat_id}",
                user.first_name
            );
        }
        let Some(Msg::Bot(ix)) = chat.messages.get(&message_id) else {
            bail!("message {message_id} in chat {chat_id} is not a bot message");
        };
        let m = &st.bot_messages[*ix];
        ensure!(!m.deleted, "message {message_id} was deleted");
        let buttons = m.buttons();
        ensure!(
            buttons
                .iter()
                .any(|b| b.callback_data.as_deref() == Some(callback_data)),
            "message {message_id} has no button with callback_data {callback_data:?}; buttons: {buttons:?}"
        );
        let thread_id = m.thread_id;
        let message = st
            .message_json(chat_id, message_id)
            .context("message vanished")?;
        let query_id = format!(
            "{}{:06}",
            4_000_000_000_000u64 + chat_id.unsigned_abs() % 1_000_000,
            st.next_query
        );
        st.next_query += 1;
        let created = tokio::time::Instant::now();
        st.queries.insert(
            query_id.clone(),
            PendingQuery {
                created,
                answered: false,
            },
        );
        let body = json!({
            "id": query_id,
            "from": user.to_json(),
            "message": message,
            "chat_instance": format!("{}", chat_id.unsigned_abs() * 7 + 3),
            "data": callback_data,
        });
        let update_id = st.push_update("callback_query", body);
        drop(st);
        self.changed();
        Ok(Injected {
            update_id,
            message_id: Some(message_id),
            thread_id,
            query_id: Some(query_id),
            file_id: None,
            file_ids: Vec::new(),
            media_group_id: None,
        })
    }
}
