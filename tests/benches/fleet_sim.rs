//! Benchmark: a simulated fleet — 10 agent-node processes × 20 sessions (windows run a stand-in
//! for Codex; the bench writes the transcripts) into one center, each session bound to a topic of
//! its own private chat. Reports rollout append → Bot API sendMessage latency p50/p99, center and
//! node memory, center CPU, and the reconnect-and-replay time after a partition of every node.
//!
//! Needs release binaries: `cargo build --release --workspace && cargo bench -p e2e --bench fleet_sim`.

use std::{
    io::Write,
    path::PathBuf,
    time::{Duration, Instant},
};

use e2e::{
    center_proc::{CenterOptions, CenterProcess},
    fake_telegram::FakeTelegram,
    node_client::NodeClient,
    node_proc::{NodeOptions, NodeProcess, TmuxSandbox},
    tcp_proxy::TcpProxy,
};
use proto::v1;

const NODES: usize = 10;
const PER_NODE: usize = 20;
const SAMPLES: usize = 400;
const TOKEN: &str = "5151:FLEET-bench-token-for-the-fake";

fn line(kind: &str, body: &str) -> String {
    format!(r#"{{"timestamp":"2099-01-01T00:00:00.000Z","type":"{kind}","payload":{body}}}"#) + "\n"
}

fn append(path: &PathBuf, text: &str) -> anyhow::Result<()> {
    let mut f = std::fs::OpenOptions::new().append(true).open(path)?;
    f.write_all(text.as_bytes())?;
    Ok(())
}

fn proc_kb(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0)
}

fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let f: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    f.get(11).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0)
        + f.get(12).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0)
}

