//! `/cleanup`: the fleet's loose ends in one message, each with a button that fixes it. Someone
//! running a dozen topics on three machines collects two kinds: topics bound to a window that is
//! gone (the machine rebooted, the window was closed at the desk), and windows that no topic
//! holds (left running after `/unbind`, or started at the desk) — each an idle Codex holding
//! memory. Finding them by hand means `/status` in every topic and `tmux ls` on every machine.
//!
//! Only connected machines are asked; the topics of a machine that is offline are listed as
//! such and offered nothing, since nobody can tell whether their windows still run.
//!
//! The buttons carry what to fix, not a list index, so they outlive the message and a restart;
//! and every press checks again before acting — the state may have changed since (a topic
//! healed its window, another topic attached the window) and then the answer is "already
//! fixed". A forged press can therefore do no more than the listing itself would offer: unbind
//! a topic whose window is gone, or close a window no topic holds. After each press the message
//! is redrawn with the fleet as it is now.

use std::collections::BTreeMap;

use proto::v1::{self, reply::Result as R, request::Op};

use crate::{
    app::{App, CALL_TIMEOUT},
    nodes::CallError,
    store::STATE_UNREADABLE,
    store::{Binding, Surface},
    telegram::{
        api::Keyboard,
        callback::{Callback, CleanupFix},
        outbox::{Class, Edit, Send},
        render::escape_html,
    },
};

/// Items listed (and buttons shown) per kind; more would overflow one message.
const MAX_ITEMS: usize = 15;

/// What one machine said about its windows.
#[derive(Debug, Clone)]
enum Machine {
    Listed(Vec<v1::SessionInfo>),
    Offline,
    /// Online, but the listing failed.
    Unanswered(String),
}

/// Why a bound topic's window counts as gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Gone {
    /// The machine knows the window, but Codex exited in it (or the window vanished since).
    Exited,
    /// The machine does not know the window at all.
    Unknown,
}

/// The fleet's loose ends.
#[derive(Debug, Default)]
struct Findings {
    /// Bound topics whose window is gone.
    gone: Vec<(Binding, Gone)>,
    /// Live windows no topic holds: (machine, window).
    unheld: Vec<(String, v1::SessionInfo)>,
    /// Bound topics that could not be checked: (binding, why).
    unchecked: Vec<(Binding, String)>,
}

/// `/cleanup`.
pub(crate) async fn command(app: &App, surface: Surface, msg_id: i32) {
    let Some(findings) = survey(app).await else {
        app.notice(surface, STATE_UNREADABLE, Some(msg_id));
        return;
    };
    let (html, keyboard) = render(&findings, surface, shared::clock::now_unix_ms());
    drop(app.outbox.send(Send {
        surface,
        plain: html.clone(),
        html,
        keyboard: (!keyboard.is_empty()).then_some(keyboard),
        reply_to: Some(msg_id),
        class: Class::Message,
    }));
}

/// A `/cleanup` button pressed in `surface` on message `message_id`; returns the answer.
pub(crate) async fn fix(
    app: &App,
    surface: Surface,
    fix: CleanupFix,
    message_id: Option<i32>,
) -> String {
    let answer = match fix {
        CleanupFix::Unbind { chat_id, thread_id } => {
            unbind(app, Surface { chat_id, thread_id }).await
        }
        CleanupFix::Close { session } => close(app, &session).await,
    };
    // The listing shows the fleet as it is now, whatever the press did.
    if let (Some(message_id), Some(findings)) = (message_id, survey(app).await) {
        let (html, keyboard) = render(&findings, surface, shared::clock::now_unix_ms());
        drop(app.outbox.edit(Edit {
            chat_id: surface.chat_id,
            message_id,
            plain: html.clone(),
            html,
            keyboard: Some(keyboard),
            status_of: None,
        }));
    }
    answer
}

