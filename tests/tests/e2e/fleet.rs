//! A center with its embedded node plus a remote agent-node process, driven from two topics.

use std::time::Duration;

use e2e::{
    codex::{CodexHome, codex_bin},
    fake_telegram::BotMessage,
    node_proc::{NodeOptions, NodeProcess, TmuxSandbox},
};

use crate::center::CenterEnv;

struct RemoteNode {
    _codex: CodexHome,
    _root: tempfile::TempDir,
    _state: tempfile::TempDir,
    _tmux: TmuxSandbox,
    opts: NodeOptions,
    process: NodeProcess,
}

async fn remote_node(label: &str, model_url: &str) -> RemoteNode {
    let LazyNode {
        _codex,
        _root,
        _state,
        _tmux,
        opts,
        ..
    } = remote_node_uninitialised(label, model_url);
    let process = NodeProcess::start(&opts).await.unwrap();
    RemoteNode {
        _codex,
        _root,
        _state,
        _tmux,
        opts,
        process,
    }
}

/// A bot message in `chat`/`thread` matching `pred`.
async fn msg_in(
    env: &CenterEnv,
    chat: i64,
    thread: i64,
    what: &str,
    pred: impl Fn(&BotMessage) -> bool,
) -> BotMessage {
    env.tg
        .wait_for_message(what, Duration::from_secs(60), |m| {
            m.chat_id == chat && m.thread_id == Some(thread) && pred(m)
        })
        .await
        .unwrap_or_else(|e| panic!("{e}\ncallback answers: {:?}", env.tg.callback_answers()))
}

fn press_in(env: &CenterEnv, chat: i64, m: &BotMessage, label: &str) {
    let b = m
        .buttons()
        .into_iter()
        .find(|b| b.text.starts_with(label))
        .unwrap_or_else(|| panic!("no {label} in {:?} {:?}", m.text(), m.buttons()));
    env.tg
        .press_button(
            &env.alice,
            chat,
            m.message_id,
            b.callback_data.as_deref().unwrap(),
        )
        .unwrap();
}

