//! The one way messages leave the center: per-chat queues that honour Telegram's limits.
//!
//! Every chat has its own worker and queue; all of them share one global budget. Sends go before
//! edits, and final answers before other sends. Edits of one message are coalesced (only the
//! newest text is sent). A 429 pauses the chat for `retry_after` and retries the same job.
//! Budgets (kept a little under Telegram's limits, since requests can arrive closer together than
//! they were sent): a burst of 2 then 0.95 messages/s per chat, 19 in any minute per group
//! shared by all its topics, 25/s overall. Chat actions ("typing…") are sent only when the chat
//! has nothing else to do.

use std::{
    collections::{HashMap, VecDeque},
    sync::{Arc, Mutex},
    time::Duration,
};

use tokio::{sync::oneshot, time::Instant};
use tokio_util::sync::CancellationToken;

use super::api::{Keyboard, Tg, TgError};
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
}

type SendDone = oneshot::Sender<Result<i32, TgError>>;
type EditDone = oneshot::Sender<Result<(), TgError>>;

#[derive(Default)]
struct Queue {
    sends: VecDeque<(Send, Option<SendDone>)>,
    edits: VecDeque<(Edit, Vec<EditDone>)>,
    typing: Option<Surface>,
    last_typing: Option<Instant>,
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

    /// Time until one token is available (zero if now).
    fn wait(&mut self, now: Instant) -> Duration {
        self.refill(now);
        if self.tokens >= 1.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64((1.0 - self.tokens) / self.per_sec)
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
    fn wait(&mut self, now: Instant) -> Duration {
        while self
            .times
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) >= self.period)
        {
            self.times.pop_front();
        }
        match self.times.front() {
            Some(oldest) if self.times.len() >= self.max => {
                (*oldest + self.period).saturating_duration_since(now)
            }
            _ => Duration::ZERO,
        }
    }

    fn take(&mut self, now: Instant) {
        self.times.push_back(now);
    }
}

struct Limits {
    global: Bucket,
    chats: HashMap<i64, (Bucket, Option<Window>, Instant)>,
}

impl Limits {
    /// How long chat `chat_id` must wait before its next call; takes the tokens if zero.
    fn admit(&mut self, chat_id: i64, now: Instant) -> Duration {
        let (chat, group, blocked_until) = self.chats.entry(chat_id).or_insert_with(|| {
            // Negative ids are groups and channels: they also get the per-minute budget.
            let group = (chat_id < 0).then(|| Window {
                times: VecDeque::new(),
                max: 19,
                period: Duration::from_secs(60),
            });
            (Bucket::new(2.0, 0.95), group, now)
        });
        let mut wait = blocked_until.saturating_duration_since(now);
        wait = wait.max(chat.wait(now)).max(self.global.wait(now));
        if let Some(g) = group.as_mut() {
            wait = wait.max(g.wait(now));
        }
        if wait.is_zero() {
            chat.take();
            self.global.take();
            if let Some(g) = group.as_mut() {
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
}

/// Cloneable handle on the outbox.
#[derive(Clone)]
pub struct Outbox {
    shared: Arc<Shared>,
}

/// Telegram shows a chat action for about 5 s; refresh it at most this often.
const TYPING_EVERY: Duration = Duration::from_secs(4);
/// Network failures are retried this many times (the Bot API has no idempotency key, so a
/// retried send may rarely arrive twice; losing a final answer would be worse).
const NETWORK_RETRIES: u32 = 5;

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
            }),
        }
    }

    /// The client (for calls that are not paced: callback answers, polling).
    pub fn tg(&self) -> &Tg {
        &self.shared.tg
    }

    fn queue(&self, chat_id: i64) -> ChatSlot {
        let mut queues = self.shared.queues.lock().expect("outbox lock");
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

    /// Queues a send; the receiver gets the message id once Telegram accepted it.
    pub fn send(&self, send: Send) -> oneshot::Receiver<Result<i32, TgError>> {
        let (tx, rx) = oneshot::channel();
        let (q, n) = self.queue(send.surface.chat_id);
        {
            let mut q = q.lock().expect("queue lock");
            // Stable by priority: after every queued send of the same or a higher priority.
            let at = q
                .sends
                .iter()
                .position(|(s, _)| s.class > send.class)
                .unwrap_or(q.sends.len());
            q.sends.insert(at, (send, Some(tx)));
        }
        n.notify_one();
        rx
    }

    /// Queues an edit, replacing any queued edit of the same message.
    pub fn edit(&self, edit: Edit) -> oneshot::Receiver<Result<(), TgError>> {
        let (tx, rx) = oneshot::channel();
        let (q, n) = self.queue(edit.chat_id);
        {
            let mut q = q.lock().expect("queue lock");
            if let Some(slot) = q
                .edits
                .iter_mut()
                .find(|(e, _)| e.message_id == edit.message_id)
            {
                slot.0 = edit;
                slot.1.push(tx);
            } else {
                q.edits.push_back((edit, vec![tx]));
            }
        }
        n.notify_one();
        rx
    }

    /// Shows "typing…" when the chat has nothing else queued (at most every 4 s).
    pub fn typing(&self, surface: Surface) {
        let (q, n) = self.queue(surface.chat_id);
        {
            let mut q = q.lock().expect("queue lock");
            if q.last_typing.is_some_and(|t| t.elapsed() < TYPING_EVERY) {
                return;
            }
            q.typing = Some(surface);
        }
        n.notify_one();
    }
}

