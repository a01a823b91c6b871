//! The one way messages leave the center: per-chat queues that honour Telegram's limits.
//!
//! Every chat has its own worker and queue; all of them share one global budget. Sends (text or
//! media) go before changes of sent messages (edits, media edits, deletions), and final answers
//! before other sends. Edits of one message are coalesced (only the newest text or file is sent),
//! and deleting a message drops its queued edits. A 429 pauses the chat for `retry_after` and
//! retries the same job.
//! Budgets (kept a little under Telegram's limits, since requests can arrive closer together than
//! they were sent): a burst of 2 then 0.95 messages/s per chat, 19 in any minute per group
//! shared by all its topics, 25/s overall.
//! Drafts (sendMessageDraft, private chats) are best effort: sent only when the chat has nothing
//! else queued, at most one a second, only the newest text of each draft, and dropped on error
//! or when a real message to the same place is queued (a stale preview must not follow the
//! answer). Chat actions ("typing…") are sent only when the chat has nothing else to do and its
//! budget is ample.
//!
//! Answers first: final answers may spend the whole budget, everything else only what lies above
//! a reserve ([`CHAT_RESERVE`] of the per-chat bucket, [`GROUP_RESERVE`] of a group's minute), so
//! a busy turn's receipts and status edits never leave its answer waiting for a token. A final
//! answer to a topic drops the queued edits of that topic's status message (they are moot once the
//! answer is there), and a receipt queued with a [`LiveText`] goes out with the newest text it
//! was given, so an outcome (and status lines) known before Telegram's turn cost no edit.

use shared::sync::LockExt;
use std::{
    collections::{HashMap, VecDeque},
    future::Future,
    sync::{Arc, Mutex, MutexGuard, PoisonError},
    time::Duration,
};

use tokio::{sync::oneshot, time::Instant};
use tokio_util::sync::CancellationToken;

