//! [`Jobs`]: headless `codex exec` runs this node starts for the center, in one owner — the
//! table of known jobs, their folders under `<state_dir>/jobs/`, and the delivery of their
//! events to the attached link.
//!
//! Why an event log of the node's own (and not Codex's stdout as the stream): what a job reports
//! is derived (one line per command, the finish with artifacts and an outcome Codex does not
//! write), and it must keep its sequence numbers across node restarts. Each derived event is
//! appended to the job's `events.jsonl` first and then sent; its seq is the byte offset past its
//! line (see [`store`]). The center acks with `JobAck`; a new link gets every event after
//! max(its cursor, the node's record of acks); a job whose finish is acked is not replayed.
//!
//! Delivery mirrors a window's tail: each job holds the link it delivers to and how far it has
//! sent on it, behind one tokio lock (`Job::delivery`) that both the live path (append + send)
//! and a replay take, so an event is never sent twice on one link nor skipped.
//!
//! Processes run in their own process group with stdout and stderr going to files, so they
//! outlive a node restart; a restarted node follows a job whose process is still the same one
//! (pid and start time) and reports the others LOST — never silently.

pub(crate) mod artifacts;
mod command;
pub(crate) mod diff;
mod exec_json;
mod process;
mod runner;
mod store;

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    process::Stdio,
    sync::{Arc, Mutex},
    time::Duration,
};

use proto::v1::{self, job_event::Kind, node_msg};
use rustix::process::Signal;
use shared::sync::LockExt;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use crate::{config::JobsConfig, error::NodeError, hub::Hub};
use store::{JobDir, JobMeta};

pub(crate) use command::valid_job_id;

/// At most this many jobs are listed.
const LIST_MAX: usize = 50;

/// Every job this node knows (running, or finished within the retention time).
pub(crate) struct Jobs {
    root: PathBuf,
    cfg: JobsConfig,
    hub: Hub,
    ctx: runner::Ctx,
    jobs: Mutex<HashMap<String, Arc<Job>>>,
    /// Serialises starting jobs (an id is checked and used in one step).
    creating: tokio::sync::Mutex<()>,
}

/// One job: what was started, its state, and its delivery.
pub(crate) struct Job {
    meta: JobMeta,
    dir: JobDir,
    state: Mutex<JobState>,
    delivery: tokio::sync::Mutex<Delivery>,
    /// True once the process is gone (the cancel escalation waits on it).
    exited: watch::Sender<bool>,
}

#[derive(Default)]
struct JobState {
    thread_id: String,
    finished: Option<(v1::JobFinished, u64)>,
    acked: u64,
    cancel_requested: bool,
}

#[derive(Default)]
struct Delivery {
    sink: Option<mpsc::Sender<v1::NodeMsg>>,
    /// The highest seq sent on `sink`.
    sent_to: u64,
}

/// What a new job runs with besides its request.
pub(crate) struct Launch {
    /// The resolved folder (under the roots).
    pub(crate) cwd: PathBuf,
    /// The Codex program (the one windows run).
    pub(crate) program: String,
    /// Codex's environment (as a window gets it).
    pub(crate) env: Vec<(String, String)>,
}

