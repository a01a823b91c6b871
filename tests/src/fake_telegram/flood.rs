//! Flood control: Telegram's unpublished send limits, enforced with 429 `retry_after`, so tests can
//! prove that the bot's outbox paces and coalesces instead of hammering the API.
//!
//! Limits apply to message sends and edits alike (teloxide's `Throttle` paces only sends, which is
//! exactly the bug this catches). Off by default; a test turns it on with
//! [`FakeTelegram::set_flood_limits`](super::FakeTelegram::set_flood_limits) or forces the next
//! N calls to fail with [`FakeTelegram::force_retry_after`](super::FakeTelegram::force_retry_after).
//! A call refused with 429 consumes no budget, so a client that retries too early is refused again.

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use tokio::time::Instant;

/// The limits enforced once flood control is on.
#[derive(Debug, Clone, PartialEq)]
pub struct FloodLimits {
    /// Sustained messages per second in one chat (Telegram: about 1).
    pub per_chat_per_sec: f64,
    /// Burst tolerated per chat on top of that rate.
    pub per_chat_burst: f64,
    /// Messages per minute in one group or supergroup, all topics together (Telegram: 20).
    pub per_group_per_min: usize,
    /// Messages per second over all chats (Telegram: about 30).
    pub global_per_sec: usize,
}

impl Default for FloodLimits {
    fn default() -> Self {
        Self {
            per_chat_per_sec: 1.0,
            per_chat_burst: 3.0,
            per_group_per_min: 20,
            global_per_sec: 30,
        }
    }
}

/// Why a call got 429.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FloodReason {
    /// A test forced it with `force_retry_after`.
    Forced,
    /// The per-chat rate.
    Chat,
    /// The per-group minute budget shared by all topics.
    Group,
    /// The global per-second budget.
    Global,
}

/// One 429 the fake served.
#[derive(Debug, Clone, PartialEq)]
pub struct FloodEvent {
    /// Method refused.
    pub method: String,
    /// Chat the call was for.
    pub chat_id: Option<i64>,
    /// `retry_after` answered.
    pub retry_after: u32,
    /// Which limit.
    pub reason: FloodReason,
    /// Time since the server started.
    pub at: Duration,
}

/// Methods flood control applies to.
pub(super) const LIMITED: &[&str] = &[
    "sendmessage",
    "sendmessagedraft",
    "sendphoto",
    "senddocument",
    "sendvideo",
    "sendaudio",
    "sendanimation",
    "editmessagetext",
    "editmessagereplymarkup",
    "editmessagecaption",
    "editmessagemedia",
];

struct Forced {
    method: Option<String>,
    /// Only calls to this chat (any chat if `None`).
    chat: Option<i64>,
    remaining: u32,
    retry_after: u32,
}

struct Bucket {
    tokens: f64,
    at: Instant,
}

#[derive(Default)]
pub(super) struct Flood {
    pub(super) limits: Option<FloodLimits>,
    forced: Vec<Forced>,
    buckets: BTreeMap<i64, Bucket>,
    groups: BTreeMap<i64, VecDeque<Instant>>,
    global: VecDeque<Instant>,
    pub(super) events: Vec<FloodEvent>,
}

impl Flood {
    pub(super) fn force(&mut self, method: Option<&str>, n: u32, retry_after: u32) {
        self.force_in(None, method, n, retry_after);
    }

    pub(super) fn force_in(
        &mut self,
        chat: Option<i64>,
        method: Option<&str>,
        n: u32,
        retry_after: u32,
    ) {
        self.forced.push(Forced {
            chat,
            method: method.map(str::to_ascii_lowercase),
            remaining: n,
            retry_after,
        });
    }

