//! The fake's world: chats, topics, messages, pending updates, files, and the records of
//! everything the bot did (`records`). One `State` lives behind the server's mutex; the HTTP handlers
//! (`methods`) change it on the bot's behalf and the harness (`inject`) on the users' behalf.
//! JSON produced here follows the Bot API's object shapes so that teloxide deserialises it.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use serde_json::{Value, json};
use tokio::time::Instant;

use super::flood::Flood;
use super::html::Entity;
use super::params::ApiError;
pub(super) use super::records::{
    ApiCall, BotMessage, CallbackAnswer, ChatAction, ChatKind, Draft, Media, MediaKind, PhotoSize,
    Revision, Topic, User,
};

type Res<T> = Result<T, ApiError>;

pub(super) enum Msg {
    /// Index into `State::bot_messages`.
    Bot(usize),
    /// A user's or service message, as delivered in its update.
    Other { json: Value, deleted: bool },
}

pub(super) struct Chat {
    pub(super) id: i64,
    pub(super) kind: ChatKind,
    pub(super) title: String,
    /// The user of a private chat.
    pub(super) user: Option<User>,
    pub(super) topics: BTreeMap<i64, Topic>,
    pub(super) messages: BTreeMap<i64, Msg>,
    pub(super) next_message_id: i64,
    pub(super) bot_can_manage_topics: bool,
}

impl Chat {
    pub(super) fn to_json(&self) -> Value {
        match (&self.kind, &self.user) {
            (ChatKind::Forum, _) => {
                json!({ "id": self.id, "type": "supergroup", "title": self.title, "is_forum": true })
            }
            (ChatKind::Group, _) => json!({ "id": self.id, "type": "group", "title": self.title }),
            (_, user) => json!({
                "id": self.id,
                "type": "private",
                "first_name": user.as_ref().map(|u| u.first_name.clone()),
                "username": user.as_ref().and_then(|u| u.username.clone()),
            }),
        }
    }

    pub(super) fn next_id(&mut self) -> i64 {
        let id = self.next_message_id;
        self.next_message_id += 1;
        id
    }

    /// Where a bot send with `message_thread_id = thread` lands, following the real server:
    /// ignored in basic groups, General (1) and unknown or deleted topics are "not found".
    pub(super) fn resolve_thread(&self, thread: Option<i64>) -> Res<Option<i64>> {
        let Some(t) = thread else {
            return Ok(None);
        };
        if self.kind == ChatKind::Group {
            return Ok(None);
        }
        match self.topics.get(&t) {
            Some(topic) if !topic.deleted => Ok(Some(t)),
            _ => Err(ApiError::bad("message thread not found")),
        }
    }
}

pub(super) struct PendingUpdate {
    pub(super) id: i64,
    pub(super) kind: &'static str,
    pub(super) body: Value,
}

pub(super) struct StoredFile {
    pub(super) file_id: String,
    pub(super) file_unique_id: String,
    pub(super) file_path: String,
    pub(super) bytes: Bytes,
    /// `file_size` as Telegram reports it: the byte count, or a size the harness declared for a
    /// file too big to keep in memory (its `bytes` are then empty and getFile refuses it).
    pub(super) size: u64,
    /// Name and type it was uploaded with, reused when the bot re-sends it by `file_id`.
    pub(super) file_name: Option<String>,
    pub(super) mime_type: Option<String>,
}

pub(super) struct PendingQuery {
    pub(super) created: Instant,
    pub(super) answered: bool,
}

