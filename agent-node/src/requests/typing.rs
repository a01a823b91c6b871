//! Typing into Codex: nothing typed may answer a question, and Enter follows the paste as soon
//! as Codex shows the text.
//!
//! Safety. A question can appear at any moment of a turn (the model asks to run a command),
//! and Codex's approval prompt takes Enter as its default, "Yes, proceed". A cached screen
//! state proves nothing about the next instant, so a fresh capture (one tmux invocation) is
//! classified right before the paste and again right before the submitting key. The key is
//! pressed only when that last capture shows Codex's composer holding the pasted text and no
//! question; otherwise the send fails with `Blocked` (the center holds the input and types it
//! once the question is answered). What remains is the time between that capture and Codex
//! reading the key — one tmux invocation, a few milliseconds — which no one outside Codex can
//! close; it is kept that short.
//!
//! Text pasted just before a question appeared waits in the composer under the question, where
//! no key can reach it safely (keys go to the question). It is remembered
//! ([`crate::session::SessionRt::leftover`]) and taken out as soon as the composer is back,
//! before anything else is typed, so it is neither glued to the next message nor typed twice.
//! While it is remembered nothing is pasted until one capture shows the composer without it:
//! right after the question is answered Codex redraws, and a capture may show the question, then
//! no composer, then the composer (the decision is [`leftover_step`], on one capture). A key
//! for a question returns once that question has left the screen ([`Node::until_answered`]),
//! so the next send is judged on the screen the answer led to, not on the question's last frame.
//!
//! Speed. Codex's paste-burst detection (`tui.disable_paste_burst = false`, the default) takes
//! an Enter that arrives inside a burst of typed characters for a newline. A bracketed paste,
//! which is what the node sends, is not such a burst. Measured with
//! `testdata/measure_paste.sh` (paste-burst detection on, tmux 3.3a): Codex 0.169.0 and 0.171.0
//! both submitted every Enter, 5 of 5 for a one-line and 5 of 5 for a three-line text, at 0, 5,
//! 10, 20, 40 and 80 ms after `paste-buffer -p` returned, and even with the paste and the Enter
//! in one tmux invocation. So the floor needs no paste-burst window; the node keeps 30 ms
//! (`paste_delay`, configurable) as margin, and waits in any case until a capture shows the
//! text in the composer, which proves Codex has read the whole paste. Captures are a few tight
//! retries, then slower ones, up to a deadline: an idle host spends one or two.

use std::time::Duration;

use proto::v1;
use tokio::time::Instant;

use crate::{
    error::NodeError,
    node::Node,
    screen::{self, PaneFacts, Screen},
    session::SessionRt,
    tmux::Key,
    transcript::locate,
};
use shared::sync::LockExt;

/// Between the first captures after a paste: Codex draws a frame within a few tens of ms.
const FAST_STEP: Duration = Duration::from_millis(15);
/// How many fast captures before slowing down (a loaded host).
const FAST_TRIES: u32 = 10;
/// Between later captures.
const SLOW_STEP: Duration = Duration::from_millis(100);
/// How long pasted text may take to show in the composer.
const SHOW_DEADLINE: Duration = Duration::from_secs(3);

/// What one fresh capture says about typing `text`.
enum Look {
    /// A question is on screen (its text).
    Question(String),
    /// The composer shows the text, and nothing else is asked.
    Holds,
    /// Neither (yet).
    NotYet,
}

impl Node {
    /// Pastes `text` and submits it with the key for `mode`; see the module comment. When a
    /// step after the paste fails, the text is taken out of the composer again (now, or once a
    /// question that covers it is gone) so it cannot be glued to the next message.
    pub(super) async fn type_text(
        &self,
        rt: &SessionRt,
        text: &str,
        mode: v1::InputMode,
    ) -> Result<(), NodeError> {
        self.before_paste(rt).await?;
        self.paste(rt, text).await?;
        let pasted_at = Instant::now();
        let key = match mode {
            v1::InputMode::Queue => Key::Tab,
            _ => Key::Enter,
        };
        let submitted = match self.ready_to_submit(rt, text, pasted_at).await {
            Ok(true) => self
                .inner
                .tmux
                .send_key(&rt.pane_id, key)
                .await
                .map_err(NodeError::from),
            Ok(false) => Err(NodeError::Internal(
                "Codex did not show the message in its input box; nothing was sent".into(),
            )),
            Err(err) => Err(err),
        };
        if let Err(err) = submitted {
            self.take_back(rt, text).await;
            return Err(err);
        }
        rt.kick_screen();
        Ok(())
    }

