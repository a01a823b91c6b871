//! Telegram updates on their way to topics: who is served at all (allowed users, served chats),
//! and one ordered task per topic that handles its updates while topics run concurrently. A
//! topic whose task failed is told, and its later updates still run.

use shared::{ids::ThreadId, sync::LockExt};
use std::{sync::Arc, time::Duration};

use proto::v1::{self, reply::Result as R, request::Op};
use teloxide::types::Update;
use tokio::sync::mpsc;

use crate::{
    app::{App, CALL_TIMEOUT, TopicGone},
    inbox::UpdateLease,
    pending::PendingInput,
    store::{InputMode, Surface},
    telegram::inbound::{self, Inbound, TopicEvent, What},
};

/// Attachments that follow each other within this time become one input.
const ATTACHMENT_BURST: Duration = Duration::from_millis(1500);

/// Said in a topic when handling one of its updates or inputs failed on a bug (the log has it).
pub(crate) const FAILED_HERE: &str = "⚠️ Something went wrong with your last message here (the center's log has the details); this topic goes on.";

impl App {
    /// Reads an update as the center's own input (see [`crate::telegram::inbound`]).
    fn read(&self, update: &Update) -> Option<Inbound> {
        inbound::read(update, self.username.get().map(String::as_str))
    }

    /// Whether the bot acts in this chat: a private chat (an allowed user's own); a group in
    /// `allowed_chats` when that is set; otherwise an owned group (one an allowed user added the
    /// bot to, or with bound topics). Anywhere else it does nothing at all.
    fn serves_chat(&self, chat_id: i64) -> bool {
        if chat_id > 0 {
            return true;
        }
        if !self.cfg.allowed_chats.is_empty() {
            return self.cfg.allowed_chats.contains(&chat_id);
        }
        self.store.owned_chat(chat_id).unwrap_or_else(|err| {
            tracing::error!(error = %err, "reading owned chats failed");
            false
        })
    }

    /// An allowed user wrote in a group the bot does not serve: the group sees nothing, the user
    /// is told why in private, once per group and run.
    fn explain_unserved(&self, user: u64, chat_id: i64) {
        if chat_id > 0 || !self.cfg.allowed_chats.is_empty() {
            return;
        }
        if !self.unserved_told.locked().insert(chat_id) {
            return;
        }
        let text = format!(
            "I stay silent in the group {chat_id}: no allowed user added me to it. Remove me and add me again \
             there, or list the group in ALLOWED_CHATS."
        );
        let private = Surface {
            chat_id: user as i64,
            thread_id: 0,
        };
        self.notice(private, &text, None);
    }

    /// The topic and event of an update the center acts on: an allowed user's, in a chat it
    /// serves (an allowed user in a chat it does not serve is told why, once). A topic closed by
    /// anyone (an admin who is not an allowed user, too) still ends its binding: the center must
    /// not keep a window for a topic nobody can write in. The chat is looked up once.
    fn served(&self, inbound: Inbound) -> Option<(Surface, TopicEvent)> {
        let What::InTopic(surface, event) = inbound.what else {
            return None;
        };
        let allowed = self.allowed(inbound.user);
        if !allowed && !matches!(event, TopicEvent::TopicClosed { .. }) {
            return None;
        }
        if !self.serves_chat(surface.chat_id) {
            if allowed {
                self.explain_unserved(inbound.user, surface.chat_id);
            }
            return None;
        }
        Some((surface, event))
    }

    /// The bot was added to a group or removed from it: a group an allowed user added it to is
    /// owned (see [`App::serves_chat`]); a removal forgets it, whoever removed the bot.
    fn membership_changed(&self, user: u64, chat_id: i64, present: bool) {
        if chat_id > 0 {
            return; // a private chat: always the user's own
        }
        let recorded = if !present {
            tracing::info!(chat.id = chat_id, "the bot was removed from a group");
            self.store.disown_chat(chat_id)
        } else if self.allowed(user) {
            tracing::info!(
                chat.id = chat_id,
                "an allowed user added the bot to a group"
            );
            self.store.own_chat(chat_id, user)
        } else {
            tracing::info!(
                chat.id = chat_id,
                "the bot was added to a group by someone who is not an allowed user; it stays silent there"
            );
            Ok(())
        };
        if let Err(err) = recorded {
            tracing::error!(error = %err, "recording the bot's membership failed");
        }
    }

