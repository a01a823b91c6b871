//! Benchmark: time from a line appended to a Codex rollout to the (fake) Telegram Bot API
//! receiving the sendMessage, through the real center binary with its embedded node; and the
//! center's memory with 20 bound topics.
//!
//! Needs release binaries: `cargo build --release --workspace && cargo bench -p e2e`.
//! Windows run a stand-in for Codex (it draws a composer and waits), so no Codex is needed; the
//! bench writes the rollouts itself, as Codex would.

use std::{
    io::Write,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use e2e::{
    center_proc::{CenterOptions, CenterProcess},
    fake_telegram::{BotMessage, FakeTelegram, User},
    node_proc::TmuxSandbox,
};

const TOPICS: usize = 20;
const SAMPLES: usize = 200;
const TOKEN: &str = "4242:BENCH-token-for-the-fake-api";
const WAIT: Duration = Duration::from_secs(30);

fn line(kind: &str, body: &str) -> String {
    format!(r#"{{"timestamp":"2026-11-21T10:00:00.000Z","type":"{kind}","payload":{body}}}"#) + "\n"
}

fn rss_kb(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0)
}

async fn press(
    tg: &FakeTelegram,
    user: &User,
    chat: i64,
    m: &BotMessage,
    label: &str,
) -> anyhow::Result<()> {
    let b = m
        .buttons()
        .into_iter()
        .find(|b| b.text.starts_with(label))
        .ok_or_else(|| anyhow::anyhow!("no button {label}"))?;
    tg.press_button(
        user,
        chat,
        m.message_id,
        b.callback_data.as_deref().unwrap_or_default(),
    )?;
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let tg = FakeTelegram::start(TOKEN).await?;
    let tmp = tempfile::tempdir()?;
    let root = tmp.path().join("root").canonicalize().or_else(|_| {
        std::fs::create_dir_all(tmp.path().join("root"))?;
        tmp.path().join("root").canonicalize()
    })?;
    let codex_home = tmp.path().join("codex-home");
    let day = codex_home.join("sessions/2026/11/21");
    std::fs::create_dir_all(&day)?;
    for i in 0..TOPICS {
        std::fs::create_dir_all(root.join(format!("p{i:02}")))?;
    }
    let tmux = TmuxSandbox::new("bench");
    let users: Vec<User> = (0..TOPICS)
        .map(|i| tg.create_user(&format!("U{i}")))
        .collect();
    let opts = CenterOptions {
        token: TOKEN.into(),
        allowed_users: users.iter().map(|u| u.id).collect(),
        api_url: tg.api_url(),
        state_dir: tmp.path().join("state"),
        tmux_socket: tmux.socket.clone(),
        codex_command: e2e::codex::STAND_IN_CODEX.into(),
        // One root per project: the root menu lists them all on one page.
        roots: (0..TOPICS)
            .map(|i| format!("p{i:02}={}/p{i:02}", root.display()))
            .collect(),
        env: vec![
            ("CODEX_HOME".into(), codex_home.display().to_string()),
            ("RUST_LOG".into(), "warn".into()),
        ],
    };
    let center = CenterProcess::start(&opts).await?;

    // Bind one topic per private chat, each to its own folder, by the Telegram flow.
    let mut rollouts: Vec<(i64, i64, PathBuf)> = Vec::new();
    for (i, user) in users.iter().enumerate() {
        let dir = root.join(format!("p{i:02}"));
        std::fs::create_dir_all(&dir)?;
        let chat = tg.create_private_chat(user, true);
        let thread = tg
            .create_topic(user, chat, "bench")?
            .thread_id
            .unwrap_or_default();
        let first = format!("start {i}");
        tg.send_text(user, chat, Some(thread), &first)?;
        let in_topic = |m: &BotMessage| m.chat_id == chat && m.thread_id == Some(thread);
        let menu = tg
            .wait_for_message("browser", WAIT, |m| {
                in_topic(m) && m.text().contains("Choose a folder")
            })
            .await?;
        let name = format!("📁 p{i:02}");
        press(&tg, user, chat, &menu, &name).await?;
        let menu = tg
            .wait_for_message("listed", WAIT, |m| {
                m.message_id == menu.message_id
                    && in_topic(m)
                    && m.text().contains(&format!("p{i:02}"))
            })
            .await?;
        press(&tg, user, chat, &menu, "✅").await?;
        tg.wait_for_message("bound", WAIT, |m| {
            m.message_id == menu.message_id && in_topic(m) && m.text().contains("session in")
        })
        .await?;
        // What Codex would write once the first message is submitted.
        let thread_uuid = format!("0199cccc-0000-7000-8000-{i:012}");
        let path = day.join(format!("rollout-2026-11-21T10-00-00-{thread_uuid}.jsonl"));
        let meta = line(
            "session_meta",
            &format!(
                r#"{{"id":"{thread_uuid}","cwd":"{}"}}"#,
                dir.canonicalize()?.display()
            ),
        )
        .replace("2026-11-21T10:00:00.000Z", "2099-01-01T00:00:00.000Z");
        // Wait until the text was typed into the window (the node's claim is registered).
        tg.wait_for_message("receipt", WAIT, |m| {
            in_topic(m) && m.text().contains("Sending")
        })
        .await?;
        std::fs::write(
            &path,
            meta + &line(
                "event_msg",
                &format!(r#"{{"type":"user_message","message":"{first}"}}"#),
            ),
        )?;
        rollouts.push((chat, thread, path));
    }
    // Let the first messages settle (confirmation, receipts).
    tokio::time::sleep(Duration::from_secs(3)).await;

    let mut samples = Vec::with_capacity(SAMPLES);
    for n in 0..SAMPLES {
        let (chat, thread, path) = &rollouts[n % TOPICS];
        let marker = format!("bench answer {n}");
        let body =
            format!(r#"{{"type":"agent_message","message":"{marker}","phase":"final_answer"}}"#);
        let start = Instant::now();
        let mut f = std::fs::OpenOptions::new().append(true).open(path)?;
        f.write_all(line("event_msg", &body).as_bytes())?;
        drop(f);
        let (chat, thread) = (*chat, *thread);
        tg.wait_for_message("answer", WAIT, |m| {
            m.chat_id == chat && m.thread_id == Some(thread) && m.text() == marker
        })
        .await?;
        samples.push(start.elapsed());
        // Stay under Telegram's per-chat pace so the numbers show the pipeline, not the throttle.
        tokio::time::sleep(Duration::from_millis(60)).await;
    }
    samples.sort();
    let pct =
        |p: f64| samples[((samples.len() as f64 - 1.0) * p).round() as usize].as_secs_f64() * 1e3;
    println!(
        "center_latency: rollout append → sendMessage at the Bot API ({SAMPLES} samples, {TOPICS} bound topics)"
    );
    println!("  p50 {:>8.3} ms", pct(0.5));
    println!("  p99 {:>8.3} ms", pct(0.99));
    println!("  max {:>8.3} ms", pct(1.0));
    if let Some(pid) = center.pid() {
        println!(
            "center RSS with {TOPICS} bound topics (embedded node included): {} KiB",
            rss_kb(pid)
        );
    }
    let _ = Path::new("");
    Ok(())
}
