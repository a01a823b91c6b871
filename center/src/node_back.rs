//! A machine coming back: the bound windows that closed while it was away (its tmux server or
//! the machine itself restarted) are announced in their topics right away, instead of the user
//! finding out from a message that heals the window (`crate::heal`) much later. The node marks
//! such windows exited without telling anyone, so the center has to look.
//!
//! Only on a return (the node was online before in this process): at a center's start nobody
//! knows what happened when, and each window is announced once, however often its node flaps.

use std::sync::Arc;

use proto::v1::{self, reply::Result as R, request::Op};
use shared::sync::LockExt;

use crate::{
    app::{App, CALL_TIMEOUT},
    store::Binding,
};

/// Called when `node` is online again; `was_online` is whether this process saw it online
/// before (else this is its first connection and there is nothing to compare with).
pub(crate) fn returned(app: &Arc<App>, node: &str, was_online: bool) {
    if !was_online {
        return;
    }
    let app = app.clone();
    let node = node.to_owned();
    tokio::spawn(async move { announce(&app, &node).await });
}

async fn announce(app: &Arc<App>, node: &str) {
    let Some(conn) = app.node(node) else { return };
    let Ok(bindings) = app.store.bindings() else {
        return;
    };
    let windows = match conn
        .call(Op::ListWindows(v1::ListWindows {}), CALL_TIMEOUT)
        .await
    {
        Ok(R::Windows(w)) => w.sessions,
        // Unknown: saying nothing beats announcing windows that may be fine.
        _ => return,
    };
    for b in closed_while_away(&bindings, node, &windows) {
        let fresh = app
            .announced_gone
            .locked()
            .insert((b.node.clone(), b.session_id.clone()));
        if fresh {
            app.notice(b.surface, &notice(node, b), None);
        }
    }
}

/// The bindings of `node` whose window is gone or no longer runs Codex.
fn closed_while_away<'a>(
    bindings: &'a [Binding],
    node: &str,
    windows: &[v1::SessionInfo],
) -> Vec<&'a Binding> {
    bindings
        .iter()
        .filter(|b| b.node == node)
        .filter(|b| {
            !windows
                .iter()
                .any(|w| w.session_id == b.session_id && w.alive)
        })
        .collect()
}

fn notice(node: &str, b: &Binding) -> String {
    format!(
        "🪦 The Codex window in {} closed while {node} was away; your next message brings it back.",
        b.cwd
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{InputMode, Surface};

    fn binding(topic: i32, node: &str, session: &str) -> Binding {
        Binding {
            surface: Surface {
                chat_id: -100,
                thread_id: topic,
            },
            node: node.into(),
            session_id: session.into(),
            cwd: "/p".into(),
            mode: InputMode::Steer,
        }
    }

    fn window(session: &str, alive: bool) -> v1::SessionInfo {
        v1::SessionInfo {
            session_id: session.into(),
            alive,
            ..Default::default()
        }
    }

    #[test]
    fn only_this_nodes_gone_or_exited_windows_are_announced() {
        let bindings = [
            binding(1, "a", "alive"),
            binding(2, "a", "exited"),
            binding(3, "a", "gone"),
            binding(4, "b", "elsewhere"),
        ];
        let windows = [window("alive", true), window("exited", false)];
        let topics: Vec<i32> = closed_while_away(&bindings, "a", &windows)
            .iter()
            .map(|b| b.surface.thread_id)
            .collect();
        assert_eq!(topics, [2, 3]);
    }

    #[test]
    fn the_notice_names_the_folder_and_the_machine() {
        let text = notice("gpu-box", &binding(1, "gpu-box", "s"));
        assert!(text.starts_with("🪦"), "{text}");
        assert!(text.contains("/p") && text.contains("gpu-box"), "{text}");
        assert!(text.contains("your next message brings it back"), "{text}");
    }
}
