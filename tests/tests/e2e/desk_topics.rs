//! A `codex` started at the desk in the node's tmux session gets a forum topic of its own when
//! the node's `desk_topics` is on: the topic is named after its folder, bound to that window, and
//! answers to what is typed at the desk (and from the topic) arrive there. Windows the center
//! created get no second topic. Where the bot may not open topics, the owner is told once.

use std::time::Duration;

use crate::center::CenterEnv;

const WAIT: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_codex_started_at_the_desk_gets_a_topic_and_its_answers_arrive_there() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("center.toml");
    std::fs::write(
        &config,
        "[alerts]\nenabled = false\n\n[node]\ndesk_topics = true\n",
    )
    .unwrap();
    let env = CenterEnv::start_with(
        "desk",
        vec![("CENTER_CONFIG".into(), config.display().to_string())],
    )
    .await;
    // A window the center created (through the bind menu) is no desk window.
    let ours = env.bound_topic("ours", "echo: ours").await;
    env.message(ours, "our answer", |m| m.text() == "ours")
        .await;

    // Someone at the desk starts Codex in another window of the node's tmux session.
    let session = env
        .tmux
        .tmux(&["list-sessions", "-F", "#{session_name}"])
        .unwrap();
    let session = session.lines().next().unwrap().to_owned();
    let vars: Vec<String> = env
        .opts
        .env
        .iter()
        .filter(|(k, _)| k == "CODEX_HOME" || k == "FAKE_OPENAI_API_KEY")
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    let command = format!("env {} {}", vars.join(" "), env.opts.codex_command);
    let pane = env
        .tmux
        .tmux(&[
            "new-window",
            "-d",
            "-P",
            "-F",
            "#{pane_id}",
            "-t",
            &format!("={session}:"),
            "-c",
            &env.project.display().to_string(),
            &command,
        ])
        .unwrap();
    let pane = pane.trim().to_owned();

    let chat = env.chat;
    let intro = env
        .tg
        .wait_for_message("desk topic", WAIT, |m| {
            m.chat_id == chat && m.text().contains("started at the desk")
        })
        .await
        .unwrap();
    let desk = intro.thread_id.unwrap();
    assert_ne!(desk, ours);
    assert!(intro.text().contains(&env.project.display().to_string()));
    let topic = env.tg.topic(chat, desk).unwrap();
    assert_eq!(topic.name, "🖥 project");
    assert!(topic.by_bot);

    // Typed at the desk: the answer arrives in the desk's topic.
    let typed = "echo: typed at the desk";
    env.tmux
        .tmux(&["send-keys", "-t", &pane, "-l", typed])
        .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    env.tmux.tmux(&["send-keys", "-t", &pane, "Enter"]).unwrap();
    env.message(desk, "the desk's answer", |m| {
        m.text() == "typed at the desk"
    })
    .await;
    // And the topic drives the window like any other.
    env.say(desk, "echo: from the topic");
    env.message(desk, "the topic's answer", |m| m.text() == "from the topic")
        .await;
    // One topic per desk window, none for the center's own.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let by_bot = env
        .tg
        .inspect(|v| v.topics(chat).iter().filter(|t| t.by_bot).count());
    assert_eq!(by_bot, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_right_to_open_topics_the_owner_is_told_once() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("center.toml");
    std::fs::write(
        &config,
        "[alerts]\nenabled = false\n\n[node]\ndesk_topics = true\n",
    )
    .unwrap();
    let env = CenterEnv::start_with(
        "desk-norights",
        vec![("CENTER_CONFIG".into(), config.display().to_string())],
    )
    .await;
    let dm = env.tg.create_private_chat(&env.alice, false);
    env.tg.set_bot_can_manage_topics(env.chat, false).unwrap();
    let vars: Vec<String> = env
        .opts
        .env
        .iter()
        .filter(|(k, _)| k == "CODEX_HOME" || k == "FAKE_OPENAI_API_KEY")
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    let command = format!("env {} {}", vars.join(" "), env.opts.codex_command);
    // The node's tmux session (`codex-fleet` by default) does not exist yet: the desk starts it.
    env.tmux
        .tmux(&[
            "new-session",
            "-d",
            "-s",
            "codex-fleet",
            "-x",
            "160",
            "-y",
            "48",
            "-c",
            &env.project.display().to_string(),
            &command,
        ])
        .unwrap();
    let told = env
        .tg
        .wait_for_message("owner told", WAIT, |m| {
            m.chat_id == dm && m.text().contains("no topic could be opened")
        })
        .await
        .unwrap();
    assert!(told.text().contains("/bind"), "{}", told.text());
    tokio::time::sleep(Duration::from_secs(5)).await;
    let chat = env.chat;
    assert_eq!(
        env.tg
            .inspect(|v| v.topics(chat).iter().filter(|t| t.by_bot).count()),
        0
    );
    let notices = env
        .tg
        .messages_in(dm, None)
        .iter()
        .filter(|m| m.text().contains("no topic could be opened"))
        .count();
    assert_eq!(notices, 1);
}
