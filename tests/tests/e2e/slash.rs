//! Slash commands sent through SendInput, with the real Codex TUI: they never reach the
//! transcript, so the node confirms them by the screen (at once, not after the 15 s transcript
//! window), and a command Codex refuses is reported and taken out of the composer, so the next
//! message reaches the model alone.

use std::time::Duration;

use proto::v1::{self, reply::Result as R};
use serde_json::Value;

use e2e::node_client::final_answer;

use crate::support::{NodeEnv, TURN, assert_confirmed};

/// Generous for a loaded machine, and still below the 15 s transcript confirmation window a
/// command used to wait out.
const COMMAND_REPLY: Duration = Duration::from_secs(10);

/// What a person typed in one model request: user messages without the harness's
/// `<environment_context>` and the like.
fn typed_texts(body: &Value) -> Vec<String> {
    body["input"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|item| item["type"] == "message" && item["role"] == "user")
        .map(|item| {
            item["content"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|part| part["text"].as_str())
                .collect::<Vec<_>>()
                .join("\n")
        })
        .filter(|text| !text.trim_start().starts_with('<') && !text.starts_with("# AGENTS.md"))
        .collect()
}

/// Sends `text` and insists on a reply within [`COMMAND_REPLY`].
async fn command(env: &NodeEnv, sid: &str, text: &str) -> R {
    tokio::time::timeout(COMMAND_REPLY, env.send(sid, text))
        .await
        .unwrap_or_else(|_| panic!("{text}: no reply within {COMMAND_REPLY:?}"))
        .unwrap()
}

/// Waits until Codex has drawn the end of the turn that answered `answer` (its `Worked for …`
/// line under the answer). The transcript runs ahead of the screen: Codex writes
/// `task_complete` (the node's TurnCompleted) and shows the answer above an idle composer a
/// moment before it has taken the end of the turn itself, and until then it refuses `/new` as
/// "disabled while a task is in progress" (seen with 0.169.0, `testdata/README.md`). No node
/// event marks that moment (the screen already classifies as ready), so this looks at the pane.
async fn turn_end_on_screen(env: &NodeEnv, sid: &str, answer: &str) {
    let deadline = tokio::time::Instant::now() + TURN;
    loop {
        let screen = env.capture(sid).await.unwrap();
        let lines: Vec<&str> = screen.lines().collect();
        let drawn = lines
            .iter()
            .rposition(|l| l.contains(answer))
            .is_some_and(|at| lines[at..].iter().any(|l| l.contains("Worked for")));
        if drawn {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "Codex never drew the end of the turn:\n{screen}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slash_commands_are_confirmed_by_the_screen_and_refused_ones_leave_nothing_behind() {
    // Paste-burst detection on: the way users run Codex.
    let mut env = NodeEnv::start("slash", true).await.unwrap();
    let sid = env.create(&env.project.clone()).await.unwrap().session_id;

    // A command Codex knows is confirmed, and it ran: its status card is on screen.
    assert_confirmed(&command(&env, &sid, "/status").await);
    let screen = env.capture(&sid).await.unwrap();
    assert!(screen.contains("Token usage:"), "{screen}");

    // One it does not know is refused in so many words, and removed from the composer.
    match command(&env, &sid, "/frobnicate").await {
        R::Failure(f) => {
            assert_eq!(f.code(), v1::ErrorCode::InvalidArgument, "{f:?}");
            assert!(f.message.contains("did not accept /frobnicate"), "{f:?}");
        }
        other => panic!("/frobnicate was not refused: {other:?}"),
    }
    let screen = env.capture(&sid).await.unwrap();
    assert!(
        screen.contains("Unrecognized command '/frobnicate'"),
        "{screen}"
    );
    assert!(
        !screen
            .lines()
            .any(|l| l.trim_start().starts_with("› /frobnicate")),
        "left in the composer:\n{screen}"
    );

    // The next message reaches the model exactly as typed, nothing glued to it.
    assert_confirmed(&env.send(&sid, "hello").await.unwrap());
    let (answer, _) = env
        .client
        .wait_for("the answer to hello", 0, TURN, |m| final_answer(m, &sid))
        .await
        .unwrap();
    assert_eq!(answer, "You said: hello");
    let typed: Vec<Vec<String>> = env
        .model
        .responses_requests()
        .iter()
        .filter(|r| !r.is_title_request())
        .map(|r| typed_texts(&r.body))
        .collect();
    assert_eq!(typed.last(), Some(&vec!["hello".to_owned()]), "{typed:?}");

    // After a turn, /new is taken too (it starts a new conversation in the same window).
    turn_end_on_screen(&env, &sid, "You said: hello").await;
    assert_confirmed(&command(&env, &sid, "/new").await);
}
