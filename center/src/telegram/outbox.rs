//! The one way messages leave the center: per-chat queues that honour Telegram's limits.
//!
//! Telegram punishes a bot that sends too fast with 429s that hold a chat for many seconds,
//! and the center's most important message, a turn's final answer, usually comes last, after a
//! receipt and a run of status edits. So every call that posts or changes a message goes
//! through here, and three rules shape the design:
//!
//! - **Answers first.** Sends (text or media) go before changes of sent messages (edits, media
//!   edits, deletions), and final answers before other sends. Final answers may spend the whole
//!   budget, everything else only what lies above a reserve, so a busy turn's receipts and
//!   status edits never leave its answer waiting for a token. A final answer to a topic drops
//!   the queued edits of that topic's status message (moot once the answer is there), and a
//!   receipt queued with a [`LiveText`] goes out with the newest text it was given, so an
//!   outcome (and status lines) known before Telegram's turn cost no edit.
//! - **Budgets kept a little under Telegram's** (requests can arrive closer together than they
//!   were sent): a burst of 2 then 0.95 calls/s per chat, 19 in any minute per group shared by
//!   all its topics, 25/s overall. Edits of one message are coalesced (only the newest text or
//!   file is sent) and deleting a message drops its queued edits. Drafts (sendMessageDraft,
//!   private chats) are best effort: sent only when the chat has nothing else queued, at most
//!   one a second, only the newest text of each draft, and dropped on error or when a real
//!   message to the same place is queued (a stale preview must not follow the answer). Chat
//!   actions ("typing…") are sent only when the chat has nothing else to do and its budget is
//!   ample.
//! - **Never losing an accepted message.** A 429 pauses the chat for `retry_after` and retries
//!   the same job; messages are retried after network failures and 5xx until they go through
//!   (a file that is not a final answer: once); [`Outbox::sent_all`] lets a shutdown wait for
//!   the sends still queued.
//!
//! The parts: this file holds the [`Outbox`] handle and what callers hand it; `queue` is one
//! chat's pending work and its order (pure); `limits` is the budget arithmetic (pure); `worker`
//! is the task per chat that waits for the budget, makes the calls and retries them.

mod limits;
mod queue;
mod worker;

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use shared::sync::LockExt;
use tokio::{
    sync::{Notify, oneshot, watch},
    time::Instant,
};
use tokio_util::sync::CancellationToken;

use self::{
    limits::Limits,
    queue::{Change, Draft, Outgoing, Queue},
};
use super::api::{Keyboard, Tg, TgError, Upload};
use crate::store::Surface;

/// Priority of a send: lower goes first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Class {
    /// A final answer.
    Final,
    /// Commentary, notices, menus, receipts.
    Message,
    /// A new status message.
    Status,
}

impl Class {
    /// The name the audit records for a send of this class.
    fn audit_name(self) -> &'static str {
        match self {
            Self::Final => "final",
            Self::Message => "message",
            Self::Status => "status",
        }
    }
}

/// A message to send.
#[derive(Debug)]
pub struct Send {
    /// Where.
    pub surface: Surface,
    /// HTML text.
    pub html: String,
    /// The same text without markup (used if the HTML is refused).
    pub plain: String,
    /// Inline buttons.
    pub keyboard: Option<Keyboard>,
    /// Reply to this message.
    pub reply_to: Option<i32>,
    /// Priority.
    pub class: Class,
}

/// The text of a message that may change until it is actually sent (a receipt whose outcome,
/// and the turn's first status lines, may be known before the chat's turn comes). Plain text;
/// it is escaped for HTML when sent.
#[derive(Debug, Clone)]
pub struct LiveText(Arc<Mutex<LiveState>>);

#[derive(Debug)]
struct LiveState {
    text: String,
    sent: bool,
}

impl LiveText {
    /// A message that goes out with `text` unless it is changed before.
    pub fn new(text: impl Into<String>) -> Self {
        Self(Arc::new(Mutex::new(LiveState {
            text: text.into(),
            sent: false,
        })))
    }

    /// Changes the text it goes out with; false (and nothing changed) if it was sent already.
    pub fn update_unsent(&self, change: impl FnOnce(&mut String)) -> bool {
        let mut state = self.0.locked();
        if state.sent {
            return false;
        }
        change(&mut state.text);
        true
    }

    /// Whether both are the same message.
    pub fn is(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }

