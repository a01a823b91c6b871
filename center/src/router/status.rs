//! A topic's status message: one message per turn that shows the receipt's outcome and the
//! turn's newest tool lines, edited in place, and closed with the turn's outcome. Three tasks
//! touch it — the input's receipt, the session's delivery and the end of the turn — so what each
//! does is decided here, from the stored message and one event, with no tokio, Telegram or
//! SQLite: the runtime applies the [`Step`] inside one store transaction and queues the edit it
//! names there, so edits go out in the order the changes were made and none overwrites another.

/// Lines a status message keeps, the newest (a receipt not sent yet keeps its own first line
/// and this many tool lines after it).
pub(crate) const LINES: usize = 12;
/// A tool line is cut to this many characters.
pub(crate) const LINE_CHARS: usize = 160;

/// What becomes of a topic's stored status message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StatusChange {
    /// Leave it as it is.
    Keep,
    /// This message, showing this text.
    Set(i32, String),
    /// No status message any more (the turn ended).
    Clear,
}

/// How an edit may be treated by the outbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EditKind {
    /// A receipt's outcome or a turn's last line: it must show, even after the answer.
    Receipt,
    /// A tool line: moot (dropped) once the turn's answer is queued.
    Status,
}

/// An edit of a message in Telegram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct EditTo {
    pub(crate) message_id: i32,
    pub(crate) body: String,
    pub(crate) kind: EditKind,
}

/// What one event does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Step {
    /// The stored message.
    pub(crate) change: StatusChange,
    /// The edit to queue, if any.
    pub(crate) edit: Option<EditTo>,
    /// There is no status message yet: this line goes out (joined to a receipt still waiting to
    /// be sent, or as a message of its own, then reported with [`Event::Posted`]).
    pub(crate) post: Option<String>,
}

impl Step {
    fn keep() -> Self {
        Self {
            change: StatusChange::Keep,
            edit: None,
            post: None,
        }
    }
}

