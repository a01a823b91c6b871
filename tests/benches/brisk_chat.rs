//! Benchmark: a brisk forum chat as a phone user feels it. The real center binary (embedded
//! node, real tmux, the real Codex CLI on the fake model) against the fake Bot API with
//! Telegram's flood limits on (1 message/s per chat with a small burst, 20 a minute per group,
//! edits counted): 20 turns, one every 9 s, each running a command and answering.
//!
//! Reports, per turn: user message → Codex's model request (input), Codex's last model reply →
//! the answer accepted by Telegram (output), Bot API calls per turn and 429s; then the input
//! latency of a message sent while the chat is under a 15 s 429.
//!
//! Needs release binaries and the pinned Codex (`CODEX_BIN`, as `tests/run` installs it):
//! `cargo build --release --workspace && cargo bench -p e2e --bench brisk_chat`.

use std::time::{Duration, Instant};

use e2e::{
    center_proc::{CenterOptions, CenterProcess},
    codex::{CodexHome, codex_bin},
    fake_model::FakeModel,
    fake_telegram::{BotMessage, FakeTelegram, FloodLimits},
    node_proc::TmuxSandbox,
};

const TURNS: usize = 20;
const PACE: Duration = Duration::from_secs(9);
const TOKEN: &str = "4242:BRISK-token-for-the-fake-api";
const WAIT: Duration = Duration::from_secs(60);
/// Calls that are not part of a conversation's traffic (the client may spell them in any case).
const NOT_TRAFFIC: &[&str] = &[
    "getUpdates",
    "getMe",
    "setMyCommands",
    "deleteWebhook",
    "answerCallbackQuery",
    "getFile",
];

fn pct(samples: &[Duration], p: f64) -> f64 {
    let mut s = samples.to_vec();
    s.sort();
    s[((s.len() as f64 - 1.0) * p).round() as usize].as_secs_f64() * 1e3
}

