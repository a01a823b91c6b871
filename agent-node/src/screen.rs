//! Reads Codex's terminal state from a `capture-pane` of its window: ready for input, busy with a
//! turn, blocked on a prompt (with the prompt's text and choices), dead, or a bare shell.
//!
//! Pure functions over text, tested on captures from the real TUI (`testdata/panes/`). Approval
//! prompts leave no trace in the transcript while they are shown, so the screen is the only
//! place they can be seen. The same holds for slash commands: Codex runs or refuses them without
//! writing anything to the transcript, so [`composer`] and [`command_refusals`] read the screen
//! to tell whether a command was taken (`requests::composer` drives this).

/// Facts about the pane besides its text.
#[derive(Debug, Clone, Copy, Default)]
pub struct PaneFacts<'a> {
    /// The process exited (remain-on-exit kept the pane).
    pub dead: bool,
    /// The pane's foreground process name.
    pub current_command: &'a str,
}

/// One choice of a prompt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Choice {
    /// Key that selects it.
    pub key: String,
    /// Its text.
    pub label: String,
}

/// What the screen shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Screen {
    /// Codex has not drawn its composer yet.
    Starting,
    /// The composer takes input.
    Ready,
    /// A turn runs; the status line, e.g. `Working (3s • esc to interrupt)`.
    Busy(String),
    /// A question waits for an answer.
    Prompt {
        /// The question and its context.
        text: String,
        /// Numbered choices.
        choices: Vec<Choice>,
    },
    /// The process exited.
    Dead,
    /// A shell runs instead of Codex.
    Shell,
}

const SHELLS: &[&str] = &["bash", "sh", "zsh", "fish", "dash", "ksh", "tcsh", "csh"];
const PROMPT_MARKERS: &[&str] = &[
    "Would you like to",
    "Press enter to confirm",
    "Do you trust",
    "Trust this folder",
    "Allow Codex to",
    // `/new` in a git repository (Codex 0.169): a worktree or a fresh checkout.
    "Where should the new conversation run",
];

/// Classifies a plain capture.
///
/// Only Codex's live bottom area counts, never the transcript above it: an answer may quote a
/// question ("Would you like to … 1. … 2.") or a status line ("esc to interrupt"), and taking
/// that for the real thing would hold the topic's input for up to 30 minutes or refuse an
/// Escape. The bottom area is either the composer with its footer (and, during a turn, the
/// status line above it) or, when no composer is drawn, a question whose choices end the
/// screen (see [`find_prompt`]).
pub fn classify(capture: &str, facts: PaneFacts<'_>) -> Screen {
    if facts.dead {
        return Screen::Dead;
    }
    let lines: Vec<&str> = capture.lines().collect();
    let live_composer = composer_line(&lines);
    if live_composer.is_none()
        && let Some(prompt) = find_prompt(&lines)
    {
        return prompt;
    }
    let drawn: Vec<&str> = lines
        .iter()
        .copied()
        .filter(|l| !l.trim().is_empty())
        .collect();
    // The transcript browser replaces the footer's hints (the composer stays drawn).
    if drawn
        .iter()
        .rev()
        .take(2)
        .any(|l| l.contains("Browsing transcript"))
    {
        return Screen::Prompt {
            text: "Codex is showing its transcript browser (Esc goes back)".into(),
            choices: Vec::new(),
        };
    }
    if let Some(at) = live_composer {
        return match status_above(&lines, at) {
            Some(line) => Screen::Busy(status_text(line)),
            None => Screen::Ready,
        };
    }
    // No composer (a screen mid-redraw): a status line among the last lines still means a turn.
    if let Some(line) = drawn
        .iter()
        .rev()
        .take(BOTTOM_LINES)
        .find(|l| is_status_line(l))
    {
        return Screen::Busy(status_text(line));
    }
    // A shell in the foreground is also what a window shows for a moment while `sh -c` starts
    // Codex: only a shell prompt on the last line means Codex is not (or no longer) there.
    if SHELLS.contains(&facts.current_command)
        && drawn
            .last()
            .is_some_and(|l| l.trim_end().ends_with(['$', '#', '%', '>']))
    {
        return Screen::Shell;
    }
    Screen::Starting
}

/// How far above the composer (or the screen's end) Codex's status line may sit: the status
/// line, the `Queued follow-up inputs` list and blank lines between them.
const BOTTOM_LINES: usize = 12;

