//! Every surface a user touches, each proved once end to end: chats without topics (a private
//! chat and a basic group), `/help` and `/start`, `/unbind`, queue mode (`/switch`, `/queue`,
//! `/steer`), `/interrupt`, input while the pane is in tmux copy mode, and the operator's
//! `center nodes list|add|remove`.
//!
//! Not repeated here (proved elsewhere): binding a forum topic and its first answer, the command
//! menu being set, `/esc` and `/kill` (center.rs); groups served only when an allowed user added
//! the bot (owned.rs); topic deletion (owned.rs); the held-input cap and its Drop button
//! (media.rs); `/node add` and `/node remove` in Telegram (fleet.rs).

use std::{process::Stdio, time::Duration};

use e2e::{
    codex::{CodexHome, codex_bin},
    fake_telegram::BotMessage,
    node_proc::{NodeOptions, NodeProcess, TmuxSandbox, init_node, workspace_bin},
};

use crate::center::CenterEnv;

const WAIT: Duration = Duration::from_secs(60);

/// A bot message in `chat`, in topic `thread` (`None`: a chat without topics), matching `pred`.
async fn msg(
    env: &CenterEnv,
    chat: i64,
    thread: Option<i64>,
    what: &str,
    pred: impl Fn(&BotMessage) -> bool,
) -> BotMessage {
    env.tg
        .wait_for_message(what, WAIT, |m| {
            m.chat_id == chat && m.thread_id == thread && pred(m)
        })
        .await
        .unwrap()
}

/// Alice writes `text` in `chat` (`thread`: `None` outside topics); returns its message id.
fn send(env: &CenterEnv, chat: i64, thread: Option<i64>, text: &str) -> Option<i64> {
    env.tg
        .send_text(&env.alice, chat, thread, text)
        .unwrap()
        .message_id
}

/// Binds a chat without topics: the first message opens the folder browser, the project folder
/// is chosen, a new session starts and gets that message.
async fn bind_plain_chat(env: &CenterEnv, chat: i64, first: &str) {
    send(env, chat, None, first);
    let menu = msg(env, chat, None, "folder browser", |m| {
        m.text().contains("Choose a folder")
    })
    .await;
    env.press_in(chat, &menu, "📁 project");
    let id = menu.message_id;
    let menu = msg(env, chat, None, "project listed", |m| {
        m.message_id == id && m.text().contains("/project")
    })
    .await;
    env.press_in(chat, &menu, "✅ Use this folder");
    msg(env, chat, None, "bound", |m| {
        m.message_id == id && m.text().contains("Codex session in")
    })
    .await;
}

/// `/status` in a bound chat without topics names the folder, the machine and the input mode.
async fn status_says_bound(env: &CenterEnv, chat: i64) {
    let asked = send(env, chat, None, "/status");
    let status = msg(env, chat, None, "status", |m| {
        m.reply_to == asked && m.text().contains("Folder")
    })
    .await;
    let text = status.text();
    assert!(text.contains(&env.project.display().to_string()), "{text}");
    assert!(text.contains("Machine local (online)"), "{text}");
    assert!(text.contains("Input steer (Enter)"), "{text}");
    assert!(text.contains("(running)"), "{text}");
}

/// The windows of the center's tmux server, as `id name`.
fn windows(env: &CenterEnv) -> String {
    env.tmux
        .tmux(&["list-windows", "-a", "-F", "#{window_id} #{window_name}"])
        .unwrap_or_default()
}

/// The id of the one Codex window.
fn codex_window(env: &CenterEnv) -> String {
    let all = windows(env);
    let found: Vec<&str> = all
        .lines()
        .filter(|l| l.contains("codex-project"))
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert_eq!(found.len(), 1, "{all}");
    found[0].to_owned()
}

