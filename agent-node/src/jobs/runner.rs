//! Following one job's process until it ends: Codex writes its `--json` events straight into
//! `stdout.jsonl` (a file, not a pipe, so Codex neither blocks nor dies when the node does), this
//! task reads what is new whenever the file changes (`notify` as the wake-up) and turns it into
//! job events; when the process ends (its child handle, or a pidfd for a process found again
//! after a restart) it reads the rest and reports how the job finished. A job whose process was
//! gone when the node came back is finished here too, as LOST, with whatever Codex wrote.

use std::{path::PathBuf, sync::Arc, time::Duration};

use proto::v1::{self, job_event::Kind};
use tokio::{
    io::{AsyncReadExt, AsyncSeekExt},
    sync::mpsc,
};
use tokio_util::sync::CancellationToken;

use super::{
    Job,
    artifacts::{self, Rules},
    exec_json::{Derived, Digest},
    process,
};
use crate::transcript::{locate, tail::Tailer};

/// Progress lines one job may report; later ones are dropped (the finish still comes).
const MAX_ACTIVITY: u32 = 2000;
/// How much of `stderr.log` a finish carries.
const STDERR_TAIL: u64 = 2048;
/// Read at most this much of stdout per step.
const READ_CHUNK: usize = 1 << 20;
/// Only if file events cannot be watched: how often stdout is read instead.
const FALLBACK_POLL: Duration = Duration::from_secs(2);

/// How the task learns that the process ended.
pub(crate) enum Exit {
    /// A process this node spawned: its exit status is known.
    Child(tokio::process::Child),
    /// A process found again after a restart: only that it ended.
    Adopted,
    /// Gone before the node came back.
    Lost,
}

/// What the task needs besides the job.
#[derive(Clone)]
pub(crate) struct Ctx {
    pub(crate) sessions_dir: PathBuf,
    /// Folders artifacts never come from (the node's state, Codex's home).
    pub(crate) exclude: Vec<PathBuf>,
    pub(crate) token: CancellationToken,
}

/// Follows `job` until its process ends and reports the finish. With `replaying`, what stdout
/// already holds was reported before (the node restarted) and is only digested again.
pub(crate) async fn follow(job: Arc<Job>, exit: Exit, ctx: Ctx, replaying: bool) {
    let mut reader = StdoutReader::new(job.dir.stdout());
    if replaying {
        let mut silent = Vec::new();
        reader.read_new(&mut silent).await;
        for line in silent {
            for d in reader.digest.push(&line) {
                if let Derived::Thread(id) = d {
                    job.set_thread(&id);
                }
            }
        }
    }
    let (wake_tx, mut wake_rx) = mpsc::channel::<()>(1);
    let watcher = watch_dir(&job.dir.path, wake_tx);
    let lost = matches!(exit, Exit::Lost);
    let mut poll = tokio::time::interval(FALLBACK_POLL);
    poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let status = match exit {
        Exit::Lost => None,
        Exit::Child(mut child) => loop {
            tokio::select! {
                () = ctx.token.cancelled() => return,
                s = child.wait() => break s.ok(),
                _ = wake_rx.recv() => {}
                _ = poll.tick(), if watcher.is_none() => {}
            }
            step(&job, &mut reader).await;
        },
        Exit::Adopted => {
            let pid = job.meta.pid;
            let ended = process::wait_exit(pid);
            tokio::pin!(ended);
            loop {
                tokio::select! {
                    () = ctx.token.cancelled() => return,
                    _ = &mut ended => break,
                    _ = wake_rx.recv() => {}
                    _ = poll.tick(), if watcher.is_none() => {}
                }
                step(&job, &mut reader).await;
            }
            None
        }
    };
    drop(watcher);
    job.mark_exited();
    step(&job, &mut reader).await;
    let finished = finish(&job, &reader.digest, status, lost, &ctx).await;
    job.finish(finished).await;
}

/// Reads what is new and reports it.
async fn step(job: &Job, reader: &mut StdoutReader) {
    let mut lines = Vec::new();
    reader.read_new(&mut lines).await;
    for line in lines {
        for d in reader.digest.push(&line) {
            match d {
                Derived::Thread(id) => {
                    job.set_thread(&id);
                    job.emit(Kind::Running(v1::JobRunning {
                        pid: job.meta.pid,
                        thread_id: id,
                        command_line: job.meta.command_line.clone(),
                    }))
                    .await;
                }
                Derived::Activity(line) => {
                    if reader.activities < MAX_ACTIVITY {
                        reader.activities += 1;
                        job.emit(Kind::Activity(v1::JobActivity { line })).await;
                    }
                }
            }
        }
    }
}

