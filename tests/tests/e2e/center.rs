//! The real center binary (embedded node, real tmux, real Codex on the fake model) against the
//! strict fake Telegram Bot API.

use std::{path::PathBuf, time::Duration};

use e2e::{
    center_proc::{CenterOptions, CenterProcess},
    codex::{CodexHome, codex_bin},
    fake_model::FakeModel,
    fake_telegram::{BotMessage, FakeTelegram, User},
    node_proc::TmuxSandbox,
};

const TOKEN: &str = "123456:TEST-token-for-the-fake-api";
const WAIT: Duration = Duration::from_secs(60);

pub(crate) struct CenterEnv {
    pub(crate) tg: FakeTelegram,
    pub(crate) model: FakeModel,
    _codex: CodexHome,
    _root: tempfile::TempDir,
    pub(crate) project: PathBuf,
    _state: tempfile::TempDir,
    pub(crate) tmux: TmuxSandbox,
    pub(crate) center: CenterProcess,
    pub(crate) opts: CenterOptions,
    pub(crate) alice: User,
    pub(crate) chat: i64,
}

impl CenterEnv {
    pub(crate) async fn start(label: &str) -> Self {
        Self::start_with(label, Vec::new()).await
    }

    /// Like `start`, with extra environment for the center (e.g. remote nodes).
    pub(crate) async fn start_with(label: &str, extra_env: Vec<(String, String)>) -> Self {
        let tg = FakeTelegram::start(TOKEN).await.unwrap();
        let model = FakeModel::start().await.unwrap();
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(root.path().join("project")).unwrap();
        let project = root.path().join("project").canonicalize().unwrap();
        let codex = CodexHome::builder(&model.base_url())
            .trust(&project)
            .paste_burst(true)
            .build()
            .unwrap();
        let state = tempfile::tempdir().unwrap();
        let tmux = TmuxSandbox::new(label);
        let alice = tg.create_user("Alice");
        let chat = tg.create_forum("Fleet");
        // An allowed user adds the bot: the group is owned (served without ALLOWED_CHATS).
        tg.add_bot(&alice, chat).unwrap();
        let opts = CenterOptions {
            token: TOKEN.into(),
            allowed_users: vec![alice.id],
            api_url: tg.api_url(),
            state_dir: state.path().to_owned(),
            tmux_socket: tmux.socket.clone(),
            codex_command: codex_bin().unwrap().display().to_string(),
            roots: vec![format!(
                "test={}",
                root.path().canonicalize().unwrap().display()
            )],
            env: codex.env().into_iter().chain(extra_env).collect(),
        };
        let center = CenterProcess::start(&opts).await.unwrap();
        Self {
            tg,
            model,
            _codex: codex,
            _root: root,
            project,
            _state: state,
            tmux,
            center,
            opts,
            alice,
            chat,
        }
    }

    pub(crate) async fn restart_center(&mut self) {
        self.center.kill().await.unwrap();
        self.center = CenterProcess::start(&self.opts).await.unwrap();
    }

