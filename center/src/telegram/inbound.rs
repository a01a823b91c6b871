//! Telegram updates as the center's own inputs. Everything the center reads from a teloxide
//! `Update` is read here, once: who sent it, which topic it belongs to, and what it is (text, one
//! of our [`Command`]s, a button with decoded [`Callback`] data, an attachment, a voice message,
//! a topic closed, the bot added to or removed from a chat). Routing, commands, buttons and
//! media never see a teloxide type, so what the bot reacts to is listed in one place and a new
//! Telegram field changes one file.

use teloxide::types::{
    ChatMemberUpdated, MaybeInaccessibleMessage, Message, StickerFormat, Update, UpdateKind,
};

use crate::{
    media::{Attachment, AttachmentKind},
    store::Surface,
    telegram::{callback::Callback, command::Command},
};

/// One update, read: the user it came from and what it asks of the center.
#[derive(Debug, Clone)]
pub(crate) struct Inbound {
    /// The Telegram user who sent it (or pressed, or added the bot).
    pub(crate) user: u64,
    /// What happened.
    pub(crate) what: What,
}

/// What an update is about.
#[derive(Debug, Clone)]
pub(crate) enum What {
    /// Something in a topic: a private chat, a group without topics, or a forum topic.
    InTopic(Surface, TopicEvent),
    /// A button on a message Telegram no longer shows the bot: there is no topic to act in
    /// (never the chat's main thread), only "expired" to answer.
    StaleButton {
        /// The query to answer.
        query_id: String,
    },
    /// The bot was added to a chat (`present`) or removed from it, by `user`.
    Membership {
        /// The chat.
        chat_id: i64,
        /// Whether the bot is a member now.
        present: bool,
    },
}

/// What happened in a topic.
#[derive(Debug, Clone)]
pub(crate) enum TopicEvent {
    /// Text for Codex: a message, or a slash command that is not ours (this bot's `@name`
    /// removed, Codex would not know it).
    Text {
        /// The text as typed.
        text: String,
        /// The user's message.
        message_id: i32,
    },
    /// One of the bot's own commands.
    Command {
        /// Which.
        command: Command,
        /// The rest of the message, trimmed.
        args: String,
        /// The user's message.
        message_id: i32,
    },
    /// A file, photo, video, sticker… (a voice message is [`TopicEvent::Voice`]).
    Attachment(Attachment),
    /// A voice message, to be transcribed.
    Voice(VoiceNote),
    /// A message the center cannot pass to Codex (a contact, a location, a poll…).
    Unsupported {
        /// The user's message.
        message_id: i32,
    },
    /// The forum topic was closed, by `by` (an admin of the group, not necessarily an allowed
    /// user).
    TopicClosed {
        /// Who closed it.
        by: u64,
    },
    /// A button was pressed.
    Button(Button),
}

/// A voice message.
#[derive(Debug, Clone)]
pub(crate) struct VoiceNote {
    /// The Telegram file to download.
    pub(crate) file_id: String,
    /// Its size, when Telegram said.
    pub(crate) size: Option<u64>,
    /// The user's message.
    pub(crate) message_id: i32,
}

/// A button press.
#[derive(Debug, Clone)]
pub(crate) struct Button {
    /// The query to answer.
    pub(crate) query_id: String,
    /// The message the button is on.
    pub(crate) message_id: i32,
    /// What the button does; `None` when its data is stale, foreign or forged.
    pub(crate) callback: Option<Callback>,
}

/// Reads an update. `bot_username` is ours (from getMe): `/cmd@other_bot` is for another bot
/// and reads as nothing. `None` for kinds of update the center does not handle.
pub(crate) fn read(update: &Update, bot_username: Option<&str>) -> Option<Inbound> {
    match &update.kind {
        UpdateKind::Message(m) => {
            let user = m.from.as_ref()?.id.0;
            let event = message_event(m, bot_username)?;
            Some(Inbound {
                user,
                what: What::InTopic(surface_of(m), event),
            })
        }
        UpdateKind::CallbackQuery(q) => {
            let user = q.from.id.0;
            let Some(MaybeInaccessibleMessage::Regular(m)) = &q.message else {
                return Some(Inbound {
                    user,
                    what: What::StaleButton {
                        query_id: q.id.0.clone(),
                    },
                });
            };
            let button = Button {
                query_id: q.id.0.clone(),
                message_id: m.id.0,
                callback: q.data.as_deref().and_then(Callback::decode),
            };
            Some(Inbound {
                user,
                what: What::InTopic(surface_of(m), TopicEvent::Button(button)),
            })
        }
        UpdateKind::MyChatMember(change) => Some(membership(change)),
        _ => None,
    }
}

