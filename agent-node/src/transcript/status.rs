//! The latest of what a window's rollouts say about its model and token use, for the center's
//! `/status`. Pure: the tail feeds it every record it reads, with the record's sequence.

use proto::v1::{self, session_event::Kind};

use super::parse::{Record, parse_line};

/// The record types [`StatusTracker::prime`] looks at (a cheap test before parsing).
const STATUS_RECORDS: [&str; 4] = [
    "\"session_meta\"",
    "\"turn_context\"",
    "\"token_count\"",
    "\"token_usage_record\"",
];

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

    /// Takes the status records among `bytes`, a stretch of a rollout whose byte 0 has
    /// sequence `base`: the part a tail that starts mid-file does not read (after a node
    /// restart it starts where the center's acknowledgements are). `mid_line`: `bytes` starts
    /// inside a line, which is skipped; so is an unfinished last line.
    pub fn prime(&mut self, bytes: &[u8], base: u64, mid_line: bool) {
        let mut end = base;
        for (i, line) in bytes.split_inclusive(|b| *b == b'\n').enumerate() {
            end += line.len() as u64;
            if (i == 0 && mid_line) || !line.ends_with(b"\n") {
                continue;
            }
            let Ok(text) = std::str::from_utf8(line) else {
                continue;
            };
            if STATUS_RECORDS.iter().any(|r| text.contains(r))
                && let Ok(record) = parse_line(text.trim_end())
            {
                self.observe(end, &record);
            }
        }
    }

    /// What is known, or `None` before a model or a token count was seen.
    pub fn get(&self) -> Option<v1::CodexStatus> {
        (!self.status.model.is_empty() || self.status.tokens.is_some()).then(|| self.status.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn priming_with_the_part_before_the_tail_gives_what_reading_it_would() {
        for name in ["tool_call.jsonl", "resumed.jsonl", "interrupted.jsonl"] {
            let text = fixture("0.171.0/", name);
            let mut read = StatusTracker::default();
            fold(&mut read, &text, 7);
            let mut primed = StatusTracker::default();
            primed.prime(text.as_bytes(), 7, false);
            assert_eq!(primed.get(), read.get(), "{name}");
            // Only the end of a long file: a cut first line is skipped, the rest is read.
            let cut = text.len() / 2;
            let mut tail = StatusTracker::default();
            tail.prime(&text.as_bytes()[cut..], 7 + cut as u64, true);
            assert_eq!(tail.get(), read.get(), "{name}");
        }
        // An unfinished last line is not taken.
        let line = fixture("", "echo.jsonl")
            .lines()
            .find(|l| l.contains("token_count"))
            .unwrap()
            .to_owned();
        let mut t = StatusTracker::default();
        t.prime(line.as_bytes(), 0, false);
        assert_eq!(t.get(), None);
        t.prime(format!("{line}\n").as_bytes(), 0, false);
        assert!(t.get().is_some());
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