impl Jobs {
    /// Loads the jobs under `<state_dir>/jobs`, forgetting (and deleting) those that finished
    /// longer ago than the retention time. Nothing runs until [`Jobs::recover`].
    pub(crate) fn load(
        state_dir: &Path,
        codex_home: &Path,
        cfg: JobsConfig,
        hub: Hub,
        token: CancellationToken,
    ) -> Self {
        let root = state_dir.join("jobs");
        if let Err(err) = std::fs::create_dir_all(&root) {
            tracing::warn!(dir = %root.display(), error = %err, "cannot create the jobs folder");
        }
        let cutoff = shared::clock::now_unix_ms() - cfg.retention.as_millis() as i64;
        let mut jobs = HashMap::new();
        for entry in std::fs::read_dir(&root).into_iter().flatten().flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if !valid_job_id(&name) {
                continue;
            }
            let dir = JobDir::new(&root, &name);
            let meta = match dir.read_meta() {
                Ok(meta) => meta,
                Err(err) => {
                    let old = entry
                        .metadata()
                        .and_then(|m| m.modified())
                        .is_ok_and(|t| t.elapsed().unwrap_or_default() > cfg.retention);
                    if old {
                        let _ = std::fs::remove_dir_all(&dir.path);
                    } else {
                        tracing::warn!(error = %err, "skipping a job folder");
                    }
                    continue;
                }
            };
            let finished = store::read_events(&dir.events(), 0)
                .into_iter()
                .rev()
                .find_map(|e| match e.kind {
                    Some(Kind::Finished(f)) => Some((f, e.seq)),
                    _ => None,
                });
            if finished.is_some() && meta.started_unix_ms < cutoff {
                let _ = std::fs::remove_dir_all(&dir.path);
                continue;
            }
            let thread_id = finished
                .as_ref()
                .map(|(f, _)| f.thread_id.clone())
                .unwrap_or_default();
            let job = Job::new(meta, dir);
            {
                let mut st = job.state.locked();
                st.acked = job.dir.read_acked();
                st.cancel_requested = job.dir.is_cancelled();
                st.thread_id = thread_id;
                if finished.is_some() {
                    job.exited.send_replace(true);
                }
                st.finished = finished;
            }
            jobs.insert(name, Arc::new(job));
        }
        let ctx = runner::Ctx {
            sessions_dir: codex_home.join("sessions"),
            exclude: vec![state_dir.to_owned(), codex_home.to_owned()],
            token,
        };
        Self {
            root,
            cfg,
            hub,
            ctx,
            jobs: Mutex::new(jobs),
            creating: tokio::sync::Mutex::new(()),
        }
    }

    /// Follows the unfinished jobs found by [`Jobs::load`]: a process that is still the job's
    /// is followed to its end; one that is gone is reported LOST.
    pub(crate) fn recover(&self) {
        let unfinished: Vec<Arc<Job>> = self
            .jobs
            .locked()
            .values()
            .filter(|j| j.finished().is_none())
            .cloned()
            .collect();
        for job in unfinished {
            let alive = process::is_same_process(job.meta.pid, job.meta.proc_start);
            tracing::info!(job.id = %job.meta.job_id, pid = job.meta.pid, alive, "job found again after a restart");
            let exit = if alive {
                runner::Exit::Adopted
            } else {
                runner::Exit::Lost
            };
            tokio::spawn(runner::follow(job, exit, self.ctx.clone(), true));
        }
    }

    /// Starts job `req` (or answers with the job of that id if there is one).
    pub(crate) async fn start(
        &self,
        req: &v1::StartJob,
        launch: Launch,
    ) -> Result<v1::JobStarted, NodeError> {
        let _serial = self.creating.lock().await;
        if let Some(job) = self.job(&req.job_id) {
            return Ok(v1::JobStarted {
                job: Some(job.info()),
                existed: true,
            });
        }
        let dir = JobDir::new(&self.root, &req.job_id);
        let invocation = command::build(&launch.program, req, &launch.cwd, &dir.last_message())
            .map_err(|e| NodeError::InvalidArgument(e.to_string()))?;
        let internal = |e: &dyn std::fmt::Display| NodeError::Internal(e.to_string());
        if dir.path.exists() {
            // A folder without a record (a start that failed half-way): start over.
            let _ = std::fs::remove_dir_all(&dir.path);
        }
        dir.create().map_err(|e| {
            NodeError::Unavailable(format!("this node cannot keep job output now: {e}"))
        })?;
        let spawned = spawn(&dir, &launch, &invocation.args).await;
        let (child, pid) = match spawned {
            Ok(v) => v,
            Err(err) => {
                let _ = std::fs::remove_dir_all(&dir.path);
                return Err(NodeError::Internal(format!(
                    "cannot start {}: {err}",
                    launch.program
                )));
            }
        };
        let settings = req.settings.clone().unwrap_or_default();
        let meta = JobMeta {
            job_id: req.job_id.clone(),
            cwd: launch.cwd.clone(),
            kind: match v1::JobKind::try_from(req.kind) {
                Ok(v1::JobKind::Resume) => "resume",
                Ok(v1::JobKind::Review) => "review",
                _ => "exec",
            }
            .to_owned(),
            pid,
            proc_start: process::start_time(pid).unwrap_or(0),
            started_unix_ms: shared::clock::now_unix_ms(),
            command_line: invocation.display,
            artifact_extensions: settings.artifact_extensions,
            artifact_max_bytes: settings.artifact_max_bytes,
        };
        if let Err(err) = dir.write_meta(&meta) {
            // Without its record a restart could not find the job: stop it now.
            let _ = process::signal_group(pid, Signal::KILL);
            let _ = std::fs::remove_dir_all(&dir.path);
            return Err(internal(&err));
        }
        let job = Arc::new(Job::new(meta, dir));
        self.jobs.locked().insert(req.job_id.clone(), job.clone());
        job.delivery.lock().await.sink = self.hub.sink();
        tracing::info!(job.id = %req.job_id, pid, cwd = %launch.cwd.display(), "job started");
        job.emit(Kind::Running(v1::JobRunning {
            pid,
            thread_id: String::new(),
            command_line: job.meta.command_line.clone(),
        }))
        .await;
        let info = job.info();
        tokio::spawn(runner::follow(
            job,
            runner::Exit::Child(child),
            self.ctx.clone(),
            false,
        ));
        Ok(v1::JobStarted {
            job: Some(info),
            existed: false,
        })
    }

    /// SIGTERM to the job's process group, SIGKILL after `grace` (the configured one if zero).
    pub(crate) fn cancel(&self, job_id: &str, grace_ms: u32) -> Result<(), NodeError> {
        let job = self
            .job(job_id)
            .ok_or_else(|| NodeError::NotFound(format!("no job {job_id} on this node")))?;
        if job.finished().is_some() || *job.exited.borrow() {
            return Ok(());
        }
        let grace = match grace_ms {
            0 => self.cfg.cancel_grace,
            ms => Duration::from_millis(u64::from(ms)),
        };
        job.state.locked().cancel_requested = true;
        if let Err(err) = job.dir.mark_cancelled() {
            tracing::warn!(job.id = %job_id, error = %err, "cannot record the cancel");
        }
        let (pid, start) = (job.meta.pid, job.meta.proc_start);
        if !process::is_same_process(pid, start) {
            return Ok(());
        }
        // Tool commands may sit in sessions of their own, outside the group: remember them now.
        let family = process::descendants(pid);
        tracing::info!(job.id = %job_id, pid, ?grace, "cancelling a job");
        process::signal_group(pid, Signal::TERM)
            .map_err(|e| NodeError::Internal(format!("cannot signal the job: {e}")))?;
        let mut exited = job.exited.subscribe();
        tokio::spawn(async move {
            let ended = tokio::time::timeout(grace, exited.wait_for(|gone| *gone)).await;
            if !matches!(ended, Ok(Ok(_))) && process::is_same_process(pid, start) {
                tracing::info!(pid, "job still running after the grace period: SIGKILL");
                let _ = process::signal_group(pid, Signal::KILL);
            }
            for (p, s) in family {
                process::signal_if_same(p, s, Signal::KILL);
            }
        });
        Ok(())
    }

    /// The known jobs, newest first.
    pub(crate) fn list(&self) -> v1::Jobs {
        let mut jobs: Vec<Arc<Job>> = self.jobs.locked().values().cloned().collect();
        jobs.sort_by_key(|j| std::cmp::Reverse(j.meta.started_unix_ms));
        v1::Jobs {
            jobs: jobs.iter().take(LIST_MAX).map(|j| j.info()).collect(),
        }
    }

    /// Records the center's ack of `seq` of job `job_id`.
    pub(crate) fn ack(&self, job_id: &str, seq: u64) {
        let Some(job) = self.job(job_id) else {
            return;
        };
        let changed = {
            let mut st = job.state.locked();
            let changed = seq > st.acked;
            st.acked = st.acked.max(seq);
            changed
        };
        if changed && let Err(err) = job.dir.write_acked(seq) {
            tracing::warn!(job.id = %job_id, error = %err, "cannot record a job ack");
        }
    }

    /// Sends each job's events after the center's cursor (or the node's record of its acks)
    /// to the new link `sink`, and delivers their new events there from now on.
    pub(crate) async fn replay(&self, sink: &mpsc::Sender<v1::NodeMsg>, cursors: &[v1::JobCursor]) {
        let cursors: HashMap<&str, u64> = cursors
            .iter()
            .map(|c| (c.job_id.as_str(), c.acked_seq))
            .collect();
        let mut jobs: Vec<Arc<Job>> = self.jobs.locked().values().cloned().collect();
        jobs.sort_by_key(|j| j.meta.started_unix_ms);
        for job in jobs {
            let cursor = cursors.get(job.meta.job_id.as_str()).copied().unwrap_or(0);
            job.attach(sink.clone(), cursor).await;
        }
    }

    /// Whether `path` is an artifact of one of this node's finished jobs (so the center may
    /// read it). Checked on the canonical path, which must still lie in the job's folder.
    pub(crate) fn is_artifact(&self, path: &Path) -> bool {
        let Ok(real) = path.canonicalize() else {
            return false;
        };
        let real_str = real.to_string_lossy();
        let jobs: Vec<Arc<Job>> = self.jobs.locked().values().cloned().collect();
        jobs.iter().any(|j| {
            real.starts_with(&j.meta.cwd)
                && j.finished()
                    .is_some_and(|f| f.artifacts.iter().any(|a| a.path == real_str))
        })
    }

    fn job(&self, job_id: &str) -> Option<Arc<Job>> {
        self.jobs.locked().get(job_id).cloned()
    }
}

