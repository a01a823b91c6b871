//! Codex accounts per node, end to end: a usage limit and a rejected key reach the topic in so
//! many words (with the time the limit resets, as Codex gives it), with the real Codex TUI
//! against the fake model's `429 usage_limit_reached` and `401`.

use std::time::Duration;

use crate::center::CenterEnv;

const WAIT: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_limit_and_auth_failure_are_reported_in_the_topic() {
    let env = CenterEnv::start("acct-limit").await;
    let thread = env.bound_topic("Limits", "limit: please").await;
    let limit = env
        .message(thread, "the usage-limit notice", |m| {
            m.text().starts_with("⚠️ Codex hit a usage limit")
        })
        .await;
    let text = limit.text();
    // Codex shows when the limit resets (in the node's local time): "… try again at 3:43 PM."
    assert!(text.contains("try again at "), "{text}");
    assert!(text.contains(" AM") || text.contains(" PM"), "{text}");

    // The session is still usable: the next message is answered.
    env.say(thread, "unauthorized: please");
    let auth = env
        .message(thread, "the auth notice", |m| {
            m.text().starts_with("⚠️ Codex could not authenticate")
        })
        .await;
    assert!(auth.text().contains("401"), "{}", auth.text());
    env.say(thread, "echo: still here");
    env.message(thread, "an answer after the failures", |m| {
        m.text() == "still here"
    })
    .await;
}

/// A stand-in for `codex login --device-auth`: prints a URL and a code, then (after a pause, so
/// the code must reach the topic before the end) saves a login, or fails for account `bad`.
const LOGIN_SCRIPT: &str = r#"#!/bin/sh
[ "$1 $2" = "login --device-auth" ] || { echo "unexpected arguments: $*"; exit 2; }
echo "Open https://auth.example.test/codex/device and sign in"
echo "Enter this one-time code: ABCD-1234"
sleep 2
case "$CODEX_HOME" in
  */bad) echo "Login was not completed" >&2; exit 1 ;;
esac
printf '{"OPENAI_API_KEY":"sk-test-not-a-secret"}' > "$CODEX_HOME/auth.json"
echo "Successfully logged in"
"#;

