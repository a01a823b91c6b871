//! What the center typed into each session lately, so a user message in the transcript can be
//! told apart: one of ours (already in the topic as the user's own message) or one typed at the
//! desk (shown in the topic, so its history is complete). Kept in memory only: after a restart,
//! an input typed just before it and replayed may show once as typed at the desk.

use std::{
    collections::{HashMap, VecDeque},
    sync::Mutex,
    time::{Duration, Instant},
};

use shared::sync::LockExt;

/// How long a typed text is remembered (a queued input may wait for a long turn).
const KEEP: Duration = Duration::from_secs(3600);
/// At most this many per session.
const MAX: usize = 64;
/// Past this many sessions with a last input, those idle longer than [`KEEP`] are forgotten.
const MAX_SESSIONS: usize = 256;

/// A session: (node, session id).
type SessionKey = (String, String);

/// Texts typed per session, oldest first, with when; and the last one typed into each session
/// as typed (what a retry after a usage limit types again, see `crate::retry`).
#[derive(Debug, Default)]
pub(crate) struct TypedRecently {
    recent: Mutex<HashMap<SessionKey, VecDeque<(String, Instant)>>>,
    last: Mutex<HashMap<SessionKey, (String, Instant)>>,
}

fn norm(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

impl TypedRecently {
    /// The center is about to type `text` into the session.
    pub(crate) fn note(&self, node: &str, session: &str, text: &str) {
        let key = (node.to_owned(), session.to_owned());
        {
            let mut last = self.last.locked();
            if last.len() >= MAX_SESSIONS {
                // Sessions come and go: forget the ones idle longest.
                last.retain(|_, (_, at)| at.elapsed() < KEEP);
            }
            last.insert(key.clone(), (text.to_owned(), Instant::now()));
        }
        let mut map = self.recent.locked();
        let list = map.entry(key).or_default();
        list.retain(|(_, at)| at.elapsed() < KEEP);
        if list.len() >= MAX {
            list.pop_front();
        }
        list.push_back((norm(text), Instant::now()));
    }

    /// Whether the transcript's user message `text` is one the center typed (forgetting it).
    pub(crate) fn take(&self, node: &str, session: &str, text: &str) -> bool {
        let mut map = self.recent.locked();
        let Some(list) = map.get_mut(&(node.to_owned(), session.to_owned())) else {
            return false;
        };
        let seen = norm(text);
        // Codex may add to what was typed (attachments' paths, pasted blocks): a transcript
        // message that contains what we typed is ours.
        match list
            .iter()
            .position(|(t, _)| *t == seen || (!t.is_empty() && seen.contains(t.as_str())))
        {
            Some(i) => {
                list.remove(i);
                true
            }
            None => false,
        }
    }
}

impl TypedRecently {
    /// The last text the center typed into the session, as typed (kept after the transcript
    /// showed it; lost at a restart).
    pub(crate) fn last(&self, node: &str, session: &str) -> Option<String> {
        self.last
            .locked()
            .get(&(node.to_owned(), session.to_owned()))
            .map(|(text, _)| text.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ours_are_recognised_once_and_others_are_not() {
        let t = TypedRecently::default();
        t.note("local", "s1", "fix  the\ntests");
        assert!(!t.take("local", "s2", "fix the tests"), "another session");
        assert!(t.take("local", "s1", "fix the tests"));
        assert!(!t.take("local", "s1", "fix the tests"), "only once");
        assert!(!t.take("local", "s1", "typed at the desk"));
        t.note("local", "s1", "look at this");
        assert!(t.take("local", "s1", "look at this /tmp/inbox/a.png"));
        assert_eq!(t.last("local", "s1").as_deref(), Some("look at this"));
        assert_eq!(t.last("local", "s2"), None);
    }
}
