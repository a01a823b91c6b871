//! Button data: the one encoder and decoder of every `callback_data` the center puts on a
//! button. Telegram hands the data back verbatim from anyone who can press (or forge) a button,
//! so decoding is strict: anything that is not exactly what [`Callback::encode`] writes is
//! refused, and the user gets [`EXPIRED`] and nothing else happens.

/// The answer to a button whose data is stale, foreign or forged.
pub(crate) const EXPIRED: &str = "This button has expired.";

/// Telegram's limit on `callback_data`.
pub(crate) const MAX_DATA: usize = 64;

/// What a button does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Callback {
    /// A step in a bind menu: the menu's token, the step (`c`ancel, `o`pen, `p`age, `u`p,
    /// `s`elect, `n`ew, `r`esume, `a`ttach, `h`idden, `v`iew read-only) and its index.
    Menu {
        token: String,
        op: MenuOp,
        index: Option<u32>,
    },
    /// Press a key in answer to Codex's question in `session`; `prompt` is the question's id
    /// (8 hex digits, `shared::prompt::prompt_id`): the node presses nothing unless that very
    /// question is on screen. `None` from nodes that do not name questions.
    Key {
        session: String,
        key: PromptKey,
        prompt: Option<String>,
    },
    /// Show a page of `/history`, `skip` entries from the newest.
    History { skip: u32 },
    /// Drop the topic's held messages.
    DropHeld,
    /// Take the screenshot of `session` again.
    Refresh { session: String },
    /// Approve, reject, cancel or run again job `id`.
    Job { id: i64, action: JobAction },
    /// A key of the topic's `/toolbar`. It names no session: the toolbar belongs to the topic
    /// and acts on whatever window the topic is bound to when pressed.
    Toolbar(ToolbarKey),
    /// A fix offered by `/cleanup` (checked again when pressed).
    Cleanup(CleanupFix),
    /// A button of a read-only topic. It names no thread: it acts on whatever thread the topic
    /// shows read-only when pressed (kept in the store, so it works after a restart).
    Replay(ReplayAction),
    /// `/kill` in a topic whose window runs in a worktree the node made: close `session`'s
    /// window and remove or keep the worktree, or cancel (stale once the topic holds another).
    Worktree {
        session: String,
        action: WorktreeAction,
    },
    /// Type the last input of `session` again in a new window on the account the node
    /// switched to after a usage limit (stale once the topic holds another session).
    Retry { session: String },
    /// Install Codex release `version` on node `node` (offered when its heartbeat said a
    /// newer release is out; the node checks again whether it may).
    CodexUpgrade { node: String, version: String },
}

/// What a `/kill` button of a worktree topic does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WorktreeAction {
    /// Close the window and remove its (clean) worktree.
    Remove,
    /// Close the window, keep the worktree.
    Keep,
    /// Close nothing.
    Cancel,
}

/// What a read-only topic's button does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ReplayAction {
    /// Show a page of the conversation, `skip` entries from the newest.
    Page { skip: u32 },
    /// Start a window resuming the thread and bind the topic to it.
    Live,
}

/// What a `/cleanup` button fixes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum CleanupFix {
    /// Unbind this topic, whose window is gone.
    Unbind { chat_id: i64, thread_id: i32 },
    /// Close the window of `session`, which no topic holds (looked up on every connected
    /// machine: the data has no room for a node name next to a long session id).
    Close { session: String },
}

/// A key of the `/toolbar`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ToolbarKey {
    Esc,
    Interrupt,
    Screenshot,
    Status,
    /// Switch the topic's input mode between steer and queue.
    Mode,
}

impl ToolbarKey {
    fn letter(self) -> char {
        match self {
            Self::Esc => 'e',
            Self::Interrupt => 'i',
            Self::Screenshot => 's',
            Self::Status => 't',
            Self::Mode => 'm',
        }
    }

    fn from_letter(s: &str) -> Option<Self> {
        Some(match s {
            "e" => Self::Esc,
            "i" => Self::Interrupt,
            "s" => Self::Screenshot,
            "t" => Self::Status,
            "m" => Self::Mode,
            _ => return None,
        })
    }
}

/// What a job's button does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum JobAction {
    Approve,
    Reject,
    Cancel,
    /// Submit the same job again.
    Rerun,
}

impl JobAction {
    fn letter(self) -> char {
        match self {
            Self::Approve => 'a',
            Self::Reject => 'r',
            Self::Cancel => 'c',
            Self::Rerun => 'x',
        }
    }

