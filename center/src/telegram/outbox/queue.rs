//! One chat's pending work and the order it goes out in: answers first, edits coalesced.
//!
//! Pure bookkeeping (no I/O, no waiting): the [`Outbox`](super::Outbox) handle pushes into a
//! chat's [`Queue`], and that chat's worker asks it for the next [`Step`] and pops the [`Job`]
//! to run. Sends (text or media) go before changes of sent messages (edits, media edits,
//! deletions), and final answers before other sends. Changes of one message and kind are
//! coalesced (only the newest text or file is sent); deleting a message, or a final answer to
//! the topic whose status message an edit is, settles the queued edits as done. Drafts and chat
//! actions go only when nothing else is queued.

use std::{collections::VecDeque, time::Duration};

use tokio::{sync::oneshot, time::Instant};

use super::{Class, Edit, EditMedia, LiveText, MediaSend, Send};
use crate::{store::Surface, telegram::api::TgError};

/// At most one draft update per chat this often.
pub(super) const DRAFT_EVERY: Duration = Duration::from_secs(1);

/// Told the message id once Telegram accepted a send (or why not).
pub(super) type SendDone = oneshot::Sender<Result<i32, TgError>>;
/// Told when Telegram accepted a change (or why not).
pub(super) type EditDone = oneshot::Sender<Result<(), TgError>>;

/// A queued new message.
#[derive(Debug)]
pub(super) enum Outgoing {
    Text(Send, Option<LiveText>),
    Media(MediaSend),
}

impl Outgoing {
    pub(super) fn class(&self) -> Class {
        match self {
            Self::Text(s, _) => s.class,
            Self::Media(m) => m.class,
        }
    }

    pub(super) fn surface(&self) -> Surface {
        match self {
            Self::Text(s, _) => s.surface,
            Self::Media(m) => m.surface,
        }
    }
}

/// A queued change of a sent message. Changes of one message and kind are coalesced.
#[derive(Debug)]
pub(super) enum Change {
    Text(Edit),
    Media(EditMedia),
    Delete(i32),
}

impl Change {
    fn message_id(&self) -> i32 {
        match self {
            Self::Text(e) => e.message_id,
            Self::Media(e) => e.message_id,
            Self::Delete(id) => *id,
        }
    }

    /// Whether `other` replaces `self` when queued after it.
    fn replaced_by(&self, other: &Change) -> bool {
        self.message_id() == other.message_id()
            && std::mem::discriminant(self) == std::mem::discriminant(other)
    }
}

/// A queued draft preview.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Draft {
    pub(super) surface: Surface,
    pub(super) draft_id: i64,
    pub(super) html: String,
}

/// A chat's pending work. Only its worker takes from it.
#[derive(Default)]
pub(super) struct Queue {
    pub(super) sends: VecDeque<(Outgoing, Option<SendDone>)>,
    pub(super) changes: VecDeque<(Change, Vec<EditDone>)>,
    drafts: VecDeque<Draft>,
    pub(super) typing: Option<Surface>,
    pub(super) last_typing: Option<Instant>,
    last_draft: Option<Instant>,
}

/// What a chat's worker does next.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Step {
    /// Nothing queued.
    Idle,
    /// A send or a change, once the budget allows.
    Paced,
    /// A draft, once the budget allows.
    Draft,
    /// A chat action (costs no budget).
    Typing,
    /// Only drafts queued, and one was sent less than [`DRAFT_EVERY`] ago.
    WaitUntil(Instant),
}

/// A job taken from a queue.
pub(super) enum Job {
    Send(Outgoing, Option<SendDone>),
    Change(Change, Vec<EditDone>),
    Draft(Draft),
    Typing(Surface),
}

impl Queue {
    /// Stable by priority: after every queued send of the same or a higher priority. A real
    /// message to a place ends the drafts previewing it there.
    pub(super) fn push_send(&mut self, send: Outgoing, done: Option<SendDone>) {
        let surface = send.surface();
        self.drafts.retain(|d| d.surface != surface);
        if send.class() == Class::Final {
            let mut kept = VecDeque::with_capacity(self.changes.len());
            for (c, dones) in self.changes.drain(..) {
                if matches!(&c, Change::Text(e) if e.status_of == Some(surface)) {
                    for d in dones {
                        let _ = d.send(Ok(()));
                    }
                } else {
                    kept.push_back((c, dones));
                }
            }
            self.changes = kept;
        }
        let at = self
            .sends
            .iter()
            .position(|(s, _)| s.class() > send.class())
            .unwrap_or(self.sends.len());
        self.sends.insert(at, (send, done));
    }

