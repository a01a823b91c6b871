//! Typing into Codex's composer (its input box), and making sure nothing stays behind in it.
//!
//! Messages are confirmed by the transcript (`Node::confirm`). Slash commands cannot be: Codex
//! runs or refuses them without writing a user message, so waiting for the transcript held the
//! topic's input queue for the whole confirmation window (15 s), and a command Codex refused
//! stayed in the composer, glued to the next message. Commands are confirmed by the screen.
//!
//! What Codex 0.169 shows (real TUI in tmux, fake model; `testdata/panes/slash_*.txt`):
//! - `/status` pasted: the slash popup above the composer (`› /status      show current
//!   session configuration…`, `  /statusline …`), the composer `› /status`. After Enter the
//!   composer is empty within one frame (< 100 ms) and the status card is in the history.
//! - `/new` after a turn (not in a git repository): the screen is cleared to the header and an
//!   empty composer. In a git repository it asks `Where should the new conversation run?` with
//!   numbered choices instead (no composer on screen). During a turn:
//!   `■ '/new' is disabled while a task is in progress.` and the composer is emptied.
//! - `/frobnicate` (or `/frobnicate with args`, `/run@bot`, `/123`): no popup (nothing
//!   matches); after Enter `• Unrecognized command '/frobnicate'. Type "/" for a list of
//!   supported commands.` in the history and the text **stays** in the composer, with the cursor
//!   moved to its start — idle or busy alike.
//! - `/diff` opens a full-screen pager, `/model` a picker: no composer on screen, which counts
//!   as taken. Enter with the popup open runs its highlighted entry (`/sta` runs `/status`).
//! - `/status extra` (a known command with arguments it does not take) is sent as a message.
//! - `/quit` exits Codex: the pane dies after Enter, which counts as taken (not as a dead
//!   window, which the center would heal by starting Codex again).
//!
//! tmux has no event for "the screen changed", so after Enter this takes a capture every
//! [`STEP`] until the command has left the composer for [`SETTLE`] (taken) or a new refusal line
//! appears or [`COMMAND_DEADLINE`] passes with the command still in the composer (refused). A
//! refused command is removed from the composer and reported as `INVALID_ARGUMENT`.
//!
//! Clearing: Ctrl-C would empty a composer that holds text, but quits Codex if it is already
//! empty, and Escape on an empty composer opens the transcript browser; neither is safe to
//! send blind. Codex's line keys are: Ctrl-U deletes to the start of the line (at the start:
//! the line break before), Ctrl-K to its end (at the end: the line break after). So
//! `n × (Ctrl-E, Ctrl-U, Backspace)` empties the cursor's line and every line above it, and
//! `n × (Delete, Ctrl-K)` every line below, wherever the cursor is; on an empty composer these
//! keys do nothing. Checked on Codex 0.169 with the cursor at the start (after a refusal), at
//! the end (after a paste), in a middle line, and on a `[Pasted Content 2000 chars]` paste.

use std::time::Duration;

use proto::v1;
use tokio::time::Instant;

use crate::{
    error::NodeError,
    node::Node,
    screen::{self, Refusal},
    session::SessionRt,
    tmux::Key,
};

/// Between two captures while waiting for Codex to take or refuse a command.
const STEP: Duration = Duration::from_millis(75);
/// Commands that end Codex: a pane that dies after one of them did as asked.
const EXIT_COMMANDS: &[&str] = &["/quit", "/exit"];
/// How long pasted text may take to show in the composer, and a command may stay there after
/// Enter before it counts as refused. Codex answers within a frame; this covers a loaded host.
const COMMAND_DEADLINE: Duration = Duration::from_secs(3);
/// A command counts as taken once it has been out of the composer this long: Codex may insert
/// its "disabled while a task is in progress" line a frame after emptying the composer.
const SETTLE: Duration = Duration::from_millis(200);
/// How long a clear may take to show before it is tried once more.
const CLEAR_WAIT: Duration = Duration::from_millis(600);

impl Node {
    /// Pastes `text` into the window's composer (bracketed paste; no Enter).
    pub(super) async fn paste(&self, rt: &SessionRt, text: &str) -> Result<(), NodeError> {
        let tmux = &self.inner.tmux;
        let pane = tmux.pane_info(&rt.pane_id).await?;
        if pane.dead {
            return Err(NodeError::WindowDead(
                "Codex has exited in that window".into(),
            ));
        }
        if pane.in_mode {
            tmux.leave_mode(&rt.pane_id).await?;
        }
        tmux.paste(&rt.pane_id, &format!("codex-fleet-{}", rt.id), text)
            .await?;
        Ok(())
    }

    /// Types a slash command (`token` is its `/name`, see [`crate::input::slash_command`]) and
    /// confirms it by the screen; see the module comment. Always submits with Enter: Tab in
    /// the slash popup completes the command's name instead of queueing it. Whatever goes wrong
    /// after the paste, the command is taken out of the composer before this returns.
    pub(super) async fn submit_command(
        &self,
        rt: &SessionRt,
        token: &str,
        text: &str,
    ) -> Result<v1::InputResult, NodeError> {
        self.before_paste(rt).await?;
        let (_, before) = self.inner.tmux.snapshot(&rt.pane_id).await?;
        let refused_before = screen::command_refusals(&before, token).len();
        self.paste(rt, text).await?;
        let outcome = self
            .enter_and_watch(rt, token, text, refused_before, Instant::now())
            .await;
        if outcome.is_err() {
            self.take_back(rt, text).await;
        }
        outcome
    }