/// Unbinds `target` if its window is still gone, and tells that topic.
async fn unbind(app: &App, target: Surface) -> String {
    let b = match app.binding(target) {
        Ok(Some(b)) => b,
        Ok(None) => return "Already fixed: that topic is not bound any more.".into(),
        Err(_) => return STATE_UNREADABLE.into(),
    };
    match windows_of(app, &b.node).await {
        Machine::Listed(windows) => {
            if windows
                .iter()
                .any(|w| w.alive && w.session_id == b.session_id)
            {
                return "Already fixed: that topic's window is running again.".into();
            }
        }
        Machine::Offline => {
            return format!(
                "{} is offline: whether the window is gone cannot be checked now.",
                b.node
            );
        }
        Machine::Unanswered(err) => return format!("{} did not answer: {err}", b.node),
    }
    match app.store.remove_binding(target) {
        Ok(Some(removed)) if removed.session_id == b.session_id => {}
        // Healed or rebound between the check and now: that binding is not ours to remove.
        Ok(Some(newer)) => {
            if let Err(err) = app.store.put_binding(&newer) {
                tracing::error!(error = %err, "restoring a binding failed");
            }
            return "Already fixed: that topic has a new window.".into();
        }
        Ok(None) => return "Already fixed: that topic is not bound any more.".into(),
        Err(err) => {
            tracing::error!(error = %err, "removing a binding failed");
            return STATE_UNREADABLE.into();
        }
    }
    let _ = app.store.clear_status(target);
    app.notice(
        target,
        "Unbound by /cleanup: this topic's Codex window was gone. Send a message or /bind to start a session here; /resume brings the conversation back.",
        None,
    );
    format!("Unbound {}.", topic_name(target, target))
}

/// Closes the window of `session` if it is still open and no topic holds it.
async fn close(app: &App, session: &str) -> String {
    let Ok(bindings) = app.store.bindings() else {
        return STATE_UNREADABLE.into();
    };
    let mut found = Vec::new();
    for (node, machine) in machines(app, &[]).await {
        if let Machine::Listed(windows) = machine {
            found.extend(
                windows
                    .into_iter()
                    .filter(|w| w.alive && w.session_id == session)
                    .map(|w| (node.clone(), w)),
            );
        }
    }
    let (node, window) = match found.as_slice() {
        [] => return "Already fixed: that window is gone.".into(),
        [one] => one.clone(),
        _ => return "That window id is on several machines; close it with tmux there.".into(),
    };
    if bindings
        .iter()
        .any(|b| b.node == node && b.session_id == session)
    {
        return "Already fixed: a topic holds that window now.".into();
    }
    let Some(conn) = app.node(&node) else {
        return format!("{node} is offline.");
    };
    let op = Op::KillWindow(v1::KillWindow {
        session_id: session.to_owned(),
        ..Default::default()
    });
    match conn.call(op, CALL_TIMEOUT).await {
        Ok(_) => format!("Closed {} on {node}.", window.window_name),
        Err(CallError::Failed {
            code: v1::ErrorCode::NotFound,
            ..
        }) => "Already fixed: that window is gone.".into(),
        Err(err) => format!("Could not close the window: {err}"),
    }
}

/// Asks every machine the bindings mention or the center knows; `None` if the bindings cannot
/// be read.
async fn survey(app: &App) -> Option<Findings> {
    let bindings = match app.store.bindings() {
        Ok(b) => b,
        Err(err) => {
            tracing::error!(error = %err, "reading bindings failed");
            return None;
        }
    };
    let machines = machines(app, &bindings).await;
    Some(find(&bindings, &machines))
}

/// The windows of every known machine and of every machine a binding names, asked at once.
async fn machines(app: &App, bindings: &[Binding]) -> BTreeMap<String, Machine> {
    let mut names: Vec<String> = app.known_nodes().into_iter().map(|(n, _)| n).collect();
    names.extend(bindings.iter().map(|b| b.node.to_string()));
    names.sort();
    names.dedup();
    let asked = names.iter().map(|n| windows_of(app, n));
    let answers = futures::future::join_all(asked).await;
    names.into_iter().zip(answers).collect()
}