    /// Replaces a queued change of the same message and kind, or queues `change` last. A
    /// deletion settles the message's queued edits as done: they no longer matter.
    pub(super) fn push_change(&mut self, change: Change, done: EditDone) {
        if let Change::Delete(id) = change {
            let mut kept = VecDeque::with_capacity(self.changes.len());
            for (c, dones) in self.changes.drain(..) {
                if c.message_id() == id && !matches!(c, Change::Delete(_)) {
                    for d in dones {
                        let _ = d.send(Ok(()));
                    }
                } else {
                    kept.push_back((c, dones));
                }
            }
            self.changes = kept;
        }
        let mut change = change;
        if let Some(slot) = self
            .changes
            .iter_mut()
            .find(|(c, _)| c.replaced_by(&change))
        {
            // An edit that must not be dropped for an answer (a receipt's outcome) keeps that
            // when a newer text replaces it.
            if let (Change::Text(old), Change::Text(new)) = (&slot.0, &mut change)
                && old.status_of.is_none()
            {
                new.status_of = None;
            }
            slot.0 = change;
            slot.1.push(done);
        } else {
            self.changes.push_back((change, vec![done]));
        }
    }

    /// Keeps only the newest text of each draft.
    pub(super) fn push_draft(&mut self, draft: Draft) {
        if let Some(d) = self
            .drafts
            .iter_mut()
            .find(|d| d.surface == draft.surface && d.draft_id == draft.draft_id)
        {
            d.html = draft.html;
        } else {
            self.drafts.push_back(draft);
        }
    }

    /// Whether a change replacing `change` was queued (while `change` was being sent).
    pub(super) fn has_newer(&self, change: &Change) -> bool {
        self.changes.iter().any(|(c, _)| change.replaced_by(c))
    }

    pub(super) fn step(&self, now: Instant) -> Step {
        if !self.sends.is_empty() || !self.changes.is_empty() {
            return Step::Paced;
        }
        let draft_at = self.last_draft.map(|t| t + DRAFT_EVERY);
        let draft_due = draft_at.is_none_or(|t| t <= now);
        match draft_at {
            _ if !self.drafts.is_empty() && draft_due => Step::Draft,
            _ if self.typing.is_some() => Step::Typing,
            Some(t) if !self.drafts.is_empty() => Step::WaitUntil(t),
            _ => Step::Idle,
        }
    }

    /// Whether the next paced job is a final answer (it may spend the reserve).
    pub(super) fn next_is_final(&self) -> bool {
        self.sends
            .front()
            .is_some_and(|(s, _)| s.class() == Class::Final)
    }

    /// The next send, else the next change.
    pub(super) fn pop_paced(&mut self) -> Option<Job> {
        if let Some((s, d)) = self.sends.pop_front() {
            Some(Job::Send(s, d))
        } else {
            let (c, d) = self.changes.pop_front()?;
            Some(Job::Change(c, d))
        }
    }

    pub(super) fn pop_draft(&mut self, now: Instant) -> Option<Draft> {
        let d = self.drafts.pop_front()?;
        self.last_draft = Some(now);
        Some(d)
    }

