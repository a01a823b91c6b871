//! The topic's tools: `/toolbar` (a keyboard of Esc, Interrupt, Screenshot, Status and the
//! steer/queue switch) and `/cleanup` (topics whose window is gone, windows no topic holds, one
//! button each to fix them), against the real center, tmux and Codex.

use std::time::Duration;

use e2e::fake_telegram::BotMessage;

use crate::center::CenterEnv;

const WAIT: Duration = Duration::from_secs(60);

/// Presses the button whose label starts with `label` on `m` and returns the answer the user
/// sees (the callback's toast).
async fn press_for_answer(env: &CenterEnv, m: &BotMessage, label: &str) -> String {
    let button = m
        .buttons()
        .into_iter()
        .find(|b| b.text.starts_with(label))
        .unwrap_or_else(|| panic!("no button {label:?} in {:?}", m.buttons()));
    let query = env
        .tg
        .press_button(
            &env.alice,
            m.chat_id,
            m.message_id,
            button.callback_data.as_deref().unwrap(),
        )
        .unwrap()
        .query_id
        .unwrap();
    env.tg
        .wait_for(&format!("the answer to {label:?}"), WAIT, |v| {
            v.callback_answers()
                .iter()
                .find(|a| a.query_id == query)
                .map(|a| a.text.clone().unwrap_or_default())
        })
        .await
        .unwrap()
}

/// Alice writes `text` in `thread`; returns its message id.
fn send(env: &CenterEnv, thread: i64, text: &str) -> Option<i64> {
    env.tg
        .send_text(&env.alice, env.chat, Some(thread), text)
        .unwrap()
        .message_id
}

/// Alice writes `text` in `thread` of `chat`; returns its message id.
fn send_in(env: &CenterEnv, chat: i64, thread: i64, text: &str) -> Option<i64> {
    env.tg
        .send_text(&env.alice, chat, Some(thread), text)
        .unwrap()
        .message_id
}

