//! A topic shows everything Codex shows, on request: a message typed into the window at the desk
//! appears in the topic ("🖥 at the desk: …") while the topic's own messages never do, and
//! `/verbose shell on` adds what shell commands print; `/verbose commentary off` hides
//! commentary.

use std::time::Duration;

use crate::center::CenterEnv;

const TURN: Duration = Duration::from_secs(90);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn desk_messages_and_shell_output_show_on_request() {
    let env = CenterEnv::start("verbose").await;
    let thread = env.bound_topic("Desk", "echo: from the phone").await;
    env.message(thread, "first answer", |m| m.text() == "from the phone")
        .await;

    // Typed at the desk, in the topic's own window.
    let panes = env
        .tmux
        .tmux(&["list-panes", "-a", "-F", "#{pane_id} #{window_name}"])
        .unwrap();
    let pane = panes
        .lines()
        .find(|l| l.ends_with("codex-project"))
        .and_then(|l| l.split_whitespace().next())
        .unwrap()
        .to_owned();
    env.tmux
        .tmux(&["send-keys", "-t", &pane, "-l", "echo: from the desk"])
        .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    env.tmux.tmux(&["send-keys", "-t", &pane, "Enter"]).unwrap();
    env.message(thread, "desk message", |m| {
        m.text() == "🖥 at the desk: echo: from the desk"
    })
    .await;
    env.message(thread, "desk answer", |m| m.text() == "from the desk")
        .await;
    let texts = env.texts_in(thread);
    assert!(
        !texts
            .iter()
            .any(|t| t.contains("at the desk: echo: from the phone")),
        "a message from the topic came back as a desk message: {texts:?}"
    );

    // Shell output on request; commentary off.
    env.say(thread, "/verbose shell on");
    env.message(thread, "verbose", |m| m.text().contains("shell on"))
        .await;
    env.say(thread, "/verbose commentary off");
    env.message(thread, "verbose", |m| m.text().contains("commentary off"))
        .await;
    env.say(thread, "commentary: hidden words");
    env.tg
        .wait_for_message("the shell output", TURN, |m| {
            m.thread_id == Some(thread)
                && m.text().starts_with("$ echo")
                && m.text().ends_with("\nhidden words")
        })
        .await
        .unwrap();
    env.message(thread, "the answer", |m| m.text() == "Done: hidden words")
        .await;
    let texts = env.texts_in(thread);
    assert!(
        !texts.iter().any(|t| t == "hidden words"),
        "commentary was shown although off: {texts:?}"
    );
}