/// The index of the live composer's `›` line: the last `›` line that is not a numbered choice,
/// with one to three footer lines under its text. History cells also start with `›`, so a `›`
/// line with nothing drawn below it (a screen mid-redraw) or with an answer below it (answer
/// cells start at the left edge, `• …`; the composer's lines and its footer are all indented)
/// is not the composer — except a fresh session's composer at the bottom, under nothing but
/// Codex's header, before Codex draws its footer (see [`startup_composer`]).
fn composer_line(lines: &[&str]) -> Option<usize> {
    composer_span(lines).map(|(start, _)| start)
}

/// The composer's `›` line and where its footer begins. The text may hold blank lines (a
/// message of several paragraphs, e.g. a caption and the files attached to it); the footer is
/// the last block of lines, after the last blank line. A fresh session's screen may show the
/// composer before any footer (see [`startup_composer`]).
fn composer_span(lines: &[&str]) -> Option<(usize, usize)> {
    composer_with_footer(lines).or_else(|| startup_composer(lines))
}

fn composer_with_footer(lines: &[&str]) -> Option<(usize, usize)> {
    let start = lines
        .iter()
        .rposition(|l| l.trim_start().starts_with('›') && !is_choice_line(l))?;
    let below = &lines[start + 1..];
    if below
        .iter()
        .any(|l| !l.trim().is_empty() && !l.starts_with("  "))
    {
        return None;
    }
    let last = below.iter().rposition(|l| !l.trim().is_empty())?;
    let footer_from = below[..last]
        .iter()
        .rposition(|l| l.trim().is_empty())
        .map_or(0, |blank| blank + 1);
    // The first block right under the `›` line is the text's own continuation, never a footer.
    if footer_from == 0 {
        return None;
    }
    (1..=3)
        .contains(&(last + 1 - footer_from))
        .then_some((start, start + 1 + footer_from))
}

/// The composer of a fresh session drawn before its footer: while Codex loads (`loading` in its
/// header) and for a while after, text typed into it shows on the screen's last lines with no
/// footer under it, and right above it only Codex's header (`>_ OpenAI Codex (v…)` and the
/// folder). Enter there submits the text (0.169.0 and 0.171.0, `record_startup.sh`; on a loaded
/// machine the footer took more than 3 s). A `›` history cell never sits alone at the bottom
/// under the header: the first message's cell is drawn right under the header, with the
/// composer and its footer below it.
fn startup_composer(lines: &[&str]) -> Option<(usize, usize)> {
    let last = lines.iter().rposition(|l| !l.trim().is_empty())?;
    if lines.len() - 1 - last > STARTUP_TRAILING_BLANKS {
        return None;
    }
    let start = lines[..=last]
        .iter()
        .rposition(|l| l.trim_start().starts_with('›'))?;
    if is_choice_line(lines[start])
        || lines[start + 1..=last]
            .iter()
            .any(|l| !l.trim().is_empty() && !l.starts_with("  "))
    {
        return None;
    }
    // Right above it (blank rows and the first launch's logo aside): the header's line, or the
    // header's line and the folder (or `loading`) under it, indented.
    let mut above = lines[..start]
        .iter()
        .rev()
        .filter(|l| !l.trim().is_empty() && !is_logo_line(l));
    let is_header = |l: &&&str| l.contains(">_ OpenAI Codex");
    let nearest = above.next()?;
    let under_header = is_header(&nearest)
        || (nearest.starts_with("  ") && above.next().is_some_and(|l| is_header(&l)));
    under_header.then_some((start, last + 1))
}

/// Blank rows a capture may hold under a footerless startup composer (Codex keeps the screen's
/// last row for its footer).
const STARTUP_TRAILING_BLANKS: usize = 2;

/// A row of the first launch's logo (braille art).
fn is_logo_line(line: &str) -> bool {
    line.trim()
        .chars()
        .all(|c| c.is_whitespace() || ('\u{2800}'..='\u{28ff}').contains(&c))
}

/// Codex's status line above the composer at `at` (`◦ Working (2s • esc to interrupt)`), if a
/// turn runs. The search stops at what belongs to the transcript: a finished turn's
/// `Worked for …` line or a history cell of the user (`› …`).
fn status_above<'a>(lines: &[&'a str], at: usize) -> Option<&'a str> {
    lines[..at]
        .iter()
        .rev()
        .take(BOTTOM_LINES)
        .take_while(|l| !l.contains("Worked for") && !l.trim_start().starts_with('›'))
        .find(|l| is_status_line(l))
        .copied()
}