    fn from_letter(s: &str) -> Option<Self> {
        Some(match s {
            "a" => Self::Approve,
            "r" => Self::Reject,
            "c" => Self::Cancel,
            "x" => Self::Rerun,
            _ => return None,
        })
    }
}

/// A step in a bind menu.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MenuOp {
    Cancel,
    Open,
    Page,
    Up,
    Select,
    New,
    Resume,
    /// Bind to a window that is already open (no topic holds it).
    Attach,
    /// Show or hide hidden folders / sessions of closed topics.
    Hidden,
    /// Show a session read-only: its conversation, no window, nothing typed.
    ReadOnly,
    /// Start a new session in a new git worktree of the folder's repository.
    Worktree,
}

/// A key that answers Codex's question.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PromptKey {
    Escape,
    /// The choice's key as Codex shows it (`1`, `y`, …).
    Choice(char),
}

impl MenuOp {
    fn letter(self) -> char {
        match self {
            Self::Cancel => 'c',
            Self::Open => 'o',
            Self::Page => 'p',
            Self::Up => 'u',
            Self::Select => 's',
            Self::New => 'n',
            Self::Resume => 'r',
            Self::Attach => 'a',
            Self::Hidden => 'h',
            Self::ReadOnly => 'v',
            Self::Worktree => 'w',
        }
    }

    fn from_letter(s: &str) -> Option<Self> {
        Some(match s {
            "c" => Self::Cancel,
            "o" => Self::Open,
            "p" => Self::Page,
            "u" => Self::Up,
            "s" => Self::Select,
            "n" => Self::New,
            "r" => Self::Resume,
            "a" => Self::Attach,
            "h" => Self::Hidden,
            "v" => Self::ReadOnly,
            "w" => Self::Worktree,
            _ => return None,
        })
    }
}

impl Callback {
    /// The button's data (at most [`MAX_DATA`] bytes for the ids the center makes).
    pub(crate) fn encode(&self) -> String {
        match self {
            Self::Menu { token, op, index } => {
                let index = index.map(|i| i.to_string()).unwrap_or_default();
                format!("m|{token}|{}|{index}", op.letter())
            }
            Self::Key {
                session,
                key,
                prompt,
            } => {
                let key = match key {
                    PromptKey::Escape => "esc".to_owned(),
                    PromptKey::Choice(c) => c.to_string(),
                };
                match prompt {
                    Some(p) => format!("k|{session}|{key}|{p}"),
                    None => format!("k|{session}|{key}"),
                }
            }
            Self::History { skip } => format!("h|{skip}"),
            Self::DropHeld => "q|drop".to_owned(),
            Self::Refresh { session } => format!("r|{session}"),
            Self::Job { id, action } => format!("j|{id}|{}", action.letter()),
            Self::Toolbar(key) => format!("t|{}", key.letter()),
            Self::Cleanup(CleanupFix::Unbind { chat_id, thread_id }) => {
                format!("c|u|{chat_id}|{thread_id}")
            }
            Self::Cleanup(CleanupFix::Close { session }) => format!("c|k|{session}"),
            Self::Replay(ReplayAction::Page { skip }) => format!("v|p|{skip}"),
            Self::Replay(ReplayAction::Live) => "v|live".to_owned(),
            Self::Worktree { session, action } => {
                let a = match action {
                    WorktreeAction::Remove => 'r',
                    WorktreeAction::Keep => 'k',
                    WorktreeAction::Cancel => 'c',
                };
                format!("w|{session}|{a}")
            }
            Self::Retry { session } => format!("a|{session}"),
            Self::CodexUpgrade { node, version } => format!("u|{node}|{version}"),
        }
    }

