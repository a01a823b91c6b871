//! What the center typed into each session lately, so a user message in the transcript can be
//! told apart: one of ours (already in the topic as the user's own message) or one typed at the
//! desk (shown in the topic, so its history is complete). Kept in memory only: after a restart,
//! an input typed just before it and replayed may show once as typed at the desk.

use std::{
    collections::{HashMap, VecDeque},
    sync::Mutex,
    time::{Duration, Instant},
};

use shared::{
    ids::{NodeName, SessionId},
    sync::LockExt,
};

/// How long a typed text is remembered (a queued input may wait for a long turn).
const KEEP: Duration = Duration::from_secs(3600);
/// At most this many per session.
const MAX: usize = 64;
/// Past this many sessions with a turn to retry, offers older than [`KEEP`] are forgotten.
const MAX_SESSIONS: usize = 256;

/// A session: (node, session id).
type SessionKey = (NodeName, SessionId);

/// Texts typed per session, oldest first, with when; and per session the user message of a
/// turn that failed on a usage limit, as the transcript shows it (what "Retry on <account>"
/// types again, see `crate::retry`).
#[derive(Debug, Default)]
pub(crate) struct TypedRecently {
    recent: Mutex<HashMap<SessionKey, VecDeque<(String, Instant)>>>,
    to_retry: Mutex<HashMap<SessionKey, (String, Instant)>>,
}

fn norm(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

impl TypedRecently {
    /// The center is about to type `text` into the session.
    pub(crate) fn note(&self, node: &NodeName, session: &SessionId, text: &str) {
        let key = (node.clone(), session.clone());
        let mut map = self.recent.locked();
        let list = map.entry(key).or_default();
        list.retain(|(_, at)| at.elapsed() < KEEP);
        if list.len() >= MAX {
            list.pop_front();
        }
        list.push_back((norm(text), Instant::now()));
    }

    /// Whether the transcript's user message `text` is one the center typed (forgetting it).
    pub(crate) fn take(&self, node: &NodeName, session: &SessionId, text: &str) -> bool {
        let mut map = self.recent.locked();
        let Some(list) = map.get_mut(&(node.clone(), session.clone())) else {
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
    /// The turn of `session` whose user message was `text` failed on a usage limit and may be
    /// retried (replacing an earlier one of the session).
    pub(crate) fn offer_retry(&self, node: &NodeName, session: &SessionId, text: &str) {
        let mut map = self.to_retry.locked();
        if map.len() >= MAX_SESSIONS {
            // Sessions come and go: forget offers nobody took for an hour.
            map.retain(|_, (_, at)| at.elapsed() < KEEP);
        }
        map.insert(
            (node.clone(), session.clone()),
            (text.to_owned(), Instant::now()),
        );
    }

    /// The user message of the session's failed turn, taken: a second press retries nothing.
    /// `None` when none is known (the center restarted since, or it was taken).
    pub(crate) fn take_retry(&self, node: &NodeName, session: &SessionId) -> Option<String> {
        self.to_retry
            .locked()
            .remove(&(node.clone(), session.clone()))
            .map(|(text, _)| text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ours_are_recognised_once_and_others_are_not() {
        let t = TypedRecently::default();
        let local = NodeName::from("local");
        let (s1, s2) = (SessionId::from("s1"), SessionId::from("s2"));
        t.note(&local, &s1, "fix  the\ntests");
        assert!(!t.take(&local, &s2, "fix the tests"), "another session");
        assert!(t.take(&local, &s1, "fix the tests"));
        assert!(!t.take(&local, &s1, "fix the tests"), "only once");
        assert!(!t.take(&local, &s1, "typed at the desk"));
        t.note(&local, &s1, "look at this");
        assert!(t.take(&local, &s1, "look at this /tmp/inbox/a.png"));
        t.offer_retry(&local, &s1, "fix the tests");
        assert_eq!(t.take_retry(&local, &s2), None, "another session");
        assert_eq!(t.take_retry(&local, &s1).as_deref(), Some("fix the tests"));
        assert_eq!(t.take_retry(&local, &s1), None, "taken once");
    }
}
