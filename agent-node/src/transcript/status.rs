//! The latest of what a window's rollouts say about its model and token use, for the center's
//! `/status`. Pure: the tail feeds it every record it reads, with the record's sequence.

use proto::v1::{self, session_event::Kind};

use super::parse::Record;

/// Folds rollout records into a [`v1::CodexStatus`].
#[derive(Debug, Default)]
pub struct StatusTracker {
    status: v1::CodexStatus,
    /// Sequence of the latest record taken; a rewound tail reads older ones again.
    seq: u64,
    thread_id: String,
}

impl StatusTracker {
    /// Takes what `record`, which ends at sequence `seq`, says (records at or before the latest
    /// one taken are old news and ignored).
    pub fn observe(&mut self, seq: u64, record: &Record) {
        if seq <= self.seq {
            return;
        }
        match record {
            Record::Meta { thread_id, .. } => {
                // A new conversation in the window (`/new`, a fork): its tokens start from zero.
                if !self.thread_id.is_empty() && *thread_id != self.thread_id {
                    self.status.tokens = None;
                    self.status.turn_tokens = 0;
                }
                self.thread_id.clone_from(thread_id);
            }
            Record::TurnSettings { model, effort } => {
                if !model.is_empty() {
                    self.status.model.clone_from(model);
                }
                self.status.reasoning_effort.clone_from(effort);
            }
            Record::TurnTokens(n) => self.status.turn_tokens = *n,
            Record::Event {
                kind: Kind::TokenUsage(usage),
                ..
            } => self.status.tokens = Some(*usage),
            _ => return,
        }
        self.seq = seq;
    }

    /// What is known, or `None` before a model or a token count was seen.
    pub fn get(&self) -> Option<v1::CodexStatus> {
        (!self.status.model.is_empty() || self.status.tokens.is_some()).then(|| self.status.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transcript::parse::parse_line;

    /// Feeds a recorded rollout, as the tail reads it (sequence = end of each line).
    fn fold(tracker: &mut StatusTracker, text: &str, base: u64) {
        let mut end = base;
        for line in text.split_inclusive('\n') {
            end += line.len() as u64;
            if let Ok(record) = parse_line(line.trim_end()) {
                tracker.observe(end, &record);
            }
        }
    }

    fn fixture(dir: &str, name: &str) -> String {
        let path = format!(
            "{}/testdata/{dir}rollouts/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    #[test]
    fn nothing_is_known_before_the_first_turn() {
        assert_eq!(StatusTracker::default().get(), None);
        let mut t = StatusTracker::default();
        let meta = fixture("", "echo.jsonl");
        fold(&mut t, meta.lines().next().unwrap(), 0);
        assert_eq!(t.get(), None);
    }

    #[test]
    fn recorded_rollouts_give_model_and_tokens_on_both_versions() {
        for dir in ["", "0.171.0/"] {
            // A tool call: two model calls in one turn.
            let mut t = StatusTracker::default();
            fold(&mut t, &fixture(dir, "tool_call.jsonl"), 0);
            let s = t.get().unwrap();
            assert_eq!(s.model, "fake-model", "{dir}");
            assert_eq!(s.reasoning_effort, "", "{dir}");
            let tokens = s.tokens.unwrap();
            assert_eq!(tokens.context_window, 258_400, "{dir}");
            assert_eq!(tokens.input_tokens, 200, "{dir}");
            assert_eq!(
                tokens.total_tokens,
                tokens.input_tokens + tokens.output_tokens
            );
            // The turn counts both calls; the context holds the last one.
            assert_eq!(s.turn_tokens, tokens.total_tokens, "{dir}");
            assert!(tokens.last_total_tokens < tokens.total_tokens, "{dir}");
            assert_eq!(tokens.primary_limit, None);

            // Two turns (a resumed session): the session total grows, the turn is the last.
            let mut t = StatusTracker::default();
            fold(&mut t, &fixture(dir, "resumed.jsonl"), 0);
            let s = t.get().unwrap();
            let tokens = s.tokens.unwrap();
            assert!(s.turn_tokens < tokens.total_tokens, "{dir}");
            assert_eq!(s.turn_tokens, tokens.last_total_tokens, "{dir}");
        }
    }

    #[test]
    fn a_rewound_tail_keeps_the_latest_and_a_new_thread_starts_from_zero() {
        let mut t = StatusTracker::default();
        let text = fixture("", "resumed.jsonl");
        fold(&mut t, &text, 0);
        let latest = t.get().unwrap();
        // Read again from the start (a center reattached): nothing goes backwards.
        fold(&mut t, &text, 0);
        assert_eq!(t.get().unwrap(), latest);
        // The window moved on to another conversation (`/new`): its meta clears the tokens,
        // the model stays until its first turn says otherwise.
        let other = fixture("", "echo.jsonl");
        let meta = other.lines().next().unwrap();
        fold(&mut t, &format!("{meta}\n"), text.len() as u64);
        let s = t.get().unwrap();
        assert_eq!((s.tokens, s.turn_tokens), (None, 0));
        assert_eq!(s.model, "fake-model");
        fold(&mut t, &other, text.len() as u64 + meta.len() as u64 + 1);
        assert_eq!(t.get().unwrap().tokens.unwrap().total_tokens, 106);
    }
}
