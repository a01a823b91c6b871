//! One retry schedule for everything that waits after a failure (Bot API calls, polling, node
//! links): quick at first, so a blip costs little, and capped, so a long outage is noticed
//! within half a minute of its end.

use std::time::Duration;

/// First wait.
const FIRST: Duration = Duration::from_millis(500);
/// Longest wait.
pub const MAX: Duration = Duration::from_secs(30);

/// How long to wait before retry number `attempt` (1 for the first retry): 0.5 s doubling to
/// [`MAX`].
pub fn delay(attempt: u32) -> Duration {
    FIRST
        .saturating_mul(1 << attempt.saturating_sub(1).min(16))
        .min(MAX)
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
}