    /// The button `data` stands for; `None` unless it is exactly what [`Callback::encode`]
    /// writes.
    pub(crate) fn decode(data: &str) -> Option<Self> {
        if data.len() > MAX_DATA {
            return None;
        }
        let parts: Vec<&str> = data.split('|').collect();
        let decoded = match parts.as_slice() {
            ["m", token, op, index] if is_token(token) => Self::Menu {
                token: (*token).to_owned(),
                op: MenuOp::from_letter(op)?,
                index: match *index {
                    "" => None,
                    i => Some(number(i)?),
                },
            },
            ["k", session, key] if is_id(session) => Self::Key {
                session: (*session).to_owned(),
                key: prompt_key(key)?,
                prompt: None,
            },
            ["k", session, key, prompt] if is_id(session) && is_prompt_id(prompt) => Self::Key {
                session: (*session).to_owned(),
                key: prompt_key(key)?,
                prompt: Some((*prompt).to_owned()),
            },
            ["h", skip] => Self::History {
                skip: number(skip)?,
            },
            ["q", "drop"] => Self::DropHeld,
            ["r", session] if is_id(session) => Self::Refresh {
                session: (*session).to_owned(),
            },
            ["j", id, action] => Self::Job {
                id: i64::from(number(id)?),
                action: JobAction::from_letter(action)?,
            },
            ["t", key] => Self::Toolbar(ToolbarKey::from_letter(key)?),
            ["c", "u", chat_id, thread_id] => Self::Cleanup(CleanupFix::Unbind {
                chat_id: signed(chat_id)?,
                thread_id: i32::try_from(number(thread_id)?).ok()?,
            }),
            ["c", "k", session] if is_id(session) => Self::Cleanup(CleanupFix::Close {
                session: (*session).to_owned(),
            }),
            ["v", "p", skip] => Self::Replay(ReplayAction::Page {
                skip: number(skip)?,
            }),
            ["v", "live"] => Self::Replay(ReplayAction::Live),
            ["w", session, action] if is_id(session) => Self::Worktree {
                session: (*session).to_owned(),
                action: match *action {
                    "r" => WorktreeAction::Remove,
                    "k" => WorktreeAction::Keep,
                    "c" => WorktreeAction::Cancel,
                    _ => return None,
                },
            },
            ["a", session] if is_id(session) => Self::Retry {
                session: (*session).to_owned(),
            },
            ["u", node, version] if is_id(node) && shared::release::valid(version) => {
                Self::CodexUpgrade {
                    node: (*node).to_owned(),
                    version: (*version).to_owned(),
                }
            }
            _ => return None,
        };
        // Only the canonical spelling (no leading zeros, no "+1"): one button, one data.
        (decoded.encode() == data).then_some(decoded)
    }
}

fn prompt_key(k: &str) -> Option<PromptKey> {
    if k == "esc" {
        return Some(PromptKey::Escape);
    }
    let mut chars = k.chars();
    match (chars.next(), chars.next()) {
        (Some(c), None) if c.is_ascii_alphanumeric() => Some(PromptKey::Choice(c)),
        _ => None,
    }
}

