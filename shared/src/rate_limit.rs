//! Attempts per source address, for endpoints that anyone who can reach the port may call before
//! anything is authenticated: the plaintext enrollment services (`agent-node join` against the
//! center, the center against `agent-node init`).
//!
//! A join code's 256-bit secret cannot be guessed, so this is not what keeps codes safe. It keeps a
//! scanner or a script in a loop from spending what each attempt costs (a database read, CSR
//! parsing, a certificate signature, a log line) without bound, and it says so once per source
//! instead of once per attempt.
//!
//! [`RateLimiter`] is pure: callers pass the [`Instant`], so tests need no sleeps. Each source has a
//! token bucket and so does everyone together (a flood from many addresses is capped too). The
//! buckets are kept as the instant they would be full again (GCRA, the "generic cell rate
//! algorithm"), which is exact in integer time and makes an idle bucket easy to recognise and drop.

use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, Ipv6Addr};
use std::time::{Duration, Instant};

/// How many attempts a bucket allows: `burst` at once, then one more every `refill_every`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    /// Attempts allowed at once from a full bucket (at least 1).
    pub burst: u32,
    /// How long one attempt takes to come back.
    pub refill_every: Duration,
}

impl Quota {
    /// `attempts` per `period`, all of them allowed at once from a full bucket.
    pub fn per(attempts: u32, period: Duration) -> Self {
        let burst = attempts.max(1);
        Self {
            burst,
            refill_every: period / burst,
        }
    }

    /// How far ahead of now a bucket's "full again" instant may be: a full burst's worth.
    fn tolerance(self) -> Duration {
        self.refill_every.saturating_mul(self.burst.max(1))
    }
}

/// Whose bucket ran dry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// This source's own bucket.
    Source,
    /// The bucket shared by every source.
    Everyone,
}

/// An attempt that was not allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refusal {
    /// Whose bucket ran dry.
    pub scope: Scope,
    /// When an attempt will be allowed again (if nobody else takes it first).
    pub retry_after: Duration,
    /// The first refusal of this scope (this source, or everyone) in the current window: log it;
    /// the rest of the window's refusals are not worth a line each.
    pub first_in_window: bool,
}

impl Refusal {
    /// [`Refusal::retry_after`] in whole seconds, rounded up (at least 1), for messages.
    pub fn retry_after_secs(&self) -> u64 {
        let secs = self.retry_after.as_secs();
        let rounded = if self.retry_after.subsec_nanos() > 0 {
            secs.saturating_add(1)
        } else {
            secs
        };
        rounded.max(1)
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "too many attempts; try again in {} s",
            self.retry_after_secs()
        )
    }
}

/// One token bucket, as the instant it is full again.
#[derive(Debug, Clone, Copy, Default)]
struct Bucket {
    /// When the bucket is full again; `None`: full now.
    full_at: Option<Instant>,
    /// Refusals of this bucket are not logged again before this instant.
    quiet_until: Option<Instant>,
}

impl Bucket {
    /// Where `full_at` would move if an attempt were allowed now, or how long until one is.
    fn try_take(&self, quota: Quota, now: Instant) -> Result<Instant, Duration> {
        let from = self.full_at.map_or(now, |at| at.max(now));
        let tolerance = quota.tolerance();
        let Some(next) = from.checked_add(quota.refill_every) else {
            return Err(tolerance);
        };
        let ahead = next.duration_since(now);
        if ahead <= tolerance {
            Ok(next)
        } else {
            Err(ahead - tolerance)
        }
    }

    /// Whether the bucket is full (and never refused lately): it can be forgotten.
    fn idle(&self, now: Instant) -> bool {
        self.full_at.is_none_or(|at| at <= now) && self.quiet_until.is_none_or(|at| at <= now)
    }

    /// Records a refusal; whether it is the first of its window.
    fn refuse(&mut self, window: Duration, now: Instant) -> bool {
        if self.quiet_until.is_some_and(|at| at > now) {
            return false;
        }
        self.quiet_until = now.checked_add(window);
        true
    }
}

/// A source of attempts: an IPv4 address, or an IPv6 /64 (one host usually holds a whole /64,
/// so counting single IPv6 addresses would count nothing).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Source(IpAddr);

