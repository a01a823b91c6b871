//! Forum topics the center names or opens itself: a worktree topic is renamed after its branch
//! (editForumTopic), and a window started at the desk gets a topic of its own
//! (createForumTopic). Both need the bot to be an admin with `can_manage_topics` (or, for a
//! rename, the topic's creator).

use teloxide::{
    payloads::EditForumTopicSetters,
    prelude::*,
    types::{MessageId, ThreadId},
};

use super::{Call, Tg, TgError};

/// Telegram's limit on a topic name.
const MAX_TOPIC_NAME: usize = 128;

fn clip(name: &str) -> String {
    name.chars().take(MAX_TOPIC_NAME).collect()
}

impl Tg {
    /// Renames forum topic `thread_id` of `chat_id`.
    pub async fn rename_topic(
        &self,
        chat_id: i64,
        thread_id: i32,
        name: &str,
    ) -> Result<(), TgError> {
        let result = self
            .bot
            .edit_forum_topic(ChatId(chat_id), ThreadId(MessageId(thread_id)))
            .name(clip(name))
            .await
            .map(drop)
            .map_err(|e| self.classify(&e));
        let mut call = Call::new("editForumTopic", Some(chat_id));
        call.thread_id = Some(thread_id);
        self.record(call, &result);
        result
    }

    /// Opens a forum topic named `name` in `chat_id`; returns its thread id.
    pub async fn create_topic(&self, chat_id: i64, name: &str) -> Result<i32, TgError> {
        let result = self
            .bot
            .create_forum_topic(ChatId(chat_id), clip(name))
            .await
            .map(|t| t.thread_id.0.0)
            .map_err(|e| self.classify(&e));
        let mut call = Call::new("createForumTopic", Some(chat_id));
        call.thread_id = result.as_ref().ok().copied();
        self.record(call, &result);
        result
    }
}