/// Starts Codex for a job: its own process group, stdin from /dev/null, stdout and stderr into
/// the job's folder, the window environment.
async fn spawn(
    dir: &JobDir,
    launch: &Launch,
    args: &[std::ffi::OsString],
) -> std::io::Result<(tokio::process::Child, u32)> {
    let stdout = std::fs::File::create(dir.stdout())?;
    let stderr = std::fs::File::create(dir.stderr())?;
    let mut cmd = tokio::process::Command::new(&launch.program);
    cmd.args(args)
        .current_dir(&launch.cwd)
        .env_clear()
        .envs(launch.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr)
        .process_group(0)
        .kill_on_drop(false);
    let child = cmd.spawn()?;
    let pid = child
        .id()
        .ok_or_else(|| std::io::Error::other("the process ended before it could be followed"))?;
    Ok((child, pid))
}

impl Job {
    fn new(meta: JobMeta, dir: JobDir) -> Self {
        Self {
            meta,
            dir,
            state: Mutex::new(JobState::default()),
            delivery: tokio::sync::Mutex::new(Delivery::default()),
            exited: watch::Sender::new(false),
        }
    }

    fn finished(&self) -> Option<v1::JobFinished> {
        self.state
            .locked()
            .finished
            .as_ref()
            .map(|(f, _)| f.clone())
    }

