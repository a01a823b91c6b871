//! Codex moves a window to a new rollout file (`/new` forwarded from the phone): the node binds
//! the window to the new file and the session keeps delivering answers, with sequence numbers
//! that keep growing across the files, also when replayed after a node restart.

use std::time::Duration;

use e2e::node_client::{NodeClient, event_of, final_answer};
use proto::v1::{self, reply::Result as R, session_event::Kind};

use crate::support::{NodeEnv, TURN, assert_confirmed};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forwarded_new_moves_the_window_to_a_new_rollout_and_answers_keep_coming() {
    let mut env = NodeEnv::start("newroll", true).await.unwrap();
    let sid = env.create(&env.project.clone()).await.unwrap().session_id;
    assert_confirmed(&env.send(&sid, "echo: before the switch").await.unwrap());
    let (first, at) = env
        .client
        .wait_for("first answer", 0, TURN, |m| final_answer(m, &sid))
        .await
        .unwrap();
    assert_eq!(first, "before the switch");
    let before = env.client.events(&sid);
    let last_before = before.last().unwrap().seq;
    let old_thread = before.last().unwrap().thread_id.clone();

    // `/new` never shows up in the transcript as a message; how its receipt reads is not this
    // test's business (any outcome but a dead window will do), what follows it is.
    if let Ok(R::Failure(f)) = env.send(&sid, "/new").await {
        assert_ne!(f.code(), v1::ErrorCode::WindowDead, "{f:?}");
    }
    assert_confirmed(&env.send(&sid, "echo: after the switch").await.unwrap());
    let (second, _) = env
        .client
        .wait_for("answer in the new rollout", at + 1, TURN, |m| {
            final_answer(m, &sid).filter(|t| t == "after the switch")
        })
        .await
        .unwrap();
    assert_eq!(second, "after the switch");
    // Whatever Codex writes after the answer, so the replay below has all of it to compare.
    env.client.drain_for(Duration::from_secs(1)).await;

    let all = env.client.events(&sid);
    assert!(
        all.windows(2).all(|w| w[0].seq < w[1].seq),
        "sequences went backwards: {:?}",
        all.iter().map(|e| e.seq).collect::<Vec<_>>()
    );
    let after: Vec<&v1::SessionEvent> = all.iter().filter(|e| e.seq > last_before).collect();
    assert!(after.iter().any(|e| matches!(&e.kind,
        Some(Kind::AssistantMessage(m)) if m.text == "after the switch")));
    assert!(
        after
            .iter()
            .any(|e| matches!(&e.kind, Some(Kind::TurnCompleted(_))))
    );
    let new_thread = &after.last().unwrap().thread_id;
    assert!(!new_thread.is_empty());
    assert_ne!(
        new_thread, &old_thread,
        "the window is still on its old thread"
    );
    // The window is listed with its new thread.
    let R::Windows(w) = env
        .client
        .request(v1::request::Op::ListWindows(v1::ListWindows {}))
        .await
        .unwrap()
    else {
        panic!("list windows failed");
    };
    assert_eq!(&w.sessions[0].thread_id, new_thread);

    // Acked up to the first answer's user message (in the old file): a restarted node replays
    // the rest of the old file, then the new one, with the same sequences.
    let acked = before
        .iter()
        .find(|e| matches!(&e.kind, Some(Kind::UserMessage(_))))
        .unwrap()
        .seq;
    env.client.ack(&sid, acked).await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    env.restart_node().await.unwrap();
    env.client = NodeClient::connect(&env.node.addr, &[(sid.clone(), acked)])
        .await
        .unwrap();
    env.client
        .wait_for("replayed second answer", 0, TURN, |m| {
            final_answer(m, &sid).filter(|t| t == "after the switch")
        })
        .await
        .unwrap();
    env.client.drain_for(Duration::from_millis(500)).await;
    let replayed: Vec<(u64, Option<Kind>)> = env
        .client
        .events(&sid)
        .into_iter()
        .map(|e| (e.seq, e.kind))
        .collect();
    let expected: Vec<(u64, Option<Kind>)> = all
        .into_iter()
        .filter(|e| e.seq > acked)
        .map(|e| (e.seq, e.kind))
        .collect();
    assert_eq!(
        replayed.iter().map(|e| e.0).collect::<Vec<_>>(),
        expected.iter().map(|e| e.0).collect::<Vec<_>>()
    );
    assert_eq!(replayed, expected);
    // And typing goes on in the new rollout after the restart.
    let start = env.client.seen.len();
    assert_confirmed(&env.send(&sid, "echo: after the restart").await.unwrap());
    let (third, i) = env
        .client
        .wait_for("answer after restart", start, TURN, |m| {
            final_answer(m, &sid).filter(|t| t == "after the restart")
        })
        .await
        .unwrap();
    assert_eq!(third, "after the restart");
    let seq = event_of(&env.client.seen[i], &sid).unwrap().seq;
    assert!(seq > expected.last().unwrap().0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_codex_started_at_the_desk_in_the_same_folder_is_never_captured() {
    let mut env = NodeEnv::start("deskroll", true).await.unwrap();
    let project = env.project.clone();
    let info = env.create(&project).await.unwrap();
    let sid = info.session_id.clone();
    assert_confirmed(&env.send(&sid, "echo: ours first").await.unwrap());
    env.client
        .wait_for("first answer", 0, TURN, |m| final_answer(m, &sid))
        .await
        .unwrap();
    let thread = env.client.events(&sid).last().unwrap().thread_id.clone();
    // Our window waits for its next rollout (the most tempting moment to capture another).
    let _ = env.send(&sid, "/new").await;

    // Someone at the desk starts `codex` in the same folder, in another window of the same
    // tmux server, with the same CODEX_HOME, and types into it.
    let pid = env
        .tmux
        .tmux(&["display-message", "-p", "-t", &info.pane_id, "#{pane_pid}"])
        .unwrap();
    let environ = std::fs::read(format!("/proc/{}/environ", pid.trim())).unwrap();
    let home = environ
        .split(|b| *b == 0)
        .filter_map(|kv| std::str::from_utf8(kv).ok())
        .find_map(|kv| kv.strip_prefix("CODEX_HOME="))
        .unwrap()
        .to_owned();
    let command = format!(
        "env CODEX_HOME={home} FAKE_OPENAI_API_KEY={} {}",
        e2e::codex::FAKE_API_KEY,
        e2e::codex::codex_bin().unwrap().display()
    );
    let desk = env
        .tmux
        .tmux(&[
            "new-window",
            "-d",
            "-P",
            "-F",
            "#{pane_id}",
            "-c",
            &project.display().to_string(),
            &command,
        ])
        .unwrap();
    let desk = desk.trim();
    let sessions = std::path::Path::new(&home).join("sessions");
    let desk_text = "echo: typed at the desk";
    let deadline = tokio::time::Instant::now() + TURN;
    loop {
        assert!(
            tokio::time::Instant::now() < deadline,
            "desk codex never wrote its rollout"
        );
        let screen = env
            .tmux
            .tmux(&["capture-pane", "-p", "-t", desk])
            .unwrap_or_default();
        if screen.contains("Ask Codex") && !screen.contains(desk_text) {
            env.tmux
                .tmux(&["send-keys", "-t", desk, "-l", desk_text])
                .unwrap();
            tokio::time::sleep(Duration::from_millis(500)).await;
            env.tmux.tmux(&["send-keys", "-t", desk, "Enter"]).unwrap();
        }
        if rollouts_mentioning(&sessions, desk_text) > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    env.client.drain_for(Duration::from_secs(2)).await;
    let ours = env.client.events(&sid);
    assert!(
        !ours.iter().any(|e| matches!(&e.kind,
            Some(Kind::UserMessage(u)) if u.text.contains("typed at the desk"))),
        "the desk's codex was captured"
    );
    assert!(ours.iter().all(|e| e.thread_id == thread));

    // Our window still gets its own next rollout.
    assert_confirmed(&env.send(&sid, "echo: ours again").await.unwrap());
    env.client
        .wait_for("our answer", 0, TURN, |m| {
            final_answer(m, &sid).filter(|t| t == "ours again")
        })
        .await
        .unwrap();
    let after = env.client.events(&sid);
    let new_thread = &after.last().unwrap().thread_id;
    assert_ne!(new_thread, &thread);
    assert!(!after.iter().any(|e| matches!(&e.kind,
        Some(Kind::UserMessage(u)) if u.text.contains("typed at the desk"))));
}

/// How many rollouts under `sessions` contain `text`.
fn rollouts_mentioning(sessions: &std::path::Path, text: &str) -> usize {
    let mut found = 0;
    let mut stack = vec![sessions.to_owned()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if std::fs::read_to_string(&path).is_ok_and(|s| s.contains(text)) {
                found += 1;
            }
        }
    }
    found
}