    /// The text as it is (or was) sent.
    pub fn text(&self) -> String {
        self.0.locked().text.clone()
    }

    /// The text to send now, as (HTML, plain); marks it sent.
    fn take_for_sending(&self) -> (String, String) {
        let mut state = self.0.locked();
        state.sent = true;
        (super::render::escape_html(&state.text), state.text.clone())
    }
}

/// A message to edit.
#[derive(Debug)]
pub struct Edit {
    /// Chat.
    pub chat_id: i64,
    /// Message.
    pub message_id: i32,
    /// New HTML text.
    pub html: String,
    /// Plain fallback.
    pub plain: String,
    /// New buttons (`None` removes them).
    pub keyboard: Option<Keyboard>,
    /// The topic whose status message this is: a final answer queued there makes the edit
    /// moot (dropped, reported as done).
    pub status_of: Option<Surface>,
}

/// A file to send (photo, document, video, animation or audio).
#[derive(Debug)]
pub struct MediaSend {
    /// Where.
    pub surface: Surface,
    /// The file.
    pub upload: Upload,
    /// HTML caption (may be empty).
    pub caption_html: String,
    /// The same caption without markup (used if the HTML is refused).
    pub caption_plain: String,
    /// Inline buttons.
    pub keyboard: Option<Keyboard>,
    /// Reply to this message.
    pub reply_to: Option<i32>,
    /// Priority.
    pub class: Class,
}

/// A media message whose file and caption to replace.
#[derive(Debug)]
pub struct EditMedia {
    /// Chat.
    pub chat_id: i64,
    /// Message.
    pub message_id: i32,
    /// The new file.
    pub upload: Upload,
    /// New HTML caption.
    pub caption_html: String,
    /// Plain fallback.
    pub caption_plain: String,
    /// New buttons (`None` removes them).
    pub keyboard: Option<Keyboard>,
}

/// A chat's queue and the wake-up of its worker.
type ChatSlot = (Arc<Mutex<Queue>>, Arc<Notify>);

/// What the handle and every chat's worker share.
struct Shared {
    tg: Tg,
    limits: Mutex<Limits>,
    queues: Mutex<HashMap<i64, ChatSlot>>,
    token: CancellationToken,
    /// Sends queued or in flight (not changes, drafts or chat actions): what a shutdown waits
    /// for.
    unsent: watch::Sender<usize>,
}

/// Cloneable handle on the outbox.
#[derive(Clone)]
pub struct Outbox {
    shared: Arc<Shared>,
}

/// Telegram shows a chat action for about 5 s; refresh it at most this often.
const TYPING_EVERY: Duration = Duration::from_secs(4);

impl Outbox {
    /// An outbox on `tg`; its workers stop when `token` is cancelled.
    pub fn new(tg: Tg, token: CancellationToken) -> Self {
        Self {
            shared: Arc::new(Shared {
                tg,
                limits: Mutex::new(Limits::new(Instant::now().into_std())),
                queues: Mutex::new(HashMap::new()),
                token,
                unsent: watch::Sender::new(0),
            }),
        }
    }

    /// Resolves once every send queued so far has been accepted or refused (a shutdown waits
    /// for this, within a grace period, so answers in flight still go out).
    pub async fn sent_all(&self) {
        let mut unsent = self.shared.unsent.subscribe();
        let _ = unsent.wait_for(|n| *n == 0).await;
    }

    /// Per chat: (chat id, queued sends, queued edits and deletes), for `center status`.
    pub fn queue_lengths(&self) -> Vec<(i64, usize, usize)> {
        let queues = self.shared.queues.locked();
        let mut out: Vec<(i64, usize, usize)> = queues
            .iter()
            .map(|(chat, (q, _))| {
                let q = q.locked();
                (*chat, q.sends.len(), q.changes.len())
            })
            .collect();
        out.sort_unstable();
        out
    }

    /// The client (for calls that are not paced: callback answers, polling).
    pub fn tg(&self) -> &Tg {
        &self.shared.tg
    }

    fn queue(&self, chat_id: i64) -> ChatSlot {
        let mut queues = self.shared.queues.locked();
        queues
            .entry(chat_id)
            .or_insert_with(|| {
                let q = Arc::new(Mutex::new(Queue::default()));
                let n = Arc::new(Notify::new());
                // The queue outlives its worker: a worker that panics is started again on
                // the same queue, so the chat's later messages still go out.
                let (state, queue, wake) = (self.shared.clone(), q.clone(), n.clone());
                shared::shutdown::supervise(
                    "outbox worker",
                    self.shared.token.clone(),
                    move || worker::run(state.clone(), chat_id, queue.clone(), wake.clone()),
                );
                (q, n)
            })
            .clone()
    }

