//! `center backfill --topic … [--turns N]`: sends a topic the last N answers of its session again,
//! read from the transcript — after an outage that lost messages in Telegram, or to give a new
//! topic the conversation's latest results. Each answer is marked as a re-send.

use proto::v1::{self, reply::Result as R, request::Op};

use crate::{
    app::{App, CALL_TIMEOUT},
    telegram::outbox::Class,
};

/// The most turns one backfill sends.
pub(crate) const MAX_TURNS: u32 = 20;
/// History entries read per request (the node's cap).
const PAGE: u32 = 50;
/// The most entries read back from the newest.
const MAX_ENTRIES: u32 = 400;

/// The answers of the last `turns` turns, oldest first: for each user message, the last
/// assistant message before the next user message. `newest_first` is the node's history order.
pub(crate) fn last_answers(
    newest_first: &[v1::HistoryEntry],
    turns: usize,
) -> Vec<v1::HistoryEntry> {
    let mut answers: Vec<v1::HistoryEntry> = Vec::new();
    let mut pending: Option<&v1::HistoryEntry> = None;
    for entry in newest_first.iter().rev() {
        match entry.role.as_str() {
            "user" => {
                if let Some(answer) = pending.take() {
                    answers.push(answer.clone());
                }
            }
            "assistant" if !entry.text.trim().is_empty() => pending = Some(entry),
            _ => {}
        }
    }
    if let Some(answer) = pending {
        answers.push(answer.clone());
    }
    let skip = answers.len().saturating_sub(turns);
    answers.split_off(skip)
}

/// Why a backfill stopped (each reads as the operator's answer).
#[derive(Debug, thiserror::Error)]
pub(crate) enum BackfillError {
    /// The topic is not one the operator can name.
    #[error("{0}")]
    Topic(String),
    #[error("{0} is offline")]
    Offline(String),
    #[error("unexpected answer {0}")]
    Unexpected(String),
    #[error("{node}: {err}")]
    Node {
        node: String,
        #[source]
        err: crate::nodes::CallError,
    },
    #[error("the session has no answers yet")]
    NoAnswers,
    #[error("Telegram refused answer {nth} of {of}: {why}")]
    Refused { nth: usize, of: usize, why: String },
    #[error("the center is stopping")]
    Stopping,
}

/// Runs a backfill for the operator; says how many answers were sent again.
pub(crate) async fn run(app: &App, topic: &str, turns: u32) -> Result<String, BackfillError> {
    let turns = turns.clamp(1, MAX_TURNS);
    let binding = match app.resolve_topic(topic) {
        Ok(b) => b,
        Err(e) => return Err(BackfillError::Topic(e.to_string())),
    };
    let Some(node) = app.node(&binding.node) else {
        return Err(BackfillError::Offline(binding.node.to_string()));
    };
    let mut entries: Vec<v1::HistoryEntry> = Vec::new();
    loop {
        let op = Op::GetHistory(v1::GetHistory {
            session_id: binding.session_id.to_string(),
            skip: entries.len() as u32,
            limit: PAGE,
            ..Default::default()
        });
        let page = match node.call(op, CALL_TIMEOUT).await {
            Ok(R::History(h)) => h,
            Ok(other) => return Err(BackfillError::Unexpected(format!("{other:?}"))),
            Err(err) => {
                return Err(BackfillError::Node {
                    node: binding.node.to_string(),
                    err,
                });
            }
        };
        let got = page.entries.len() as u32;
        entries.extend(page.entries);
        let enough = last_answers(&entries, turns as usize + 1).len() > turns as usize;
        if got < PAGE || enough || entries.len() as u32 >= MAX_ENTRIES {
            break;
        }
    }
    let answers = last_answers(&entries, turns as usize);
    if answers.is_empty() {
        return Err(BackfillError::NoAnswers);
    }
    let mut sent = 0;
    for answer in &answers {
        let when = crate::commands::clock(answer.timestamp_ms);
        let head = if when.is_empty() {
            "↩️ Re-sent answer:".to_owned()
        } else {
            format!("↩️ Re-sent answer ({when}):")
        };
        let text = format!("{head}\n\n{}", answer.text);
        for receiver in crate::deliver::queue_parts(
            &app.outbox,
            binding.surface,
            crate::deliver::markdown_parts(&text),
            Class::Message,
        ) {
            match receiver.await {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => {
                    return Err(BackfillError::Refused {
                        nth: sent + 1,
                        of: answers.len(),
                        why: e.to_string(),
                    });
                }
                Err(_) => return Err(BackfillError::Stopping),
            }
        }
        sent += 1;
    }
    Ok(format!("re-sent {sent} answer(s) to the topic"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(role: &str, text: &str) -> v1::HistoryEntry {
        v1::HistoryEntry {
            role: role.into(),
            text: text.into(),
            timestamp_ms: 0,
        }
    }

    #[test]
    fn each_turn_gives_its_last_assistant_message() {
        // Newest first, as the node sends it.
        let newest_first = vec![
            e("assistant", "answer 3"),
            e("user", "q3"),
            e("assistant", "answer 2"),
            e("assistant", "working on it"),
            e("user", "q2"),
            e("user", "q1 (no answer)"),
            e("assistant", "answer 0"),
            e("user", "q0"),
        ];
        let texts = |v: Vec<v1::HistoryEntry>| v.into_iter().map(|e| e.text).collect::<Vec<_>>();
        assert_eq!(
            texts(last_answers(&newest_first, 2)),
            ["answer 2", "answer 3"]
        );
        assert_eq!(
            texts(last_answers(&newest_first, 10)),
            ["answer 0", "answer 2", "answer 3"]
        );
        assert!(last_answers(&[e("user", "hi")], 3).is_empty());
    }
}