    /// Answers a button press that can do nothing ("This button has expired.").
    fn expire_button(&self, query_id: String) {
        let tg = self.outbox.tg().clone();
        tokio::spawn(async move {
            let expired = crate::telegram::callback::EXPIRED;
            let _ = tg.answer_callback(&query_id, Some(expired)).await;
        });
    }

    /// Takes one update from polling: drops it unless an allowed user sent it and it is new,
    /// writes it to the inbox, then queues it on its topic's task.
    pub fn dispatch(self: &Arc<Self>, update: &Update) {
        let Some(inbound) = self.read(update) else {
            tracing::debug!(
                update.id = update.id.0,
                "update not for the center; ignored"
            );
            return;
        };
        if let What::Membership { chat_id, present } = inbound.what {
            self.membership_changed(inbound.user, chat_id, present);
            return;
        }
        if let What::StaleButton { query_id } = &inbound.what
            && self.allowed(inbound.user)
        {
            self.expire_button(query_id.clone());
            return;
        }
        // Strangers get nothing: no reply, no typing, no state.
        let Some((surface, event)) = self.served(inbound) else {
            tracing::debug!(
                update.id = update.id.0,
                "update not for the center; ignored"
            );
            return;
        };
        let lease = match crate::inbox::accept(&self.store, update) {
            Ok(Some(lease)) => lease,
            Ok(None) => {
                tracing::debug!(update.id = update.id.0, "duplicate update ignored");
                return;
            }
            Err(err) => {
                tracing::error!(error = %err, "cannot record the update; ignoring it");
                return;
            }
        };
        self.route(surface, event, lease);
    }

    /// Handles again, in order, the updates a stopped process left unfinished (see
    /// [`crate::inbox`]). Runs before polling starts.
    pub fn replay_inbox(self: &Arc<Self>) {
        let unfinished = match crate::inbox::unfinished(&self.store) {
            Ok(u) => u,
            Err(err) => {
                tracing::error!(error = %err, "cannot read the inbox; unfinished updates are not replayed");
                return;
            }
        };
        for (update, lease) in unfinished {
            match self.read(&update).and_then(|i| self.served(i)) {
                Some((surface, event)) => {
                    tracing::info!(update.id = update.id.0, "replaying an unfinished update");
                    self.route(surface, event, lease);
                }
                // The user is no longer allowed: finished without effect.
                None => drop(lease),
            }
        }
    }

    /// Queues an accepted update on its topic's task, starting one if there is none or the old
    /// one ended (a panic there must not silence the topic).
    fn route(self: &Arc<Self>, surface: Surface, event: TopicEvent, lease: UpdateLease) {
        self.topics.with(surface, |topic| {
            let mut item = (event, lease);
            for _ in 0..2 {
                let tx = topic.updates.get_or_insert_with(|| {
                    let (tx, rx) = mpsc::unbounded_channel();
                    tokio::spawn(self.clone().topic_loop(surface, rx));
                    tx
                });
                match tx.send(item) {
                    Ok(()) => return,
                    Err(mpsc::error::SendError(back)) => {
                        tracing::error!(
                            chat.id = surface.chat_id,
                            thread.id = surface.thread_id,
                            "a topic's task had ended; starting it again"
                        );
                        topic.updates = None;
                        item = back;
                    }
                }
            }
        });
    }

    /// Handles a topic's updates in order. Attachments are gathered while they keep coming
    /// (an album, or a burst of files) and taken to Codex as one input before anything else
    /// of the topic is handled. Media to an unbound topic is ignored without download.
    async fn topic_loop(
        self: Arc<Self>,
        surface: Surface,
        mut rx: mpsc::UnboundedReceiver<(TopicEvent, UpdateLease)>,
    ) {
        let mut batch: Vec<(crate::media::Attachment, UpdateLease)> = Vec::new();
        loop {
            let next = if batch.is_empty() {
                rx.recv().await
            } else {
                match tokio::time::timeout(ATTACHMENT_BURST, rx.recv()).await {
                    Ok(next) => next,
                    Err(_) => {
                        self.take_attachments(surface, std::mem::take(&mut batch));
                        continue;
                    }
                }
            };
            let Some((event, lease)) = next else { break };
            if let TopicEvent::Attachment(a) = event {
                // Media to a topic that is not bound is ignored; when the binding cannot be
                // read, the batch's own check tells the user.
                if !matches!(self.binding(surface), Ok(None)) {
                    batch.push((a, lease));
                }
                continue;
            }
            if !batch.is_empty() {
                self.take_attachments(surface, std::mem::take(&mut batch));
            }
            // A bug in one update must not end the topic (the updates queued behind it
            // would be dropped with it).
            let app = self.clone();
            let handled = self
                .tasks
                .run_guarded("topic update", async move {
                    app.handle(surface, event, lease).await;
                })
                .await;
            if handled.is_err() {
                self.notice(surface, FAILED_HERE, None);
            }
        }
        if !batch.is_empty() {
            self.take_attachments(surface, batch);
        }
    }

