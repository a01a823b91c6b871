//! One retry schedule for everything that waits after a failure (Bot API calls, polling, node
//! links): quick at first, so a blip costs little, and capped, so a long outage is noticed
//! within half a minute of its end.
//!
//! Most callers retry one thing and want the plain schedule ([`delay`]). The node connector
//! retries many links that tend to fail together (a network blip, a restart), so it asks for
//! jitter ([`Backoff::jittered`]) to keep the retries from arriving in lockstep. Jitter only
//! ever shortens a wait, so the cap stays a cap. The arithmetic is pure ([`Backoff::spread`]);
//! only [`Backoff::delay`] draws from the OS's random number generator.

use std::time::Duration;

/// First wait.
const FIRST: Duration = Duration::from_millis(500);
/// Longest wait of the default schedule.
pub const MAX: Duration = Duration::from_secs(30);
/// Doublings after which the wait stops growing (0.5 s · 2¹⁶ ≈ 9 h, past any cap in use).
const MAX_DOUBLINGS: u32 = 16;

/// A retry schedule: [`FIRST`] (0.5 s) doubling up to a cap, each wait optionally shortened by
/// a random part of it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backoff {
    max: Duration,
    jitter_percent: u8,
}

impl Backoff {
    /// The default schedule: 0.5 s doubling to [`MAX`], no jitter.
    pub const DEFAULT: Self = Self::capped(MAX);

    /// 0.5 s doubling to `max` (never below the first wait), no jitter.
    pub const fn capped(max: Duration) -> Self {
        Self {
            max,
            jitter_percent: 0,
        }
    }

    /// The same schedule with each wait shortened by a random amount of up to `percent` % of it
    /// (at most 100).
    pub const fn jittered(self, percent: u8) -> Self {
        Self {
            jitter_percent: if percent > 100 { 100 } else { percent },
            ..self
        }
    }

    /// The wait before retry number `attempt` (1 for the first retry; 0 reads as 1), before
    /// jitter.
    pub fn base(self, attempt: u32) -> Duration {
        FIRST
            .saturating_mul(1 << attempt.saturating_sub(1).min(MAX_DOUBLINGS))
            .min(self.max.max(FIRST))
    }

    /// The wait before retry number `attempt`, jittered with the OS's random number generator.
    pub fn delay(self, attempt: u32) -> Duration {
        if self.jitter_percent == 0 {
            return self.base(attempt);
        }
        self.spread(attempt, crate::random::unit())
    }

    /// The wait before retry number `attempt` for a random draw `unit` in `[0, 1)`: the base
    /// wait shortened by `unit` of the jitter share.
    pub fn spread(self, attempt: u32, unit: f64) -> Duration {
        let share = f64::from(self.jitter_percent) / 100.0 * unit.clamp(0.0, 1.0);
        self.base(attempt).mul_f64(1.0 - share)
    }
}

impl Default for Backoff {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// How long to wait before retry number `attempt` (1 for the first retry) on the default
/// schedule: 0.5 s doubling to [`MAX`], no jitter.
pub fn delay(attempt: u32) -> Duration {
    Backoff::DEFAULT.delay(attempt)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_then_stays_at_the_cap() {
        assert_eq!(delay(0), FIRST);
        assert_eq!(delay(1), FIRST);
        assert_eq!(delay(2), Duration::from_secs(1));
        assert_eq!(delay(7), MAX);
        assert_eq!(delay(u32::MAX), MAX);
    }

    #[test]
    fn a_custom_cap_is_honoured_past_the_default_one() {
        let ten_min = Backoff::capped(Duration::from_secs(600));
        assert_eq!(ten_min.base(8), Duration::from_secs(64));
        assert_eq!(ten_min.base(12), Duration::from_secs(600));
        assert_eq!(ten_min.delay(u32::MAX), Duration::from_secs(600));
        let two_s = Backoff::capped(Duration::from_secs(2));
        assert_eq!(two_s.delay(3), Duration::from_secs(2));
        // A cap below the first wait does not make the first wait zero.
        assert_eq!(Backoff::capped(Duration::ZERO).delay(1), FIRST);
    }

    #[test]
    fn jitter_only_shortens_by_at_most_its_share() {
        let b = Backoff::capped(Duration::from_secs(30)).jittered(25);
        assert_eq!(b.spread(3, 0.0), Duration::from_secs(2));
        assert_eq!(b.spread(3, 0.5), Duration::from_millis(1750));
        assert_eq!(b.spread(40, 1.0), Duration::from_millis(22_500));
        // Out-of-range draws are clamped, never lengthening a wait.
        assert_eq!(b.spread(40, -3.0), Duration::from_secs(30));
        assert_eq!(b.spread(40, 7.0), Duration::from_millis(22_500));
        assert_eq!(
            Backoff::DEFAULT.jittered(250).spread(1, 1.0),
            Duration::ZERO
        );
    }

    #[test]
    fn jittered_delays_stay_in_range_and_vary() {
        let b = Backoff::capped(Duration::from_secs(30)).jittered(25);
        let waits: Vec<_> = (0..64).map(|_| b.delay(40)).collect();
        for w in &waits {
            assert!(
                (Duration::from_millis(22_500)..=Duration::from_secs(30)).contains(w),
                "{w:?}"
            );
        }
        assert!(waits.iter().any(|w| *w != waits[0]), "no jitter: {waits:?}");
    }

    #[test]
    fn no_jitter_means_the_same_wait_every_time() {
        let b = Backoff::capped(Duration::from_secs(5));
        assert!((0..16).all(|_| b.delay(3) == Duration::from_secs(2)));
    }
}