/// `◦ Working (2s • esc to interrupt)`: a spinner or bullet, a header, and the elapsed time
/// with the interrupt hint in parentheses.
fn is_status_line(line: &str) -> bool {
    let t = line.trim();
    t.contains("esc to interrupt")
        && t.contains('(')
        && t.chars().next().is_some_and(|c| !c.is_alphanumeric())
}

/// Codex's composer (the input box) as a capture shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Composer {
    /// What the box shows, lines joined with `\n`. When nothing is typed this is Codex's dim
    /// placeholder (e.g. `Ask Codex to do anything`), which a plain capture cannot tell from
    /// text: see `empty`.
    pub text: String,
    /// Nothing is typed: the footer offers `? for shortcuts`, which Codex 0.169 shows only
    /// under an empty composer (idle or busy); with text in it the hint line is blank or says
    /// `tab to queue message`, and with the slash popup open it is gone.
    pub empty: bool,
}

impl Composer {
    /// Whether the box holds `sent` (typed by us, maybe wrapped, maybe scrolled). Whitespace is
    /// ignored since wrapping moves it; a long paste shows as `[Pasted Content N chars]`.
    pub fn holds(&self, sent: &str) -> bool {
        if self.empty {
            return false;
        }
        let shown: String = self.text.split_whitespace().collect();
        let sent: String = sent.split_whitespace().collect();
        if shown.is_empty() || sent.is_empty() {
            return false;
        }
        shown == sent
            || shown.starts_with("[PastedContent")
            || (shown.chars().count() >= 8.min(sent.chars().count()) && sent.contains(&shown))
    }
}

/// Finds the composer: the last `›` line that is not a numbered choice, its continuation lines
/// (indented by two spaces) up to a blank line, and under that Codex's footer of one to three
/// lines. `None` when no composer is drawn: a prompt, a picker (`/model`, the worktree question
/// of `/new` in a git repository), a pager (`/diff`), or a screen mid-redraw.
///
/// Codex 0.169 draws the slash popup *above* the composer (`› /status      show current
/// session…` rows, then a blank line, then `› /status`), so the last `›` line is the composer.
pub fn composer(capture: &str) -> Option<Composer> {
    let lines: Vec<&str> = capture.lines().collect();
    let (start, end) = composer_span(&lines)?;
    let first = lines[start].trim_start().trim_start_matches('›');
    let mut text = vec![first.strip_prefix(' ').unwrap_or(first).trim_end()];
    text.extend(lines[start + 1..end].iter().map(|l| l.trim()));
    let footer: Vec<&str> = lines[end..]
        .iter()
        .copied()
        .filter(|l| !l.trim().is_empty())
        .collect();
    let text = text.join("\n").trim().to_owned();
    let empty = text.is_empty() || footer.iter().any(|l| l.contains("? for shortcuts"));
    Some(Composer { text, empty })
}

/// How Codex said no to a slash command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// `• Unrecognized command '/frobnicate'. Type "/" for a list of supported commands.`;
    /// the text stays in the composer.
    Unknown,
    /// `■ '/new' is disabled while a task is in progress.` (a command that needs an idle Codex,
    /// sent during a turn); the composer is emptied. Holds Codex's reason after the command,
    /// e.g. `disabled while a task is in progress`.
    Disabled(String),
}

/// Every refusal of the slash command `token` (e.g. `/frobnicate`) on the screen, top to bottom.
/// Codex 0.169 writes these into its history area, never into the transcript. Old refusals stay
/// on screen, so callers compare counts before and after pressing Enter.
pub fn command_refusals(capture: &str, token: &str) -> Vec<Refusal> {
    let unknown = format!("Unrecognized command '{token}'");
    let disabled = format!("'{token}' is ");
    capture
        .lines()
        .filter_map(|l| {
            if l.contains(&unknown) {
                return Some(Refusal::Unknown);
            }
            let (_, rest) = l.split_once(&disabled)?;
            rest.starts_with("disabled")
                .then(|| Refusal::Disabled(rest.trim().trim_end_matches('.').to_owned()))
        })
        .collect()
}

fn status_text(line: &str) -> String {
    line.trim()
        .trim_start_matches([
            '•', '◦', '·', '⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏',
        ])
        .trim()
        .to_owned()
}

