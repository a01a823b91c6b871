//! The worktree requests: a new window in a new git worktree (`CreateSession.new_worktree`),
//! `WorktreeStatus` before `/kill`, and removing a clean worktree with its window
//! (`KillWindow.remove_worktree`). The git side is [`crate::worktree`].

use std::path::PathBuf;

use proto::v1::{self, reply::Result as R};

use crate::{error::NodeError, node::Node, worktree};

impl Node {
    /// The folder a new window starts in: `cwd` itself, or (with `new_worktree`) the same folder
    /// in a new worktree of its repository, which is remembered at once.
    pub(super) async fn worktree_cwd(
        &self,
        cwd: PathBuf,
        req: &v1::CreateSession,
    ) -> Result<PathBuf, NodeError> {
        if !req.new_worktree {
            return Ok(cwd);
        }
        if !req.resume_id.trim().is_empty() {
            return Err(NodeError::InvalidArgument(
                "a resumed session keeps its folder; a new worktree is for new sessions".into(),
            ));
        }
        let roots = &self.inner.roots;
        let inside = |p: &std::path::Path| roots.resolve(&p.to_string_lossy()).is_ok();
        if !worktree::in_git_repo(&cwd, inside) {
            return Err(NodeError::InvalidArgument(format!(
                "{} is not in a git repository inside this machine's folders",
                cwd.display()
            )));
        }
        let (made, start) = worktree::create(&cwd, &req.worktree_hint, inside)
            .await
            .map_err(|e| NodeError::Internal(format!("could not create a worktree: {e}")))?;
        self.inner.windows.put_worktree(made);
        Ok(start)
    }

    /// `WorktreeStatus`: the worktree the node made that window `id` runs in, and whether it
    /// is clean.
    pub(super) async fn worktree_status(&self, id: &str) -> Result<R, NodeError> {
        let w = self.window_worktree(id)?;
        let (clean, changes, count) = worktree::status(&w)
            .await
            .map_err(|e| NodeError::Internal(e.to_string()))?;
        Ok(R::Worktree(v1::WorktreeState {
            worktree: Some(w.to_wire()),
            clean,
            changes,
            change_count: u32::try_from(count).unwrap_or(u32::MAX),
            ..Default::default()
        }))
    }

    /// After window `id` was killed: removes its worktree if nothing would be lost (clean, and
    /// no other live window in it), and says what happened either way.
    pub(super) async fn remove_window_worktree(&self, id: &str) -> Result<R, NodeError> {
        let w = self.window_worktree(id)?;
        let mut state = v1::WorktreeState {
            worktree: Some(w.to_wire()),
            ..Default::default()
        };
        let shared = self
            .inner
            .windows
            .live_records()
            .into_iter()
            .any(|r| r.session_id != id && r.cwd.starts_with(&w.path));
        if shared {
            state.kept_because = "another Codex window still runs in it".into();
            return Ok(R::Worktree(state));
        }
        let (clean, changes, count) = worktree::status(&w)
            .await
            .map_err(|e| NodeError::Internal(e.to_string()))?;
        state.clean = clean;
        state.changes = changes;
        state.change_count = u32::try_from(count).unwrap_or(u32::MAX);
        if !clean {
            state.kept_because = "it has uncommitted changes".into();
            return Ok(R::Worktree(state));
        }
        match worktree::remove(&w).await {
            Ok(branch_deleted) => {
                self.inner.windows.forget_worktree(&w.path);
                state.removed = true;
                state.branch_deleted = branch_deleted;
            }
            Err(err) => state.kept_because = err.to_string(),
        }
        Ok(R::Worktree(state))
    }

    /// The worktree the node made that window `id` runs in (NotFound if none, or if it is gone
    /// from disk, which also forgets it).
    fn window_worktree(&self, id: &str) -> Result<worktree::Worktree, NodeError> {
        let windows = &self.inner.windows;
        let record = windows
            .record(id)
            .ok_or_else(|| NodeError::NotFound(format!("no window {id} on this node")))?;
        let w = windows.worktree_holding(&record.cwd).ok_or_else(|| {
            NodeError::NotFound("that window does not run in a worktree this node made".into())
        })?;
        if !w.path.exists() {
            windows.forget_worktree(&w.path);
            return Err(NodeError::NotFound(format!(
                "the worktree {} is gone",
                w.path.display()
            )));
        }
        Ok(w)
    }
}
