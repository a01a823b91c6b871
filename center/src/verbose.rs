//! What a topic shows besides answers: Codex's commentary, its reasoning lines, the tools it
//! runs, what shell commands print, and messages typed at the desk (`/verbose`). Each is on or
//! off per topic; the defaults are what the bot always showed, plus desk messages, so a topic's
//! history is complete.

use crate::store::{Store, Surface};

/// A topic's choices.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Verbose {
    /// Codex's commentary messages.
    pub(crate) commentary: bool,
    /// Reasoning summaries in the status message.
    pub(crate) reasoning: bool,
    /// Tools, edits and the plan in the status message.
    pub(crate) tools: bool,
    /// What shell commands print, as messages.
    pub(crate) shell: bool,
    /// Messages typed into the window at the desk ("🖥 at the desk: …").
    pub(crate) desk: bool,
}

impl Default for Verbose {
    fn default() -> Self {
        Self {
            commentary: true,
            reasoning: true,
            tools: true,
            shell: false,
            desk: true,
        }
    }
}

/// The items, as `/verbose` names them.
const ITEMS: [&str; 5] = ["commentary", "reasoning", "tools", "shell", "desk"];

impl Verbose {
    fn flag(&mut self, item: &str) -> Option<&mut bool> {
        Some(match item {
            "commentary" => &mut self.commentary,
            "reasoning" => &mut self.reasoning,
            "tools" => &mut self.tools,
            "shell" => &mut self.shell,
            "desk" => &mut self.desk,
            _ => return None,
        })
    }

    fn flags(self) -> [bool; 5] {
        [
            self.commentary,
            self.reasoning,
            self.tools,
            self.shell,
            self.desk,
        ]
    }

    /// The stored form: one 0/1 per item, in [`ITEMS`] order.
    fn encode(self) -> String {
        self.flags()
            .iter()
            .map(|on| if *on { '1' } else { '0' })
            .collect()
    }

    fn decode(s: &str) -> Self {
        let mut v = Self::default();
        for (item, c) in ITEMS.iter().zip(s.chars()) {
            if let Some(flag) = v.flag(item) {
                *flag = c == '1';
            }
        }
        v
    }

    /// One line: "commentary on, reasoning on, …".
    pub(crate) fn describe(self) -> String {
        ITEMS
            .iter()
            .zip(self.flags())
            .map(|(item, on)| format!("{item} {}", if on { "on" } else { "off" }))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

fn key(surface: Surface) -> String {
    format!("verbose:{}", surface.thread_id)
}

/// The topic's choices as saved (the defaults when none are).
fn read(store: &Store, surface: Surface) -> Result<Verbose, crate::store::StoreError> {
    Ok(store
        .chat_setting(surface.chat_id, &key(surface))?
        .map_or_else(Verbose::default, |v| Verbose::decode(&v)))
}

/// The topic's choices (the defaults when none are saved or they cannot be read).
pub(crate) fn load(store: &Store, surface: Surface) -> Verbose {
    read(store, surface).unwrap_or_else(|err| {
        tracing::error!(error = %err, "reading a topic's /verbose settings failed; using the defaults");
        Verbose::default()
    })
}

/// Each topic's choices as last read: delivery asks for them with every event of every bound
/// topic, so they are read from SQLite once and again only after `/verbose` changed them.
#[derive(Debug, Default)]
pub(crate) struct Choices(std::sync::Mutex<std::collections::HashMap<Surface, Verbose>>);

impl Choices {
    /// The topic's choices.
    pub(crate) fn get(&self, store: &Store, surface: Surface) -> Verbose {
        use shared::sync::LockExt;
        if let Some(v) = self.0.locked().get(&surface) {
            return *v;
        }
        match read(store, surface) {
            Ok(v) => {
                self.0.locked().insert(surface, v);
                v
            }
            // Not kept: the next event reads again.
            Err(_) => load(store, surface),
        }
    }

    /// Runs `/verbose` in the topic (see [`command`]) and forgets what was read before.
    pub(crate) fn command(&self, store: &Store, surface: Surface, args: &str) -> String {
        use shared::sync::LockExt;
        let answer = command(store, surface, args);
        self.0.locked().remove(&surface);
        answer
    }
}

/// `/verbose [<item> on|off | reset]`; the answer.
pub(crate) fn command(store: &Store, surface: Surface, args: &str) -> String {
    let words: Vec<&str> = args.split_whitespace().collect();
    let mut v = load(store, surface);
    let usage = format!("Usage: /verbose [{} on|off | reset]", ITEMS.join("|"));
    let changed = match words.as_slice() {
        [] => return format!("This topic shows: {}.\n{usage}", v.describe()),
        ["reset"] => Verbose::default(),
        [item, state @ ("on" | "off")] => {
            let Some(flag) = v.flag(item) else {
                return usage;
            };
            *flag = *state == "on";
            v
        }
        _ => return usage,
    };
    let saved = if changed == Verbose::default() {
        store.set_chat_setting(surface.chat_id, &key(surface), None)
    } else {
        store.set_chat_setting(surface.chat_id, &key(surface), Some(&changed.encode()))
    };
    match saved {
        Ok(()) => format!("This topic now shows: {}.", changed.describe()),
        Err(err) => {
            tracing::error!(error = %err, "saving /verbose failed");
            crate::store::STATE_UNREADABLE.to_owned()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn choices_are_kept_per_topic() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s.db")).unwrap();
        let a = Surface {
            chat_id: -5,
            thread_id: 3,
        };
        let b = Surface {
            chat_id: -5,
            thread_id: 4,
        };
        assert_eq!(load(&store, a), Verbose::default());
        assert!(command(&store, a, "shell on").contains("shell on"));
        assert!(command(&store, a, "commentary off").contains("commentary off"));
        assert!(command(&store, a, "loud on").starts_with("Usage"));
        let v = load(&store, a);
        assert!(v.shell && !v.commentary && v.tools && v.desk);
        assert_eq!(load(&store, b), Verbose::default(), "another topic");
        command(&store, a, "reset");
        assert_eq!(load(&store, a), Verbose::default());
        assert_eq!(
            Verbose::decode(&Verbose::default().encode()),
            Verbose::default()
        );
    }
}