/// A question Codex asks in its bottom area, called only when no composer is drawn: the last
/// numbered choices on screen with at most [`HINT_LINES`] lines under them (`Press enter to
/// confirm or esc to cancel`), and a question marker in the box above the choices. The box
/// reaches up to the first line that starts in column 0 (history cells start with `•`, `›`,
/// `■`, …; every line of Codex's question views is indented or framed). Its text runs from the
/// marker (with the context lines right above it) to the choices.
fn find_prompt(lines: &[&str]) -> Option<Screen> {
    let last = lines.iter().rposition(|l| is_choice_line(l))?;
    let below: Vec<&str> = lines[last + 1..]
        .iter()
        .map(|l| l.trim())
        .filter(|t| !t.is_empty())
        .collect();
    if below.len() > HINT_LINES || below.iter().any(|t| t.starts_with('›')) {
        return None;
    }
    // The choice list: choice lines, and indented lines between them (wrapped labels).
    let mut first_choice = last;
    let mut i = last;
    while i > 0 {
        i -= 1;
        let line = lines[i];
        if is_choice_line(line) {
            first_choice = i;
        } else if line.trim().is_empty() || !line.starts_with(' ') {
            break;
        }
    }
    let mut top = first_choice;
    while top > 0 && !starts_history_cell(lines[top - 1]) {
        top -= 1;
    }
    let choices = || -> Vec<Choice> {
        lines[first_choice..=last]
            .iter()
            .filter_map(|l| parse_choice(l))
            .collect()
    };
    // A selection list is known by its hints alone: what the transcript above it says (an
    // answer quoting a question) must not change its title.
    if below
        .iter()
        .any(|t| LIST_HINTS.iter().any(|h| t.contains(h)))
    {
        // An entry's name and its description sit in columns: one line for a button. Only
        // entries 1–9 can be picked by a key (Codex takes "1" of "10" at once).
        let entries = choices()
            .into_iter()
            .filter(|c| c.key.chars().count() == 1)
            .map(|c| Choice {
                label: c
                    .label
                    .split("  ")
                    .map(str::trim)
                    .filter(|part| !part.is_empty())
                    .collect::<Vec<_>>()
                    .join(" — "),
                ..c
            })
            .collect();
        return Some(Screen::Prompt {
            text: list_title(&lines[top..first_choice]),
            choices: entries,
        });
    }
    let marked = |l: &&str| PROMPT_MARKERS.iter().any(|m| l.contains(m));
    let start = match lines[top..first_choice].iter().rposition(marked) {
        Some(at) => top + at,
        None if below.iter().any(|t| t.contains("Press enter to confirm")) => top,
        None => return None,
    };
    // Context above the question: the command or action being asked about, up to a blank gap.
    let mut from = start;
    while from > top && !lines[from - 1].trim().is_empty() && start - from < 8 {
        from -= 1;
    }
    let text: Vec<String> = lines[from..first_choice]
        .iter()
        .map(|l| l.trim())
        .filter(|t| !t.is_empty() && !is_frame(t))
        .map(|t| t.trim_matches(['│', '┃']).trim().to_owned())
        .collect();
    Some(Screen::Prompt {
        text: text.join("\n"),
        choices: choices(),
    })
}

/// The key hints under one of Codex's own numbered selection lists — `/model` and its effort
/// list, `/permissions`, `/review`'s presets: "enter select · esc back", "enter default · s
/// session · esc back". (The resume picker is a searchable table without numbers; it is not
/// offered as buttons.) A digit picks an entry of such a list at once, so it is a
/// question like any other: its entries become buttons in the topic.
const LIST_HINTS: &[&str] = &["esc back", "enter select"];

/// A selection list's title: the block of lines right above its entries (the rest of the
/// screen above is the transcript, or Codex's header over blank rows in a full-screen list).
fn list_title(above: &[&str]) -> String {
    let drawn: Vec<&str> = above
        .iter()
        .rev()
        .map(|l| l.trim())
        .skip_while(|t| t.is_empty())
        .take_while(|t| !t.is_empty() && !is_frame(t))
        .take(3)
        .collect();
    let title: Vec<&str> = drawn.into_iter().rev().collect();
    if title.is_empty() {
        "Codex shows a list to choose from".into()
    } else {
        title.join("\n")
    }
}

/// Lines a question view draws under its choices (its key hints).
const HINT_LINES: usize = 3;

/// A line that begins a transcript cell (`• answer`, `› message`, `■ interrupted`): drawn from
/// column 0 with something other than a box frame.
fn starts_history_cell(line: &str) -> bool {
    line.chars()
        .next()
        .is_some_and(|c| !c.is_whitespace() && !"│┃╭╰┌└".contains(c))
}

fn is_frame(t: &str) -> bool {
    t.chars().all(|c| "─━│┃╭╮╰╯┌┐└┘ ".contains(c))
}

fn is_choice_line(line: &str) -> bool {
    parse_choice(line).is_some()
}