/// A question's id: 8 lowercase hex digits.
fn is_prompt_id(s: &str) -> bool {
    s.len() == 8
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fn number(s: &str) -> Option<u32> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// A chat id: an optional `-` and digits.
fn signed(s: &str) -> Option<i64> {
    let digits = s.strip_prefix('-').unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// A menu token: short lowercase hex.
fn is_token(s: &str) -> bool {
    (1..=16).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// A session id as nodes make them.
fn is_id(s: &str) -> bool {
    (1..=48).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn callbacks() -> impl Strategy<Value = Callback> {
        let ops = prop_oneof![
            Just(MenuOp::Cancel),
            Just(MenuOp::Open),
            Just(MenuOp::Page),
            Just(MenuOp::Up),
            Just(MenuOp::Select),
            Just(MenuOp::New),
            Just(MenuOp::Resume),
            Just(MenuOp::Attach),
            Just(MenuOp::Hidden),
            Just(MenuOp::ReadOnly),
            Just(MenuOp::Worktree),
        ];
        let key = prop_oneof![
            Just(PromptKey::Escape),
            "[0-9a-zA-Z]".prop_map(|s| PromptKey::Choice(s.chars().next().unwrap())),
        ];
        prop_oneof![
            ("[0-9a-f]{8}", ops, proptest::option::of(0u32..10_000))
                .prop_map(|(token, op, index)| Callback::Menu { token, op, index }),
            (
                "[A-Za-z0-9_-]{1,36}",
                key,
                proptest::option::of("[0-9a-f]{8}")
            )
                .prop_map(|(session, key, prompt)| Callback::Key {
                    session,
                    key,
                    prompt
                }),
            (0u32..1_000_000).prop_map(|skip| Callback::History { skip }),
            Just(Callback::DropHeld),
            "[A-Za-z0-9_-]{1,36}".prop_map(|session| Callback::Refresh { session }),
            (
                0i64..=i64::from(u32::MAX),
                prop_oneof![
                    Just(JobAction::Approve),
                    Just(JobAction::Reject),
                    Just(JobAction::Cancel),
                    Just(JobAction::Rerun)
                ]
            )
                .prop_map(|(id, action)| Callback::Job { id, action }),
            prop_oneof![
                Just(ToolbarKey::Esc),
                Just(ToolbarKey::Interrupt),
                Just(ToolbarKey::Screenshot),
                Just(ToolbarKey::Status),
                Just(ToolbarKey::Mode),
            ]
            .prop_map(Callback::Toolbar),
            (any::<i64>(), 0..=i32::MAX).prop_map(|(chat_id, thread_id)| {
                Callback::Cleanup(CleanupFix::Unbind { chat_id, thread_id })
            }),
            "[A-Za-z0-9_-]{1,48}"
                .prop_map(|session| Callback::Cleanup(CleanupFix::Close { session })),
            (0u32..1_000_000).prop_map(|skip| Callback::Replay(ReplayAction::Page { skip })),
            Just(Callback::Replay(ReplayAction::Live)),
            (
                "[A-Za-z0-9_-]{1,48}",
                prop_oneof![
                    Just(WorktreeAction::Remove),
                    Just(WorktreeAction::Keep),
                    Just(WorktreeAction::Cancel)
                ]
            )
                .prop_map(|(session, action)| Callback::Worktree { session, action }),
            "[A-Za-z0-9_-]{1,48}".prop_map(|session| Callback::Retry { session }),
            (
                "[a-z0-9-]{1,32}",
                "[0-9]{1,4}\\.[0-9]{1,4}\\.[0-9]{1,4}(-[a-z0-9.]{1,8})?"
            )
                .prop_map(|(node, version)| Callback::CodexUpgrade { node, version }),
        ]
    }

    proptest! {
        #[test]
        fn every_button_round_trips_within_telegrams_limit(c in callbacks()) {
            let data = c.encode();
            prop_assert!(data.len() <= MAX_DATA, "{data}");
            prop_assert_eq!(Callback::decode(&data), Some(c));
        }

        #[test]
        fn arbitrary_data_never_panics_and_only_canonical_data_decodes(data in ".{0,80}") {
            if let Some(c) = Callback::decode(&data) {
                prop_assert_eq!(c.encode(), data);
            }
        }
    }

    #[test]
    fn forged_and_stale_spellings_are_refused() {
        for data in [
            "",
            "k|s1|yes",
            "k|s1|",
            "k|../x|1",
            "h|-1",
            "h|01",
            "h|+1",
            "m|zz|o|1",
            "m|abcd|x|1",
            "m|abcd|o|1|extra",
            "k|s1|1|ABCDEF12",
            "k|s1|1|abc",
            "q|dropall",
            "r|",
            "x|1",
            "j|1|z",
            "j|-1|a",
            "j|01|a",
            "j||c",
            "t|",
            "t|x",
            "t|e|s1",
            "c|u|-0|1",
            "c|u|+5|1",
            "c|u|-5|-1",
            "c|u|-05|1",
            "c|u|5|2147483648",
            "c|u|--5|1",
            "c|u|5",
            "c|k|",
            "c|k|../x",
            "c|k|s1|extra",
            "c|x|s1",
            "v|",
            "v|l",
            "v|live|1",
            "v|p|",
            "v|p|01",
            "v|p|-1",
            "v|p|1|2",
            "v|x|1",
        ] {
            assert_eq!(Callback::decode(data), None, "{data:?}");
        }
        assert_eq!(
            Callback::decode("k|019a-b_c|esc"),
            Some(Callback::Key {
                session: "019a-b_c".into(),
                key: PromptKey::Escape,
                prompt: None
            })
        );
        assert_eq!(
            Callback::decode("k|s1|1|0a1b2c3d"),
            Some(Callback::Key {
                session: "s1".into(),
                key: PromptKey::Choice('1'),
                prompt: Some("0a1b2c3d".into())
            })
        );
        assert_eq!(
            Callback::decode("c|u|-1001234567890|42"),
            Some(Callback::Cleanup(CleanupFix::Unbind {
                chat_id: -1_001_234_567_890,
                thread_id: 42
            }))
        );
        assert_eq!(
            Callback::decode("v|p|5"),
            Some(Callback::Replay(ReplayAction::Page { skip: 5 }))
        );
        assert_eq!(
            Callback::decode("m|abcd|v|3"),
            Some(Callback::Menu {
                token: "abcd".into(),
                op: MenuOp::ReadOnly,
                index: Some(3)
            })
        );
        assert_eq!(
            Callback::decode("t|m"),
            Some(Callback::Toolbar(ToolbarKey::Mode))
        );
    }
}
