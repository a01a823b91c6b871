//! Benchmark: how fast a line appended to a Codex rollout reaches a connected center, how much
//! memory a node with 20 idle sessions uses, and how much CPU it burns while idle.
//!
//! Runs a real `Node` (real tmux on a private socket, real inotify) with windows that run a
//! stand-in for Codex (a process that draws a composer line and waits), so no Codex is needed.
//! Prints p50/p99 latency, RSS and idle CPU. Run with `cargo bench -p agent-node`.

use std::{
    io::Write,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use agent_node::{Node, NodeConfig, config::RootConfig};
use futures::StreamExt;
use proto::v1::{self, center_msg, node_msg, reply::Result as R, request::Op};
use tokio_util::sync::CancellationToken;

const SESSIONS: usize = 20;
const SAMPLES: usize = 400;

fn rollout_line(kind: &str, body: &str) -> String {
    format!(r#"{{"timestamp":"2026-11-21T10:00:00.000Z","type":"{kind}","payload":{body}}}"#) + "\n"
}

fn clock_ticks() -> (u64, u64) {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit(')').next().unwrap_or_default();
    let f: Vec<&str> = after.split_whitespace().collect();
    let parse = |i: usize| f.get(i).and_then(|v| v.parse().ok()).unwrap_or(0);
    (parse(11), parse(12)) // utime, stime (fields 14 and 15, after the ") " split)
}

fn status_kb(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

struct Cleanup(String);
impl Drop for Cleanup {
    fn drop(&mut self) {
        #[allow(clippy::disallowed_methods)]
        let _ = std::process::Command::new("tmux")
            .args(["-L", &self.0, "kill-server"])
            .output();
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let root = tmp.path().join("root");
    let codex_home = tmp.path().join("codex-home");
    let day = codex_home.join("sessions/2026/11/21");
    std::fs::create_dir_all(&day)?;
    let socket = format!("cf-bench-{}", std::process::id());
    let _cleanup = Cleanup(socket.clone());
    let mut cfg = NodeConfig::with_defaults(tmp.path().join("state"));
    cfg.tmux_socket = socket;
    cfg.codex_home = codex_home.clone();
    // Draws a Codex-like ready composer, then waits.
    cfg.codex_command = "printf '› \\n\\n  ? for shortcuts\\n'; exec cat".into();
    cfg.roots = vec![RootConfig {
        name: "bench".into(),
        path: root.clone(),
    }];
    std::fs::create_dir_all(&root)?;

    let token = CancellationToken::new();
    let node = Node::start(cfg, token.clone()).await?;
    let (center, node_side) = proto::link::pair(4096);
    let serving = node.clone();
    let t = token.clone();
    tokio::spawn(async move { serving.serve(node_side, t).await });
    let proto::link::Link { tx, mut rx } = center;
    tx.send(v1::CenterMsg {
        kind: Some(center_msg::Kind::Hello(v1::Hello {
            min_version: 1,
            max_version: 1,
            center_version: "bench".into(),
            cursors: vec![],
            job_cursors: vec![],
        })),
    })
    .await?;

    // 20 windows, each bound to its own rollout.
    let mut rollouts: Vec<(String, PathBuf)> = Vec::new();
    for i in 0..SESSIONS {
        let dir = root.join(format!("p{i}"));
        std::fs::create_dir_all(&dir)?;
        let dir = dir.canonicalize()?;
        let reply = node
            .handle(v1::Request {
                id: i as u64,
                op: Some(Op::CreateSession(v1::CreateSession {
                    cwd: dir.display().to_string(),
                    ..Default::default()
                })),
            })
            .await;
        let Some(R::Created(created)) = reply.result else {
            anyhow::bail!("create failed: {reply:?}");
        };
        let sid = created.session.expect("session").session_id;
        let thread = format!("0199bbbb-0000-7000-8000-{i:012}");
        let path = day.join(format!("rollout-2026-11-21T10-00-00-{thread}.jsonl"));
        let mut text = rollout_line(
            "session_meta",
            &format!(r#"{{"id":"{thread}","cwd":"{}"}}"#, dir.display()),
        );
        text = text.replace("2026-11-21T10:00:00.000Z", "2099-01-01T00:00:00.000Z");
        text += &rollout_line("event_msg", r#"{"type":"user_message","message":"start"}"#);
        std::fs::write(&path, text)?;
        rollouts.push((sid, path));
    }
    // Wait until every session is bound (its first event arrived).
    let mut bound = std::collections::HashSet::new();
    while bound.len() < SESSIONS {
        let msg = tokio::time::timeout(Duration::from_secs(20), rx.next())
            .await?
            .ok_or_else(|| anyhow::anyhow!("link closed"))??;
        if let Some(node_msg::Kind::Event(e)) = msg.kind {
            bound.insert(e.session_id);
        }
    }

    // Latency: append a line, wait for its event.
    let mut samples = Vec::with_capacity(SAMPLES);
    for n in 0..SAMPLES {
        let (sid, path) = &rollouts[n % SESSIONS];
        let marker = format!("bench-{n}");
        let line = rollout_line(
            "event_msg",
            &format!(r#"{{"type":"agent_message","message":"{marker}","phase":"commentary"}}"#),
        );
        let start = Instant::now();
        let mut f = std::fs::OpenOptions::new().append(true).open(path)?;
        f.write_all(line.as_bytes())?;
        drop(f);
        loop {
            let msg = tokio::time::timeout(Duration::from_secs(10), rx.next())
                .await?
                .ok_or_else(|| anyhow::anyhow!("link closed"))??;
            if let Some(node_msg::Kind::Event(e)) = &msg.kind
                && &e.session_id == sid
                && matches!(&e.kind, Some(v1::session_event::Kind::AssistantMessage(m)) if m.text == marker)
            {
                samples.push(start.elapsed());
                break;
            }
        }
    }
    samples.sort();

    // Idle: no input, no transcript changes.
    let idle = Duration::from_secs(10);
    let (u0, s0) = clock_ticks();
    let drain = async { while rx.next().await.is_some() {} };
    let _ = tokio::time::timeout(idle, drain).await;
    let (u1, s1) = clock_ticks();
    let ticks_per_sec = 100.0; // USER_HZ on Linux
    let cpu = ((u1 + s1) - (u0 + s0)) as f64 / ticks_per_sec / idle.as_secs_f64() * 100.0;

    println!(
        "node_latency: append → event at the center ({SAMPLES} samples over {SESSIONS} sessions)"
    );
    println!(
        "  p50 {:>8.3} ms",
        percentile(&samples, 0.50).as_secs_f64() * 1e3
    );
    println!(
        "  p99 {:>8.3} ms",
        percentile(&samples, 0.99).as_secs_f64() * 1e3
    );
    println!(
        "  max {:>8.3} ms",
        samples.last().expect("samples").as_secs_f64() * 1e3
    );
    println!(
        "node memory with {SESSIONS} idle sessions: RSS {} KiB (peak {} KiB)",
        status_kb("VmRSS:"),
        status_kb("VmHWM:")
    );
    println!(
        "node CPU while idle for {}s: {cpu:.2} % of one core",
        idle.as_secs()
    );

    // Attachments: a 20 MB file (the Bot API's download cap) stored in 512 KB chunks, the way
    // the center hands it over.
    let file: Vec<u8> = (0..20 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
    let chunk = agent_node::files::MAX_CHUNK;
    let start = Instant::now();
    let parts = file.chunks(chunk).count();
    let mut stored = None;
    for (i, data) in file.chunks(chunk).enumerate() {
        let reply = node
            .handle(v1::Request {
                id: 10_000 + i as u64,
                op: Some(Op::PutFile(v1::PutFile {
                    upload_id: "bench".into(),
                    session_id: rollouts[0].0.clone(),
                    file_name: "bench.bin".into(),
                    offset: (i * chunk) as u64,
                    data: data.to_vec(),
                    total_size: file.len() as u64,
                    finish: i + 1 == parts,
                })),
            })
            .await;
        if let Some(R::Stored(s)) = reply.result {
            stored = Some(s);
        }
    }
    let took = start.elapsed();
    let stored = stored.ok_or_else(|| anyhow::anyhow!("the file was not stored"))?;
    anyhow::ensure!(
        stored.size == file.len() as u64,
        "stored {} bytes",
        stored.size
    );
    println!(
        "attachment: 20 MB stored in {:.0} ms ({:.0} MB/s) in {parts} chunks",
        took.as_secs_f64() * 1e3,
        20.0 / took.as_secs_f64()
    );
    token.cancel();
    let _ = Path::new("");
    Ok(())
}
