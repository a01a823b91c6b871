//! Topics whose window runs in a git worktree the node made for it (🌿 in the bind menu): the
//! topic is renamed after the branch, and `/kill` asks what to do with the worktree — remove it
//! too (offered only when it is clean) or keep it. A dirty worktree is never offered for
//! removal: the window is closed, the worktree kept, and the topic told which changes keep it.
//!
//! The node remembers which worktrees it made (see agent-node's `worktree` module), so this
//! works after a restart of either side; the center keeps nothing of its own.

use std::sync::Arc;

use proto::v1::{self, reply::Result as R, request::Op};

use crate::{
    app::App,
    nodes::CallError,
    store::{Binding, Surface},
    telegram::{
        callback::{Callback, EXPIRED, WorktreeAction},
        outbox::{Class, Edit, Send},
        render::escape_html,
    },
};

/// The bind message's line about a new worktree.
pub(crate) fn bound_line(w: &v1::Worktree) -> String {
    format!(
        "🌿 Worktree <code>{}</code> on branch <code>{}</code> (of <code>{}</code>).",
        escape_html(&w.path),
        escape_html(&w.branch),
        escape_html(&w.repo)
    )
}

/// Renames a forum topic after its worktree's branch (not awaited; a chat without topics, or a
/// bot without the right to manage topics, keeps its name: the bind message names the branch).
pub(crate) fn label_topic(app: &App, surface: Surface, w: &v1::Worktree) {
    if surface.thread_id == 0 {
        return;
    }
    let tg = app.outbox.tg().clone();
    let name = format!("🌿 {}", w.branch);
    tokio::spawn(async move {
        if let Err(err) = tg
            .rename_topic(surface.chat_id, surface.thread_id, &name)
            .await
        {
            tracing::info!(error = %err, chat.id = surface.chat_id, "could not rename a worktree topic");
        }
    });
}

/// `/kill` in a bound topic: when the window runs in a worktree the node made, handles the
/// command here (a question when the worktree is clean, a kill that keeps it when not) and
/// returns true; false leaves the plain `/kill` to the caller.
pub(crate) async fn kill(app: &Arc<App>, surface: Surface, b: &Binding, msg_id: i32) -> bool {
    let op = Op::WorktreeStatus(v1::WorktreeStatus {
        session_id: b.session_id.to_string(),
    });
    // Not found, a node older than worktrees, offline: the plain /kill decides.
    let Ok(R::Worktree(state)) = app.call(b, op).await else {
        return false;
    };
    let Some(w) = state.worktree.clone() else {
        return false;
    };
    if state.clean {
        let button = |label: &str, action| {
            let data = Callback::Worktree {
                session: b.session_id.to_string(),
                action,
            };
            (label.to_owned(), data.encode())
        };
        let html = format!(
            "This window runs in the worktree <code>{}</code> (branch <code>{}</code>), which has \
             no uncommitted changes. Close the window and remove the worktree too? Removing \
             deletes its folder, with any files git ignores there (build output, a local \
             <code>.env</code>); the branch stays unless it has nothing of its own.",
            escape_html(&w.path),
            escape_html(&w.branch)
        );
        drop(app.outbox.send(Send {
            surface,
            plain: html.clone(),
            html,
            keyboard: Some(vec![
                vec![button(
                    "🗑 Close and remove the worktree",
                    WorktreeAction::Remove,
                )],
                vec![
                    button("🪟 Close, keep the worktree", WorktreeAction::Keep),
                    button("✖ Cancel", WorktreeAction::Cancel),
                ],
            ]),
            reply_to: Some(msg_id),
            class: Class::Message,
        }));
        return true;
    }
    let text = match close(app, surface, b, false).await {
        Ok(_) => format!(
            "Window closed and topic unbound. {}",
            kept_text(&w, "it has uncommitted changes", &state)
        ),
        Err(err) => format!(
            "Could not close the window: {}",
            escape_html(&err.to_string())
        ),
    };
    app.say(surface, text, Some(msg_id));
    true
}

