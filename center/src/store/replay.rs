//! Read-only topics: a topic bound to a persisted Codex thread without a window. It shows the
//! conversation so far and types nothing until "Continue live"; kept here so a restart of the
//! center keeps the topic read-only instead of opening a bind menu at the next message.

use rusqlite::{OptionalExtension, params};

use super::{Store, StoreError, Surface};

/// The schema of read-only topics (schema version 12).
pub(super) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS replays (
    chat_id INTEGER NOT NULL, thread_id INTEGER NOT NULL,
    node TEXT NOT NULL, codex_thread TEXT NOT NULL, cwd TEXT NOT NULL,
    summary TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (chat_id, thread_id));
";

/// A topic that shows Codex thread `codex_thread` of `node` read-only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Replay {
    pub(crate) surface: Surface,
    pub(crate) node: String,
    pub(crate) codex_thread: String,
    pub(crate) cwd: String,
    /// The thread's title as the picker showed it.
    pub(crate) summary: String,
}

impl Store {
    /// Makes the topic read-only on `r.codex_thread` (replacing an earlier read-only thread).
    pub(crate) fn put_replay(&self, r: &Replay) -> Result<(), StoreError> {
        self.conn().execute(
            "INSERT OR REPLACE INTO replays (chat_id, thread_id, node, codex_thread, cwd, summary)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                r.surface.chat_id,
                r.surface.thread_id,
                r.node,
                r.codex_thread,
                r.cwd,
                r.summary
            ],
        )?;
        Ok(())
    }

    /// The thread the topic shows read-only, if it does.
    pub(crate) fn replay(&self, surface: Surface) -> Result<Option<Replay>, StoreError> {
        Ok(self
            .conn()
            .query_row(
                "SELECT node, codex_thread, cwd, summary FROM replays
                 WHERE chat_id = ?1 AND thread_id = ?2",
                params![surface.chat_id, surface.thread_id],
                |row| {
                    Ok(Replay {
                        surface,
                        node: row.get(0)?,
                        codex_thread: row.get(1)?,
                        cwd: row.get(2)?,
                        summary: row.get(3)?,
                    })
                },
            )
            .optional()?)
    }

    /// Ends the topic's read-only state; true if it was read-only (so of two presses of
    /// "Continue live" only one goes on).
    pub(crate) fn drop_replay(&self, surface: Surface) -> Result<bool, StoreError> {
        let n = self.conn().execute(
            "DELETE FROM replays WHERE chat_id = ?1 AND thread_id = ?2",
            params![surface.chat_id, surface.thread_id],
        )?;
        Ok(n > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_read_only_topic_is_kept_replaced_and_dropped_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s.db")).unwrap();
        let surface = Surface {
            chat_id: -100,
            thread_id: 7,
        };
        assert_eq!(store.replay(surface).unwrap(), None);
        let mut r = Replay {
            surface,
            node: "local".into(),
            codex_thread: "0199-aaaa".into(),
            cwd: "/p".into(),
            summary: "fix it".into(),
        };
        store.put_replay(&r).unwrap();
        r.codex_thread = "0199-bbbb".into();
        store.put_replay(&r).unwrap();
        assert_eq!(store.replay(surface).unwrap(), Some(r));
        let other = Surface {
            chat_id: -100,
            thread_id: 8,
        };
        assert_eq!(store.replay(other).unwrap(), None);
        assert!(store.drop_replay(surface).unwrap());
        assert!(!store.drop_replay(surface).unwrap());
        assert_eq!(store.replay(surface).unwrap(), None);
    }
}