/// `CODEX_HOME` of the Codex process in each pane, by pane id.
fn pane_codex_homes(env: &CenterEnv) -> Vec<(String, String)> {
    let panes = env
        .tmux
        .tmux(&["list-panes", "-a", "-F", "#{pane_id} #{pane_pid}"])
        .unwrap();
    panes
        .lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(pane, pid)| {
            let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
            let home = environ
                .split(|b| *b == 0)
                .filter_map(|kv| std::str::from_utf8(kv).ok())
                .find_map(|kv| kv.strip_prefix("CODEX_HOME="))
                .unwrap_or_default()
                .to_owned();
            (pane.to_owned(), home)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn device_login_is_relayed_and_new_windows_use_the_selected_account() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("login.sh");
    std::fs::write(&script, LOGIN_SCRIPT).unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let config = dir.path().join("center.toml");
    std::fs::write(
        &config,
        format!(
            "[node.accounts]\nlogin_command = {:?}\nrotate = true\n",
            script.display().to_string()
        ),
    )
    .unwrap();
    let env = CenterEnv::start_with(
        "acct-login",
        vec![("CENTER_CONFIG".into(), config.display().to_string())],
    )
    .await;
    let first = env.bound_topic("Desk", "echo: before").await;
    env.message(first, "first answer", |m| m.text() == "before")
        .await;
    let before = pane_codex_homes(&env);
    assert_eq!(before.len(), 1, "{before:?}");

    // The URL and code reach the topic while the login still runs, then the outcome.
    env.say(first, "/codexlogin work");
    // Printed together, sent together.
    env.message(first, "the code", |m| {
        m.text()
            == "Open https://auth.example.test/codex/device and sign in\nEnter this one-time code: ABCD-1234"
    })
    .await;
    assert!(
        !env.texts_in(first)
            .iter()
            .any(|t| t.starts_with("✅ Codex is logged in")),
        "the outcome came before the code"
    );
    env.message(first, "login done", |m| {
        m.text() == "✅ Codex is logged in: account work on local."
    })
    .await;
    env.say(first, "/codexlogin bad");
    env.message(first, "login failed", |m| {
        m.text()
            .starts_with("❌ Codex login failed for account bad on local")
    })
    .await;
    env.message(first, "the failure's output", |m| {
        m.text().contains("Login was not completed")
    })
    .await;

    // Selecting an account: said for new windows only.
    env.say(first, "/codexaccount use work");
    env.message(first, "use", |m| {
        m.text()
            .starts_with("New Codex windows and jobs on local use account work.")
            && m.text().contains("Windows already running keep")
    })
    .await;
    env.say(first, "/codexaccount list");
    env.message(first, "list", |m| {
        m.text().starts_with("Codex accounts on local")
            && m.text().contains("▶ work")
            && m.text().contains("• bad (not logged in)")
    })
    .await;

    // A new topic's window runs in the account's CODEX_HOME and is relayed like any other (its
    // rollouts land in the shared sessions folder); the running window kept its own.
    // (In another group, so that Telegram's 20 messages a minute per group do not slow it.)
    let chat = env.tg.create_forum("Work");
    env.tg.add_bot(&env.alice, chat).unwrap();
    let second = env.bound_topic_in(chat, "Work", "echo: with work").await;
    env.message_in(chat, second, "answer in the account's window", |m| {
        m.text() == "with work"
    })
    .await;
    let after = pane_codex_homes(&env);
    let (old_pane, old_home) = &before[0];
    assert!(
        after.contains(&(old_pane.clone(), old_home.clone())),
        "{after:?}"
    );
    let new_home = &after.iter().find(|(p, _)| p != old_pane).unwrap().1;
    assert!(new_home.ends_with("/accounts/work"), "{after:?}");
    let mode = std::fs::metadata(new_home).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o700);
    assert!(std::path::Path::new(new_home).join("auth.json").is_file());

    // Back to the default login.
    env.say(first, "/codexaccount clear");
    env.message(first, "clear", |m| {
        m.text()
            .starts_with("New Codex windows and jobs on local use the default login.")
    })
    .await;

    // Rotation: a usage limit switches new windows and jobs to the next logged-in account,
    // and the topic is told.
    env.say(first, "limit: switch please");
    let limit = env
        .message(first, "the limit, with the switch", |m| {
            m.text().starts_with("⚠️ Codex hit a usage limit")
                && m.text().contains("now use the Codex account work")
        })
        .await;
    env.say(first, "/codexaccount list");
    env.message(first, "work selected", |m| {
        m.message_id > limit.message_id
            && m.text().starts_with("Codex accounts on local")
            && m.text().contains("▶ work")
    })
    .await;

    // "Retry on work": the turn runs again, typed into a new window resuming the conversation
    // on the account the node switched to; the window that hit the limit is gone.
    let panes_before = pane_codex_homes(&env);
    env.press(&limit, "🔁 Retry on work");
    env.message(first, "the retry's notice", |m| {
        m.text().starts_with("🔁 Retrying in a new window")
    })
    .await;
    env.message(first, "the retried turn's outcome", |m| {
        m.message_id > limit.message_id && m.text().starts_with("⚠️ Codex hit a usage limit")
    })
    .await;
    assert!(
        env.model.times_typed("limit: switch please") >= 2,
        "the retried turn carried the message again"
    );
    let panes_after = pane_codex_homes(&env);
    let old_pane = &panes_before
        .iter()
        .find(|(_, home)| !home.contains("/accounts/"))
        .unwrap()
        .0;
    assert!(
        !panes_after.iter().any(|(p, _)| p == old_pane),
        "{panes_after:?}"
    );
    assert_eq!(
        panes_after
            .iter()
            .filter(|(_, home)| home.ends_with("/accounts/work"))
            .count(),
        2,
        "the retry's window runs on work, beside the other topic's: {panes_after:?}"
    );
    // The same button again: the topic holds another window now, so it has expired.
    let answers_before = env.tg.callback_answers().len();
    env.press(&limit, "🔁 Retry on work");
    let answer = env
        .tg
        .wait_for("the stale button's answer", WAIT, |v| {
            v.callback_answers()
                .get(answers_before)
                .and_then(|a| a.text.clone())
        })
        .await
        .unwrap();
    assert!(answer.contains("expired"), "{answer}");
}