/// Something that happened to a topic's status.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Event<'a> {
    /// An input's receipt (message `receipt`) has its outcome `text`: `delivered` when it
    /// reached Codex, `shown` when the receipt went out with that text already (no edit needed).
    Receipt {
        receipt: i32,
        text: &'a str,
        delivered: bool,
        shown: bool,
    },
    /// A tool line of the running turn.
    Line(&'a str),
    /// The line [`Step::post`] asked for went out as `message_id`.
    Posted { message_id: i32, line: &'a str },
    /// The turn ended with `outcome`; `answered` when its answer was posted.
    Close { outcome: &'a str, answered: bool },
}

/// What `event` does to the topic's status message `current` (its id and text).
pub(crate) fn step(current: Option<(i32, String)>, event: Event<'_>) -> Step {
    match event {
        Event::Receipt {
            receipt,
            text,
            delivered,
            shown,
        } => {
            let (change, body) = match current {
                // A delivered input's receipt becomes the turn's status message.
                None if delivered => (StatusChange::Set(receipt, text.to_owned()), text.to_owned()),
                // Tool lines already landed in the receipt: keep them.
                Some((id, existing)) if id == receipt => (StatusChange::Keep, existing),
                _ => (StatusChange::Keep, text.to_owned()),
            };
            Step {
                change,
                edit: (!shown).then_some(EditTo {
                    message_id: receipt,
                    body,
                    kind: EditKind::Receipt,
                }),
                post: None,
            }
        }
        Event::Line(line) => {
            let line = cut(line);
            match current {
                Some((id, body)) => {
                    let body = append(&body, &line, LINES);
                    Step {
                        change: StatusChange::Set(id, body.clone()),
                        edit: Some(EditTo {
                            message_id: id,
                            body,
                            kind: EditKind::Status,
                        }),
                        post: None,
                    }
                }
                None => Step {
                    post: Some(line),
                    ..Step::keep()
                },
            }
        }
        Event::Posted { message_id, line } => Step {
            change: StatusChange::Set(message_id, line.to_owned()),
            ..Step::keep()
        },
        Event::Close { outcome, answered } => match current {
            None => Step::keep(),
            Some((id, body)) => {
                // A turn whose answer was posted needs no "Done" (the answer closes it for the
                // user), and a status that only says the message was delivered is left as it
                // is: edits saved from a group's 20-a-minute budget.
                let worth_it = !answered && (body.lines().count() > 1 || !body.starts_with('✓'));
                Step {
                    change: StatusChange::Clear,
                    edit: worth_it.then(|| EditTo {
                        message_id: id,
                        body: format!("{body}\n{outcome}"),
                        kind: EditKind::Receipt,
                    }),
                    post: None,
                }
            }
        },
    }
}

/// A tool line as a status message shows it.
pub(crate) fn cut(line: &str) -> String {
    line.chars().take(LINE_CHARS).collect()
}

/// `body`'s lines with `line` added, the newest `keep` of them kept.
fn append(body: &str, line: &str, keep: usize) -> String {
    let mut lines: Vec<&str> = body.lines().collect();
    lines.push(line);
    let skip = lines.len().saturating_sub(keep);
    lines[skip..].join("\n")
}

/// A receipt not sent yet, with a tool line added: its own first line stays, followed by the
/// newest `keep` tool lines.
pub(crate) fn receipt_with_line(text: &str, line: &str, keep: usize) -> String {
    let (head, rest) = text.split_once('\n').unwrap_or((text, ""));
    let rest = append(rest, line, keep);
    format!("{head}\n{rest}")
}

/// A receipt not sent yet, with its outcome instead of its first line (its tool lines stay).
pub(crate) fn receipt_with_outcome(text: &str, outcome: &str) -> String {
    match text.split_once('\n') {
        Some((_, rest)) => format!("{outcome}\n{rest}"),
        None => outcome.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn line(s: &str) -> Event<'_> {
        Event::Line(s)
    }

    #[test]
    fn a_delivered_receipt_becomes_the_status_and_lines_edit_it() {
        let s = step(
            None,
            Event::Receipt {
                receipt: 7,
                text: "✓ Delivered",
                delivered: true,
                shown: false,
            },
        );
        assert_eq!(s.change, StatusChange::Set(7, "✓ Delivered".into()));
        assert_eq!(s.edit.as_ref().map(|e| e.message_id), Some(7));
        let s = step(Some((7, "✓ Delivered".into())), line("🔧 ls"));
        assert_eq!(s.change, StatusChange::Set(7, "✓ Delivered\n🔧 ls".into()));
        assert_eq!(s.edit.unwrap().kind, EditKind::Status);
    }

    #[test]
    fn a_line_without_a_status_is_posted_then_becomes_it() {
        let s = step(None, line("🔧 ls"));
        assert_eq!(s.change, StatusChange::Keep);
        assert_eq!(s.post.as_deref(), Some("🔧 ls"));
        let s = step(
            None,
            Event::Posted {
                message_id: 9,
                line: "🔧 ls",
            },
        );
        assert_eq!(s.change, StatusChange::Set(9, "🔧 ls".into()));
    }

    #[test]
    fn a_receipt_that_already_holds_tool_lines_keeps_them() {
        let s = step(
            Some((7, "⏳ Sending to Codex…\n🔧 ls".into())),
            Event::Receipt {
                receipt: 7,
                text: "✓ Delivered",
                delivered: true,
                shown: false,
            },
        );
        assert_eq!(s.change, StatusChange::Keep);
        assert_eq!(s.edit.unwrap().body, "⏳ Sending to Codex…\n🔧 ls");
    }

    #[test]
    fn closing_edits_only_when_it_tells_something() {
        let quiet = step(
            Some((7, "✓ Delivered".into())),
            Event::Close {
                outcome: "Done",
                answered: false,
            },
        );
        assert_eq!((quiet.change, quiet.edit), (StatusChange::Clear, None));
        let answered = step(
            Some((7, "✓ Delivered\n🔧 ls".into())),
            Event::Close {
                outcome: "Done",
                answered: true,
            },
        );
        assert_eq!(answered.edit, None);
        let told = step(
            Some((7, "✓ Delivered\n🔧 ls".into())),
            Event::Close {
                outcome: "⏹ Interrupted",
                answered: false,
            },
        );
        assert_eq!(told.edit.unwrap().body, "✓ Delivered\n🔧 ls\n⏹ Interrupted");
    }

    #[test]
    fn an_unsent_receipt_keeps_its_head_and_newest_lines() {
        let mut text = "⏳ Sending to Codex…".to_owned();
        for n in 0..5 {
            text = receipt_with_line(&text, &format!("line {n}"), 3);
        }
        assert_eq!(text, "⏳ Sending to Codex…\nline 2\nline 3\nline 4");
        assert_eq!(
            receipt_with_outcome(&text, "✓ Delivered"),
            "✓ Delivered\nline 2\nline 3\nline 4"
        );
        assert_eq!(receipt_with_outcome("⏳", "✓ Delivered"), "✓ Delivered");
    }

    #[derive(Debug, Clone)]
    enum Op {
        Receipt { delivered: bool, shown: bool },
        Line(String),
        Close { answered: bool },
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (any::<bool>(), any::<bool>())
                .prop_map(|(delivered, shown)| Op::Receipt { delivered, shown }),
            "[a-z✓🔧 ]{0,200}".prop_map(Op::Line),
            any::<bool>().prop_map(|answered| Op::Close { answered }),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

        /// Over any order of receipts, tool lines, posts and turn ends: an edit only ever goes
        /// to the receipt it is about or to the current status message; a status message never
        /// holds more than its lines; a line never gets lost between "no status" and "posted";
        /// and an ended turn leaves no status behind.
        #[test]
        fn the_status_message_stays_sound(ops in proptest::collection::vec(op(), 1..60)) {
            let mut stored: Option<(i32, String)> = None;
            let mut next_id = 100;
            for op in ops {
                let before = stored.clone();
                let (s, receipt) = match &op {
                    Op::Receipt { delivered, shown } => {
                        next_id += 1;
                        let text = if *delivered { "✓ Delivered" } else { "✗ Not delivered" };
                        (step(before.clone(), Event::Receipt {
                            receipt: next_id,
                            text,
                            delivered: *delivered,
                            shown: *shown,
                        }), Some(next_id))
                    }
                    Op::Line(l) => (step(before.clone(), Event::Line(l)), None),
                    Op::Close { answered } => {
                        (step(before.clone(), Event::Close { outcome: "Done", answered: *answered }), None)
                    }
                };
                if let Some(edit) = &s.edit {
                    let to_current = before.as_ref().is_some_and(|(id, _)| *id == edit.message_id);
                    prop_assert!(to_current || Some(edit.message_id) == receipt, "{op:?}: {edit:?}");
                }
                match s.change {
                    StatusChange::Keep => {}
                    StatusChange::Set(id, body) => {
                        prop_assert!(body.lines().count() <= LINES.max(1), "{body}");
                        stored = Some((id, body));
                    }
                    StatusChange::Clear => stored = None,
                }
                if let Some(line) = s.post {
                    prop_assert!(before.is_none());
                    prop_assert!(line.chars().count() <= LINE_CHARS);
                    next_id += 1;
                    let posted = step(stored.clone(), Event::Posted { message_id: next_id, line: &line });
                    if let StatusChange::Set(id, body) = posted.change {
                        prop_assert_eq!(&body, &line);
                        stored = Some((id, body));
                    }
                }
                if matches!(op, Op::Close { .. }) {
                    prop_assert!(stored.is_none());
                }
            }
        }
    }
}
