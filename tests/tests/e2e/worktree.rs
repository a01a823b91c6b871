//! A topic in a git worktree of its own: the bind menu offers "🌿 New worktree" for a folder in a
//! git repository, Codex answers from the worktree, the topic is named after the branch, and
//! `/kill` (after a restart too) removes a clean worktree when asked and keeps a dirty one,
//! saying why.

use std::path::Path;

use e2e::fake_telegram::BotMessage;

use crate::center::CenterEnv;

fn git(dir: &Path, args: &[&str]) -> String {
    #[allow(clippy::disallowed_methods, reason = "the test's repository")]
    let out = std::process::Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["-c", "user.email=t@t", "-c", "user.name=t"])
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success(), "git {args:?}: {out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A new topic in `chat` whose first message `first` opens the bind menu; binds it to a new
/// worktree of the project and returns the topic and the bind message.
async fn worktree_topic(env: &CenterEnv, chat: i64, name: &str, first: &str) -> (i64, BotMessage) {
    let thread = env
        .tg
        .create_topic(&env.alice, chat, name)
        .unwrap()
        .thread_id
        .unwrap();
    env.say_in(chat, thread, first);
    let menu = env
        .message_in(chat, thread, "folder browser", |m| {
            m.text().contains("Choose a folder")
        })
        .await;
    env.press_in(chat, &menu, "📁 project");
    let id = menu.message_id;
    let listed = env
        .message_in(chat, thread, "project listed", |m| {
            m.message_id == id && m.text().contains("/project")
        })
        .await;
    env.press_in(chat, &listed, "✅ Use this folder");
    let choice = env
        .message_in(chat, thread, "worktree offered", |m| {
            m.message_id == id && m.buttons().iter().any(|b| b.text == "🌿 New worktree")
        })
        .await;
    env.press_in(chat, &choice, "🌿 New worktree");
    let bound = env
        .message_in(chat, thread, "bound in a worktree", |m| {
            m.message_id == id && m.text().contains("🌿 Worktree")
        })
        .await;
    (thread, bound)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_topic_in_a_new_worktree_answers_there_and_kill_removes_it_only_when_clean() {
    let mut env = CenterEnv::start("wt").await;
    std::fs::write(env.project.join("README"), "hello\n").unwrap();
    git(&env.project, &["init", "-q", "-b", "main"]);
    git(&env.project, &["add", "."]);
    git(&env.project, &["commit", "-q", "-m", "init"]);
    let trees = env.project.with_file_name("project.worktrees");

    // A clean worktree: Codex runs in it, /kill offers to remove it and does.
    let (clean, bound) = worktree_topic(&env, env.chat, "clean", "plain: pwd").await;
    let path = trees.join("plain-pwd");
    assert!(
        bound.text().contains(&path.display().to_string())
            && bound.text().contains("codex/plain-pwd"),
        "{}",
        bound.text()
    );
    env.message(clean, "answer", |m| m.text() == "ran pwd")
        .await;
    let outputs: Vec<String> = env
        .model
        .requests()
        .iter()
        .flat_map(|r| r.body["input"].as_array().cloned().unwrap_or_default())
        .filter(|i| i["type"] == "function_call_output")
        .map(|i| i["output"].to_string())
        .collect();
    assert!(
        outputs
            .iter()
            .any(|o| o.contains(&path.display().to_string())),
        "pwd printed {outputs:?}"
    );
    let topic = env.tg.topic(env.chat, clean).unwrap();
    assert_eq!(topic.name, "🌿 codex/plain-pwd");
    // Which worktrees the node made survives a restart.
    env.restart_center().await;
    env.say(clean, "/kill");
    let question = env
        .message(clean, "remove question", |m| {
            m.buttons()
                .iter()
                .any(|b| b.text.starts_with("🗑 Close and remove"))
        })
        .await;
    env.press(&question, "🗑 Close and remove");
    let id = question.message_id;
    let done = env
        .message(clean, "removed", |m| {
            m.message_id == id && m.text().contains("removed")
        })
        .await;
    assert!(
        done.text().contains("branch codex/plain-pwd deleted"),
        "{}",
        done.text()
    );
    assert!(!path.exists());
    assert!(
        git(&env.project, &["branch", "--list", "codex/*"])
            .trim()
            .is_empty()
    );

    // A dirty worktree: /kill closes the window and keeps the worktree, saying why. (In a
    // second group: the first has used much of Telegram's 20 messages a minute per group.)
    let chat = env.tg.create_forum("Second");
    env.tg.add_bot(&env.alice, chat).unwrap();
    let (dirty, _) = worktree_topic(&env, chat, "dirty", "plain: touch notes.txt").await;
    let path = trees.join("plain-touch-notes-txt");
    env.message_in(chat, dirty, "answer", |m| m.text() == "ran touch notes.txt")
        .await;
    assert!(path.join("notes.txt").exists());
    env.say_in(chat, dirty, "/kill");
    let kept = env
        .message_in(chat, dirty, "kept", |m| m.text().contains("was kept"))
        .await;
    assert!(
        kept.text().contains("uncommitted changes") && kept.text().contains("notes.txt"),
        "{}",
        kept.text()
    );
    assert!(kept.buttons().is_empty());
    assert!(path.join("notes.txt").exists());
    let windows = env
        .tmux
        .tmux(&["list-windows", "-a", "-F", "#{window_name}"])
        .unwrap_or_default();
    assert!(!windows.contains("plain-touch"), "{windows}");
    // The main checkout never saw either worktree's files.
    assert!(
        git(&env.project, &["status", "--porcelain"])
            .trim()
            .is_empty()
    );
}
