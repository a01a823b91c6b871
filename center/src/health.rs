//! Each machine's health, for the people who run the fleet: `/health` (one block per node:
//! online or not, heartbeat age, RAM, swap, disk per root, load, windows, delivery lag, Codex
//! version and login), the same data in `center status --json`, alerts to the allowed users when
//! a value crosses its `[alerts]` threshold and when it recovers ([`watch`]), and the check of
//! the bot's own rights at start ([`rights`]). The same pass over heartbeats offers Codex
//! upgrades ([`crate::codex_upgrade`]).
//!
//! Why the owners' private chats by default: an alert is about a machine, not about any one
//! topic, and the allowed users are the people who can fix it (as for a topic whose window went
//! away). A team can move them into one ops topic instead ([`destination`]).
//! Everything here reads what the nodes already send in their heartbeats; nothing asks a node.

mod alerts;
mod destination;
pub mod rights;
mod view;
mod watch;

use std::{sync::Arc, time::Instant};

use tokio_util::sync::CancellationToken;

use crate::{app::App, store::Surface};

pub use alerts::AlertsConfig;
pub(crate) use destination::send_with_keyboard;
use view::NodeHealth;

/// Room under Telegram's 4096-character limit for one `/health` message.
const MESSAGE_CHARS: usize = 3500;

/// Starts the alert task and the check of the bot's rights (both end with `token`).
pub fn spawn(app: Arc<App>, token: CancellationToken) {
    let checking = app.clone();
    tokio::spawn(async move { rights::check_at_start(&checking).await });
    let stop = token.clone();
    shared::shutdown::supervise("health watch", token, move || {
        watch::run(app.clone(), stop.clone())
    });
}

/// Every node the center knows: connected ones and enrolled, not revoked ones, sorted.
pub(crate) fn node_names(app: &App) -> Vec<String> {
    let mut names = app.node_names();
    for n in app.store.nodes().unwrap_or_default() {
        if !n.revoked && !names.contains(&n.name) {
            names.push(n.name);
        }
    }
    names.sort();
    names
}

/// What the center knows of node `name` now.
fn snapshot(app: &App, name: &str) -> NodeHealth {
    let conn = app.node(name);
    let heartbeat = conn.as_ref().and_then(|c| {
        let beat = c.heartbeats().borrow().clone();
        beat.map(|(at, hb)| (Instant::now().saturating_duration_since(at), hb))
    });
    NodeHealth {
        name: name.to_owned(),
        online: conn.is_some_and(|c| c.online()),
        heartbeat,
    }
}

/// The health fields of node `name` for `center status --json` (null before a heartbeat).
pub(crate) fn status_json(app: &App, name: &str) -> serde_json::Value {
    view::json(&snapshot(app, name))
}

/// `/health`: one block per node, split into messages below Telegram's limit.
pub(crate) async fn command(app: &App, surface: Surface, args: &str, msg_id: i32) {
    let args = args.trim();
    if let Some(rest) = args.strip_prefix("alerts") {
        let answer = destination::command(app, surface, rest.trim());
        app.notice(surface, &answer, Some(msg_id));
        return;
    }
    if !args.is_empty() {
        app.notice(
            surface,
            "Usage: /health, or /health alerts [here|private] to see or move where alerts go.",
            Some(msg_id),
        );
        return;
    }
    let blocks: Vec<String> = node_names(app)
        .iter()
        .map(|name| view::render(&snapshot(app, name)))
        .collect();
    if blocks.is_empty() {
        app.notice(
            surface,
            "No machines yet: the center runs without an embedded node and no node is enrolled.",
            Some(msg_id),
        );
        return;
    }
    for text in pack(&blocks, MESSAGE_CHARS) {
        app.notice(surface, &text, Some(msg_id));
    }
}

/// Joins blocks with blank lines into messages of at most `limit` characters (a longer block
/// goes alone).
fn pack(blocks: &[String], limit: usize) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for b in blocks {
        match out.last_mut() {
            Some(last) if last.chars().count() + 2 + b.chars().count() <= limit => {
                last.push_str("\n\n");
                last.push_str(b);
            }
            _ => out.push(b.clone()),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_are_packed_below_the_limit() {
        let blocks: Vec<String> = ["aaaa", "bbbb", "cccc"].map(String::from).into();
        assert_eq!(pack(&blocks, 10), ["aaaa\n\nbbbb", "cccc"]);
        assert_eq!(pack(&blocks, 100), ["aaaa\n\nbbbb\n\ncccc"]);
        assert_eq!(pack(&blocks, 2), ["aaaa", "bbbb", "cccc"]);
    }
}