pub(super) struct State {
    pub(super) bot_id: i64,
    pub(super) epoch: Instant,
    pub(super) chats: BTreeMap<i64, Chat>,
    pub(super) next_user_id: i64,
    pub(super) next_chat_seq: i64,
    pub(super) bot_messages: Vec<BotMessage>,
    pub(super) updates: VecDeque<PendingUpdate>,
    pub(super) next_update_id: i64,
    /// Highest update id the bot confirmed (via a later offset).
    pub(super) confirmed_through: i64,
    pub(super) poll_generation: u64,
    pub(super) allowed_updates: Option<Vec<String>>,
    pub(super) files: BTreeMap<String, StoredFile>,
    /// Every size of each stored photo (smallest first), under the `file_id` of each size.
    pub(super) photo_sets: BTreeMap<String, Vec<PhotoSize>>,
    pub(super) next_file: u64,
    pub(super) queries: BTreeMap<String, PendingQuery>,
    pub(super) next_query: u64,
    pub(super) callback_answers: Vec<CallbackAnswer>,
    pub(super) chat_actions: Vec<ChatAction>,
    pub(super) drafts: Vec<Draft>,
    pub(super) next_media_group: u64,
    pub(super) calls: Vec<ApiCall>,
    pub(super) flood: Flood,
    pub(super) commands: BTreeMap<String, Value>,
    pub(super) callback_deadline: Duration,
    /// Calls forced to fail as a proxy in front of Telegram does when it is down: 502 with an
    /// HTML body (method in lower case, calls remaining). Nothing is delivered.
    pub(super) server_errors: Vec<(String, u32)>,
}

pub(super) fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

impl State {
    pub(super) fn new(bot_id: i64) -> Self {
        Self {
            bot_id,
            epoch: Instant::now(),
            chats: BTreeMap::new(),
            next_user_id: 700_000_001,
            next_chat_seq: 1,
            bot_messages: Vec::new(),
            updates: VecDeque::new(),
            next_update_id: 500_000_001,
            confirmed_through: 0,
            poll_generation: 0,
            allowed_updates: None,
            files: BTreeMap::new(),
            photo_sets: BTreeMap::new(),
            next_file: 1,
            queries: BTreeMap::new(),
            next_query: 1,
            callback_answers: Vec::new(),
            chat_actions: Vec::new(),
            drafts: Vec::new(),
            next_media_group: 1,
            calls: Vec::new(),
            flood: Flood::default(),
            commands: BTreeMap::new(),
            callback_deadline: Duration::from_secs(15),
            server_errors: Vec::new(),
        }
    }

    pub(super) fn elapsed(&self) -> Duration {
        self.epoch.elapsed()
    }

    pub(super) fn bot_json(&self) -> Value {
        json!({
            "id": self.bot_id,
            "is_bot": true,
            "first_name": "Codex Fleet (fake)",
            "username": "codex_fleet_fake_bot",
        })
    }

    pub(super) fn chat(&self, id: i64) -> Res<&Chat> {
        self.chats
            .get(&id)
            .ok_or_else(|| ApiError::bad("chat not found"))
    }

    pub(super) fn chat_mut(&mut self, id: i64) -> Res<&mut Chat> {
        self.chats
            .get_mut(&id)
            .ok_or_else(|| ApiError::bad("chat not found"))
    }

    pub(super) fn push_update(&mut self, kind: &'static str, body: Value) -> i64 {
        let id = self.next_update_id;
        self.next_update_id += 1;
        self.updates.push_back(PendingUpdate { id, kind, body });
        id
    }

    pub(super) fn store_file(&mut self, dir: &str, ext: &str, bytes: Bytes) -> &mut StoredFile {
        let n = self.next_file;
        self.next_file += 1;
        let file_id = format!("FAKEfile{n:06}{}", "A".repeat(24));
        let file = StoredFile {
            file_id: file_id.clone(),
            file_unique_id: format!("FAKEu{n:06}"),
            file_path: format!("{dir}/file_{n}.{ext}"),
            size: bytes.len() as u64,
            bytes,
            file_name: None,
            mime_type: None,
        };
        self.files.entry(file_id).or_insert(file)
    }