    /// Before pasting: refuses if a fresh capture shows a question, and takes out text an
    /// earlier send left under a question. Nothing is pasted while such text may still be in
    /// the composer: each decision is made on one capture (a question answered a moment ago
    /// may still be drawn on one capture and gone on the next), and a composer that is not
    /// drawn yet is waited for; see [`leftover_step`].
    pub(super) async fn before_paste(&self, rt: &SessionRt) -> Result<(), NodeError> {
        let deadline = Instant::now() + SHOW_DEADLINE;
        loop {
            let (pane, capture) = self.inner.tmux.snapshot(&rt.pane_id).await?;
            let facts = PaneFacts {
                dead: pane.dead,
                current_command: &pane.current_command,
            };
            let screen = screen::classify(&capture, facts);
            let left = rt.leftover.locked().clone();
            match leftover_step(&screen, &capture, left.as_deref()) {
                Step::Question(question) => return Err(blocked(&question, false)),
                Step::Dead => {
                    return Err(NodeError::WindowDead(
                        "Codex has exited in that window".into(),
                    ));
                }
                Step::Shell => {
                    return Err(NodeError::WindowDead(
                        "a shell, not Codex, runs in that window; input was not sent".into(),
                    ));
                }
                Step::Paste => return Ok(()),
                Step::Forget => {
                    rt.leftover.locked().take();
                    return Ok(());
                }
                Step::Clear(_) | Step::Wait if Instant::now() >= deadline => {
                    tracing::warn!(session.id = %rt.id, "text typed under an earlier question may still be in the composer; nothing was typed");
                    return Err(NodeError::Internal(
                        "Codex's input box is not shown, and text typed under an earlier \
                         question may still be in it; nothing was typed"
                            .into(),
                    ));
                }
                Step::Wait => tokio::time::sleep(SLOW_STEP).await,
                // Cleared, then checked again on a fresh capture on the next round.
                Step::Clear(left) => self.clear_composer(rt, &left).await,
            }
        }
    }

    /// After a key for the question `expect_prompt` was pressed: waits until a capture no
    /// longer shows that question, so that whatever is sent next is judged on the screen the
    /// answer led to (the question stays drawn for a frame or more after the key). Gives up
    /// quietly after [`SHOW_DEADLINE`]: the key was pressed either way.
    pub(super) async fn until_answered(&self, rt: &SessionRt, expect_prompt: &str) {
        let deadline = Instant::now() + SHOW_DEADLINE;
        while Instant::now() < deadline {
            tokio::time::sleep(FAST_STEP).await;
            let Ok((pane, capture)) = self.inner.tmux.snapshot(&rt.pane_id).await else {
                return;
            };
            let facts = PaneFacts {
                dead: pane.dead,
                current_command: &pane.current_command,
            };
            if !question_still_shown(&screen::classify(&capture, facts), expect_prompt) {
                return;
            }
        }
        tracing::debug!(session.id = %rt.id, "the answered question is still on screen");
    }

    /// Waits until a capture taken at least `paste_delay` after `pasted_at` shows `text` in the
    /// composer and no question: `Ok(true)`, and the caller presses its key at once. `Ok(false)`
    /// when the text did not show within [`SHOW_DEADLINE`]; `Blocked` when a question came up.
    pub(super) async fn ready_to_submit(
        &self,
        rt: &SessionRt,
        text: &str,
        pasted_at: Instant,
    ) -> Result<bool, NodeError> {
        let floor = pasted_at + self.inner.cfg.paste_delay;
        let deadline = pasted_at + SHOW_DEADLINE.max(self.inner.cfg.paste_delay * 2);
        tokio::time::sleep_until(floor.min(pasted_at + FAST_STEP)).await;
        let mut tries = 0;
        loop {
            match self.look(rt, text).await? {
                Look::Question(question) => return Err(blocked(&question, true)),
                Look::Holds if Instant::now() >= floor => return Ok(true),
                // Shown early: look again at the floor, so the capture before the key is fresh.
                Look::Holds => {
                    tokio::time::sleep_until(floor).await;
                    continue;
                }
                Look::NotYet if Instant::now() >= deadline => {
                    if tracing::enabled!(tracing::Level::TRACE)
                        && let Ok((_, screen)) = self.inner.tmux.snapshot(&rt.pane_id).await
                    {
                        tracing::trace!(session.id = %rt.id, %screen, "the typed text never showed in the composer");
                    }
                    return Ok(false);
                }
                Look::NotYet => {}
            }
            tries += 1;
            let step = if tries < FAST_TRIES {
                FAST_STEP
            } else {
                SLOW_STEP
            };
            tokio::time::sleep(step).await;
        }
    }