    fn enqueue_send(&self, send: Outgoing) -> oneshot::Receiver<Result<i32, TgError>> {
        let (tx, rx) = oneshot::channel();
        self.shared.unsent.send_modify(|n| *n += 1);
        let (q, n) = self.queue(send.surface().chat_id);
        q.locked().push_send(send, Some(tx));
        n.notify_one();
        rx
    }

    fn enqueue_change(
        &self,
        chat_id: i64,
        change: Change,
    ) -> oneshot::Receiver<Result<(), TgError>> {
        let (tx, rx) = oneshot::channel();
        let (q, n) = self.queue(chat_id);
        q.locked().push_change(change, tx);
        n.notify_one();
        rx
    }

    /// Queues a send; the receiver gets the message id once Telegram accepted it.
    pub fn send(&self, send: Send) -> oneshot::Receiver<Result<i32, TgError>> {
        self.enqueue_send(Outgoing::Text(send, None))
    }

    /// Queues a send whose text may still change until it goes out (see [`LiveText`]).
    pub fn send_live(&self, send: Send, live: LiveText) -> oneshot::Receiver<Result<i32, TgError>> {
        self.enqueue_send(Outgoing::Text(send, Some(live)))
    }

    /// Queues a file among the sends (same priorities; a refused HTML caption is resent
    /// plain); the receiver gets the message id.
    pub fn send_media(&self, m: MediaSend) -> oneshot::Receiver<Result<i32, TgError>> {
        self.enqueue_send(Outgoing::Media(m))
    }

    /// Queues an edit, replacing any queued edit of the same message.
    pub fn edit(&self, edit: Edit) -> oneshot::Receiver<Result<(), TgError>> {
        self.enqueue_change(edit.chat_id, Change::Text(edit))
    }

    /// Queues a media edit, replacing any queued media edit of the same message.
    pub fn edit_media(&self, e: EditMedia) -> oneshot::Receiver<Result<(), TgError>> {
        self.enqueue_change(e.chat_id, Change::Media(e))
    }

    /// Queues a deletion (paced like an edit). Queued edits of the message are dropped and
    /// reported done.
    pub fn delete(&self, chat_id: i64, message_id: i32) -> oneshot::Receiver<Result<(), TgError>> {
        self.enqueue_change(chat_id, Change::Delete(message_id))
    }

    /// Shows a draft preview of a message being written (private chats only; best effort:
    /// only when the chat has nothing else queued, at most one a second, only the newest text
    /// of each `draft_id`; failures are logged and dropped).
    pub fn draft(&self, surface: Surface, draft_id: i64, html: String) {
        if surface.chat_id < 0 || draft_id == 0 {
            tracing::debug!(
                chat.id = surface.chat_id,
                draft_id,
                "drafts need a private chat and a non-zero id; dropped"
            );
            return;
        }
        let (q, n) = self.queue(surface.chat_id);
        q.locked().push_draft(Draft {
            surface,
            draft_id,
            html,
        });
        n.notify_one();
    }

