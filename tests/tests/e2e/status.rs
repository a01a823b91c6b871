//! `/status` with what the rollout says (model, tokens, context left), and `/codex_status`,
//! which reaches Codex's own `/status` that ours would hide.

use std::{collections::HashSet, time::Duration};

use crate::center::CenterEnv;

/// The number after `prefix` in `text` (`None` if there is none).
fn number_after(text: &str, prefix: &str) -> Option<u64> {
    let rest = &text[text.find(prefix)? + prefix.len()..];
    let digits: String = rest
        .trim_start()
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_shows_model_and_tokens_and_codex_status_reaches_codex() {
    let mut env = CenterEnv::start("st-status").await;
    let thread = env.bound_topic("status", "echo: count my tokens").await;
    env.message(thread, "the answer", |m| m.text() == "count my tokens")
        .await;

    // Codex writes the token count around the answer: ask until the status has it.
    let mut seen = HashSet::new();
    let status = status_with_tokens(&env, thread, &mut seen).await;
    assert!(status.contains("Model fake-model"), "{status}");
    assert!(status.contains("used this session · last turn"), "{status}");
    // The fake model's calls are far below Codex's 12k baseline.
    assert!(status.contains("Context 100% left"), "{status}");
    let ours = number_after(&status, "Tokens").unwrap_or_else(|| panic!("{status}"));
    assert!(ours > 100, "{status}");

    // Codex's own /status: typed into Codex, whose card a screenshot shows.
    env.say(thread, "/codex_status");
    env.message(thread, "the screenshot of Codex's status", |m| {
        m.media.is_some()
    })
    .await;
    let panes = env
        .tmux
        .tmux(&["list-panes", "-a", "-F", "#{pane_id}"])
        .unwrap();
    let pane = panes.lines().next().unwrap();
    let screen = env
        .tmux
        .tmux(&["capture-pane", "-p", "-J", "-S", "-100", "-t", pane])
        .unwrap();
    assert!(screen.contains("Model provider:"), "{screen}");
    // Codex counts the same tokens as ours (the fake model reports no cached input).
    assert_eq!(
        number_after(&screen, "Token usage:"),
        Some(ours),
        "{status}\n{screen}"
    );

    // A restarted center (and its node) knows them again without another turn: the node
    // reads them back from the part of the rollout its tail skips.
    env.restart_center().await;
    let again = status_with_tokens(&env, thread, &mut seen).await;
    assert_eq!(number_after(&again, "Tokens"), Some(ours), "{again}");
    assert!(again.contains("Model fake-model"), "{again}");
}

/// Sends `/status` until an answer (not in `seen`) has a Tokens line; returns the last answer.
async fn status_with_tokens(env: &CenterEnv, thread: i64, seen: &mut HashSet<i64>) -> String {
    let mut status = String::new();
    for _ in 0..20 {
        env.say(thread, "/status");
        let m = env
            .message(thread, "status", |m| {
                m.text().contains("Machine") && !seen.contains(&m.message_id)
            })
            .await;
        seen.insert(m.message_id);
        status = m.text().to_owned();
        if status.contains("Tokens") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    status
}