    /// Stores a photo as Telegram does: a small `s` preview (at most 90 px a side, even for tiny
    /// photos), `m` (320) and `x` (800) sizes when the photo is bigger than those, and the photo
    /// itself last. The generated sizes are genuine PNGs of the right dimensions (solid grey);
    /// the largest size keeps the original bytes.
    pub(super) fn store_photo(&mut self, bytes: Bytes, (w, h): (u32, u32)) -> Vec<PhotoSize> {
        let mut sizes = Vec::new();
        for (i, side) in [90u32, 320, 800].into_iter().enumerate() {
            if i > 0 && w.max(h) <= side {
                break;
            }
            let (tw, th) = fit(w, h, side);
            let png = Bytes::from(super::png::sample_png(tw, th, [128, 128, 128]));
            sizes.push(PhotoSize {
                file_id: self.store_file("photos", "jpg", png).file_id.clone(),
                width: tw,
                height: th,
            });
        }
        sizes.push(PhotoSize {
            file_id: self.store_file("photos", "jpg", bytes).file_id.clone(),
            width: w,
            height: h,
        });
        for s in &sizes {
            self.photo_sets.insert(s.file_id.clone(), sizes.clone());
        }
        sizes
    }

    /// Stores a thumbnail (an image already checked by the caller) as a file of its own.
    pub(super) fn store_thumbnail(&mut self, bytes: Bytes, (w, h): (u32, u32)) -> PhotoSize {
        let ext = if super::webp::webp_size(&bytes).is_some() {
            "webp"
        } else {
            "jpg"
        };
        PhotoSize {
            file_id: self.store_file("thumbnails", ext, bytes).file_id.clone(),
            width: w,
            height: h,
        }
    }

    /// `file_id`, `file_unique_id` and `file_size` of a stored file.
    pub(super) fn file_meta(&self, file_id: &str) -> Value {
        match self.files.get(file_id) {
            Some(f) => json!({
                "file_id": f.file_id, "file_unique_id": f.file_unique_id, "file_size": f.size,
            }),
            None => json!({ "file_id": file_id }),
        }
    }

    /// A Bot API `PhotoSize`.
    pub(super) fn photo_size_json(&self, s: &PhotoSize) -> Value {
        let mut v = self.file_meta(&s.file_id);
        v["width"] = json!(s.width);
        v["height"] = json!(s.height);
        v
    }

    /// The message fields that carry `media`: `photo`, `document`, `video`, `audio`, or
    /// `animation` together with `document` (as Telegram sends animations).
    pub(super) fn media_fields(&self, media: &Media) -> Vec<(&'static str, Value)> {
        let thumb = media.thumbnail.as_ref().map(|t| self.photo_size_json(t));
        let mut file = self.file_meta(&media.file_id);
        let document = {
            let mut d = file.clone();
            d["file_name"] = json!(media.file_name);
            d["mime_type"] = json!(media.mime_type);
            d["thumbnail"] = json!(thumb);
            d
        };
        match media.kind {
            MediaKind::Photo => {
                let full = PhotoSize {
                    file_id: media.file_id.clone(),
                    width: media.width.unwrap_or(1),
                    height: media.height.unwrap_or(1),
                };
                let sizes = media.sizes.iter().chain(std::iter::once(&full));
                let sizes: Vec<Value> = sizes.map(|s| self.photo_size_json(s)).collect();
                vec![("photo", json!(sizes))]
            }
            MediaKind::Document => vec![("document", document)],
            MediaKind::Audio => {
                file["duration"] = json!(media.duration.unwrap_or(0));
                file["performer"] = json!(media.performer);
                file["title"] = json!(media.title);
                file["file_name"] = json!(media.file_name);
                file["mime_type"] = json!(media.mime_type);
                file["thumbnail"] = json!(thumb);
                vec![("audio", file)]
            }
            MediaKind::Video | MediaKind::Animation => {
                file["width"] = json!(media.width.unwrap_or(0));
                file["height"] = json!(media.height.unwrap_or(0));
                file["duration"] = json!(media.duration.unwrap_or(0));
                file["file_name"] = json!(media.file_name);
                file["mime_type"] = json!(media.mime_type);
                file["thumbnail"] = json!(thumb);
                if media.kind == MediaKind::Video {
                    vec![("video", file)]
                } else {
                    vec![("animation", file), ("document", document)]
                }
            }
        }
    }

