//! Jobs: headless `codex exec` runs on any node, started from Telegram (`/run`, `/review`,
//! `/plan`), queued, approved, cancelled, with their answer and artifacts sent back.
//!
//! One task owns the queue ([`runtime`]): it feeds the sans-IO [`crate::router::jobs::Queue`]
//! what happens and carries out what it decides; it is also the only writer of each job's
//! status message, so a job's message is never edited from two places. Each job's events from
//! its node go through their own delivery task ([`delivery`]): a job waiting for a chat's
//! Telegram budget never holds another job or a topic, and an event is acked to the node only
//! after Telegram accepted what it produced. Texts and buttons are in [`view`]; the commands in
//! [`commands`]; `[jobs]` settings in [`config`].

pub(crate) mod commands;
pub(crate) mod config;
mod delivery;
pub(crate) mod github;
mod runtime;
mod schedule;
pub(crate) mod settings;
mod view;

use std::sync::Arc;

use proto::v1;
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};

use crate::{
    nodes::NodeMap,
    router::jobs::{JobId, JobState, Refusal},
    store::{NewJob, Store, StoreError},
    telegram::outbox::Outbox,
};

pub(crate) use config::{JobsConfig, JobsFileConfig};

/// Codex's settings for one job, as stored with it (JSON) and sent to the node.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub(crate) struct JobSettings {
    pub(crate) model: String,
    pub(crate) reasoning_effort: String,
    pub(crate) sandbox: String,
    pub(crate) approvals: String,
    pub(crate) web_search: String,
    pub(crate) enable_features: Vec<String>,
    pub(crate) disable_features: Vec<String>,
    pub(crate) instructions: String,
}

impl JobSettings {
    /// The settings stored with a job (defaults if unreadable).
    pub(crate) fn from_json(json: &str) -> Self {
        serde_json::from_str(json).unwrap_or_default()
    }

    pub(crate) fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| "{}".into())
    }

    fn to_wire(&self, cfg: &JobsConfig) -> v1::JobSettings {
        v1::JobSettings {
            model: self.model.clone(),
            reasoning_effort: self.reasoning_effort.clone(),
            sandbox: self.sandbox.clone(),
            approvals: self.approvals.clone(),
            web_search: self.web_search.clone(),
            enable_features: self.enable_features.clone(),
            disable_features: self.disable_features.clone(),
            instructions: self.instructions.clone(),
            artifact_extensions: cfg.artifact_extensions.clone(),
            artifact_max_bytes: cfg.artifact_max_bytes,
        }
    }
}

/// What a user asks of an unfinished job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Decision {
    Approve,
    Reject,
    Cancel,
}

/// What the job runtime works with.
pub(crate) struct Env {
    pub(crate) store: Arc<Store>,
    pub(crate) outbox: Outbox,
    pub(crate) nodes: NodeMap,
    pub(crate) cfg: JobsConfig,
}

impl Env {
    fn node(&self, name: &str) -> Option<Arc<crate::nodes::NodeConn>> {
        use shared::sync::LockExt;
        self.nodes.locked().get(name).cloned()
    }
}

/// Messages to the runtime task.
enum Msg {
    Submit(NewJob, oneshot::Sender<Result<JobId, StoreError>>),
    Decide(JobId, Decision, oneshot::Sender<Result<(), Refusal>>),
    StartReply(JobId, Result<v1::JobInfo, crate::nodes::CallError>),
    StopReply(JobId, Result<(), crate::nodes::CallError>),
    /// A delivery task saw the job's end; the reply says its state is saved.
    Finished(JobId, JobState, String, oneshot::Sender<()>),
    Redraw(JobId),
    StatusSent(JobId, Option<i32>),
    NodeOnline(String, bool),
    Event(String, v1::JobEvent),
}

/// Handle on the job runtime.
#[derive(Clone)]
pub(crate) struct Jobs {
    tx: mpsc::UnboundedSender<Msg>,
    env: Arc<Env>,
    /// Wakes the scheduler ([`schedule`]) when schedules change.
    schedules: Arc<tokio::sync::Notify>,
}

/// The runtime is not running any more (the center stops).
#[derive(Debug, thiserror::Error)]
#[error("the center is stopping")]
pub(crate) struct Stopped;

impl Jobs {
    /// Starts the runtime: loads unfinished jobs and asks nodes for the running ones again.
    pub(crate) fn start(env: Env) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        let jobs = Self {
            tx,
            env: Arc::new(env),
            schedules: Arc::default(),
        };
        // What the runtime keeps outlives a panic: started again, it loads the unfinished jobs
        // from the store as at a restart and goes on with the messages sent meanwhile.
        let kept = Arc::new(tokio::sync::Mutex::new(runtime::Kept::new(rx)));
        let runtime = jobs.clone();
        shared::shutdown::supervise(
            "job runtime",
            tokio_util::sync::CancellationToken::new(),
            move || runtime::run(runtime.clone(), kept.clone()),
        );
        // It runs as long as the center (a panic starts it again).
        let scheduled = jobs.clone();
        shared::shutdown::supervise(
            "job schedules",
            tokio_util::sync::CancellationToken::new(),
            move || schedule::run(scheduled.clone()),
        );
        github::spawn(&jobs);
        jobs
    }

    fn send(&self, msg: Msg) {
        let _ = self.tx.send(msg);
    }

    /// Submits a job; its number once it is saved.
    pub(crate) async fn submit(&self, job: NewJob) -> Result<Result<JobId, StoreError>, Stopped> {
        let (tx, rx) = oneshot::channel();
        self.send(Msg::Submit(job, tx));
        rx.await.map_err(|_| Stopped)
    }

    /// Approves, rejects or cancels a job.
    pub(crate) async fn decide(
        &self,
        id: JobId,
        decision: Decision,
    ) -> Result<Result<(), Refusal>, Stopped> {
        let (tx, rx) = oneshot::channel();
        self.send(Msg::Decide(id, decision, tx));
        rx.await.map_err(|_| Stopped)
    }

    /// An event of a job from `node`.
    pub(crate) fn event(&self, node: String, event: v1::JobEvent) {
        self.send(Msg::Event(node, event));
    }

    /// A node came or went.
    pub(crate) fn node_online(&self, node: &str, online: bool) {
        self.send(Msg::NodeOnline(node.to_owned(), online));
    }

    /// The store, for reading jobs.
    pub(crate) fn store(&self) -> &Store {
        &self.env.store
    }

    /// The settings.
    pub(crate) fn cfg(&self) -> &JobsConfig {
        &self.env.cfg
    }

    fn redraw(&self, id: JobId) {
        self.send(Msg::Redraw(id));
    }
}

/// Unix milliseconds now.
fn now_ms() -> i64 {
    shared::clock::now_unix_ms()
}