fn membership(change: &ChatMemberUpdated) -> Inbound {
    Inbound {
        user: change.from.id.0,
        what: What::Membership {
            chat_id: change.chat.id.0,
            present: change.new_chat_member.kind.is_present(),
        },
    }
}

fn message_event(m: &Message, bot_username: Option<&str>) -> Option<TopicEvent> {
    let message_id = m.id.0;
    if m.forum_topic_closed().is_some() {
        return Some(TopicEvent::TopicClosed {
            by: m.from.as_ref().map_or(0, |u| u.id.0),
        });
    }
    if let Some(text) = m.text() {
        if !text.starts_with('/') {
            return Some(TopicEvent::Text {
                text: text.to_owned(),
                message_id,
            });
        }
        let text = own_command(text, bot_username)?;
        let (name, args) = split_command(&text[1..]);
        return Some(match Command::parse(name) {
            Some(command) => TopicEvent::Command {
                command,
                args: args.to_owned(),
                message_id,
            },
            None => TopicEvent::Text { text, message_id },
        });
    }
    if let Some(voice) = m.voice() {
        return Some(TopicEvent::Voice(VoiceNote {
            file_id: voice.file.id.0.clone(),
            size: size_of(voice.file.size),
            message_id,
        }));
    }
    if let Some(a) = attachment_of(m) {
        return Some(TopicEvent::Attachment(a));
    }
    if unsupported_media(m) {
        return Some(TopicEvent::Unsupported { message_id });
    }
    None
}

/// The topic a message belongs to.
fn surface_of(m: &Message) -> Surface {
    let thread_id = if m.is_topic_message {
        m.thread_id.map_or(0, |t| t.0.0)
    } else {
        0
    };
    Surface {
        chat_id: m.chat.id.0,
        thread_id,
    }
}

/// A command as this bot should see it: `/cmd@this_bot args` loses the suffix, `/cmd args`
/// stays; `None` for `/cmd@other_bot` (meant for another bot in the group). Without a known
/// username every suffix is taken as ours.
fn own_command(text: &str, username: Option<&str>) -> Option<String> {
    let head_end = text.find(char::is_whitespace).unwrap_or(text.len());
    let (head, rest) = text.split_at(head_end);
    let Some((cmd, bot)) = head.split_once('@') else {
        return Some(text.to_owned());
    };
    match username {
        Some(me) if !me.is_empty() && !bot.eq_ignore_ascii_case(me) => None,
        _ => Some(format!("{cmd}{rest}")),
    }
}

/// `cmd args` → (`cmd`, `args`), the arguments trimmed.
fn split_command(rest: &str) -> (&str, &str) {
    let (head, args) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
    (head, args.trim())
}

fn size_of(size: u32) -> Option<u64> {
    (size != u32::MAX).then_some(u64::from(size))
}

fn ext_of_mime(mime: Option<&str>, fallback: &str) -> String {
    let sub = mime.and_then(|m| m.split('/').nth(1)).unwrap_or(fallback);
    match sub {
        "mpeg" => "mp3".into(),
        "quicktime" => "mov".into(),
        "x-matroska" => "mkv".into(),
        s if s.chars().all(|c| c.is_ascii_alphanumeric()) && s.len() <= 5 => s.into(),
        _ => fallback.into(),
    }
}

