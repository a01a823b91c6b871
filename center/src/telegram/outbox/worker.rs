//! A chat's worker: the task that takes that chat's queue to Telegram, one call at a time.
//!
//! Each chat gets one, spawned by the [`Outbox`](super::Outbox) handle on its first message. It
//! asks its [`Queue`] what is next, waits until [`Limits`](super::limits::Limits) allows the call
//! (a final answer may spend the reserve, and one queued meanwhile is noticed after every wait),
//! then makes the call. A 429 pauses the whole chat for `retry_after` and retries the same job;
//! a refused HTML text is resent plain; network failures and server errors (5xx) are retried
//! with `shared::backoff`, without limit for sends whose delivery an ack waits for, so a message
//! once accepted by the outbox is not given up on.

use std::{
    future::Future,
    sync::{Arc, Mutex},
    time::Duration,
};

use shared::sync::LockExt;
use tokio::{sync::Notify, time::Instant};

use super::{
    Class, Shared,
    queue::{Change, Job, Outgoing, Queue, Step},
};
use crate::telegram::api::{self, Origin, TgError};

// Messages are retried after network failures and 5xx until they go through (the Bot API has
// no idempotency key, so a retried send may rarely arrive twice; losing a final answer would be
// worse), with a backoff capped at 30 s.
/// Media uploads are retried once: a timed-out upload of many megabytes has likely arrived, and
/// each retry holds the chat's queue (final answers included) for as long as the upload takes.
const MEDIA_NETWORK_RETRIES: u32 = 1;

/// Runs chat `chat_id`'s queue until `shared.token` is cancelled; `notify` wakes it when
/// something is queued.
pub(super) async fn run(
    shared: Arc<Shared>,
    chat_id: i64,
    queue: Arc<Mutex<Queue>>,
    notify: Arc<Notify>,
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
            let mut q = queue.locked();
            match q.step(now) {
                Step::Idle => Next::Sleep(None),
                Step::Paced => Next::Paced,
                Step::WaitUntil(t) => Next::Sleep(Some(t)),
                Step::Typing => {
                    let typing = q.pop_typing(now);
                    // A chat action is a call too: only when the budget has room to spare.
                    match typing {
                        Some(s) if shared.limits.locked().ample(chat_id, now.into_std()) => {
                            Next::Run(Job::Typing(s))
                        }
                        _ => Next::Sleep(None),
                    }
                }
                Step::Draft => {
                    let wait =
                        shared
                            .limits
                            .locked()
                            .admit_with(chat_id, now.into_std(), false, true);
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
            Next::Run(job) => run_job(&shared, chat_id, &queue, job).await,
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
                    let final_answer = queue.locked().next_is_final();
                    let now = Instant::now().into_std();
                    let wait = if final_answer {
                        shared.limits.locked().admit(chat_id, now)
                    } else {
                        shared.limits.locked().admit_above_reserve(chat_id, now)
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
                let job = queue.locked().pop_paced();
                if let Some(job) = job {
                    run_job(&shared, chat_id, &queue, job).await;
                }
            }
        }
    }
}

/// A send counted in `unsent` until it is done, or abandoned by a panic: the shutdown's wait
/// for every send must not hang on one that will never finish.
struct Counted<'a>(&'a tokio::sync::watch::Sender<usize>);

impl Drop for Counted<'_> {
    fn drop(&mut self) {
        self.0.send_modify(|n| *n = n.saturating_sub(1));
    }
}

/// Runs `job` with its calls recorded in the audit as the outbox's.
async fn run_job(shared: &Shared, chat_id: i64, queue: &Mutex<Queue>, job: Job) {
    let origin = Origin {
        class: match &job {
            Job::Send(s, _) => Some(s.class().audit_name()),
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
                block(shared, chat_id, wait);
            }
        }
        Job::Draft(d) => match tg.send_draft(d.surface, d.draft_id, &d.html).await {
            Ok(()) => {}
            Err(TgError::RetryAfter(wait)) => {
                tracing::info!(chat.id = chat_id, retry_after = ?wait, "flood control on a draft; dropped");
                block(shared, chat_id, wait);
            }
            Err(e) => {
                tracing::warn!(chat.id = chat_id, draft_id = d.draft_id, error = %e, "draft dropped");
            }
        },
        Job::Send(Outgoing::Text(mut s, live), done) => {
            let _counted = Counted(&shared.unsent);
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
        }
        Job::Send(Outgoing::Media(m), done) => {
            let _counted = Counted(&shared.unsent);
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
        }
        Job::Change(change, done) => {
            let c = &change;
            // On a 429, a newer version of the same change (queued meanwhile) makes this one moot.
            let newer = || queue.locked().has_newer(c).then_some(());
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

/// Holds the chat's calls for `d` from now (Telegram answered a 429).
fn block(shared: &Shared, chat_id: i64, d: Duration) {
    shared
        .limits
        .locked()
        .block(chat_id, (Instant::now() + d).into_std());
}

async fn pause(shared: &Shared, chat_id: i64, d: Duration) {
    tracing::info!(chat.id = chat_id, retry_after = ?d, "flood control; pausing this chat");
    block(shared, chat_id, d);
    tokio::time::sleep(d).await;
}
