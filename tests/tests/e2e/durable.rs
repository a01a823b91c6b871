//! Nothing accepted is lost, nothing is typed twice, and nobody waits for somebody else's
//! chat: the center killed (SIGKILL) while a message waits in a bind menu, while a voice message
//! is being transcribed and while a receipt is held by a 429; Telegram's front end failing with
//! 502s; one chat out of budget while another one works.

use std::time::Duration;

use e2e::{fake_stt::FakeStt, fake_telegram::BotMessage};

use crate::center::CenterEnv;

const WAIT: Duration = Duration::from_secs(60);

/// Waits until the center has finished every accepted update (its inbox has none open).
async fn inbox_settles(env: &CenterEnv) {
    let path = env.opts.state_dir.join("center.db");
    let store = center::store::Store::open(&path).unwrap();
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let open = store.unfinished_updates().unwrap();
        if open.is_empty() {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "updates never finished: {:?}",
            open.iter().map(|(id, _)| id).collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn count(env: &CenterEnv, thread: i64, text: &str) -> usize {
    env.texts_in(thread).iter().filter(|t| *t == text).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_waiting_in_a_bind_menu_survives_a_center_crash() {
    let mut env = CenterEnv::start("d-menu").await;
    let thread = env
        .tg
        .create_topic(&env.alice, env.chat, "menu")
        .unwrap()
        .thread_id
        .unwrap();
    env.say(thread, "echo: kept through the crash");
    let first = env
        .message(thread, "folder browser", |m| {
            m.text().contains("Choose a folder")
        })
        .await;
    env.restart_center().await;
    // The replayed message opens a new menu; the old one is gone with the old process.
    let menu = env
        .message(thread, "folder browser after the restart", |m| {
            m.text().contains("Choose a folder") && m.message_id != first.message_id
        })
        .await;
    env.press(&menu, "📁 project");
    let id = menu.message_id;
    let menu = env
        .message(thread, "project listed", |m| {
            m.message_id == id && m.text().contains("/project")
        })
        .await;
    env.press(&menu, "✅ Use this folder");
    env.message(thread, "the answer", |m| {
        m.text() == "kept through the crash"
    })
    .await;
    assert_eq!(env.model.times_typed("echo: kept through the crash"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_waiting_out_its_burst_window_survives_a_center_crash() {
    let mut env = CenterEnv::start("d-burst").await;
    // A private chat with topics: no group budget to wait for.
    let chat = env.tg.create_private_chat(&env.alice, true);
    let thread = env.bound_topic_in(chat, "burst", "echo: ready").await;
    env.message_in(chat, thread, "first answer", |m| m.text() == "ready")
        .await;
    let sent = env
        .tg
        .send_document(
            &env.alice,
            chat,
            Some(thread),
            "notes.txt",
            "text/plain",
            b"kept".to_vec(),
            Some("echo: file kept"),
        )
        .unwrap();
    // The center took the update (Telegram forgets it now) and waits 1.5 s for more files.
    env.tg
        .wait_until_confirmed(sent.update_id, WAIT)
        .await
        .unwrap();
    env.restart_center().await;
    env.message_in(chat, thread, "the file's answer", |m| {
        m.text().starts_with("file kept")
    })
    .await;
    inbox_settles(&env).await;
    let answers = env
        .tg
        .messages_in(chat, Some(thread))
        .into_iter()
        .filter(|m| m.text().starts_with("file kept"))
        .count();
    assert_eq!(answers, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_voice_message_being_transcribed_survives_a_center_crash() {
    let stt = FakeStt::start(None).await.unwrap();
    stt.set_transcript("echo: said before the crash");
    let mut env = CenterEnv::start_with(
        "d-voice",
        vec![("CODEX_FLEET_VOICE_URL".into(), stt.base_url())],
    )
    .await;
    let thread = env.bound_topic("voice", "echo: ready").await;
    env.message(thread, "first answer", |m| m.text() == "ready")
        .await;
    stt.set_delay(Duration::from_secs(30));
    env.tg
        .send_voice(
            &env.alice,
            env.chat,
            Some(thread),
            b"OggS voice".to_vec(),
            2,
        )
        .unwrap();
    let deadline = tokio::time::Instant::now() + WAIT;
    while stt.received() == 0 {
        assert!(tokio::time::Instant::now() < deadline, "never transcribed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    env.restart_center().await;
    stt.set_delay(Duration::ZERO);
    env.message(thread, "the answer", |m| {
        m.text() == "said before the crash"
    })
    .await;
    inbox_settles(&env).await;
    assert_eq!(env.model.times_typed("echo: said before the crash"), 1);
    assert_eq!(count(&env, thread, "said before the crash"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn input_is_typed_while_its_receipt_waits_out_a_429_and_a_crash_repeats_nothing() {
    let mut env = CenterEnv::start("d-429").await;
    let thread = env.bound_topic("receipt", "echo: ready").await;
    env.message(thread, "first answer", |m| m.text() == "ready")
        .await;
    // The first receipt has settled, so the 429 below falls on the new message's receipt.
    env.message(thread, "first receipt", |m| {
        m.text().starts_with("✓ Delivered")
    })
    .await;
    // The chat's budget is spent: the receipt (and the answer) must wait 40 s.
    env.tg.force_retry_after_in(env.chat, 1, 40);
    let sent = env
        .tg
        .send_text(&env.alice, env.chat, Some(thread), "echo: typed at once")
        .unwrap()
        .message_id;
    // Codex gets the message while Telegram still refuses the chat anything.
    env.model
        .wait_for_user_text("echo: typed at once", WAIT)
        .await
        .unwrap();
    let replies: Vec<String> = env
        .tg
        .messages_in(env.chat, Some(thread))
        .into_iter()
        .filter(|m| m.reply_to == sent || m.text() == "typed at once")
        .map(|m| m.text().to_owned())
        .collect();
    assert!(
        replies.is_empty(),
        "nothing about the new message can have reached the chat yet: {replies:?}"
    );
    inbox_settles(&env).await;
    env.restart_center().await;
    env.message(thread, "the answer after the crash", |m| {
        m.text() == "typed at once"
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(count(&env, thread, "typed at once"), 1);
    assert_eq!(env.model.times_typed("echo: typed at once"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn telegram_failing_with_502s_delays_the_answer_but_loses_nothing() {
    let env = CenterEnv::start("d-502").await;
    let thread = env.bound_topic("gateway", "echo: ready").await;
    env.message(thread, "first answer", |m| m.text() == "ready")
        .await;
    // The receipt and the answer both meet a failing front end at least once.
    env.tg.force_server_error_on("sendMessage", 2);
    env.say(thread, "echo: through the outage");
    env.message(thread, "the answer", |m| m.text() == "through the outage")
        .await;
    let receipt = env
        .message(thread, "the receipt", |m| {
            m.text().starts_with("✓ Delivered")
        })
        .await;
    assert!(receipt.reply_to.is_some());
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(count(&env, thread, "through the outage"), 1);
    let failed = env
        .tg
        .calls_to("sendMessage")
        .iter()
        .filter(|c| c.outcome.is_err())
        .count();
    assert_eq!(failed, 2, "both 502s were met and retried");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chat_out_of_budget_holds_up_no_other_chat() {
    let env = CenterEnv::start("d-hol").await;
    let other = env.tg.create_forum("Other team");
    env.tg.add_bot(&env.alice, other).unwrap();
    let busy = env.bound_topic("busy", "echo: ready").await;
    env.message(busy, "first answer", |m| m.text() == "ready")
        .await;
    let free = env.bound_topic_in(other, "free", "echo: ready too").await;
    env.message_in(other, free, "first answer there", |m| {
        m.text() == "ready too"
    })
    .await;
    // The first chat cannot send anything for 45 s; its answer waits, unacked.
    env.tg.force_retry_after_in(env.chat, 1, 45);
    env.say(busy, "echo: waits for its chat");
    env.model
        .wait_for_user_text("echo: waits for its chat", WAIT)
        .await
        .unwrap();
    // Meanwhile the other chat is typed into and answered, and commands answer.
    env.say_in(other, free, "echo: not held up");
    env.message_in(other, free, "the other chat's answer", |m| {
        m.text() == "not held up"
    })
    .await;
    env.say_in(other, free, "/status");
    env.message_in(other, free, "status", |m: &BotMessage| {
        m.text().contains("Machine")
    })
    .await;
    assert_eq!(
        count(&env, busy, "waits for its chat"),
        0,
        "the busy chat's answer cannot have gone out yet"
    );
    env.message(busy, "the busy chat's answer, later", |m| {
        m.text() == "waits for its chat"
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_very_long_answer_arrives_as_one_file() {
    let env = CenterEnv::start("d-long").await;
    // A private chat with topics: no group budget to wait for.
    let chat = env.tg.create_private_chat(&env.alice, true);
    let thread = env.bound_topic_in(chat, "long", "echo: ready").await;
    env.message_in(chat, thread, "first answer", |m| m.text() == "ready")
        .await;
    env.tg
        .send_text(&env.alice, chat, Some(thread), "long: 30000")
        .unwrap();
    let file = env
        .message_in(chat, thread, "the answer as a file", |m| {
            m.media
                .as_ref()
                .is_some_and(|f| f.file_name.as_deref() == Some("answer.md"))
        })
        .await;
    let media = file.media.as_ref().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&media.bytes).chars().count(),
        30000,
        "the whole answer is in the file"
    );
    assert!(
        file.caption()
            .unwrap_or_default()
            .contains("30000 characters")
    );
    // Not also as a string of messages.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let texts = env.tg.messages_in(chat, Some(thread));
    assert!(
        texts.iter().all(|m| m.text().chars().count() < 4000),
        "no part of the answer was sent as text"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_old_approval_button_never_answers_a_newer_question() {
    let mut env = CenterEnv::start("d-stale").await;
    let thread = env.bound_topic("stale", "approve: touch first.txt").await;
    let first = env
        .message(thread, "first question", |m| {
            m.text().contains("Codex is asking") && m.text().contains("first.txt")
        })
        .await;
    // A restart: the new center forgets which messages showed the question, so the old
    // message keeps its buttons.
    env.restart_center().await;
    env.say(thread, "/esc");
    env.message(thread, "escape sent", |m| {
        m.text().starts_with("⎋ Escape sent")
    })
    .await;
    env.say(thread, "approve: touch second.txt");
    let second = env
        .message(thread, "second question", |m| {
            m.text().contains("Codex is asking") && m.text().contains("second.txt")
        })
        .await;
    assert_ne!(first.message_id, second.message_id);
    // "Yes" on the old question, while the new one is on screen: nothing is pressed.
    let answers_before = env.tg.callback_answers().len();
    env.press(&first, "1.");
    let answer = env
        .tg
        .wait_for("the button's answer", WAIT, |v| {
            v.callback_answers()
                .get(answers_before)
                .and_then(|a| a.text.clone())
        })
        .await
        .unwrap();
    assert!(answer.contains("no longer on screen"), "{answer}");
    env.message(thread, "the old buttons are gone", |m| {
        m.message_id == first.message_id && m.buttons().is_empty()
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        !env.project.join("second.txt").exists(),
        "nothing was approved"
    );
    // The question on screen is still answerable with its own button.
    env.press(&second, "1.");
    env.message(thread, "the second answer", |m| {
        m.text() == "ran touch second.txt"
    })
    .await;
}