/// The attachment `m` carries, if any (voice messages are handled apart).
fn attachment_of(m: &Message) -> Option<Attachment> {
    let id = m.id.0;
    let (kind, file, name) = if let Some(sizes) = m.photo() {
        let best = sizes
            .iter()
            .max_by_key(|p| (p.width * p.height, p.file.size))?;
        (AttachmentKind::Photo, &best.file, format!("photo-{id}.jpg"))
    } else if let Some(d) = m.animation() {
        let ext = ext_of_mime(d.mime_type.as_ref().map(|m| m.essence_str()), "mp4");
        let name = d
            .file_name
            .clone()
            .unwrap_or_else(|| format!("animation-{id}.{ext}"));
        (AttachmentKind::Animation, &d.file, name)
    } else if let Some(d) = m.document() {
        let name = d
            .file_name
            .clone()
            .unwrap_or_else(|| format!("document-{id}"));
        (AttachmentKind::Document, &d.file, name)
    } else if let Some(a) = m.audio() {
        let ext = ext_of_mime(a.mime_type.as_ref().map(|m| m.essence_str()), "mp3");
        let name = a
            .file_name
            .clone()
            .unwrap_or_else(|| format!("audio-{id}.{ext}"));
        (AttachmentKind::Audio, &a.file, name)
    } else if let Some(v) = m.video() {
        let ext = ext_of_mime(v.mime_type.as_ref().map(|m| m.essence_str()), "mp4");
        let name = v
            .file_name
            .clone()
            .unwrap_or_else(|| format!("video-{id}.{ext}"));
        (AttachmentKind::Video, &v.file, name)
    } else if let Some(v) = m.video_note() {
        (
            AttachmentKind::VideoNote,
            &v.file,
            format!("video-note-{id}.mp4"),
        )
    } else if let Some(s) = m.sticker() {
        match s.format() {
            StickerFormat::Static => (
                AttachmentKind::Sticker,
                &s.file,
                format!("sticker-{id}.png"),
            ),
            StickerFormat::Animated | StickerFormat::Video => {
                let thumb = s.thumbnail.as_ref()?;
                (
                    AttachmentKind::StickerThumbnail,
                    &thumb.file,
                    format!("sticker-{id}.png"),
                )
            }
        }
    } else {
        return None;
    };
    Some(Attachment {
        kind,
        file_id: file.id.0.clone(),
        size: size_of(file.size),
        file_name: name,
        message_id: id,
        caption: m.caption().map(str::to_owned),
        media_group: m.media_group_id().map(|g| g.0.clone()),
    })
}