    /// Waits (up to `within`) until tmux lists no window of the project (tmux tells nobody
    /// when a window goes, so this looks every 200 ms).
    pub(crate) async fn project_window_closes(&self, within: Duration) {
        let deadline = std::time::Instant::now() + within;
        loop {
            let windows = self
                .tmux
                .tmux(&["list-windows", "-a", "-F", "#{window_name}"])
                .unwrap_or_default();
            if !windows.contains("codex-project") {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "window still open: {windows}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Runs the `center` operator CLI against this center (its state directory).
    pub(crate) fn center_cli(&self, args: &[&str]) -> std::process::Output {
        #[allow(clippy::disallowed_methods, reason = "the operator CLI under test")]
        std::process::Command::new(e2e::node_proc::workspace_bin("center").unwrap())
            .args(args)
            .env("CODEX_FLEET_STATE_DIR", &self.opts.state_dir)
            .output()
            .unwrap()
    }

    pub(crate) fn say(&self, thread: i64, text: &str) -> i64 {
        self.tg
            .send_text(&self.alice, self.chat, Some(thread), text)
            .unwrap()
            .update_id
    }

    pub(crate) fn say_in(&self, chat: i64, thread: i64, text: &str) -> i64 {
        self.tg
            .send_text(&self.alice, chat, Some(thread), text)
            .unwrap()
            .update_id
    }

    /// Waits for a bot message in `chat`/`thread` whose text satisfies `pred`.
    pub(crate) async fn message_in(
        &self,
        chat: i64,
        thread: i64,
        what: &str,
        pred: impl Fn(&BotMessage) -> bool,
    ) -> BotMessage {
        self.tg
            .wait_for_message(what, WAIT, |m| {
                m.chat_id == chat && m.thread_id == Some(thread) && pred(m)
            })
            .await
            .unwrap()
    }

    /// Waits for a bot message in `thread` whose text satisfies `pred`.
    pub(crate) async fn message(
        &self,
        thread: i64,
        what: &str,
        pred: impl Fn(&BotMessage) -> bool,
    ) -> BotMessage {
        let chat = self.chat;
        self.tg
            .wait_for_message(what, WAIT, |m| {
                m.chat_id == chat && m.thread_id == Some(thread) && pred(m)
            })
            .await
            .unwrap()
    }

    /// Presses the button whose label starts with `label` on message `m`.
    pub(crate) fn press(&self, m: &BotMessage, label: &str) {
        let button = m
            .buttons()
            .into_iter()
            .find(|b| b.text.starts_with(label))
            .unwrap_or_else(|| panic!("no button {label:?} in {:?}", m.buttons()));
        self.tg
            .press_button(
                &self.alice,
                self.chat,
                m.message_id,
                button.callback_data.as_deref().unwrap(),
            )
            .unwrap();
    }

    /// A new topic whose first message binds it to a fresh session in the project folder.
    pub(crate) async fn bound_topic(&self, name: &str, first: &str) -> i64 {
        self.bound_topic_in(self.chat, name, first).await
    }

    /// The same in another chat (e.g. a private chat with topics).
    pub(crate) async fn bound_topic_in(&self, chat: i64, name: &str, first: &str) -> i64 {
        let thread = self
            .tg
            .create_topic(&self.alice, chat, name)
            .unwrap()
            .thread_id
            .unwrap();
        self.tg
            .send_text(&self.alice, chat, Some(thread), first)
            .unwrap();
        let in_topic = |m: &BotMessage| m.chat_id == chat && m.thread_id == Some(thread);
        let menu = self
            .tg
            .wait_for_message("folder browser", WAIT, |m| {
                in_topic(m) && m.text().contains("Choose a folder")
            })
            .await
            .unwrap();
        self.press_in(chat, &menu, "📁 project");
        let id = menu.message_id;
        let menu = self
            .tg
            .wait_for_message("project listed", WAIT, |m| {
                in_topic(m) && m.message_id == id && m.text().contains("/project")
            })
            .await
            .unwrap();
        self.press_in(chat, &menu, "✅ Use this folder");
        self.tg
            .wait_for_message("bound", WAIT, |m| {
                in_topic(m) && m.message_id == id && m.text().contains("Codex session in")
            })
            .await
            .unwrap();
        thread
    }

    pub(crate) fn press_in(&self, chat: i64, m: &BotMessage, label: &str) {
        let button = m
            .buttons()
            .into_iter()
            .find(|b| b.text.starts_with(label))
            .unwrap_or_else(|| panic!("no button {label:?} in {:?}", m.buttons()));
        self.tg
            .press_button(
                &self.alice,
                chat,
                m.message_id,
                button.callback_data.as_deref().unwrap(),
            )
            .unwrap();
    }

    pub(crate) fn texts_in(&self, thread: i64) -> Vec<String> {
        self.tg
            .messages_in(self.chat, Some(thread))
            .into_iter()
            .filter(|m| !m.deleted)
            .map(|m| m.text().to_owned())
            .collect()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_topic_binds_by_folder_and_the_first_message_gets_its_answer() {
    let env = CenterEnv::start("c-bind").await;
    let thread = env.bound_topic("first", "echo: hello from the phone").await;
    env.message(thread, "the answer", |m| m.text() == "hello from the phone")
        .await;
    env.message(thread, "the receipt", |m| {
        m.text().starts_with("✓ Delivered")
    })
    .await;
    // The command menu was set.
    let commands = env.tg.inspect(|v| v.commands(None, ""));
    assert!(
        commands.iter().any(|(c, _)| c == "screenshot"),
        "{commands:?}"
    );
    // A second message in the bound topic goes straight to Codex.
    env.say(thread, "echo: **second** `message`");
    let m = env
        .message(thread, "second answer", |m| m.text() == "second message")
        .await;
    assert_eq!(m.current.parse_mode.as_deref(), Some("HTML"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strangers_get_nothing() {
    let env = CenterEnv::start("c-stranger").await;
    let mallory = env.tg.create_user("Mallory");
    let thread = env
        .tg
        .create_topic(&env.alice, env.chat, "t")
        .unwrap()
        .thread_id
        .unwrap();
    let update = env
        .tg
        .send_text(&mallory, env.chat, Some(thread), "echo: let me in")
        .unwrap()
        .update_id;
    let cmd = env
        .tg
        .send_text(&mallory, env.chat, Some(thread), "/status")
        .unwrap()
        .update_id;
    env.tg
        .wait_until_confirmed(update.max(cmd), WAIT)
        .await
        .unwrap();
    // Let anything that would have been sent arrive.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        env.texts_in(thread).is_empty(),
        "{:?}",
        env.texts_in(thread)
    );
    assert!(env.tg.chat_actions().is_empty());
    assert!(
        env.tmux.tmux(&["list-windows", "-a"]).is_err(),
        "a window was created for a stranger"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_that_is_not_owned_gets_nothing_even_from_an_allowed_user() {
    // The bot serves only the Fleet group (and private chats); someone else's group, where an
    // allowed user happens to write, sees no reply and no folder names.
    let probe = FakeTelegram::start(TOKEN).await.unwrap();
    let owned = probe.create_forum("Fleet");
    drop(probe);
    let env =
        CenterEnv::start_with("c-owned", vec![("ALLOWED_CHATS".into(), owned.to_string())]).await;
    assert_eq!(
        env.chat, owned,
        "the fake numbers chats the same way every time"
    );
    let other = env.tg.create_forum("Someone else's group");
    let thread = env
        .tg
        .create_topic(&env.alice, other, "t")
        .unwrap()
        .thread_id
        .unwrap();
    let update = env
        .tg
        .send_text(&env.alice, other, Some(thread), "echo: hello?")
        .unwrap()
        .update_id;
    env.tg.wait_until_confirmed(update, WAIT).await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(env.tg.messages_in(other, Some(thread)).is_empty());
    // The owned group still works.
    let bound = env.bound_topic("owned", "echo: here").await;
    env.message(bound, "answer", |m| m.text() == "here").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn esc_interrupts_a_slow_turn_and_kill_closes_the_window() {
    let env = CenterEnv::start("c-esc").await;
    let thread = env.bound_topic("esc", "slow: 30").await;
    env.message(thread, "delivered", |m| m.text().starts_with("✓ Delivered"))
        .await;
    env.say(thread, "/esc");
    env.message(thread, "escape sent", |m| m.text().contains("Escape sent"))
        .await;
    env.message(thread, "interrupted", |m| m.text().contains("Interrupted"))
        .await;
    env.say(thread, "/screenshot");
    env.message(thread, "screenshot", |m| {
        m.media.is_some() && m.text().contains("ready for input")
    })
    .await;
    env.say(thread, "/kill");
    env.message(thread, "killed", |m| m.text().contains("Window closed"))
        .await;
    let windows = env
        .tmux
        .tmux(&["list-windows", "-a", "-F", "#{window_name}"])
        .unwrap_or_default();
    assert!(windows.trim().is_empty(), "{windows}");
    // Unbound again: the next message opens the folder browser.
    env.say(thread, "echo: again");
    env.message(thread, "browser again", |m| {
        m.text().contains("Choose a folder")
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approval_prompt_is_answered_with_a_button() {
    let env = CenterEnv::start("c-approve").await;
    let thread = env
        .bound_topic("approve", "approve: touch approved.txt")
        .await;
    let prompt = env
        .message(thread, "prompt", |m| m.text().contains("Codex is asking"))
        .await;
    assert!(
        prompt.text().contains("touch approved.txt"),
        "{}",
        prompt.text()
    );
    env.press(&prompt, "1.");
    env.message(thread, "answer", |m| m.text() == "ran touch approved.txt")
        .await;
    env.message(thread, "prompt answered", |m| {
        m.message_id == prompt.message_id && m.text().contains("Answered")
    })
    .await;
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while !env.project.join("approved.txt").exists() && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(env.project.join("approved.txt").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closing_the_topic_kills_its_window() {
    let env = CenterEnv::start("c-close").await;
    let thread = env.bound_topic("close", "echo: hi").await;
    env.message(thread, "answer", |m| m.text() == "hi").await;
    let before = env
        .tmux
        .tmux(&["list-windows", "-a", "-F", "#{window_name}"])
        .unwrap();
    assert!(before.contains("codex-project"), "{before}");
    env.tg.close_topic(&env.alice, env.chat, thread).unwrap();
    env.project_window_closes(Duration::from_secs(15)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_storm_delays_but_loses_nothing_and_long_answers_split_cleanly() {
    let env = CenterEnv::start("c-429").await;
    env.tg.set_flood_limits(Some(Default::default()));
    let thread = env.bound_topic("storm", "echo: warm up").await;
    env.message(thread, "warm-up answer", |m| m.text() == "warm up")
        .await;
    env.tg.force_retry_after(4, 1);
    env.say(thread, "long: 10000");
    env.tg
        .wait_for("the whole long answer", WAIT, |v| {
            let total: usize = v
                .messages_in(env.chat, Some(thread))
                .iter()
                .filter(|m| m.history.is_empty() && m.text().len() > 1000)
                .map(|m| m.text().chars().count())
                .sum();
            (total >= 9000).then_some(())
        })
        .await
        .unwrap();
    assert!(env.tg.count_429() >= 4);
    let parts: Vec<BotMessage> = env
        .tg
        .messages_in(env.chat, Some(thread))
        .into_iter()
        .filter(|m| m.text().len() > 1000)
        .collect();
    assert!(parts.len() >= 3, "{} parts", parts.len());
    for p in &parts {
        assert!(p.text().encode_utf16().count() <= 4096);
        assert_eq!(p.current.parse_mode.as_deref(), Some("HTML"));
    }
    // Nothing was sent twice.
    let mut texts: Vec<&str> = parts.iter().map(BotMessage::text).collect();
    let n = texts.len();
    texts.dedup();
    assert_eq!(texts.len(), n);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_center_crash_mid_turn_delivers_the_final_answer_exactly_once() {
    let mut env = CenterEnv::start("c-crash").await;
    let thread = env.bound_topic("crash", "echo: before").await;
    env.message(thread, "first answer", |m| m.text() == "before")
        .await;
    let slow = env
        .tg
        .send_text(&env.alice, env.chat, Some(thread), "slow: 6")
        .unwrap()
        .message_id;
    env.message(thread, "delivered", |m| {
        m.text().starts_with("✓ Delivered") && m.reply_to == slow
    })
    .await;
    env.restart_center().await;
    env.message(thread, "answer after the crash", |m| {
        m.text() == "Done after 6 seconds."
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let texts = env.texts_in(thread);
    assert_eq!(
        texts
            .iter()
            .filter(|t| *t == "Done after 6 seconds.")
            .count(),
        1,
        "{texts:#?}"
    );
    assert_eq!(
        texts.iter().filter(|t| *t == "before").count(),
        1,
        "{texts:#?}"
    );
    // The topic still works after the restart.
    env.say(thread, "echo: still here");
    env.message(thread, "answer after restart", |m| m.text() == "still here")
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_resume_picker_brings_back_an_earlier_session() {
    let env = CenterEnv::start("c-resume").await;
    let thread = env
        .bound_topic("resume", "echo: remember the word banana")
        .await;
    env.message(thread, "answer", |m| m.text() == "remember the word banana")
        .await;
    env.say(thread, "/kill");
    env.message(thread, "killed", |m| m.text().contains("Window closed"))
        .await;
    env.say(thread, "echo: back again");
    let menu = env
        .message(thread, "browser", |m| {
            m.text().contains("Choose a folder") && m.history.is_empty()
        })
        .await;
    env.press(&menu, "📁 project");
    let menu = env
        .message(thread, "listed", |m| {
            m.message_id == menu.message_id && m.text().contains("/project")
        })
        .await;
    env.press(&menu, "✅ Use this folder");
    let picker = env
        .message(thread, "picker", |m| {
            m.message_id == menu.message_id && m.text().contains("Resume one")
        })
        .await;
    env.press(&picker, "🕘");
    env.message(thread, "resumed", |m| {
        m.text().contains("Resumed Codex session")
    })
    .await;
    env.message(thread, "answer after resume", |m| m.text() == "back again")
        .await;
    env.say(thread, "/history");
    env.message(thread, "history", |m| {
        m.text().contains("History") && m.text().contains("banana")
    })
    .await;
}
