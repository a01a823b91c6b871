//! A topic's held inputs, decided without IO. While Codex shows a question, typed text would
//! answer it by accident, so inputs wait in a queue (kept in SQLite by the runtime, see
//! `crate::held`). This module decides everything about that queue: whether a new input may
//! join it, which inputs go to Codex in which order once the question is gone (and where that
//! stops), which are dropped because the topic now shows another session, which have waited too
//! long, and what the list message says. The runtime loads the queue, asks, does the IO, and
//! reports back what typing gave.

use std::collections::VecDeque;

use crate::store::HeldInput;

/// Characters of each held input shown in the list.
const PREVIEW_CHARS: usize = 60;

/// Whether a new input may be held behind `held`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Admit {
    /// Hold it.
    Hold,
    /// The queue is full: `waiting` inputs are held already; this one is not delivered.
    Full { waiting: usize },
}

/// The receipt of an input refused because `waiting` inputs are held already.
pub(crate) fn full_text(waiting: usize) -> String {
    format!("✗ Not delivered: {waiting} messages already wait for Codex's question to be answered.")
}

/// Decides whether one more input may be held (at most `max` per topic).
pub(crate) fn admit(held: &[HeldInput], max: usize) -> Admit {
    if held.len() >= max {
        Admit::Full {
            waiting: held.len(),
        }
    } else {
        Admit::Hold
    }
}

/// One step of releasing a topic's held inputs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Step {
    /// Type this input now and report the outcome with [`Release::typed`].
    Type(HeldInput),
    /// Forget this input and put `why` on its receipt: it was held for a session the topic no
    /// longer shows, and is never typed into another one.
    Drop(HeldInput, &'static str),
    /// Nothing more to do now (all typed, or Codex blocked again: the rest stay held).
    Done,
}

/// What typing a held input gave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Typed {
    /// Codex took it (or refused it for good, which its receipt says): it leaves the queue.
    Settled,
    /// Codex shows a question again, or the machine is away: it and everything after it stay
    /// held, in order, for the next release.
    Blocked,
}

/// Releasing a topic's held inputs, oldest first, into the session the topic is bound to.
#[derive(Debug)]
pub(crate) struct Release {
    queue: VecDeque<HeldInput>,
    session: Option<String>,
    /// The input handed out by [`Release::next`] whose outcome is not known yet.
    typing: Option<HeldInput>,
    blocked: bool,
}

/// The receipt of an input held for a session the topic no longer shows.
pub(crate) const DROPPED_REBOUND: &str =
    "✗ Dropped: this topic is no longer bound to that session.";

impl Release {
    /// A release of `held` (oldest first, as stored) into `bound_session` (`None`: the topic is
    /// not bound any more, so every input is dropped).
    pub(crate) fn new(held: Vec<HeldInput>, bound_session: Option<String>) -> Self {
        let mut queue: VecDeque<HeldInput> = held.into();
        queue.make_contiguous().sort_by_key(|h| h.id);
        Self {
            queue,
            session: bound_session,
            typing: None,
            blocked: false,
        }
    }

    /// The next step. After a [`Step::Type`] the outcome must be reported with
    /// [`Release::typed`] before asking again.
    pub(crate) fn next(&mut self) -> Step {
        debug_assert!(self.typing.is_none(), "report the outcome of typing first");
        if self.blocked || self.typing.is_some() {
            return Step::Done;
        }
        let Some(h) = self.queue.pop_front() else {
            return Step::Done;
        };
        if self.session.as_deref() != Some(h.session_id.as_str()) {
            return Step::Drop(h, DROPPED_REBOUND);
        }
        self.typing = Some(h.clone());
        Step::Type(h)
    }

    /// Reports what typing the last [`Step::Type`] gave.
    pub(crate) fn typed(&mut self, outcome: Typed) {
        let Some(h) = self.typing.take() else { return };
        if outcome == Typed::Blocked {
            self.queue.push_front(h);
            self.blocked = true;
        }
    }

    /// The inputs still held when the release is over (oldest first); the runtime's store
    /// keeps them anyway.
    #[cfg(test)]
    pub(crate) fn still_held(&self) -> impl Iterator<Item = &HeldInput> {
        self.queue.iter()
    }
}

