//! Self-heal: a bound window that vanished or whose Codex exited comes back on the topic's next
//! message, resuming the same conversation, with a one-line notice — nothing to `/kill` or
//! `/resume` by hand.

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
