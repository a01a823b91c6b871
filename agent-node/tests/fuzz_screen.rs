//! Property tests of the screen classifier ([`classify`], [`composer`], [`command_refusals`]).
//! A pane shows whatever Codex and the programs it runs print — wide characters, control
//! characters, escape sequences, text that quotes Codex's own questions — and the verdict decides
//! whether typed text may be submitted and which key a button presses. So: no input may panic,
//! every verdict is well-formed, and nothing written into the transcript above Codex's live
//! bottom area may change the verdict on a recorded screen.
//!
//! Bounded for CI: a fixed number of cases and a fixed seed (set `PROPTEST_CASES` or
//! `PROPTEST_RNG_SEED` to explore further locally).

use std::sync::LazyLock;

use agent_node::screen::{PaneFacts, Screen, classify, command_refusals, composer};
use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, RngSeed};

/// Cases per property: a few seconds in a debug build.
const CASES: u32 = 2000;

/// What a pane running Codex reports besides its text.
const LIVE: PaneFacts<'static> = PaneFacts {
    dead: false,
    current_command: "codex",
};

fn config() -> ProptestConfig {
    let mut config = ProptestConfig {
        failure_persistence: None,
        ..ProptestConfig::default()
    };
    if std::env::var_os("PROPTEST_CASES").is_none() {
        config.cases = CASES;
    }
    if std::env::var_os("PROPTEST_RNG_SEED").is_none() {
        config.rng_seed = RngSeed::Fixed(0x7363_7265);
    }
    config
}

/// Shells among the foreground commands [`facts`] draws from.
const SHELLS: &[&str] = &["bash", "zsh", "fish", "sh"];

/// Lines that look like parts of Codex's screen, as an answer might quote them.
const LOOK_ALIKES: &[&str] = &[
    "  Would you like to run the following command?",
    "  Would you like to make the following edits?",
    "  Do you trust the contents of this directory?",
    "  Allow Codex to work in this folder?",
    "  Where should the new conversation run?",
    "› 1. Yes, proceed (y)",
    "  1. Yes, proceed (y)",
    "  2. No, and tell Codex what to do differently (esc)",
    "│ 3. Maybe │",
    "  Press enter to confirm or esc to cancel",
    "  Select Model and Effort",
    "› 1. GPT-6.1-Sol    Latest workhorse model for coding and everyday work.",
    "  enter select · esc back",
    "  enter default · s session · esc back",
    "◦ Working (2s • esc to interrupt)",
    "• Working (12s • esc to interrupt)",
    "  ⠋ Thinking (esc to interrupt)",
    "› Ask Codex to do anything",
    "› typed text",
    "  ? for shortcuts",
    "  tab to queue message",
    "  Browsing transcript",
    "  Worked for 3s",
    "• Unrecognized command '/frobnicate'. Type \"/\" for a list of supported commands.",
    "■ '/new' is disabled while a task is in progress.",
    "╭──────────╮",
    "╰──────────╯",
    "user@host:~$ ",
    "",
    "   ",
];

/// One line of pane text: look-alikes, wide and combining characters, control characters and
/// escape sequences, or anything at all.
fn pane_lines() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop::sample::select(LOOK_ALIKES).prop_map(str::to_owned),
        2 => "[ •◦›■│╭╰─0-9. a-z()$#%>]{0,40}",
        2 => "[\u{0}-\u{1f}\u{7f}\u{1b}\\[m 中文😀👨‍👩‍👧e\u{301}\u{200d}\u{fe0f}\u{fffd}›•]{0,30}",
        1 => any::<String>(),
    ]
}

fn panes() -> impl Strategy<Value = String> {
    prop::collection::vec(pane_lines(), 0..40).prop_map(|lines| lines.join("\n"))
}

fn facts() -> impl Strategy<Value = (bool, &'static str)> {
    (
        prop::bool::weighted(0.1),
        prop::sample::select(&["codex", "node", "bash", "zsh", "fish", "", "sh"][..]),
    )
}

/// The recorded screens of every pinned Codex version (plain captures) with the verdict
/// Codex's live area gives them.
static FIXTURES: LazyLock<Vec<(String, String, Screen)>> = LazyLock::new(fixtures);

/// Folders of recorded screens, under `testdata/` (see `testdata/README.md`).
const FIXTURE_DIRS: &[&str] = &["panes", "0.171.0/panes"];

fn fixtures() -> Vec<(String, String, Screen)> {
    let mut out = Vec::new();
    for dir in FIXTURE_DIRS {
        let dir = format!("{}/testdata/{dir}", env!("CARGO_MANIFEST_DIR"));
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries {
            let path = entry.expect("a directory entry").path();
            let name = path.to_string_lossy().into_owned();
            if !name.ends_with(".txt") || name.ends_with(".ansi.txt") {
                continue;
            }
            let text = std::fs::read_to_string(&path).expect("a pane fixture is text");
            let verdict = classify(&text, LIVE);
            out.push((name, text, verdict));
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

fn well_formed(screen: &Screen, facts: PaneFacts<'_>) -> Result<(), TestCaseError> {
    match screen {
        Screen::Prompt { choices, .. } => {
            for c in choices {
                prop_assert!(
                    (1..=2).contains(&c.key.len()) && c.key.bytes().all(|b| b.is_ascii_digit()),
                    "{:?}",
                    c
                );
                prop_assert!(!c.label.is_empty() && c.label.trim() == c.label, "{:?}", c);
            }
        }
        Screen::Busy(status) => prop_assert!(status.contains("esc to interrupt"), "{:?}", status),
        Screen::Dead => prop_assert!(facts.dead),
        Screen::Shell => prop_assert!(SHELLS.contains(&facts.current_command)),
        Screen::Starting | Screen::Ready => {}
    }
    Ok(())
}

proptest! {
    #![proptest_config(config())]

    /// Any pane text and facts: no panic, and a well-formed verdict (a dead pane is always dead).
    #[test]
    fn arbitrary_panes_give_well_formed_verdicts(
        pane in prop_oneof![panes(), any::<String>()],
        (dead, command) in facts(),
        sent in any::<String>(),
        token in "/[a-z]{1,10}",
    ) {
        let facts = PaneFacts { dead, current_command: command };
        let screen = classify(&pane, facts);
        if dead {
            prop_assert_eq!(&screen, &Screen::Dead);
        }
        well_formed(&screen, facts)?;
        if let Some(c) = composer(&pane) {
            let _ = c.holds(&sent);
            let _ = c.holds(&c.text);
            prop_assert!(!c.empty || !c.holds(&sent));
        }
        let _ = command_refusals(&pane, &token);
    }

    /// Whatever the transcript above a recorded screen holds (answers quoting questions, status
    /// lines, choices, the composer), the verdict on the screen stays what its live bottom area
    /// says.
    #[test]
    fn transcript_above_the_screen_never_changes_the_verdict(
        history in prop::collection::vec(pane_lines(), 1..30),
        pick in any::<prop::sample::Index>(),
    ) {
        let eligible: Vec<_> = FIXTURES
            .iter()
            .filter(|(_, _, v)| matches!(v, Screen::Ready | Screen::Busy(_) | Screen::Prompt { .. }))
            .collect();
        prop_assert!(eligible.len() >= 10);
        let (name, pane, verdict) = eligible[pick.index(eligible.len())];
        let scrolled = format!("{}\n{pane}", history.join("\n"));
        prop_assert_eq!(&classify(&scrolled, LIVE), verdict, "{} under {:?}", name, history);
    }
}
