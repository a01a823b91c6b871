//! Topic lifecycle as users and admins cause it: creation (`forum_topic_created`, whose message
//! id becomes the topic's thread id), renaming, closing and reopening (service messages the bot
//! receives) and deletion (no update at all — the bot finds out from `message thread not found`).

use anyhow::{Context as _, ensure};
use serde_json::{Value, json};

use super::Injected;
use crate::fake_telegram::FakeTelegram;
use crate::fake_telegram::methods;
use crate::fake_telegram::model::{ChatKind, Topic, User};

// === impl FakeTelegram (topics) ===

impl FakeTelegram {
    /// `user` creates a topic, which queues its `forum_topic_created` service message.
    /// `message_id` and `thread_id` of the result are the new topic's id.
    pub fn create_topic(&self, user: &User, chat_id: i64, name: &str) -> anyhow::Result<Injected> {
        let mut st = self.shared.lock();
        let chat = st
            .chats
            .get(&chat_id)
            .with_context(|| format!("no chat {chat_id}"))?;
        ensure!(
            matches!(chat.kind, ChatKind::Forum | ChatKind::PrivateWithTopics),
            "chat {chat_id} has no topics"
        );
        let name = methods::clean_name(name).context("topic name is empty")?;
        let icon_color = methods::ICON_COLORS[chat.topics.len() % methods::ICON_COLORS.len()];
        let body = json!({ "name": name, "icon_color": icon_color });
        let msg = st.post_service(chat_id, &user.to_json(), None, "forum_topic_created", body)?;
        let thread_id = msg["message_id"].as_i64().unwrap_or_default();
        let topic = Topic {
            thread_id,
            name,
            icon_color,
            closed: false,
            deleted: false,
            by_bot: false,
        };
        st.chat_mut(chat_id)?.topics.insert(thread_id, topic);
        let update_id = st.push_update("message", msg);
        drop(st);
        self.changed();
        Ok(Injected {
            update_id,
            message_id: Some(thread_id),
            thread_id: Some(thread_id),
            query_id: None,
            file_id: None,
            file_ids: Vec::new(),
            media_group_id: None,
        })
    }

    fn topic_service(
        &self,
        user: &User,
        chat_id: i64,
        thread_id: i64,
        field: &str,
        body: Value,
        change: impl FnOnce(&mut Topic) -> anyhow::Result<()>,
    ) -> anyhow::Result<Injected> {
        let mut st = self.shared.lock();
        let chat = st
            .chats
            .get_mut(&chat_id)
            .with_context(|| format!("no chat {chat_id}"))?;
        let topic = chat
            .topics
            .get_mut(&thread_id)
            .with_context(|| format!("no topic {thread_id}"))?;
        ensure!(!topic.deleted, "topic {thread_id} was deleted");
        change(topic)?;
        let msg = st.post_service(chat_id, &user.to_json(), Some(thread_id), field, body)?;
        let message_id = msg["message_id"].as_i64();
        let update_id = st.push_update("message", msg);
        drop(st);
        self.changed();
        Ok(Injected {
            update_id,
            message_id,
            thread_id: Some(thread_id),
            query_id: None,
            file_id: None,
            file_ids: Vec::new(),
            media_group_id: None,
        })
    }

    /// `user` (an admin) renames a topic: `forum_topic_edited`.
    pub fn rename_topic(
        &self,
        user: &User,
        chat_id: i64,
        thread_id: i64,
        name: &str,
    ) -> anyhow::Result<Injected> {
        let name = methods::clean_name(name).context("topic name is empty")?;
        let body = json!({ "name": name });
        self.topic_service(user, chat_id, thread_id, "forum_topic_edited", body, |t| {
            t.name = name.clone();
            Ok(())
        })
    }

    /// `user` (an admin) closes a topic: `forum_topic_closed`.
    pub fn close_topic(
        &self,
        user: &User,
        chat_id: i64,
        thread_id: i64,
    ) -> anyhow::Result<Injected> {
        self.topic_service(
            user,
            chat_id,
            thread_id,
            "forum_topic_closed",
            json!({}),
            |t| {
                ensure!(!t.closed, "topic is already closed");
                t.closed = true;
                Ok(())
            },
        )
    }

    /// `user` (an admin) reopens a topic: `forum_topic_reopened`.
    pub fn reopen_topic(
        &self,
        user: &User,
        chat_id: i64,
        thread_id: i64,
    ) -> anyhow::Result<Injected> {
        self.topic_service(
            user,
            chat_id,
            thread_id,
            "forum_topic_reopened",
            json!({}),
            |t| {
                ensure!(t.closed, "topic is not closed");
                t.closed = false;
                Ok(())
            },
        )
    }

    /// An admin deletes a topic and its messages. Telegram sends no update for this; the bot
    /// finds out when a send fails with `message thread not found`.
    pub fn delete_topic(&self, chat_id: i64, thread_id: i64) -> anyhow::Result<()> {
        let mut st = self.shared.lock();
        let chat = st
            .chats
            .get_mut(&chat_id)
            .with_context(|| format!("no chat {chat_id}"))?;
        let topic = chat
            .topics
            .get_mut(&thread_id)
            .with_context(|| format!("no topic {thread_id}"))?;
        ensure!(!topic.deleted, "topic {thread_id} was already deleted");
        topic.deleted = true;
        methods::delete_topic_messages(&mut st, chat_id, thread_id);
        drop(st);
        self.changed();
        Ok(())
    }
}
