//! Codex's own selection lists as buttons: a command forwarded to Codex that opens a list
//! (`/permissions` here; `/model` and `/review` draw the same kind of numbered list)
//! reaches the topic as a question whose entries are buttons, and a press picks that entry in
//! the real TUI — nobody has to attach to tmux to finish what they started from the phone.

use std::time::Duration;

use crate::center::CenterEnv;

const WAIT: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_list_codex_opens_is_a_question_with_buttons_and_a_press_picks_the_entry() {
    let env = CenterEnv::start("tui-lists").await;
    let thread = env.bound_topic("Lists", "echo: first").await;
    env.message(thread, "first answer", |m| m.text() == "first")
        .await;

    // In a bound topic `/permissions` is Codex's own command.
    env.say(thread, "/permissions");
    let list = env
        .message(thread, "the list", |m| {
            m.text().contains("Update Model Permissions") && !m.buttons().is_empty()
        })
        .await;
    let labels: Vec<String> = list.buttons().into_iter().map(|b| b.text).collect();
    assert!(
        labels.iter().any(|l| l.starts_with("4. Read Only")),
        "{labels:?}"
    );
    assert!(labels.iter().any(|l| l.contains("Esc")), "{labels:?}");

    env.press(&list, "4. Read Only");
    env.message(thread, "the list answered", |m| {
        m.message_id == list.message_id && m.text().contains("Answered")
    })
    .await;
    // The entry was picked in the TUI: Codex says so in its transcript area.
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let screen = env
            .tmux
            .tmux(&["capture-pane", "-p", "-t", &pane(&env)])
            .unwrap();
        if screen.contains("Read Only") && !screen.contains("enter select") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the entry was never picked:\n{screen}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // And the topic takes messages again.
    env.say(thread, "echo: after the list");
    env.message(thread, "answer after the list", |m| {
        m.text() == "after the list"
    })
    .await;
}

/// The only Codex pane of the test's tmux server.
fn pane(env: &CenterEnv) -> String {
    env.tmux
        .tmux(&["list-panes", "-a", "-F", "#{pane_id}"])
        .unwrap()
        .lines()
        .next()
        .unwrap()
        .to_owned()
}
