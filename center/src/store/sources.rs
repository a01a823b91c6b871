//! Where jobs come from besides a command in a chat, in SQLite: schedules (`/schedule`) and
//! the GitHub issues that became jobs. Both exist so a restart repeats nothing: a schedule
//! remembers the last run it handled, and an issue is recorded before its job is submitted and
//! marked once its comment is posted.

use rusqlite::{OptionalExtension, Row, params};

use super::{Store, StoreError, Surface};
use crate::router::jobs::JobId;

/// The schema of schedules and GitHub items (schema version 11).
pub(super) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS schedules (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    chat_id INTEGER NOT NULL,
    thread_id INTEGER NOT NULL,
    node TEXT NOT NULL,
    cwd TEXT NOT NULL,
    cron TEXT NOT NULL,
    prompt TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    last_ms INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS schedules_by_chat ON schedules (chat_id, id);
CREATE TABLE IF NOT EXISTS github_items (
    repo TEXT NOT NULL,
    number INTEGER NOT NULL,
    label TEXT NOT NULL,
    title TEXT NOT NULL,
    url TEXT NOT NULL,
    job_id INTEGER,
    comment TEXT NOT NULL DEFAULT '',
    seen_ms INTEGER NOT NULL,
    commented_ms INTEGER,
    PRIMARY KEY (repo, number)
);
";

/// A schedule as asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NewSchedule {
    /// Where its jobs report.
    pub(crate) surface: Surface,
    pub(crate) node: String,
    pub(crate) cwd: String,
    /// The cron expression, as the user wrote it (UTC).
    pub(crate) cron: String,
    pub(crate) prompt: String,
}

/// A schedule as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ScheduleRecord {
    pub(crate) id: i64,
    pub(crate) schedule: NewSchedule,
    pub(crate) created_ms: i64,
    /// The latest moment whose runs are handled (run or skipped): the next run is the cron's
    /// first time after it.
    pub(crate) last_ms: i64,
}

/// Whether an issue's job was commented back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CommentState {
    /// Not yet.
    None,
    /// A comment was being posted: it may have landed, so look before posting again.
    Trying,
    /// Posted.
    Done,
}

impl CommentState {
    fn name(self) -> &'static str {
        match self {
            Self::None => "",
            Self::Trying => "trying",
            Self::Done => "done",
        }
    }

    fn parse(name: &str) -> Self {
        match name {
            "" => Self::None,
            "done" => Self::Done,
            // Unknown (a newer center wrote it) reads as "may have landed": never a second post.
            _ => Self::Trying,
        }
    }
}

/// A GitHub issue that became a job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct GithubItem {
    /// `owner/name`.
    pub(crate) repo: String,
    pub(crate) number: u64,
    pub(crate) title: String,
    pub(crate) url: String,
    /// Its job, once submitted.
    pub(crate) job: Option<JobId>,
    pub(crate) comment: CommentState,
}

fn schedule(r: &Row<'_>) -> rusqlite::Result<ScheduleRecord> {
    Ok(ScheduleRecord {
        id: r.get(0)?,
        schedule: NewSchedule {
            surface: Surface {
                chat_id: r.get(1)?,
                thread_id: r.get(2)?,
            },
            node: r.get(3)?,
            cwd: r.get(4)?,
            cron: r.get(5)?,
            prompt: r.get(6)?,
        },
        created_ms: r.get(7)?,
        last_ms: r.get(8)?,
    })
}

const SCHEDULE_COLUMNS: &str =
    "id, chat_id, thread_id, node, cwd, cron, prompt, created_ms, last_ms";

fn item(r: &Row<'_>) -> rusqlite::Result<GithubItem> {
    Ok(GithubItem {
        repo: r.get(0)?,
        number: r.get::<_, i64>(1)? as u64,
        title: r.get(2)?,
        url: r.get(3)?,
        job: r.get::<_, Option<i64>>(4)?.map(JobId),
        comment: CommentState::parse(&r.get::<_, String>(5)?),
    })
}

