//! A topic for each Codex started at the desk: nodes with `desk_topics = true` adopt a `codex`
//! someone runs in their tmux session (`SessionInfo.desk`); this task opens a forum topic for
//! each such window that no topic holds — named after its folder, in a forum group the bot is
//! owned in — and binds it there, the way the bind menu attaches an open window, so its answers
//! show up in the topic.
//!
//! Once per window: the windows that got (or could not get) a topic are kept in
//! `desk_topics.json` in the center's state dir, so `/unbind` or a restart never opens a second
//! one. When no owned group lets the bot open a topic (none is a forum, or the bot may not manage
//! topics), the allowed users are told once, in private; such a window can still be bound with
//! `/bind`. Windows the center created are never desk windows.

use std::{collections::BTreeSet, path::PathBuf, sync::Arc, time::Duration};

use proto::v1::{self, reply::Result as R, request::Op};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::{
    app::{App, CALL_TIMEOUT},
    store::{Binding, InputMode, Surface},
    telegram::{api::TgError, render::escape_html},
};

/// How often each connected node is asked for its windows.
const SCAN_INTERVAL: Duration = Duration::from_secs(2);

#[derive(Debug, Default, Serialize, Deserialize)]
struct Seen {
    /// (node, session) of every desk window that got a topic, or could not.
    windows: BTreeSet<(String, String)>,
    /// The owners were told that no topic could be opened.
    warned: bool,
}

impl Seen {
    fn file(app: &App) -> PathBuf {
        app.cfg.state_dir.join("desk_topics.json")
    }

    fn load(app: &App) -> Self {
        std::fs::read(Self::file(app))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    }

    fn save(&self, app: &App) {
        let file = Self::file(app);
        let tmp = file.with_extension("json.tmp");
        let written = serde_json::to_vec(self)
            .map_err(std::io::Error::other)
            .and_then(|b| std::fs::write(&tmp, b))
            .and_then(|()| std::fs::rename(&tmp, &file));
        if let Err(err) = written {
            tracing::warn!(error = %err, "saving the desk topics failed");
        }
    }
}

/// Starts the scan (it ends with `token`).
pub(crate) fn spawn(app: Arc<App>, token: CancellationToken) {
    let stop = token.clone();
    shared::shutdown::supervise("desk topics", token, move || run(app.clone(), stop.clone()));
}

/// Scans every [`SCAN_INTERVAL`] until `token` is cancelled.
async fn run(app: Arc<App>, token: CancellationToken) {
    let mut seen = Seen::load(&app);
    let mut tick = tokio::time::interval(SCAN_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = token.cancelled() => break,
            _ = tick.tick() => {}
        }
        for node in app.node_names() {
            scan(&app, &node, &mut seen).await;
        }
    }
}

/// Opens topics for the new desk windows of `node`.
async fn scan(app: &App, node: &str, seen: &mut Seen) {
    let Some(conn) = app.node(node).filter(|c| c.online()) else {
        return;
    };
    let Ok(R::Windows(w)) = conn
        .call(Op::ListWindows(v1::ListWindows {}), CALL_TIMEOUT)
        .await
    else {
        return;
    };
    for window in w.sessions.into_iter().filter(|s| s.desk && s.alive) {
        let key = (node.to_owned(), window.session_id.clone());
        if seen.windows.contains(&key) {
            continue;
        }
        // A store error is no "not held": the window waits for the next scan.
        let Ok(all) = app.store.bindings() else {
            continue;
        };
        let held = all
            .iter()
            .any(|b| b.node == node && b.session_id == window.session_id);
        if !held && !open_topic(app, node, &window, seen).await {
            // Telegram could not be reached: try again at the next scan.
            continue;
        }
        seen.windows.insert(key);
        seen.save(app);
    }
}

/// Opens a topic for `window` in the first owned group that allows it and binds it there.
/// False when that is undecided (Telegram unreachable, the store failing): the window is tried
/// again later.
async fn open_topic(app: &App, node: &str, window: &v1::SessionInfo, seen: &mut Seen) -> bool {
    let folder = std::path::Path::new(&window.cwd)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| window.cwd.clone());
    let name = format!("🖥 {folder}");
    let groups: Vec<i64> = app
        .store
        .owned_chats()
        .unwrap_or_default()
        .into_iter()
        .filter(|c| *c < 0)
        .collect();
    let mut refusal = String::from("the bot is in no group");
    for chat_id in groups {
        let thread_id = match app.outbox.tg().create_topic(chat_id, &name).await {
            Ok(t) => t,
            Err(TgError::Network(_) | TgError::Server(_) | TgError::RetryAfter(_)) => return false,
            Err(err) => {
                refusal = err.to_string();
                continue;
            }
        };
        let surface = Surface { chat_id, thread_id };
        let binding = Binding {
            surface,
            node: node.into(),
            session_id: window.session_id.clone().into(),
            cwd: window.cwd.clone(),
            mode: InputMode::Steer,
        };
        if let Err(err) = app.store.put_binding(&binding) {
            tracing::error!(error = %err, "saving a desk topic's binding failed");
            return false;
        }
        tracing::info!(session.id = %window.session_id, chat.id = chat_id, thread.id = thread_id, "desk window got a topic");
        app.say(
            surface,
            format!(
                "🖥 A Codex started at the desk in <code>{}</code> on {} (tmux window {}). This \
                 topic is bound to it: its answers show up here, and what you send is typed into \
                 it.",
                escape_html(&window.cwd),
                escape_html(node),
                escape_html(&window.window_name)
            ),
            None,
        );
        return true;
    }
    tracing::info!(session.id = %window.session_id, reason = %refusal, "no topic for a desk window");
    if seen.warned {
        return true;
    }
    seen.warned = true;
    let text = format!(
        "A Codex was started at the desk in {} on {node}, but no topic could be opened for it \
         ({refusal}). Desk windows get topics in a forum group where the bot is an admin allowed \
         to manage topics; until then, /bind in a topic attaches such a window. (Said once.)",
        window.cwd
    );
    app.tell_owners(&text);
    true
}
