//! Jobs in SQLite: every job ever submitted, its state and outcome, its status message, and
//! how far its node's events have been handled (`acked_seq`, advanced only after Telegram
//! accepted what they produced). Also each chat's job settings (`/workdir`, …).

use rusqlite::{OptionalExtension, Row, params};

use super::{Store, StoreError, Surface};
use crate::router::jobs::{JobId, JobState};

/// The schema of jobs (schema version 10).
pub(super) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS jobs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    wire_id TEXT NOT NULL UNIQUE,
    chat_id INTEGER NOT NULL,
    thread_id INTEGER NOT NULL,
    requested_by INTEGER NOT NULL,
    node TEXT NOT NULL,
    cwd TEXT NOT NULL,
    kind TEXT NOT NULL,
    prompt TEXT NOT NULL,
    resume_thread TEXT NOT NULL DEFAULT '',
    review_target TEXT NOT NULL DEFAULT '',
    settings TEXT NOT NULL DEFAULT '{}',
    state TEXT NOT NULL,
    reason TEXT NOT NULL DEFAULT '',
    created_ms INTEGER NOT NULL,
    started_ms INTEGER,
    finished_ms INTEGER,
    approval_until_ms INTEGER,
    status_msg INTEGER,
    reply_to INTEGER,
    pid INTEGER,
    codex_thread TEXT NOT NULL DEFAULT '',
    command_line TEXT NOT NULL DEFAULT '',
    activity TEXT NOT NULL DEFAULT '',
    exit_code INTEGER,
    tokens INTEGER,
    final_message TEXT NOT NULL DEFAULT '',
    error TEXT NOT NULL DEFAULT '',
    stderr_tail TEXT NOT NULL DEFAULT '',
    rollout_path TEXT NOT NULL DEFAULT '',
    artifacts TEXT NOT NULL DEFAULT '',
    acked_seq INTEGER NOT NULL DEFAULT 0,
    final_sent INTEGER NOT NULL DEFAULT 0,
    source TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS jobs_by_chat ON jobs (chat_id, id);
CREATE TABLE IF NOT EXISTS chat_settings (
    chat_id INTEGER NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL,
    PRIMARY KEY (chat_id, key));
";

/// What a job is asked to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NewJob {
    pub(crate) surface: Surface,
    pub(crate) requested_by: u64,
    pub(crate) node: String,
    pub(crate) cwd: String,
    /// `exec`, `resume` or `review`.
    pub(crate) kind: String,
    pub(crate) prompt: String,
    pub(crate) resume_thread: String,
    pub(crate) review_target: String,
    /// Codex settings as JSON (see `crate::jobs::settings`).
    pub(crate) settings: String,
    /// The user's message the job's status message replies to.
    pub(crate) reply_to: Option<i32>,
    /// What made the job when it was not a command in a chat (`schedule:3`,
    /// `github:owner/repo#12`, `cli`); empty for a command.
    pub(crate) source: String,
}

/// A job as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct JobRecord {
    pub(crate) id: JobId,
    /// The id the node knows it by (unique across databases: it carries the creation time).
    pub(crate) wire_id: String,
    pub(crate) job: NewJob,
    pub(crate) state: JobState,
    /// Why it needs approval, or why it failed.
    pub(crate) reason: String,
    pub(crate) created_ms: i64,
    pub(crate) started_ms: Option<i64>,
    pub(crate) finished_ms: Option<i64>,
    pub(crate) approval_until_ms: Option<i64>,
    pub(crate) status_msg: Option<i32>,
    pub(crate) pid: Option<u32>,
    pub(crate) codex_thread: String,
    pub(crate) command_line: String,
    /// The latest activity line while it runs.
    pub(crate) activity: String,
    pub(crate) exit_code: Option<i32>,
    pub(crate) tokens: Option<u64>,
    pub(crate) final_message: String,
    pub(crate) error: String,
    pub(crate) stderr_tail: String,
    pub(crate) rollout_path: String,
    /// Artifact paths, one per line.
    pub(crate) artifacts: String,
    pub(crate) acked_seq: u64,
    /// The final message (and artifacts) went out.
    pub(crate) final_sent: bool,
}

