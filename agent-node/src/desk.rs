//! Windows started at the desk: with `desk_topics` on, a `codex` that someone runs in a new
//! window of the node's tmux session is adopted like a window the node created — a record, a
//! runtime, its transcript matched by what its screen shows — and announced to the center
//! (`WindowLifecycle` Created, `SessionInfo.desk`), which opens a forum topic for it once.
//!
//! What is adopted: a live pane whose window carries no session mark of ours, whose screen shows
//! Codex (ready, busy or asking; a shell or a starting program is looked at again next time) and
//! whose folder lies inside the node's roots. Its window gets our mark (a `d…` session id), so a
//! restarted node adopts it again instead of seeing a new desk window. Window creation holds the
//! same lock as this scan, so a window the node is creating (marked right after tmux made it) is
//! never mistaken for one from the desk.

use proto::v1;

use crate::{
    node::Node,
    registry::{DESK_PREFIX, SessionRecord},
    screen::{self, PaneFacts, Screen},
};

impl Node {
    /// With `desk_topics` on, looks for new desk windows every liveness interval.
    pub(crate) fn spawn_desk_watch(&self) {
        if !self.inner.cfg.desk_topics {
            return;
        }
        let node = self.clone();
        let token = self.inner.token.clone();
        shared::shutdown::supervise("desk watch", token, move || {
            let node = node.clone();
            async move {
                let mut tick = tokio::time::interval(node.inner.cfg.liveness_interval);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tokio::select! {
                        () = node.inner.token.cancelled() => break,
                        _ = tick.tick() => {}
                    }
                    node.adopt_desk_windows().await;
                }
            }
        });
    }

    async fn adopt_desk_windows(&self) {
        let _serial = self.inner.windows.creating().await;
        let Ok(panes) = self.inner.tmux.list_panes().await else {
            return;
        };
        for pane in panes.iter().filter(|p| p.session_id.is_empty() && !p.dead) {
            let known = self
                .inner
                .windows
                .find(|r| !r.exited && r.window_id == pane.window_id)
                .is_some();
            if known {
                continue;
            }
            let Ok((info, capture)) = self.inner.tmux.snapshot(&pane.pane_id).await else {
                continue;
            };
            let facts = PaneFacts {
                dead: info.dead,
                current_command: &info.current_command,
            };
            // Codex by its process as well as its screen: an `ssh` to a machine running Codex,
            // or a script printing a look-alike question, must never get a topic that types
            // into it.
            if !runs_codex(&info.current_command)
                || !matches!(
                    screen::classify(&capture, facts),
                    Screen::Ready | Screen::Busy(_) | Screen::Prompt { .. }
                )
            {
                continue;
            }
            let Ok(path) = self.inner.tmux.pane_path(&pane.pane_id).await else {
                continue;
            };
            let Ok((cwd, _, _)) = self.inner.roots.resolve(&path) else {
                continue;
            };
            let session_id = format!("{DESK_PREFIX}{}", shared::random::hex_token::<8>());
            if let Err(err) = self
                .inner
                .tmux
                .mark_window(&pane.window_id, &session_id)
                .await
            {
                tracing::warn!(window.id = %pane.window_id, error = %err, "could not mark a desk window");
                continue;
            }
            let record = SessionRecord {
                session_id: session_id.clone().into(),
                window_id: pane.window_id.clone(),
                pane_id: pane.pane_id.clone(),
                window_name: pane.window_name.clone(),
                cwd,
                created_unix_ms: shared::clock::now_unix_ms(),
                thread_id: None,
                rollout: None,
                start_offset: 0,
                acked_seq: 0,
                idempotency_key: None,
                exited: false,
            };
            self.inner.windows.put(record.clone());
            self.inner.windows.save();
            self.spawn_runtime(&record, true);
            tracing::info!(session.id = %session_id, window.id = %record.window_id, cwd = %record.cwd.display(), "desk window adopted");
            self.lifecycle(v1::LifecycleKind::Created, &record).await;
        }
    }
}

/// Whether a pane's foreground process is Codex: its native binary, or the `node` running the
/// npm package's launcher (what tmux reports for an npm install).
fn runs_codex(current_command: &str) -> bool {
    current_command == "node" || current_command.starts_with("codex")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_codex_processes_count() {
        assert!(
            runs_codex("node")
                && runs_codex("codex")
                && runs_codex("codex-x86_64-unknown-linux-musl")
        );
        assert!(!runs_codex("ssh") && !runs_codex("bash") && !runs_codex("python3"));
    }
}
