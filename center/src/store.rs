//! The center's durable state in one SQLite file: bindings (topic ↔ node ↔ session), the
//! sequence acked per session (advanced only after Telegram accepted what an event produced),
//! live status messages, and the inbox of accepted Telegram updates (kept until their work is
//! done, so a crash never loses one).
//!
//! WAL mode, `synchronous=NORMAL`: a crash of the process loses nothing committed; a power loss
//! may roll back the newest acks, which only means a resend. Schema version in `user_version`.

mod jobs;
mod replay;
pub(crate) mod sources;

pub use crate::router::status::StatusChange;
pub(crate) use jobs::{JobEnd, JobRecord, NewJob};
pub(crate) use replay::Replay;
use shared::{
    ids::{NodeName, SessionId, ThreadId},
    sync::LockExt,
};
use std::{path::Path, sync::Mutex};

use rusqlite::{Connection, OptionalExtension, params};

/// A store operation failed.
#[derive(Debug, thiserror::Error)]
#[error("state database: {0}")]
pub struct StoreError(#[from] rusqlite::Error);

/// The center's state could not be read (SQLite failed); logged where it happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the center cannot read its state right now; try again")]
pub(crate) struct StateUnreadable;

/// What the topic is told when its state cannot be read.
pub(crate) const STATE_UNREADABLE: &str =
    "✗ The center cannot read its state right now; try again.";

/// Where messages go: a chat, and a topic in it (0 = the chat itself, no topic).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Surface {
    /// Telegram chat id.
    pub chat_id: i64,
    /// Forum topic id (`message_thread_id`), 0 without topics.
    pub thread_id: i32,
}

/// How plain text is typed into Codex by default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputMode {
    /// Enter: submit now (steers a running turn).
    Steer,
    /// Tab: queue after the running turn.
    Queue,
}

/// A topic bound to a Codex session on a node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    /// The topic.
    pub surface: Surface,
    /// Node name.
    pub node: NodeName,
    /// The node's session id (its window).
    pub session_id: SessionId,
    /// Working directory.
    pub cwd: String,
    /// Default input mode of the topic.
    pub mode: InputMode,
}

const SCHEMA_VERSION: i32 = 12;

/// How far the center has handled a node's streams: (session id, seq) and (job id, seq).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cursors {
    /// Per session.
    pub sessions: Vec<(String, u64)>,
    /// Per job (its id on the node).
    pub jobs: Vec<(String, u64)>,
}

/// The database.
#[derive(Debug)]
pub struct Store {
    conn: Mutex<Connection>,
}