/// Binds a new topic of `chat` through the machine picker to `machine`'s `folder`.
pub(crate) async fn bind_on(
    env: &CenterEnv,
    chat: i64,
    topic: &str,
    machine: &str,
    folder: &str,
    first: &str,
) -> i64 {
    let thread = env
        .tg
        .create_topic(&env.alice, chat, topic)
        .unwrap()
        .thread_id
        .unwrap();
    env.tg
        .send_text(&env.alice, chat, Some(thread), first)
        .unwrap();
    // The machine picker, or the folders at once when exactly one machine is connected.
    let mut menu = msg_in(env, chat, thread, "machine picker", |m| {
        m.text().contains("Choose a machine") || m.text().contains("Choose a folder")
    })
    .await;
    // The center may still be connecting: pressing an offline machine refreshes the badges.
    let online = format!("🖥 {machine} 🟢");
    for _ in 0..50 {
        if menu.buttons().iter().any(|b| b.text == online)
            || menu.text().contains("Choose a folder")
        {
            break;
        }
        let answers = env.tg.callback_answers().len();
        press_in(env, chat, &menu, &format!("🖥 {machine}"));
        env.tg
            .wait_for("the press answered", Duration::from_secs(10), |v| {
                (v.callback_answers().len() > answers).then_some(())
            })
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
        menu = env.tg.bot_message(chat, menu.message_id).unwrap();
    }
    if !menu.text().contains("Choose a folder") {
        press_in(env, chat, &menu, &online);
    }
    let id = menu.message_id;
    let menu = msg_in(env, chat, thread, "folders", |m| {
        m.message_id == id && m.text().contains("Choose a folder")
    })
    .await;
    // A machine with one root opens it at once: the folder may already be the one shown.
    let shown = menu.text().contains(&format!("/{folder}\n"))
        && menu.buttons().iter().any(|b| b.text.starts_with("✅"));
    let menu = if shown {
        menu
    } else {
        press_in(env, chat, &menu, &format!("📁 {folder}"));
        msg_in(env, chat, thread, "folder listed", |m| {
            m.message_id == id
                && m.text().contains(folder)
                && m.buttons().iter().any(|b| b.text.starts_with("✅"))
        })
        .await
    };
    press_in(env, chat, &menu, "✅ Use this folder");
    msg_in(env, chat, thread, "bound", |m| {
        m.message_id == id && m.text().contains("Codex session in")
    })
    .await;
    thread
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_center_without_its_embedded_node_runs_codex_only_on_enrolled_nodes() {
    // The hardened single-host layout: the center starts no node of its own; an agent-node
    // (here on loopback, in real life another OS user on the same machine) serves Codex.
    let model = e2e::fake_model::FakeModel::start().await.unwrap();
    let vps = remote_node("hardened-node", &model.base_url()).await;
    let env = CenterEnv::start_with(
        "hardened-center",
        vec![
            (
                "CODEX_FLEET_NODES".into(),
                format!("vps1={}", vps.process.addr),
            ),
            ("CODEX_FLEET_EMBEDDED_NODE".into(), "false".into()),
        ],
    )
    .await;
    assert!(
        env.center
            .startup
            .iter()
            .any(|l| l.contains("no embedded node")),
        "{:?}",
        env.center.startup
    );
    let thread = bind_on(
        &env,
        env.chat,
        "hardened",
        "vps1",
        "remote-project",
        "echo: far",
    )
    .await;
    env.message(thread, "the answer", |m| m.text() == "far")
        .await;
    env.say(thread, "/nodes");
    let nodes = env
        .message(thread, "machines", |m| m.text().contains("Machines"))
        .await;
    assert!(nodes.text().contains("vps1"), "{}", nodes.text());
    assert!(!nodes.text().contains("local"), "{}", nodes.text());
    // No Codex window runs under the center's own tmux server.
    assert!(
        env.tmux
            .tmux(&["list-windows", "-a"])
            .map_or(true, |out| out.trim().is_empty())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_two_topics_and_a_node_that_drops_mid_turn_and_returns() {
    // Three agent-node processes, each with its own state, CODEX_HOME and tmux server. Their
    // ports must be known before the center starts.
    let model = e2e::fake_model::FakeModel::start().await.unwrap();
    let mut vps = remote_node("fleet-vps1", &model.base_url()).await;
    let vps2 = remote_node("fleet-vps2", &model.base_url()).await;
    let vps3 = remote_node("fleet-vps3", &model.base_url()).await;
    let endpoint = vps.process.addr.to_string();
    let env = CenterEnv::start_with(
        "fleet-center",
        vec![
            (
                "CODEX_FLEET_NODES".into(),
                format!(
                    "vps1={endpoint},vps2={},vps3={}",
                    vps2.process.addr, vps3.process.addr
                ),
            ),
            ("CODEX_FLEET_RECONNECT_MAX_SECS".into(), "2".into()),
        ],
    )
    .await;

    // Two groups, so each has its own Telegram budget (20 messages a minute per group).
    let home = env.tg.create_forum("Home");
    env.tg.add_bot(&env.alice, home).unwrap();
    let remote = bind_on(
        &env,
        env.chat,
        "remote",
        "vps1",
        "remote-project",
        "echo: from the vps",
    )
    .await;
    let local = bind_on(
        &env,
        home,
        "second",
        "vps2",
        "remote-project",
        "echo: from home",
    )
    .await;
    env.message(remote, "remote answer", |m| m.text() == "from the vps")
        .await;
    msg_in(&env, home, local, "local answer", |m| {
        m.text() == "from home"
    })
    .await;
    // The remote session really runs on the remote node's tmux server.
    let windows = vps
        ._tmux
        .tmux(&["list-windows", "-a", "-F", "#{window_name}"])
        .unwrap();
    assert!(windows.contains("codex-remote-project"), "{windows}");
    let windows = vps2
        ._tmux
        .tmux(&["list-windows", "-a", "-F", "#{window_name}"])
        .unwrap();
    assert!(windows.contains("codex-remote-project"), "{windows}");

    env.tg
        .send_text(&env.alice, home, Some(local), "/nodes")
        .unwrap();
    msg_in(&env, home, local, "nodes", |m| {
        ["local", "vps1", "vps2", "vps3"]
            .iter()
            .all(|n| m.text().contains(&format!("{n} — 🟢 online")))
    })
    .await;

    // The node dies mid-turn (Codex keeps working in tmux): its topic hears it once, and input
    // fails closed with a clear reason.
    let slow = env
        .tg
        .send_text(&env.alice, env.chat, Some(remote), "slow: 5")
        .unwrap()
        .message_id;
    env.message(remote, "slow delivered", |m| {
        m.text().starts_with("✓ Delivered") && m.reply_to == slow
    })
    .await;
    vps.process.kill().await.unwrap();
    env.message(remote, "offline notice", |m| {
        m.text().contains("Lost the connection to vps1")
    })
    .await;
    env.say(remote, "echo: are you there");
    env.message(remote, "refused", |m| {
        m.text().contains("Not delivered") && m.text().contains("offline")
    })
    .await;
    // The local topic is unaffected.
    env.tg
        .send_text(&env.alice, home, Some(local), "echo: still fine")
        .unwrap();
    msg_in(&env, home, local, "local still works", |m| {
        m.text() == "still fine"
    })
    .await;

    // It comes back on the same socket (its state directory): a notice, and the topic works again.
    vps.opts.port = vps.process.addr.port();
    vps.process = NodeProcess::start(&vps.opts).await.unwrap();
    assert_eq!(vps.process.addr.to_string(), endpoint);
    env.message(remote, "the turn's answer, once", |m| {
        m.text() == "Done after 5 seconds."
    })
    .await;
    env.message(remote, "back notice", |m| {
        m.text().contains("vps1 is back online")
    })
    .await;
    env.say(remote, "echo: welcome back");
    env.message(remote, "answer after return", |m| {
        m.text() == "welcome back"
    })
    .await;
    let texts = env.texts_in(remote);
    assert_eq!(
        texts
            .iter()
            .filter(|t| t.contains("Lost the connection"))
            .count(),
        1,
        "{texts:#?}"
    );
    assert_eq!(
        texts.iter().filter(|t| *t == "from the vps").count(),
        1,
        "{texts:#?}"
    );
    assert_eq!(
        texts
            .iter()
            .filter(|t| *t == "Done after 5 seconds.")
            .count(),
        1,
        "{texts:#?}"
    );
    let _ = Duration::ZERO;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_enrolled_by_join_code_serves_only_the_center_over_mutual_tls() {
    shared::tls::install_crypto_provider();
    let env = CenterEnv::start_with(
        "enroll-center",
        vec![("CODEX_FLEET_RECONNECT_MAX_SECS".into(), "2".into())],
    )
    .await;
    let model = e2e::fake_model::FakeModel::start().await.unwrap();
    let mut vps = remote_node_uninitialised("enroll-vps", &model.base_url());
    let code = e2e::node_proc::init_node(&vps.opts.state_dir, "vps2").unwrap();
    vps.start().await;
    let endpoint = vps.process.as_ref().unwrap().addr.tcp().unwrap();

    let admin = env
        .tg
        .create_topic(&env.alice, env.chat, "admin")
        .unwrap()
        .thread_id
        .unwrap();
    // An expired code is refused before any machine is contacted.
    let fingerprint = code_fingerprint(&code);
    let expired = shared::pki::JoinCode::new(
        shared::pki::JoinKind::NodeInvite,
        &fingerprint,
        Duration::ZERO,
    )
    .unwrap();
    env.say(
        admin,
        &format!("/node add vps2 {endpoint} {}", expired.encode()),
    );
    env.message(admin, "expired refused", |m| m.text().contains("expired"))
        .await;

    let add = env.say(admin, &format!("/node add vps2 {endpoint} {code}"));
    env.message(admin, "enrolled", |m| m.text().contains("vps2 enrolled"))
        .await;
    // The message holding the secret was deleted.
    let deletes = env.tg.calls_to("deleteMessage");
    assert!(deletes.iter().any(|c| c.outcome.is_ok()), "{deletes:?}");
    let _ = add;
    // The same code again: refused.
    env.say(admin, &format!("/node add vps2b {endpoint} {code}"));
    env.message(admin, "replay refused", |m| {
        m.text().contains("already used")
    })
    .await;

    // Sessions on the enrolled node work over mutual TLS.
    let thread = bind_on(
        &env,
        env.chat,
        "on-vps2",
        "vps2",
        "remote-project",
        "echo: over mtls",
    )
    .await;
    env.message(thread, "answer over mTLS", |m| m.text() == "over mtls")
        .await;

    // Nobody else gets in: plaintext, another CA, and a fleet certificate that is not the center's.
    assert!(
        e2e::node_client::NodeClient::connect(endpoint, &[])
            .await
            .is_err(),
        "plaintext accepted"
    );
    let node_tls = shared::pki::inspect(
        std::fs::read(vps.opts.state_dir.join("tls/node.pem"))
            .unwrap()
            .as_slice(),
    )
    .unwrap();
    assert_eq!(node_tls.role, shared::pki::Role::Node("vps2".into()));
    let other = shared::pki::FleetCa::generate().unwrap();
    let (key, cert) = other
        .issue(&shared::pki::Role::Center, Duration::from_secs(3600))
        .unwrap();
    let ca_pem = std::fs::read_to_string(vps.opts.state_dir.join("tls/ca.pem")).unwrap();
    let tls = shared::tls::client_config(
        &cert,
        &key,
        &ca_pem,
        &shared::pki::Role::node("vps2").unwrap(),
    );
    assert!(
        e2e::node_client::NodeClient::connect_tls(endpoint, tls)
            .await
            .is_err(),
        "another CA accepted"
    );
    let fleet_ca =
        shared::pki::FleetCa::load_or_create(&env.opts.state_dir.join("pki/ca")).unwrap();
    let (key, cert) = fleet_ca
        .issue(
            &shared::pki::Role::node("evil").unwrap(),
            Duration::from_secs(3600),
        )
        .unwrap();
    let tls = shared::tls::client_config(
        &cert,
        &key,
        &ca_pem,
        &shared::pki::Role::node("vps2").unwrap(),
    );
    let err = e2e::node_client::NodeClient::connect_tls(endpoint, tls)
        .await
        .err()
        .expect("a node cert acted as the center");
    assert!(
        format!("{err:#}").contains("only the fleet's center may attach"),
        "{err:#}"
    );

    // Revocation closes the link at once and input fails closed.
    env.say(admin, "/node remove vps2");
    env.message(admin, "revoked", |m| m.text().contains("vps2 is revoked"))
        .await;
    env.say(thread, "echo: still there?");
    env.message(thread, "refused after revocation", |m| {
        m.text().contains("Not delivered")
    })
    .await;
}

fn code_fingerprint(code: &str) -> String {
    shared::pki::JoinCode::decode(code)
        .unwrap()
        .fingerprint_hex()
}

struct LazyNode {
    _codex: CodexHome,
    _root: tempfile::TempDir,
    _state: tempfile::TempDir,
    _tmux: TmuxSandbox,
    opts: NodeOptions,
    process: Option<NodeProcess>,
}

impl LazyNode {
    async fn start(&mut self) {
        self.process = Some(NodeProcess::start(&self.opts).await.unwrap());
    }
}

fn remote_node_uninitialised(label: &str, model_url: &str) -> LazyNode {
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(root.path().join("remote-project")).unwrap();
    let project = root.path().join("remote-project").canonicalize().unwrap();
    let codex = CodexHome::builder(model_url)
        .trust(&project)
        .build()
        .unwrap();
    let state = tempfile::tempdir().unwrap();
    let tmux = TmuxSandbox::new(label);
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
    LazyNode {
        _codex: codex,
        _root: root,
        _state: state,
        _tmux: tmux,
        opts,
        process: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_30_second_partition_while_codex_works_loses_and_duplicates_nothing() {
    let model = e2e::fake_model::FakeModel::start().await.unwrap();
    let vps = remote_node("part-vps", &model.base_url()).await;
    let proxy = e2e::tcp_proxy::TcpProxy::start(&vps.process.addr)
        .await
        .unwrap();
    let env = CenterEnv::start_with(
        "part-center",
        vec![
            ("CODEX_FLEET_NODES".into(), format!("vps1={}", proxy.addr)),
            ("CODEX_FLEET_RECONNECT_MAX_SECS".into(), "2".into()),
        ],
    )
    .await;
    let thread = bind_on(
        &env,
        env.chat,
        "partition",
        "vps1",
        "remote-project",
        "echo: before the cut",
    )
    .await;
    env.message(thread, "first answer", |m| m.text() == "before the cut")
        .await;
    let slow = env
        .tg
        .send_text(&env.alice, env.chat, Some(thread), "slow: 8")
        .unwrap()
        .message_id;
    env.message(thread, "delivered", |m| {
        m.text().starts_with("✓ Delivered") && m.reply_to == slow
    })
    .await;
    proxy.cut();
    env.message(thread, "offline notice", |m| {
        m.text().contains("Lost the connection to vps1")
    })
    .await;
    // Codex finishes the turn during the partition.
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert!(
        !env.texts_in(thread)
            .iter()
            .any(|t| t.starts_with("Done after")),
        "delivered through a cut link?"
    );
    proxy.restore();
    env.message(thread, "answer after the partition", |m| {
        m.text() == "Done after 8 seconds."
    })
    .await;
    env.message(thread, "back notice", |m| {
        m.text().contains("vps1 is back online")
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let texts = env.texts_in(thread);
    for once in ["before the cut", "Done after 8 seconds."] {
        assert_eq!(
            texts.iter().filter(|t| *t == once).count(),
            1,
            "{once}: {texts:#?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_behind_nat_joins_and_dials_the_center() {
    let env = CenterEnv::start_with(
        "nat-center",
        vec![
            ("CODEX_FLEET_LISTEN".into(), "127.0.0.1:0".into()),
            ("CODEX_FLEET_ENROLL_LISTEN".into(), "127.0.0.1:0".into()),
        ],
    )
    .await;
    let link = env
        .center
        .printed_addr("center: nodes dial in at ")
        .unwrap();
    let enroll = env.center.printed_addr("center: enrollment at ").unwrap();
    let admin = env
        .tg
        .create_topic(&env.alice, env.chat, "admin")
        .unwrap()
        .thread_id
        .unwrap();
    // In a group the answer would show its secret to everyone: refused there.
    env.say(admin, "/node add vps3");
    env.message(admin, "sent to a private chat", |m| {
        m.text().contains("private chat")
    })
    .await;
    let dm = env.tg.create_private_chat(&env.alice, false);
    env.tg
        .send_text(&env.alice, dm, None, "/node add vps3")
        .unwrap();
    let invite = env
        .tg
        .wait_for_message("invite", Duration::from_secs(60), |m| {
            m.chat_id == dm && m.text().contains("cfj1.")
        })
        .await
        .unwrap();
    assert!(
        !env.texts_in(admin).iter().any(|t| t.contains("cfj1.")),
        "no join code in the group"
    );
    let code = invite
        .text()
        .split_whitespace()
        .find(|w| w.starts_with("cfj1."))
        .unwrap()
        .to_owned();

    let model = e2e::fake_model::FakeModel::start().await.unwrap();
    let mut vps = remote_node_uninitialised("nat-vps", &model.base_url());
    // A code on the command line (every local user can read /proc/*/cmdline) is refused and
    // not spent; the harness passes it on standard input.
    #[allow(
        clippy::disallowed_methods,
        reason = "test running the binary under test"
    )]
    let in_argv = std::process::Command::new(e2e::node_proc::workspace_bin("agent-node").unwrap())
        .args(["join", "--name", "vps3", "--center", &link, "--state-dir"])
        .arg(&vps.opts.state_dir)
        .args([&enroll, &code])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&in_argv.stderr);
    assert!(!in_argv.status.success(), "{stderr}");
    assert!(
        stderr.contains("--code-file") && !stderr.contains(&code),
        "{stderr}"
    );
    e2e::node_proc::join_node(&vps.opts.state_dir, "vps3", &link, &enroll, &code).unwrap();
    // The code works once.
    let other = tempfile::tempdir().unwrap();
    let again = e2e::node_proc::join_node(other.path(), "vps3", &link, &enroll, &code);
    assert!(again.is_err(), "a join code worked twice");
    vps.start().await;

    let thread = bind_on(
        &env,
        env.chat,
        "behind-nat",
        "vps3",
        "remote-project",
        "echo: through the nat",
    )
    .await;
    env.message(thread, "answer from the dial-in node", |m| {
        m.text() == "through the nat"
    })
    .await;

    // Revocation closes its link and it cannot come back.
    env.say(admin, "/node remove vps3");
    env.message(admin, "revoked", |m| m.text().contains("vps3 is revoked"))
        .await;
    env.say(thread, "echo: hello?");
    env.message(thread, "refused after revocation", |m| {
        m.text().contains("Not delivered")
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_sessions_finishing_at_once_stay_within_the_group_budget() {
    const N: usize = 20;
    // A node whose windows run a stand-in for Codex (this test writes the transcripts itself).
    let root = tempfile::tempdir().unwrap();
    let root_path = root.path().canonicalize().unwrap();
    let codex_home = tempfile::tempdir().unwrap();
    let day = codex_home.path().join("sessions/2026/11/21");
    std::fs::create_dir_all(&day).unwrap();
    let state = tempfile::tempdir().unwrap();
    let tmux = TmuxSandbox::new("budget-vps");
    let opts = NodeOptions {
        state_dir: state.path().to_owned(),
        codex_home: codex_home.path().to_owned(),
        tmux_socket: tmux.socket.clone(),
        // The stand-in shows the first message as submitted, as Codex would: the node binds a
        // rollout typed at the desk only to a window whose screen shows its first message.
        codex_command: "printf '\\342\\200\\272 go\\n\\342\\200\\272 \\n  footer\\n'; exec cat"
            .into(),
        roots: vec![format!("r={}", root_path.display())],
        env: vec![],
        port: 0,
    };
    let node = NodeProcess::start(&opts).await.unwrap();
    let client = e2e::node_client::NodeClient::connect(&node.addr, &[])
        .await
        .unwrap();
    let mut sessions = Vec::new();
    for i in 0..N {
        let dir = root_path.join(format!("p{i:02}"));
        std::fs::create_dir_all(&dir).unwrap();
        let reply = client
            .request(proto::v1::request::Op::CreateSession(
                proto::v1::CreateSession {
                    cwd: dir.display().to_string(),
                    ..Default::default()
                },
            ))
            .await
            .unwrap();
        let proto::v1::reply::Result::Created(c) = reply else {
            panic!("{reply:?}")
        };
        let sid = c.session.unwrap().session_id;
        let thread = format!("0199dddd-0000-7000-8000-{i:012}");
        let path = day.join(format!("rollout-2026-11-21T10-00-00-{thread}.jsonl"));
        let line = |kind: &str, body: String| {
            format!(
                r#"{{"timestamp":"2099-01-01T00:00:00.000Z","type":"{kind}","payload":{body}}}"#
            ) + "\n"
        };
        let text = line(
            "session_meta",
            format!(r#"{{"id":"{thread}","cwd":"{}"}}"#, dir.display()),
        ) + &line(
            "event_msg",
            r#"{"type":"user_message","message":"go"}"#.into(),
        );
        std::fs::write(&path, text).unwrap();
        sessions.push((sid, path));
    }
    drop(client);

    // Twenty topics of one group, bound to those sessions (as the bind flow would have done).
    let center_state = tempfile::tempdir().unwrap();
    let tg = e2e::fake_telegram::FakeTelegram::start(TOKEN_FOR_BUDGET)
        .await
        .unwrap();
    let alice = tg.create_user("Alice");
    let chat = tg.create_forum("Busy");
    let store = center::store::Store::open(&center_state.path().join("center.db")).unwrap();
    let mut threads = Vec::new();
    for (i, (sid, _)) in sessions.iter().enumerate() {
        let thread = tg
            .create_topic(&alice, chat, &format!("t{i}"))
            .unwrap()
            .thread_id
            .unwrap();
        store
            .put_binding(&center::store::Binding {
                surface: center::store::Surface {
                    chat_id: chat,
                    thread_id: thread as i32,
                },
                node: "vps1".into(),
                session_id: sid.clone().into(),
                cwd: String::new(),
                mode: center::store::InputMode::Steer,
            })
            .unwrap();
        threads.push(thread);
    }
    drop(store);
    tg.set_flood_limits(Some(Default::default()));
    let center_tmux = TmuxSandbox::new("budget-center");
    let opts = e2e::center_proc::CenterOptions {
        token: TOKEN_FOR_BUDGET.into(),
        allowed_users: vec![alice.id],
        api_url: tg.api_url(),
        state_dir: center_state.path().to_owned(),
        tmux_socket: center_tmux.socket.clone(),
        codex_command: "cat".into(),
        roots: vec![format!("r={}", root_path.display())],
        env: vec![("CODEX_FLEET_NODES".into(), format!("vps1={}", node.addr))],
    };
    let _center = e2e::center_proc::CenterProcess::start(&opts).await.unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;

    // All twenty turns end at the same moment.
    for (i, (_, path)) in sessions.iter().enumerate() {
        let line = format!(
            r#"{{"timestamp":"2099-01-01T00:00:01.000Z","type":"event_msg","payload":{{"type":"agent_message","message":"final answer {i}","phase":"final_answer"}}}}"#
        ) + "\n";
        let mut f = std::fs::OpenOptions::new().append(true).open(path).unwrap();
        std::io::Write::write_all(&mut f, line.as_bytes()).unwrap();
    }
    tg.wait_for("all twenty answers", Duration::from_secs(150), |v| {
        let n = v
            .bot_messages()
            .iter()
            .filter(|m| m.chat_id == chat && m.text().starts_with("final answer "))
            .count();
        (n >= N).then_some(())
    })
    .await
    .unwrap();
    assert_eq!(tg.count_429(), 0, "{:?}", tg.flood_events());
    for (i, thread) in threads.iter().enumerate() {
        let texts: Vec<String> = tg
            .messages_in(chat, Some(*thread))
            .into_iter()
            .map(|m| m.text().to_owned())
            .collect();
        assert_eq!(
            texts
                .iter()
                .filter(|t| **t == format!("final answer {i}"))
                .count(),
            1,
            "{texts:?}"
        );
    }
}

const TOKEN_FOR_BUDGET: &str = "777:BUDGET-token-for-the-fake-api";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_certificate_due_for_renewal_is_renewed_on_connect() {
    shared::tls::install_crypto_provider();
    let env = CenterEnv::start_with(
        "renew-center",
        vec![("CODEX_FLEET_RECONNECT_MAX_SECS".into(), "1".into())],
    )
    .await;
    let model = e2e::fake_model::FakeModel::start().await.unwrap();
    let mut vps = remote_node_uninitialised("renew-vps", &model.base_url());
    let code = e2e::node_proc::init_node(&vps.opts.state_dir, "vps4").unwrap();
    vps.start().await;
    let endpoint = vps.process.as_ref().unwrap().addr.tcp().unwrap();
    let admin = env
        .tg
        .create_topic(&env.alice, env.chat, "admin")
        .unwrap()
        .thread_id
        .unwrap();
    env.say(admin, &format!("/node add vps4 {endpoint} {code}"));
    env.message(admin, "enrolled", |m| m.text().contains("vps4 enrolled"))
        .await;

    // Replace the node's certificate with one already past 2/3 of its (short) life.
    let tls = vps.opts.state_dir.join("tls");
    let key = shared::pki::PrivateKey::read_from(&tls.join("node.key")).unwrap();
    let ca = shared::pki::FleetCa::load_or_create(&env.opts.state_dir.join("pki/ca")).unwrap();
    let role = shared::pki::Role::node("vps4").unwrap();
    let short = ca
        .sign_csr(&key.csr(&role).unwrap(), &role, Duration::from_secs(60))
        .unwrap();
    assert!(shared::pki::renewal_due(
        &shared::pki::inspect(short.as_bytes()).unwrap(),
        std::time::SystemTime::now()
    ));
    vps.process.as_mut().unwrap().kill().await.unwrap();
    std::fs::write(tls.join("node.pem"), &short).unwrap();
    vps.opts.port = endpoint.port();
    vps.start().await;

    // The center reconnects, sees the certificate is due, and installs a fresh one.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let pem = std::fs::read(tls.join("node.pem")).unwrap();
        let info = shared::pki::inspect(&pem).unwrap();
        if info.not_after > std::time::SystemTime::now() + Duration::from_secs(300 * 24 * 3600) {
            assert!(key.matches_cert(&pem).unwrap(), "renewed for another key");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "certificate not renewed"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The node rebinds with the new certificate and the center connects again (the link drops
    // once for that; give the reconnect its moment before binding through the picker).
    tokio::time::sleep(Duration::from_secs(4)).await;
    let thread = bind_on(
        &env,
        env.chat,
        "after-renewal",
        "vps4",
        "remote-project",
        "echo: renewed",
    )
    .await;
    env.message(thread, "answer after renewal", |m| m.text() == "renewed")
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manual_mode_pem_files_serve_only_the_center() {
    shared::tls::install_crypto_provider();
    let model = e2e::fake_model::FakeModel::start().await.unwrap();
    let vps = remote_node_uninitialised("manual-vps", &model.base_url());
    let center_state = tempfile::tempdir().unwrap();
    let run = |bin: &str, args: &[&str]| {
        #[allow(
            clippy::disallowed_methods,
            reason = "test harness running the binaries under test"
        )]
        let out = std::process::Command::new(e2e::node_proc::workspace_bin(bin).unwrap())
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{bin} {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let node_state = vps.opts.state_dir.display().to_string();
    let csr = run(
        "agent-node",
        &["csr", "--name", "vps5", "--state-dir", &node_state],
    );
    let csr_file = center_state.path().join("vps5.csr");
    std::fs::write(&csr_file, csr).unwrap();
    let center_dir = center_state.path().display().to_string();
    let bundle = run(
        "center",
        &[
            "nodes",
            "--state-dir",
            &center_dir,
            "sign",
            "vps5",
            &csr_file.display().to_string(),
        ],
    );
    // The certificate, then the CA.
    let split =
        bundle.find("-----END CERTIFICATE-----").unwrap() + "-----END CERTIFICATE-----\n".len();
    let (cert, ca) = bundle.split_at(split);
    let tls = vps.opts.state_dir.join("manual");
    std::fs::create_dir_all(&tls).unwrap();
    std::fs::write(tls.join("cert.pem"), cert).unwrap();
    std::fs::write(tls.join("ca.pem"), ca).unwrap();

    let bin = e2e::node_proc::workspace_bin("agent-node").unwrap();
    #[allow(
        clippy::disallowed_methods,
        reason = "test harness running the binary under test"
    )]
    let mut child = tokio::process::Command::new(bin)
        .env("CODEX_FLEET_CODEX_UPGRADE", "off")
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--state-dir",
            &node_state,
            "--tmux-socket",
            &vps.opts.tmux_socket,
        ])
        .arg("--codex-home")
        .arg(&vps.opts.codex_home)
        .arg("--tls-cert")
        .arg(tls.join("cert.pem"))
        .arg("--tls-key")
        .arg(vps.opts.state_dir.join("tls/node.key"))
        .arg("--tls-ca")
        .arg(tls.join("ca.pem"))
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    tokio::io::AsyncBufReadExt::read_line(&mut lines, &mut first)
        .await
        .unwrap();
    let addr: std::net::SocketAddr = first.split_whitespace().nth(3).unwrap().parse().unwrap();
    // The center's own certificate (from the same CA) attaches; plaintext does not.
    let fleet_ca =
        shared::pki::FleetCa::load_or_create(&center_state.path().join("pki/ca")).unwrap();
    let (key, cert) = fleet_ca
        .issue(&shared::pki::Role::Center, Duration::from_secs(3600))
        .unwrap();
    let tls =
        shared::tls::client_config(&cert, &key, ca, &shared::pki::Role::node("vps5").unwrap());
    let client = e2e::node_client::NodeClient::connect_tls(addr, tls)
        .await
        .unwrap();
    assert!(!client.welcome.node_version.is_empty());
    assert!(
        e2e::node_client::NodeClient::connect(addr, &[])
            .await
            .is_err()
    );
    let _ = child.kill().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_cross_the_link_both_ways_and_agent_node_send_reaches_the_topic() {
    let model = e2e::fake_model::FakeModel::start().await.unwrap();
    let vps = remote_node("files-vps", &model.base_url()).await;
    let env = CenterEnv::start_with(
        "files-center",
        vec![(
            "CODEX_FLEET_NODES".into(),
            format!("vps1={}", vps.process.addr),
        )],
    )
    .await;
    let thread = bind_on(
        &env,
        env.chat,
        "files",
        "vps1",
        "remote-project",
        "echo: ready",
    )
    .await;
    env.message(thread, "first answer", |m| m.text() == "ready")
        .await;

    // A 1.2 MB document travels to the remote node in chunks and lands in its state dir.
    let big: Vec<u8> = (0..1_200_000u32).map(|i| (i * 7 % 256) as u8).collect();
    env.tg
        .send_document(
            &env.alice,
            env.chat,
            Some(thread),
            "data.bin",
            "application/octet-stream",
            big.clone(),
            Some("echo: stored"),
        )
        .unwrap();
    let answer = env
        .message(thread, "document answer", |m| {
            m.text().starts_with("stored")
        })
        .await;
    let path = answer
        .text()
        .lines()
        .find_map(|l| l.strip_prefix("• "))
        .and_then(|l| l.split(" (").next())
        .unwrap()
        .to_owned();
    assert!(
        path.starts_with(&vps.opts.state_dir.display().to_string()),
        "{path} is not on the remote node"
    );
    assert_eq!(std::fs::read(&path).unwrap(), big);

    // agent-node send: a file on the node's machine reaches the topic through the center.
    let report = vps.opts.state_dir.join("report.png");
    let png = e2e::fake_telegram::sample_png(50, 40, [250, 200, 0]);
    std::fs::write(&report, &png).unwrap();
    let agent = e2e::node_proc::workspace_bin("agent-node").unwrap();
    let out = tokio::process::Command::new(&agent)
        .args(["send", "--state-dir"])
        .arg(&vps.opts.state_dir)
        .arg("--file")
        .arg(&report)
        .arg("built on the VPS")
        .env_remove("TMUX_PANE")
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let photo = env
        .message(thread, "relayed photo", |m| m.media.is_some())
        .await;
    assert_eq!(photo.media.as_ref().unwrap().bytes.as_ref(), png.as_slice());
    assert_eq!(photo.caption(), Some("built on the VPS"));

    // A session that is not bound, and a daemon that is not there: clear refusals.
    let out = tokio::process::Command::new(&agent)
        .args(["send", "--session", "s-nope", "--state-dir"])
        .arg(&vps.opts.state_dir)
        .arg("hello")
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("not bound to a topic"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let nowhere = tempfile::tempdir().unwrap();
    let out = tokio::process::Command::new(&agent)
        .args(["send", "--state-dir"])
        .arg(nowhere.path())
        .arg("hello")
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("cannot reach the agent-node daemon"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
