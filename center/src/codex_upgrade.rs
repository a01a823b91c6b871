//! Codex CLI upgrades across the fleet. Each node asks at most daily for the newest Codex
//! release and says so in its heartbeat (`agent-node`'s `codex_upgrade`); when that release is
//! newer than the one the node runs, the people who run the fleet get one message per node and
//! release where alerts go (an ops topic or the allowed users' private chats), with an
//! "Upgrade" button. A press asks the node to install it; the node refuses while a window is
//! busy or asking, and the message then keeps its button for a later try.
//!
//! Why a button and not an automatic install: an install changes the Codex every new window
//! and job starts with, and the operator picks the moment. Why once per node and release: the
//! offer is remembered in the store, so a restart or a node reconnecting does not repeat it.

use std::{
    collections::{BTreeSet, HashMap},
    sync::{Arc, LazyLock, Mutex},
    time::Duration,
};

use proto::v1::{self, reply::Result as R, request::Op};
use shared::sync::LockExt;

use crate::{
    app::App,
    nodes::CallError,
    store::Surface,
    telegram::{
        api::Keyboard,
        callback::{Callback, MAX_DATA},
        outbox::Edit,
        render::escape_html,
    },
};

/// How long an install may take (npm downloads Codex's native binary).
const INSTALL_TIMEOUT: Duration = Duration::from_secs(15 * 60);
/// Offers are settings of chat 0 (center-wide), one key per node.
const CENTER_WIDE: i64 = 0;
const KEY_PREFIX: &str = "codex_upgrade.offered.";

/// Nodes with an install under way (a second press waits for the first to finish).
static UNDER_WAY: LazyLock<Mutex<BTreeSet<String>>> = LazyLock::new(Mutex::default);

/// An upgrade to offer for one node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Offer {
    pub(crate) version: String,
    pub(crate) text: String,
}

/// The offer a node's Codex state calls for, if any.
pub(crate) fn offer(node: &str, codex: &v1::CodexHealth) -> Option<Offer> {
    let newer = codex.upgradable
        && !codex.version.is_empty()
        && shared::release::newer(&codex.latest_version, &codex.version);
    newer.then(|| Offer {
        version: codex.latest_version.clone(),
        text: format!(
            "⬆️ Codex {} is out; {node} runs {}.\nThe upgrade waits for no window there to be busy or asking. Running windows keep their Codex until they restart; new ones start with the new release.",
            codex.latest_version, codex.version
        ),
    })
}

fn button(node: &str, version: &str) -> Option<Keyboard> {
    let data = Callback::CodexUpgrade {
        node: node.to_owned(),
        version: version.to_owned(),
    }
    .encode();
    (data.len() <= MAX_DATA).then(|| vec![vec![(format!("⬆️ Upgrade Codex on {node}"), data)]])
}

/// Which releases were offered, per node (loaded from the store once, then kept in step).
#[derive(Debug, Default)]
pub(crate) struct Offers {
    offered: HashMap<String, String>,
    loaded: bool,
}

impl Offers {
    /// Looks at a node's latest heartbeat and offers its upgrade once.
    pub(crate) fn observe(&mut self, app: &Arc<App>, node: &str, hb: &v1::Heartbeat) {
        let Some(offer) = hb.codex.as_ref().and_then(|c| offer(node, c)) else {
            return;
        };
        if !self.loaded {
            match app.store.chat_settings_with_prefix(CENTER_WIDE, KEY_PREFIX) {
                Ok(rows) => {
                    self.offered = rows
                        .into_iter()
                        .map(|(k, v)| (k[KEY_PREFIX.len()..].to_owned(), v))
                        .collect();
                    self.loaded = true;
                }
                Err(err) => {
                    tracing::warn!(error = %err, "cannot read which Codex upgrades were offered");
                    return;
                }
            }
        }
        if self.offered.get(node) == Some(&offer.version) {
            return;
        }
        let key = format!("{KEY_PREFIX}{node}");
        if let Err(err) = app
            .store
            .set_chat_setting(CENTER_WIDE, &key, Some(&offer.version))
        {
            tracing::warn!(error = %err, "cannot record a Codex upgrade offer; not offering it");
            return;
        }
        self.offered.insert(node.to_owned(), offer.version.clone());
        tracing::info!(node, version = %offer.version, "offering a Codex upgrade");
        crate::health::send_with_keyboard(app, &offer.text, button(node, &offer.version));
    }
}

/// A press of "Upgrade Codex on `node`": installs `version` there and shows how it went in
/// the message. Returns the toast.
pub(crate) async fn press(
    app: &Arc<App>,
    surface: Surface,
    node: &str,
    version: &str,
    message_id: Option<i32>,
) -> String {
    let Some(conn) = app.node(node) else {
        return format!("{node} is not connected; try again when it is back.");
    };
    let running = conn
        .heartbeats()
        .borrow()
        .as_ref()
        .and_then(|(_, hb)| hb.codex.as_ref().map(|c| c.version.clone()))
        .unwrap_or_default();
    if !running.is_empty() && !shared::release::newer(version, &running) {
        return format!("Already done: {node} runs Codex {running}.");
    }
    if !UNDER_WAY.locked().insert(node.to_owned()) {
        return format!("An upgrade of Codex on {node} is already under way.");
    }
    let edit = {
        let app = app.clone();
        move |text: String, keyboard: Option<Keyboard>| {
            if let Some(message_id) = message_id {
                drop(app.outbox.edit(Edit {
                    chat_id: surface.chat_id,
                    message_id,
                    html: escape_html(&text),
                    plain: text,
                    keyboard,
                    status_of: None,
                }));
            }
        }
    };
    edit(format!("⏳ Installing Codex {version} on {node}…"), None);
    let toast = format!("Installing Codex {version} on {node}…");
    let (node, version) = (node.to_owned(), version.to_owned());
    tokio::spawn(async move {
        let op = Op::UpgradeCodex(v1::UpgradeCodex {
            version: version.clone(),
        });
        let answer = conn.call(op, INSTALL_TIMEOUT).await;
        UNDER_WAY.locked().remove(&node);
        let (mut text, again) = outcome(&node, &version, answer);
        if again {
            // A second refusal reads like the first; the time shows the press was heard.
            text.push_str(&format!(
                "\n(Tried at {}.)",
                time_of_day(shared::clock::now_unix_ms())
            ));
        }
        edit(text, again.then(|| button(&node, &version)).flatten());
    });
    toast
}

