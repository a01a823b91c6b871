//! Whose is a new rollout? The decision over plain data, so every rule has a table test; the
//! caller (`super`) gathers the facts and carries the decision out. See the parent module for
//! the proofs and why they are enough.

use shared::ids::SessionId;

use crate::input;

/// Clock skew tolerated between a window's creation and its rollout's header.
pub(crate) const SKEW_MS: i64 = 2000;

/// What the head of a rollout nobody owns says.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Rollout<'a> {
    /// Its Codex thread id.
    pub(crate) thread_id: &'a str,
    /// `session_meta.cwd`.
    pub(crate) cwd: &'a str,
    /// When its header was written (Unix ms).
    pub(crate) created_ms: i64,
    /// The first message a person typed, once written.
    pub(crate) first_user_message: Option<&'a str>,
    /// The thread it was forked from (`/fork`).
    pub(crate) forked_from: Option<&'a str>,
}

/// A live window of this node.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Window<'a> {
    /// The node's session id.
    pub(crate) session_id: &'a str,
    /// Its folder.
    pub(crate) cwd: &'a str,
    /// When the node created it (Unix ms).
    pub(crate) created_ms: i64,
    /// The rollout it writes now, if it has one.
    pub(crate) current: Option<Current<'a>>,
    /// Text the node is typing into it right now (its claim), if any.
    pub(crate) claim: Option<&'a str>,
}

/// A window's current rollout.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Current<'a> {
    /// Its thread id.
    pub(crate) thread_id: &'a str,
    /// When its header was written (Unix ms).
    pub(crate) created_ms: i64,
}

/// A window the rollout may belong to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Choice {
    /// The window.
    pub(crate) session_id: SessionId,
    /// It has a rollout already: binding means moving it to the new file.
    pub(crate) switch: bool,
}

/// What proved a binding (for the log).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Proof {
    /// The first message is what the node was typing into the window.
    Claim,
    /// The window's screen, and no other, shows the first message.
    Screen,
}

/// What to do with the rollout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Decision {
    /// It is this window's.
    Bind(Choice, Proof),
    /// Only the screens can tell: it is the one of these whose pane shows the first message.
    AskScreens(Vec<Choice>),
    /// Nothing to decide on yet: its first message is not written.
    Wait,
    /// It belongs to no window of ours (why, for the log).
    NotOurs(&'static str),
    /// No screen of its folder shows its first message (not yet, or never: see the caller).
    Unwitnessed,
    /// Several windows fit equally; binding any would be a guess.
    Ambiguous(Vec<SessionId>),
}

/// Decides whose `rollout` is among the node's live `windows`.
pub(crate) fn decide(rollout: &Rollout<'_>, windows: &[Window<'_>]) -> Decision {
    if rollout.thread_id.is_empty() {
        return Decision::NotOurs("the rollout has no thread id");
    }
    let mut eligible: Vec<&Window<'_>> = windows.iter().filter(|w| fits(rollout, w)).collect();
    // A fork of a window's thread can only be that window's (or nobody's).
    if let Some(parent) = rollout.forked_from
        && eligible
            .iter()
            .any(|w| w.current.is_some_and(|c| c.thread_id == parent))
    {
        eligible.retain(|w| w.current.is_some_and(|c| c.thread_id == parent));
    }
    if eligible.is_empty() {
        return Decision::NotOurs("no window of ours in its folder predates it");
    }
    let Some(first) = rollout.first_user_message else {
        return Decision::Wait;
    };
    let claimed: Vec<&Window<'_>> = eligible
        .iter()
        .copied()
        .filter(|w| w.claim.is_some_and(|c| claim_matches(c, first)))
        .collect();
    match claimed.as_slice() {
        [one] => return Decision::Bind(choice(one), Proof::Claim),
        [] => {}
        several => {
            return Decision::Ambiguous(
                several
                    .iter()
                    .map(|w| SessionId::new(w.session_id))
                    .collect(),
            );
        }
    }
    // Never by elimination: not even a single window of that folder, and least of all one
    // being typed other text, gets it without its screen showing the message.
    Decision::AskScreens(eligible.iter().map(|w| choice(w)).collect())
}