async fn windows_of(app: &App, node: &str) -> Machine {
    let Some(conn) = app.node(node).filter(|c| c.online()) else {
        return Machine::Offline;
    };
    match conn
        .call(Op::ListWindows(v1::ListWindows {}), CALL_TIMEOUT)
        .await
    {
        Ok(R::Windows(w)) => Machine::Listed(w.sessions),
        Ok(_) => Machine::Unanswered("unexpected answer".into()),
        Err(CallError::Offline) => Machine::Offline,
        Err(err) => Machine::Unanswered(err.to_string()),
    }
}

/// Pure: which topics lost their window, and which windows have no topic.
fn find(bindings: &[Binding], machines: &BTreeMap<String, Machine>) -> Findings {
    let mut out = Findings::default();
    for b in bindings {
        match machines.get(b.node.as_str()) {
            Some(Machine::Listed(windows)) => {
                match windows.iter().find(|w| w.session_id == b.session_id) {
                    Some(w) if w.alive => {}
                    Some(_) => out.gone.push((b.clone(), Gone::Exited)),
                    None => out.gone.push((b.clone(), Gone::Unknown)),
                }
            }
            Some(Machine::Unanswered(err)) => out.unchecked.push((b.clone(), err.clone())),
            Some(Machine::Offline) | None => {
                out.unchecked
                    .push((b.clone(), "machine offline".to_owned()));
            }
        }
    }
    for (node, machine) in machines {
        let Machine::Listed(windows) = machine else {
            continue;
        };
        for w in windows.iter().filter(|w| w.alive) {
            if !bindings
                .iter()
                .any(|b| &b.node == node && b.session_id == w.session_id)
            {
                out.unheld.push((node.clone(), w.clone()));
            }
        }
    }
    out
}

/// Pure: the listing (HTML) and its buttons, for a message in `here`.
fn render(f: &Findings, here: Surface, now_ms: i64) -> (String, Keyboard) {
    let mut html = "🧹 <b>Cleanup</b>\n".to_owned();
    let mut kb: Keyboard = Vec::new();
    if f.gone.is_empty() && f.unheld.is_empty() {
        html += "\nAll clean: every bound topic has its window, and every window has a topic.\n";
    }
    if !f.gone.is_empty() {
        html += "\n<b>Topics whose window is gone</b> (a message there would start it again; unbinding frees the topic):\n";
        for (b, why) in f.gone.iter().take(MAX_ITEMS) {
            let why = match why {
                Gone::Exited => "Codex exited",
                Gone::Unknown => "window gone",
            };
            html += &format!(
                "• {} · <code>{}</code> on {} — {why}\n",
                topic_html(b.surface, here),
                escape_html(&b.cwd),
                escape_html(&b.node)
            );
            let data = Callback::Cleanup(CleanupFix::Unbind {
                chat_id: b.surface.chat_id,
                thread_id: b.surface.thread_id,
            });
            kb.push(vec![(
                crate::text::ellipsize(
                    &format!(
                        "🔗 Unbind {} · {}",
                        topic_name(b.surface, here),
                        folder(&b.cwd)
                    ),
                    40,
                ),
                data.encode(),
            )]);
        }
        html += &more(f.gone.len());
    }
    if !f.unheld.is_empty() {
        html += "\n<b>Windows no topic holds</b> (closing one ends its Codex; the conversation stays resumable):\n";
        for (node, w) in f.unheld.iter().take(MAX_ITEMS) {
            let mut line = format!(
                "• {} on {} · <code>{}</code>",
                escape_html(&w.window_name),
                escape_html(node),
                escape_html(&w.cwd)
            );
            if !w.thread_id.is_empty() {
                line += &format!(" · thread <code>{}</code>", escape_html(&w.thread_id));
            }
            if w.created_unix_ms > 0 {
                line += &format!(" · started {}", ago(now_ms, w.created_unix_ms));
            }
            html += &line;
            html += "\n";
            let data = Callback::Cleanup(CleanupFix::Close {
                session: w.session_id.clone(),
            });
            kb.push(vec![(
                crate::text::ellipsize(&format!("✖ Close {} · {node}", w.window_name), 40),
                data.encode(),
            )]);
        }
        html += &more(f.unheld.len());
    }
    if !f.unchecked.is_empty() {
        html += "\n<b>Not checked</b>:\n";
        for (b, why) in f.unchecked.iter().take(MAX_ITEMS) {
            html += &format!(
                "• {} · <code>{}</code> on {} — {}\n",
                topic_html(b.surface, here),
                escape_html(&b.cwd),
                escape_html(&b.node),
                escape_html(why)
            );
        }
        html += &more(f.unchecked.len());
    }
    (html, kb)
}