/// Waits (polling tmux, which has no events) until Codex's screen in `window` shows `text` as a
/// queued follow-up input, and checks that by then the turn was not answered (`turn_answered`):
/// the text reached Codex while the turn ran, and waits there for the turn to end.
async fn shown_during_the_turn(
    env: &CenterEnv,
    turn_answered: impl Fn() -> bool,
    window: &str,
    text: &str,
) {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let screen = env
            .tmux
            .tmux(&["capture-pane", "-p", "-t", window])
            .unwrap_or_default();
        // Pasted, the text shows in the composer first; after Tab, Codex lists it under its
        // queued follow-up inputs.
        if screen.contains(text) && screen.contains("Queued follow-up") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{text:?} never showed as queued on Codex's screen:\n{screen}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(!turn_answered(), "the turn ended before {text:?} was typed");
    assert_eq!(
        env.model.times_typed(text),
        0,
        "{text:?} did not wait for the turn"
    );
}

/// Index of the first live bot message in `thread` whose text is `text`.
fn position(env: &CenterEnv, thread: i64, text: &str) -> Option<usize> {
    env.texts_in(thread).iter().position(|t| t == text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_private_chat_without_topics_binds_answers_and_reports_status() {
    let env = CenterEnv::start("s-private").await;
    let chat = env.tg.create_private_chat(&env.alice, false);
    bind_plain_chat(&env, chat, "echo: hello in private").await;
    msg(&env, chat, None, "answer", |m| {
        m.text() == "hello in private"
    })
    .await;
    status_says_bound(&env, chat).await;
    // The next message goes straight to Codex.
    send(&env, chat, None, "echo: again");
    msg(&env, chat, None, "second answer", |m| m.text() == "again").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_basic_group_added_by_an_allowed_user_binds_answers_and_reports_status() {
    let env = CenterEnv::start("s-group").await;
    let group = env.tg.create_group("Plain group");
    env.tg.add_bot(&env.alice, group).unwrap();
    bind_plain_chat(&env, group, "echo: hello in the group").await;
    msg(&env, group, None, "answer", |m| {
        m.text() == "hello in the group"
    })
    .await;
    status_says_bound(&env, group).await;
    send(&env, group, None, "echo: again");
    msg(&env, group, None, "second answer", |m| m.text() == "again").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn help_and_start_list_every_command_of_the_menu() {
    let env = CenterEnv::start("s-help").await;
    let menu = env
        .tg
        .wait_for("the command menu", WAIT, |v| {
            let menu = v.commands(None, "");
            (!menu.is_empty()).then_some(menu)
        })
        .await
        .unwrap();
    let thread = env
        .tg
        .create_topic(&env.alice, env.chat, "help")
        .unwrap()
        .thread_id
        .unwrap();
    let private = env.tg.create_private_chat(&env.alice, false);
    for (chat, thread, command) in [
        (env.chat, Some(thread), "/help"),
        (env.chat, Some(thread), "/start"),
        (private, None, "/help"),
        (private, None, "/start"),
    ] {
        let asked = send(&env, chat, thread, command);
        let help = msg(&env, chat, thread, command, |m| m.reply_to == asked).await;
        for (name, description) in &menu {
            let line = format!("/{name} — {description}");
            assert!(
                help.text().lines().any(|l| l == line),
                "{command} in {chat} lacks {line:?}:\n{}",
                help.text()
            );
        }
    }
    // Neither started a window nor a folder browser.
    assert!(env.tmux.tmux(&["list-windows", "-a"]).is_err());
    assert!(
        !env.texts_in(thread)
            .iter()
            .any(|t| t.contains("Choose a folder")),
        "{:?}",
        env.texts_in(thread)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unbind_keeps_the_window_running_and_unbinds_the_topic() {
    let env = CenterEnv::start("s-unbind").await;
    let thread = env.bound_topic("unbind", "echo: before unbind").await;
    env.message(thread, "answer", |m| m.text() == "before unbind")
        .await;
    let window = codex_window(&env);
    env.say(thread, "/unbind");
    let unbound = env
        .message(thread, "unbound", |m| m.text().starts_with("Unbound."))
        .await;
    assert!(
        unbound.text().contains("keeps running")
            && unbound.text().contains(&env.project.display().to_string()),
        "{}",
        unbound.text()
    );
    env.say(thread, "/status");
    env.message(thread, "status: not bound", |m| {
        m.text().starts_with("Not bound.")
    })
    .await;
    // Commands that need a binding say so.
    for command in ["/unbind", "/switch", "/interrupt", "/esc", "/screenshot"] {
        let asked = send(&env, env.chat, Some(thread), command);
        env.message(thread, command, |m| {
            m.reply_to == asked && m.text().starts_with("This topic is not bound")
        })
        .await;
    }
    // The next message opens the folder browser instead of reaching the old window.
    env.say(thread, "echo: after unbind");
    env.message(thread, "browser", |m| m.text().contains("Choose a folder"))
        .await;
    // The window still runs Codex, untouched.
    assert_eq!(codex_window(&env), window);
    let dead = env
        .tmux
        .tmux(&["display-message", "-p", "-t", &window, "#{pane_dead}"])
        .unwrap();
    assert_eq!(dead.trim(), "0");
    assert_eq!(env.model.times_typed("echo: after unbind"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn switch_makes_messages_queue_idle_or_during_a_turn() {
    let env = CenterEnv::start("s-switch").await;
    let thread = env.bound_topic("switch", "echo: warm up").await;
    env.message(thread, "warm-up answer", |m| m.text() == "warm up")
        .await;
    env.say(thread, "/switch");
    env.message(thread, "queue mode", |m| {
        m.text().starts_with("Messages are now queued")
    })
    .await;
    env.say(thread, "/status");
    env.message(thread, "status in queue mode", |m| {
        m.text().contains("Input queue (Tab)")
    })
    .await;
    // Idle: Tab submits at once (Codex 0.169 and 0.171 alike).
    let slow = send(&env, env.chat, Some(thread), "slow: 8");
    env.message(thread, "slow delivered", |m| {
        m.reply_to == slow && m.text().starts_with("✓ Delivered")
    })
    .await;
    // During the turn: queued, and answered after it.
    let queued = send(&env, env.chat, Some(thread), "echo: queued after");
    let window = codex_window(&env);
    shown_during_the_turn(
        &env,
        || position(&env, thread, "Done after 8 seconds.").is_some(),
        &window,
        "echo: queued after",
    )
    .await;
    env.message(thread, "slow answer", |m| {
        m.text() == "Done after 8 seconds."
    })
    .await;
    env.message(thread, "queued answer", |m| m.text() == "queued after")
        .await;
    env.message(thread, "queued delivered", |m| {
        m.reply_to == queued && m.text().starts_with("✓ Delivered")
    })
    .await;
    assert!(
        position(&env, thread, "Done after 8 seconds.") < position(&env, thread, "queued after"),
        "{:?}",
        env.texts_in(thread)
    );
    assert_eq!(env.model.times_typed("echo: queued after"), 1);
    // Switching back: steer again.
    env.say(thread, "/switch");
    env.message(thread, "steer mode", |m| {
        m.text().starts_with("Messages now steer")
    })
    .await;
    env.say(thread, "echo: steered");
    env.message(thread, "steered answer", |m| m.text() == "steered")
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_and_steer_send_one_message_in_their_mode() {
    let env = CenterEnv::start("s-queue").await;
    // A private chat with topics: a group's budget of 19 messages a minute would delay the
    // receipts this test waits for.
    let chat = env.tg.create_private_chat(&env.alice, true);
    let thread = env.bound_topic_in(chat, "queue", "echo: warm up").await;
    let t = Some(thread);
    let texts = || -> Vec<String> {
        env.tg
            .messages_in(chat, t)
            .into_iter()
            .map(|m| m.text().to_owned())
            .collect()
    };
    let at = |text: &str| texts().iter().position(|t| t == text);
    msg(&env, chat, t, "warm-up answer", |m| m.text() == "warm up").await;
    send(&env, chat, t, "/queue");
    msg(&env, chat, t, "usage", |m| {
        m.text() == "Usage: /queue <text>"
    })
    .await;
    let slow = send(&env, chat, t, "slow: 8");
    msg(&env, chat, t, "slow delivered", |m| {
        m.reply_to == slow && m.text().starts_with("✓ Delivered")
    })
    .await;
    let window = codex_window(&env);
    let queued = send(&env, chat, t, "/queue echo: via queue");
    shown_during_the_turn(
        &env,
        || at("Done after 8 seconds.").is_some(),
        &window,
        "echo: via queue",
    )
    .await;
    msg(&env, chat, t, "queued answer", |m| m.text() == "via queue").await;
    msg(&env, chat, t, "queued delivered", |m| {
        m.reply_to == queued && m.text().starts_with("✓ Delivered")
    })
    .await;
    assert!(
        at("Done after 8 seconds.").is_some() && at("Done after 8 seconds.") < at("via queue"),
        "{:?}",
        texts()
    );
    // The topic's default did not change.
    let asked = send(&env, chat, t, "/status");
    msg(&env, chat, t, "status still steer", |m| {
        m.reply_to == asked && m.text().contains("Input steer (Enter)")
    })
    .await;
    // Steering goes into the running turn at once: Codex answers it without waiting for the
    // turn (whose own answer is superseded), unlike a queued message.
    let slow = send(&env, chat, t, "slow: 9");
    msg(&env, chat, t, "second slow delivered", |m| {
        m.reply_to == slow && m.text().starts_with("✓ Delivered")
    })
    .await;
    let steered = send(&env, chat, t, "/steer echo: via steer");
    msg(&env, chat, t, "steered answer", |m| m.text() == "via steer").await;
    assert_eq!(
        at("Done after 9 seconds."),
        None,
        "the steered message waited for the turn: {:?}",
        texts()
    );
    msg(&env, chat, t, "steered delivered", |m| {
        m.reply_to == steered && m.text().starts_with("✓ Delivered")
    })
    .await;
    assert_eq!(env.model.times_typed("echo: via queue"), 1);
    assert_eq!(env.model.times_typed("echo: via steer"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interrupt_stops_a_running_turn_and_is_refused_when_idle() {
    let env = CenterEnv::start("s-interrupt").await;
    let thread = env.bound_topic("interrupt", "echo: warm up").await;
    env.message(thread, "warm-up answer", |m| m.text() == "warm up")
        .await;
    // The answer is in the transcript a moment before the TUI stops working; wait for the
    // composer, as a user looking at the topic would.
    for attempt in 0.. {
        let asked = send(&env, env.chat, Some(thread), "/status");
        let status = env.message(thread, "status", |m| m.reply_to == asked).await;
        if status.text().contains("Codex ready") {
            break;
        }
        assert!(attempt < 20, "never idle: {}", status.text());
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    }
    // Idle: Ctrl-C would quit Codex, so nothing is pressed.
    let asked = send(&env, env.chat, Some(thread), "/interrupt");
    let refused = env
        .message(thread, "refused", |m| m.reply_to == asked)
        .await;
    assert!(
        refused.text().starts_with("Not sent:") && refused.text().contains("idle"),
        "{}",
        refused.text()
    );
    let status = send(&env, env.chat, Some(thread), "/status");
    env.message(thread, "still running", |m| {
        m.reply_to == status && m.text().contains("(running)") && m.text().contains("Codex ready")
    })
    .await;
    // During a turn: Ctrl-C interrupts it.
    let slow = send(&env, env.chat, Some(thread), "slow: 30");
    env.message(thread, "slow delivered", |m| {
        m.reply_to == slow && m.text().starts_with("✓ Delivered")
    })
    .await;
    let asked = send(&env, env.chat, Some(thread), "/interrupt");
    env.message(thread, "ctrl-c sent", |m| {
        m.reply_to == asked && m.text() == "Ctrl-C sent."
    })
    .await;
    env.message(thread, "interrupted", |m| m.text().contains("Interrupted"))
        .await;
    // Codex is still there and takes the next message.
    env.say(thread, "echo: after the interrupt");
    env.message(thread, "answer after", |m| {
        m.text() == "after the interrupt"
    })
    .await;
    assert!(
        !env.texts_in(thread)
            .iter()
            .any(|t| t == "Done after 30 seconds."),
        "{:?}",
        env.texts_in(thread)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn input_while_the_pane_is_in_copy_mode_is_still_delivered() {
    let env = CenterEnv::start("s-copy").await;
    let thread = env.bound_topic("copy", "echo: warm up").await;
    env.message(thread, "warm-up answer", |m| m.text() == "warm up")
        .await;
    let window = codex_window(&env);
    // Someone at the desk scrolls back in the pane and leaves it there.
    env.tmux.tmux(&["copy-mode", "-t", &window]).unwrap();
    let in_mode = || {
        env.tmux
            .tmux(&["display-message", "-p", "-t", &window, "#{pane_in_mode}"])
            .unwrap()
            .trim()
            .to_owned()
    };
    assert_eq!(in_mode(), "1");
    let sent = send(&env, env.chat, Some(thread), "echo: typed in copy mode");
    env.message(thread, "answer", |m| m.text() == "typed in copy mode")
        .await;
    env.message(thread, "delivered", |m| {
        m.reply_to == sent && m.text().starts_with("✓ Delivered")
    })
    .await;
    assert_eq!(env.model.times_typed("echo: typed in copy mode"), 1);
    assert_eq!(in_mode(), "0", "the pane was left in copy mode");
}

/// Runs `center nodes --state-dir <dir> <args>` with `stdin` on its standard input.
fn center_nodes(state_dir: &std::path::Path, args: &[&str], stdin: &str) -> std::process::Output {
    use std::io::Write as _;
    #[allow(
        clippy::disallowed_methods,
        reason = "test running the binary under test"
    )]
    let mut child = std::process::Command::new(workspace_bin("center").unwrap())
        .arg("nodes")
        .arg("--state-dir")
        .arg(state_dir)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin.as_bytes()).unwrap();
    drop(input);
    child.wait_with_output().unwrap()
}

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A machine that ran `agent-node init` and serves, waiting to be enrolled.
struct Vps {
    _root: tempfile::TempDir,
    _codex: CodexHome,
    _state: tempfile::TempDir,
    _tmux: TmuxSandbox,
    _process: NodeProcess,
    code: String,
    endpoint: String,
}

async fn vps(env: &CenterEnv, name: &str) -> Vps {
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(root.path().join("remote-project")).unwrap();
    let codex = CodexHome::builder(&env.model.base_url()).build().unwrap();
    let state = tempfile::tempdir().unwrap();
    let tmux = TmuxSandbox::new("s-nodes-vps");
    let opts = NodeOptions {
        state_dir: state.path().to_owned(),
        codex_home: codex.path().to_owned(),
        tmux_socket: tmux.socket.clone(),
        codex_command: codex_bin().unwrap().display().to_string(),
        roots: vec![format!(
            "vps={}",
            root.path().canonicalize().unwrap().display()
        )],
        env: codex.env(),
        port: 0,
    };
    let code = init_node(&opts.state_dir, name).unwrap();
    let process = NodeProcess::start(&opts).await.unwrap();
    let endpoint = process.addr.tcp().unwrap().to_string();
    Vps {
        _root: root,
        _codex: codex,
        _state: state,
        _tmux: tmux,
        _process: process,
        code,
        endpoint,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn center_nodes_cli_adds_lists_and_removes_a_node() {
    let env = CenterEnv::start("s-nodes").await;
    let state = env.opts.state_dir.clone();
    // A fresh center lists no enrolled node (the embedded one is not enrolled).
    let list = center_nodes(&state, &["list"], "");
    assert!(list.status.success(), "{}", stderr(&list));
    assert_eq!(stdout(&list), "");
    let vps = vps(&env, "vps7").await;
    let (code, endpoint) = (&vps.code, &vps.endpoint);

    // A code on the command line is refused, not echoed, and not spent.
    let argv = center_nodes(&state, &["add", "vps7", endpoint, code], "");
    assert!(!argv.status.success());
    assert!(
        stderr(&argv).contains("--code-file") && !stderr(&argv).contains(code.as_str()),
        "{}",
        stderr(&argv)
    );
    // On standard input it enrols the node.
    let add = center_nodes(&state, &["add", "vps7", endpoint], &format!("{code}\n"));
    assert!(add.status.success(), "{}", stderr(&add));
    assert!(stdout(&add).contains("vps7 enrolled"), "{}", stdout(&add));
    let list = center_nodes(&state, &["list"], "");
    assert_eq!(stdout(&list), format!("vps7\t{endpoint}\tactive\n"));

    // Removing it revokes it.
    let remove = center_nodes(&state, &["remove", "vps7"], "");
    assert!(remove.status.success(), "{}", stderr(&remove));
    assert!(
        stdout(&remove).starts_with("vps7 revoked"),
        "{}",
        stdout(&remove)
    );
    let list = center_nodes(&state, &["list"], "");
    assert_eq!(stdout(&list), format!("vps7\t{endpoint}\trevoked\n"));
    // A name that is not there.
    let ghost = center_nodes(&state, &["remove", "ghost"], "");
    assert!(!ghost.status.success());
    assert!(
        stderr(&ghost).contains("there is no node ghost"),
        "{}",
        stderr(&ghost)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_added_with_the_cli_is_dialled_after_a_restart_and_remove_drops_its_link() {
    let mut env = CenterEnv::start_with(
        "s-nodes-restart",
        vec![("CODEX_FLEET_RECONNECT_MAX_SECS".into(), "2".into())],
    )
    .await;
    let state = env.opts.state_dir.clone();
    let vps = vps(&env, "vps8").await;
    let add = center_nodes(
        &state,
        &["add", "vps8", &vps.endpoint],
        &format!("{}\n", vps.code),
    );
    assert!(add.status.success(), "{}", stderr(&add));
    // Restarted, the center connects to it.
    env.restart_center().await;
    let admin = env
        .tg
        .create_topic(&env.alice, env.chat, "admin")
        .unwrap()
        .thread_id
        .unwrap();
    let mut tries = 0;
    let online = loop {
        tries += 1;
        assert!(tries < 60, "vps8 never came online");
        let asked = send(&env, env.chat, Some(admin), "/nodes");
        let nodes = env
            .message(admin, "nodes", |m| {
                m.reply_to == asked && m.text().contains("Machines")
            })
            .await;
        if nodes.text().contains("vps8 — 🟢 online") {
            break nodes;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert!(
        online.text().contains("local — 🟢 online"),
        "{}",
        online.text()
    );
    // Removing it revokes it and the running center drops its link at once.
    let remove = center_nodes(&state, &["remove", "vps8"], "");
    assert!(remove.status.success(), "{}", stderr(&remove));
    assert!(
        stdout(&remove).contains("vps8 revoked; the running center closed its link"),
        "{}",
        stdout(&remove)
    );
    let asked = send(&env, env.chat, Some(admin), "/nodes");
    let nodes = env
        .message(admin, "nodes after removal", |m| {
            m.reply_to == asked && m.text().contains("Machines")
        })
        .await;
    assert!(
        !nodes.text().contains("vps8 — 🟢 online"),
        "{}",
        nodes.text()
    );
}