const ITEM_COLUMNS: &str = "repo, number, title, url, job_id, comment";

impl Store {
    /// Records a schedule whose runs start after `now_ms`; its number.
    pub(crate) fn insert_schedule(&self, s: &NewSchedule, now_ms: i64) -> Result<i64, StoreError> {
        let conn = self.conn();
        conn.execute(
            "INSERT INTO schedules (chat_id, thread_id, node, cwd, cron, prompt, created_ms, last_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7)",
            params![
                s.surface.chat_id,
                s.surface.thread_id,
                s.node,
                s.cwd,
                s.cron,
                s.prompt,
                now_ms
            ],
        )?;
        Ok(conn.last_insert_rowid())
    }

    /// Every schedule, oldest first.
    pub(crate) fn schedules(&self) -> Result<Vec<ScheduleRecord>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(&format!(
            "SELECT {SCHEDULE_COLUMNS} FROM schedules ORDER BY id"
        ))?;
        let rows = stmt.query_map([], schedule)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The schedules of a chat, oldest first.
    pub(crate) fn schedules_of_chat(
        &self,
        chat_id: i64,
    ) -> Result<Vec<ScheduleRecord>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(&format!(
            "SELECT {SCHEDULE_COLUMNS} FROM schedules WHERE chat_id = ?1 ORDER BY id"
        ))?;
        let rows = stmt.query_map(params![chat_id], schedule)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Removes a schedule of a chat; false if the chat has no such schedule.
    pub(crate) fn remove_schedule(&self, id: i64, chat_id: i64) -> Result<bool, StoreError> {
        let removed = self.conn().execute(
            "DELETE FROM schedules WHERE id = ?1 AND chat_id = ?2",
            params![id, chat_id],
        )?;
        Ok(removed > 0)
    }

    /// The runs of a schedule up to `last_ms` are handled (never moves back).
    pub(crate) fn set_schedule_last(&self, id: i64, last_ms: i64) -> Result<(), StoreError> {
        self.conn().execute(
            "UPDATE schedules SET last_ms = MAX(last_ms, ?2) WHERE id = ?1",
            params![id, last_ms],
        )?;
        Ok(())
    }

    /// The newest job made by `source` (`schedule:3`, `github:o/r#5`) and when it was made.
    pub(crate) fn latest_job_of_source(
        &self,
        source: &str,
    ) -> Result<Option<(JobId, i64)>, StoreError> {
        Ok(self
            .conn()
            .query_row(
                "SELECT id, created_ms FROM jobs WHERE source = ?1 ORDER BY id DESC LIMIT 1",
                params![source],
                |r| Ok((JobId(r.get(0)?), r.get(1)?)),
            )
            .optional()?)
    }

    /// Records an issue seen for the first time by the `[[github]]` entry of `label`; false
    /// if it was recorded before (by any entry: an issue makes one job).
    pub(crate) fn insert_github_item(
        &self,
        repo: &str,
        number: u64,
        label: &str,
        title: &str,
        url: &str,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        let inserted = self.conn().execute(
            "INSERT OR IGNORE INTO github_items (repo, number, label, title, url, seen_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![repo, number as i64, label, title, url, now_ms],
        )?;
        Ok(inserted > 0)
    }

    /// The issues of `repo` taken by the entry of `label` and not commented on yet, oldest
    /// first.
    pub(crate) fn github_items_open(
        &self,
        repo: &str,
        label: &str,
    ) -> Result<Vec<GithubItem>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(&format!(
            "SELECT {ITEM_COLUMNS} FROM github_items
             WHERE repo = ?1 AND label = ?2 AND comment <> 'done'
             ORDER BY seen_ms, number"
        ))?;
        let rows = stmt.query_map(params![repo, label], item)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The issue's job.
    pub(crate) fn set_github_job(
        &self,
        repo: &str,
        number: u64,
        job: JobId,
    ) -> Result<(), StoreError> {
        self.conn().execute(
            "UPDATE github_items SET job_id = ?3 WHERE repo = ?1 AND number = ?2",
            params![repo, number as i64, job.0],
        )?;
        Ok(())
    }