    async fn enter_and_watch(
        &self,
        rt: &SessionRt,
        token: &str,
        text: &str,
        refused_before: usize,
        pasted_at: Instant,
    ) -> Result<v1::InputResult, NodeError> {
        let tmux = &self.inner.tmux;
        // The same check as for messages (see `requests::typing`): Enter only on a capture that
        // shows the command in the composer and no question.
        if !self.ready_to_submit(rt, text, pasted_at).await? {
            return Err(NodeError::Internal(format!(
                "Codex did not show {token} in its input box; nothing was sent"
            )));
        }
        tmux.send_key(&rt.pane_id, Key::Enter).await?;
        rt.kick_screen();
        let deadline = Instant::now() + COMMAND_DEADLINE;
        let mut out_since: Option<Instant> = None;
        loop {
            tokio::time::sleep(STEP).await;
            let (pane, capture) = tmux.snapshot(&rt.pane_id).await?;
            if pane.dead && EXIT_COMMANDS.contains(&token) {
                // Codex took the command and exited (`/quit`): done as asked. A dead window
                // here would make the center heal it (start Codex again) and type the same
                // `/quit` there, and the window the topic shows depend on who came first.
                rt.kick_screen();
                return Ok(v1::InputResult {
                    outcome: v1::InputOutcome::Confirmed as i32,
                    detail: "Codex took the command and exited".into(),
                });
            }
            if pane.dead {
                // Any other command: Codex crashed, which is no success.
                return Err(NodeError::WindowDead(
                    "Codex has exited in that window".into(),
                ));
            }
            let refusals = screen::command_refusals(&capture, token);
            if refusals.len() > refused_before {
                return Err(refused(token, refusals.last()));
            }
            let now = Instant::now();
            if screen::composer(&capture).is_some_and(|c| c.holds(text)) {
                out_since = None;
                if now >= deadline {
                    return Err(refused(token, None));
                }
                continue;
            }
            if now - *out_since.get_or_insert(now) >= SETTLE {
                rt.kick_screen();
                return Ok(v1::InputResult {
                    outcome: v1::InputOutcome::Confirmed as i32,
                    detail: "Codex took the command (confirmed by its screen: commands never \
                             reach the transcript)"
                        .into(),
                });
            }
        }
    }

    /// Whether the composer holds `text`; `None` when no composer is on screen.
    pub(super) async fn composer_holds(
        &self,
        rt: &SessionRt,
        text: &str,
    ) -> Result<Option<bool>, NodeError> {
        let (pane, capture) = self.inner.tmux.snapshot(&rt.pane_id).await?;
        if pane.dead {
            return Ok(None);
        }
        Ok(screen::composer(&capture).map(|c| c.holds(text)))
    }

    /// Removes `sent` from the composer if it is still there (and nothing else: text someone
    /// typed at the desk is left alone). Best effort: a failure path calls this on its way out,
    /// so problems are logged, not returned. See the module comment for the keys.
    pub(super) async fn clear_composer(&self, rt: &SessionRt, sent: &str) {
        let rounds = sent.lines().count().max(1) + 1;
        let mut keys = Vec::with_capacity(rounds * 5);
        for _ in 0..rounds {
            keys.extend([Key::CtrlE, Key::CtrlU, Key::Backspace]);
        }
        for _ in 0..rounds {
            keys.extend([Key::Delete, Key::CtrlK]);
        }
        for _ in 0..2 {
            match self.composer_holds(rt, sent).await {
                Ok(Some(true)) => {}
                Ok(_) => return,
                Err(err) => {
                    tracing::debug!(session.id = %rt.id, error = %err, "cannot read the composer to clear it");
                    return;
                }
            }
            if let Err(err) = self.inner.tmux.send_keys(&rt.pane_id, &keys).await {
                tracing::warn!(session.id = %rt.id, error = %err, "clearing the composer failed");
                return;
            }
            rt.kick_screen();
            let deadline = Instant::now() + CLEAR_WAIT;
            while Instant::now() < deadline {
                tokio::time::sleep(STEP).await;
                if !matches!(self.composer_holds(rt, sent).await, Ok(Some(true))) {
                    tracing::info!(session.id = %rt.id, "text Codex did not take was cleared from its composer");
                    return;
                }
            }
        }
        tracing::warn!(session.id = %rt.id, "text Codex did not take is still in its composer");
    }
}

/// The failure for a command Codex did not take.
fn refused(token: &str, refusal: Option<&Refusal>) -> NodeError {
    let why = match refusal {
        Some(Refusal::Unknown) => "it is not a command Codex knows".to_owned(),
        Some(Refusal::Disabled(reason)) => format!("it is {reason}"),
        None => "it stayed in the input box and was cleared".to_owned(),
    };
    NodeError::InvalidArgument(format!("Codex did not accept {token}: {why}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_read_well() {
        assert_eq!(
            refused("/frobnicate", Some(&Refusal::Unknown)).to_string(),
            "Codex did not accept /frobnicate: it is not a command Codex knows"
        );
        let busy = Refusal::Disabled("disabled while a task is in progress".into());
        assert_eq!(
            refused("/new", Some(&busy)).to_string(),
            "Codex did not accept /new: it is disabled while a task is in progress"
        );
        assert_eq!(refused("/x", None).code(), v1::ErrorCode::InvalidArgument);
    }
}