impl Store {
    /// Opens (creating and migrating) the database at `path`.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        // Owner-only from the first write: SQLite gives its -wal and -shm files the database's
        // permissions, so creating the file 0600 first covers all three.
        {
            use std::os::unix::fs::OpenOptionsExt;
            let _ = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .mode(0o600)
                .open(path);
        }
        let conn = Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        let version: i32 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
        if version < 1 {
            conn.execute_batch(
                "CREATE TABLE IF NOT EXISTS bindings (
                    chat_id INTEGER NOT NULL, thread_id INTEGER NOT NULL,
                    node TEXT NOT NULL, session_id TEXT NOT NULL, cwd TEXT NOT NULL,
                    mode TEXT NOT NULL DEFAULT 'steer',
                    PRIMARY KEY (chat_id, thread_id));
                 CREATE INDEX IF NOT EXISTS bindings_session ON bindings(node, session_id);
                 CREATE TABLE IF NOT EXISTS acks (
                    node TEXT NOT NULL, session_id TEXT NOT NULL, seq INTEGER NOT NULL,
                    PRIMARY KEY (node, session_id));
                 CREATE TABLE IF NOT EXISTS status_messages (
                    chat_id INTEGER NOT NULL, thread_id INTEGER NOT NULL,
                    message_id INTEGER NOT NULL, body TEXT NOT NULL,
                    PRIMARY KEY (chat_id, thread_id));
                 CREATE TABLE IF NOT EXISTS updates (update_id INTEGER PRIMARY KEY);",
            )?;
        }
        if version < 2 {
            conn.execute_batch(
                "CREATE TABLE IF NOT EXISTS nodes (
                    name TEXT PRIMARY KEY, endpoint TEXT NOT NULL,
                    added_unix_ms INTEGER NOT NULL, revoked INTEGER NOT NULL DEFAULT 0,
                    cert_serial TEXT NOT NULL DEFAULT '');",
            )?;
        }
        if version < 3 {
            conn.execute_batch(
                "CREATE TABLE IF NOT EXISTS used_join_codes (
                    secret_hash TEXT PRIMARY KEY, used_unix_ms INTEGER NOT NULL);",
            )?;
        }
        if version < 4 {
            conn.execute_batch(
                "CREATE TABLE IF NOT EXISTS invites (name TEXT PRIMARY KEY, code TEXT NOT NULL);",
            )?;
        }
        if version < 5 {
            conn.execute_batch(
                "CREATE TABLE IF NOT EXISTS held_inputs (
                    id INTEGER PRIMARY KEY AUTOINCREMENT,
                    chat_id INTEGER NOT NULL, thread_id INTEGER NOT NULL, session_id TEXT NOT NULL,
                    text TEXT NOT NULL, reply_to INTEGER NOT NULL, mode TEXT NOT NULL,
                    receipt INTEGER, held_unix_ms INTEGER NOT NULL);
                 CREATE TABLE IF NOT EXISTS held_previews (
                    chat_id INTEGER NOT NULL, thread_id INTEGER NOT NULL,
                    message_id INTEGER NOT NULL, PRIMARY KEY (chat_id, thread_id));",
            )?;
        }
        if version < 6 {
            // The durable inbox: an accepted update is written here before polling moves past it
            // and stays unfinished (body kept) until its work is done; replayed at start.
            conn.execute_batch(
                "CREATE TABLE IF NOT EXISTS inbox (
                    update_id INTEGER PRIMARY KEY, body TEXT NOT NULL,
                    done INTEGER NOT NULL DEFAULT 0, accepted_unix_ms INTEGER NOT NULL);
                 CREATE INDEX IF NOT EXISTS inbox_open ON inbox(done, update_id);
                 ALTER TABLE acks ADD COLUMN turn TEXT NOT NULL DEFAULT '';",
            )?;
        }
        if version < 7 {
            // Revocation is by certificate: a revoked serial stays revoked whatever happens to
            // the node's name later. Nodes revoked before keep their serial revoked.
            conn.execute_batch(
                "CREATE TABLE IF NOT EXISTS revoked_serials (
                    serial TEXT PRIMARY KEY, node TEXT NOT NULL, revoked_unix_ms INTEGER NOT NULL);
                 INSERT OR IGNORE INTO revoked_serials (serial, node, revoked_unix_ms)
                    SELECT cert_serial, name, 0 FROM nodes WHERE revoked = 1 AND cert_serial != '';",
            )?;
        }
        if version < 8 {
            // Groups the bot serves when `allowed_chats` is not set: those an allowed user added
            // it to. (Groups with bound topics count as owned too, see `owned_chat`.)
            conn.execute_batch(
                "CREATE TABLE IF NOT EXISTS owned_chats (
                    chat_id INTEGER PRIMARY KEY, added_by INTEGER NOT NULL,
                    added_unix_ms INTEGER NOT NULL);",
            )?;
        }
        if version < 9 {
            // Codex threads whose topic was closed or deleted: hidden from the resume picker
            // unless asked for.
            conn.execute_batch(
                "CREATE TABLE IF NOT EXISTS hidden_threads (
                    node TEXT NOT NULL, thread_id TEXT NOT NULL, hidden_unix_ms INTEGER NOT NULL,
                    PRIMARY KEY (node, thread_id));",
            )?;
        }
        if version < 10 {
            // Jobs (headless `codex exec` runs) and each chat's job settings.
            conn.execute_batch(jobs::SCHEMA)?;
        }
        if version < 11 {
            // Schedules and the GitHub issues that became jobs.
            conn.execute_batch(sources::SCHEMA)?;
        }
        if version < 12 {
            // Topics that show a Codex thread read-only.
            conn.execute_batch(replay::SCHEMA)?;
        }
        conn.pragma_update(None, "user_version", SCHEMA_VERSION)?;
        Ok(Self {
            conn: Mutex::new(conn),
        })
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn.locked()
    }

    /// Accepts an update into the inbox (`body`: its JSON, kept until it is finished); false if
    /// it was accepted before (a duplicate after a restart).
    pub fn accept_update(&self, update_id: i64, body: &str) -> Result<bool, StoreError> {
        let conn = self.conn();
        let before: bool = conn
            .query_row(
                "SELECT 1 FROM updates WHERE update_id = ?1",
                params![update_id],
                |_| Ok(()),
            )
            .optional()?
            .is_some();
        if before {
            return Ok(false);
        }
        let n = conn.execute(
            "INSERT OR IGNORE INTO inbox (update_id, body, done, accepted_unix_ms)
             VALUES (?1, ?2, 0, ?3)",
            params![update_id, body, shared::clock::now_unix_ms()],
        )?;
        Ok(n == 1)
    }

    /// Marks an accepted update as handled: it is never replayed, and its text is forgotten.
    pub fn finish_update(&self, update_id: i64) -> Result<(), StoreError> {
        let conn = self.conn();
        conn.execute(
            "UPDATE inbox SET done = 1, body = '' WHERE update_id = ?1",
            params![update_id],
        )?;
        // Keep the table small: ids only grow, finished old ones can never come back.
        conn.execute(
            "DELETE FROM inbox WHERE done = 1 AND update_id < ?1",
            params![update_id - 10_000],
        )?;
        Ok(())
    }

    /// Accepted updates whose work was not finished (the process stopped meanwhile), oldest
    /// first, with their JSON.
    pub fn unfinished_updates(&self) -> Result<Vec<(i64, String)>, StoreError> {
        let conn = self.conn();
        let mut stmt =
            conn.prepare("SELECT update_id, body FROM inbox WHERE done = 0 ORDER BY update_id")?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The highest update id accepted so far.
    pub fn last_update_id(&self) -> Result<Option<i64>, StoreError> {
        Ok(self.conn().query_row(
            "SELECT MAX(m) FROM (SELECT MAX(update_id) AS m FROM updates
                                 UNION ALL SELECT MAX(update_id) FROM inbox)",
            [],
            |r| r.get(0),
        )?)
    }

    pub fn put_binding(&self, b: &Binding) -> Result<(), StoreError> {
        self.conn().execute(
            "INSERT OR REPLACE INTO bindings (chat_id, thread_id, node, session_id, cwd, mode)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                b.surface.chat_id,
                b.surface.thread_id,
                b.node.as_str(),
                b.session_id.as_str(),
                b.cwd,
                mode_str(b.mode)
            ],
        )?;
        Ok(())
    }

    /// Removes the binding of a topic.
    pub fn remove_binding(&self, surface: Surface) -> Result<Option<Binding>, StoreError> {
        let existing = self.binding(surface)?;
        self.conn().execute(
            "DELETE FROM bindings WHERE chat_id = ?1 AND thread_id = ?2",
            params![surface.chat_id, surface.thread_id],
        )?;
        Ok(existing)
    }

    /// The binding of a topic.
    pub fn binding(&self, surface: Surface) -> Result<Option<Binding>, StoreError> {
        Ok(self
            .conn()
            .query_row(
                "SELECT chat_id, thread_id, node, session_id, cwd, mode FROM bindings
                 WHERE chat_id = ?1 AND thread_id = ?2",
                params![surface.chat_id, surface.thread_id],
                row_to_binding,
            )
            .optional()?)
    }

    /// Every binding.
    pub fn bindings(&self) -> Result<Vec<Binding>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT chat_id, thread_id, node, session_id, cwd, mode FROM bindings
             ORDER BY chat_id, thread_id",
        )?;
        let rows = stmt.query_map([], row_to_binding)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Bindings of one session (normally at most one).
    pub fn bindings_of(
        &self,
        node: &NodeName,
        session_id: &SessionId,
    ) -> Result<Vec<Binding>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT chat_id, thread_id, node, session_id, cwd, mode FROM bindings
             WHERE node = ?1 AND session_id = ?2",
        )?;
        let rows = stmt.query_map(params![node.as_str(), session_id.as_str()], row_to_binding)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Sets a topic's default input mode.
    pub fn set_mode(&self, surface: Surface, mode: InputMode) -> Result<(), StoreError> {
        self.conn().execute(
            "UPDATE bindings SET mode = ?3 WHERE chat_id = ?1 AND thread_id = ?2",
            params![surface.chat_id, surface.thread_id, mode_str(mode)],
        )?;
        Ok(())
    }

    /// Advances the acked sequence of a session (never moves it back).
    pub fn ack(&self, node: &NodeName, session_id: &SessionId, seq: u64) -> Result<(), StoreError> {
        self.conn().execute(
            "INSERT INTO acks (node, session_id, seq) VALUES (?1, ?2, ?3)
             ON CONFLICT (node, session_id) DO UPDATE SET seq = MAX(seq, excluded.seq)",
            params![node.as_str(), session_id.as_str(), seq as i64],
        )?;
        Ok(())
    }

    /// Advances the acked sequence of a session together with its turn state as of that
    /// sequence (one statement: a crash keeps both or neither).
    pub fn ack_with_turn(
        &self,
        node: &NodeName,
        session_id: &SessionId,
        seq: u64,
        turn: &str,
    ) -> Result<(), StoreError> {
        self.conn().execute(
            "INSERT INTO acks (node, session_id, seq, turn) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (node, session_id) DO UPDATE
               SET turn = CASE WHEN excluded.seq >= seq THEN excluded.turn ELSE turn END,
                   seq = MAX(seq, excluded.seq)",
            params![node.as_str(), session_id.as_str(), seq as i64, turn],
        )?;
        Ok(())
    }

    /// The acked sequence of a session and the turn state saved with it ('' if none).
    pub fn acked_turn(
        &self,
        node: &NodeName,
        session_id: &SessionId,
    ) -> Result<(u64, String), StoreError> {
        let row: Option<(i64, String)> = self
            .conn()
            .query_row(
                "SELECT seq, turn FROM acks WHERE node = ?1 AND session_id = ?2",
                params![node.as_str(), session_id.as_str()],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        Ok(row.map_or((0, String::new()), |(seq, turn)| (seq as u64, turn)))
    }

    /// The acked sequence of a session (0 if none).
    pub fn acked(&self, node: &NodeName, session_id: &SessionId) -> Result<u64, StoreError> {
        let seq: Option<i64> = self
            .conn()
            .query_row(
                "SELECT seq FROM acks WHERE node = ?1 AND session_id = ?2",
                params![node.as_str(), session_id.as_str()],
                |r| r.get(0),
            )
            .optional()?;
        Ok(seq.unwrap_or(0) as u64)
    }

    /// Every acked sequence of a node (sessions and jobs), for its `Hello`.
    pub fn cursors(&self, node: &str) -> Result<Cursors, StoreError> {
        let sessions = {
            let conn = self.conn();
            let mut stmt = conn.prepare("SELECT session_id, seq FROM acks WHERE node = ?1")?;
            let rows = stmt.query_map(params![node], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? as u64))
            })?;
            rows.collect::<Result<_, _>>()?
        };
        Ok(Cursors {
            sessions,
            jobs: self.job_cursors(node)?,
        })
    }

    /// A topic's live status message and its body.
    pub fn status(&self, surface: Surface) -> Result<Option<(i32, String)>, StoreError> {
        Ok(self
            .conn()
            .query_row(
                "SELECT message_id, body FROM status_messages WHERE chat_id = ?1 AND thread_id = ?2",
                params![surface.chat_id, surface.thread_id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?)
    }

    /// Reads, changes and writes a topic's status message as one step: `change` sees the
    /// current one and says what it becomes. Callers that edit the message in Telegram queue
    /// the edit inside `change`, so edits are queued in the order the changes were made (the
    /// receipt, the turn's lines and its outcome come from different tasks).
    pub fn update_status(
        &self,
        surface: Surface,
        change: impl FnOnce(Option<(i32, String)>) -> StatusChange,
    ) -> Result<(), StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let current = tx
            .query_row(
                "SELECT message_id, body FROM status_messages WHERE chat_id = ?1 AND thread_id = ?2",
                params![surface.chat_id, surface.thread_id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        match change(current) {
            StatusChange::Keep => {}
            StatusChange::Set(id, body) => {
                tx.execute(
                    "INSERT OR REPLACE INTO status_messages (chat_id, thread_id, message_id, body)
                     VALUES (?1, ?2, ?3, ?4)",
                    params![surface.chat_id, surface.thread_id, id, body],
                )?;
            }
            StatusChange::Clear => {
                tx.execute(
                    "DELETE FROM status_messages WHERE chat_id = ?1 AND thread_id = ?2",
                    params![surface.chat_id, surface.thread_id],
                )?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// Forgets a topic's status message (its turn ended).
    pub fn clear_status(&self, surface: Surface) -> Result<(), StoreError> {
        self.conn().execute(
            "DELETE FROM status_messages WHERE chat_id = ?1 AND thread_id = ?2",
            params![surface.chat_id, surface.thread_id],
        )?;
        Ok(())
    }
}

/// A remote node the center dials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeRecord {
    /// Its name (also in its certificate).
    pub name: String,
    /// `host:port`.
    pub endpoint: String,
    /// Revoked nodes are never dialled again and their certificates are refused.
    pub revoked: bool,
    /// Serial of the certificate issued to it (hex), if issued by this center.
    pub cert_serial: String,
}

impl Store {
    /// Adds or updates a remote node (un-revoking it).
    pub fn put_node(
        &self,
        name: &str,
        endpoint: &str,
        cert_serial: &str,
    ) -> Result<(), StoreError> {
        let now = shared::clock::now_unix_ms();
        let conn = self.conn();
        // Only a new certificate (an explicit enrollment) brings a revoked name back; the name
        // in a config file, a restart or a revoked serial never does.
        let fresh: bool = !cert_serial.is_empty()
            && conn
                .query_row(
                    "SELECT 1 FROM revoked_serials WHERE serial = ?1",
                    params![cert_serial],
                    |_| Ok(()),
                )
                .optional()?
                .is_none();
        conn.execute(
            "INSERT INTO nodes (name, endpoint, added_unix_ms, revoked, cert_serial) VALUES (?1, ?2, ?3, 0, ?4)
             ON CONFLICT (name) DO UPDATE SET endpoint = excluded.endpoint,
               revoked = CASE WHEN ?5 THEN 0 ELSE revoked END,
               cert_serial = CASE WHEN excluded.cert_serial = '' THEN cert_serial ELSE excluded.cert_serial END",
            params![name, endpoint, now, cert_serial, fresh],
        )?;
        Ok(())
    }

    /// Every remote node, revoked ones included.
    pub fn nodes(&self) -> Result<Vec<NodeRecord>, StoreError> {
        let conn = self.conn();
        let mut stmt =
            conn.prepare("SELECT name, endpoint, revoked, cert_serial FROM nodes ORDER BY name")?;
        let rows = stmt.query_map([], |r| {
            Ok(NodeRecord {
                name: r.get(0)?,
                endpoint: r.get(1)?,
                revoked: r.get::<_, i64>(2)? != 0,
                cert_serial: r.get(3)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// One remote node.
    pub fn node(&self, name: &str) -> Result<Option<NodeRecord>, StoreError> {
        Ok(self.nodes()?.into_iter().find(|n| n.name == name))
    }

    /// Records a join code (by the hash of its secret) as used; false if it was used before.
    pub fn use_join_code(&self, secret_hash: &str) -> Result<bool, StoreError> {
        let conn = self.conn();
        conn.pragma_update(None, "synchronous", "FULL")?;
        let n = conn.execute(
            "INSERT OR IGNORE INTO used_join_codes (secret_hash, used_unix_ms) VALUES (?1, ?2)",
            params![secret_hash, shared::clock::now_unix_ms()],
        )?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        Ok(n == 1)
    }

    /// Remembers the join code given out for a node that will dial in.
    pub fn put_invite(&self, name: &str, code: &str) -> Result<(), StoreError> {
        self.conn().execute(
            "INSERT OR REPLACE INTO invites (name, code) VALUES (?1, ?2)",
            params![name, code],
        )?;
        Ok(())
    }

    /// The join code given out for `name`.
    pub fn invite(&self, name: &str) -> Result<Option<String>, StoreError> {
        Ok(self
            .conn()
            .query_row(
                "SELECT code FROM invites WHERE name = ?1",
                params![name],
                |r| r.get(0),
            )
            .optional()?)
    }

    /// Forgets the join code of `name`.
    pub fn remove_invite(&self, name: &str) -> Result<(), StoreError> {
        self.conn()
            .execute("DELETE FROM invites WHERE name = ?1", params![name])?;
        Ok(())
    }

    /// Whether a join code was used already.
    pub fn join_code_used(&self, secret_hash: &str) -> Result<bool, StoreError> {
        Ok(self
            .conn()
            .query_row(
                "SELECT 1 FROM used_join_codes WHERE secret_hash = ?1",
                params![secret_hash],
                |_| Ok(()),
            )
            .optional()?
            .is_some())
    }

    /// Revokes a node: it is not dialled again and its certificate is refused.
    pub fn revoke_node(&self, name: &str) -> Result<bool, StoreError> {
        let conn = self.conn();
        // Durable before anything else happens (the default NORMAL could lose it on power loss).
        conn.pragma_update(None, "synchronous", "FULL")?;
        let n = conn.execute(
            "UPDATE nodes SET revoked = 1 WHERE name = ?1",
            params![name],
        )?;
        conn.execute(
            "INSERT OR IGNORE INTO revoked_serials (serial, node, revoked_unix_ms)
             SELECT cert_serial, name, ?2 FROM nodes WHERE name = ?1 AND cert_serial != ''",
            params![name, shared::clock::now_unix_ms()],
        )?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        Ok(n == 1)
    }

    /// Records that allowed user `by` added the bot to group `chat_id` (see [`Store::owned_chat`]).
    pub fn own_chat(&self, chat_id: i64, by: u64) -> Result<(), StoreError> {
        self.conn().execute(
            "INSERT OR REPLACE INTO owned_chats (chat_id, added_by, added_unix_ms)
             VALUES (?1, ?2, ?3)",
            params![chat_id, by as i64, shared::clock::now_unix_ms()],
        )?;
        Ok(())
    }

    /// Forgets a group the bot was removed from.
    pub fn disown_chat(&self, chat_id: i64) -> Result<(), StoreError> {
        self.conn().execute(
            "DELETE FROM owned_chats WHERE chat_id = ?1",
            params![chat_id],
        )?;
        Ok(())
    }

    /// Whether group `chat_id` is owned: an allowed user added the bot to it (and it was not
    /// removed since), or it has bound topics (only an allowed user can bind one).
    pub fn owned_chat(&self, chat_id: i64) -> Result<bool, StoreError> {
        Ok(self
            .conn()
            .query_row(
                "SELECT 1 FROM owned_chats WHERE chat_id = ?1
                 UNION ALL SELECT 1 FROM bindings WHERE chat_id = ?1 LIMIT 1",
                params![chat_id],
                |_| Ok(()),
            )
            .optional()?
            .is_some())
    }

    /// Hides a Codex thread of `node` from the resume picker (its topic was closed or deleted).
    pub fn hide_thread(&self, node: &NodeName, thread_id: &ThreadId) -> Result<(), StoreError> {
        self.conn().execute(
            "INSERT OR REPLACE INTO hidden_threads (node, thread_id, hidden_unix_ms)
             VALUES (?1, ?2, ?3)",
            params![
                node.as_str(),
                thread_id.as_str(),
                shared::clock::now_unix_ms()
            ],
        )?;
        Ok(())
    }

    /// The hidden Codex threads of `node`.
    pub fn hidden_threads(
        &self,
        node: &NodeName,
    ) -> Result<std::collections::HashSet<ThreadId>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare("SELECT thread_id FROM hidden_threads WHERE node = ?1")?;
        let rows = stmt.query_map(params![node.as_str()], |r| {
            r.get::<_, String>(0).map(ThreadId::new)
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Whether a certificate serial (lowercase hex) was revoked.
    pub fn serial_revoked(&self, serial: &str) -> Result<bool, StoreError> {
        Ok(self
            .conn()
            .query_row(
                "SELECT 1 FROM revoked_serials WHERE serial = ?1",
                params![serial],
                |_| Ok(()),
            )
            .optional()?
            .is_some())
    }

    /// Every chat [`Store::owned_chat`] counts as owned (read-only; for `center preflight`):
    /// groups an allowed user added the bot to and chats with bound topics, ascending.
    pub fn owned_chats(&self) -> Result<Vec<i64>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT chat_id FROM owned_chats UNION SELECT chat_id FROM bindings ORDER BY 1",
        )?;
        let rows = stmt.query_map([], |r| r.get(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

fn mode_str(mode: InputMode) -> &'static str {
    match mode {
        InputMode::Steer => "steer",
        InputMode::Queue => "queue",
    }
}

fn row_to_binding(r: &rusqlite::Row<'_>) -> rusqlite::Result<Binding> {
    Ok(Binding {
        surface: Surface {
            chat_id: r.get(0)?,
            thread_id: r.get(1)?,
        },
        node: NodeName::new(r.get::<_, String>(2)?),
        session_id: SessionId::new(r.get::<_, String>(3)?),
        cwd: r.get(4)?,
        mode: if r.get::<_, String>(5)? == "queue" {
            InputMode::Queue
        } else {
            InputMode::Steer
        },
    })
}

/// An input held while Codex waits for a prompt to be answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldInput {
    /// Row id (the order of arrival).
    pub id: i64,
    /// The topic.
    pub surface: Surface,
    /// The session it was meant for (it is never typed into another one).
    pub session_id: String,
    /// The text.
    pub text: String,
    /// The user's message.
    pub reply_to: i32,
    /// Steer or queue.
    pub mode: InputMode,
    /// The receipt message that says it is held.
    pub receipt: Option<i32>,
    /// When it was held (Unix ms).
    pub held_unix_ms: i64,
}

impl Store {
    /// Holds an input; returns its id.
    pub fn hold_input(&self, h: &HeldInput) -> Result<i64, StoreError> {
        let conn = self.conn();
        conn.execute(
            "INSERT INTO held_inputs
                (chat_id, thread_id, text, reply_to, mode, receipt, held_unix_ms, session_id)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![
                h.surface.chat_id,
                h.surface.thread_id,
                h.text,
                h.reply_to,
                mode_str(h.mode),
                h.receipt,
                h.held_unix_ms,
                h.session_id
            ],
        )?;
        Ok(conn.last_insert_rowid())
    }

    /// A topic's held inputs, oldest first.
    pub fn held_inputs(&self, surface: Surface) -> Result<Vec<HeldInput>, StoreError> {
        self.held_where(
            "chat_id = ?1 AND thread_id = ?2",
            params![surface.chat_id, surface.thread_id],
        )
    }

    /// Every held input, oldest first.
    pub fn all_held_inputs(&self) -> Result<Vec<HeldInput>, StoreError> {
        self.held_where("1 = 1", params![])
    }

    fn held_where(
        &self,
        filter: &str,
        args: &[&dyn rusqlite::ToSql],
    ) -> Result<Vec<HeldInput>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(&format!(
            "SELECT id, chat_id, thread_id, text, reply_to, mode, receipt, held_unix_ms, session_id
             FROM held_inputs WHERE {filter} ORDER BY id"
        ))?;
        let rows = stmt.query_map(args, |r| {
            Ok(HeldInput {
                id: r.get(0)?,
                surface: Surface {
                    chat_id: r.get(1)?,
                    thread_id: r.get(2)?,
                },
                text: r.get(3)?,
                reply_to: r.get(4)?,
                mode: if r.get::<_, String>(5)? == "queue" {
                    InputMode::Queue
                } else {
                    InputMode::Steer
                },
                receipt: r.get(6)?,
                held_unix_ms: r.get(7)?,
                session_id: r.get(8)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Removes a held input (released, expired or dropped); false if it was gone already.
    pub fn remove_held_input(&self, id: i64) -> Result<bool, StoreError> {
        Ok(self
            .conn()
            .execute("DELETE FROM held_inputs WHERE id = ?1", params![id])?
            > 0)
    }

    /// The message listing a topic's held inputs.
    pub fn held_preview(&self, surface: Surface) -> Result<Option<i32>, StoreError> {
        Ok(self
            .conn()
            .query_row(
                "SELECT message_id FROM held_previews WHERE chat_id = ?1 AND thread_id = ?2",
                params![surface.chat_id, surface.thread_id],
                |r| r.get(0),
            )
            .optional()?)
    }

    /// Remembers (or with `None` forgets) the message listing a topic's held inputs.
    pub fn set_held_preview(
        &self,
        surface: Surface,
        message_id: Option<i32>,
    ) -> Result<(), StoreError> {
        let conn = self.conn();
        match message_id {
            Some(id) => conn.execute(
                "INSERT OR REPLACE INTO held_previews (chat_id, thread_id, message_id) VALUES (?1, ?2, ?3)",
                params![surface.chat_id, surface.thread_id, id],
            )?,
            None => conn.execute(
                "DELETE FROM held_previews WHERE chat_id = ?1 AND thread_id = ?2",
                params![surface.chat_id, surface.thread_id],
            )?,
        };
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_survives_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        let s = Surface {
            chat_id: -100,
            thread_id: 7,
        };
        {
            let store = Store::open(&path).unwrap();
            assert!(store.accept_update(10, "{\"a\":1}").unwrap());
            assert!(!store.accept_update(10, "{}").unwrap());
            assert!(store.accept_update(11, "{\"b\":2}").unwrap());
            store.finish_update(10).unwrap();
            store
                .put_binding(&Binding {
                    surface: s,
                    node: "local".into(),
                    session_id: "s1".into(),
                    cwd: "/p".into(),
                    mode: InputMode::Steer,
                })
                .unwrap();
            store.ack(&"local".into(), &"s1".into(), 50).unwrap();
            store.ack(&"local".into(), &"s1".into(), 40).unwrap();
            store
                .update_status(s, |_| StatusChange::Set(99, "⚙️ ls".into()))
                .unwrap();
            store.set_mode(s, InputMode::Queue).unwrap();
        }
        let store = Store::open(&path).unwrap();
        assert!(!store.accept_update(10, "{}").unwrap());
        assert_eq!(store.last_update_id().unwrap(), Some(11));
        // Only the unfinished update is replayed, with its body.
        assert_eq!(
            store.unfinished_updates().unwrap(),
            vec![(11, "{\"b\":2}".to_owned())]
        );
        store.finish_update(11).unwrap();
        assert!(store.unfinished_updates().unwrap().is_empty());
        assert_eq!(store.acked(&"local".into(), &"s1".into()).unwrap(), 50);
        assert_eq!(
            store.cursors("local").unwrap().sessions,
            vec![("s1".to_owned(), 50)]
        );
        let b = store.binding(s).unwrap().unwrap();
        assert_eq!(b.mode, InputMode::Queue);
        assert_eq!(
            store.bindings_of(&"local".into(), &"s1".into()).unwrap(),
            vec![b]
        );
        assert_eq!(store.status(s).unwrap(), Some((99, "⚙️ ls".into())));
        store.clear_status(s).unwrap();
        assert_eq!(store.status(s).unwrap(), None);
        assert!(store.remove_binding(s).unwrap().is_some());
        store.put_node("vps-1", "10.0.0.1:7443", "ab").unwrap();
        store.put_node("vps-1", "10.0.0.2:7443", "").unwrap();
        let n = store.node("vps-1").unwrap().unwrap();
        assert_eq!(
            (n.endpoint.as_str(), n.cert_serial.as_str(), n.revoked),
            ("10.0.0.2:7443", "ab", false)
        );
        assert!(store.revoke_node("vps-1").unwrap());
        assert!(store.node("vps-1").unwrap().unwrap().revoked);
        assert!(store.bindings().unwrap().is_empty());
    }

    #[test]
    fn revocation_is_by_certificate_and_only_a_new_one_brings_a_name_back() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s.db")).unwrap();
        store.put_node("vps", "10.0.0.1:7443", "aa01").unwrap();
        assert!(store.revoke_node("vps").unwrap());
        assert!(store.serial_revoked("aa01").unwrap());
        // The name in a config file at restart, or the old certificate again: still revoked.
        store.put_node("vps", "10.0.0.1:7443", "").unwrap();
        assert!(store.node("vps").unwrap().unwrap().revoked);
        store.put_node("vps", "10.0.0.1:7443", "aa01").unwrap();
        assert!(store.node("vps").unwrap().unwrap().revoked);
        // A new enrollment issues a new certificate; the old serial stays revoked.
        store.put_node("vps", "10.0.0.1:7443", "bb02").unwrap();
        assert!(!store.node("vps").unwrap().unwrap().revoked);
        assert!(store.serial_revoked("aa01").unwrap());
        assert!(!store.serial_revoked("bb02").unwrap());
    }

    #[test]
    fn the_database_and_its_journal_are_owner_only() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("center.db");
        let store = Store::open(&path).unwrap();
        store.ack(&"local".into(), &"s".into(), 1).unwrap();
        for name in ["center.db", "center.db-wal", "center.db-shm"] {
            let mode = std::fs::metadata(dir.path().join(name))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "{name}");
        }
    }

    #[test]
    fn a_status_message_changes_in_one_step() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s.db")).unwrap();
        let s = Surface {
            chat_id: 1,
            thread_id: 2,
        };
        let mut seen = Vec::new();
        store
            .update_status(s, |cur| {
                seen.push(cur);
                StatusChange::Set(5, "✓ Delivered".into())
            })
            .unwrap();
        store
            .update_status(s, |cur| {
                let (id, body) = cur.clone().unwrap();
                seen.push(cur);
                StatusChange::Set(id, format!("{body}\n⚙️ ls"))
            })
            .unwrap();
        assert_eq!(
            store.status(s).unwrap(),
            Some((5, "✓ Delivered\n⚙️ ls".into()))
        );
        store.update_status(s, |_| StatusChange::Clear).unwrap();
        assert_eq!(store.status(s).unwrap(), None);
        assert_eq!(seen, [None, Some((5, "✓ Delivered".into()))]);
    }

    #[test]
    fn held_inputs_keep_their_order_and_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.db");
        let s = Surface {
            chat_id: -100,
            thread_id: 9,
        };
        let held = |text: &str| HeldInput {
            id: 0,
            surface: s,
            session_id: "s1".into(),
            text: text.into(),
            reply_to: 3,
            mode: InputMode::Queue,
            receipt: Some(4),
            held_unix_ms: 1000,
        };
        let first = {
            let store = Store::open(&path).unwrap();
            let first = store.hold_input(&held("one")).unwrap();
            store.hold_input(&held("two")).unwrap();
            store.set_held_preview(s, Some(77)).unwrap();
            first
        };
        let store = Store::open(&path).unwrap();
        let texts: Vec<String> = store
            .held_inputs(s)
            .unwrap()
            .into_iter()
            .map(|h| h.text)
            .collect();
        assert_eq!(texts, ["one", "two"]);
        assert_eq!(store.held_inputs(s).unwrap()[0].mode, InputMode::Queue);
        assert_eq!(store.held_preview(s).unwrap(), Some(77));
        assert!(store.remove_held_input(first).unwrap());
        assert!(!store.remove_held_input(first).unwrap());
        assert_eq!(store.all_held_inputs().unwrap().len(), 1);
        store.set_held_preview(s, None).unwrap();
        assert_eq!(store.held_preview(s).unwrap(), None);
    }
}