    /// Posts a service message (`forum_topic_created`, `forum_topic_closed`, ...) into `chat_id`.
    /// `thread` `None` means "a new topic whose id is this message's id". Returns the message.
    pub(super) fn post_service(
        &mut self,
        chat_id: i64,
        from: &Value,
        thread: Option<i64>,
        field: &str,
        body: Value,
    ) -> Res<Value> {
        let chat = self.chat_mut(chat_id)?;
        let message_id = chat.next_id();
        let thread_id = thread.unwrap_or(message_id);
        let mut json = json!({
            "message_id": message_id,
            "from": from,
            "chat": chat.to_json(),
            "date": unix_now(),
            "message_thread_id": thread_id,
            "is_topic_message": true,
        });
        json[field] = body;
        strip_nulls(&mut json);
        chat.messages.insert(
            message_id,
            Msg::Other {
                json: json.clone(),
                deleted: false,
            },
        );
        Ok(json)
    }

    /// The Bot API `Message` for a message in `chat`, as it looks now.
    pub(super) fn message_json(&self, chat_id: i64, message_id: i64) -> Option<Value> {
        let chat = self.chats.get(&chat_id)?;
        match chat.messages.get(&message_id)? {
            Msg::Other { json, .. } => Some(json.clone()),
            Msg::Bot(ix) => Some(self.bot_message_json(chat, &self.bot_messages[*ix])),
        }
    }

    pub(super) fn bot_message_json(&self, chat: &Chat, m: &BotMessage) -> Value {
        let mut v = json!({
            "message_id": m.message_id,
            "from": self.bot_json(),
            "chat": chat.to_json(),
            "date": m.date,
        });
        if let Some(t) = m.thread_id {
            v["message_thread_id"] = json!(t);
            v["is_topic_message"] = json!(true);
        }
        if let Some(d) = m.edit_date {
            v["edit_date"] = json!(d);
        }
        if let Some(r) = m.reply_to.and_then(|r| self.message_json(chat.id, r)) {
            v["reply_to_message"] = r;
        }
        let entities: Vec<Value> = m.current.entities.iter().map(Entity::to_json).collect();
        let (text_key, entities_key) = if m.media.is_some() {
            ("caption", "caption_entities")
        } else {
            ("text", "entities")
        };
        if !m.current.text.is_empty() {
            v[text_key] = json!(m.current.text);
        }
        if !entities.is_empty() {
            v[entities_key] = json!(entities);
        }
        if let Some(media) = &m.media {
            for (key, value) in self.media_fields(media) {
                v[key] = value;
            }
        }
        if let Some(markup) = &m.current.reply_markup {
            v["reply_markup"] = markup.clone();
        }
        strip_nulls(&mut v);
        v
    }
}

/// `w`×`h` scaled down (never up) to fit a `side`×`side` box, as Telegram's photo sizes are.
pub(super) fn fit(w: u32, h: u32, side: u32) -> (u32, u32) {
    let max = w.max(h);
    if max <= side {
        return (w.max(1), h.max(1));
    }
    let scale = |x: u32| {
        ((u64::from(x) * u64::from(side) + u64::from(max) / 2) / u64::from(max)).max(1) as u32
    };
    (scale(w), scale(h))
}

/// The Bot API omits absent optional fields instead of sending `null`.
pub(super) fn strip_nulls(v: &mut Value) {
    match v {
        Value::Object(map) => {
            map.retain(|_, x| !x.is_null());
            map.values_mut().for_each(strip_nulls);
        }
        Value::Array(items) => items.iter_mut().for_each(strip_nulls),
        _ => {}
    }
}