/// Whether `m` carries media the center does not pass on (and should say so).
fn unsupported_media(m: &Message) -> bool {
    m.sticker().is_some() // an animated sticker without a thumbnail
        || m.contact().is_some()
        || m.location().is_some()
        || m.poll().is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_this_bots_commands_are_taken_and_lose_its_name() {
        let me = Some("fleet_bot");
        assert_eq!(own_command("/new@fleet_bot", me).as_deref(), Some("/new"));
        assert_eq!(
            own_command("/run@Fleet_Bot do it now", me).as_deref(),
            Some("/run do it now")
        );
        assert_eq!(own_command("/new@other_bot", me), None);
        assert_eq!(own_command("/status", me).as_deref(), Some("/status"));
        assert_eq!(own_command("/x@any", None).as_deref(), Some("/x"));
        // Only the command word is looked at: an address in the arguments stays.
        assert_eq!(
            own_command("/steer mail a@b.c", me).as_deref(),
            Some("/steer mail a@b.c")
        );
    }

    /// An update as Telegram sends it (from text: teloxide reads a borrowed key first).
    fn update(body: &serde_json::Value) -> Update {
        let u: Update = serde_json::from_str(&body.to_string()).expect("a valid update");
        assert!(!matches!(u.kind, UpdateKind::Error(_)), "{body}");
        u
    }

    fn topic_message(extra: &serde_json::Value) -> Update {
        let mut message = serde_json::json!({
            "message_id": 7, "date": 1_700_000_000, "message_thread_id": 42,
            "is_topic_message": true,
            "chat": {"id": -100_123, "type": "supergroup", "title": "Fleet", "is_forum": true},
            "from": {"id": 5, "is_bot": false, "first_name": "Ann"},
        });
        for (k, v) in extra.as_object().expect("an object") {
            message[k] = v.clone();
        }
        update(&serde_json::json!({"update_id": 1, "message": message}))
    }

    fn in_topic(inbound: Option<Inbound>) -> (u64, Surface, TopicEvent) {
        match inbound {
            Some(Inbound {
                user,
                what: What::InTopic(surface, event),
            }) => (user, surface, event),
            other => panic!("not a topic event: {other:?}"),
        }
    }

    #[test]
    fn text_in_a_forum_topic_names_its_topic_and_sender() {
        let u = topic_message(&serde_json::json!({"text": "hello"}));
        let (user, surface, event) = in_topic(read(&u, Some("fleet_bot")));
        assert_eq!(user, 5);
        assert_eq!(
            surface,
            Surface {
                chat_id: -100_123,
                thread_id: 42
            }
        );
        assert!(matches!(event, TopicEvent::Text { text, message_id: 7 } if text == "hello"));
    }

    #[test]
    fn our_commands_are_typed_and_codexs_are_text_without_our_name() {
        let ours = topic_message(&serde_json::json!({"text": "/Queue@fleet_bot  run the tests "}));
        let (_, _, event) = in_topic(read(&ours, Some("fleet_bot")));
        assert!(matches!(
            event,
            TopicEvent::Command { command: Command::Queue, args, .. } if args == "run the tests"
        ));
        let codexs = topic_message(&serde_json::json!({"text": "/compact@fleet_bot now"}));
        let (_, _, event) = in_topic(read(&codexs, Some("fleet_bot")));
        assert!(matches!(event, TopicEvent::Text { text, .. } if text == "/compact now"));
        let foreign = topic_message(&serde_json::json!({"text": "/status@other_bot"}));
        assert!(read(&foreign, Some("fleet_bot")).is_none());
    }

    #[test]
    fn a_closed_topic_and_a_voice_message_are_read() {
        let closed = topic_message(&serde_json::json!({"forum_topic_closed": {}}));
        assert!(matches!(
            in_topic(read(&closed, None)).2,
            TopicEvent::TopicClosed { by: 5 }
        ));
        let voice = topic_message(&serde_json::json!({"voice": {
            "file_id": "v1", "file_unique_id": "u1", "duration": 3, "file_size": 900, "mime_type": "audio/ogg"
        }}));
        match in_topic(read(&voice, None)).2 {
            TopicEvent::Voice(v) => {
                assert_eq!(
                    (v.file_id.as_str(), v.size, v.message_id),
                    ("v1", Some(900), 7)
                );
            }
            other => panic!("not a voice message: {other:?}"),
        }
    }

    #[test]
    fn a_button_on_a_message_too_old_to_see_is_stale_not_thread_zero() {
        let u = update(&serde_json::json!({"update_id": 2, "callback_query": {
            "id": "q1", "from": {"id": 5, "is_bot": false, "first_name": "Ann"},
            "chat_instance": "ci", "data": "h|0",
            "message": {"chat": {"id": -100_123, "type": "supergroup", "title": "Fleet"},
                        "message_id": 9, "date": 0}
        }}));
        assert!(matches!(
            read(&u, None),
            Some(Inbound { user: 5, what: What::StaleButton { query_id } }) if query_id == "q1"
        ));
    }

    #[test]
    fn forged_button_data_reads_as_no_callback() {
        let u = update(&serde_json::json!({"update_id": 3, "callback_query": {
            "id": "q2", "from": {"id": 5, "is_bot": false, "first_name": "Ann"},
            "chat_instance": "ci", "data": "k|../../etc|1|zz",
            "message": {"message_id": 9, "date": 1_700_000_000, "message_thread_id": 42,
                        "is_topic_message": true,
                        "chat": {"id": -100_123, "type": "supergroup", "title": "Fleet", "is_forum": true},
                        "from": {"id": 99, "is_bot": true, "first_name": "Bot"}, "text": "?"}
        }}));
        match in_topic(read(&u, None)) {
            (_, surface, TopicEvent::Button(b)) => {
                assert_eq!(surface.thread_id, 42);
                assert_eq!((b.query_id.as_str(), b.message_id), ("q2", 9));
                assert_eq!(b.callback, None);
            }
            other => panic!("not a button: {other:?}"),
        }
    }

    #[test]
    fn the_bot_added_to_a_group_is_a_membership_change_by_the_adder() {
        let u = update(&serde_json::json!({"update_id": 4, "my_chat_member": {
            "chat": {"id": -100_777, "type": "supergroup", "title": "Team"},
            "from": {"id": 5, "is_bot": false, "first_name": "Ann"},
            "date": 1_700_000_000,
            "old_chat_member": {"user": {"id": 99, "is_bot": true, "first_name": "Bot"}, "status": "left"},
            "new_chat_member": {"user": {"id": 99, "is_bot": true, "first_name": "Bot"}, "status": "member"}
        }}));
        assert!(matches!(
            read(&u, None),
            Some(Inbound {
                user: 5,
                what: What::Membership {
                    chat_id: -100_777,
                    present: true
                }
            })
        ));
    }

    #[test]
    fn commands_split() {
        assert_eq!(split_command("queue do it "), ("queue", "do it"));
        assert_eq!(split_command("ESC"), ("ESC", ""));
    }
}