    /// One fresh capture, classified.
    async fn look(&self, rt: &SessionRt, text: &str) -> Result<Look, NodeError> {
        let (pane, capture) = self.inner.tmux.snapshot(&rt.pane_id).await?;
        let facts = PaneFacts {
            dead: pane.dead,
            current_command: &pane.current_command,
        };
        match screen::classify(&capture, facts) {
            Screen::Prompt { text: question, .. } => Ok(Look::Question(question)),
            Screen::Dead => Err(NodeError::WindowDead(
                "Codex has exited in that window".into(),
            )),
            Screen::Shell => Err(NodeError::WindowDead(
                "a shell, not Codex, runs in that window; input was not sent".into(),
            )),
            Screen::Starting | Screen::Ready | Screen::Busy(_) => Ok(
                if screen::composer(&capture).is_some_and(|c| c.holds(text)) {
                    Look::Holds
                } else {
                    Look::NotYet
                },
            ),
        }
    }

    /// Takes `text` out of the composer after a failed send: now if the composer shows it, or
    /// later (see [`Self::clear_leftover`]) if a question covers the composer.
    pub(super) async fn take_back(&self, rt: &SessionRt, text: &str) {
        match self.composer_holds(rt, text).await {
            Ok(Some(true)) => self.clear_composer(rt, text).await,
            Ok(None) => {
                tracing::info!(session.id = %rt.id, "a question covers typed text; it is taken out once the question is gone");
                *rt.leftover.locked() = Some(text.to_owned());
            }
            Ok(Some(false)) => {}
            Err(err) => {
                tracing::debug!(session.id = %rt.id, error = %err, "cannot read the composer to take text back");
            }
        }
    }
}

/// What [`Node::before_paste`] does on one capture.
#[derive(Debug, PartialEq, Eq)]
enum Step {
    /// A question is up (its text): nothing is typed.
    Question(String),
    Dead,
    Shell,
    /// Nothing is left over: paste.
    Paste,
    /// The composer is drawn and does not hold the leftover (taken out by hand, or the window
    /// moved on): forget it, then paste.
    Forget,
    /// The composer holds the leftover: take it out, then look again.
    Clear(String),
    /// A leftover is remembered but the composer is not drawn (Codex redraws after a question
    /// was answered): look again.
    Wait,
}

/// Decides, on one capture, whether text may be pasted and what happens to text an earlier
/// send left under a question (`leftover`).
fn leftover_step(screen: &Screen, capture: &str, leftover: Option<&str>) -> Step {
    match screen {
        Screen::Prompt { text, .. } => return Step::Question(text.clone()),
        Screen::Dead => return Step::Dead,
        Screen::Shell => return Step::Shell,
        Screen::Starting | Screen::Ready | Screen::Busy(_) => {}
    }
    let Some(left) = leftover else {
        return Step::Paste;
    };
    match screen::composer(capture) {
        Some(c) if c.holds(left) => Step::Clear(left.to_owned()),
        Some(_) => Step::Forget,
        None => Step::Wait,
    }
}

/// The failure for a question on screen; `typed` says the text was pasted already.
fn blocked(question: &str, typed: bool) -> NodeError {
    let question = locate::one_line(question, 120);
    if typed {
        NodeError::Blocked(format!(
            "Codex asked a question while the message was typed; nothing was submitted. \
             It waits for an answer first: {question}"
        ))
    } else {
        NodeError::Blocked(format!("Codex is waiting for an answer first: {question}"))
    }
}

/// Whether a key for a question (`expect_prompt`, from `TerminalState.prompt_id`) may be
/// pressed on `screen`: only if that very question is shown.
pub(super) fn question_still_shown(screen: &Screen, expect_prompt: &str) -> bool {
    matches!(screen, Screen::Prompt { text, .. } if shared::prompt::prompt_id(text) == expect_prompt)
}