    fn thread_id(&self) -> String {
        self.state.locked().thread_id.clone()
    }

    fn set_thread(&self, id: &str) {
        id.clone_into(&mut self.state.locked().thread_id);
    }

    fn cancel_requested(&self) -> bool {
        self.state.locked().cancel_requested
    }

    fn mark_exited(&self) {
        self.exited.send_replace(true);
    }

    /// Whether the center has the job's finish (it need not be replayed any more).
    fn done(&self) -> bool {
        let st = self.state.locked();
        st.finished
            .as_ref()
            .is_some_and(|(_, seq)| st.acked >= *seq)
    }

    fn info(&self) -> v1::JobInfo {
        let st = self.state.locked();
        v1::JobInfo {
            job_id: self.meta.job_id.clone(),
            cwd: self.meta.cwd.to_string_lossy().into_owned(),
            running: st.finished.is_none(),
            pid: self.meta.pid,
            started_unix_ms: self.meta.started_unix_ms,
            thread_id: st.thread_id.clone(),
            command_line: self.meta.command_line.clone(),
            finished: st.finished.as_ref().map(|(f, _)| f.clone()),
        }
    }

    /// Appends an event to the job's log and sends it to the link it delivers to.
    async fn emit(&self, kind: Kind) -> Option<u64> {
        let mut delivery = self.delivery.lock().await;
        let mut event = v1::JobEvent {
            job_id: self.meta.job_id.clone(),
            seq: 0,
            timestamp_ms: shared::clock::now_unix_ms(),
            kind: Some(kind),
        };
        let seq = match store::append_event(&self.dir.events(), &event) {
            Ok(seq) => seq,
            Err(err) => {
                tracing::warn!(job.id = %self.meta.job_id, error = %err, "cannot record a job event");
                return None;
            }
        };
        event.seq = seq;
        if let Some(sink) = &delivery.sink {
            let msg = v1::NodeMsg {
                kind: Some(node_msg::Kind::JobEvent(event)),
            };
            if sink.send(msg).await.is_ok() {
                delivery.sent_to = seq;
            } else {
                delivery.sink = None;
            }
        }
        Some(seq)
    }