    /// Handles one event of a topic; `lease` keeps its update unfinished in the inbox until the
    /// work it started is done (it is dropped here unless an input or a menu takes it along).
    async fn handle(self: &Arc<Self>, surface: Surface, event: TopicEvent, lease: UpdateLease) {
        match event {
            TopicEvent::Text { text, message_id } => {
                let mode = match self.store.binding(surface) {
                    Ok(b) => b.map_or(InputMode::Steer, |b| b.mode),
                    Err(_) => InputMode::Steer,
                };
                let input = PendingInput {
                    text,
                    reply_to: message_id,
                    mode,
                    leases: vec![lease],
                };
                self.input_or_bind(surface, input).await;
            }
            TopicEvent::Command {
                command,
                args,
                message_id,
            } => {
                self.command(surface, command, &args, message_id, lease)
                    .await
            }
            TopicEvent::Voice(voice) => {
                if !matches!(self.binding(surface), Ok(None)) {
                    self.take_voice(surface, voice, lease);
                }
            }
            TopicEvent::Unsupported { message_id } => {
                if matches!(self.binding(surface), Ok(Some(_))) {
                    self.notice(
                        surface,
                        "This kind of message cannot be passed to Codex; send text or a file.",
                        Some(message_id),
                    );
                }
            }
            TopicEvent::TopicClosed { by } => {
                let why = if self.allowed(by) {
                    TopicGone::Closed
                } else {
                    TopicGone::ClosedByStranger(by)
                };
                self.on_topic_gone(surface, why).await;
            }
            TopicEvent::Button(b) => {
                let answer = self
                    .on_callback(surface, b.callback, Some(b.message_id))
                    .await;
                let _ = self
                    .outbox
                    .tg()
                    .answer_callback(&b.query_id, answer.as_deref())
                    .await;
            }
            // Taken by `topic_loop`.
            TopicEvent::Attachment(_) => {}
        }
    }

    /// The topic was closed or deleted: its window is killed and the binding removed; the Codex
    /// session stays resumable. When an allowed user did not close it themselves (a deleted
    /// topic, or one closed by another admin), the allowed users are told in private: a window
    /// never goes away silently.
    pub(crate) async fn on_topic_gone(&self, surface: Surface, why: TopicGone) {
        let Ok(Some(binding)) = self.store.remove_binding(surface) else {
            return;
        };
        tracing::info!(
            chat.id = surface.chat_id,
            thread.id = surface.thread_id,
            why = ?why,
            "topic gone; closing its window"
        );
        if let Some(node) = self.node(&binding.node) {
            // Its conversation leaves the resume picker (unless asked for): the topic is gone.
            if let Ok(R::Windows(w)) = node
                .call(Op::ListWindows(v1::ListWindows {}), CALL_TIMEOUT)
                .await
                && let Some(s) = w
                    .sessions
                    .iter()
                    .find(|s| s.session_id == binding.session_id && !s.thread_id.is_empty())
                && let Err(err) = self
                    .store
                    .hide_thread(&binding.node, &ThreadId::new(s.thread_id.as_str()))
            {
                tracing::error!(error = %err, "hiding a closed topic's session failed");
            }
            let _ = node
                .call(
                    Op::KillWindow(v1::KillWindow {
                        session_id: binding.session_id.to_string(),
                        ..Default::default()
                    }),
                    CALL_TIMEOUT,
                )
                .await;
        }
        let _ = self.store.clear_status(surface);
        let what = match why {
            TopicGone::Closed => return,
            TopicGone::Deleted => "was deleted".to_owned(),
            TopicGone::ClosedByStranger(user) => {
                format!("was closed by Telegram user {user}, who is not an allowed user,")
            }
        };
        let text = format!(
            "🗑 A topic bound to Codex in {} on {} {what} so its Codex window was closed. \
             The session is kept: /resume in a topic brings it back.",
            binding.cwd, binding.node
        );
        self.tell_owners(&text);
    }
}
