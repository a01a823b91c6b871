//! Read-only topics: the resume picker's "👁 Read only" binds a topic to a persisted Codex
//! thread without starting a window. The topic gets the conversation so far, paged the way
//! `/history` pages; nothing typed there reaches Codex (each message is answered instead), and
//! "▶️ Continue live" starts a window resuming the thread and binds the topic to it. The state
//! is in the store (`store::replay`), so a restart keeps the topic read-only.

use std::sync::Arc;

use proto::v1::{self, reply::Result as R, request::Op};

use super::{Menu, age, escape_html, short};
use crate::{
    app::{App, CALL_TIMEOUT},
    pending::PendingInput,
    store::STATE_UNREADABLE,
    store::{Binding, InputMode, Replay, Surface},
    telegram::{
        api::Keyboard,
        callback::{Callback, ReplayAction},
        outbox::{Class, Edit, Send},
    },
};

/// Conversation entries per page (as `/history`).
const PER_PAGE: u32 = 5;

/// The answer to a message typed in a read-only topic.
const READ_ONLY: &str =
    "👁 Not sent: this topic is read-only. Press ▶️ Continue live to resume the session here.";

impl App {
    /// Makes the menu's topic read-only on `session` and shows its newest page.
    pub(super) async fn bind_read_only(
        self: &Arc<Self>,
        token: &str,
        menu: Menu,
        cwd: String,
        session: v1::ResumableSession,
    ) {
        match self.binding(menu.surface) {
            Ok(None) => {}
            Ok(Some(_)) => {
                self.close_menu(token, &menu, "This topic is already bound.");
                return;
            }
            Err(_) => {
                self.close_menu(token, &menu, STATE_UNREADABLE);
                return;
            }
        }
        let replay = Replay {
            surface: menu.surface,
            node: menu.node.clone(),
            codex_thread: session.thread_id,
            cwd,
            summary: session.summary,
        };
        if let Err(err) = self.store.put_replay(&replay) {
            tracing::error!(error = %err, "saving a read-only topic failed");
            self.close_menu(token, &menu, "Could not save the read-only binding.");
            return;
        }
        let text = format!(
            "👁 Read only: <b>{}</b> in <code>{}</code> on {}. Nothing typed here reaches Codex until you press ▶️ Continue live.",
            escape_html(&short(&replay.summary, 60)),
            escape_html(&replay.cwd),
            escape_html(&replay.node)
        );
        self.close_menu(token, &menu, &text);
        if let Some(pending) = &menu.pending {
            self.notice(menu.surface, READ_ONLY, Some(pending.reply_to));
        }
        self.replay_page(&replay, 0, None).await;
    }

    /// Ends the topic's read-only state once it is bound live (by `/bind` or Continue live).
    pub(super) fn end_read_only(&self, surface: Surface) {
        if let Err(err) = self.store.drop_replay(surface) {
            tracing::error!(error = %err, "ending a read-only topic failed");
        }
    }

    /// Answers a message typed in a read-only topic; false if the topic is not read-only (the
    /// message goes its usual way).
    pub(crate) fn refused_read_only(&self, surface: Surface, input: &PendingInput) -> bool {
        match self.store.replay(surface) {
            Ok(None) => false,
            Ok(Some(_)) => {
                self.notice(surface, READ_ONLY, Some(input.reply_to));
                true
            }
            Err(err) => {
                tracing::error!(error = %err, "reading a read-only topic failed");
                self.notice(surface, STATE_UNREADABLE, Some(input.reply_to));
                true
            }
        }
    }

    /// A button of a read-only topic; returns the toast.
    pub(super) async fn replay_button(
        self: &Arc<Self>,
        surface: Surface,
        action: ReplayAction,
        message_id: Option<i32>,
    ) -> Option<String> {
        let replay = match self.store.replay(surface) {
            Ok(Some(r)) => r,
            Ok(None) => return Some("This topic is not read-only any more.".into()),
            Err(err) => {
                tracing::error!(error = %err, "reading a read-only topic failed");
                return Some(STATE_UNREADABLE.into());
            }
        };
        match action {
            ReplayAction::Page { skip } => {
                self.replay_page(&replay, skip, message_id).await;
                None
            }
            ReplayAction::Live => Some(self.continue_live(replay).await),
        }
    }

    /// Sends (or, with `page_of`, edits into) a page of the thread's conversation.
    async fn replay_page(&self, replay: &Replay, skip: u32, page_of: Option<i32>) {
        let surface = replay.surface;
        let Some(node) = self.node(&replay.node).filter(|n| n.online()) else {
            self.notice(
                surface,
                &format!(
                    "{} is offline; the conversation shows when it is back.",
                    replay.node
                ),
                None,
            );
            return;
        };
        let op = Op::GetHistory(v1::GetHistory {
            session_id: String::new(),
            skip,
            limit: PER_PAGE,
            thread_id: replay.codex_thread.clone(),
        });
        let history = match node.call(op, CALL_TIMEOUT).await {
            Ok(R::History(h)) => h,
            Ok(_) => v1::History::default(),
            Err(err) => {
                self.notice(surface, &format!("No history: {err}"), None);
                return;
            }
        };
        let (html, keyboard) = render_page(&history, skip);
        match page_of {
            Some(message_id) => drop(self.outbox.edit(Edit {
                chat_id: surface.chat_id,
                message_id,
                plain: html.clone(),
                html,
                keyboard: Some(keyboard),
                status_of: None,
            })),
            None => drop(self.outbox.send(Send {
                surface,
                plain: html.clone(),
                html,
                keyboard: Some(keyboard),
                reply_to: None,
                class: Class::Message,
            })),
        }
    }

