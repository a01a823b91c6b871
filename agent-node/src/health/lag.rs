//! Delivery lag: how long the oldest session event the center has not acked has been waiting.
//!
//! The node does not record when it sent each event, and the window tails that send them should
//! not learn about health. But every event a tail sends is also published on its window's
//! broadcast channel first, so a link subscribes to those (from before its replay) and notes
//! when it first saw each sequence; the center's acks (the registry's `acked_seq`, or the
//! cursor the center announced in its Hello if that is further) retire them. Events are grouped
//! per second ([`Unacked`]), so the memory is bounded by time, not by chatter.
//!
//! Limits, on purpose: a window created after the link started is watched from the next
//! heartbeat on (its first seconds of events are not timed), and a dropped broadcast (a window
//! far ahead of this observer) skips those events — both can only make the lag look smaller.

use std::{
    collections::{HashMap, VecDeque},
    sync::{Arc, Mutex, Weak},
    time::{Duration, Instant},
};

use proto::v1;
use shared::{ids::SessionId, sync::LockExt};
use tokio::sync::broadcast::error::RecvError;
use tokio_util::sync::CancellationToken;

use crate::session::SessionRt;

/// Events first seen within this long of each other share one entry.
const BUCKET: Duration = Duration::from_secs(1);
/// At most this many entries per window; later events join the newest (the oldest stays exact).
const MAX_BUCKETS: usize = 1024;

/// Events of one window sent and not acked yet: (highest sequence, first seen) per bucket, in
/// order. Pure.
#[derive(Debug, Default)]
pub(crate) struct Unacked {
    buckets: VecDeque<(u64, Instant)>,
}

impl Unacked {
    /// Event `seq` was sent at `now` (a sequence not above the last one seen is a repeat).
    pub(crate) fn sent(&mut self, seq: u64, now: Instant) {
        let full = self.buckets.len() >= MAX_BUCKETS;
        if let Some(last) = self.buckets.back_mut() {
            if seq <= last.0 {
                return;
            }
            if full || now.saturating_duration_since(last.1) < BUCKET {
                last.0 = seq;
                return;
            }
        }
        self.buckets.push_back((seq, now));
    }

    /// The center acked everything up to `seq`.
    pub(crate) fn acked(&mut self, seq: u64) {
        while self.buckets.front().is_some_and(|b| b.0 <= seq) {
            self.buckets.pop_front();
        }
    }

    /// How long the oldest unacked event has waited at `now`.
    pub(crate) fn oldest(&self, now: Instant) -> Option<Duration> {
        self.buckets
            .front()
            .map(|b| now.saturating_duration_since(b.1))
    }
}

#[derive(Default)]
struct State {
    watched: HashMap<SessionId, Weak<SessionRt>>,
    unacked: HashMap<SessionId, Unacked>,
}

/// The lag of one link's events (see the module documentation).
pub(crate) struct LagTracker {
    state: Arc<Mutex<State>>,
    cursors: HashMap<String, u64>,
    token: CancellationToken,
}

impl LagTracker {
    /// A tracker for a link whose center claimed `cursors`; it stops with `token`.
    pub(crate) fn new(cursors: &[v1::SessionCursor], token: CancellationToken) -> Self {
        Self {
            state: Arc::default(),
            cursors: cursors
                .iter()
                .map(|c| (c.session_id.clone(), c.acked_seq))
                .collect(),
            token,
        }
    }

    /// Starts watching the windows of `runtimes` not watched yet.
    pub(crate) fn watch_new(&self, runtimes: &[Arc<SessionRt>]) {
        let mut state = self.state.locked();
        for rt in runtimes {
            let known = state
                .watched
                .get(&rt.id)
                .is_some_and(|w| w.as_ptr() == Arc::as_ptr(rt));
            if known {
                continue;
            }
            state.watched.insert(rt.id.clone(), Arc::downgrade(rt));
            let mut rx = rt.events.subscribe();
            let (id, shared, token) = (rt.id.clone(), self.state.clone(), self.token.clone());
            tokio::spawn(async move {
                loop {
                    let event = tokio::select! {
                        () = token.cancelled() => break,
                        event = rx.recv() => event,
                    };
                    match event {
                        Ok(e) => shared
                            .locked()
                            .unacked
                            .entry(id.clone())
                            .or_default()
                            .sent(e.seq, Instant::now()),
                        Err(RecvError::Lagged(_)) => {}
                        Err(RecvError::Closed) => break,
                    }
                }
            });
        }
    }

    /// The longest any event has waited for an ack; `acked` gives a window's acked sequence
    /// as the node recorded it.
    pub(crate) fn oldest(&self, acked: impl Fn(&str) -> Option<u64>) -> Option<Duration> {
        let now = Instant::now();
        let mut state = self.state.locked();
        let mut oldest = None;
        for (id, unacked) in &mut state.unacked {
            let cursor = self.cursors.get(id.as_str()).copied().unwrap_or(0);
            unacked.acked(acked(id).unwrap_or(0).max(cursor));
            oldest = oldest.max(unacked.oldest(now));
        }
        oldest
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_oldest_unacked_event_counts() {
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let mut u = Unacked::default();
        assert_eq!(u.oldest(at(5)), None);
        u.sent(10, at(0));
        u.sent(20, at(0)); // same second: one bucket
        u.sent(30, at(4));
        u.sent(25, at(6)); // a replayed, older sequence changes nothing
        assert_eq!(u.oldest(at(10)), Some(Duration::from_secs(10)));
        u.acked(15); // part of the first bucket: it still waits
        assert_eq!(u.oldest(at(10)), Some(Duration::from_secs(10)));
        u.acked(20);
        assert_eq!(u.oldest(at(10)), Some(Duration::from_secs(6)));
        u.acked(30);
        assert_eq!(u.oldest(at(10)), None);
    }

    #[test]
    fn memory_is_bounded_and_the_oldest_stays_exact() {
        let t0 = Instant::now();
        let mut u = Unacked::default();
        for i in 0..5000u64 {
            u.sent(i + 1, t0 + Duration::from_secs(i * 2));
        }
        assert_eq!(u.buckets.len(), MAX_BUCKETS);
        assert_eq!(
            u.oldest(t0 + Duration::from_secs(7)),
            Some(Duration::from_secs(7))
        );
        u.acked(4999);
        assert!(u.oldest(t0).is_some(), "the last event is still unacked");
        u.acked(5000);
        assert_eq!(u.oldest(t0), None);
    }
}
