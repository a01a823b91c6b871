//! Codex CLI upgrades from Telegram: the node finds a newer release (a stand-in for `npm view`),
//! the owner gets one offer with an "Upgrade" button, a press while a turn runs is refused and
//! keeps the button, and a press once Codex is idle installs the release (a stand-in for
//! `npm install`) and reports the version before and after. Codex itself is the real CLI behind
//! a wrapper whose `--version` answers from a file the stand-in installer writes.

use std::{os::unix::fs::PermissionsExt, path::Path, time::Duration};

use e2e::{codex::codex_bin, fake_telegram::BotMessage};

use crate::center::CenterEnv;

const WAIT: Duration = Duration::from_secs(60);
const NEWEST: &str = "9.9.9";

fn script(path: &Path, body: &str) {
    std::fs::write(path, format!("#!/bin/sh\n{body}")).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// Writes the wrapper, the stand-ins and a center config using them; returns the config.
fn tools(dir: &Path, installed: &str) -> std::path::PathBuf {
    let d = dir.display();
    std::fs::write(dir.join("version"), format!("{installed}\n")).unwrap();
    script(
        &dir.join("codex"),
        &format!(
            "if [ \"$1\" = --version ]; then echo \"codex-cli $(cat {d}/version)\"; exit 0; fi\nexec {} \"$@\"\n",
            codex_bin().unwrap().display()
        ),
    );
    script(
        &dir.join("latest"),
        &format!("echo asked >> {d}/latest.log\necho 'npm warn a warning'\necho {NEWEST}\n"),
    );
    script(
        &dir.join("install"),
        &format!(
            "echo \"$@\" >> {d}/install.log\necho \"$1\" > {d}/version\necho 'added 1 package in 2s'\n"
        ),
    );
    let config = dir.join("center.toml");
    std::fs::write(
        &config,
        format!(
            "[alerts]\nenabled = false\n[node.codex_upgrade]\nlatest_command = \"{d}/latest\"\ninstall_command = \"{d}/install {{version}}\"\n"
        ),
    )
    .unwrap();
    config
}

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// Presses the offer's button and waits for the outcome (the message edited past "⏳").
async fn press_upgrade(env: &CenterEnv, private: i64, offer: &BotMessage) -> BotMessage {
    let current = env
        .tg
        .bot_message(private, offer.message_id)
        .expect("the offer");
    let edits = current.history.len();
    let button = current
        .buttons()
        .into_iter()
        .find(|b| b.text.starts_with("⬆️ Upgrade Codex on local"))
        .unwrap_or_else(|| panic!("no upgrade button in {:?}", current.buttons()));
    env.tg
        .press_button(
            &env.alice,
            private,
            offer.message_id,
            button.callback_data.as_deref().unwrap(),
        )
        .unwrap();
    env.tg
        .wait_for_message("the upgrade's outcome", WAIT, |m| {
            m.chat_id == private
                && m.message_id == offer.message_id
                && m.history.len() > edits
                && !m.text().starts_with("⏳")
        })
        .await
        .unwrap()
}

/// Asks `/health` in `topic` until its answer contains `needle` (heartbeats come every few
/// seconds, and an answer reflects the latest).
async fn health_shows(env: &CenterEnv, topic: i64, needle: &str) {
    for attempt in 0.. {
        let asked = env
            .tg
            .send_text(&env.alice, env.chat, Some(topic), "/health")
            .unwrap()
            .message_id;
        let answer = env.message(topic, "health", |m| m.reply_to == asked).await;
        if answer.text().contains(needle) {
            return;
        }
        assert!(attempt < 30, "{needle:?} not in {}", answer.text());
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_newer_codex_is_offered_once_and_installed_only_when_codex_is_idle() {
    let dir = tempfile::tempdir().unwrap();
    let installed = e2e::codex::codex_bin_version().unwrap();
    let config = tools(dir.path(), &installed);
    let mut env = CenterEnv::start("codex-up").await;
    let private = env.tg.create_private_chat(&env.alice, false);
    env.opts.env.extend([
        ("CENTER_CONFIG".into(), config.display().to_string()),
        (
            "CODEX_FLEET_CODEX_COMMAND".into(),
            dir.path().join("codex").display().to_string(),
        ),
        // The harness turns upgrades off; here they follow the (writable) install.
        ("CODEX_FLEET_CODEX_UPGRADE".into(), "auto".into()),
    ]);
    env.restart_center().await;

    let offer = env
        .tg
        .wait_for_message("the offer", WAIT, |m| {
            m.chat_id == private && m.text().starts_with("⬆️")
        })
        .await
        .unwrap();
    assert!(
        offer.text().starts_with(&format!(
            "⬆️ Codex {NEWEST} is out; local runs {installed}."
        )),
        "{}",
        offer.text()
    );

    // A restart neither asks npm again (once a day) nor offers the same release again.
    env.restart_center().await;
    let topic = env.bound_topic("Upgrade", "hold: echo held").await;
    env.message(topic, "the held turn runs", |m| {
        m.text().starts_with("✓ Delivered")
    })
    .await;
    health_shows(
        &env,
        topic,
        &format!("Codex {installed} ({NEWEST} available)"),
    )
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let offers = env
        .tg
        .messages_in(private, None)
        .into_iter()
        .filter(|m| m.text().starts_with("⬆️"))
        .count();
    assert_eq!(offers, 1);
    assert_eq!(lines(&dir.path().join("latest.log")), ["asked"]);

    // A turn runs: nothing is installed and the button stays.
    let refused = press_upgrade(&env, private, &offer).await;
    assert!(
        refused
            .text()
            .starts_with("Not upgraded yet: Codex is in use (")
            && refused
                .text()
                .contains("try again when it is idle.\n(Tried at "),
        "{}",
        refused.text()
    );
    assert!(lines(&dir.path().join("install.log")).is_empty());

    // Idle again: the release is installed.
    env.model.release_held();
    env.message(topic, "the held turn's answer", |m| {
        m.text() == "ran echo held"
    })
    .await;
    let mut done = None;
    for _ in 0..30 {
        // A refusal names the second it was tried: the next one must differ to be an edit.
        tokio::time::sleep(Duration::from_millis(1100)).await;
        let outcome = press_upgrade(&env, private, &offer).await;
        if !outcome.text().starts_with("Not upgraded yet") {
            done = Some(outcome);
            break;
        }
    }
    let done = done.expect("Codex never went idle");
    assert!(
        done.text()
            .starts_with(&format!("✓ Codex on local: {installed} → {NEWEST}.")),
        "{}",
        done.text()
    );
    assert!(done.buttons().is_empty(), "{:?}", done.buttons());
    assert_eq!(lines(&dir.path().join("install.log")), [NEWEST]);
    // The node reports the new release at once.
    health_shows(&env, topic, &format!("Codex {NEWEST} ·")).await;
}