use super::api::{self, Keyboard, Origin, Tg, TgError, Upload};
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
        let mut state = lock(&self.0);
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
        lock(&self.0).text.clone()
    }

    /// The text to send now, as (HTML, plain); marks it sent.
    fn take_for_sending(&self) -> (String, String) {
        let mut state = lock(&self.0);
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

type SendDone = oneshot::Sender<Result<i32, TgError>>;
type EditDone = oneshot::Sender<Result<(), TgError>>;

/// A queued new message.
#[derive(Debug)]
enum Outgoing {
    Text(Send, Option<LiveText>),
    Media(MediaSend),
}

impl Outgoing {
    fn class(&self) -> Class {
        match self {
            Self::Text(s, _) => s.class,
            Self::Media(m) => m.class,
        }
    }

    fn surface(&self) -> Surface {
        match self {
            Self::Text(s, _) => s.surface,
            Self::Media(m) => m.surface,
        }
    }
}

/// A queued change of a sent message. Changes of one message and kind are coalesced.
#[derive(Debug)]
enum Change {
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
struct Draft {
    surface: Surface,
    draft_id: i64,
    html: String,
}

/// A chat's pending work. Only its worker takes from it.
#[derive(Default)]
struct Queue {
    sends: VecDeque<(Outgoing, Option<SendDone>)>,
    changes: VecDeque<(Change, Vec<EditDone>)>,
    drafts: VecDeque<Draft>,
    typing: Option<Surface>,
    last_typing: Option<Instant>,
    last_draft: Option<Instant>,
}

/// What a chat's worker does next.
#[derive(Debug, PartialEq, Eq)]
enum Step {
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
enum Job {
    Send(Outgoing, Option<SendDone>),
    Change(Change, Vec<EditDone>),
    Draft(Draft),
    Typing(Surface),
}

impl Queue {
    /// Stable by priority: after every queued send of the same or a higher priority. A real
    /// message to a place ends the drafts previewing it there.
    fn push_send(&mut self, send: Outgoing, done: Option<SendDone>) {
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
    fn push_change(&mut self, change: Change, done: EditDone) {
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
    fn push_draft(&mut self, draft: Draft) {
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
    fn has_newer(&self, change: &Change) -> bool {
        self.changes.iter().any(|(c, _)| change.replaced_by(c))
    }

    fn step(&self, now: Instant) -> Step {
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
    fn next_is_final(&self) -> bool {
        self.sends
            .front()
            .is_some_and(|(s, _)| s.class() == Class::Final)
    }

    /// The next send, else the next change.
    fn pop_paced(&mut self) -> Option<Job> {
        if let Some((s, d)) = self.sends.pop_front() {
            Some(Job::Send(s, d))
        } else {
            let (c, d) = self.changes.pop_front()?;
            Some(Job::Change(c, d))
        }
    }

    fn pop_draft(&mut self, now: Instant) -> Option<Draft> {
        let d = self.drafts.pop_front()?;
        self.last_draft = Some(now);
        Some(d)
    }

    fn pop_typing(&mut self, now: Instant) -> Option<Surface> {
        let s = self.typing.take()?;
        self.last_typing = Some(now);
        Some(s)
    }
}

struct Bucket {
    tokens: f64,
    capacity: f64,
    per_sec: f64,
    at: Instant,
}

impl Bucket {
    fn new(capacity: f64, per_sec: f64) -> Self {
        Self {
            tokens: capacity,
            capacity,
            per_sec,
            at: Instant::now(),
        }
    }

    fn refill(&mut self, now: Instant) {
        let dt = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + dt * self.per_sec).min(self.capacity);
        self.at = now;
    }

    /// Time until one token is available with `reserve` more left over (zero if now).
    fn wait(&mut self, now: Instant, reserve: f64) -> Duration {
        self.refill(now);
        let need = (1.0 + reserve).min(self.capacity);
        if self.tokens >= need {
            Duration::ZERO
        } else {
            Duration::from_secs_f64((need - self.tokens) / self.per_sec)
        }
    }

    fn take(&mut self) {
        self.tokens -= 1.0;
    }
}

/// At most `max` calls in any `period` (how Telegram counts a group's per-minute budget).
struct Window {
    times: VecDeque<Instant>,
    max: usize,
    period: Duration,
}

impl Window {
    /// Time until a call fits with `reserve` calls of the period still left (zero if now).
    fn wait(&mut self, now: Instant, reserve: usize) -> Duration {
        while self
            .times
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) >= self.period)
        {
            self.times.pop_front();
        }
        let allowed = self.max.saturating_sub(reserve).max(1);
        if self.times.len() < allowed {
            return Duration::ZERO;
        }
        // The call fits once enough of the oldest calls have left the period.
        let leaving = self.times.len() + 1 - allowed;
        self.times.get(leaving - 1).map_or(Duration::ZERO, |t| {
            (*t + self.period).saturating_duration_since(now)
        })
    }

    /// Calls left in the current period.
    fn left(&self, now: Instant) -> usize {
        let used = self
            .times
            .iter()
            .filter(|t| now.saturating_duration_since(**t) < self.period)
            .count();
        self.max.saturating_sub(used)
    }

    fn take(&mut self, now: Instant) {
        self.times.push_back(now);
    }
}

struct Limits {
    global: Bucket,
    chats: HashMap<i64, (Bucket, Option<Window>, Instant)>,
}

/// Per-chat tokens only final answers may spend (of a burst of 2).
pub const CHAT_RESERVE: f64 = 0.5;
/// Calls of a group's minute only final answers may spend (of 19).
pub const GROUP_RESERVE: usize = 4;

impl Limits {
    /// How long chat `chat_id` must wait before its next call; takes the tokens if zero.
    fn admit(&mut self, chat_id: i64, now: Instant) -> Duration {
        self.admit_with(chat_id, now, true, true)
    }

    /// Like [`Limits::admit`] for a call that is not a final answer: it leaves the reserve.
    fn admit_above_reserve(&mut self, chat_id: i64, now: Instant) -> Duration {
        self.admit_with(chat_id, now, true, false)
    }

    /// Whether the chat has budget to spare for a chat action: a full bucket and, in a group,
    /// more than half of the minute left.
    fn ample(&mut self, chat_id: i64, now: Instant) -> bool {
        let Some((chat, group, blocked_until)) = self.chats.get_mut(&chat_id) else {
            return true;
        };
        chat.refill(now);
        *blocked_until <= now
            && chat.tokens >= chat.capacity - 0.01
            && group.as_ref().is_none_or(|g| g.left(now) * 2 > g.max)
    }

    /// How long to wait; takes the tokens if zero. `group_window` false skips the group's
    /// per-minute budget (for drafts, which exist in private chats only); `final_answer` false
    /// keeps the reserve.
    fn admit_with(
        &mut self,
        chat_id: i64,
        now: Instant,
        group_window: bool,
        final_answer: bool,
    ) -> Duration {
        let (chat, group, blocked_until) = self.chats.entry(chat_id).or_insert_with(|| {
            // Negative ids are groups and channels: they also get the per-minute budget.
            let group = (chat_id < 0).then(|| Window {
                times: VecDeque::new(),
                max: 19,
                period: Duration::from_secs(60),
            });
            (Bucket::new(2.0, 0.95), group, now)
        });
        let mut group = group.as_mut().filter(|_| group_window);
        let (chat_reserve, group_reserve) = if final_answer {
            (0.0, 0)
        } else {
            (CHAT_RESERVE, GROUP_RESERVE)
        };
        let mut wait = blocked_until.saturating_duration_since(now);
        wait = wait
            .max(chat.wait(now, chat_reserve))
            .max(self.global.wait(now, 0.0));
        if let Some(g) = group.as_mut() {
            wait = wait.max(g.wait(now, group_reserve));
        }
        if wait.is_zero() {
            chat.take();
            self.global.take();
            if let Some(g) = group {
                g.take(now);
            }
        }
        wait
    }

    fn block(&mut self, chat_id: i64, until: Instant) {
        if let Some(entry) = self.chats.get_mut(&chat_id) {
            entry.2 = entry.2.max(until);
        }
    }
}

/// A chat's queue and the wake-up of its worker.
type ChatSlot = (Arc<Mutex<Queue>>, Arc<tokio::sync::Notify>);

struct Shared {
    tg: Tg,
    limits: Mutex<Limits>,
    queues: Mutex<HashMap<i64, ChatSlot>>,
    token: CancellationToken,
    /// Sends queued or in flight (not changes, drafts or chat actions): what a shutdown waits
    /// for.
    unsent: tokio::sync::watch::Sender<usize>,
}

/// Cloneable handle on the outbox.
#[derive(Clone)]
pub struct Outbox {
    shared: Arc<Shared>,
}

/// Telegram shows a chat action for about 5 s; refresh it at most this often.
const TYPING_EVERY: Duration = Duration::from_secs(4);
/// At most one draft update per chat this often.
const DRAFT_EVERY: Duration = Duration::from_secs(1);
// Messages are retried after network failures and 5xx until they go through (the Bot API has
// no idempotency key, so a retried send may rarely arrive twice; losing a final answer would be
// worse), with a backoff capped at 30 s.
/// Media uploads are retried once: a timed-out upload of many megabytes has likely arrived, and
/// each retry holds the chat's queue (final answers included) for as long as the upload takes.
const MEDIA_NETWORK_RETRIES: u32 = 1;

/// Locks, carrying on past a panic in another holder (the data stays consistent: every
/// critical section is a few queue operations).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Outbox {
    /// An outbox on `tg`; its workers stop when `token` is cancelled.
    pub fn new(tg: Tg, token: CancellationToken) -> Self {
        Self {
            shared: Arc::new(Shared {
                tg,
                limits: Mutex::new(Limits {
                    global: Bucket::new(25.0, 25.0),
                    chats: HashMap::new(),
                }),
                queues: Mutex::new(HashMap::new()),
                token,
                unsent: tokio::sync::watch::Sender::new(0),
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
        let mut queues = lock(&self.shared.queues);
        queues
            .entry(chat_id)
            .or_insert_with(|| {
                let q = Arc::new(Mutex::new(Queue::default()));
                let n = Arc::new(tokio::sync::Notify::new());
                tokio::spawn(worker(self.shared.clone(), chat_id, q.clone(), n.clone()));
                (q, n)
            })
            .clone()
    }

    fn enqueue_send(&self, send: Outgoing) -> oneshot::Receiver<Result<i32, TgError>> {
        let (tx, rx) = oneshot::channel();
        self.shared.unsent.send_modify(|n| *n += 1);
        let (q, n) = self.queue(send.surface().chat_id);
        lock(&q).push_send(send, Some(tx));
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
        lock(&q).push_change(change, tx);
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
        lock(&q).push_draft(Draft {
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
            let mut q = lock(&q);
            if q.last_typing.is_some_and(|t| t.elapsed() < TYPING_EVERY) {
                return;
            }
            q.typing = Some(surface);
        }
        n.notify_one();
    }
}

async fn worker(
    shared: Arc<Shared>,
    chat_id: i64,
    queue: Arc<Mutex<Queue>>,
    notify: Arc<tokio::sync::Notify>,
) {
    /// What the worker does after looking at its queue.
    enum Next {
        Run(Job),
        /// Wait for the budget, then take the next send or change.
        Paced,
        /// Until something is queued, or until the given time (a draft's turn).
        Sleep(Option<Instant>),
    }
    loop {
        let now = Instant::now();
        // Decided under the queue lock, so a draft never takes its budget once a send waits.
        let next = {
            let mut q = lock(&queue);
            match q.step(now) {
                Step::Idle => Next::Sleep(None),
                Step::Paced => Next::Paced,
                Step::WaitUntil(t) => Next::Sleep(Some(t)),
                Step::Typing => {
                    let typing = q.pop_typing(now);
                    // A chat action is a call too: only when the budget has room to spare.
                    match typing {
                        Some(s) if lock(&shared.limits).ample(chat_id, now) => {
                            Next::Run(Job::Typing(s))
                        }
                        _ => Next::Sleep(None),
                    }
                }
                Step::Draft => {
                    let wait = lock(&shared.limits).admit_with(chat_id, now, false, true);
                    if wait.is_zero() {
                        q.pop_draft(now)
                            .map_or(Next::Sleep(None), |d| Next::Run(Job::Draft(d)))
                    } else {
                        Next::Sleep(Some(now + wait))
                    }
                }
            }
        };
        match next {
            Next::Run(job) => run(&shared, chat_id, &queue, job).await,
            Next::Sleep(until) => {
                let sleep = async {
                    match until {
                        Some(t) => tokio::time::sleep_until(t).await,
                        None => std::future::pending().await,
                    }
                };
                tokio::select! {
                    () = shared.token.cancelled() => return,
                    () = notify.notified() => {}
                    () = sleep => {}
                }
            }
            Next::Paced => {
                loop {
                    // Asked again after every wait: a final answer queued meanwhile goes first
                    // and may use the reserve.
                    let final_answer = lock(&queue).next_is_final();
                    let now = Instant::now();
                    let wait = if final_answer {
                        lock(&shared.limits).admit(chat_id, now)
                    } else {
                        lock(&shared.limits).admit_above_reserve(chat_id, now)
                    };
                    if wait.is_zero() {
                        break;
                    }
                    tokio::select! {
                        () = shared.token.cancelled() => return,
                        () = notify.notified(), if !final_answer => {}
                        () = tokio::time::sleep(wait) => {}
                    }
                }
                let job = lock(&queue).pop_paced();
                if let Some(job) = job {
                    run(&shared, chat_id, &queue, job).await;
                }
            }
        }
    }
}

async fn run(shared: &Shared, chat_id: i64, queue: &Mutex<Queue>, job: Job) {
    let origin = Origin {
        class: match &job {
            Job::Send(s, _) => Some(s.class()),
            _ => None,
        },
        paced: true,
    };
    api::on_behalf(origin, execute(shared, chat_id, queue, job)).await;
}

async fn execute(shared: &Shared, chat_id: i64, queue: &Mutex<Queue>, job: Job) {
    let tg = &shared.tg;
    match job {
        Job::Typing(surface) => {
            // Best effort, but a 429 still holds the whole chat: Telegram counts it.
            if let Err(TgError::RetryAfter(wait)) = tg.typing(surface).await {
                tracing::info!(chat.id = chat_id, retry_after = ?wait, "flood control on a chat action");
                lock(&shared.limits).block(chat_id, Instant::now() + wait);
            }
        }
        Job::Draft(d) => match tg.send_draft(d.surface, d.draft_id, &d.html).await {
            Ok(()) => {}
            Err(TgError::RetryAfter(wait)) => {
                tracing::info!(chat.id = chat_id, retry_after = ?wait, "flood control on a draft; dropped");
                lock(&shared.limits).block(chat_id, Instant::now() + wait);
            }
            Err(e) => {
                tracing::warn!(chat.id = chat_id, draft_id = d.draft_id, error = %e, "draft dropped");
            }
        },
        Job::Send(Outgoing::Text(mut s, live), done) => {
            if let Some(live) = &live {
                (s.html, s.plain) = live.take_for_sending();
            }
            let s = &s;
            let result = attempt(
                shared,
                chat_id,
                Retries::Unlimited,
                || None,
                move |html| {
                    let text = if html { &s.html } else { &s.plain };
                    tg.send(s.surface, text, html, s.keyboard.as_ref(), s.reply_to)
                },
            )
            .await;
            if let Some(done) = done {
                let _ = done.send(result);
            }
            shared.unsent.send_modify(|n| *n = n.saturating_sub(1));
        }
        Job::Send(Outgoing::Media(m), done) => {
            let m = &m;
            let result = attempt(
                shared,
                chat_id,
                // A file that is a final answer is retried like any answer; other media once.
                if m.class == Class::Final {
                    Retries::Unlimited
                } else {
                    Retries::Limited(MEDIA_NETWORK_RETRIES)
                },
                || None,
                move |html| {
                    let caption = if html {
                        &m.caption_html
                    } else {
                        &m.caption_plain
                    };
                    tg.send_media(
                        m.surface,
                        &m.upload,
                        caption,
                        html,
                        m.keyboard.as_ref(),
                        m.reply_to,
                    )
                },
            )
            .await;
            if let Some(done) = done {
                let _ = done.send(result);
            }
            shared.unsent.send_modify(|n| *n = n.saturating_sub(1));
        }
        Job::Change(change, done) => {
            let c = &change;
            // On a 429, a newer version of the same change (queued meanwhile) makes this one moot.
            let newer = || lock(queue).has_newer(c).then_some(());
            let result = match c {
                Change::Text(e) => {
                    attempt(shared, chat_id, Retries::Limited(0), newer, move |html| {
                        let text = if html { &e.html } else { &e.plain };
                        tg.edit(e.chat_id, e.message_id, text, html, e.keyboard.as_ref())
                    })
                    .await
                }
                Change::Media(e) => {
                    attempt(shared, chat_id, Retries::Limited(0), newer, move |html| {
                        let caption = if html {
                            &e.caption_html
                        } else {
                            &e.caption_plain
                        };
                        tg.edit_media(
                            e.chat_id,
                            e.message_id,
                            &e.upload,
                            caption,
                            html,
                            e.keyboard.as_ref(),
                        )
                    })
                    .await
                }
                Change::Delete(id) => {
                    let id = *id;
                    attempt(shared, chat_id, Retries::Limited(0), newer, move |_| {
                        tg.delete(chat_id, id)
                    })
                    .await
                }
            };
            for d in done {
                let _ = d.send(result.clone());
            }
        }
    }
}

/// Makes one call until it succeeds or fails for good: `call(true)` sends HTML, `call(false)`
/// the plain fallback (from the HTML's refusal on); a 429 pauses the chat and retries (unless
/// `superseded` yields the result to report instead); network failures and server errors (5xx)
/// are retried with backoff, `Retries::Limited(n)` times or, for messages whose delivery an ack
/// waits for, until they go through.
async fn attempt<T, Fut>(
    shared: &Shared,
    chat_id: i64,
    retries_allowed: Retries,
    superseded: impl Fn() -> Option<T>,
    call: impl Fn(bool) -> Fut,
) -> Result<T, TgError>
where
    Fut: Future<Output = Result<T, TgError>>,
{
    let mut retries: u32 = 0;
    // Once the HTML is refused, retries (after a 429 or a network failure) go out plain.
    let mut html = true;
    loop {
        let mut r = call(html).await;
        if html && let Err(TgError::ParseEntities(why)) = &r {
            tracing::warn!(chat.id = chat_id, error = %why, "HTML refused; sending plain text");
            html = false;
            r = call(false).await;
        }
        match r {
            Err(TgError::RetryAfter(d)) => {
                let instead = superseded();
                pause(shared, chat_id, d).await;
                if let Some(v) = instead {
                    return Ok(v);
                }
            }
            Err(TgError::Network(ref why) | TgError::Server(ref why))
                if retries_allowed.allows(retries) =>
            {
                retries = retries.saturating_add(1);
                tracing::warn!(chat.id = chat_id, error = %why, attempt = retries, "call failed; retrying");
                tokio::time::sleep(shared::backoff::delay(retries)).await;
            }
            other => return other,
        }
    }
}

/// How often a call that failed on the way (network, 5xx) is tried again.
#[derive(Debug, Clone, Copy)]
enum Retries {
    /// At most this many times (best-effort changes and media).
    Limited(u32),
    /// Until it goes through: messages whose delivery an ack waits for. Only that chat waits.
    Unlimited,
}

impl Retries {
    fn allows(self, done: u32) -> bool {
        match self {
            Self::Limited(n) => done < n,
            Self::Unlimited => true,
        }
    }
}

async fn pause(shared: &Shared, chat_id: i64, d: Duration) {
    tracing::info!(chat.id = chat_id, retry_after = ?d, "flood control; pausing this chat");
    lock(&shared.limits).block(chat_id, Instant::now() + d);
    tokio::time::sleep(d).await;
}
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_pace_chats_and_groups() {
        tokio_test_time(|| {
            let now = Instant::now();
            let mut l = Limits {
                global: Bucket::new(25.0, 25.0),
                chats: HashMap::new(),
            };
            // A private chat: a burst of 2, then a little under one per second (a margin for
            // requests that arrive closer together than they were sent).
            for _ in 0..2 {
                assert!(l.admit(5, now).is_zero());
            }
            let w = l.admit(5, now);
            assert!(
                w > Duration::from_millis(1000) && w <= Duration::from_millis(1100),
                "{w:?}"
            );
            // A group: the per-minute budget runs out long before a minute is over.
            let mut sent = 0;
            let mut t = now;
            while t < now + Duration::from_secs(60) {
                let w = l.admit(-100, t);
                if w.is_zero() {
                    sent += 1;
                } else {
                    t += w;
                }
            }
            assert_eq!(sent, 19, "{sent} sends in a minute");
        });
    }

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
            kind: api::MediaKind::Photo,
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

    #[test]
    fn finals_may_spend_the_reserve_other_calls_may_not() {
        tokio_test_time(|| {
            let now = Instant::now();
            let mut l = Limits {
                global: Bucket::new(25.0, 25.0),
                chats: HashMap::new(),
            };
            // A burst of 2 in a private chat: a receipt takes one, the second is the answer's.
            assert!(l.admit_above_reserve(7, now).is_zero());
            assert!(!l.admit_above_reserve(7, now).is_zero());
            assert!(l.admit(7, now).is_zero());
            // A group's minute: non-finals stop GROUP_RESERVE short of the 19.
            let later = now + Duration::from_secs(3600);
            let mut spent = 0;
            // Every 2 s for 58 s (within one minute).
            for i in 0..30 {
                let t = later + Duration::from_secs(2 * i);
                if l.admit_above_reserve(-9, t).is_zero() {
                    spent += 1;
                }
            }
            assert_eq!(spent, 19 - GROUP_RESERVE);
            // The answer still gets through, and chat actions wait for better times.
            let t = later + Duration::from_secs(59);
            assert!(!l.ample(-9, t));
            assert!(l.admit(-9, t).is_zero());
        });
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

    #[test]
    fn drafts_skip_the_group_window_but_take_chat_tokens() {
        tokio_test_time(|| {
            let now = Instant::now();
            let mut l = Limits {
                global: Bucket::new(25.0, 25.0),
                chats: HashMap::new(),
            };
            assert!(l.admit_with(-7, now, false, true).is_zero());
            let (_, window, _) = &l.chats[&-7];
            assert!(window.as_ref().unwrap().times.is_empty());
            assert!(l.admit_with(-7, now, false, true).is_zero());
            // The chat's burst is spent.
            assert!(!l.admit_with(-7, now, false, true).is_zero());
            assert!(!l.admit(-7, now).is_zero());
        });
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
                kind: api::MediaKind::Photo,
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
                        kind: api::MediaKind::Photo,
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

    fn tokio_test_time(f: impl FnOnce()) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        rt.block_on(async { f() });
    }
}