/// The tmux ids of the Codex windows.
fn codex_windows(env: &CenterEnv) -> Vec<String> {
    env.tmux
        .tmux(&["list-windows", "-a", "-F", "#{window_id} #{window_name}"])
        .unwrap_or_default()
        .lines()
        .filter(|l| l.ends_with("codex-project"))
        .filter_map(|l| l.split_whitespace().next().map(str::to_owned))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_toolbar_takes_screenshots_switches_the_mode_and_moves_to_the_bottom() {
    let env = CenterEnv::start("t-toolbar").await;
    let thread = env.bound_topic("toolbar", "echo: hi").await;
    env.message(thread, "answer", |m| m.text() == "hi").await;
    send(&env, thread, "/toolbar");
    let toolbar = env
        .message(thread, "the toolbar", |m| {
            m.text().starts_with("🧰 Toolbar")
        })
        .await;
    assert!(toolbar.text().contains("project"), "{}", toolbar.text());
    let labels: Vec<String> = toolbar.buttons().into_iter().map(|b| b.text).collect();
    for label in [
        "⎋ Esc",
        "⏹ Interrupt",
        "📸 Screenshot",
        "ℹ️ Status",
        "⚡ Mode: steer",
    ] {
        assert!(
            labels.iter().any(|l| l.starts_with(label)),
            "{label:?} not in {labels:?}"
        );
    }

    // Screenshot: a photo arrives, as a reply to the toolbar.
    let answer = press_for_answer(&env, &toolbar, "📸 Screenshot").await;
    assert!(answer.contains("Screenshot"), "{answer}");
    env.message(thread, "the screenshot", |m| {
        m.media.is_some() && m.reply_to == Some(toolbar.message_id)
    })
    .await;

    // Esc reaches the node, which has nothing to interrupt while Codex is idle.
    let answer = press_for_answer(&env, &toolbar, "⎋ Esc").await;
    assert!(answer.contains("Codex is idle"), "{answer}");

    // The switch: queue mode, shown by /status and on the button itself.
    let answer = press_for_answer(&env, &toolbar, "⚡ Mode: steer").await;
    assert!(answer.contains("Queue mode"), "{answer}");
    let toolbar = env
        .message(thread, "the switch relabelled", |m| {
            m.message_id == toolbar.message_id
                && m.buttons()
                    .iter()
                    .any(|b| b.text.starts_with("📥 Mode: queue"))
        })
        .await;
    let asked = send(&env, thread, "/status");
    env.message(thread, "status in queue mode", |m| {
        m.reply_to == asked && m.text().contains("Input queue (Tab)")
    })
    .await;

    // Status from the toolbar.
    let answer = press_for_answer(&env, &toolbar, "ℹ️ Status").await;
    assert!(answer.contains("Status"), "{answer}");
    env.message(thread, "status from the toolbar", |m| {
        m.reply_to == Some(toolbar.message_id) && m.text().contains("Input queue (Tab)")
    })
    .await;

    // /toolbar again: a new one at the bottom, showing the mode; the old one is deleted.
    send(&env, thread, "/toolbar");
    let second = env
        .message(thread, "the second toolbar", |m| {
            m.message_id != toolbar.message_id && m.text().starts_with("🧰 Toolbar")
        })
        .await;
    assert!(
        second
            .buttons()
            .iter()
            .any(|b| b.text.starts_with("📥 Mode: queue")),
        "{:?}",
        second.buttons()
    );
    env.tg
        .wait_for("the old toolbar deleted", WAIT, |v| {
            v.bot_message(env.chat, toolbar.message_id)
                .filter(|m| m.deleted)
                .map(|_| ())
        })
        .await
        .unwrap();

    // Unbound since: the toolbar says so and does nothing.
    send(&env, thread, "/unbind");
    env.message(thread, "unbound", |m| m.text().starts_with("Unbound."))
        .await;
    let before = env.texts_in(thread).len();
    let answer = press_for_answer(&env, &second, "📸 Screenshot").await;
    assert!(answer.contains("no longer bound"), "{answer}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        env.texts_in(thread).len(),
        before,
        "{:?}",
        env.texts_in(thread)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_toolbar_in_an_unbound_topic_asks_to_bind_first() {
    let env = CenterEnv::start("t-toolbar-unbound").await;
    let thread = env
        .tg
        .create_topic(&env.alice, env.chat, "unbound")
        .unwrap()
        .thread_id
        .unwrap();
    let asked = send(&env, thread, "/toolbar");
    let answer = env
        .message(thread, "the answer", |m| m.reply_to == asked)
        .await;
    assert!(answer.text().contains("Bind it first"), "{}", answer.text());
    assert!(answer.buttons().is_empty());
    // Neither a window nor a folder browser.
    assert!(env.tmux.tmux(&["list-windows", "-a"]).is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cleanup_lists_a_topic_without_window_and_a_window_without_topic_and_fixes_both() {
    let env = CenterEnv::start("t-cleanup").await;
    // A private chat with topics: a group's budget of 20 messages a minute would hold back
    // the list's redraws behind the bind menus and answers.
    let chat = env.tg.create_private_chat(&env.alice, true);
    let gone = env.bound_topic_in(chat, "gone", "echo: one").await;
    env.message_in(chat, gone, "first answer", |m| m.text() == "one")
        .await;
    let gone_window = codex_windows(&env);
    assert_eq!(gone_window.len(), 1, "{gone_window:?}");
    let unheld = env.bound_topic_in(chat, "unheld", "echo: two").await;
    env.message_in(chat, unheld, "second answer", |m| m.text() == "two")
        .await;
    let unheld_window: Vec<String> = codex_windows(&env)
        .into_iter()
        .filter(|w| !gone_window.contains(w))
        .collect();
    assert_eq!(unheld_window.len(), 1, "{unheld_window:?}");

    // The first topic's window goes behind the center's back; the node notices.
    env.tmux
        .tmux(&["kill-window", "-t", &gone_window[0]])
        .unwrap();
    env.message_in(chat, gone, "the exit notice", |m| {
        m.text().contains("Codex exited in this window")
    })
    .await;
    // The second topic lets go of its window, which keeps running.
    send_in(&env, chat, unheld, "/unbind");
    env.message_in(chat, unheld, "unbound", |m| {
        m.text().starts_with("Unbound.")
    })
    .await;

    let admin = env
        .tg
        .create_topic(&env.alice, chat, "admin")
        .unwrap()
        .thread_id
        .unwrap();
    let asked = send_in(&env, chat, admin, "/cleanup");
    let list = env
        .message_in(chat, admin, "the cleanup list", |m| {
            m.reply_to == asked && m.text().contains("Cleanup")
        })
        .await;
    let text = list.text();
    assert!(text.contains("Topics whose window is gone"), "{text}");
    assert!(text.contains(&format!("topic {gone}")), "{text}");
    assert!(text.contains("Windows no topic holds"), "{text}");
    assert!(text.contains("codex-project on local"), "{text}");
    assert!(text.contains(&env.project.display().to_string()), "{text}");
    assert_eq!(list.buttons().len(), 2, "{:?}", list.buttons());

    // Unbind the topic whose window is gone: it is told, and is unbound.
    let answer = press_for_answer(&env, &list, &format!("🔗 Unbind topic {gone}")).await;
    assert!(answer.contains("Unbound"), "{answer}");
    env.message_in(chat, gone, "told", |m| {
        m.text().starts_with("Unbound by /cleanup")
    })
    .await;
    let list = env
        .message_in(chat, admin, "the list redrawn", |m| {
            m.message_id == list.message_id && m.buttons().len() == 1
        })
        .await;
    let asked = send_in(&env, chat, gone, "/status");
    env.message_in(chat, gone, "not bound", |m| {
        m.reply_to == asked && m.text().starts_with("Not bound.")
    })
    .await;

    // Close the window no topic holds.
    let answer = press_for_answer(&env, &list, "✖ Close codex-project").await;
    assert!(answer.contains("Closed codex-project"), "{answer}");
    env.project_window_closes(Duration::from_secs(15)).await;
    env.message_in(chat, admin, "the list redrawn clean", |m| {
        m.message_id == list.message_id && m.text().contains("All clean")
    })
    .await;

    // And a fresh look agrees.
    let asked = send_in(&env, chat, admin, "/cleanup");
    let clean = env
        .message_in(chat, admin, "the second cleanup", |m| m.reply_to == asked)
        .await;
    assert!(clean.text().contains("All clean"), "{}", clean.text());
    assert!(clean.buttons().is_empty(), "{:?}", clean.buttons());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cleanup_button_whose_problem_went_away_answers_already_fixed() {
    let env = CenterEnv::start("t-cleanup-stale").await;
    let chat = env.tg.create_private_chat(&env.alice, true);
    let thread = env.bound_topic_in(chat, "stale", "echo: one").await;
    env.message_in(chat, thread, "answer", |m| m.text() == "one")
        .await;
    let window = codex_windows(&env);
    send_in(&env, chat, thread, "/unbind");
    env.message_in(chat, thread, "unbound", |m| {
        m.text().starts_with("Unbound.")
    })
    .await;
    let asked = send_in(&env, chat, thread, "/cleanup");
    let list = env
        .message_in(chat, thread, "the cleanup list", |m| {
            m.reply_to == asked && m.text().contains("Windows no topic holds")
        })
        .await;
    // Meanwhile the window goes at the desk; a fresh /cleanup shows when the node noticed.
    env.tmux.tmux(&["kill-window", "-t", &window[0]]).unwrap();
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let asked = send_in(&env, chat, thread, "/cleanup");
        let fresh = env
            .message_in(chat, thread, "a fresh cleanup list", |m| {
                m.reply_to == asked
            })
            .await;
        if fresh.text().contains("All clean") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the window is still listed: {}",
            fresh.text()
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    // The old list's button checks again, and does nothing.
    let answer = press_for_answer(&env, &list, "✖ Close codex-project").await;
    assert!(answer.starts_with("Already fixed"), "{answer}");
    env.message_in(chat, thread, "the old list redrawn", |m| {
        m.message_id == list.message_id && m.text().contains("All clean")
    })
    .await;
}