/// How a job ended, as the node reported it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct JobEnd {
    pub(crate) exit_code: Option<i32>,
    pub(crate) tokens: Option<u64>,
    pub(crate) final_message: String,
    pub(crate) error: String,
    pub(crate) stderr_tail: String,
    pub(crate) rollout_path: String,
    pub(crate) codex_thread: String,
    pub(crate) artifacts: String,
}

const COLUMNS: &str = "id, wire_id, chat_id, thread_id, requested_by, node, cwd, kind, prompt, \
    resume_thread, review_target, settings, state, reason, created_ms, started_ms, finished_ms, \
    approval_until_ms, status_msg, reply_to, pid, codex_thread, command_line, activity, exit_code, \
    tokens, final_message, error, stderr_tail, rollout_path, artifacts, acked_seq, final_sent, source";

fn record(r: &Row<'_>) -> rusqlite::Result<JobRecord> {
    let state: String = r.get(12)?;
    Ok(JobRecord {
        id: JobId(r.get(0)?),
        wire_id: r.get(1)?,
        job: NewJob {
            surface: Surface {
                chat_id: r.get(2)?,
                thread_id: r.get(3)?,
            },
            requested_by: r.get::<_, i64>(4)? as u64,
            node: r.get(5)?,
            cwd: r.get(6)?,
            kind: r.get(7)?,
            prompt: r.get(8)?,
            resume_thread: r.get(9)?,
            review_target: r.get(10)?,
            settings: r.get(11)?,
            reply_to: r.get(19)?,
            source: r.get(33)?,
        },
        // An unknown name (a newer center wrote it) reads as lost: never as running.
        state: JobState::parse(&state).unwrap_or(JobState::Lost),
        reason: r.get(13)?,
        created_ms: r.get(14)?,
        started_ms: r.get(15)?,
        finished_ms: r.get(16)?,
        approval_until_ms: r.get(17)?,
        status_msg: r.get(18)?,
        pid: r.get::<_, Option<i64>>(20)?.map(|p| p as u32),
        codex_thread: r.get(21)?,
        command_line: r.get(22)?,
        activity: r.get(23)?,
        exit_code: r.get(24)?,
        tokens: r.get::<_, Option<i64>>(25)?.map(|t| t as u64),
        final_message: r.get(26)?,
        error: r.get(27)?,
        stderr_tail: r.get(28)?,
        rollout_path: r.get(29)?,
        artifacts: r.get(30)?,
        acked_seq: r.get::<_, i64>(31)? as u64,
        final_sent: r.get::<_, i64>(32)? != 0,
    })
}

