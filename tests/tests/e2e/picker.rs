//! The bind menu's pickers: sessions whose topic was closed stay out of the resume list until
//! asked for, and dot-folders show on request.

use std::time::Duration;

use crate::center::CenterEnv;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_topics_session_is_hidden_until_shown_and_can_still_be_resumed() {
    let env = CenterEnv::start("p-hidden").await;
    std::fs::create_dir_all(env.project.join(".secret-stash")).unwrap();
    let first = env.bound_topic("first", "echo: remember me").await;
    env.message(first, "first answer", |m| m.text() == "remember me")
        .await;
    env.tg.close_topic(&env.alice, env.chat, first).unwrap();
    // The window closes with the topic.
    env.project_window_closes(Duration::from_secs(20)).await;
    let second = env
        .tg
        .create_topic(&env.alice, env.chat, "second")
        .unwrap()
        .thread_id
        .unwrap();
    env.say(second, "echo: again");
    let menu = env
        .message(second, "folder browser", |m| {
            m.text().contains("Choose a folder")
        })
        .await;
    env.press(&menu, "📁 project");
    let id = menu.message_id;
    let listed = env
        .message(second, "project listed", |m| {
            m.message_id == id && m.text().contains("/project")
        })
        .await;
    // Dot-folders are hidden until asked for.
    assert!(
        !listed
            .buttons()
            .iter()
            .any(|b| b.text.contains(".secret-stash"))
    );
    env.press(&listed, "👁 Show .folders");
    let listed = env
        .message(second, "dot-folders shown", |m| {
            m.message_id == id && m.buttons().iter().any(|b| b.text.contains(".secret-stash"))
        })
        .await;
    env.press(&listed, "✅ Use this folder");
    // The closed topic's session is not listed, but offered behind a toggle.
    let picker = env
        .message(second, "resume picker", |m| {
            m.message_id == id && m.buttons().iter().any(|b| b.text.starts_with("👁 Show 1"))
        })
        .await;
    assert!(
        !picker.buttons().iter().any(|b| b.text.starts_with("🕘")),
        "{:?}",
        picker.buttons()
    );
    env.press(&picker, "👁 Show 1");
    let picker = env
        .message(second, "hidden sessions shown", |m| {
            m.message_id == id && m.buttons().iter().any(|b| b.text.starts_with("🕘"))
        })
        .await;
    env.press(&picker, "🕘");
    env.message(second, "resumed", |m| {
        m.message_id == id && m.text().contains("Resumed Codex session")
    })
    .await;
    env.message(second, "the answer", |m| m.text() == "again")
        .await;
    let last = env.model.requests().last().cloned().unwrap();
    assert!(format!("{:?}", last.body).contains("remember me"));
}