struct Session {
    chat: i64,
    thread: i64,
    rollout: PathBuf,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let mut nodes = Vec::new();
    let mut proxies = Vec::new();
    let mut sandboxes = Vec::new();
    let mut sessions: Vec<(String, String, PathBuf)> = Vec::new(); // (node, session id, rollout)
    for n in 0..NODES {
        let base = tmp.path().join(format!("node{n}"));
        let root = base.join("root");
        let home = base.join("codex-home");
        let day = home.join("sessions/2026/11/21");
        std::fs::create_dir_all(&day)?;
        std::fs::create_dir_all(&root)?;
        let root = root.canonicalize()?;
        let tmux = TmuxSandbox::new(&format!("fleetsim{n}"));
        let opts = NodeOptions {
            state_dir: base.join("state"),
            codex_home: home.clone(),
            tmux_socket: tmux.socket.clone(),
            // Shows the first message as submitted, as Codex would: the node binds a rollout
            // typed at the desk only to the window whose screen shows its first message.
            codex_command:
                "printf '\\342\\200\\272 go\\n\\n\\342\\200\\272 \\n\\n  footer\\n'; exec cat"
                    .into(),
            roots: vec![format!("r={}", root.display())],
            env: vec![("RUST_LOG".into(), "warn".into())],
            port: 0,
        };
        let node = NodeProcess::start(&opts).await?;
        let client = NodeClient::connect(&node.addr, &[]).await?;
        for i in 0..PER_NODE {
            let dir = root.join(format!("p{i:02}"));
            std::fs::create_dir_all(&dir)?;
            let reply = client
                .request(v1::request::Op::CreateSession(v1::CreateSession {
                    cwd: dir.display().to_string(),
                    ..Default::default()
                }))
                .await?;
            let v1::reply::Result::Created(c) = reply else {
                anyhow::bail!("create failed: {reply:?}");
            };
            let sid = c.session.unwrap_or_default().session_id;
            let thread = format!("0199eeee-{n:04}-7000-8000-{i:012}");
            let path = day.join(format!("rollout-2026-11-21T10-00-00-{thread}.jsonl"));
            std::fs::write(
                &path,
                line(
                    "session_meta",
                    &format!(r#"{{"id":"{thread}","cwd":"{}"}}"#, dir.display()),
                ) + &line("event_msg", r#"{"type":"user_message","message":"go"}"#),
            )?;
            sessions.push((format!("vps{n}"), sid, path));
        }
        proxies.push(TcpProxy::start(&node.addr).await?);
        nodes.push(node);
        sandboxes.push(tmux);
    }

    let tg = FakeTelegram::start(TOKEN).await?;
    let state = tmp.path().join("center");
    std::fs::create_dir_all(&state)?;
    let store = center::store::Store::open(&state.join("center.db"))?;
    let mut users = Vec::new();
    let mut bound = Vec::new();
    for (node, sid, rollout) in &sessions {
        let user = tg.create_user("u");
        let chat = tg.create_private_chat(&user, true);
        let thread = tg
            .create_topic(&user, chat, "s")?
            .thread_id
            .unwrap_or_default();
        store.put_binding(&center::store::Binding {
            surface: center::store::Surface {
                chat_id: chat,
                thread_id: thread as i32,
            },
            node: node.clone().into(),
            session_id: sid.clone().into(),
            cwd: String::new(),
            mode: center::store::InputMode::Steer,
        })?;
        users.push(user.id);
        bound.push(Session {
            chat,
            thread,
            rollout: rollout.clone(),
        });
    }
    drop(store);
    let center_tmux = TmuxSandbox::new("fleetsim-center");
    let node_list: Vec<String> = proxies
        .iter()
        .enumerate()
        .map(|(n, p)| format!("vps{n}={}", p.addr))
        .collect();
    let opts = CenterOptions {
        token: TOKEN.into(),
        allowed_users: users,
        api_url: tg.api_url(),
        state_dir: state,
        tmux_socket: center_tmux.socket.clone(),
        codex_command: "cat".into(),
        roots: vec![format!("r={}", tmp.path().display())],
        env: vec![
            ("CODEX_FLEET_NODES".into(), node_list.join(",")),
            ("CODEX_FLEET_RECONNECT_MAX_SECS".into(), "1".into()),
            ("RUST_LOG".into(), "warn".into()),
        ],
    };
    let center = CenterProcess::start(&opts).await?;
    let center_pid = center.pid().unwrap_or(0);
    tokio::time::sleep(Duration::from_secs(3)).await;

    let wait = |chat: i64, thread: i64, text: String| {
        let tg = tg.clone();
        async move {
            tg.wait_for_message("answer", Duration::from_secs(60), |m| {
                m.chat_id == chat && m.thread_id == Some(thread) && m.text() == text
            })
            .await
        }
    };
    let cpu0 = cpu_ticks(center_pid);
    let t0 = Instant::now();
    let mut samples = Vec::with_capacity(SAMPLES);
    for k in 0..SAMPLES {
        let s = &bound[k % bound.len()];
        let marker = format!("answer {k}");
        let start = Instant::now();
        append(
            &s.rollout,
            &line(
                "event_msg",
                &format!(
                    r#"{{"type":"agent_message","message":"{marker}","phase":"final_answer"}}"#
                ),
            ),
        )?;
        wait(s.chat, s.thread, marker).await?;
        samples.push(start.elapsed());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let cpu = (cpu_ticks(center_pid) - cpu0) as f64 / 100.0 / t0.elapsed().as_secs_f64() * 100.0;
    samples.sort();
    let pct =
        |p: f64| samples[((samples.len() as f64 - 1.0) * p).round() as usize].as_secs_f64() * 1e3;

    // Partition every node, let every session finish a turn meanwhile, restore, and time the
    // replay until the last answer reached the Bot API.
    for p in &proxies {
        p.cut();
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    for (k, s) in bound.iter().enumerate() {
        append(
            &s.rollout,
            &line(
                "event_msg",
                &format!(
                    r#"{{"type":"agent_message","message":"after the partition {k}","phase":"final_answer"}}"#
                ),
            ),
        )?;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let restored = Instant::now();
    for p in &proxies {
        p.restore();
    }
    let first = {
        let s = &bound[0];
        wait(s.chat, s.thread, "after the partition 0".into()).await?;
        restored.elapsed()
    };
    for (k, s) in bound.iter().enumerate() {
        wait(s.chat, s.thread, format!("after the partition {k}")).await?;
    }
    let full = restored.elapsed();

    let node_rss: Vec<u64> = nodes.iter().filter_map(|n| n.pid()).map(proc_kb).collect();
    println!(
        "fleet_sim: {NODES} nodes × {PER_NODE} sessions into one center, {SAMPLES} samples (rollout append → sendMessage)"
    );
    println!("  p50 {:>8.3} ms", pct(0.5));
    println!("  p99 {:>8.3} ms", pct(0.99));
    println!("  max {:>8.3} ms", pct(1.0));
    println!(
        "center RSS {} KiB (embedded node included), CPU {cpu:.1} % of one core during the run",
        proc_kb(center_pid)
    );
    println!(
        "node RSS {}..{} KiB with {PER_NODE} sessions each",
        node_rss.iter().min().unwrap_or(&0),
        node_rss.iter().max().unwrap_or(&0)
    );
    println!(
        "after a partition of every node: first replayed answer {:.2} s, all {} answers {:.2} s (Telegram's 30/s overall budget paces the last part)",
        first.as_secs_f64(),
        bound.len(),
        full.as_secs_f64()
    );
    drop(sandboxes);
    Ok(())
}