    /// Records the finish and delivers it.
    async fn finish(&self, finished: v1::JobFinished) {
        let seq = self
            .emit(Kind::Finished(finished.clone()))
            .await
            .unwrap_or(0);
        self.state.locked().finished = Some((finished, seq));
    }

    /// Delivers to `sink` from now on, after sending what it has not seen: the events after
    /// max(`cursor`, the recorded acks), and after what was already sent if `sink` is the link
    /// this job delivers to already.
    async fn attach(&self, sink: mpsc::Sender<v1::NodeMsg>, cursor: u64) {
        let mut delivery = self.delivery.lock().await;
        if self.done() {
            delivery.sink = None;
            return;
        }
        let acked = self.state.locked().acked;
        let mut from = cursor.max(acked);
        if delivery
            .sink
            .as_ref()
            .is_some_and(|s| s.same_channel(&sink))
        {
            from = from.max(delivery.sent_to);
        }
        let events = store::read_events(&self.dir.events(), from);
        let mut sent_to = from;
        for event in events {
            let seq = event.seq;
            let msg = v1::NodeMsg {
                kind: Some(node_msg::Kind::JobEvent(event)),
            };
            if sink.send(msg).await.is_err() {
                delivery.sink = None;
                return;
            }
            sent_to = seq;
        }
        delivery.sink = Some(sink);
        delivery.sent_to = sent_to;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jobs(state: &Path) -> Jobs {
        Jobs::load(
            state,
            &state.join("codex-home"),
            JobsConfig::default(),
            Hub::default(),
            CancellationToken::new(),
        )
    }

    fn launch(cwd: &Path, program: &str) -> Launch {
        Launch {
            cwd: cwd.to_owned(),
            program: program.to_owned(),
            env: vec![("PATH".into(), std::env::var("PATH").unwrap_or_default())],
        }
    }

    fn start_req(id: &str, prompt: &str) -> v1::StartJob {
        v1::StartJob {
            job_id: id.into(),
            cwd: String::new(),
            kind: v1::JobKind::Exec as i32,
            prompt: prompt.into(),
            ..Default::default()
        }
    }

    /// A stand-in for Codex: prints an exec event, then sleeps (ignoring nothing: SIGTERM ends it).
    fn fake_codex(dir: &Path, body: &str) -> String {
        use std::os::unix::fs::PermissionsExt;
        let path = dir.join("fake-codex");
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path.to_string_lossy().into_owned()
    }

    async fn finished(
        rx: &mut mpsc::Receiver<v1::NodeMsg>,
    ) -> (v1::JobFinished, Vec<v1::JobEvent>) {
        let mut seen = Vec::new();
        loop {
            let msg = tokio::time::timeout(Duration::from_secs(20), rx.recv())
                .await
                .expect("a finish in time")
                .expect("link open");
            if let Some(node_msg::Kind::JobEvent(e)) = msg.kind {
                seen.push(e.clone());
                if let Some(Kind::Finished(f)) = e.kind {
                    return (f, seen);
                }
            }
        }
    }

    #[tokio::test]
    async fn a_job_runs_reports_and_replays_after_its_cursor() {
        let state = tempfile::tempdir().unwrap();
        let cwd = tempfile::tempdir().unwrap();
        let program = fake_codex(
            state.path(),
            r#"echo '{"type":"thread.started","thread_id":"t-1"}'
echo '{"type":"item.started","item":{"id":"1","type":"command_execution","command":"ls"}}'
echo '{"type":"item.completed","item":{"id":"2","type":"agent_message","text":"the answer"}}'
echo '{"type":"turn.completed","usage":{"input_tokens":10,"output_tokens":2}}'"#,
        );
        let jobs = jobs(state.path());
        let (tx, mut rx) = mpsc::channel(64);
        jobs.replay(&tx, &[]).await;
        let hub = Hub::default();
        let _ = hub.attach(tx.clone(), CancellationToken::new());
        let jobs = Jobs { hub, ..jobs };
        let started = jobs
            .start(&start_req("job-1", "hi"), launch(cwd.path(), &program))
            .await
            .unwrap();
        assert!(!started.existed);
        let (f, seen) = finished(&mut rx).await;
        assert_eq!(f.outcome(), v1::JobOutcome::Succeeded);
        assert_eq!(f.final_message, "the answer");
        assert_eq!(f.thread_id, "t-1");
        assert_eq!(f.tokens.unwrap().total_tokens, 12);
        assert!(f.has_exit_code && f.exit_code == 0);
        assert!(seen.windows(2).all(|w| w[0].seq < w[1].seq));
        assert!(
            seen.iter()
                .any(|e| matches!(&e.kind, Some(Kind::Activity(a)) if a.line == "$ ls"))
        );
        let runs = seen
            .iter()
            .filter(|e| matches!(e.kind, Some(Kind::Running(_))))
            .count();
        assert_eq!(runs, 2, "{seen:?}");

        // Same id again: nothing new runs.
        let again = jobs
            .start(&start_req("job-1", "hi"), launch(cwd.path(), &program))
            .await
            .unwrap();
        assert!(again.existed);
        assert!(again.job.unwrap().finished.is_some());

        // Ack the first two; a new link gets the rest, once; after the finish is acked, nothing.
        jobs.ack("job-1", seen[1].seq);
        let (tx2, mut rx2) = mpsc::channel(64);
        jobs.replay(&tx2, &[]).await;
        let mut replayed = Vec::new();
        while let Ok(msg) = rx2.try_recv() {
            if let Some(node_msg::Kind::JobEvent(e)) = msg.kind {
                replayed.push(e.seq);
            }
        }
        let expected: Vec<u64> = seen[2..].iter().map(|e| e.seq).collect();
        assert_eq!(replayed, expected);
        jobs.ack("job-1", seen.last().unwrap().seq);
        let reloaded = self::jobs(state.path());
        let (tx3, mut rx3) = mpsc::channel(64);
        reloaded.replay(&tx3, &[]).await;
        assert!(rx3.try_recv().is_err());
        assert_eq!(reloaded.list().jobs.len(), 1);
    }

    #[tokio::test]
    async fn cancel_kills_the_group_and_says_cancelled() {
        let state = tempfile::tempdir().unwrap();
        let cwd = tempfile::tempdir().unwrap();
        // Ignores SIGTERM, so only the SIGKILL after the grace period ends it.
        let program = fake_codex(state.path(), "trap '' TERM\nsleep 60 & wait\nsleep 60");
        let hub = Hub::default();
        let (tx, mut rx) = mpsc::channel(64);
        let _ = hub.attach(tx, CancellationToken::new());
        let jobs = Jobs {
            hub,
            ..jobs(state.path())
        };
        let started = jobs
            .start(&start_req("slow-1", "x"), launch(cwd.path(), &program))
            .await
            .unwrap();
        let pid = started.job.unwrap().pid;
        let start = process::start_time(pid).unwrap();
        jobs.cancel("slow-1", 300).unwrap();
        let (f, _) = finished(&mut rx).await;
        assert_eq!(f.outcome(), v1::JobOutcome::Cancelled);
        assert!(
            !process::is_same_process(pid, start),
            "the job's process is still there"
        );
        assert!(matches!(
            jobs.cancel("nope", 0),
            Err(NodeError::NotFound(_))
        ));
        // Cancelling a finished job is fine.
        jobs.cancel("slow-1", 0).unwrap();
    }

    #[tokio::test]
    async fn a_job_whose_process_vanished_is_reported_lost() {
        let state = tempfile::tempdir().unwrap();
        let root = state.path().join("jobs");
        let dir = JobDir::new(&root, "gone-1");
        dir.create().unwrap();
        dir.write_meta(&JobMeta {
            job_id: "gone-1".into(),
            cwd: state.path().to_owned(),
            kind: "exec".into(),
            pid: u32::MAX - 7,
            proc_start: 1,
            started_unix_ms: shared::clock::now_unix_ms(),
            command_line: "codex exec".into(),
            artifact_extensions: Vec::new(),
            artifact_max_bytes: 0,
        })
        .unwrap();
        std::fs::write(
            dir.stdout(),
            "{\"type\":\"thread.started\",\"thread_id\":\"t-9\"}\n{\"type\":\"item.completed\",\"item\":{\"id\":\"1\",\"type\":\"agent_message\",\"text\":\"partial\"}}\n",
        )
        .unwrap();
        let jobs = jobs(state.path());
        let (tx, mut rx) = mpsc::channel(64);
        jobs.replay(&tx, &[]).await;
        jobs.recover();
        let (f, _) = finished(&mut rx).await;
        assert_eq!(f.outcome(), v1::JobOutcome::Lost);
        assert_eq!(f.final_message, "partial");
        assert_eq!(f.thread_id, "t-9");
        assert!(!f.has_exit_code);
    }
}