    /// How far commenting on the issue got.
    pub(crate) fn set_github_comment(
        &self,
        repo: &str,
        number: u64,
        state: CommentState,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        self.conn().execute(
            "UPDATE github_items SET comment = ?3,
                commented_ms = CASE WHEN ?3 = 'done' THEN ?4 ELSE commented_ms END
             WHERE repo = ?1 AND number = ?2",
            params![repo, number as i64, state.name(), now_ms],
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{router::jobs::JobState, store::NewJob};

    fn open() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s.db")).unwrap();
        (dir, store)
    }

    fn new_schedule(chat: i64) -> NewSchedule {
        NewSchedule {
            surface: Surface {
                chat_id: chat,
                thread_id: 4,
            },
            node: "local".into(),
            cwd: "/w".into(),
            cron: "0 9 * * *".into(),
            prompt: "report".into(),
        }
    }

    #[test]
    fn schedules_are_kept_per_chat_and_their_last_run_only_advances() {
        let (_dir, store) = open();
        let a = store.insert_schedule(&new_schedule(1), 1_000).unwrap();
        let b = store.insert_schedule(&new_schedule(2), 2_000).unwrap();
        assert_eq!(store.schedules().unwrap().len(), 2);
        let mine = store.schedules_of_chat(1).unwrap();
        assert_eq!(mine.len(), 1);
        assert_eq!(mine[0].schedule, new_schedule(1));
        assert_eq!((mine[0].created_ms, mine[0].last_ms), (1_000, 1_000));
        store.set_schedule_last(a, 5_000).unwrap();
        store.set_schedule_last(a, 3_000).unwrap();
        assert_eq!(store.schedules_of_chat(1).unwrap()[0].last_ms, 5_000);
        assert!(!store.remove_schedule(b, 1).unwrap(), "not this chat's");
        assert!(store.remove_schedule(b, 2).unwrap());
        assert!(!store.remove_schedule(b, 2).unwrap());
        assert_eq!(store.schedules().unwrap().len(), 1);
    }

    #[test]
    fn an_issue_is_recorded_once_and_commented_once() {
        let (_dir, store) = open();
        assert!(
            store
                .insert_github_item("o/r", 5, "codex", "Bug", "u", 1)
                .unwrap()
        );
        assert!(
            !store
                .insert_github_item("o/r", 5, "other", "Bug", "u", 2)
                .unwrap(),
            "one job per issue, whichever entry saw it"
        );
        let item = &store.github_items_open("o/r", "codex").unwrap()[0];
        assert_eq!(
            (item.number, item.job, item.comment),
            (5, None, CommentState::None)
        );
        let job = NewJob {
            surface: Surface {
                chat_id: 1,
                thread_id: 0,
            },
            requested_by: 0,
            node: "local".into(),
            cwd: "/w".into(),
            kind: "exec".into(),
            prompt: "p".into(),
            resume_thread: String::new(),
            review_target: String::new(),
            settings: "{}".into(),
            reply_to: None,
            source: "github:o/r#5".into(),
        };
        let id = store
            .insert_job(&job, JobState::Queued, "", None, 7)
            .unwrap();
        assert_eq!(
            store.latest_job_of_source("github:o/r#5").unwrap(),
            Some((id, 7))
        );
        assert_eq!(store.latest_job_of_source("github:o/r#6").unwrap(), None);
        store.set_github_job("o/r", 5, id).unwrap();
        store
            .set_github_comment("o/r", 5, CommentState::Trying, 8)
            .unwrap();
        assert!(store.github_items_open("o/r", "other").unwrap().is_empty());
        let open = store.github_items_open("o/r", "codex").unwrap();
        assert_eq!(open.len(), 1);
        assert_eq!(
            (open[0].job, open[0].comment),
            (Some(id), CommentState::Trying)
        );
        store
            .set_github_comment("o/r", 5, CommentState::Done, 9)
            .unwrap();
        assert!(store.github_items_open("o/r", "codex").unwrap().is_empty());
    }
}