fn more(n: usize) -> String {
    if n > MAX_ITEMS {
        format!(
            "… and {} more: fix these, then /cleanup again.\n",
            n - MAX_ITEMS
        )
    } else {
        String::new()
    }
}

/// How a user recognises a topic: its number (Telegram shows topics by name, which the center
/// is never told for existing topics), and its chat when it is not the one asking.
fn topic_name(s: Surface, here: Surface) -> String {
    let chat = if s.chat_id == here.chat_id {
        String::new()
    } else {
        format!(" in chat {}", s.chat_id)
    };
    match s.thread_id {
        0 if chat.is_empty() => "this chat".to_owned(),
        0 => format!("chat {}", s.chat_id),
        t => format!("topic {t}{chat}"),
    }
}

/// [`topic_name`] as a link to the topic, where Telegram has one (topics of supergroups).
fn topic_html(s: Surface, here: Surface) -> String {
    let name = escape_html(&topic_name(s, here));
    // Supergroup ids are -100 followed by the id links use.
    match (s.chat_id.to_string().strip_prefix("-100"), s.thread_id) {
        (Some(id), t) if t > 0 && !id.is_empty() => {
            format!("<a href=\"https://t.me/c/{id}/{t}\">{name}</a>")
        }
        _ => name,
    }
}

/// The last part of a path.
fn folder(cwd: &str) -> &str {
    cwd.rsplit('/').find(|s| !s.is_empty()).unwrap_or(cwd)
}

