//! `center backfill --topic … [--turns N]`: sends a topic the last N answers of its session again,
//! read from the transcript — after an outage that lost messages in Telegram, or to give a new
//! topic the conversation's latest results. Each answer is marked as a re-send.

use proto::v1::{self, reply::Result as R, request::Op};

use crate::{
    app::{App, CALL_TIMEOUT},
    operator::ControlAnswer,
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

/// Runs a backfill for the operator.
pub(crate) async fn run(app: &App, topic: &str, turns: u32) -> ControlAnswer {
    let turns = turns.clamp(1, MAX_TURNS);
    let binding = match app.resolve_topic(topic) {
        Ok(b) => b,
        Err(e) => return ControlAnswer::fail(e.to_string()),
    };
    let Some(node) = app.node(&binding.node) else {
        return ControlAnswer::fail(format!("{} is offline", binding.node));
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
            Ok(other) => return ControlAnswer::fail(format!("unexpected answer {other:?}")),
            Err(err) => return ControlAnswer::fail(format!("{}: {err}", binding.node)),
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
        return ControlAnswer::fail("the session has no answers yet".to_owned());
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
                    return ControlAnswer::fail(format!(
                        "Telegram refused answer {} of {}: {e}",
                        sent + 1,
                        answers.len()
                    ));
                }
                Err(_) => return ControlAnswer::fail("the center is stopping".to_owned()),
            }
        }
        sent += 1;
    }
    ControlAnswer::ok(format!("re-sent {sent} answer(s) to the topic"))
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