/// Settles an [`Decision::AskScreens`]: the one choice whose screen shows the first message.
pub(crate) fn by_screens(choices: Vec<Choice>, shown: &[bool]) -> Decision {
    let hits: Vec<Choice> = choices
        .into_iter()
        .zip(shown)
        .filter(|(_, shown)| **shown)
        .map(|(c, _)| c)
        .collect();
    match <[Choice; 1]>::try_from(hits) {
        Ok([one]) => Decision::Bind(one, Proof::Screen),
        Err(hits) if hits.is_empty() => Decision::Unwitnessed,
        Err(hits) => Decision::Ambiguous(hits.into_iter().map(|c| c.session_id).collect()),
    }
}

/// Does `screen` (a pane capture) show `first` as something typed into Codex? A long enough
/// first line anywhere counts; a short one only as a submitted message line (`› hi`).
pub(crate) fn screen_shows(screen: &str, first: &str) -> bool {
    let needle = crate::transcript::locate::one_line(first, 40);
    let needle = needle.trim_end_matches('…');
    if needle.chars().count() >= 4 {
        return screen.contains(needle);
    }
    !needle.is_empty()
        && screen
            .lines()
            .any(|l| l.trim().strip_prefix('›').map(str::trim) == Some(needle))
}

/// Could `window` have started `rollout`? Same folder, created before it, and for a window with
/// a rollout already: a newer file of another thread.
fn fits(rollout: &Rollout<'_>, window: &Window<'_>) -> bool {
    window.cwd == rollout.cwd
        && rollout.created_ms + SKEW_MS >= window.created_ms
        && window
            .current
            .is_none_or(|c| c.thread_id != rollout.thread_id && rollout.created_ms > c.created_ms)
}

fn claim_matches(claim: &str, first: &str) -> bool {
    input::is_same_message(&input::normalize(claim), first)
}