fn ago(now_ms: i64, then_ms: i64) -> String {
    let mins = (now_ms - then_ms).max(0) / 60_000;
    match mins {
        0 => "just now".into(),
        m if m < 60 => format!("{m} min ago"),
        m if m < 48 * 60 => format!("{} h ago", m / 60),
        m => format!("{} d ago", m / (24 * 60)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::InputMode;

    const HERE: Surface = Surface {
        chat_id: -1_001_234,
        thread_id: 1,
    };

    fn binding(thread_id: i32, node: &str, session: &str) -> Binding {
        Binding {
            surface: Surface {
                chat_id: HERE.chat_id,
                thread_id,
            },
            node: node.into(),
            session_id: session.into(),
            cwd: "/home/me/project".into(),
            mode: InputMode::Steer,
        }
    }

    fn window(session: &str, alive: bool) -> v1::SessionInfo {
        v1::SessionInfo {
            session_id: session.into(),
            cwd: "/home/me/other".into(),
            window_name: "codex-other".into(),
            thread_id: "019a-thread".into(),
            created_unix_ms: 1_000,
            alive,
            ..Default::default()
        }
    }

    #[test]
    fn finds_gone_windows_unheld_windows_and_offline_topics() {
        let bindings = [
            binding(2, "a", "s-live"),
            binding(3, "a", "s-exited"),
            binding(4, "a", "s-unknown"),
            binding(5, "b", "s-b"),
        ];
        let machines = BTreeMap::from([
            (
                "a".to_owned(),
                Machine::Listed(vec![
                    window("s-live", true),
                    window("s-exited", false),
                    window("s-free", true),
                    window("s-dead-free", false),
                ]),
            ),
            ("b".to_owned(), Machine::Offline),
        ]);
        let f = find(&bindings, &machines);
        let gone: Vec<(i32, Gone)> = f
            .gone
            .iter()
            .map(|(b, g)| (b.surface.thread_id, *g))
            .collect();
        assert_eq!(gone, [(3, Gone::Exited), (4, Gone::Unknown)]);
        let unheld: Vec<&str> = f
            .unheld
            .iter()
            .map(|(_, w)| w.session_id.as_str())
            .collect();
        assert_eq!(unheld, ["s-free"]);
        assert_eq!(f.unchecked.len(), 1);
        assert_eq!(f.unchecked[0].1, "machine offline");
    }

    #[test]
    fn a_window_held_on_another_machine_is_still_unheld_here() {
        let bindings = [binding(2, "b", "s1")];
        let machines = BTreeMap::from([
            ("a".to_owned(), Machine::Listed(vec![window("s1", true)])),
            ("b".to_owned(), Machine::Listed(vec![window("s1", true)])),
        ]);
        let f = find(&bindings, &machines);
        assert!(f.gone.is_empty());
        assert_eq!(f.unheld.len(), 1);
        assert_eq!(f.unheld[0].0, "a");
    }

    #[test]
    fn the_listing_has_one_button_per_fix_and_says_when_all_is_clean() {
        let (html, kb) = render(&Findings::default(), HERE, 0);
        assert!(html.contains("All clean"), "{html}");
        assert!(kb.is_empty());

        let f = Findings {
            gone: vec![(binding(42, "a", "s1"), Gone::Unknown)],
            unheld: vec![("a".into(), window("s2", true))],
            unchecked: vec![(binding(7, "b", "s3"), "machine offline".into())],
        };
        let (html, kb) = render(&f, HERE, 1_000 + 5 * 60_000);
        assert!(!html.contains("All clean"), "{html}");
        assert!(
            html.contains("<a href=\"https://t.me/c/1234/42\">topic 42</a>"),
            "{html}"
        );
        assert!(html.contains("window gone"), "{html}");
        assert!(
            html.contains("codex-other on a · <code>/home/me/other</code> · thread <code>019a-thread</code> · started 5 min ago"),
            "{html}"
        );
        assert!(
            html.contains("topic 7</a> · <code>/home/me/project</code> on b — machine offline"),
            "{html}"
        );
        let buttons: Vec<(&str, Option<Callback>)> = kb
            .iter()
            .flatten()
            .map(|(label, data)| (label.as_str(), Callback::decode(data)))
            .collect();
        assert_eq!(
            buttons,
            [
                (
                    "🔗 Unbind topic 42 · project",
                    Some(Callback::Cleanup(CleanupFix::Unbind {
                        chat_id: HERE.chat_id,
                        thread_id: 42
                    }))
                ),
                (
                    "✖ Close codex-other · a",
                    Some(Callback::Cleanup(CleanupFix::Close {
                        session: "s2".into()
                    }))
                ),
            ]
        );
    }

    #[test]
    fn long_listings_are_cut_with_a_count() {
        let f = Findings {
            gone: (1..=20)
                .map(|i| (binding(i, "a", &format!("s{i}")), Gone::Exited))
                .collect(),
            ..Default::default()
        };
        let (html, kb) = render(&f, HERE, 0);
        assert_eq!(kb.len(), MAX_ITEMS);
        assert!(html.contains("… and 5 more"), "{html}");
    }

    #[test]
    fn topics_are_named_by_number_and_chat() {
        let other = Surface {
            chat_id: 55,
            thread_id: 0,
        };
        assert_eq!(topic_name(HERE, HERE), "topic 1");
        assert_eq!(topic_name(other, HERE), "chat 55");
        assert_eq!(topic_name(other, other), "this chat");
        let elsewhere = Surface {
            chat_id: 55,
            thread_id: 9,
        };
        assert_eq!(topic_name(elsewhere, HERE), "topic 9 in chat 55");
        assert_eq!(topic_html(elsewhere, HERE), "topic 9 in chat 55");
    }

    #[test]
    fn ages_read_naturally() {
        assert_eq!(ago(60_000, 0), "1 min ago");
        assert_eq!(ago(0, 0), "just now");
        assert_eq!(ago(3 * 3_600_000, 0), "3 h ago");
        assert_eq!(ago(3 * 86_400_000, 0), "3 d ago");
        assert_eq!(ago(0, 5), "just now");
    }
}
