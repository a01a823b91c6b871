//! The agent-node driven through its gRPC API (no Telegram), with real tmux and real Codex.

use std::time::Duration;

use e2e::node_client::{event_of, final_answer, terminal_of};
use proto::v1::{self, reply::Result as R, request::Op, session_event::Kind};

use crate::support::{NodeEnv, TURN, assert_confirmed};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_typed_into_a_fresh_window_comes_back_as_the_final_answer() {
    // Paste-burst detection on: the way users run Codex.
    let mut env = NodeEnv::start("fresh", true).await.unwrap();
    let session = env.create(&env.project.clone()).await.unwrap();
    assert!(session.alive);
    let reply = env
        .send(&session.session_id, "echo: hello from the phone")
        .await
        .unwrap();
    assert_confirmed(&reply);
    let sid = session.session_id.clone();
    let (answer, _) = env
        .client
        .wait_for("final answer", 0, TURN, |m| final_answer(m, &sid))
        .await
        .unwrap();
    assert_eq!(answer, "hello from the phone");
    // Events carry increasing sequence numbers and the window's thread id.
    let events = env.client.events(&sid);
    assert!(events.windows(2).all(|w| w[0].seq < w[1].seq));
    assert!(events.iter().all(|e| !e.thread_id.is_empty()));
    assert!(events.iter().any(
        |e| matches!(&e.kind, Some(Kind::UserMessage(u)) if u.text == "echo: hello from the phone")
    ));
    // The window is listed with its thread.
    let R::Windows(w) = env
        .client
        .request(Op::ListWindows(v1::ListWindows {}))
        .await
        .unwrap()
    else {
        panic!("list windows failed");
    };
    assert_eq!(w.sessions.len(), 1);
    assert!(!w.sessions[0].thread_id.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shell_syntax_and_multiline_text_arrive_literally() {
    let env = NodeEnv::start("literal", true).await.unwrap();
    let session = env.create(&env.project.clone()).await.unwrap();
    let sid = session.session_id;
    let danger = "echo: $(touch pwned); rm -rf ~ `id` && echo done;";
    assert_confirmed(&env.send(&sid, danger).await.unwrap());
    let multiline = "echo: first line\nsecond line\n\tindented third";
    assert_confirmed(&env.send(&sid, multiline).await.unwrap());
    let mut env = env;
    let mut users: Vec<String> = Vec::new();
    let mut from = 0;
    while users.len() < 2 {
        let (text, at) = env
            .client
            .wait_for("the user messages", from, TURN, |m| {
                match &event_of(m, &sid)?.kind {
                    Some(Kind::UserMessage(u)) => Some(u.text.clone()),
                    _ => None,
                }
            })
            .await
            .unwrap();
        users.push(text);
        from = at + 1;
    }
    assert!(users.contains(&danger.to_owned()), "{users:?}");
    assert!(users.contains(&multiline.to_owned()), "{users:?}");
    assert!(
        !env.project.join("pwned").exists(),
        "text was run by a shell"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_sessions_in_one_folder_never_cross() {
    let mut env = NodeEnv::start("two", true).await.unwrap();
    let project = env.project.clone();
    let a = env.create(&project).await.unwrap().session_id;
    let b = env.create(&project).await.unwrap().session_id;
    // Both first messages at once: the per-folder lock and the claim keep them apart.
    let (ra, rb) = tokio::join!(env.send(&a, "echo: alpha"), env.send(&b, "echo: bravo"));
    assert_confirmed(&ra.unwrap());
    assert_confirmed(&rb.unwrap());
    let (fa, _) = env
        .client
        .wait_for("a's answer", 0, TURN, |m| final_answer(m, &a))
        .await
        .unwrap();
    let (fb, _) = env
        .client
        .wait_for("b's answer", 0, TURN, |m| final_answer(m, &b))
        .await
        .unwrap();
    assert_eq!((fa.as_str(), fb.as_str()), ("alpha", "bravo"));
    // Second turns stay on their own transcripts.
    assert_confirmed(&env.send(&b, "echo: bravo two").await.unwrap());
    assert_confirmed(&env.send(&a, "echo: alpha two").await.unwrap());
    let (fb2, _) = env
        .client
        .wait_for("b's second answer", 0, TURN, |m| {
            final_answer(m, &b).filter(|t| t.ends_with("two"))
        })
        .await
        .unwrap();
    assert_eq!(fb2, "bravo two");
    env.client
        .wait_for("a's second answer", 0, TURN, |m| {
            final_answer(m, &a).filter(|t| t == "alpha two")
        })
        .await
        .unwrap();
    let threads = |sid: &str| -> std::collections::HashSet<String> {
        env.client
            .events(sid)
            .into_iter()
            .map(|e| e.thread_id)
            .collect()
    };
    let (ta, tb) = (threads(&a), threads(&b));
    assert_eq!(ta.len(), 1);
    assert_eq!(tb.len(), 1);
    assert_ne!(ta, tb);
    for e in env.client.events(&a) {
        if let Some(Kind::UserMessage(u)) = e.kind {
            assert!(u.text.contains("alpha"), "b's message on a: {}", u.text);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn escape_interrupts_a_slow_turn_and_tool_calls_are_reported() {
    let mut env = NodeEnv::start("esc", false).await.unwrap();
    let sid = env.create(&env.project.clone()).await.unwrap().session_id;
    assert_confirmed(&env.send(&sid, "run: echo tool-output-42").await.unwrap());
    let (result, _) = env
        .client
        .wait_for("tool result", 0, TURN, |m| match &event_of(m, &sid)?.kind {
            Some(Kind::ToolResult(r)) => Some(r.clone()),
            _ => None,
        })
        .await
        .unwrap();
    assert!(result.output.contains("tool-output-42"), "{result:?}");
    assert!(result.has_exit_code && result.exit_code == 0);
    env.client
        .wait_for("first answer", 0, TURN, |m| final_answer(m, &sid))
        .await
        .unwrap();
    assert!(env.client.events(&sid).iter().any(
        |e| matches!(&e.kind, Some(Kind::ToolCall(c)) if c.command.contains("tool-output-42"))
    ));

    let start = env.client.seen.len();
    assert_confirmed(&env.send(&sid, "slow: 30").await.unwrap());
    let (_, busy_at) = env
        .client
        .wait_for("busy screen", start, TURN, |m| {
            terminal_of(m, &sid)
                .filter(|t| t.state() == v1::ScreenState::Busy)
                .map(|t| t.status_line.clone())
        })
        .await
        .unwrap();
    env.key(&sid, v1::NamedKey::Escape).await.unwrap();
    let (aborted, _) = env
        .client
        .wait_for(
            "aborted turn",
            start,
            Duration::from_secs(20),
            |m| match &event_of(m, &sid)?.kind {
                Some(Kind::TurnAborted(a)) => Some(a.reason.clone()),
                _ => None,
            },
        )
        .await
        .unwrap();
    assert_eq!(aborted, "interrupted");
    // The screen may turn ready before the transcript's abort is read: any ready screen after
    // the busy one counts.
    env.client
        .wait_for("ready again", busy_at, Duration::from_secs(20), |m| {
            terminal_of(m, &sid)
                .filter(|t| t.state() == v1::ScreenState::Ready)
                .map(|_| ())
        })
        .await
        .unwrap();
    // On an idle composer Escape and Ctrl-C would not interrupt anything (Ctrl-C would quit).
    for key in [v1::NamedKey::Escape, v1::NamedKey::CtrlC] {
        match env.key(&sid, key).await.unwrap() {
            R::Failure(f) => assert_eq!(f.code(), v1::ErrorCode::InvalidArgument, "{f:?}"),
            other => panic!(
                "{key:?} on an idle composer was sent: {other:?}\n{}",
                env.capture(&sid).await.unwrap_or_default()
            ),
        }
    }
    assert!(env.capture(&sid).await.unwrap().contains("›"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approval_prompt_is_shown_and_answered_with_a_key() {
    let mut env = NodeEnv::start("approve", false).await.unwrap();
    let sid = env.create(&env.project.clone()).await.unwrap().session_id;
    let reply = env.send(&sid, "approve: touch approved.txt").await.unwrap();
    assert!(matches!(reply, R::Input(_)), "{reply:?}");
    let (prompt, _) = env
        .client
        .wait_for("approval prompt", 0, TURN, |m| {
            terminal_of(m, &sid)
                .filter(|t| t.state() == v1::ScreenState::Prompt)
                .cloned()
        })
        .await
        .unwrap();
    assert!(
        prompt.prompt_text.contains("touch approved.txt"),
        "{prompt:?}"
    );
    assert!(prompt.choices.len() >= 2, "{prompt:?}");
    let screen = env.capture(&sid).await.unwrap();
    assert!(screen.contains("touch approved.txt"), "{screen}");
    // Typing text now would answer the prompt by accident: it is refused.
    match env.send(&sid, "y").await.unwrap() {
        R::Failure(f) => assert_eq!(f.code(), v1::ErrorCode::Blocked, "{f:?}"),
        other => panic!("input during a prompt was accepted: {other:?}"),
    }
    let yes = &prompt.choices[0];
    env.client
        .request(Op::SendKey(v1::SendKey {
            session_id: sid.clone(),
            key: Some(v1::send_key::Key::Choice(yes.key.clone())),
            expect_prompt: String::new(),
        }))
        .await
        .unwrap();
    let (answer, _) = env
        .client
        .wait_for("final answer", 0, TURN, |m| final_answer(m, &sid))
        .await
        .unwrap();
    assert!(answer.contains("touch approved.txt"), "{answer}");
    let outputs: Vec<String> = env
        .model
        .requests()
        .iter()
        .flat_map(|r| r.body["input"].as_array().cloned().unwrap_or_default())
        .filter(|i| i["type"] == "function_call_output")
        .map(|i| i["output"].to_string())
        .collect();
    // Under load the command may outlive the tool call's yield time; give it a moment.
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while !env.project.join("approved.txt").exists() && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        env.project.join("approved.txt").exists(),
        "approved command did not run: {outputs:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_removes_the_window_and_later_input_fails_closed() {
    let mut env = NodeEnv::start("kill", false).await.unwrap();
    let info = env.create(&env.project.clone()).await.unwrap();
    let sid = info.session_id.clone();
    assert!(
        env.tmux
            .tmux(&["list-windows", "-a", "-F", "#{window_id}"])
            .unwrap()
            .contains(&info.window_id)
    );
    let reply = env
        .client
        .request(Op::KillWindow(v1::KillWindow {
            session_id: sid.clone(),
            ..Default::default()
        }))
        .await
        .unwrap();
    assert!(matches!(reply, R::Done(_)), "{reply:?}");
    let windows = env
        .tmux
        .tmux(&["list-windows", "-a", "-F", "#{window_id}"])
        .unwrap_or_default();
    assert!(!windows.contains(&info.window_id), "{windows}");
    env.client
        .wait_for(
            "killed lifecycle",
            0,
            Duration::from_secs(10),
            |m| match &m.kind {
                Some(v1::node_msg::Kind::Lifecycle(l)) if l.kind() == v1::LifecycleKind::Killed => {
                    Some(())
                }
                _ => None,
            },
        )
        .await
        .unwrap();
    match env.send(&sid, "hello?").await.unwrap() {
        R::Failure(f) => {
            assert_eq!(f.code(), v1::ErrorCode::WindowDead);
            assert!(!f.message.is_empty());
        }
        other => panic!("input to a killed window: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_clear_failures() {
    let env = NodeEnv::start("bad", false).await.unwrap();
    let expect = |r: R, code: v1::ErrorCode| match r {
        R::Failure(f) => {
            assert_eq!(f.code(), code, "{f:?}");
            assert!(!f.message.is_empty());
        }
        other => panic!("expected {code:?}, got {other:?}"),
    };
    let list = |path: &str| {
        Op::ListDir(v1::ListDir {
            path: path.into(),
            show_hidden: false,
        })
    };
    expect(
        env.client.request(list("/etc")).await.unwrap(),
        v1::ErrorCode::OutsideRoots,
    );
    let dotdot = format!("{}/../..", env.project.display());
    expect(
        env.client.request(list(&dotdot)).await.unwrap(),
        v1::ErrorCode::OutsideRoots,
    );
    expect(
        env.client.request(list("relative")).await.unwrap(),
        v1::ErrorCode::InvalidArgument,
    );
    let create = |cwd: &str, resume: &str| {
        Op::CreateSession(v1::CreateSession {
            cwd: cwd.into(),
            resume_id: resume.into(),
            idempotency_key: String::new(),
            ..Default::default()
        })
    };
    expect(
        env.client.request(create("/", "")).await.unwrap(),
        v1::ErrorCode::OutsideRoots,
    );
    let project = env.project.display().to_string();
    expect(
        env.client
            .request(create(&project, "; rm -rf ~"))
            .await
            .unwrap(),
        v1::ErrorCode::InvalidArgument,
    );
    expect(
        env.client
            .request(create(&project, "00000000-0000-0000-0000-000000000000"))
            .await
            .unwrap(),
        v1::ErrorCode::NotFound,
    );
    expect(
        env.send("s-nope", "hi").await.unwrap(),
        v1::ErrorCode::NotFound,
    );
    // The project is listed from its root.
    let root = env
        .root
        .path()
        .canonicalize()
        .unwrap()
        .display()
        .to_string();
    let R::Dir(dir) = env.client.request(list(&root)).await.unwrap() else {
        panic!("list failed")
    };
    assert_eq!(dir.dirs, vec!["project"]);
    // An incompatible center is refused with a reason.
    let err = e2e::node_client::NodeClient::connect_with_versions(&env.node.addr, &[], 99, 100)
        .await
        .err()
        .expect("incompatible center accepted");
    assert!(err.to_string().contains("incompatible protocol"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotent_create_and_resume_of_an_earlier_session() {
    let mut env = NodeEnv::start("resume", false).await.unwrap();
    let project = env.project.display().to_string();
    let create = |resume: &str, key: &str| {
        Op::CreateSession(v1::CreateSession {
            cwd: project.clone(),
            resume_id: resume.into(),
            idempotency_key: key.into(),
            ..Default::default()
        })
    };
    let R::Created(first) = env.client.request(create("", "key-1")).await.unwrap() else {
        panic!()
    };
    let R::Created(again) = env.client.request(create("", "key-1")).await.unwrap() else {
        panic!()
    };
    assert!(again.existed);
    let sid = first.session.unwrap().session_id;
    assert_eq!(again.session.unwrap().session_id, sid);
    assert_confirmed(&env.send(&sid, "echo: remember me").await.unwrap());
    env.client
        .wait_for("answer", 0, TURN, |m| final_answer(m, &sid))
        .await
        .unwrap();
    let R::Resumable(list) = env
        .client
        .request(Op::ListResumable(v1::ListResumable {
            cwd: project.clone(),
            limit: 0,
        }))
        .await
        .unwrap()
    else {
        panic!()
    };
    assert_eq!(list.sessions.len(), 1, "{list:?}");
    let thread = list.sessions[0].thread_id.clone();
    assert_eq!(list.sessions[0].open_in_session, sid);
    // Resuming a thread that is open elsewhere is refused; after a kill it works.
    let dup = env.client.request(create(&thread, "")).await.unwrap();
    assert!(
        matches!(dup, R::Failure(ref f) if f.code() == v1::ErrorCode::AlreadyExists),
        "{dup:?}"
    );
    env.client
        .request(Op::KillWindow(v1::KillWindow {
            session_id: sid.clone(),
            ..Default::default()
        }))
        .await
        .unwrap();
    let R::Created(resumed) = env.client.request(create(&thread, "")).await.unwrap() else {
        panic!()
    };
    let resumed = resumed.session.unwrap();
    assert_eq!(resumed.thread_id, thread);
    let rid = resumed.session_id;
    assert_confirmed(&env.send(&rid, "echo: back again").await.unwrap());
    let (answer, _) = env
        .client
        .wait_for("resumed answer", 0, TURN, |m| final_answer(m, &rid))
        .await
        .unwrap();
    assert_eq!(answer, "back again");
    // The resumed window delivers only new events, not the old history.
    assert!(
        env.client.events(&rid).iter().all(
            |e| !matches!(&e.kind, Some(Kind::UserMessage(u)) if u.text.contains("remember me"))
        )
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_restart_mid_turn_loses_and_duplicates_nothing() {
    let mut env = NodeEnv::start("restart", false).await.unwrap();
    let sid = env.create(&env.project.clone()).await.unwrap().session_id;
    assert_confirmed(&env.send(&sid, "echo: before").await.unwrap());
    env.client
        .wait_for("first answer", 0, TURN, |m| final_answer(m, &sid))
        .await
        .unwrap();
    assert_confirmed(&env.send(&sid, "slow: 6").await.unwrap());
    env.client
        .wait_for("turn started", 0, TURN, |m| {
            match &event_of(m, &sid)?.kind {
                Some(Kind::UserMessage(u)) if u.text == "slow: 6" => Some(()),
                _ => None,
            }
        })
        .await
        .unwrap();
    // The center handled (and acks) everything so far, then the node dies mid-turn.
    let before = env.client.events(&sid);
    let acked = before.last().unwrap().seq;
    env.client.ack(&sid, acked).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await; // let the ack reach the node
    env.restart_node().await.unwrap();
    env.client = e2e::node_client::NodeClient::connect(&env.node.addr, &[(sid.clone(), acked)])
        .await
        .unwrap();
    let (answer, _) = env
        .client
        .wait_for("final answer after restart", 0, TURN, |m| {
            final_answer(m, &sid)
        })
        .await
        .unwrap();
    assert_eq!(answer, "Done after 6 seconds.");
    env.client.drain_for(Duration::from_millis(500)).await;
    let after = env.client.events(&sid);
    assert!(
        after.iter().all(|e| e.seq > acked),
        "replayed an acked event"
    );
    // Exactly the transcript: a client that acked nothing gets the same events, in order.
    let full = e2e::node_client::NodeClient::connect(&env.node.addr, &[(sid.clone(), 0)])
        .await
        .unwrap();
    let mut full = full;
    full.wait_for("full replay", 0, TURN, |m| {
        final_answer(m, &sid).filter(|a| a.starts_with("Done"))
    })
    .await
    .unwrap();
    full.drain_for(Duration::from_millis(500)).await;
    let seqs = |v: &[v1::SessionEvent]| v.iter().map(|e| e.seq).collect::<Vec<_>>();
    let mut joined = seqs(&before);
    joined.extend(seqs(&after));
    assert_eq!(joined, seqs(&full.events(&sid)));
    let finals = after
        .iter()
        .filter(|e| matches!(e.kind, Some(Kind::TurnCompleted(_))))
        .count();
    assert_eq!(finals, 1);
    // The window was adopted, not recreated. (The newest link replaced the older one.)
    let R::Windows(w) = full
        .request(Op::ListWindows(v1::ListWindows {}))
        .await
        .unwrap()
    else {
        panic!()
    };
    assert_eq!(w.sessions.len(), 1);
    assert!(w.sessions[0].alive);
}

/// Runs `uds-probe` on `socket` as `uid` (group root, which the shared socket mode lets through)
/// and returns what it saw: `unreachable …`, `closed` or `open`.
fn probe_as(uid: u32, socket: &std::path::Path) -> String {
    use std::os::unix::process::CommandExt;
    #[allow(
        clippy::disallowed_methods,
        reason = "test harness running a probe as another user"
    )]
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_uds-probe"))
        .arg(socket)
        .uid(uid)
        .gid(0)
        .output()
        .expect("running uds-probe");
    assert!(out.status.success(), "{out:?}");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unenrolled_node_serves_only_its_own_user_on_a_private_unix_socket() {
    use std::os::unix::fs::PermissionsExt;

    use e2e::node_proc::{NodeAddr, NodeOptions, NodeProcess, TmuxSandbox};

    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let root = tempfile::tempdir().unwrap();
    let codex_home = tempfile::tempdir().unwrap();
    let start =
        |tmux: &TmuxSandbox, state: &std::path::Path, env: Vec<(String, String)>| NodeOptions {
            state_dir: state.to_owned(),
            codex_home: codex_home.path().to_owned(),
            tmux_socket: tmux.socket.clone(),
            codex_command: "cat".into(),
            roots: vec![format!("r={}", root.path().display())],
            env,
            port,
        };

    // Asked for TCP 127.0.0.1:<port>, a node that is not enrolled serves a Unix socket instead.
    let state = tempfile::tempdir().unwrap();
    let tmux = TmuxSandbox::new("uds-own");
    let opts = start(&tmux, state.path(), vec![]);
    let node = NodeProcess::start(&opts).await.unwrap();
    let NodeAddr::Unix(socket) = node.addr.clone() else {
        panic!("served on {}", node.addr);
    };
    assert_eq!(socket, state.path().join("node.sock"));
    assert_eq!(mode(&socket), 0o600, "the socket is owner-only");
    assert_eq!(mode(state.path()), 0o700, "so is its directory");
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "plaintext TCP is offered"
    );
    // The node's own user attaches.
    let client = e2e::node_client::NodeClient::connect(&node.addr, &[])
        .await
        .unwrap();
    assert!(!client.welcome.node_name.is_empty());
    drop(client);

    if !is_root() {
        eprintln!("not root: the tests of other users' connections need to switch uid; skipped");
        return;
    }
    // Another user cannot even reach the socket.
    assert!(
        probe_as(65534, &socket).starts_with("unreachable"),
        "another uid reached the socket"
    );
    drop(node);

    // With allow_uids, the directory lets the group through, and SO_PEERCRED decides: the listed
    // uid is served, any other uid is dropped at once.
    let shared = tempfile::tempdir().unwrap();
    let tmux = TmuxSandbox::new("uds-shared");
    let opts = start(
        &tmux,
        shared.path(),
        vec![("AGENT_NODE_ALLOW_UIDS".into(), "4242".into())],
    );
    let node = NodeProcess::start(&opts).await.unwrap();
    let NodeAddr::Unix(socket) = node.addr.clone() else {
        panic!("served on {}", node.addr);
    };
    assert_eq!(mode(shared.path()), 0o710);
    assert_eq!(mode(&socket), 0o660);
    assert_eq!(probe_as(4242, &socket), "open", "the listed uid");
    assert_eq!(probe_as(65534, &socket), "closed", "an unlisted uid");
    assert_eq!(probe_as(65534, &socket), "closed", "and again");
    // The node still serves its own user after refusing others.
    e2e::node_client::NodeClient::connect(&node.addr, &[])
        .await
        .unwrap();
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status").is_ok_and(|s| {
        s.lines()
            .find_map(|l| l.strip_prefix("Uid:"))
            .and_then(|ids| ids.split_whitespace().nth(1))
            == Some("0")
    })
}
