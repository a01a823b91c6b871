//! The scheduler task: reads the schedules, submits a job for each run that is due, and sleeps
//! until the next one (or until `/schedule` changes something). Runs that fell due while the
//! center was down follow `[jobs] missed_runs`.
//!
//! A run is marked handled only after its job is saved; a crash in between would run it again,
//! so before submitting, a job of the schedule made at or after the run's time counts as that
//! run's job. Each schedule thereby makes at most one job per run.

use std::time::Duration;

use super::cron::{self, Spec, Step};
use crate::{
    jobs::{JobSettings, Jobs, Stopped, config::MissedRuns, now_ms},
    store::{NewJob, sources::ScheduleRecord},
};

/// Runs the scheduler until the job runtime stops.
pub(in crate::jobs) async fn run(jobs: Jobs) {
    let started = now_ms();
    let policy = jobs.cfg().missed_runs;
    loop {
        let Ok(next) = due_runs(&jobs, started, policy).await else {
            return;
        };
        let wait = next.map(|at| Duration::from_millis((at - now_ms()).max(0) as u64));
        tokio::select! {
            () = jobs.schedules.notified() => {}
            () = sleep(wait) => {}
            () = jobs.tx.closed() => return,
        }
    }
}

/// Sleeps for `wait`, or forever without one.
async fn sleep(wait: Option<Duration>) {
    match wait {
        Some(wait) => tokio::time::sleep(wait).await,
        None => std::future::pending().await,
    }
}

/// Handles every schedule's due run; when the next one is due.
async fn due_runs(jobs: &Jobs, started: i64, policy: MissedRuns) -> Result<Option<i64>, Stopped> {
    let schedules = match jobs.store().schedules() {
        Ok(s) => s,
        Err(err) => {
            tracing::error!(error = %err, "cannot read the schedules; they wait for the next change");
            return Ok(None);
        }
    };
    let mut next: Option<i64> = None;
    for s in schedules {
        let now = now_ms();
        let spec = match Spec::parse(&s.schedule.cron, now) {
            Ok(spec) => spec,
            Err(err) => {
                tracing::warn!(schedule = s.id, error = %err, "schedule skipped");
                continue;
            }
        };
        match cron::step(&spec, s.last_ms, now, started, policy) {
            Step::Wait { .. } | Step::Never => {}
            Step::Skip => {
                tracing::info!(
                    schedule = s.id,
                    "runs missed while the center was down are skipped ([jobs] missed_runs = \"skip\")"
                );
                mark(jobs, &s, now);
            }
            Step::Run { due } => {
                fire(jobs, &s, due).await?;
                mark(jobs, &s, now);
            }
        }
        // The schedule's next run after what is handled now.
        if let Some(at) = spec.next_after(now.max(s.last_ms)) {
            next = Some(next.map_or(at, |n| n.min(at)));
        }
    }
    Ok(next)
}

fn mark(jobs: &Jobs, s: &ScheduleRecord, upto: i64) {
    if let Err(err) = jobs.store().set_schedule_last(s.id, upto) {
        tracing::error!(schedule = s.id, error = %err, "cannot save a schedule's last run");
    }
}

/// Submits the job of the run due at `due`, unless one was made for it before a crash.
async fn fire(jobs: &Jobs, s: &ScheduleRecord, due: i64) -> Result<(), Stopped> {
    let source = format!("schedule:{}", s.id);
    if let Ok(Some((job, created))) = jobs.store().latest_job_of_source(&source)
        && created >= due
    {
        tracing::info!(schedule = s.id, %job, "this run's job was made before a restart");
        return Ok(());
    }
    let job = NewJob {
        surface: s.schedule.surface,
        requested_by: 0,
        node: s.schedule.node.clone(),
        cwd: s.schedule.cwd.clone(),
        kind: "exec".into(),
        prompt: s.schedule.prompt.clone(),
        resume_thread: String::new(),
        review_target: String::new(),
        settings: JobSettings::default().to_json(),
        reply_to: None,
        source,
    };
    match jobs.submit(job).await? {
        Ok(id) => tracing::info!(schedule = s.id, job = %id, due = %cron::utc(due), "schedule ran"),
        Err(err) => {
            tracing::error!(schedule = s.id, error = %err, "a schedule's job was not saved")
        }
    }
    Ok(())
}
