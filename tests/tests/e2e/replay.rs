//! Read-only replay: a topic bound read-only to an earlier Codex thread shows the conversation
//! so far and types nothing (the model sees no request), stays read-only across a restart of
//! the center, and "Continue live" resumes the thread so the next message gets an answer.
//!
//! Also here (it shares the resume machinery): a window that closed while its machine was away
//! is announced in its topic when the machine comes back.

use std::time::Duration;

use e2e::{
    codex::{CodexHome, codex_bin},
    node_proc::{NodeOptions, NodeProcess, TmuxSandbox},
};

use crate::center::CenterEnv;

const NOT_SENT: &str = "Not sent: this topic is read-only";

/// Messages in `thread` whose text contains `needle`.
fn count(env: &CenterEnv, thread: i64, needle: &str) -> usize {
    env.tg
        .messages_in(env.chat, Some(thread))
        .iter()
        .filter(|m| m.text().contains(needle))
        .count()
}

/// Waits until `thread` has `n` messages containing `needle`.
async fn until_count(env: &CenterEnv, thread: i64, needle: &str, n: usize) {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while count(env, thread, needle) < n {
        assert!(
            std::time::Instant::now() < deadline,
            "waiting for {n}× {needle:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_topic_shows_the_thread_types_nothing_and_continues_live() {
    let mut env = CenterEnv::start("r-read").await;
    let first = env.bound_topic("first", "echo: remember me").await;
    env.message(first, "first answer", |m| m.text() == "remember me")
        .await;
    // Closing the topic closes its window: the thread is persisted, with no window.
    env.tg.close_topic(&env.alice, env.chat, first).unwrap();
    env.project_window_closes(Duration::from_secs(20)).await;

    let second = env
        .tg
        .create_topic(&env.alice, env.chat, "second")
        .unwrap()
        .thread_id
        .unwrap();
    env.say(second, "echo: typed while picking");
    let menu = env
        .message(second, "folder browser", |m| {
            m.text().contains("Choose a folder")
        })
        .await;
    let id = menu.message_id;
    env.press(&menu, "📁 project");
    let listed = env
        .message(second, "project listed", |m| {
            m.message_id == id && m.text().contains("/project")
        })
        .await;
    env.press(&listed, "✅ Use this folder");
    let picker = env
        .message(second, "resume picker", |m| {
            m.message_id == id && m.buttons().iter().any(|b| b.text.starts_with("👁 Show 1"))
        })
        .await;
    env.press(&picker, "👁 Show 1");
    let picker = env
        .message(second, "sessions listed", |m| {
            m.message_id == id
                && m.buttons()
                    .iter()
                    .any(|b| b.text.starts_with("👁 Read only"))
        })
        .await;
    let before = env.model.responses_requests().len();
    env.press(&picker, "👁 Read only");
    env.message(second, "bound read-only", |m| {
        m.message_id == id && m.text().contains("Read only:")
    })
    .await;
    // The conversation so far arrives, with the way to go live.
    let page = env
        .message(second, "history page", |m| {
            m.text().contains("Read only (") && m.text().contains("remember me")
        })
        .await;
    assert!(
        page.buttons()
            .iter()
            .any(|b| b.text.starts_with("▶️ Continue live")),
        "{:?}",
        page.buttons()
    );
    // The message that opened the menu was not typed, and neither is the next one.
    until_count(&env, second, NOT_SENT, 1).await;
    env.say(second, "echo: should stay here");
    until_count(&env, second, NOT_SENT, 2).await;

    // A restart keeps the topic read-only.
    env.restart_center().await;
    env.say(second, "echo: after the restart");
    until_count(&env, second, NOT_SENT, 3).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        env.model.responses_requests().len(),
        before,
        "a read-only topic reached the model"
    );

    env.press(&page, "▶️ Continue live");
    env.message(second, "resumed live", |m| {
        m.text().contains("Resumed live")
    })
    .await;
    env.say(second, "echo: live again");
    env.message(second, "the answer", |m| m.text() == "live again")
        .await;
    let last = env.model.responses_requests().last().cloned().unwrap();
    assert!(format!("{:?}", last.body).contains("remember me"));
    // The page's buttons are stale now and say so.
    env.press(&page, "▶️ Continue live");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        env.tg.callback_answers().iter().any(|a| a
            .text
            .as_deref()
            .is_some_and(|t| t.contains("not read-only any more"))),
        "{:?}",
        env.tg.callback_answers()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_window_that_closed_while_its_machine_was_away_is_announced_on_its_return() {
    let model = e2e::fake_model::FakeModel::start().await.unwrap();
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(root.path().join("remote-project")).unwrap();
    let project = root.path().join("remote-project").canonicalize().unwrap();
    let codex = CodexHome::builder(&model.base_url())
        .trust(&project)
        .build()
        .unwrap();
    let state = tempfile::tempdir().unwrap();
    let tmux = TmuxSandbox::new("r-away-node");
    let mut opts = NodeOptions {
        state_dir: state.path().to_owned(),
        codex_home: codex.path().to_owned(),
        tmux_socket: tmux.socket.clone(),
        codex_command: codex_bin().unwrap().display().to_string(),
        roots: vec![format!(
            "vps={}",
            root.path().canonicalize().unwrap().display()
        )],
        env: codex.env(),
        port: 0,
    };
    let mut node = NodeProcess::start(&opts).await.unwrap();
    let env = CenterEnv::start_with(
        "r-away",
        vec![
            ("CODEX_FLEET_NODES".into(), format!("vps1={}", node.addr)),
            ("CODEX_FLEET_EMBEDDED_NODE".into(), "false".into()),
            ("CODEX_FLEET_RECONNECT_MAX_SECS".into(), "2".into()),
        ],
    )
    .await;
    let topic = env
        .tg
        .create_topic(&env.alice, env.chat, "away")
        .unwrap()
        .thread_id
        .unwrap();
    env.say(topic, "echo: before");
    // The only machine: its one root opens at once (after a machine picker while connecting).
    let mut menu = env
        .message(topic, "bind menu", |m| {
            m.text().contains("Choose a machine") || m.text().contains("Choose a folder")
        })
        .await;
    for _ in 0..50 {
        if menu.text().contains("Choose a folder") {
            break;
        }
        env.press(&menu, "🖥 vps1");
        tokio::time::sleep(Duration::from_millis(300)).await;
        menu = env.tg.bot_message(env.chat, menu.message_id).unwrap();
    }
    // A root with one folder may open that folder at once.
    let id = menu.message_id;
    let listed = if menu.text().contains("/remote-project") {
        menu
    } else {
        env.press(&menu, "📁 remote-project");
        env.message(topic, "folder listed", |m| {
            m.message_id == id && m.text().contains("/remote-project")
        })
        .await
    };
    env.press(&listed, "✅ Use this folder");
    env.message(topic, "the answer", |m| m.text() == "before")
        .await;

    // The machine goes down, and its tmux server with it (a reboot).
    node.kill().await.unwrap();
    tmux.tmux(&["kill-server"]).unwrap();
    opts.port = node.addr.port();
    node = NodeProcess::start(&opts).await.unwrap();
    env.message(topic, "the announcement", |m| {
        m.text().starts_with("🪦") && m.text().contains("closed while vps1 was away")
    })
    .await;
    // The next message brings the window back, in the same conversation.
    env.say(topic, "echo: after");
    env.message(topic, "the answer after the return", |m| {
        m.text() == "after"
    })
    .await;
    let texts = env.texts_in(topic);
    assert_eq!(
        texts.iter().filter(|t| t.starts_with("🪦")).count(),
        1,
        "{texts:#?}"
    );
    drop(node);
}