    /// Admits one call of `method` (lower-case) to `chat`, or says how long to wait.
    pub(super) fn admit(
        &mut self,
        method: &str,
        chat: i64,
        is_group: bool,
        now: Instant,
    ) -> Result<(), (u32, FloodReason)> {
        let forced = self.forced.iter_mut().find(|f| {
            f.remaining > 0
                && f.chat.is_none_or(|c| c == chat)
                && f.method
                    .as_deref()
                    .map_or(LIMITED.contains(&method), |m| m == method)
        });
        if let Some(f) = forced {
            f.remaining -= 1;
            let secs = f.retry_after;
            self.forced.retain(|f| f.remaining > 0);
            return Err((secs, FloodReason::Forced));
        }
        let Some(limits) = &self.limits else {
            return Ok(());
        };
        if !LIMITED.contains(&method) {
            return Ok(());
        }
        let minute = Duration::from_secs(60);
        let second = Duration::from_secs(1);
        let bucket = self.buckets.entry(chat).or_insert(Bucket {
            tokens: limits.per_chat_burst,
            at: now,
        });
        let refill = now.duration_since(bucket.at).as_secs_f64() * limits.per_chat_per_sec;
        bucket.tokens = (bucket.tokens + refill).min(limits.per_chat_burst);
        bucket.at = now;
        let group = self.groups.entry(chat).or_default();
        while group
            .front()
            .is_some_and(|&t| now.duration_since(t) >= minute)
        {
            group.pop_front();
        }
        while self
            .global
            .front()
            .is_some_and(|&t| now.duration_since(t) >= second)
        {
            self.global.pop_front();
        }
        let mut wait = (0.0f64, FloodReason::Chat);
        if bucket.tokens < 1.0 {
            wait = (
                (1.0 - bucket.tokens) / limits.per_chat_per_sec,
                FloodReason::Chat,
            );
        }
        if is_group && group.len() >= limits.per_group_per_min {
            let w = (group[group.len() - limits.per_group_per_min] + minute - now).as_secs_f64();
            if w > wait.0 {
                wait = (w, FloodReason::Group);
            }
        }
        if self.global.len() >= limits.global_per_sec {
            let w = (self.global[self.global.len() - limits.global_per_sec] + second - now)
                .as_secs_f64();
            if w > wait.0 {
                wait = (w, FloodReason::Global);
            }
        }
        if wait.0 > 0.0 {
            return Err(((wait.0.ceil() as u32).max(1), wait.1));
        }
        bucket.tokens -= 1.0;
        if is_group {
            group.push_back(now);
        }
        self.global.push_back(now);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chat_burst_then_rate() {
        let mut f = Flood {
            limits: Some(FloodLimits::default()),
            ..Flood::default()
        };
        let t0 = Instant::now();
        for _ in 0..3 {
            assert_eq!(f.admit("sendmessage", 1, false, t0), Ok(()));
        }
        assert_eq!(
            f.admit("sendmessage", 1, false, t0),
            Err((1, FloodReason::Chat))
        );
        // Other chats and other methods are unaffected.
        assert_eq!(f.admit("sendmessage", 2, false, t0), Ok(()));
        assert_eq!(f.admit("sendchataction", 1, false, t0), Ok(()));
        assert_eq!(
            f.admit("sendmessage", 1, false, t0 + Duration::from_secs(1)),
            Ok(())
        );
    }

    #[test]
    fn group_minute_budget_is_shared() {
        let mut f = Flood {
            limits: Some(FloodLimits::default()),
            ..Flood::default()
        };
        let t0 = Instant::now();
        for i in 0..20 {
            let t = t0 + Duration::from_secs(i);
            assert_eq!(
                f.admit("editmessagetext", -100, true, t),
                Ok(()),
                "call {i}"
            );
        }
        let t = t0 + Duration::from_secs(20);
        assert_eq!(
            f.admit("sendmessage", -100, true, t),
            Err((40, FloodReason::Group))
        );
        assert_eq!(
            f.admit("sendmessage", -100, true, t0 + Duration::from_secs(60)),
            Ok(())
        );
    }

    #[test]
    fn forced() {
        let mut f = Flood::default();
        f.force(None, 2, 7);
        let t0 = Instant::now();
        assert_eq!(f.admit("getme", 1, false, t0), Ok(()));
        assert_eq!(
            f.admit("sendmessage", 1, false, t0),
            Err((7, FloodReason::Forced))
        );
        assert_eq!(
            f.admit("editmessagetext", 1, false, t0),
            Err((7, FloodReason::Forced))
        );
        assert_eq!(f.admit("sendmessage", 1, false, t0), Ok(()));
        f.force(Some("answerCallbackQuery"), 1, 3);
        assert_eq!(f.admit("sendmessage", 1, false, t0), Ok(()));
        assert_eq!(
            f.admit("answercallbackquery", 1, false, t0),
            Err((3, FloodReason::Forced))
        );
    }
}
