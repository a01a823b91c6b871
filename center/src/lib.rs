//! The Codex Fleet center: owns the Telegram bot, the users, the routing state (topic ↔ node ↔
//! window ↔ Codex session) and delivery. In single-machine mode it embeds an agent-node and
//! talks to it through the same protocol a remote node speaks.
//!
//! [`run`] starts everything: the state store, the embedded node, event delivery, and polling.

mod accounts;
mod app;
mod backfill;
mod cleanup;
mod codex_upgrade;
mod commands;
pub mod config;
pub mod control;
mod deliver;
mod desk_topics;
mod fleet;
mod flows;
mod heal;
pub mod health;
mod held;
mod inbox;
mod input;
mod jobs;
pub mod media;
mod node_back;
pub mod nodes;
pub mod operator;
mod pending;
mod retry;
mod router;
pub mod store;
pub mod telegram;
mod text;
mod toolbar;
mod topic_state;
mod topics;
mod typed;
pub mod update;
mod update_check;
mod upgrade;
mod verbose;
mod worktree;

use std::sync::Arc;

use anyhow::Context;
use tokio_util::sync::CancellationToken;

use crate::{
    app::App,
    config::CenterConfig,
    store::Store,
    telegram::{api::Tg, outbox::Outbox},
};

/// How long a stopping center waits for messages in flight (systemd's stop timeout is longer).
const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(10);

/// Capacity of the queue from nodes to delivery.
const INBOUND_QUEUE: usize = 4096;

/// Runs the center until `token` is cancelled.
pub async fn run(cfg: CenterConfig, token: CancellationToken) -> anyhow::Result<()> {
    shared::tls::install_crypto_provider();
    std::fs::create_dir_all(&cfg.state_dir)
        .with_context(|| format!("creating the state directory {}", cfg.state_dir.display()))?;
    let store =
        Store::open(&cfg.state_dir.join("center.db")).context("opening the state database")?;
    let audit = telegram::audit::Audit::open(&cfg.state_dir.join("audit.jsonl"))
        .context("opening the delivery audit")?;
    let tg = Tg::new(cfg.token.expose(), &cfg.api_url)
        .context("setting up the Bot API client")?
        .with_audit(audit);
    // The outbox outlives the rest at shutdown: it stops only after the sends in flight went out
    // (or the grace period ended).
    let outbox_token = CancellationToken::new();
    let outbox = Outbox::new(tg.clone(), outbox_token.clone());
    if let Err(err) = tg.set_commands(&telegram::command::Command::menu()).await {
        tracing::warn!(error = %err, "setting the command menu failed");
    }
    let username = match tg.username().await {
        Ok(name) => Some(name),
        Err(err) => {
            tracing::warn!(error = %err, "getMe failed; commands addressed to any bot are taken as ours");
            None
        }
    };
    let cursors = store
        .cursors(nodes::LOCAL)
        .context("reading acked positions")?;
    let node_cfg = cfg.node.clone();
    let remote = cfg.remote_nodes.clone();
    let app = App::new(cfg, store, outbox)?;
    if let Some(name) = username {
        app.set_username(name);
    }
    app.start_jobs();
    app.resume_held();
    health::spawn(app.clone(), token.clone());
    desk_topics::spawn(app.clone(), token.clone());
    update_check::spawn(app.clone(), token.clone());
    if let Err(err) = control::serve(app.clone(), token.clone()) {
        tracing::warn!(error = %err, "no control socket; `center status/input/send` will not reach this center");
    }
    let (inbound_tx, inbound_rx) = tokio::sync::mpsc::channel(INBOUND_QUEUE);
    deliver::spawn(app.clone(), inbound_rx);
    if app.cfg.embedded_node {
        let local = nodes::start_embedded(node_cfg, cursors, inbound_tx.clone(), token.clone())
            .await
            .context("starting the embedded node")?;
        app.add_node(local);
    } else {
        // The hardened layout: no Codex window runs as this process's user.
        tracing::info!("no embedded node: Codex runs only on enrolled nodes");
        println!("center: no embedded node (Codex runs only on enrolled nodes)");
    }
    for (name, endpoint) in &remote {
        app.store
            .put_node(name, endpoint, "")
            .context("saving a node")?;
    }
    let pki = nodes::pki::CenterPki::load_or_create(&app.cfg.state_dir)
        .context("setting up the fleet CA")?;
    app.start_fleet(app::Fleet {
        pki,
        inbound: inbound_tx.clone(),
        token: token.clone(),
    });
    if let Some(addr) = app.cfg.listen {
        let bound =
            nodes::listener::serve_links(app.clone(), addr, inbound_tx.clone(), token.clone())
                .await
                .context("listening for nodes")?;
        println!("center: nodes dial in at {bound}");
    }
    if let Some(addr) = app.cfg.enroll_listen {
        let bound = nodes::listener::serve_enrollment(app.clone(), addr, token.clone())
            .await
            .context("listening for node enrollment")?;
        println!("center: enrollment at {bound}");
    }
    // Updates a stopped process accepted but did not finish, before any new one.
    app.replay_inbox();
    tracing::info!("center started");
    println!("center: polling Telegram");
    telegram::poll::run(Arc::clone(&app), token.clone()).await;
    // Stopping: no new updates. Input being typed into Codex now is finished (a kill would leave
    // its update unfinished, to be typed again at the next start); answers already on their way
    // still go out.
    if !app.tasks.drain(SHUTDOWN_GRACE).await {
        tracing::warn!("input still being typed at shutdown; it is replayed at the next start");
    }
    if tokio::time::timeout(SHUTDOWN_GRACE, app.outbox.sent_all())
        .await
        .is_err()
    {
        tracing::warn!(
            "messages still unsent at shutdown; their events stay unacked and are replayed at the next start"
        );
    }
    outbox_token.cancel();
    Ok(())
}
