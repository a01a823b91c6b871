//! One session's turn, decided once per event for every topic bound to the session.
//!
//! Delivery used to keep its per-turn flags while looping over a session's bindings, so a
//! second topic showing the same session saw flags the first had already reset (no fallback
//! final, no images). Here the turn's state changes exactly once per event and the result is a
//! list of [`Post`]s that the runtime renders into each bound topic.

use std::collections::HashSet;

use proto::v1::{self, session_event::Kind};

use crate::text::first_line;
use serde::{Deserialize, Serialize};

/// What one event asks the runtime to show in each topic bound to the session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Post {
    /// Markdown as one or more messages; `final_answer` ones go first in the outbox and close
    /// the turn for the user.
    Markdown { text: String, final_answer: bool },
    /// A short plain notice (an interrupted or failed turn).
    Notice(String),
    /// A usage limit after which the node switched to `account`: the notice, with a button
    /// that retries the turn on that account (see `crate::retry`). `input`: the failed turn's
    /// user message, when this process saw it (what the retry types again).
    RetryOffer {
        text: String,
        account: String,
        input: Option<String>,
    },
    /// A line for the turn's status message: a tool Codex runs, a file it edits, its plan.
    StatusLine(String),
    /// A line for the status message about Codex's reasoning (its summary's first line).
    ReasoningLine(String),
    /// What a shell command printed (shown only where a topic asked for shell output).
    ShellOutput { command: String, output: String },
    /// A message of the user in the transcript: one typed from Telegram, or one typed at the
    /// desk (the runtime tells them apart by what it typed itself).
    UserText(String),
    /// The turn's outcome, closing its status message. `answered`: a final answer was posted in
    /// this turn, which closes the turn for the user already (a plain "Done" costs no edit then).
    CloseStatus { outcome: String, answered: bool },
    /// Images an answer names, to send as photos (paths as the answer wrote them are resolved
    /// against the session's folder by the runtime). Never one already sent this turn.
    ImagesNamed(String),
    /// An image Codex viewed, to send as a photo.
    ImageViewed(String),
}

/// The turn state of one session. Saved with each ack ([`Turn::saved`]) and restored at start,
/// so a replay after a restart decides exactly as the process that stopped would have.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Turn {
    /// The turn's start was seen (so all its messages are known).
    seen_start: bool,
    final_sent: bool,
    /// Digest of the last assistant message (trimmed): all a completion is compared with, and
    /// small enough to save with every ack (the message itself can be tens of kilobytes).
    last_assistant: Option<String>,
    /// The sequence of the turn's start (its draft id).
    started_at: Option<u64>,
    /// Image paths already sent in this turn (not saved: at worst an image is sent again).
    #[serde(skip)]
    images: HashSet<String>,
    /// The session's latest user message (not saved: after a restart a failed turn offers its
    /// retry without knowing what to type, and the button says so).
    #[serde(skip)]
    last_user: Option<String>,
}