/// A button of the `/kill` question; returns the toast.
pub(crate) async fn press(
    app: &Arc<App>,
    surface: Surface,
    session: &str,
    action: WorktreeAction,
    message_id: Option<i32>,
) -> String {
    let binding = match app.binding(surface) {
        Ok(Some(b)) if b.session_id == session => b,
        Ok(_) => return EXPIRED.into(),
        Err(_) => return crate::store::STATE_UNREADABLE.into(),
    };
    let edit = |html: String| {
        if let Some(id) = message_id {
            drop(app.outbox.edit(Edit {
                chat_id: surface.chat_id,
                message_id: id,
                plain: html.clone(),
                html,
                keyboard: None,
                status_of: None,
            }));
        }
    };
    if action == WorktreeAction::Cancel {
        edit("Cancelled: the window keeps running.".into());
        return "Cancelled.".into();
    }
    let remove = action == WorktreeAction::Remove;
    match close(app, surface, &binding, remove).await {
        Ok(Some(state)) => {
            let w = state.worktree.clone().unwrap_or_default();
            let outcome = if state.removed {
                let branch = if state.branch_deleted {
                    format!("branch <code>{}</code> deleted", escape_html(&w.branch))
                } else {
                    format!(
                        "branch <code>{}</code> kept: it has commits of its own",
                        escape_html(&w.branch)
                    )
                };
                format!(
                    "🗑 Worktree <code>{}</code> removed ({branch}).",
                    escape_html(&w.path)
                )
            } else {
                kept_text(&w, &state.kept_because, &state)
            };
            edit(format!("Window closed and topic unbound. {outcome}"));
            "Window closed.".into()
        }
        Ok(None) => {
            let kept = if remove {
                " This machine did not remove the worktree (it may need an update)."
            } else {
                " The worktree was kept."
            };
            edit(format!("Window closed and topic unbound.{kept}"));
            "Window closed.".into()
        }
        Err(err) => format!("Could not close the window: {err}"),
    }
}

/// Kills the binding's window (removing its worktree if asked) and unbinds the topic; the
/// worktree's state when the node reported it.
async fn close(
    app: &App,
    surface: Surface,
    b: &Binding,
    remove_worktree: bool,
) -> Result<Option<v1::WorktreeState>, CallError> {
    let op = Op::KillWindow(v1::KillWindow {
        session_id: b.session_id.to_string(),
        remove_worktree,
    });
    let state = match app.call(b, op).await {
        Ok(R::Worktree(state)) => Some(state),
        Ok(_)
        | Err(CallError::Failed {
            code: v1::ErrorCode::NotFound,
            ..
        }) => None,
        Err(err) => return Err(err),
    };
    let _ = app.store.remove_binding(surface);
    let _ = app.store.clear_status(surface);
    Ok(state)
}

/// Why a worktree stays, with the changes that keep it (HTML).
fn kept_text(w: &v1::Worktree, because: &str, state: &v1::WorktreeState) -> String {
    let mut text = format!(
        "🌿 The worktree <code>{}</code> (branch <code>{}</code>) was kept: {}.",
        escape_html(&w.path),
        escape_html(&w.branch),
        escape_html(because)
    );
    if !state.changes.is_empty() {
        text += &format!("\n<pre>{}</pre>", escape_html(&state.changes.join("\n")));
        let more = (state.change_count as usize).saturating_sub(state.changes.len());
        if more > 0 {
            text += &format!("\n… and {more} more.");
        }
        text += &format!(
            "\nCommit or discard them, then <code>git worktree remove {}</code>.",
            escape_html(&w.path)
        );
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kept_worktree_says_why_and_lists_its_changes() {
        let w = v1::Worktree {
            path: "/r/p.worktrees/x".into(),
            branch: "codex/x".into(),
            repo: "/r/p".into(),
        };
        let state = v1::WorktreeState {
            changes: vec!["?? a<b>.txt".into()],
            change_count: 3,
            ..Default::default()
        };
        let text = kept_text(&w, "it has uncommitted changes", &state);
        assert!(text.contains("was kept: it has uncommitted changes."));
        assert!(text.contains("a&lt;b&gt;.txt"));
        assert!(text.contains("… and 2 more."));
        assert!(text.contains("git worktree remove /r/p.worktrees/x"));
        let clean = kept_text(
            &w,
            "another Codex window still runs in it",
            &Default::default(),
        );
        assert!(!clean.contains("<pre>"));
    }
}