enum Job {
    Send(Send, Option<SendDone>),
    Edit(Edit, Vec<EditDone>),
    Typing(Surface),
}

async fn worker(
    shared: Arc<Shared>,
    chat_id: i64,
    queue: Arc<Mutex<Queue>>,
    notify: Arc<tokio::sync::Notify>,
) {
    loop {
        let has_work = {
            let q = queue.lock().expect("queue lock");
            !q.sends.is_empty() || !q.edits.is_empty() || q.typing.is_some()
        };
        if !has_work {
            tokio::select! {
                () = shared.token.cancelled() => return,
                () = notify.notified() => continue,
            }
        }
        // Typing costs no message budget; everything else waits for its turn.
        let only_typing = {
            let q = queue.lock().expect("queue lock");
            q.sends.is_empty() && q.edits.is_empty()
        };
        if !only_typing {
            loop {
                let wait = shared
                    .limits
                    .lock()
                    .expect("limits lock")
                    .admit(chat_id, Instant::now());
                if wait.is_zero() {
                    break;
                }
                tokio::select! {
                    () = shared.token.cancelled() => return,
                    () = tokio::time::sleep(wait) => {}
                }
            }
        }
        let job = {
            let mut q = queue.lock().expect("queue lock");
            if let Some((s, d)) = q.sends.pop_front() {
                Job::Send(s, d)
            } else if let Some((e, d)) = q.edits.pop_front() {
                Job::Edit(e, d)
            } else if let Some(s) = q.typing.take() {
                q.last_typing = Some(Instant::now());
                Job::Typing(s)
            } else {
                continue;
            }
        };
        run(&shared, chat_id, &queue, job).await;
    }
}

async fn run(shared: &Shared, chat_id: i64, queue: &Mutex<Queue>, job: Job) {
    let tg = &shared.tg;
    match job {
        Job::Typing(surface) => {
            let _ = tg.typing(surface).await;
        }
        Job::Send(send, done) => {
            let mut attempt = 0;
            let result = loop {
                let mut r = tg
                    .send(
                        send.surface,
                        &send.html,
                        true,
                        send.keyboard.as_ref(),
                        send.reply_to,
                    )
                    .await;
                if let Err(TgError::ParseEntities(why)) = &r {
                    tracing::warn!(chat.id = chat_id, error = %why, "HTML refused; sending plain text");
                    r = tg
                        .send(
                            send.surface,
                            &send.plain,
                            false,
                            send.keyboard.as_ref(),
                            send.reply_to,
                        )
                        .await;
                }
                match r {
                    Err(TgError::RetryAfter(d)) => {
                        pause(shared, chat_id, d).await;
                    }
                    Err(TgError::Network(ref why)) if attempt < NETWORK_RETRIES => {
                        attempt += 1;
                        tracing::warn!(chat.id = chat_id, error = %why, attempt, "send failed; retrying");
                        tokio::time::sleep(Duration::from_millis(500 << attempt)).await;
                    }
                    other => break other,
                }
            };
            if let Some(done) = done {
                let _ = done.send(result);
            }
        }
        Job::Edit(edit, done) => {
            let result = loop {
                let mut r = tg
                    .edit(
                        edit.chat_id,
                        edit.message_id,
                        &edit.html,
                        true,
                        edit.keyboard.as_ref(),
                    )
                    .await;
                if let Err(TgError::ParseEntities(_)) = &r {
                    r = tg
                        .edit(
                            edit.chat_id,
                            edit.message_id,
                            &edit.plain,
                            false,
                            edit.keyboard.as_ref(),
                        )
                        .await;
                }
                match r {
                    Err(TgError::RetryAfter(d)) => {
                        // A newer edit of the same message may have been queued meanwhile.
                        let newer = {
                            let q = queue.lock().expect("queue lock");
                            q.edits.iter().any(|(e, _)| e.message_id == edit.message_id)
                        };
                        pause(shared, chat_id, d).await;
                        if newer {
                            break Ok(());
                        }
                    }
                    other => break other,
                }
            };
            for d in done {
                let _ = d.send(result.clone());
            }
        }
    }
}

async fn pause(shared: &Shared, chat_id: i64, d: Duration) {
    tracing::info!(chat.id = chat_id, retry_after = ?d, "flood control; pausing this chat");
    shared
        .limits
        .lock()
        .expect("limits lock")
        .block(chat_id, Instant::now() + d);
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

    fn tokio_test_time(f: impl FnOnce()) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        rt.block_on(async { f() });
    }
}
