//! Self-heal: a bound window whose Codex exited, or that vanished (the machine rebooted, the
//! tmux server was killed), comes back on the topic's next message. The topic keeps its
//! conversation: the node resumes the window's Codex thread in its folder in a new window, the
//! binding moves to it, the topic gets a one-line notice, and the message is typed there —
//! instead of "✗ Not delivered: the window is gone" and a user left to find `/kill` and
//! `/resume` (which is refused while bound).

use std::sync::Arc;

use proto::v1::{self, reply::Result as R, request::Op};

use crate::{
    app::{App, CALL_TIMEOUT},
    nodes::CallError,
    store::Binding,
};

/// Whether typing failed because the window cannot take input any more (and healing may help).
pub(crate) fn window_gone(err: &CallError) -> bool {
    matches!(
        err,
        CallError::Failed {
            code: v1::ErrorCode::WindowDead | v1::ErrorCode::NotFound,
            ..
        }
    )
}

impl App {
    /// Replaces the binding's dead or vanished window with a new one resuming the same Codex
    /// thread (a fresh session when the old one never got one) and binds the topic to it.
    /// Returns the new binding and the notice for the topic.
    pub(crate) async fn heal_window(
        self: &Arc<Self>,
        binding: &Binding,
    ) -> Result<(Binding, String), CallError> {
        let (healed, window, resumed) = self.replace_window(binding).await?;
        let notice = if resumed {
            format!(
                "♻️ Codex was no longer running here; resumed this conversation in a new window ({window})."
            )
        } else {
            format!(
                "♻️ Codex was no longer running here; started it again in {} (tmux window {window}).",
                binding.cwd
            )
        };
        Ok((healed, notice))
    }

    /// Closes the binding's window (if still there) and binds the topic to a new one resuming
    /// the same Codex thread, on whatever account the node gives new windows now. Returns the
    /// new binding, the new tmux window's name, and whether a thread was resumed.
    pub(crate) async fn replace_window(
        self: &Arc<Self>,
        binding: &Binding,
    ) -> Result<(Binding, String, bool), CallError> {
        let Some(node) = self.node(&binding.node) else {
            return Err(CallError::Offline);
        };
        let thread = match node
            .call(Op::ListWindows(v1::ListWindows {}), CALL_TIMEOUT)
            .await?
        {
            R::Windows(w) => w
                .sessions
                .into_iter()
                .find(|s| s.session_id == binding.session_id)
                .map(|s| s.thread_id)
                .unwrap_or_default(),
            _ => String::new(),
        };
        // The old window is closed for good (a dead pane or a shell left in it), so its thread
        // is free to be resumed.
        match node
            .call(
                Op::KillWindow(v1::KillWindow {
                    session_id: binding.session_id.to_string(),
                    ..Default::default()
                }),
                CALL_TIMEOUT,
            )
            .await
        {
            Ok(_)
            | Err(CallError::Failed {
                code: v1::ErrorCode::NotFound,
                ..
            }) => {}
            Err(err) => return Err(err),
        }
        let created = node
            .call(
                Op::CreateSession(v1::CreateSession {
                    cwd: binding.cwd.clone(),
                    resume_id: thread.clone(),
                    idempotency_key: format!("heal-{}", binding.session_id),
                    ..Default::default()
                }),
                CALL_TIMEOUT,
            )
            .await?;
        let R::Created(created) = created else {
            return Err(CallError::Failed {
                code: v1::ErrorCode::Internal,
                message: "unexpected answer to creating a window".into(),
            });
        };
        let info = created.session.unwrap_or_default();
        let healed = Binding {
            session_id: info.session_id.into(),
            ..binding.clone()
        };
        if let Err(err) = self.store.put_binding(&healed) {
            tracing::error!(error = %err, "saving a healed binding failed");
            return Err(CallError::Failed {
                code: v1::ErrorCode::Internal,
                message: "the center could not save the new window".into(),
            });
        }
        tracing::info!(
            node = %binding.node,
            old.session = %binding.session_id,
            new.session = %healed.session_id,
            resumed = !thread.is_empty(),
            "healed a topic's window"
        );
        Ok((healed, info.window_name, !thread.is_empty()))
    }
}