impl Source {
    /// The source `ip` counts as (IPv4-mapped IPv6 addresses count as IPv4).
    pub fn of(ip: IpAddr) -> Self {
        match ip.to_canonical() {
            IpAddr::V6(v6) => {
                let [a, b, c, d, ..] = v6.segments();
                Self(IpAddr::V6(Ipv6Addr::new(a, b, c, d, 0, 0, 0, 0)))
            }
            v4 => Self(v4),
        }
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            IpAddr::V6(v6) => write!(f, "{v6}/64"),
            v4 => write!(f, "{v4}"),
        }
    }
}

/// Past this many tracked sources, idle ones are dropped. Only allowed attempts add a source,
/// and a source stays tracked for about one window after its last attempt, so the global quota
/// bounds the map; this only decides how often it is swept.
const SWEEP_ABOVE: usize = 1024;

/// Token buckets per source plus one for everyone; see the module docs.
#[derive(Debug)]
pub struct RateLimiter {
    per_source: Quota,
    global: Quota,
    sources: HashMap<Source, Bucket>,
    everyone: Bucket,
}

impl RateLimiter {
    /// A limiter allowing each source `per_source` and all of them together `global`.
    pub fn new(per_source: Quota, global: Quota) -> Self {
        Self {
            per_source,
            global,
            sources: HashMap::new(),
            everyone: Bucket::default(),
        }
    }

    /// Counts an attempt from `ip` at `now`: allowed (and charged to both buckets) or refused
    /// (and charged to neither, so a refused flood does not keep a source locked out longer).
    pub fn check(&mut self, ip: IpAddr, now: Instant) -> Result<(), Refusal> {
        let source = Source::of(ip);
        let mine = self.sources.get(&source).copied().unwrap_or_default();
        let mine_next = match mine.try_take(self.per_source, now) {
            Ok(next) => next,
            Err(retry_after) => {
                let window = self.per_source.tolerance();
                let bucket = self.sources.entry(source).or_default();
                let first_in_window = bucket.refuse(window, now);
                return Err(Refusal {
                    scope: Scope::Source,
                    retry_after,
                    first_in_window,
                });
            }
        };
        let everyone_next = match self.everyone.try_take(self.global, now) {
            Ok(next) => next,
            Err(retry_after) => {
                let first_in_window = self.everyone.refuse(self.global.tolerance(), now);
                return Err(Refusal {
                    scope: Scope::Everyone,
                    retry_after,
                    first_in_window,
                });
            }
        };
        self.everyone.full_at = Some(everyone_next);
        if self.sources.len() >= SWEEP_ABOVE {
            self.sources.retain(|_, bucket| !bucket.idle(now));
        }
        self.sources.entry(source).or_default().full_at = Some(mine_next);
        Ok(())
    }

    /// How many sources are tracked (for tests and status).
    pub fn tracked_sources(&self) -> usize {
        self.sources.len()
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;

    const MINUTE: Duration = Duration::from_secs(60);

    fn ip(last: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(192, 0, 2, last))
    }

    fn limiter() -> RateLimiter {
        RateLimiter::new(Quota::per(5, MINUTE), Quota::per(12, MINUTE))
    }

    #[test]
    fn a_source_gets_its_burst_then_one_attempt_per_refill() {
        let mut l = limiter();
        let t0 = Instant::now();
        for _ in 0..5 {
            assert_eq!(l.check(ip(1), t0), Ok(()));
        }
        let refused = l.check(ip(1), t0).unwrap_err();
        assert_eq!(refused.scope, Scope::Source);
        assert_eq!(refused.retry_after, Duration::from_secs(12));
        assert_eq!(refused.retry_after_secs(), 12);
        assert!(refused.first_in_window);
        assert_eq!(refused.to_string(), "too many attempts; try again in 12 s");
        // Refused attempts cost nothing: the wait does not grow.
        let again = l.check(ip(1), t0 + Duration::from_secs(5)).unwrap_err();
        assert_eq!(again.retry_after, Duration::from_secs(7));
        assert_eq!(again.retry_after_secs(), 7);
        // One attempt back after one refill interval, and only one.
        let t1 = t0 + Duration::from_secs(12);
        assert_eq!(l.check(ip(1), t1), Ok(()));
        assert!(l.check(ip(1), t1).is_err());
        // Another source is not affected.
        assert_eq!(l.check(ip(2), t1), Ok(()));
        // After a whole window the burst is back.
        let t2 = t1 + MINUTE;
        for _ in 0..5 {
            assert_eq!(l.check(ip(1), t2), Ok(()));
        }
        assert!(l.check(ip(1), t2).is_err());
    }