impl Turn {
    /// The state to save with an ack (JSON).
    pub(crate) fn saved(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// The state saved with the last ack; a fresh turn if there is none or it cannot be read.
    pub(crate) fn restore(saved: &str) -> Self {
        serde_json::from_str(saved).unwrap_or_default()
    }

    /// The sequence at which the running turn started, if this process saw it.
    pub(crate) fn started_at(&self) -> Option<u64> {
        self.started_at
    }

    /// Takes one event (in order, each once); what to show for it.
    pub(crate) fn on_event(&mut self, seq: u64, kind: &Kind) -> Vec<Post> {
        match kind {
            Kind::TurnStarted(_) => {
                *self = Self {
                    seen_start: true,
                    started_at: Some(seq),
                    ..Self::default()
                };
                Vec::new()
            }
            Kind::AssistantMessage(m) if m.phase() == v1::MessagePhase::Final => {
                self.final_sent = true;
                self.last_assistant = Some(digest(&m.text));
                vec![
                    Post::Markdown {
                        text: m.text.clone(),
                        final_answer: true,
                    },
                    Post::ImagesNamed(m.text.clone()),
                ]
            }
            Kind::AssistantMessage(m) => {
                self.last_assistant = Some(digest(&m.text));
                vec![Post::Markdown {
                    text: m.text.clone(),
                    final_answer: false,
                }]
            }
            Kind::TurnCompleted(t) => {
                // Codex writes the final answer as a message before completing the turn; only a
                // turn whose messages were all seen here and did not include it gets it from
                // here (a replay that starts mid-turn must not send it twice).
                let answer = t.last_agent_message.trim();
                let mut posts = Vec::new();
                if self.seen_start
                    && !self.final_sent
                    && !answer.is_empty()
                    && self.last_assistant.as_deref() != Some(digest(answer).as_str())
                {
                    posts.push(Post::Markdown {
                        text: t.last_agent_message.clone(),
                        final_answer: true,
                    });
                    posts.push(Post::ImagesNamed(t.last_agent_message.clone()));
                }
                let answered = self.final_sent || !posts.is_empty();
                posts.push(Post::CloseStatus {
                    outcome: "✔ Done".into(),
                    answered,
                });
                self.seen_start = false;
                self.final_sent = false;
                posts
            }
            Kind::TurnAborted(a) => {
                let why = if a.reason == "interrupted" || a.reason.is_empty() {
                    "⏹ Interrupted.".to_owned()
                } else {
                    format!("⏹ Turn ended: {}", a.reason)
                };
                vec![
                    Post::CloseStatus {
                        outcome: why.clone(),
                        answered: false,
                    },
                    Post::Notice(why),
                ]
            }
            Kind::Error(err) => {
                let what = match err.kind() {
                    v1::CodexErrorKind::UsageLimit => "⚠️ Codex hit a usage limit",
                    v1::CodexErrorKind::Auth => "⚠️ Codex could not authenticate",
                    _ => "⚠️ Codex reported an error",
                };
                let text = format!("{what}: {}", err.message);
                let notice = if err.switched_to_account.is_empty() {
                    Post::Notice(text)
                } else {
                    Post::RetryOffer {
                        text,
                        account: err.switched_to_account.clone(),
                        input: self.last_user.clone(),
                    }
                };
                vec![
                    Post::CloseStatus {
                        outcome: "⚠️ Failed".into(),
                        answered: false,
                    },
                    notice,
                ]
            }
            Kind::Reasoning(r) => vec![Post::ReasoningLine(format!("💭 {}", first_line(&r.text)))],
            Kind::ToolCall(c) if c.name == "view_image" => {
                let path = serde_json::from_str::<serde_json::Value>(&c.arguments)
                    .ok()
                    .and_then(|v| v.get("path").and_then(|p| p.as_str()).map(str::to_owned))
                    .unwrap_or_default();
                let mut posts = vec![Post::StatusLine(format!(
                    "🖼 viewed {}",
                    path.rsplit('/').next().unwrap_or(&path)
                ))];
                if !path.is_empty() {
                    posts.push(Post::ImageViewed(path));
                }
                posts
            }
            Kind::ToolCall(c) => {
                let what = if c.command.is_empty() {
                    &c.name
                } else {
                    &c.command
                };
                vec![Post::StatusLine(format!("⚙️ {}", first_line(what)))]
            }
            Kind::ToolResult(r) => {
                let mark = if !r.has_exit_code || r.exit_code == 0 {
                    "✅"
                } else {
                    "❌"
                };
                let code = if r.has_exit_code && r.exit_code != 0 {
                    format!(" (exit {})", r.exit_code)
                } else {
                    String::new()
                };
                let mut posts = vec![Post::StatusLine(format!(
                    "{mark} {}{code}",
                    first_line(&r.command)
                ))];
                if !r.output.trim().is_empty() {
                    posts.push(Post::ShellOutput {
                        command: r.command.clone(),
                        output: r.output.clone(),
                    });
                }
                posts
            }
            Kind::Patch(p) => {
                let files = p
                    .files
                    .iter()
                    .map(|f| f.rsplit('/').next().unwrap_or(f))
                    .collect::<Vec<_>>()
                    .join(", ");
                vec![Post::StatusLine(format!("📝 edited {files}"))]
            }
            Kind::Plan(p) => {
                let done = p.steps.iter().filter(|s| s.status == "completed").count();
                vec![Post::StatusLine(format!(
                    "📋 plan: {done}/{} done",
                    p.steps.len()
                ))]
            }
            Kind::UserMessage(u) if !u.text.trim().is_empty() => {
                self.last_user = Some(u.text.clone());
                vec![Post::UserText(u.text.clone())]
            }
            Kind::UserMessage(_) | Kind::TokenUsage(_) => Vec::new(),
        }
    }

    /// Whether `path` (resolved) is new in this turn; remembers it.
    pub(crate) fn first_time_image(&mut self, path: &str) -> bool {
        self.images.insert(path.to_owned())
    }
}

/// A short stable digest of `text` without its surrounding whitespace.
fn digest(text: &str) -> String {
    use sha2::Digest;
    let hash = sha2::Sha256::digest(text.trim().as_bytes());
    hash[..12].iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn started() -> Kind {
        Kind::TurnStarted(v1::TurnStarted::default())
    }

    fn said(text: &str, final_answer: bool) -> Kind {
        Kind::AssistantMessage(v1::AssistantMessage {
            text: text.into(),
            phase: if final_answer {
                v1::MessagePhase::Final
            } else {
                v1::MessagePhase::Commentary
            } as i32,
        })
    }

    fn completed(last: &str) -> Kind {
        Kind::TurnCompleted(v1::TurnCompleted {
            last_agent_message: last.into(),
            ..Default::default()
        })
    }

    fn finals(posts: &[Post]) -> Vec<String> {
        posts
            .iter()
            .filter_map(|p| match p {
                Post::Markdown {
                    text,
                    final_answer: true,
                } => Some(text.clone()),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_usage_limit_after_a_switch_offers_the_retry_and_others_do_not() {
        let limit = |switched: &str| {
            Kind::Error(v1::CodexError {
                kind: v1::CodexErrorKind::UsageLimit as i32,
                message: "You've hit your usage limit.".into(),
                switched_to_account: switched.into(),
            })
        };
        let mut t = Turn::default();
        let posts = t.on_event(1, &limit("work"));
        assert!(
            posts.contains(&Post::RetryOffer {
                text: "⚠️ Codex hit a usage limit: You've hit your usage limit.".into(),
                account: "work".into(),
                input: None,
            }),
            "{posts:?}"
        );
        t.on_event(
            2,
            &Kind::UserMessage(v1::UserMessage {
                text: "fix the tests".into(),
                ..Default::default()
            }),
        );
        let posts = t.on_event(3, &limit("work"));
        assert!(
            posts.iter().any(
                |p| matches!(p, Post::RetryOffer { input: Some(i), .. } if i == "fix the tests")
            ),
            "the failed turn's message is what a retry types: {posts:?}"
        );
        let posts = t.on_event(4, &limit(""));
        assert!(
            posts.contains(&Post::Notice(
                "⚠️ Codex hit a usage limit: You've hit your usage limit.".into()
            )),
            "{posts:?}"
        );
    }

    #[test]
    fn the_final_comes_once_from_the_message_or_else_from_the_completion() {
        let mut t = Turn::default();
        let mut posts = Vec::new();
        for (seq, k) in [started(), said("42", true), completed("42")]
            .iter()
            .enumerate()
        {
            posts.extend(t.on_event(seq as u64, k));
        }
        assert_eq!(finals(&posts), ["42"]);
        // A Codex that writes no final message: the completion carries it.
        let mut t = Turn::default();
        let mut posts = t.on_event(1, &started());
        posts.extend(t.on_event(2, &said("thinking", false)));
        posts.extend(t.on_event(3, &completed("the answer")));
        assert_eq!(finals(&posts), ["the answer"]);
        assert!(posts.contains(&Post::ImagesNamed("the answer".into())));
        assert_eq!(
            posts.last(),
            Some(&Post::CloseStatus {
                outcome: "✔ Done".into(),
                answered: true
            })
        );
    }

    #[test]
    fn a_replay_that_starts_mid_turn_decides_from_the_saved_turn() {
        // The final message was delivered and acked before a restart; the replay begins with
        // the completion, which must not send the answer again.
        let mut t = Turn::default();
        t.on_event(1, &started());
        t.on_event(2, &said("42", true));
        let mut restored = Turn::restore(&t.saved());
        assert!(finals(&restored.on_event(3, &completed("42"))).is_empty());
        // Only commentary was delivered before the restart: the completion carries the answer.
        let mut t = Turn::default();
        t.on_event(1, &started());
        t.on_event(2, &said("looking", false));
        let mut restored = Turn::restore(&t.saved());
        assert_eq!(finals(&restored.on_event(3, &completed("42"))), ["42"]);
        // Nothing saved (an older center): never a guessed answer.
        assert!(finals(&Turn::restore("").on_event(3, &completed("42"))).is_empty());
    }

    /// One turn as Codex writes it: start, some commentary, maybe a final message, completion.
    fn turn_events() -> impl Strategy<Value = (Vec<Kind>, String)> {
        (0usize..3, any::<bool>()).prop_map(|(commentary, final_message)| {
            let answer = "the answer".to_owned();
            let mut events = vec![started()];
            for i in 0..commentary {
                events.push(said(&format!("note {i}"), false));
            }
            if final_message {
                events.push(said(&answer, true));
            }
            events.push(completed(&answer));
            (events, answer)
        })
    }

    proptest! {
        /// Over any number of turns, with the process restarting at any event (memory lost, the
        /// turn restored from what was saved with the last ack) and the node replaying from the
        /// last acked event: every final answer is posted exactly once, provided an event is
        /// acked only after its posts were accepted.
        #[test]
        fn every_final_answer_is_posted_exactly_once_across_restarts(
            turns in prop::collection::vec(turn_events(), 1..5),
            crashes in prop::collection::vec(0usize..40, 0..4),
        ) {
            let events: Vec<Kind> = turns.iter().flat_map(|(e, _)| e.clone()).collect();
            let expected = turns.len();
            let mut posted_finals = 0usize;
            let mut acked = 0usize; // events 0..acked are done
            let mut saved = String::new();
            let mut turn = Turn::default();
            let mut crashes = crashes;
            crashes.sort_unstable();
            let mut i = 0usize;
            while i < events.len() {
                if crashes.first() == Some(&i) {
                    crashes.remove(0);
                    // Restart: fresh state, replay from the acked position.
                    turn = Turn::restore(&saved);
                    i = acked;
                    continue;
                }
                let posts = turn.on_event(i as u64 + 1, &events[i]);
                posted_finals += finals(&posts).len();
                acked = i + 1;
                saved = turn.saved();
                i += 1;
            }
            prop_assert_eq!(posted_finals, expected);
        }
    }
}