    /// Shows "typing…" when the chat has nothing else queued (at most every 4 s).
    pub fn typing(&self, surface: Surface) {
        let (q, n) = self.queue(surface.chat_id);
        {
            let mut q = q.locked();
            if q.last_typing.is_some_and(|t| t.elapsed() < TYPING_EVERY) {
                return;
            }
            q.typing = Some(surface);
        }
        n.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telegram::api::MediaKind;

    fn here(chat_id: i64, thread_id: i32) -> Surface {
        Surface { chat_id, thread_id }
    }

    #[test]
    fn live_text_goes_out_as_it_is_when_sent_and_not_after() {
        let live = LiveText::new("⏳ Sending to Codex…");
        assert!(live.update_unsent(|t| *t = "✓ Delivered".into()));
        assert!(live.update_unsent(|t| t.push_str("\n⚙️ <ls>")));
        let (html, plain) = live.take_for_sending();
        assert_eq!(plain, "✓ Delivered\n⚙️ <ls>");
        assert_eq!(html, "✓ Delivered\n⚙️ &lt;ls&gt;");
        assert!(!live.update_unsent(|t| t.clear()));
        assert_eq!(live.text(), "✓ Delivered\n⚙️ <ls>");
    }

    mod live {
        //! The outbox against the strict fake Bot API.

        use super::*;
        use crate::telegram::audit::{self, Audit};
        use e2e::fake_telegram::{FakeTelegram, sample_png};

        const TOKEN: &str = "4242:outbox-test-token";

        struct Rig {
            fake: FakeTelegram,
            outbox: Outbox,
            chat: i64,
            audit: std::path::PathBuf,
            _dir: tempfile::TempDir,
        }

        async fn rig() -> Rig {
            let fake = FakeTelegram::start(TOKEN).await.unwrap();
            let user = fake.create_user("Bea");
            let chat = fake.create_private_chat(&user, false);
            let dir = tempfile::tempdir().unwrap();
            let audit = dir.path().join("audit.jsonl");
            let tg = Tg::new(TOKEN, &fake.api_url())
                .unwrap()
                .with_audit(Audit::open(&audit).unwrap());
            Rig {
                fake,
                outbox: Outbox::new(tg, CancellationToken::new()),
                chat,
                audit,
                _dir: dir,
            }
        }

        #[tokio::test]
        async fn a_shutdown_can_wait_until_every_send_went_out() {
            let r = rig().await;
            r.outbox.sent_all().await; // nothing queued: at once
            r.fake.force_retry_after(1, 1);
            let answer = send(&r, "the answer", Class::Final);
            let waiting = r.outbox.clone();
            let drained = tokio::spawn(async move { waiting.sent_all().await });
            // Not before Telegram took the answer (after its 429).
            let id = answer.await.unwrap().unwrap();
            drained.await.unwrap();
            assert!(r.fake.bot_message(r.chat, i64::from(id)).is_some());
            assert_eq!(r.fake.count_429(), 1);
        }

        fn png() -> Upload {
            Upload {
                kind: MediaKind::Photo,
                file_name: "p.png".into(),
                bytes: Arc::new(sample_png(6, 6, [9, 9, 9])),
            }
        }

        fn send(r: &Rig, html: &str, class: Class) -> oneshot::Receiver<Result<i32, TgError>> {
            r.outbox.send(Send {
                surface: here(r.chat, 0),
                html: html.into(),
                plain: html.into(),
                keyboard: None,
                reply_to: None,
                class,
            })
        }

        #[tokio::test]
        async fn media_is_queued_by_priority_falls_back_to_plain_and_survives_429() {
            let r = rig().await;
            r.fake.force_retry_after_on("sendPhoto", 1, 1);
            // Queued together (the worker runs only once we await): the final answers first.
            let status = send(&r, "status", Class::Status);
            let msg = send(&r, "message", Class::Message);
            let photo = r.outbox.send_media(MediaSend {
                surface: here(r.chat, 0),
                upload: png(),
                caption_html: "<b>broken".into(),
                caption_plain: "broken".into(),
                keyboard: None,
                reply_to: None,
                class: Class::Final,
            });
            let fin = send(&r, "final", Class::Final);
            let photo_id = photo.await.unwrap().unwrap();
            for rx in [fin, msg, status] {
                rx.await.unwrap().unwrap();
            }
            let order: Vec<String> = r
                .fake
                .bot_messages()
                .iter()
                .map(|m| m.current.text.clone())
                .collect();
            assert_eq!(order, ["broken", "final", "message", "status"]);
            assert_eq!(
                r.fake
                    .bot_message(r.chat, i64::from(photo_id))
                    .unwrap()
                    .current
                    .text,
                "broken"
            );
            let lines = audit::read_all(&r.audit).unwrap();
            let seen: Vec<(String, String, String)> = lines
                .iter()
                .map(|l| {
                    (
                        l["method"].as_str().unwrap().to_owned(),
                        l["class"].as_str().unwrap_or("-").to_owned(),
                        l["outcome"].as_str().unwrap().to_owned(),
                    )
                })
                .collect();
            let want = [
                // The fake checks the HTML before flood control, as Telegram does.
                ("sendPhoto", "final", "error"),
                ("sendPhoto", "final", "retry_after"),
                ("sendPhoto", "final", "ok"),
                ("sendMessage", "final", "ok"),
                ("sendMessage", "message", "ok"),
                ("sendMessage", "status", "ok"),
            ]
            .map(|(a, b, c)| (a.to_owned(), b.to_owned(), c.to_owned()));
            assert_eq!(seen, want);
            assert!(lines.iter().all(|l| l["paced"] == true));
        }

        #[tokio::test]
        async fn deletes_drop_queued_edits_and_are_paced() {
            let r = rig().await;
            let id = send(&r, "doomed", Class::Message).await.unwrap().unwrap();
            let edit = |html: &str| {
                r.outbox.edit(Edit {
                    chat_id: r.chat,
                    message_id: id,
                    html: html.into(),
                    plain: html.into(),
                    keyboard: None,
                    status_of: None,
                })
            };
            let e1 = edit("a");
            let e2 = edit("b");
            let gone = r.outbox.delete(r.chat, id);
            assert!(matches!(e1.await, Ok(Ok(()))));
            assert!(matches!(e2.await, Ok(Ok(()))));
            gone.await.unwrap().unwrap();
            assert!(r.fake.calls_to("editMessageText").is_empty());
            assert!(r.fake.bot_message(r.chat, i64::from(id)).unwrap().deleted);
            let again = r.outbox.delete(r.chat, id).await.unwrap();
            assert!(matches!(again, Err(TgError::MessageGone)), "{again:?}");
        }

        /// Needs editMessageMedia in the fake.
        #[tokio::test]
        async fn media_edits_coalesce() {
            let r = rig().await;
            let id = r
                .outbox
                .send_media(MediaSend {
                    surface: here(r.chat, 0),
                    upload: png(),
                    caption_html: "v0".into(),
                    caption_plain: "v0".into(),
                    keyboard: None,
                    reply_to: None,
                    class: Class::Message,
                })
                .await
                .unwrap()
                .unwrap();
            let edit = |caption: &str, rgb| {
                r.outbox.edit_media(EditMedia {
                    chat_id: r.chat,
                    message_id: id,
                    upload: Upload {
                        kind: MediaKind::Photo,
                        file_name: "p.png".into(),
                        bytes: Arc::new(sample_png(6, 6, rgb)),
                    },
                    caption_html: caption.into(),
                    caption_plain: caption.into(),
                    keyboard: None,
                })
            };
            let e1 = edit("<i>v1</i>", [1, 1, 1]);
            let e2 = edit("<i>v2</i>", [2, 2, 2]);
            e1.await.unwrap().unwrap();
            e2.await.unwrap().unwrap();
            assert_eq!(r.fake.calls_to("editMessageMedia").len(), 1);
            let m = r.fake.bot_message(r.chat, i64::from(id)).unwrap();
            assert_eq!(m.current.text, "v2");
        }

        /// Needs sendMessageDraft in the fake.
        #[tokio::test]
        async fn drafts_are_coalesced_spaced_and_dropped_for_the_answer() {
            let r = rig().await;
            let s = here(r.chat, 0);
            r.outbox.draft(s, 5, "one".into());
            r.outbox.draft(s, 5, "two".into());
            r.outbox.draft(s, 6, "other".into());
            // Drafts in groups are refused up front.
            r.outbox.draft(here(-100, 0), 5, "group".into());
            r.fake
                .wait_for("two drafts", Duration::from_secs(5), |v| {
                    let n = v
                        .calls()
                        .iter()
                        .filter(|c| c.method == "sendMessageDraft")
                        .count();
                    (n >= 2).then_some(())
                })
                .await
                .unwrap();
            let calls = r.fake.calls_to("sendMessageDraft");
            let texts: Vec<&str> = calls
                .iter()
                .map(|c| c.params["text"].as_str().unwrap())
                .collect();
            assert_eq!(texts, ["two", "other"]);
            let gap = calls[1].at - calls[0].at;
            assert!(gap >= Duration::from_millis(900), "{gap:?}");
            // A draft still queued when the answer is queued is never shown after it.
            r.outbox.draft(s, 5, "stale".into());
            send(&r, "answer", Class::Final).await.unwrap().unwrap();
            tokio::time::sleep(Duration::from_millis(1500)).await;
            let calls = r.fake.calls_to("sendMessageDraft");
            assert_eq!(calls.len(), 2, "{calls:?}");
            let lines = audit::read_all(&r.audit).unwrap();
            let drafts = lines.iter().filter(|l| l["method"] == "sendMessageDraft");
            assert!(drafts.clone().count() == 2 && drafts.clone().all(|l| l["paced"] == true));
        }
    }
}