    /// Starts a window resuming the read-only thread and binds the topic to it.
    /// The pages' buttons stay; pressed later they answer that the topic is live now.
    async fn continue_live(self: &Arc<Self>, replay: Replay) -> String {
        let surface = replay.surface;
        match self.binding(surface) {
            Ok(None) => {}
            Ok(Some(_)) => return "This topic is already bound.".into(),
            Err(_) => return STATE_UNREADABLE.into(),
        }
        let Some(node) = self.node(&replay.node).filter(|n| n.online()) else {
            return format!("{} is offline.", replay.node);
        };
        // Taking the row first makes a double press start one window, not two.
        match self.store.drop_replay(surface) {
            Ok(true) => {}
            Ok(false) => return "This topic is not read-only any more.".into(),
            Err(err) => {
                tracing::error!(error = %err, "ending a read-only topic failed");
                return STATE_UNREADABLE.into();
            }
        }
        let restore = |app: &Self| {
            if let Err(err) = app.store.put_replay(&replay) {
                tracing::error!(error = %err, "restoring a read-only topic failed");
            }
        };
        let created = node
            .call(
                Op::CreateSession(v1::CreateSession {
                    cwd: replay.cwd.clone(),
                    resume_id: replay.codex_thread.clone(),
                    idempotency_key: format!("replay-{}", shared::random::hex_token::<8>()),
                    ..Default::default()
                }),
                CALL_TIMEOUT,
            )
            .await;
        let info = match created {
            Ok(R::Created(c)) => c.session.unwrap_or_default(),
            Ok(_) => {
                restore(self);
                return "Unexpected answer from the machine.".into();
            }
            Err(err) => {
                restore(self);
                self.notice(
                    surface,
                    &format!("Could not resume the session: {err}"),
                    None,
                );
                return "Not resumed.".into();
            }
        };
        let binding = Binding {
            surface,
            node: replay.node.clone().into(),
            session_id: info.session_id.clone().into(),
            cwd: replay.cwd.clone(),
            mode: InputMode::Steer,
        };
        if let Err(err) = self.store.put_binding(&binding) {
            tracing::error!(error = %err, "saving a binding failed");
            restore(self);
            return "Could not save the binding.".into();
        }
        self.notice(
            surface,
            &format!(
                "▶️ Resumed live in {} on {} (tmux window {}). Type to continue the conversation.",
                replay.cwd, replay.node, info.window_name
            ),
            None,
        );
        "Resuming…".into()
    }
}

/// A page of the conversation, newest first, with paging and "Continue live" buttons.
fn render_page(history: &v1::History, skip: u32) -> (String, Keyboard) {
    let mut html = if history.entries.is_empty() {
        "👁 <b>Read only</b>: no messages in this session yet.\n".to_owned()
    } else {
        format!(
            "👁 <b>Read only</b> ({}–{} of {}, newest first)\n",
            skip + 1,
            skip + history.entries.len() as u32,
            history.total
        )
    };
    for e in &history.entries {
        let who = if e.role == "user" { "👤" } else { "🤖" };
        let body: String = e.text.chars().take(500).collect();
        html += &format!(
            "\n{who} <i>{}</i>\n{}\n",
            age(e.timestamp_ms),
            escape_html(&body)
        );
    }
    let page = |label: &str, skip| {
        (
            label.to_owned(),
            Callback::Replay(ReplayAction::Page { skip }).encode(),
        )
    };
    let mut row = Vec::new();
    if skip > 0 {
        row.push(page("◀ Newer", skip.saturating_sub(PER_PAGE)));
    }
    if skip + PER_PAGE < history.total {
        row.push(page("Older ▶", skip + PER_PAGE));
    }
    let live = vec![(
        "▶️ Continue live".to_owned(),
        Callback::Replay(ReplayAction::Live).encode(),
    )];
    let keyboard = if row.is_empty() {
        vec![live]
    } else {
        vec![row, live]
    };
    (html, keyboard)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(role: &str, text: &str) -> v1::HistoryEntry {
        v1::HistoryEntry {
            role: role.into(),
            text: text.into(),
            timestamp_ms: 0,
        }
    }

    #[test]
    fn a_page_escapes_text_and_offers_paging_and_continue_live() {
        let history = v1::History {
            entries: vec![entry("assistant", "a <b> c"), entry("user", "hi")],
            total: 12,
        };
        let (html, kb) = render_page(&history, 5);
        assert!(html.contains("(6–7 of 12"), "{html}");
        assert!(html.contains("a &lt;b&gt; c"), "{html}");
        let labels: Vec<&str> = kb.iter().flatten().map(|(l, _)| l.as_str()).collect();
        assert_eq!(labels, ["◀ Newer", "Older ▶", "▶️ Continue live"]);
        assert_eq!(
            Callback::decode(&kb[0][1].1),
            Some(Callback::Replay(ReplayAction::Page { skip: 10 }))
        );
    }

    #[test]
    fn an_empty_session_still_offers_continue_live() {
        let (html, kb) = render_page(&v1::History::default(), 0);
        assert!(html.contains("no messages"), "{html}");
        assert_eq!(kb.len(), 1);
        assert_eq!(
            Callback::decode(&kb[0][0].1),
            Some(Callback::Replay(ReplayAction::Live))
        );
    }
}
