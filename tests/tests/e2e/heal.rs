//! Self-heal: a bound window that vanished or whose Codex exited comes back on the topic's next
//! message, resuming the same conversation, with a one-line notice — nothing to `/kill` or
//! `/resume` by hand; and a window no topic holds can be attached from the bind menu.

use crate::center::CenterEnv;

/// The tmux window id of the project's Codex window.
fn project_window(env: &CenterEnv) -> String {
    let listed = env
        .tmux
        .tmux(&["list-windows", "-a", "-F", "#{window_id} #{window_name}"])
        .unwrap();
    listed
        .lines()
        .find(|l| l.ends_with("codex-project"))
        .and_then(|l| l.split_whitespace().next())
        .unwrap_or_else(|| panic!("no Codex window in {listed}"))
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vanished_window_comes_back_on_the_next_message_with_its_conversation() {
    let env = CenterEnv::start("h-vanished").await;
    let thread = env.bound_topic("heal", "echo: first").await;
    env.message(thread, "first answer", |m| m.text() == "first")
        .await;
    let old = project_window(&env);
    // The window goes away behind the center's back (as when the tmux server is killed).
    env.tmux.tmux(&["kill-window", "-t", &old]).unwrap();
    env.say(thread, "echo: second");
    env.message(thread, "the heal notice", |m| {
        m.text()
            .contains("resumed this conversation in a new window")
    })
    .await;
    env.message(thread, "the answer from the new window", |m| {
        m.text() == "second"
    })
    .await;
    project_window(&env); // there is a Codex window again (tmux may reuse the id)
    // The new window resumed the same Codex thread: the model saw the first exchange too.
    let last = env.model.requests().last().cloned().unwrap();
    let texts = format!("{:?}", last.body);
    assert!(texts.contains("echo: first"), "{texts}");
    // And /status shows the topic bound and running.
    env.say(thread, "/status");
    env.message(thread, "status", |m| m.text().contains("running"))
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn codex_quitting_is_announced_and_the_next_message_resumes_it() {
    let env = CenterEnv::start("h-quit").await;
    let thread = env.bound_topic("quit", "echo: before").await;
    env.message(thread, "first answer", |m| m.text() == "before")
        .await;
    // Codex's own /quit, forwarded: Codex exits in the window.
    env.say(thread, "/quit");
    env.message(thread, "the exit notice", |m| {
        m.text().contains("Codex exited in this window")
            && m.text().contains("next message here starts it again")
    })
    .await;
    env.say(thread, "echo: after");
    env.message(thread, "the heal notice", |m| {
        m.text().contains("resumed this conversation")
    })
    .await;
    env.message(thread, "the answer after the heal", |m| m.text() == "after")
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_window_no_topic_holds_can_be_attached_from_the_bind_menu() {
    let env = CenterEnv::start("h-attach").await;
    let first = env.bound_topic("first", "echo: one").await;
    env.message(first, "first answer", |m| m.text() == "one")
        .await;
    env.say(first, "/unbind");
    env.message(first, "unbound", |m| m.text().starts_with("Unbound"))
        .await;
    // Another topic: the folder has an open window nobody holds; attach it.
    let second = env
        .tg
        .create_topic(&env.alice, env.chat, "second")
        .unwrap()
        .thread_id
        .unwrap();
    env.say(second, "echo: two");
    let menu = env
        .message(second, "folder browser", |m| {
            m.text().contains("Choose a folder")
        })
        .await;
    env.press(&menu, "📁 project");
    let id = menu.message_id;
    let menu = env
        .message(second, "project listed", |m| {
            m.message_id == id && m.text().contains("/project")
        })
        .await;
    env.press(&menu, "✅ Use this folder");
    let menu = env
        .message(second, "the open window offered", |m| {
            m.message_id == id && m.buttons().iter().any(|b| b.text.starts_with("🪟"))
        })
        .await;
    env.press(&menu, "🪟 Open window");
    env.message(second, "attached", |m| {
        m.message_id == id && m.text().contains("Attached to the open Codex window")
    })
    .await;
    // The message that opened the menu goes to that same window: one Codex, one conversation.
    env.message(second, "the answer", |m| m.text() == "two")
        .await;
    let windows = env
        .tmux
        .tmux(&["list-windows", "-a", "-F", "#{window_name}"])
        .unwrap();
    assert_eq!(
        windows.lines().filter(|l| l.contains("codex-")).count(),
        1,
        "{windows}"
    );
    let last = env.model.requests().last().cloned().unwrap();
    assert!(
        format!("{:?}", last.body).contains("echo: one"),
        "same conversation"
    );
}