/// Whether `h` has waited `ttl_ms` or longer at `now_ms`.
pub(crate) fn expired(h: &HeldInput, now_ms: i64, ttl_ms: i64) -> bool {
    now_ms.saturating_sub(h.held_unix_ms) >= ttl_ms
}

/// How long until `h` expires, from `now_ms` (zero if it has).
pub(crate) fn expires_in_ms(h: &HeldInput, now_ms: i64, ttl_ms: i64) -> u64 {
    (h.held_unix_ms.saturating_add(ttl_ms).saturating_sub(now_ms)).max(0) as u64
}

/// The text of the message listing a topic's held inputs; `None` when none are held (the
/// message goes away).
pub(crate) fn list_text(held: &[HeldInput]) -> Option<String> {
    if held.is_empty() {
        return None;
    }
    let mut text = format!(
        "⏸ {} message(s) wait until Codex's question is answered:",
        held.len()
    );
    for (i, h) in held.iter().enumerate() {
        let mut line: String = h.text.chars().take(PREVIEW_CHARS).collect();
        if h.text.chars().count() > PREVIEW_CHARS {
            line.push('…');
        }
        text.push_str(&format!("\n{}. {}", i + 1, line.replace('\n', " ")));
    }
    Some(text)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::store::{InputMode, Surface};

    fn held(id: i64, session: &str, at: i64) -> HeldInput {
        HeldInput {
            id,
            surface: Surface {
                chat_id: -1,
                thread_id: 2,
            },
            session_id: session.to_owned(),
            text: format!("input {id}"),
            reply_to: id as i32,
            mode: InputMode::Steer,
            receipt: Some(100 + id as i32),
            held_unix_ms: at,
        }
    }

    #[test]
    fn a_full_queue_refuses_and_says_how_many_wait() {
        let q: Vec<HeldInput> = (1..=5).map(|i| held(i, "s", 0)).collect();
        assert_eq!(admit(&q[..4], 5), Admit::Hold);
        assert_eq!(admit(&q, 5), Admit::Full { waiting: 5 });
    }

    #[test]
    fn release_types_in_order_and_stops_where_codex_blocks_again() {
        let q = vec![held(3, "s", 0), held(1, "s", 0), held(2, "s", 0)];
        let mut r = Release::new(q, Some("s".into()));
        assert!(matches!(r.next(), Step::Type(h) if h.id == 1));
        r.typed(Typed::Settled);
        assert!(matches!(r.next(), Step::Type(h) if h.id == 2));
        r.typed(Typed::Blocked);
        assert_eq!(r.next(), Step::Done);
        let left: Vec<i64> = r.still_held().map(|h| h.id).collect();
        assert_eq!(left, vec![2, 3], "the blocked one stays first");
    }

    #[test]
    fn inputs_for_another_session_are_dropped_never_typed() {
        let q = vec![held(1, "old", 0), held(2, "new", 0)];
        let mut r = Release::new(q, Some("new".into()));
        assert!(matches!(r.next(), Step::Drop(h, DROPPED_REBOUND) if h.id == 1));
        assert!(matches!(r.next(), Step::Type(h) if h.id == 2));
        r.typed(Typed::Settled);
        assert_eq!(r.next(), Step::Done);
        let mut unbound = Release::new(vec![held(3, "new", 0)], None);
        assert!(matches!(unbound.next(), Step::Drop(..)));
    }

    #[test]
    fn expiry_and_the_list() {
        let h = held(1, "s", 1_000);
        assert!(!expired(&h, 1_999, 1_000));
        assert!(expired(&h, 2_000, 1_000));
        assert_eq!(expires_in_ms(&h, 1_500, 1_000), 500);
        assert_eq!(expires_in_ms(&h, 9_000, 1_000), 0);
        assert_eq!(list_text(&[]), None);
        let mut long = held(2, "s", 0);
        long.text = format!("{}\nmore", "x".repeat(70));
        let text = list_text(&[h, long]).unwrap_or_default();
        assert!(text.starts_with("⏸ 2 message(s)"), "{text}");
        assert!(text.contains("\n1. input 1\n2. "), "{text}");
        assert!(text.ends_with('…'), "{text}");
    }

    /// What happens to a topic, in any order.
    #[derive(Debug, Clone)]
    enum Op {
        /// A message arrives (held if anything is held or Codex asks).
        Message,
        /// Codex shows a question / the question is answered.
        Question(bool),
        /// The runtime releases the held inputs (it does after every answered question).
        Release,
        /// Time passes.
        Wait(i64),
        /// The topic is bound to another session.
        Rebind,
        /// The drop button.
        DropAll,
    }

    fn ops() -> impl Strategy<Value = Vec<Op>> {
        prop::collection::vec(
            prop_oneof![
                4 => Just(Op::Message),
                2 => any::<bool>().prop_map(Op::Question),
                3 => Just(Op::Release),
                1 => (0i64..20).prop_map(Op::Wait),
                1 => Just(Op::Rebind),
                1 => Just(Op::DropAll),
            ],
            0..60,
        )
    }

    /// The runtime of `crate::held` reduced to its decisions, with a node that refuses input
    /// while a question shows.
    #[derive(Default)]
    struct Sim {
        queue: Vec<HeldInput>,
        next_id: i64,
        now: i64,
        question: bool,
        session: u32,
        /// (input id, session typed into)
        typed: Vec<(i64, String)>,
        ended: Vec<i64>,
        refused: usize,
        /// An input was typed into a session it was not held for.
        wrong_session: bool,
    }

    const MAX: usize = 5;
    const TTL: i64 = 30;

    impl Sim {
        fn session(&self) -> String {
            format!("s{}", self.session)
        }

        fn message(&mut self) {
            self.next_id += 1;
            let id = self.next_id;
            if self.queue.is_empty() && !self.question {
                self.typed.push((id, self.session()));
                self.ended.push(id);
                return;
            }
            match admit(&self.queue, MAX) {
                Admit::Hold => {
                    let session = self.session();
                    self.queue.push(held(id, &session, self.now));
                }
                Admit::Full { .. } => {
                    self.refused += 1;
                    self.ended.push(id);
                }
            }
        }

        fn release(&mut self) {
            let mut r = Release::new(self.queue.clone(), Some(self.session()));
            loop {
                match r.next() {
                    Step::Type(h) => {
                        self.wrong_session |= h.session_id != self.session();
                        if self.question {
                            r.typed(Typed::Blocked);
                        } else {
                            self.typed.push((h.id, self.session()));
                            self.ended.push(h.id);
                            r.typed(Typed::Settled);
                        }
                    }
                    Step::Drop(h, _) => self.ended.push(h.id),
                    Step::Done => break,
                }
            }
            self.queue = r.still_held().cloned().collect();
        }

        fn apply(&mut self, op: &Op) {
            match op {
                Op::Message => self.message(),
                Op::Question(q) => self.question = *q,
                Op::Release => self.release(),
                Op::Wait(d) => {
                    self.now += d;
                    let now = self.now;
                    let (gone, kept): (Vec<_>, Vec<_>) =
                        self.queue.drain(..).partition(|h| expired(h, now, TTL));
                    self.ended.extend(gone.iter().map(|h| h.id));
                    self.queue = kept;
                }
                Op::Rebind => self.session += 1,
                Op::DropAll => self.ended.extend(self.queue.drain(..).map(|h| h.id)),
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

        /// Over any interleaving: held inputs are typed in the order they arrived, never while
        /// a question shows, never into a session they were not meant for; the queue never
        /// exceeds its cap; every input ends exactly once; and once the question is answered
        /// and the queue released, nothing stays held.
        #[test]
        fn held_inputs_are_typed_in_order_and_end_once(ops in ops()) {
            let mut sim = Sim::default();
            for op in &ops {
                let questions_before = sim.question;
                let typed_before = sim.typed.len();
                sim.apply(op);
                if questions_before && matches!(op, Op::Release) {
                    prop_assert_eq!(sim.typed.len(), typed_before, "typed while a question showed");
                }
                prop_assert!(sim.queue.len() <= MAX);
            }
            sim.question = false;
            sim.release();
            prop_assert!(sim.queue.is_empty());
            prop_assert!(!sim.wrong_session);
            let ids: Vec<i64> = sim.typed.iter().map(|(id, _)| *id).collect();
            prop_assert!(ids.windows(2).all(|w| w[0] < w[1]), "out of order: {:?}", ids);
            let mut ended = sim.ended.clone();
            ended.sort_unstable();
            let before = ended.len();
            ended.dedup();
            prop_assert_eq!(before, ended.len(), "an input ended twice");
            prop_assert_eq!(ended.len() as i64, sim.next_id, "an input never ended");
        }
    }
}