/// The message after an install: its text, and whether to offer the button again.
fn outcome(node: &str, version: &str, answer: Result<R, CallError>) -> (String, bool) {
    match answer {
        Ok(R::CodexUpgraded(up)) if up.new_version == version => (
            format!(
                "✓ Codex on {node}: {} → {}. New windows and jobs use it; running windows keep theirs until they restart.",
                shown(&up.previous_version),
                up.new_version
            ),
            false,
        ),
        Ok(R::CodexUpgraded(up)) => (
            format!(
                "⚠️ The install of Codex {version} on {node} finished, but Codex now reports {}.\n{}",
                shown(&up.new_version),
                up.output
            ),
            true,
        ),
        Ok(_) => (format!("✗ {node} gave an unexpected answer."), true),
        // A node from before this request reads it as a request without an operation.
        Err(CallError::Failed { message, .. }) if message == "empty request" => (
            format!(
                "✗ {node} runs an agent-node too old to upgrade Codex. Upgrade it first: /node upgrade {node}"
            ),
            false,
        ),
        Err(CallError::Failed {
            code: v1::ErrorCode::Blocked,
            message,
        }) => (format!("Not upgraded yet: {message}."), true),
        Err(CallError::Failed { message, .. }) => (format!("✗ Not upgraded: {message}"), true),
        Err(CallError::Offline) => (
            format!("✗ {node} went offline; whether Codex was upgraded is unknown (see /health)."),
            true,
        ),
        Err(CallError::Timeout) => (
            format!(
                "✗ {node} did not finish the install within {} minutes; see /health for the Codex it runs.",
                INSTALL_TIMEOUT.as_secs() / 60
            ),
            true,
        ),
    }
}

/// `20:11:37 UTC`.
fn time_of_day(unix_ms: i64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp(unix_ms / 1000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    format!("{:02}:{:02}:{:02} UTC", t.hour(), t.minute(), t.second())
}

fn shown(version: &str) -> &str {
    if version.is_empty() {
        "(unknown)"
    } else {
        version
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn codex(version: &str, latest: &str, upgradable: bool) -> v1::CodexHealth {
        v1::CodexHealth {
            version: version.into(),
            latest_version: latest.into(),
            upgradable,
            ..Default::default()
        }
    }

    #[test]
    fn only_a_newer_release_on_a_node_that_can_install_it_is_offered() {
        let o = offer("vps1", &codex("0.171.0", "0.172.0", true)).unwrap();
        assert_eq!(o.version, "0.172.0");
        assert!(
            o.text
                .starts_with("⬆️ Codex 0.172.0 is out; vps1 runs 0.171.0.")
        );
        assert_eq!(offer("vps1", &codex("0.171.0", "0.172.0", false)), None);
        assert_eq!(offer("vps1", &codex("0.172.0", "0.172.0", true)), None);
        assert_eq!(offer("vps1", &codex("0.173.0", "0.172.0", true)), None);
        assert_eq!(offer("vps1", &codex("", "0.172.0", true)), None);
        assert_eq!(offer("vps1", &codex("0.171.0", "", true)), None);
    }

    #[test]
    fn times_are_utc_to_the_second() {
        assert_eq!(time_of_day(1_764_792_697_000), "20:11:37 UTC");
    }

    #[test]
    fn the_button_fits_telegram_or_is_left_out() {
        assert!(button("vps1", "0.172.0").is_some());
        assert!(button(&"n".repeat(32), &"1".repeat(32)).is_none());
    }

    #[test]
    fn each_outcome_reads_well_and_a_refusal_keeps_the_button() {
        let done = outcome(
            "vps1",
            "0.172.0",
            Ok(R::CodexUpgraded(v1::CodexUpgraded {
                previous_version: "0.171.0".into(),
                new_version: "0.172.0".into(),
                output: String::new(),
            })),
        );
        assert!(
            done.0.starts_with("✓ Codex on vps1: 0.171.0 → 0.172.0."),
            "{}",
            done.0
        );
        assert!(!done.1);
        let busy = outcome(
            "vps1",
            "0.172.0",
            Err(CallError::Failed {
                code: v1::ErrorCode::Blocked,
                message: "Codex is in use (codex-web); try again when it is idle".into(),
            }),
        );
        assert_eq!(
            busy.0,
            "Not upgraded yet: Codex is in use (codex-web); try again when it is idle."
        );
        assert!(busy.1);
        let old = outcome(
            "vps1",
            "0.172.0",
            Err(CallError::Failed {
                code: v1::ErrorCode::InvalidArgument,
                message: "empty request".into(),
            }),
        );
        assert!(old.0.contains("/node upgrade vps1"), "{}", old.0);
        let odd = outcome(
            "vps1",
            "0.172.0",
            Ok(R::CodexUpgraded(v1::CodexUpgraded {
                previous_version: "0.171.0".into(),
                new_version: "0.171.0".into(),
                output: "up to date".into(),
            })),
        );
        assert!(odd.0.contains("now reports 0.171.0"), "{}", odd.0);
        assert!(odd.1);
    }
}