/// The failure for a key whose question is gone.
pub(super) fn stale() -> NodeError {
    NodeError::Stale("This question is no longer on screen; nothing was pressed.".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> String {
        let path = format!("{}/testdata/panes/{name}.txt", env!("CARGO_MANIFEST_DIR"));
        std::fs::read_to_string(&path).unwrap()
    }

    fn classify(name: &str) -> Screen {
        let facts = PaneFacts {
            dead: false,
            current_command: "codex",
        };
        screen::classify(&fixture(name), facts)
    }

    #[test]
    fn a_key_goes_only_to_the_question_it_was_meant_for() {
        let approval = classify("approval");
        let Screen::Prompt { text, .. } = &approval else {
            panic!("{approval:?}");
        };
        let id = shared::prompt::prompt_id(text);
        assert!(question_still_shown(&approval, &id));
        // Another question, or none at all: the key is stale.
        assert!(!question_still_shown(&approval, "00000000"));
        let worktree = classify("slash_new_worktree_question");
        assert!(!question_still_shown(&worktree, &id));
        assert!(!question_still_shown(&classify("approval_approved"), &id));
        assert!(!question_still_shown(
            &classify("answer_quotes_prompt"),
            &id
        ));
        assert_eq!(stale().code(), v1::ErrorCode::Stale);
        assert_eq!(
            stale().to_string(),
            "This question is no longer on screen; nothing was pressed."
        );
    }

    #[test]
    fn the_wire_state_names_the_question() {
        let approval = classify("approval");
        let state = crate::session::to_wire("s1", &approval);
        let Screen::Prompt { text, .. } = &approval else {
            panic!("{approval:?}");
        };
        assert_eq!(state.prompt_id, shared::prompt::prompt_id(text));
        assert_eq!(state.prompt_id.len(), 8);
        let ready = crate::session::to_wire("s1", &classify("ready"));
        assert!(ready.prompt_id.is_empty());
    }

    /// Text left under a question is never pasted after: on each version's screens it is
    /// cleared when the composer shows it, waited for while no composer is drawn (Codex
    /// redrawing after the answer), and nothing is typed while the question is up.
    #[test]
    fn nothing_is_pasted_while_text_left_under_a_question_may_be_in_the_composer() {
        let facts = PaneFacts {
            dead: false,
            current_command: "codex",
        };
        for dir in ["panes", "0.171.0/panes"] {
            let step = |name: &str, left: Option<&str>| {
                let capture = fixture(&format!("../{dir}/{name}"));
                leftover_step(&screen::classify(&capture, facts), &capture, left)
            };
            let left = Some("echo: hello from the fixture");
            assert!(
                matches!(step("approval", left), Step::Question(q) if q.contains("Would you like to run")),
                "{dir}"
            );
            assert!(matches!(step("approval", None), Step::Question(_)), "{dir}");
            assert_eq!(
                step("composer_typed", left),
                Step::Clear("echo: hello from the fixture".into()),
                "{dir}"
            );
            assert_eq!(step("composer_typed", None), Step::Paste, "{dir}");
            assert_eq!(step("ready", left), Step::Forget, "{dir}");
            assert_eq!(step("approval_denied", left), Step::Forget, "{dir}");
            assert_eq!(step("ready", None), Step::Paste, "{dir}");
            // Recorded by `record_leftover.sh`: text pasted during a turn, then the question.
            let typed = Some("echo: typed while the question came up");
            assert!(
                matches!(step("leftover_under_question", typed), Step::Question(_)),
                "{dir}"
            );
            // Answered `3`: the text is back in the composer and is taken out first.
            assert_eq!(
                step("leftover_after_denied", typed),
                Step::Clear("echo: typed while the question came up".into()),
                "{dir}"
            );
            assert_eq!(step("leftover_after_denied", left), Step::Forget, "{dir}");
        }
        // Mid-redraw (a history cell, no composer under it): wait, never paste.
        let redraw = "header\n› echo: hello from the fixture\n\n\n";
        let screen = screen::classify(redraw, facts);
        assert_eq!(screen, Screen::Starting);
        assert_eq!(
            leftover_step(&screen, redraw, Some("echo: hello from the fixture")),
            Step::Wait
        );
        assert_eq!(leftover_step(&screen, redraw, None), Step::Paste);
    }

    #[test]
    fn blocked_reads_well() {
        let err = blocked(
            "Would you like to run the following command?\n$ touch x",
            true,
        );
        assert_eq!(err.code(), v1::ErrorCode::Blocked);
        assert!(err.to_string().contains("nothing was submitted"), "{err}");
        assert!(err.to_string().contains("Would you like to run"), "{err}");
    }
}