    pub(super) fn pop_typing(&mut self, now: Instant) -> Option<Surface> {
        let s = self.typing.take()?;
        self.last_typing = Some(now);
        Some(s)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::telegram::api::{MediaKind, Upload};

    fn here(chat_id: i64, thread_id: i32) -> Surface {
        Surface { chat_id, thread_id }
    }

    fn text(surface: Surface, html: &str, class: Class) -> Outgoing {
        Outgoing::Text(
            Send {
                surface,
                html: html.into(),
                plain: html.into(),
                keyboard: None,
                reply_to: None,
                class,
            },
            None,
        )
    }

    fn upload(bytes: &[u8]) -> Upload {
        Upload {
            kind: MediaKind::Photo,
            file_name: "p.png".into(),
            bytes: Arc::new(bytes.to_vec()),
        }
    }

    fn media(surface: Surface, caption: &str, class: Class) -> Outgoing {
        Outgoing::Media(MediaSend {
            surface,
            upload: upload(b"x"),
            caption_html: caption.into(),
            caption_plain: caption.into(),
            keyboard: None,
            reply_to: None,
            class,
        })
    }

    fn edit(message_id: i32, html: &str) -> Change {
        status_edit(message_id, html, None)
    }

    fn edit_media(message_id: i32, caption: &str) -> Change {
        Change::Media(EditMedia {
            chat_id: 1,
            message_id,
            upload: upload(caption.as_bytes()),
            caption_html: caption.into(),
            caption_plain: caption.into(),
            keyboard: None,
        })
    }

    fn draft(surface: Surface, draft_id: i64, html: &str) -> Draft {
        Draft {
            surface,
            draft_id,
            html: html.into(),
        }
    }

    /// What a job is, for comparing orders.
    fn label(job: &Job) -> String {
        match job {
            Job::Send(Outgoing::Text(s, _), _) => format!("text {}", s.html),
            Job::Send(Outgoing::Media(m), _) => format!("media {}", m.caption_html),
            Job::Change(Change::Text(e), d) => {
                format!("edit {} {} x{}", e.message_id, e.html, d.len())
            }
            Job::Change(Change::Media(e), d) => {
                format!(
                    "edit_media {} {} x{}",
                    e.message_id,
                    e.caption_html,
                    d.len()
                )
            }
            Job::Change(Change::Delete(id), d) => format!("delete {id} x{}", d.len()),
            Job::Draft(d) => format!("draft {} {}", d.draft_id, d.html),
            Job::Typing(_) => "typing".into(),
        }
    }

    fn drain(q: &mut Queue) -> Vec<String> {
        std::iter::from_fn(|| q.pop_paced())
            .map(|j| label(&j))
            .collect()
    }

    #[test]
    fn sends_of_both_kinds_go_by_priority_then_changes() {
        let s = here(1, 0);
        let mut q = Queue::default();
        q.push_change(edit(9, "e"), oneshot::channel().0);
        q.push_send(text(s, "status", Class::Status), None);
        q.push_send(media(s, "photo msg", Class::Message), None);
        q.push_send(text(s, "msg", Class::Message), None);
        q.push_send(media(s, "photo final", Class::Final), None);
        q.push_send(text(s, "final", Class::Final), None);
        assert_eq!(
            drain(&mut q),
            [
                "media photo final",
                "text final",
                "media photo msg",
                "text msg",
                "text status",
                "edit 9 e x1",
            ]
        );
    }

    fn status_edit(message_id: i32, html: &str, of: Option<Surface>) -> Change {
        Change::Text(Edit {
            chat_id: 1,
            message_id,
            html: html.into(),
            plain: html.into(),
            keyboard: None,
            status_of: of,
        })
    }

    #[test]
    fn an_answer_makes_its_topics_status_edits_moot_but_not_receipts() {
        let (a, b) = (here(1, 5), here(1, 6));
        let mut q = Queue::default();
        let (tx, moot) = oneshot::channel();
        q.push_change(status_edit(10, "⚙️ ls", Some(a)), tx);
        // A receipt's outcome coalesced with a status line of the same message stays.
        let (tx, _) = oneshot::channel();
        q.push_change(status_edit(11, "✓ Delivered", None), tx);
        let (tx, _) = oneshot::channel();
        q.push_change(status_edit(11, "✓ Delivered\n⚙️ ls", Some(a)), tx);
        // Another topic's status is not touched.
        let (tx, _) = oneshot::channel();
        q.push_change(status_edit(20, "⚙️ make", Some(b)), tx);
        q.push_send(text(a, "the answer", Class::Final), None);
        assert_eq!(
            drain(&mut q),
            [
                "text the answer",
                "edit 11 ✓ Delivered\n⚙️ ls x2",
                "edit 20 ⚙️ make x1"
            ]
        );
        assert!(moot.blocking_recv().unwrap().is_ok());
    }

    #[test]
    fn changes_coalesce_per_message_and_kind_and_deletes_drop_edits() {
        let mut q = Queue::default();
        let mut rx = Vec::new();
        let mut push = |q: &mut Queue, c: Change| {
            let (tx, r) = oneshot::channel();
            q.push_change(c, tx);
            rx.push(r);
        };
        push(&mut q, edit(5, "a"));
        push(&mut q, edit_media(5, "m1"));
        push(&mut q, edit(6, "x"));
        push(&mut q, edit(5, "b"));
        push(&mut q, edit_media(5, "m2"));
        push(&mut q, edit_media(7, "keep"));
        assert_eq!(q.changes.len(), 4, "one per message and kind");
        assert_eq!(
            q.changes[0].1.len(),
            2,
            "both senders of 5's text edit are kept"
        );
        // The edit in flight is moot once a newer one of the same message and kind is queued.
        assert!(q.has_newer(&edit(5, "old")));
        assert!(q.has_newer(&edit_media(5, "old")));
        assert!(!q.has_newer(&Change::Delete(5)));
        // Deleting message 5 settles its queued edits as done; a second deletion coalesces.
        push(&mut q, Change::Delete(5));
        push(&mut q, Change::Delete(5));
        let settled: Vec<bool> = rx
            .iter_mut()
            .map(|r| matches!(r.try_recv(), Ok(Ok(()))))
            .collect();
        assert_eq!(
            settled,
            [true, true, false, true, true, false, false, false]
        );
        assert_eq!(
            drain(&mut q),
            ["edit 6 x x1", "edit_media 7 keep x1", "delete 5 x2"]
        );
    }

    #[test]
    fn deleting_settles_superseded_edits_as_done() {
        let mut q = Queue::default();
        let (tx, mut rx) = oneshot::channel();
        q.push_change(edit(5, "a"), tx);
        q.push_change(Change::Delete(5), oneshot::channel().0);
        assert!(matches!(rx.try_recv(), Ok(Ok(()))));
        // An edit queued after the deletion stays (and will fail: the message is gone).
        q.push_change(edit(5, "late"), oneshot::channel().0);
        assert_eq!(drain(&mut q), ["delete 5 x1", "edit 5 late x1"]);
    }

    #[test]
    fn drafts_wait_for_an_empty_queue_coalesce_and_yield_to_real_messages() {
        let a = here(10, 0);
        let b = here(10, 3);
        let now = Instant::now();
        let mut q = Queue::default();
        assert_eq!(q.step(now), Step::Idle);
        q.push_draft(draft(a, 1, "one"));
        q.push_draft(draft(a, 1, "two"));
        q.push_draft(draft(a, 2, "other"));
        q.push_draft(draft(b, 1, "topic"));
        assert_eq!(q.drafts.len(), 3, "one per (surface, draft id)");
        assert_eq!(q.drafts[0].html, "two");
        assert_eq!(q.step(now), Step::Draft);
        // Anything else queued goes first.
        q.push_change(edit(4, "e"), oneshot::channel().0);
        assert_eq!(q.step(now), Step::Paced);
        drain(&mut q);
        // A real message to a place drops the drafts previewing it there.
        q.push_send(text(a, "answer", Class::Final), None);
        assert_eq!(q.drafts, [draft(b, 1, "topic")]);
        drain(&mut q);
        q.push_draft(draft(a, 1, "next"));
        assert_eq!(q.step(now), Step::Draft);
        assert_eq!(q.pop_draft(now), Some(draft(b, 1, "topic")));
        // At most one draft a second; typing may go meanwhile.
        assert_eq!(q.step(now), Step::WaitUntil(now + DRAFT_EVERY));
        q.typing = Some(a);
        assert_eq!(q.step(now), Step::Typing);
        assert_eq!(q.pop_typing(now), Some(a));
        assert_eq!(q.step(now + DRAFT_EVERY), Step::Draft);
        assert_eq!(q.pop_draft(now + DRAFT_EVERY), Some(draft(a, 1, "next")));
        assert_eq!(q.step(now + DRAFT_EVERY), Step::Idle);
    }
}