/// `› 1. Yes, proceed (y)` or `  2. No (esc)` → key "1", label "Yes, proceed (y)".
fn parse_choice(line: &str) -> Option<Choice> {
    let t = line
        .trim()
        .trim_matches(['│', '┃'])
        .trim()
        .trim_start_matches('›')
        .trim_start();
    let digits: String = t.chars().take_while(char::is_ascii_digit).collect();
    if digits.is_empty() || digits.len() > 2 {
        return None;
    }
    let rest = t[digits.len()..].strip_prefix(". ")?;
    let label = rest.trim();
    if label.is_empty() {
        return None;
    }
    Some(Choice {
        key: digits,
        label: label.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIVE: PaneFacts<'static> = PaneFacts {
        dead: false,
        current_command: "codex",
    };

    #[test]
    fn composer_means_ready_and_esc_to_interrupt_means_busy() {
        let ready = "header\n\n› \n\n  ? for shortcuts\n";
        assert_eq!(classify(ready, LIVE), Screen::Ready);
        // A history cell with nothing drawn under it: Codex is mid-redraw, not ready.
        let redraw = "header\n› slow: 30\n\n\n";
        assert_eq!(classify(redraw, LIVE), Screen::Starting);
        let busy = "• Working (2s • esc to interrupt)\n\n› \n";
        assert_eq!(
            classify(busy, LIVE),
            Screen::Busy("Working (2s • esc to interrupt)".into())
        );
    }

    #[test]
    fn approval_prompt_has_text_and_choices() {
        let screen = "\
• Running touch x

  Would you like to run the following command?

  $ touch x

› 1. Yes, proceed (y)
  2. Yes, and don't ask again for this command (p)
  3. No, and tell Codex what to do differently (esc)

  Press enter to confirm or esc to cancel
";
        let Screen::Prompt { text, choices } = classify(screen, LIVE) else {
            panic!("not a prompt");
        };
        assert!(text.contains("Would you like to run"));
        assert!(text.contains("touch x"));
        assert_eq!(choices.len(), 3);
        assert_eq!(choices[0].key, "1");
        assert_eq!(choices[0].label, "Yes, proceed (y)");
    }

    #[test]
    fn dead_and_shell_and_starting() {
        let dead = PaneFacts {
            dead: true,
            current_command: "codex",
        };
        assert_eq!(classify("› \n", dead), Screen::Dead);
        let shell = PaneFacts {
            dead: false,
            current_command: "bash",
        };
        assert_eq!(classify("user@host:~$ ", shell), Screen::Shell);
        // `sh -c codex` before Codex draws anything is starting, not a shell.
        assert_eq!(classify("", shell), Screen::Starting);
        assert_eq!(classify("", LIVE), Screen::Starting);
    }

    #[test]
    fn the_composer_is_read_with_its_continuation_lines() {
        let typed = "› old message\n\n• answer\n\n› line one\n  line two\n\n  model · ~/p\n  tab to queue message\n";
        let c = composer(typed).unwrap();
        assert_eq!(c.text, "line one\nline two");
        assert!(!c.empty);
        assert!(c.holds("line one\nline two"));
        assert!(c.holds("line one line two"));
        assert!(!c.holds("line one"));
        let idle =
            "› Ask Codex to do anything\n\n  model · ~/p\n  ← for agents · ? for shortcuts\n";
        let c = composer(idle).unwrap();
        assert!(c.empty);
        assert!(!c.holds("Ask Codex to do anything"));
        // A history cell with a whole answer under it is not the composer.
        assert_eq!(composer("› hi\n\n• a\n• b\n• c\n• d\n"), None);
        assert_eq!(composer("› mid-redraw\n"), None);
        // A fresh session's composer before its footer: the header above, the text at the
        // bottom. A history cell under the header (far from the bottom) or a `›` line at the
        // bottom under a transcript is not it.
        let header = "\n  >_ OpenAI Codex (v0.171.0)\n     ~/p\n";
        let gap = "\n".repeat(40);
        let startup = format!("{header}{gap}› echo: far\n\n");
        let c = composer(&startup).unwrap();
        assert_eq!(c.text, "echo: far");
        assert!(!c.empty && c.holds("echo: far"));
        assert_eq!(classify(&startup, LIVE), Screen::Ready);
        let cell = format!("{header}\n› echo: far\n{gap}");
        assert_eq!(composer(&cell), None);
        assert_eq!(classify(&cell, LIVE), Screen::Starting);
        let redraw = format!("{header}\n› old\n\n• answer{gap}› echo: far\n");
        assert_eq!(composer(&redraw), None);
        let no_header = format!("something else{gap}› echo: far\n");
        assert_eq!(composer(&no_header), None);
        let under_answer = format!("{header}\n• an answer\n{gap}› echo: far\n");
        assert_eq!(composer(&under_answer), None);
        let choice = format!("{header}{gap}› 1. Trust and continue\n");
        assert_eq!(composer(&choice), None);
        let pasted = "› [Pasted Content 2000 chars]\n\n  model · ~/p\n";
        assert!(composer(pasted).unwrap().holds(&"x".repeat(2000)));
    }

    #[test]
    fn refusals_name_their_command() {
        let screen = "\
• Unrecognized command '/frobnicate'. Type \"/\" for a list of supported commands.
■ '/new' is disabled while a task is in progress.
• Unrecognized command '/frob'. Type \"/\" for a list of supported commands.
";
        assert_eq!(
            command_refusals(screen, "/frobnicate"),
            vec![Refusal::Unknown]
        );
        assert_eq!(
            command_refusals(screen, "/new"),
            vec![Refusal::Disabled(
                "disabled while a task is in progress".into()
            )]
        );
        assert_eq!(command_refusals(screen, "/status"), vec![]);
        assert_eq!(command_refusals(screen, "/fro"), vec![]);
    }

    proptest::proptest! {
        #[test]
        fn never_panics(s in "\\PC*", dead in proptest::bool::ANY) {
            let _ = classify(&s, PaneFacts { dead, current_command: "codex" });
            let _ = composer(&s);
            let _ = command_refusals(&s, "/new");
        }
    }
}

#[cfg(test)]
mod fixture_tests {
    //! Captures of the real Codex TUI of each pinned version: 0.169.0 in `testdata/panes`,
    //! 0.171.0 in `testdata/0.171.0/panes` (see `testdata/README.md`). The screens recorded by
    //! the same script must classify the same on every version.

    use super::*;

    /// The pinned Codex versions and the folder (under `testdata/`) of their captures.
    const VERSIONS: [(&str, &str); 2] = [("0.169.0", ""), ("0.171.0", "0.171.0/")];

    fn fixture(name: &str) -> String {
        fixture_of(VERSIONS[0], name)
    }

    fn fixture_of((_, dir): (&str, &str), name: &str) -> String {
        let path = format!(
            "{}/testdata/{dir}panes/{name}.txt",
            env!("CARGO_MANIFEST_DIR")
        );
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    fn classify_fixture(name: &str, dead: bool) -> Screen {
        classify_fixture_of(VERSIONS[0], name, dead)
    }

    fn classify_fixture_of(version: (&str, &str), name: &str, dead: bool) -> Screen {
        let text = fixture_of(version, name);
        classify(
            &text,
            PaneFacts {
                dead,
                current_command: if dead { "" } else { "codex" },
            },
        )
    }

    #[test]
    fn codexs_own_selection_lists_are_questions_with_their_entries() {
        let cases: [(&str, &str, &str, usize, &str); 4] = [
            ("model_list", "Select Model and Effort", "1", 8, "GPT-"),
            (
                "permissions_list",
                "Update Model Permissions",
                "4",
                4,
                "Read Only — Read workspace",
            ),
            (
                "review_list",
                "Select a review preset",
                "2",
                4,
                "Review uncommitted changes",
            ),
            (
                "effort_list",
                "Select Reasoning Level for GPT-6-Luna",
                "3",
                5,
                "High — Greater",
            ),
        ];
        for version in VERSIONS {
            for (name, title, key, count, label) in cases {
                if name == "effort_list" && version.0 != "0.169.0" {
                    continue;
                }
                let screen = classify_fixture_of(version, name, false);
                let Screen::Prompt { text, choices } = &screen else {
                    panic!("{} {name}: {screen:?}", version.0);
                };
                assert_eq!(text, title, "{} {name}", version.0);
                assert_eq!(choices.len(), count, "{} {name}: {choices:?}", version.0);
                let choice = choices.iter().find(|c| c.key == key).unwrap();
                assert!(choice.label.starts_with(label), "{choice:?}");
            }
        }
    }

    #[test]
    fn recorded_screens_are_classified() {
        for version in VERSIONS {
            let v = version.0;
            for name in [
                "ready",
                "ready_first_launch",
                "composer_typed",
                "turn_complete",
                "interrupted",
                "tool_call_complete",
                "commentary_complete",
                "steered_complete",
                "queued_complete",
                "long_complete",
                "resumed_ready",
                "approval_approved",
                "approval_denied",
            ] {
                assert_eq!(
                    classify_fixture_of(version, name, false),
                    Screen::Ready,
                    "{v} {name}"
                );
            }
            for name in ["busy", "busy_typed", "busy_queued"] {
                let screen = classify_fixture_of(version, name, false);
                assert!(
                    matches!(screen, Screen::Busy(ref l) if l.contains("esc to interrupt")),
                    "{v} {name}: {screen:?}"
                );
            }
            for name in [
                "exited_ctrl_c",
                "exited_quit",
                "exited_before_first_message",
            ] {
                assert_eq!(
                    classify_fixture_of(version, name, true),
                    Screen::Dead,
                    "{v} {name}"
                );
            }
        }
    }

    #[test]
    fn the_approval_prompt_and_the_trust_screen_are_prompts() {
        for version in VERSIONS {
            let v = version.0;
            let approval = classify_fixture_of(version, "approval", false);
            let Screen::Prompt { text, choices } = approval else {
                panic!("{v} approval: {approval:?}");
            };
            assert!(
                text.contains("Would you like to run the following command?"),
                "{v} {text}"
            );
            assert!(text.contains("touch approved.txt"), "{v} {text}");
            assert_eq!(choices.len(), 3, "{v} {choices:?}");
            assert_eq!(choices[0].key, "1");
            assert!(
                choices[0].label.starts_with("Yes, proceed"),
                "{v} {choices:?}"
            );
            assert!(choices[2].label.contains("No"), "{v} {choices:?}");
            assert!(
                matches!(
                    classify_fixture_of(version, "transcript_backtrack", false),
                    Screen::Prompt { .. }
                ),
                "{v}"
            );
            let trust = classify_fixture_of(version, "trust_folder", false);
            assert!(
                matches!(trust, Screen::Prompt { ref choices, .. } if choices.len() >= 2),
                "{v} {trust:?}"
            );
        }
    }

    /// `record_startup.sh`: text pasted into a fresh session's first composer shows before
    /// Codex draws the footer under it (while `loading` and after), and Enter there submits it.
    #[test]
    fn the_first_composer_holds_text_before_its_footer_is_drawn() {
        for version in VERSIONS {
            let v = version.0;
            for name in ["startup_typed", "startup_typed_loading"] {
                let text = fixture_of(version, name);
                assert!(!text.contains("for shortcuts"), "{v} {name}");
                let c = composer(&text).unwrap_or_else(|| panic!("{v} {name}: no composer"));
                assert!(c.holds("echo: far") && !c.empty, "{v} {name}: {c:?}");
                assert_eq!(
                    classify_fixture_of(version, name, false),
                    Screen::Ready,
                    "{v} {name}"
                );
            }
        }
    }

    /// `record_quoted.sh`: an answer that quotes a question with its choices and hints, and a
    /// status line, above the idle composer (0.169 and 0.171). Only the live bottom area counts.
    #[test]
    fn an_answer_that_quotes_a_prompt_is_ready() {
        for name in ["answer_quotes_prompt", "answer_quotes_prompt_0171"] {
            let text = fixture(name);
            assert!(text.contains("Would you like to run the following command?"));
            assert!(text.contains("esc to interrupt"));
            assert_eq!(classify_fixture(name, false), Screen::Ready, "{name}");
            assert!(composer(&text).is_some_and(|c| c.empty), "{name}");
        }
    }

    #[test]
    fn the_live_question_is_found_under_a_quoted_one() {
        // The quoted answer scrolled up, and a real approval prompt below it.
        let quoted = fixture("answer_quotes_prompt");
        let head: Vec<&str> = quoted.lines().take(14).collect();
        let approval = fixture("approval");
        let live: Vec<&str> = approval.lines().skip(8).collect();
        let screen = format!("{}\n{}\n", head.join("\n"), live.join("\n"));
        let Screen::Prompt { text, choices } = classify(&screen, LIVE_FIXTURE) else {
            panic!("{:?}", classify(&screen, LIVE_FIXTURE));
        };
        assert!(text.contains("touch approved.txt"), "{text}");
        assert!(!text.contains("rm -rf build"), "{text}");
        assert_eq!(choices.len(), 3, "{choices:?}");
        // A status line quoted in history does not make a finished turn busy, a real one
        // under it does.
        let busy = fixture("busy").replace(
            "› slow: 30",
            "• and while it works it shows • Working (9s • esc to interrupt)",
        );
        assert_eq!(
            classify(&busy, LIVE_FIXTURE),
            Screen::Busy("Working (2s • esc to interrupt)".into())
        );
    }

    const LIVE_FIXTURE: PaneFacts<'static> = PaneFacts {
        dead: false,
        current_command: "codex",
    };

    /// `record_slash.sh`: what Codex shows before and after Enter on slash commands.
    #[test]
    fn slash_command_screens() {
        for version in VERSIONS {
            slash_command_screens_of(version);
        }
        let composer_of = |name: &str| composer(&fixture(name));
        // A message of several paragraphs (a caption and the file attached to it): the text
        // runs past its blank lines down to the footer.
        let attached = "echo: stored\n\nAttached file (saved on this machine):\n\
                        - /tmp/.tmp7Ke6x7/inbox/sdd25f6d196d23c05/data.bin (document, 1.1 MB)";
        assert!(composer_of("attachment_typed").unwrap().holds(attached));
        assert_eq!(classify_fixture("attachment_typed", false), Screen::Ready);
    }

    fn slash_command_screens_of(version: (&str, &str)) {
        let v = version.0;
        let fixture = |name: &str| fixture_of(version, name);
        let composer_of = |name: &str| composer(&fixture(name));
        let classify_fixture = |name: &str| classify_fixture_of(version, name, false);
        // Typed: the popup rows (`› /status      show…`) sit above the composer.
        let typed = composer_of("slash_status_typed").unwrap();
        assert_eq!(typed.text, "/status", "{v}");
        assert!(typed.holds("/status") && !typed.empty, "{v}");
        assert_eq!(classify_fixture("slash_status_typed"), Screen::Ready, "{v}");
        assert!(
            composer_of("slash_unknown_typed")
                .unwrap()
                .holds("/frobnicate"),
            "{v}"
        );
        // Taken: the composer is empty.
        for name in [
            "slash_status_done",
            "slash_new_done",
            "slash_unknown_cleared",
        ] {
            let c = composer_of(name).unwrap();
            assert!(c.empty, "{v} {name}: {c:?}");
            assert_eq!(classify_fixture(name), Screen::Ready, "{v} {name}");
        }
        // The earlier recordings agree.
        for name in [
            "ready",
            "busy",
            "busy_queued",
            "turn_complete",
            "resumed_ready",
        ] {
            assert!(composer_of(name).is_some_and(|c| c.empty), "{v} {name}");
        }
        assert!(
            composer_of("composer_typed")
                .unwrap()
                .holds("echo: hello from the fixture"),
            "{v}"
        );
        assert!(
            composer_of("busy_typed")
                .unwrap()
                .holds("echo: steered while busy"),
            "{v}"
        );
        for name in ["approval", "trust_folder", "transcript_backtrack"] {
            assert!(
                !composer_of(name).is_some_and(|c| c.holds("echo: x")),
                "{v} {name}"
            );
        }
        // The worktree question of /new in a git repository: no composer on screen, and a
        // question with its two choices (buttons in Telegram).
        assert_eq!(composer_of("slash_new_worktree_question"), None, "{v}");
        match classify_fixture("slash_new_worktree_question") {
            Screen::Prompt { text, choices } => {
                assert!(
                    text.contains("Where should the new conversation run?"),
                    "{v} {text}"
                );
                assert_eq!(choices.len(), 2, "{v} {choices:?}");
                assert!(choices[0].label.starts_with("Use current Git worktree"));
            }
            other => panic!("{v} {other:?}"),
        }
        // Refused: an unknown command stays in the composer, idle or busy, under Codex's line.
        for name in ["slash_unknown_refused", "slash_unknown_busy"] {
            let screen = fixture(name);
            assert!(
                composer(&screen).unwrap().holds("/frobnicate"),
                "{v} {name}"
            );
            assert_eq!(
                command_refusals(&screen, "/frobnicate"),
                vec![Refusal::Unknown],
                "{v} {name}"
            );
        }
        assert!(
            command_refusals(&fixture("slash_unknown_typed"), "/frobnicate").is_empty(),
            "{v}"
        );
        // /new during a turn: refused, and the composer was emptied.
        let busy = fixture("slash_new_busy");
        assert_eq!(
            command_refusals(&busy, "/new"),
            vec![Refusal::Disabled(
                "disabled while a task is in progress".into()
            )],
            "{v}"
        );
        assert!(composer(&busy).unwrap().empty, "{v}");
        assert!(
            matches!(classify_fixture("slash_new_busy"), Screen::Busy(_)),
            "{v}"
        );
    }
}