fn choice(window: &Window<'_>) -> Choice {
    Choice {
        session_id: SessionId::new(window.session_id),
        switch: window.current.is_some(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: i64 = 1_000_000;

    fn rollout(first: Option<&'static str>) -> Rollout<'static> {
        Rollout {
            thread_id: "new",
            cwd: "/p",
            created_ms: T0,
            first_user_message: first,
            forked_from: None,
        }
    }

    fn window(id: &'static str) -> Window<'static> {
        Window {
            session_id: id,
            cwd: "/p",
            created_ms: T0 - 60_000,
            current: None,
            claim: None,
        }
    }

    fn bound(id: &'static str, thread: &'static str) -> Window<'static> {
        Window {
            current: Some(Current {
                thread_id: thread,
                created_ms: T0 - 30_000,
            }),
            ..window(id)
        }
    }

    fn bind(id: &str, switch: bool) -> Decision {
        Decision::Bind(
            Choice {
                session_id: id.into(),
                switch,
            },
            Proof::Claim,
        )
    }

    fn ask(ids: &[(&str, bool)]) -> Decision {
        Decision::AskScreens(
            ids.iter()
                .map(|(id, switch)| Choice {
                    session_id: (*id).into(),
                    switch: *switch,
                })
                .collect(),
        )
    }

    #[test]
    fn decisions() {
        let claimed = |w: Window<'static>, text: &'static str| Window {
            claim: Some(text),
            ..w
        };
        let hi = Some("echo: second one");
        let cases: Vec<(&str, Rollout<'static>, Vec<Window<'static>>, Decision)> = vec![
            (
                "a claimed first message binds a fresh window",
                rollout(hi),
                vec![claimed(window("a"), "echo: second one"), window("b")],
                bind("a", false),
            ),
            (
                "a claimed first message moves a bound window to the new file (/new)",
                rollout(hi),
                vec![
                    claimed(bound("a", "old"), "echo:  second\none"),
                    window("b"),
                ],
                bind("a", true),
            ),
            (
                "no claim: only a screen can prove it, even for a single window",
                rollout(hi),
                vec![bound("a", "old")],
                ask(&[("a", true)]),
            ),
            (
                "a single window typing other text is not bound by elimination",
                rollout(hi),
                vec![claimed(window("a"), "something else entirely")],
                ask(&[("a", false)]),
            ),
            (
                "a claim elsewhere in the folder does not decide for the others",
                rollout(hi),
                vec![claimed(bound("a", "old"), "other text"), window("b")],
                ask(&[("a", true), ("b", false)]),
            ),
            (
                "two windows claiming the same text is a guess",
                rollout(hi),
                vec![
                    claimed(bound("a", "x"), "echo: second one"),
                    claimed(bound("b", "y"), "echo: second one"),
                ],
                Decision::Ambiguous(vec!["a".into(), "b".into()]),
            ),
            (
                "another folder is never ours",
                Rollout {
                    cwd: "/elsewhere",
                    ..rollout(hi)
                },
                vec![claimed(window("a"), "echo: second one")],
                Decision::NotOurs("no window of ours in its folder predates it"),
            ),
            (
                "a rollout older than the window is not its",
                rollout(hi),
                vec![Window {
                    created_ms: T0 + SKEW_MS + 1,
                    ..claimed(window("a"), "echo: second one")
                }],
                Decision::NotOurs("no window of ours in its folder predates it"),
            ),
            (
                "a rollout older than the window's current one is not a switch",
                Rollout {
                    created_ms: T0 - 40_000,
                    ..rollout(hi)
                },
                vec![claimed(bound("a", "old"), "echo: second one")],
                Decision::NotOurs("no window of ours in its folder predates it"),
            ),
            (
                "the window's own thread is not a new rollout",
                Rollout {
                    thread_id: "old",
                    ..rollout(hi)
                },
                vec![claimed(bound("a", "old"), "echo: second one")],
                Decision::NotOurs("no window of ours in its folder predates it"),
            ),
            (
                "no first message yet: wait",
                rollout(None),
                vec![bound("a", "old")],
                Decision::Wait,
            ),
            (
                "a fork of a window's thread is only that window's",
                Rollout {
                    forked_from: Some("old-b"),
                    ..rollout(hi)
                },
                vec![bound("a", "old-a"), bound("b", "old-b"), window("c")],
                ask(&[("b", true)]),
            ),
            (
                "a fork of a thread no window has follows the usual rules",
                Rollout {
                    forked_from: Some("desk"),
                    ..rollout(hi)
                },
                vec![bound("a", "old-a")],
                ask(&[("a", true)]),
            ),
            (
                "no thread id: nothing to bind",
                Rollout {
                    thread_id: "",
                    ..rollout(hi)
                },
                vec![claimed(window("a"), "echo: second one")],
                Decision::NotOurs("the rollout has no thread id"),
            ),
        ];
        for (name, r, windows, want) in cases {
            assert_eq!(decide(&r, &windows), want, "{name}");
        }
    }

    #[test]
    fn the_single_candidate_never_gets_a_rollout_contradicting_its_pending_input() {
        // A `codex` at the desk in the same folder starts while we type into our only window:
        // our screen shows what we typed, not the desk's first message.
        let ours = Window {
            claim: Some("echo: what we typed"),
            ..window("a")
        };
        let desk = rollout(Some("refactor the parser"));
        let Decision::AskScreens(choices) = decide(&desk, &[ours]) else {
            panic!("bound by elimination");
        };
        let screen = "› echo: what we typed\n";
        let shown = vec![screen_shows(screen, "refactor the parser")];
        assert_eq!(by_screens(choices, &shown), Decision::Unwitnessed);
    }

    #[test]
    fn screens_settle_only_with_exactly_one_witness() {
        let choices = |n: usize| -> Vec<Choice> {
            (0..n)
                .map(|i| Choice {
                    session_id: format!("w{i}").into(),
                    switch: i % 2 == 0,
                })
                .collect()
        };
        assert_eq!(
            by_screens(choices(2), &[false, true]),
            Decision::Bind(
                Choice {
                    session_id: "w1".into(),
                    switch: false
                },
                Proof::Screen
            )
        );
        assert_eq!(
            by_screens(choices(2), &[false, false]),
            Decision::Unwitnessed
        );
        assert_eq!(
            by_screens(choices(3), &[true, false, true]),
            Decision::Ambiguous(vec!["w0".into(), "w2".into()])
        );
    }

    #[test]
    fn a_desk_codex_is_not_witnessed_by_our_screen() {
        let ours = "› echo: first one\n• first one\n\n› Ask Codex to do anything\n";
        assert!(screen_shows(ours, "echo: first one"));
        assert!(!screen_shows(ours, "refactor the parser"));
        // Short messages count only as submitted lines, never as a substring.
        assert!(!screen_shows(ours, "one"));
        assert!(screen_shows("› hi\n• hello\n", "hi"));
        assert!(!screen_shows(ours, ""));
        // Long messages are matched by their first line's start.
        let long = format!("{} and then more\nsecond line", "x".repeat(50));
        assert!(screen_shows(&format!("› {}", &long[..45]), &long));
    }
}