/// How the job ended, from its exit status (if known), Codex's events and files.
async fn finish(
    job: &Job,
    digest: &Digest,
    status: Option<std::process::ExitStatus>,
    lost: bool,
    ctx: &Ctx,
) -> v1::JobFinished {
    let dir = job.dir.clone();
    let meta = job.meta.clone();
    let exclude = ctx.exclude.clone();
    let sessions = ctx.sessions_dir.clone();
    let thread_id = digest.thread_id.clone().unwrap_or_else(|| job.thread_id());
    let thread = thread_id.clone();
    let files = tokio::task::spawn_blocking(move || {
        let rules = Rules::new(
            &meta.artifact_extensions,
            meta.artifact_max_bytes,
            meta.started_unix_ms,
            exclude,
        );
        let artifacts = artifacts::collect(&meta.cwd, &rules);
        let rollout = (!thread.is_empty())
            .then(|| locate::find_by_thread_id(&sessions, &thread))
            .flatten();
        (
            artifacts,
            dir.stderr_tail(STDERR_TAIL),
            dir.last_message_text(),
            rollout,
        )
    })
    .await;
    let (artifacts, stderr_tail, last_message, rollout) =
        files.unwrap_or_else(|_| (Vec::new(), String::new(), None, None));
    let cancelled = job.cancel_requested();
    let exit_code = status.as_ref().and_then(std::process::ExitStatus::code);
    let outcome = if cancelled {
        v1::JobOutcome::Cancelled
    } else if let Some(status) = &status {
        if status.success() {
            v1::JobOutcome::Succeeded
        } else {
            v1::JobOutcome::Failed
        }
    } else if lost {
        v1::JobOutcome::Lost
    } else if digest.failure.is_some() {
        v1::JobOutcome::Failed
    } else if digest.turns_completed > 0 {
        v1::JobOutcome::Succeeded
    } else {
        v1::JobOutcome::Lost
    };
    let error = match outcome {
        v1::JobOutcome::Succeeded => String::new(),
        v1::JobOutcome::Cancelled => "cancelled".to_owned(),
        _ => digest
            .failure
            .clone()
            .or_else(|| digest.last_error.clone())
            .or_else(|| last_line(&stderr_tail))
            .unwrap_or_else(|| match (&status, outcome) {
                (_, v1::JobOutcome::Lost) => {
                    "the job's process ended while the node was away".to_owned()
                }
                (Some(s), _) => format!("codex exited with {s}"),
                (None, _) => "codex ended without an answer".to_owned(),
            }),
    };
    let final_message = last_message
        .or_else(|| digest.last_agent_message.clone())
        .unwrap_or_default();
    let tokens = digest.usage.map(|u| v1::TokenUsage {
        input_tokens: u.input,
        output_tokens: u.output,
        total_tokens: u.input + u.output,
        cached_input_tokens: u.cached_input,
        ..Default::default()
    });
    let duration_ms = (shared::clock::now_unix_ms() - job.meta.started_unix_ms).max(0) as u64;
    tracing::info!(job.id = %job.meta.job_id, ?outcome, exit_code, unknown_lines = digest.unknown, "job finished");
    v1::JobFinished {
        outcome: outcome as i32,
        has_exit_code: exit_code.is_some(),
        exit_code: exit_code.unwrap_or(0),
        final_message,
        error,
        tokens,
        thread_id,
        duration_ms,
        artifacts,
        stderr_tail,
        rollout_path: rollout
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_default(),
    }
}

/// The last non-empty line of `text` that is not one of Codex's start-up warnings.
fn last_line(text: &str) -> Option<String> {
    text.lines()
        .rev()
        .map(str::trim)
        .find(|l| {
            !l.is_empty()
                && !l.starts_with("WARNING:")
                && !l.starts_with("Reading additional input")
        })
        .map(|l| locate::one_line(l, 500))
}

/// Wakes `tx` whenever something in `dir` changes; `None` if the folder cannot be watched.
fn watch_dir(dir: &std::path::Path, tx: mpsc::Sender<()>) -> Option<notify::RecommendedWatcher> {
    use notify::Watcher as _;
    let mut watcher = notify::recommended_watcher(move |_: notify::Result<notify::Event>| {
        let _ = tx.try_send(()); // full: a wake-up is already pending
    })
    .ok()?;
    match watcher.watch(dir, notify::RecursiveMode::NonRecursive) {
        Ok(()) => Some(watcher),
        Err(err) => {
            tracing::warn!(dir = %dir.display(), error = %err, "cannot watch a job's folder; reading it every 2 s");
            None
        }
    }
}

/// `stdout.jsonl` read from where it was left.
struct StdoutReader {
    path: PathBuf,
    tailer: Tailer,
    digest: Digest,
    activities: u32,
}

impl StdoutReader {
    fn new(path: PathBuf) -> Self {
        Self {
            path,
            tailer: Tailer::at(0),
            digest: Digest::default(),
            activities: 0,
        }
    }

    /// Appends the complete lines written since the last read to `out`.
    async fn read_new(&mut self, out: &mut Vec<String>) {
        let Ok(mut f) = tokio::fs::File::open(&self.path).await else {
            return;
        };
        if f.seek(std::io::SeekFrom::Start(self.tailer.read_offset()))
            .await
            .is_err()
        {
            return;
        }
        let mut buf = vec![0u8; READ_CHUNK];
        loop {
            let n = match f.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            out.extend(
                self.tailer
                    .push(&buf[..n])
                    .into_iter()
                    .filter(|l| !l.too_long)
                    .map(|l| l.text),
            );
        }
    }
}
