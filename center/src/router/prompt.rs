//! A session's question as the topics show it: when Codex asks (an approval, a choice), the
//! question goes to every topic showing the session with one button per choice and Esc; when
//! the screen moves on, the shown messages lose their buttons and say why. Decided here, with
//! no tokio, Telegram or SQLite, from what is shown and the screen's latest state; the delivery
//! task sends and edits what the [`Step`] names.

use crate::store::Surface;

/// Why shown question messages lose their buttons.
pub(crate) const ANSWERED: &str = "✔ Answered";
/// A newer question replaced it: pressing its buttons now would answer a question nobody read.
pub(crate) const SUPERSEDED: &str = "⤳ Superseded by a newer question";

/// The question on show: its text and the messages showing it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Shown {
    pub(crate) text: String,
    pub(crate) messages: Vec<(Surface, i32)>,
}

/// What the screen says now.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Screen<'a> {
    /// Codex asks this question.
    Asking(&'a str),
    /// Anything else (working, ready, dead, …).
    Other,
}

/// What to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Step {
    /// Shown messages that lose their buttons, and the line that says why.
    pub(crate) close: Option<(Shown, &'static str)>,
    /// Post this question to every topic (then [`Prompt::showing`] records the messages).
    pub(crate) show: Option<String>,
}

/// One session's question state.
#[derive(Debug, Default)]
pub(crate) struct Prompt {
    shown: Option<Shown>,
}

impl Prompt {
    /// The screen changed: closes what no longer stands and says whether to post a question.
    /// The same question on screen again changes nothing (no repost, no edit).
    pub(crate) fn on_screen(&mut self, screen: Screen<'_>) -> Step {
        match screen {
            Screen::Asking(text) => {
                if self.shown.as_ref().is_some_and(|s| s.text == text) {
                    return Step {
                        close: None,
                        show: None,
                    };
                }
                let close = self.shown.take().map(|s| (s, SUPERSEDED));
                // Shown from now on, even before its messages are known: the same question
                // on the next screen is not posted twice.
                self.shown = Some(Shown {
                    text: text.to_owned(),
                    messages: Vec::new(),
                });
                Step {
                    close,
                    show: Some(text.to_owned()),
                }
            }
            Screen::Other => Step {
                close: self.shown.take().map(|s| (s, ANSWERED)),
                show: None,
            },
        }
    }

    /// The question `text` went out as `messages` (those Telegram accepted).
    pub(crate) fn showing(&mut self, text: &str, messages: Vec<(Surface, i32)>) {
        if let Some(shown) = self.shown.as_mut().filter(|s| s.text == text) {
            shown.messages = messages;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const TOPIC: Surface = Surface {
        chat_id: -100,
        thread_id: 7,
    };

    #[test]
    fn a_question_is_shown_once_and_closed_as_answered() {
        let mut p = Prompt::default();
        let step = p.on_screen(Screen::Asking("Run ls?"));
        assert_eq!(step.show.as_deref(), Some("Run ls?"));
        assert_eq!(step.close, None);
        p.showing("Run ls?", vec![(TOPIC, 5)]);
        let again = p.on_screen(Screen::Asking("Run ls?"));
        assert_eq!((again.show, again.close), (None, None));
        let done = p.on_screen(Screen::Other);
        let (shown, why) = done.close.unwrap();
        assert_eq!((shown.messages, why), (vec![(TOPIC, 5)], ANSWERED));
        assert_eq!(p.on_screen(Screen::Other).close, None);
    }

    #[test]
    fn a_newer_question_supersedes_the_shown_one() {
        let mut p = Prompt::default();
        p.on_screen(Screen::Asking("Run ls?"));
        p.showing("Run ls?", vec![(TOPIC, 5)]);
        let step = p.on_screen(Screen::Asking("Run rm?"));
        assert_eq!(step.show.as_deref(), Some("Run rm?"));
        assert_eq!(step.close.unwrap().1, SUPERSEDED);
        // A late record of the old question's messages does not overwrite the new one.
        p.showing("Run ls?", vec![(TOPIC, 6)]);
        let (shown, _) = p.on_screen(Screen::Other).close.unwrap();
        assert_eq!(shown.text, "Run rm?");
        assert!(shown.messages.is_empty());
    }

    proptest! {
        /// Over any sequence of screens: a question is posted only when it differs from the one
        /// on show; every message that showed a question is closed exactly once, and closed
        /// as answered only when the screen stopped asking.
        #[test]
        fn every_shown_question_is_closed_once(
            screens in proptest::collection::vec(proptest::option::of(0u8..3), 1..40),
        ) {
            let mut p = Prompt::default();
            let mut next_id = 0;
            let mut open: Vec<i32> = Vec::new();
            let mut on_show: Option<String> = None;
            for screen in screens {
                let text = screen.map(|n| format!("question {n}"));
                let step = p.on_screen(match &text {
                    Some(t) => Screen::Asking(t),
                    None => Screen::Other,
                });
                if let Some((shown, why)) = step.close {
                    prop_assert_eq!(why == ANSWERED, text.is_none());
                    for (_, id) in shown.messages {
                        let at = open.iter().position(|o| *o == id);
                        prop_assert!(at.is_some(), "closed twice or never shown: {id}");
                        open.remove(at.unwrap_or_default());
                    }
                }
                if let Some(q) = step.show {
                    prop_assert_ne!(Some(&q), on_show.as_ref());
                    next_id += 1;
                    open.push(next_id);
                    p.showing(&q, vec![(TOPIC, next_id)]);
                }
                on_show = text;
                prop_assert!(open.len() <= 1);
            }
            if let Some((shown, _)) = p.on_screen(Screen::Other).close {
                for (_, id) in shown.messages {
                    open.retain(|o| *o != id);
                }
            }
            prop_assert!(open.is_empty(), "left with buttons: {open:?}");
        }
    }
}