    #[test]
    fn refusals_are_logged_once_per_source_per_window() {
        let mut l = limiter();
        let t0 = Instant::now();
        for _ in 0..5 {
            l.check(ip(1), t0).unwrap();
        }
        let firsts: Vec<bool> = (0..30)
            .map(|s| {
                l.check(ip(1), t0 + Duration::from_millis(s * 100))
                    .unwrap_err()
                    .first_in_window
            })
            .collect();
        assert_eq!(firsts.iter().filter(|f| **f).count(), 1, "{firsts:?}");
        assert!(firsts[0]);
        // The next window's first refusal is logged again.
        let later = t0 + MINUTE + Duration::from_secs(1);
        for _ in 0..5 {
            l.check(ip(1), later).unwrap();
        }
        assert!(l.check(ip(1), later).unwrap_err().first_in_window);
        // Another source's refusals are its own.
        for _ in 0..5 {
            l.check(ip(2), later).unwrap();
        }
        assert!(l.check(ip(2), later).unwrap_err().first_in_window);
    }

    #[test]
    fn everyone_together_is_capped_too() {
        let mut l = limiter();
        let t0 = Instant::now();
        for n in 0..12 {
            assert_eq!(l.check(ip(n), t0), Ok(()), "attempt {n}");
        }
        let refused = l.check(ip(100), t0).unwrap_err();
        assert_eq!(refused.scope, Scope::Everyone);
        assert_eq!(refused.retry_after, Duration::from_secs(5));
        assert!(refused.first_in_window);
        assert!(!l.check(ip(101), t0).unwrap_err().first_in_window);
        // A source refused by the global cap was not charged: its own burst is intact.
        let t1 = t0 + MINUTE;
        for _ in 0..5 {
            assert_eq!(l.check(ip(100), t1), Ok(()));
        }
    }

    #[test]
    fn ipv6_counts_per_64_and_mapped_ipv4_as_ipv4() {
        let mut l = limiter();
        let t0 = Instant::now();
        let a: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        let other: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        for _ in 0..3 {
            l.check(a, t0).unwrap();
        }
        for _ in 0..2 {
            l.check(b, t0).unwrap();
        }
        assert!(l.check(a, t0).is_err());
        assert!(l.check(b, t0).is_err());
        assert_eq!(l.check(other, t0), Ok(()));
        assert_eq!(Source::of(a).to_string(), "2001:db8:1:2::/64");
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        assert_eq!(Source::of(mapped), Source::of(ip(7)));
        assert_eq!(Source::of(mapped).to_string(), "192.0.2.7");
    }

    #[test]
    fn idle_sources_are_forgotten() {
        let mut l = RateLimiter::new(Quota::per(5, MINUTE), Quota::per(100_000, MINUTE));
        let t0 = Instant::now();
        for n in 0..SWEEP_ABOVE as u32 {
            l.check(IpAddr::V4(Ipv4Addr::from(n)), t0).unwrap();
        }
        assert_eq!(l.tracked_sources(), SWEEP_ABOVE);
        // A window later they are all full again, and the next new source sweeps them.
        l.check(ip(1), t0 + MINUTE).unwrap();
        assert_eq!(l.tracked_sources(), 1);
    }

    #[test]
    fn odd_quotas_do_not_panic() {
        let t0 = Instant::now();
        let mut zero =
            RateLimiter::new(Quota::per(0, Duration::ZERO), Quota::per(0, Duration::ZERO));
        assert_eq!(zero.check(ip(1), t0), Ok(()));
        let mut huge = RateLimiter::new(
            Quota {
                burst: u32::MAX,
                refill_every: Duration::MAX,
            },
            Quota::per(1, MINUTE),
        );
        assert!(huge.check(ip(1), t0).is_err());
        let refusal = Refusal {
            scope: Scope::Source,
            retry_after: Duration::from_millis(1),
            first_in_window: true,
        };
        assert_eq!(refusal.retry_after_secs(), 1);
    }
}