impl Store {
    /// Records a new job in `state`; its number.
    pub(crate) fn insert_job(
        &self,
        job: &NewJob,
        state: JobState,
        reason: &str,
        approval_until_ms: Option<i64>,
        now_ms: i64,
    ) -> Result<JobId, StoreError> {
        let conn = self.conn();
        let tx = conn.unchecked_transaction()?;
        tx.execute(
            "INSERT INTO jobs (wire_id, chat_id, thread_id, requested_by, node, cwd, kind, prompt,
                resume_thread, review_target, settings, state, reason, created_ms,
                approval_until_ms, reply_to, source)
             VALUES ('', ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)",
            params![
                job.surface.chat_id,
                job.surface.thread_id,
                job.requested_by as i64,
                job.node,
                job.cwd,
                job.kind,
                job.prompt,
                job.resume_thread,
                job.review_target,
                job.settings,
                state.name(),
                reason,
                now_ms,
                approval_until_ms,
                job.reply_to,
                job.source,
            ],
        )?;
        let id = tx.last_insert_rowid();
        tx.execute(
            "UPDATE jobs SET wire_id = ?2 WHERE id = ?1",
            params![id, format!("j{id}-{now_ms}")],
        )?;
        tx.commit()?;
        Ok(JobId(id))
    }

    /// One job.
    pub(crate) fn job(&self, id: JobId) -> Result<Option<JobRecord>, StoreError> {
        Ok(self
            .conn()
            .query_row(
                &format!("SELECT {COLUMNS} FROM jobs WHERE id = ?1"),
                params![id.0],
                record,
            )
            .optional()?)
    }

    /// The job a node knows as `wire_id`.
    pub(crate) fn job_by_wire(&self, wire_id: &str) -> Result<Option<JobRecord>, StoreError> {
        Ok(self
            .conn()
            .query_row(
                &format!("SELECT {COLUMNS} FROM jobs WHERE wire_id = ?1"),
                params![wire_id],
                record,
            )
            .optional()?)
    }

    /// The newest jobs of a chat, newest first.
    pub(crate) fn jobs_of_chat(
        &self,
        chat_id: i64,
        limit: usize,
    ) -> Result<Vec<JobRecord>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(&format!(
            "SELECT {COLUMNS} FROM jobs WHERE chat_id = ?1 ORDER BY id DESC LIMIT ?2"
        ))?;
        let rows = stmt.query_map(params![chat_id, limit as i64], record)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Jobs that are not over, or whose end has not been delivered yet, oldest first.
    pub(crate) fn open_jobs(&self) -> Result<Vec<JobRecord>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(&format!(
            "SELECT {COLUMNS} FROM jobs
             WHERE state IN ('awaiting approval', 'queued', 'running') OR final_sent = 0
             ORDER BY id"
        ))?;
        let rows = stmt.query_map([], record)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The acked sequence of each job of `node` that may still have events to replay.
    pub(crate) fn job_cursors(&self, node: &str) -> Result<Vec<(String, u64)>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT wire_id, acked_seq FROM jobs
             WHERE node = ?1 AND (state = 'running' OR final_sent = 0) AND started_ms IS NOT NULL",
        )?;
        let rows = stmt.query_map(params![node], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? as u64))
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Moves a job to `state` (with a reason, kept if `reason` is empty). A job that is over
    /// stays over: a late change is ignored (false).
    pub(crate) fn set_job_state(
        &self,
        id: JobId,
        state: JobState,
        reason: &str,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        let changed = self.conn().execute(
            "UPDATE jobs SET state = ?2,
                reason = CASE WHEN ?3 = '' THEN reason ELSE ?3 END,
                started_ms = CASE WHEN ?2 = 'running' THEN COALESCE(started_ms, ?4) ELSE started_ms END,
                finished_ms = CASE WHEN ?5 THEN COALESCE(finished_ms, ?4) ELSE finished_ms END,
                approval_until_ms = CASE WHEN ?2 = 'awaiting approval' THEN approval_until_ms ELSE NULL END,
                final_sent = CASE WHEN ?5 AND started_ms IS NULL THEN 1 ELSE final_sent END
             WHERE id = ?1 AND state IN ('awaiting approval', 'queued', 'running')",
            params![id.0, state.name(), reason, now_ms, state.is_final()],
        )?;
        Ok(changed > 0)
    }

    /// The job's status message.
    pub(crate) fn set_job_status_msg(&self, id: JobId, message_id: i32) -> Result<(), StoreError> {
        self.conn().execute(
            "UPDATE jobs SET status_msg = ?2 WHERE id = ?1",
            params![id.0, message_id],
        )?;
        Ok(())
    }

    /// What the node said about the running job.
    pub(crate) fn set_job_running(
        &self,
        id: JobId,
        pid: u32,
        codex_thread: &str,
        command_line: &str,
    ) -> Result<(), StoreError> {
        self.conn().execute(
            "UPDATE jobs SET pid = CASE WHEN ?2 > 0 THEN ?2 ELSE pid END,
                codex_thread = CASE WHEN ?3 = '' THEN codex_thread ELSE ?3 END,
                command_line = CASE WHEN ?4 = '' THEN command_line ELSE ?4 END
             WHERE id = ?1",
            params![id.0, pid as i64, codex_thread, command_line],
        )?;
        Ok(())
    }

    /// The job's latest activity line.
    pub(crate) fn set_job_activity(&self, id: JobId, line: &str) -> Result<(), StoreError> {
        self.conn().execute(
            "UPDATE jobs SET activity = ?2 WHERE id = ?1",
            params![id.0, line],
        )?;
        Ok(())
    }

    /// How the job ended (its state is set with [`Store::set_job_state`]).
    pub(crate) fn set_job_end(&self, id: JobId, end: &JobEnd) -> Result<(), StoreError> {
        self.conn().execute(
            "UPDATE jobs SET exit_code = ?2, tokens = ?3, final_message = ?4, error = ?5,
                stderr_tail = ?6, rollout_path = ?7,
                codex_thread = CASE WHEN ?8 = '' THEN codex_thread ELSE ?8 END, artifacts = ?9
             WHERE id = ?1",
            params![
                id.0,
                end.exit_code,
                end.tokens.map(|t| t as i64),
                end.final_message,
                end.error,
                end.stderr_tail,
                end.rollout_path,
                end.codex_thread,
                end.artifacts,
            ],
        )?;
        Ok(())
    }

    /// The job's end went out to Telegram.
    pub(crate) fn set_job_final_sent(&self, id: JobId) -> Result<(), StoreError> {
        self.conn().execute(
            "UPDATE jobs SET final_sent = 1 WHERE id = ?1",
            params![id.0],
        )?;
        Ok(())
    }

    /// Advances the job's acked sequence (never back).
    pub(crate) fn ack_job(&self, id: JobId, seq: u64) -> Result<(), StoreError> {
        self.conn().execute(
            "UPDATE jobs SET acked_seq = MAX(acked_seq, ?2) WHERE id = ?1",
            params![id.0, seq as i64],
        )?;
        Ok(())
    }

    /// The Codex thread of the newest job from `source` that has one.
    pub(crate) fn last_thread_of_source(&self, source: &str) -> Result<Option<String>, StoreError> {
        Ok(self
            .conn()
            .query_row(
                "SELECT codex_thread FROM jobs WHERE source = ?1 AND codex_thread != ''
                 ORDER BY id DESC LIMIT 1",
                params![source],
                |r| r.get(0),
            )
            .optional()?)
    }

    /// A chat's settings whose key starts with `prefix`, by key.
    pub(crate) fn chat_settings_with_prefix(
        &self,
        chat_id: i64,
        prefix: &str,
    ) -> Result<Vec<(String, String)>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT key, value FROM chat_settings WHERE chat_id = ?1 AND substr(key, 1, ?3) = ?2
             ORDER BY key",
        )?;
        let rows = stmt.query_map(params![chat_id, prefix, prefix.len() as i64], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// A chat's setting.
    pub(crate) fn chat_setting(
        &self,
        chat_id: i64,
        key: &str,
    ) -> Result<Option<String>, StoreError> {
        Ok(self
            .conn()
            .query_row(
                "SELECT value FROM chat_settings WHERE chat_id = ?1 AND key = ?2",
                params![chat_id, key],
                |r| r.get(0),
            )
            .optional()?)
    }

    /// Sets (or with `None` removes) a chat's setting.
    pub(crate) fn set_chat_setting(
        &self,
        chat_id: i64,
        key: &str,
        value: Option<&str>,
    ) -> Result<(), StoreError> {
        match value {
            Some(v) => self.conn().execute(
                "INSERT INTO chat_settings (chat_id, key, value) VALUES (?1, ?2, ?3)
                 ON CONFLICT (chat_id, key) DO UPDATE SET value = excluded.value",
                params![chat_id, key, v],
            )?,
            None => self.conn().execute(
                "DELETE FROM chat_settings WHERE chat_id = ?1 AND key = ?2",
                params![chat_id, key],
            )?,
        };
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new_job(chat: i64) -> NewJob {
        NewJob {
            surface: Surface {
                chat_id: chat,
                thread_id: 3,
            },
            requested_by: 9,
            node: "local".into(),
            cwd: "/w".into(),
            kind: "exec".into(),
            prompt: "hi".into(),
            resume_thread: String::new(),
            review_target: String::new(),
            settings: "{}".into(),
            reply_to: Some(5),
            source: String::new(),
        }
    }

    #[test]
    fn a_job_lives_and_ends_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s.db")).unwrap();
        let id = store
            .insert_job(&new_job(-100), JobState::Queued, "", None, 1_000)
            .unwrap();
        let job = store.job(id).unwrap().unwrap();
        assert_eq!(job.wire_id, format!("j{}-1000", id.0));
        assert_eq!(job.job, new_job(-100));
        assert_eq!(store.job_by_wire(&job.wire_id).unwrap().unwrap().id, id);

        assert!(
            store
                .set_job_state(id, JobState::Running, "", 2_000)
                .unwrap()
        );
        store.set_job_running(id, 42, "", "codex exec").unwrap();
        store.set_job_running(id, 0, "t-1", "").unwrap();
        assert_eq!(store.job_cursors("local").unwrap(), [(job.wire_id, 0)]);
        store.ack_job(id, 70).unwrap();
        store.ack_job(id, 10).unwrap();
        let end = JobEnd {
            exit_code: Some(0),
            tokens: Some(1234),
            final_message: "done".into(),
            ..JobEnd::default()
        };
        store.set_job_end(id, &end).unwrap();
        assert!(
            store
                .set_job_state(id, JobState::Succeeded, "", 3_000)
                .unwrap()
        );
        // Over is over.
        assert!(
            !store
                .set_job_state(id, JobState::Failed, "late", 4_000)
                .unwrap()
        );
        let job = store.job(id).unwrap().unwrap();
        assert_eq!(job.state, JobState::Succeeded);
        assert_eq!(
            (job.started_ms, job.finished_ms),
            (Some(2_000), Some(3_000))
        );
        assert_eq!((job.pid, job.codex_thread.as_str()), (Some(42), "t-1"));
        assert_eq!(job.acked_seq, 70);
        assert_eq!(job.tokens, Some(1234));
        assert!(!job.final_sent);
        assert_eq!(
            store.open_jobs().unwrap().len(),
            1,
            "its end is not delivered yet"
        );
        store.set_job_final_sent(id).unwrap();
        assert!(store.open_jobs().unwrap().is_empty());
        assert!(store.job_cursors("local").unwrap().is_empty());
    }

    #[test]
    fn a_job_that_never_ran_needs_no_delivery() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s.db")).unwrap();
        let id = store
            .insert_job(&new_job(1), JobState::AwaitingApproval, "sudo", Some(9), 1)
            .unwrap();
        assert_eq!(store.open_jobs().unwrap().len(), 1);
        assert!(store.set_job_state(id, JobState::Rejected, "", 2).unwrap());
        assert!(store.open_jobs().unwrap().is_empty());
        let job = store.job(id).unwrap().unwrap();
        assert_eq!(job.reason, "sudo");
        assert_eq!(job.approval_until_ms, None);
        assert_eq!(store.jobs_of_chat(1, 10).unwrap().len(), 1);
        assert!(store.jobs_of_chat(2, 10).unwrap().is_empty());
    }

    #[test]
    fn chat_settings_are_set_and_reset() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s.db")).unwrap();
        assert_eq!(store.chat_setting(1, "workdir").unwrap(), None);
        store
            .set_chat_setting(1, "workdir", Some("local:/w"))
            .unwrap();
        store
            .set_chat_setting(1, "workdir", Some("local:/x"))
            .unwrap();
        assert_eq!(
            store.chat_setting(1, "workdir").unwrap().as_deref(),
            Some("local:/x")
        );
        store.set_chat_setting(1, "workdir", None).unwrap();
        assert_eq!(store.chat_setting(1, "workdir").unwrap(), None);
    }
}
