//! Upgrading a remote agent-node from the center: the node runs a copy of the agent-node binary
//! (with a few bytes appended, so it is another build with another hash); the center sends it the
//! workspace's agent-node over the link. A corrupted transfer is refused and changes nothing; a
//! good one replaces the executable, the node re-executes itself (same process id) and comes back
//! with its windows, and `/nodes` shows the new build. The embedded node refuses.

use std::{os::unix::fs::PermissionsExt, path::Path, time::Duration};

use e2e::{
    codex::{CodexHome, codex_bin},
    node_client::NodeClient,
    node_proc::{NodeOptions, NodeProcess, TmuxSandbox, workspace_bin},
};
use proto::v1::{self, reply::Result as R, request::Op};

use crate::{center::CenterEnv, fleet::bind_on};

/// Windows of a tmux server: `id name` per line, sorted.
fn windows(tmux: &TmuxSandbox) -> Vec<String> {
    let out = tmux
        .tmux(&["list-windows", "-a", "-F", "#{window_id} #{window_name}"])
        .unwrap();
    let mut lines: Vec<String> = out.lines().map(str::to_owned).collect();
    lines.sort();
    lines
}

/// Only the executable is left in `dir` (no upload leftovers).
fn only_the_binary(dir: &Path) {
    let names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, vec!["agent-node".to_owned()], "{names:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_is_upgraded_over_its_link_and_comes_back_with_its_windows() {
    let model = e2e::fake_model::FakeModel::start().await.unwrap();
    // The node's binary: a copy of agent-node with bytes appended (ELF ignores them).
    let new_bytes = std::fs::read(workspace_bin("agent-node").unwrap()).unwrap();
    let new_sha = shared::digest::sha256_hex(&new_bytes);
    let mut old_bytes = new_bytes.clone();
    old_bytes.extend_from_slice(b"\0an older build of agent-node\0");
    let old_sha = shared::digest::sha256_hex(&old_bytes);
    let bin_dir = tempfile::tempdir().unwrap();
    let exe = bin_dir.path().join("agent-node");
    std::fs::write(&exe, &old_bytes).unwrap();
    std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).unwrap();

    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(root.path().join("remote-project")).unwrap();
    let project = root.path().join("remote-project").canonicalize().unwrap();
    let codex = CodexHome::builder(&model.base_url())
        .trust(&project)
        .build()
        .unwrap();
    let state = tempfile::tempdir().unwrap();
    let tmux = TmuxSandbox::new("upgrade-vps");
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
    let vps = NodeProcess::start_bin(&opts, &exe).await.unwrap();
    let pid = vps.pid().unwrap();

    // A transfer whose bytes do not match the announced SHA-256 is refused; nothing changes.
    {
        let client = NodeClient::connect(&vps.addr, &[]).await.unwrap();
        let old_version = format!("0.1.0+{}", &old_sha[..12]);
        assert_eq!(client.welcome.node_version, old_version);
        let mut corrupted = new_bytes[..4096].to_vec();
        corrupted[100] ^= 0xff;
        let reply = client
            .request(Op::UpgradeNode(v1::UpgradeNode {
                upload_id: "corrupt-1".into(),
                offset: 0,
                data: corrupted,
                total_size: 4096,
                sha256: shared::digest::sha256_hex(&new_bytes[..4096]),
                finish: true,
            }))
            .await
            .unwrap();
        let R::Failure(f) = reply else {
            panic!("a corrupted binary was accepted: {reply:?}")
        };
        assert!(
            f.message.contains("arrived corrupted") && f.message.contains("nothing was replaced"),
            "{}",
            f.message
        );
        assert_eq!(std::fs::read(&exe).unwrap(), old_bytes);
        only_the_binary(bin_dir.path());
    }

    let env = CenterEnv::start_with(
        "upgrade-center",
        vec![
            ("CODEX_FLEET_NODES".into(), format!("vps1={}", vps.addr)),
            ("CODEX_FLEET_RECONNECT_MAX_SECS".into(), "1".into()),
        ],
    )
    .await;
    let thread = bind_on(
        &env,
        env.chat,
        "upgrade",
        "vps1",
        "remote-project",
        "echo: before",
    )
    .await;
    env.message(thread, "answer before", |m| m.text() == "before")
        .await;
    let before = windows(&tmux);
    assert!(
        before.iter().any(|w| w.contains("codex-remote-project")),
        "{before:?}"
    );
    env.say(thread, "/nodes");
    env.message(thread, "old build listed", |m| {
        m.text().contains(&format!(
            "vps1 — 🟢 online, version 0.1.0+{}",
            &old_sha[..12]
        ))
    })
    .await;

    // The upgrade: the workspace's agent-node (the one next to the center) goes to vps1.
    env.say(thread, "/node upgrade vps1");
    env.message(thread, "sending", |m| {
        m.text().starts_with("⏳ Upgrading vps1 with") && m.text().contains(&new_sha[..12])
    })
    .await;
    let done = env
        .message(thread, "upgraded", |m| m.text().contains("vps1 upgraded"))
        .await;
    assert!(
        done.text().contains(&format!(
            "0.1.0+{} → 0.1.0+{}",
            &old_sha[..12],
            &new_sha[..12]
        )),
        "{}",
        done.text()
    );
    // The executable was replaced in place and the same process runs it (re-executed).
    assert_eq!(
        shared::digest::sha256_file(&exe).unwrap().1,
        new_sha,
        "the binary was not replaced"
    );
    only_the_binary(bin_dir.path());
    assert_eq!(
        std::fs::read_link(format!("/proc/{pid}/exe")).unwrap(),
        exe,
        "the node process does not run the new binary"
    );
    env.say(thread, "/nodes");
    env.message(thread, "new build listed", |m| {
        m.text().contains(&format!(
            "vps1 — 🟢 online, version 0.1.0+{}",
            &new_sha[..12]
        ))
    })
    .await;
    // The window survived, and the topic still drives it; the restart was too short for an
    // offline notice.
    assert_eq!(windows(&tmux), before);
    env.say(thread, "echo: after");
    env.message(thread, "answer after", |m| m.text() == "after")
        .await;
    let texts = env.texts_in(thread);
    assert!(
        !texts.iter().any(|t| t.contains("Lost the connection")),
        "{texts:#?}"
    );

    // The embedded node is part of the center.
    env.say(thread, "/node upgrade local");
    env.message(thread, "embedded refuses", |m| {
        m.text()
            .contains("the local node is part of the center; upgrade the center instead")
    })
    .await;
    // The operator CLI checks the file before sending anything.
    let script = bin_dir.path().join("not-a-binary.sh");
    std::fs::write(&script, "#!/bin/sh\necho agent-node 9.9.9\n").unwrap();
    let out = env.center_cli(&[
        "nodes",
        "upgrade",
        "vps1",
        "--binary",
        script.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no ELF header"), "{err}");
    std::fs::remove_file(&script).unwrap();
    assert_eq!(shared::digest::sha256_file(&exe).unwrap().1, new_sha);
    // `all` is every connected remote node (the embedded one is left out); the same build again
    // is allowed and said so.
    let out = env.center_cli(&["nodes", "upgrade", "all"]);
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        said.contains("vps1 upgraded") && said.contains("(the build it ran before)"),
        "{said}"
    );
    assert!(!said.contains("local"), "{said}");
    assert_eq!(windows(&tmux), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_center_restarts_in_place_when_an_update_asks_once_codex_is_idle() {
    // What `center update` asks of the running center after building: restart once no Codex
    // window is busy or asking (the git and build steps are unit-tested in center::update).
    let env = CenterEnv::start("update-restart").await;
    let thread = env.bound_topic("restart", "echo: before").await;
    env.message(thread, "answer before", |m| m.text() == "before")
        .await;
    let pid = env.center.pid().unwrap();
    let starts = env.tg.calls_to("setMyCommands").len();
    let answer = center::control::request(
        &env.opts.state_dir,
        &center::operator::ControlRequest::RestartWhenIdle {
            binary: String::new(),
        },
    )
    .await
    .unwrap();
    assert!(answer.ok, "{}", answer.message);
    assert!(answer.message.contains("restarts"), "{}", answer.message);
    // The same process starts again (re-executed: it sets its command menu at start) and the
    // topic still drives its window.
    env.tg
        .wait_for("the center started again", Duration::from_secs(60), |v| {
            let n = v
                .calls()
                .iter()
                .filter(|c| c.method.eq_ignore_ascii_case("setMyCommands"))
                .count();
            (n > starts).then_some(())
        })
        .await
        .unwrap();
    assert_eq!(env.center.pid(), Some(pid));
    assert!(Path::new(&format!("/proc/{pid}/exe")).exists());
    env.say(thread, "echo: after");
    env.message(thread, "answer after", |m| m.text() == "after")
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_systemd_an_upgraded_node_exits_for_a_restart() {
    // With INVOCATION_ID set (systemd starts every service with one) the node does not execute
    // itself again: it exits with status 75, and the unit's Restart=on-failure starts the new
    // binary.
    let bin_dir = tempfile::tempdir().unwrap();
    let exe = bin_dir.path().join("agent-node");
    let new_bytes = std::fs::read(workspace_bin("agent-node").unwrap()).unwrap();
    let mut old_bytes = new_bytes.clone();
    old_bytes.extend_from_slice(b"\0old\0");
    std::fs::write(&exe, &old_bytes).unwrap();
    std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).unwrap();
    let root = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    let tmux = TmuxSandbox::new("upgrade-systemd");
    let opts = NodeOptions {
        state_dir: state.path().to_owned(),
        codex_home: state.path().join("codex"),
        tmux_socket: tmux.socket.clone(),
        codex_command: "codex".into(),
        roots: vec![format!("r={}", root.path().display())],
        env: vec![("INVOCATION_ID".into(), "0123456789abcdef".into())],
        port: 0,
    };
    std::fs::create_dir_all(&opts.codex_home).unwrap();
    let mut node = NodeProcess::start_bin(&opts, &exe).await.unwrap();
    let client = NodeClient::connect(&node.addr, &[]).await.unwrap();
    let sha256 = shared::digest::sha256_hex(&new_bytes);
    let chunks: Vec<&[u8]> = new_bytes.chunks(1 << 20).collect();
    let mut offset = 0u64;
    let mut last = None;
    for (i, data) in chunks.iter().enumerate() {
        let reply = client
            .request(Op::UpgradeNode(v1::UpgradeNode {
                upload_id: "systemd-1".into(),
                offset,
                data: data.to_vec(),
                total_size: new_bytes.len() as u64,
                sha256: sha256.clone(),
                finish: i + 1 == chunks.len(),
            }))
            .await
            .unwrap();
        offset += data.len() as u64;
        last = Some(reply);
    }
    let Some(R::NodeUpgraded(done)) = last else {
        panic!("not upgraded: {last:?}")
    };
    assert_eq!(done.restart, "systemd");
    assert_eq!(done.new_version, "agent-node 0.1.0");
    let status = node.wait_exit(Duration::from_secs(30)).await.unwrap();
    assert_eq!(status.code(), Some(75), "{status}");
    assert_eq!(std::fs::read(&exe).unwrap(), new_bytes);
    only_the_binary(bin_dir.path());
}
