//! Telegram's rate limits as arithmetic: how long a chat's next call must wait, and the reserve
//! only final answers may spend.
//!
//! Pure (no tokio, no clock of its own): every question takes `now`, so the budgets are tested by
//! stepping time by hand. The worker asks [`Limits`] before each paced call and tells it about a
//! 429 ([`Limits::block`]).
//!
//! Budgets are kept a little under Telegram's (requests can arrive closer together than they
//! were sent): a burst of [`CHAT_BURST`] then [`CHAT_PER_SEC`] calls/s per chat,
//! [`GROUP_PER_MINUTE`] in any minute per group (shared by all its topics), [`GLOBAL_PER_SEC`]
//! overall.

use std::{
    collections::{HashMap, VecDeque},
    time::{Duration, Instant},
};

/// Calls a chat may make at once.
const CHAT_BURST: f64 = 2.0;
/// A chat's sustained rate, calls per second (Telegram allows about one).
const CHAT_PER_SEC: f64 = 0.95;
/// Calls a group (or channel) may make in any minute, all its topics together (Telegram: 20).
const GROUP_PER_MINUTE: usize = 19;
/// Calls per second over all chats, also the burst (Telegram: 30).
const GLOBAL_PER_SEC: f64 = 25.0;

/// Per-chat tokens only final answers may spend (of a burst of 2).
pub(super) const CHAT_RESERVE: f64 = 0.5;
/// Calls of a group's minute only final answers may spend (of 19).
pub(super) const GROUP_RESERVE: usize = 4;

/// A token bucket: `capacity` at once, refilled at `per_sec`.
struct Bucket {
    tokens: f64,
    capacity: f64,
    per_sec: f64,
    at: Instant,
}

impl Bucket {
    /// A full bucket.
    fn new(capacity: f64, per_sec: f64, now: Instant) -> Self {
        Self {
            tokens: capacity,
            capacity,
            per_sec,
            at: now,
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

/// Every budget of the outbox: the global bucket and, per chat, its bucket, its group's minute
/// (groups only) and the end of its last 429.
pub(super) struct Limits {
    global: Bucket,
    chats: HashMap<i64, (Bucket, Option<Window>, Instant)>,
}

impl Limits {
    /// Full budgets everywhere.
    pub(super) fn new(now: Instant) -> Self {
        Self {
            global: Bucket::new(GLOBAL_PER_SEC, GLOBAL_PER_SEC, now),
            chats: HashMap::new(),
        }
    }

    /// How long chat `chat_id` must wait before its next call; takes the tokens if zero.
    pub(super) fn admit(&mut self, chat_id: i64, now: Instant) -> Duration {
        self.admit_with(chat_id, now, true, true)
    }

    /// Like [`Limits::admit`] for a call that is not a final answer: it leaves the reserve.
    pub(super) fn admit_above_reserve(&mut self, chat_id: i64, now: Instant) -> Duration {
        self.admit_with(chat_id, now, true, false)
    }

    /// Whether the chat has budget to spare for a chat action: a full bucket and, in a group,
    /// more than half of the minute left.
    pub(super) fn ample(&mut self, chat_id: i64, now: Instant) -> bool {
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
    pub(super) fn admit_with(
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
                max: GROUP_PER_MINUTE,
                period: Duration::from_secs(60),
            });
            (Bucket::new(CHAT_BURST, CHAT_PER_SEC, now), group, now)
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

    /// Holds the chat's calls until `until` (Telegram answered a 429).
    pub(super) fn block(&mut self, chat_id: i64, until: Instant) {
        if let Some(entry) = self.chats.get_mut(&chat_id) {
            entry.2 = entry.2.max(until);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_pace_chats_and_groups() {
        let now = Instant::now();
        let mut l = Limits::new(now);
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
    }

    #[test]
    fn finals_may_spend_the_reserve_other_calls_may_not() {
        let now = Instant::now();
        let mut l = Limits::new(now);
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
    }

    #[test]
    fn drafts_skip_the_group_window_but_take_chat_tokens() {
        let now = Instant::now();
        let mut l = Limits::new(now);
        assert!(l.admit_with(-7, now, false, true).is_zero());
        let (_, window, _) = &l.chats[&-7];
        assert!(window.as_ref().unwrap().times.is_empty());
        assert!(l.admit_with(-7, now, false, true).is_zero());
        // The chat's burst is spent.
        assert!(!l.admit_with(-7, now, false, true).is_zero());
        assert!(!l.admit(-7, now).is_zero());
    }
}
