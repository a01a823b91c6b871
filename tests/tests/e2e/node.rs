//! The agent-node driven through its gRPC API (no Telegram), with real tmux and real Codex.

use std::time::Duration;

use e2e::node_client::{event_of, final_answer, terminal_of};
use proto::v1::{self, reply::Result as R, request::Op, session_event::Kind};

use crate::support::{NodeEnv, TURN, assert_confirmed};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_typed_into_a_fresh_window_comes_back_as_the_final_answer() {
    // Paste-burst detection on: the way users run Codex.
    let mut env = NodeEnv::start("fresh", true).await.unwrap();
    let session = env.create(&env.project.clone()).await.unwrap();
    assert!(session.alive);
    let reply = env
        .send(&session.session_id, "echo: hello from the phone")
        .await
        .unwrap();
    assert_confirmed(&reply);
    let sid = session.session_id.clone();
    let (answer, _) = env
        .client
        .wait_for("final answer", 0, TURN, |m| final_answer(m, &sid))
        .await
        .unwrap();
    assert_eq!(answer, "hello from the phone");
    // Events carry increasing sequence numbers and the window's thread id.
    let events = env.client.events(&sid);
    assert!(events.windows(2).all(|w| w[0].seq < w[1].seq));
    assert!(events.iter().all(|e| !e.thread_id.is_empty()));
    assert!(events.iter().any(
        |e| matches!(&e.kind, Some(Kind::UserMessage(u)) if u.text == "echo: hello from the phone")
    ));
    // The window is listed with its thread.
    let R::Windows(w) = env
        .client
        .request(Op::ListWindows(v1::ListWindows {}))
        .await
        .unwrap()
    else {
        panic!("list windows failed");
    };
    assert_eq!(w.sessions.len(), 1);
    assert!(!w.sessions[0].thread_id.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shell_syntax_and_multiline_text_arrive_literally() {
    let env = NodeEnv::start("literal", true).await.unwrap();
    let session = env.create(&env.project.clone()).await.unwrap();
    let sid = session.session_id;
    let danger = "echo: $(touch pwned); rm -rf ~ `id` && echo done;";
    assert_confirmed(&env.send(&sid, danger).await.unwrap());
    let multiline = "echo: first line\nsecond line\n\tindented third";
    assert_confirmed(&env.send(&sid, multiline).await.unwrap());
    let mut env = env;
    let mut users: Vec<String> = Vec::new();
    let mut from = 0;
    while users.len() < 2 {
        let (text, at) = env
            .client
            .wait_for("the user messages", from, TURN, |m| {
                match &event_of(m, &sid)?.kind {
                    Some(Kind::UserMessage(u)) => Some(u.text.clone()),
                    _ => None,
                }
            })
            .await
            .unwrap();
        users.push(text);
        from = at + 1;
    }
    assert!(users.contains(&danger.to_owned()), "{users:?}");
    assert!(users.contains(&multiline.to_owned()), "{users:?}");
    assert!(
        !env.project.join("pwned").exists(),
        "text was run by a shell"
    );
}