fn traffic(tg: &FakeTelegram, after_seq: u64) -> (usize, Vec<(String, usize)>) {
    let calls: Vec<String> = tg
        .calls()
        .into_iter()
        .filter(|c| {
            c.seq > after_seq
                && !NOT_TRAFFIC
                    .iter()
                    .any(|m| m.eq_ignore_ascii_case(&c.method))
        })
        .map(|c| c.method)
        .collect();
    let mut by_method: Vec<(String, usize)> = Vec::new();
    for m in &calls {
        match by_method.iter_mut().find(|(k, _)| k == m) {
            Some((_, n)) => *n += 1,
            None => by_method.push((m.clone(), 1)),
        }
    }
    (calls.len(), by_method)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let tg = FakeTelegram::start(TOKEN).await?;
    let model = FakeModel::start().await?;
    let tmp = tempfile::tempdir()?;
    std::fs::create_dir_all(tmp.path().join("root/project"))?;
    let root = tmp.path().join("root").canonicalize()?;
    let project = root.join("project");
    let codex = CodexHome::builder(&model.base_url())
        .trust(&project)
        .paste_burst(true)
        .build()?;
    let tmux = TmuxSandbox::new("brisk");
    let alice = tg.create_user("Alice");
    let chat = tg.create_forum("Brisk");
    tg.add_bot(&alice, chat)?;
    let opts = CenterOptions {
        token: TOKEN.into(),
        allowed_users: vec![alice.id],
        api_url: tg.api_url(),
        state_dir: tmp.path().join("state"),
        tmux_socket: tmux.socket.clone(),
        codex_command: codex_bin()?.display().to_string(),
        roots: vec![format!("test={}", root.display())],
        env: codex
            .env()
            .into_iter()
            .chain([("RUST_LOG".to_owned(), "warn".to_owned())])
            .collect(),
    };
    let _center = CenterProcess::start(&opts).await?;

    // Bind a topic by the Telegram flow (flood limits still off: setup is not measured).
    let thread = tg
        .create_topic(&alice, chat, "brisk")?
        .thread_id
        .unwrap_or_default();
    let in_topic = move |m: &BotMessage| m.chat_id == chat && m.thread_id == Some(thread);
    tg.send_text(&alice, chat, Some(thread), "echo: ready")?;
    let press = |m: &BotMessage, label: &str| -> anyhow::Result<()> {
        let b = m
            .buttons()
            .into_iter()
            .find(|b| b.text.starts_with(label))
            .ok_or_else(|| anyhow::anyhow!("no button {label}"))?;
        tg.press_button(
            &alice,
            chat,
            m.message_id,
            b.callback_data.as_deref().unwrap_or_default(),
        )?;
        Ok(())
    };
    let menu = tg
        .wait_for_message("browser", WAIT, |m| {
            in_topic(m) && m.text().contains("Choose a folder")
        })
        .await?;
    press(&menu, "📁 project")?;
    let id = menu.message_id;
    let menu = tg
        .wait_for_message("listed", WAIT, |m| {
            in_topic(m) && m.message_id == id && m.text().contains("/project")
        })
        .await?;
    press(&menu, "✅ Use this folder")?;
    tg.wait_for_message("first answer", WAIT, |m| in_topic(m) && m.text() == "ready")
        .await?;
    tokio::time::sleep(Duration::from_secs(3)).await;

    tg.set_flood_limits(Some(FloodLimits::default()));
    let start_seq = tg.calls().last().map_or(0, |c| c.seq);
    let start_429 = tg.count_429();
    let mut input = Vec::new();
    let mut output = Vec::new();
    for n in 0..TURNS {
        let t0 = Instant::now();
        let text = format!("run: echo turn-{n}");
        let answer = format!("ran echo turn-{n}");
        let before = model.request_count();
        tg.send_text(&alice, chat, Some(thread), &text)?;
        model.wait_for_user_text(&text, WAIT).await?;
        input.push(t0.elapsed());
        // The command ran; Codex's second model call gets the final answer at once.
        model.wait_for_requests(before + 2, WAIT).await?;
        let finished = Instant::now();
        tg.wait_for_message("answer", WAIT, |m| in_topic(m) && m.text() == answer)
            .await?;
        output.push(finished.elapsed());
        let next = t0 + PACE;
        tokio::time::sleep_until(next.into()).await;
    }
    // Let the last turn's edits settle before counting.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let (calls, by_method) = traffic(&tg, start_seq);
    let got_429 = tg.count_429() - start_429;

    // A message sent while Telegram holds the chat under a 15 s 429.
    tg.force_retry_after_in(chat, 1, 15);
    tg.send_text(&alice, chat, Some(thread), "echo: poke the chat")?; // draws the 429
    tokio::time::sleep(Duration::from_millis(500)).await;
    let t0 = Instant::now();
    tg.send_text(&alice, chat, Some(thread), "echo: while held")?;
    model.wait_for_user_text("echo: while held", WAIT).await?;
    let held_input = t0.elapsed();

    println!(
        "brisk_chat: {TURNS} turns {}s apart in a forum group under Telegram's limits (run: echo …)",
        PACE.as_secs()
    );
    println!(
        "  input  (message → Codex's model request): p50 {:>7.1} ms  p90 {:>7.1} ms  p99 {:>7.1} ms",
        pct(&input, 0.5),
        pct(&input, 0.9),
        pct(&input, 0.99)
    );
    println!(
        "  output (Codex's last reply → answer accepted): p50 {:>7.1} ms  p90 {:>7.1} ms  p99 {:>7.1} ms",
        pct(&output, 0.5),
        pct(&output, 0.9),
        pct(&output, 0.99)
    );
    println!(
        "  Bot API calls per turn: {:.2} ({})",
        calls as f64 / TURNS as f64,
        by_method
            .iter()
            .map(|(m, n)| format!("{m} {:.2}", *n as f64 / TURNS as f64))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!("  429s: {got_429}");
    println!(
        "  input while the chat is under a 15 s 429: {:.1} ms",
        held_input.as_secs_f64() * 1e3
    );
    Ok(())
}
