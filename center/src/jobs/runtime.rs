//! The task that owns the job queue and every job's status message. It loads the unfinished
//! jobs at start, asks the [`Queue`] what each thing that happens means, and does it: saves
//! states, starts and stops jobs on their nodes (off this task: a slow node never holds the
//! queue), and shows each job's state in its one status message.

use std::{collections::HashMap, sync::Arc};

use proto::v1::{self, reply::Result as R, request::Op};
use shared::sync::LockExt;
use tokio::sync::mpsc;

use super::{Decision, JobSettings, Jobs, Msg, delivery, now_ms, view};
use crate::{
    nodes::CallError,
    router::jobs::{Effect, JobId, JobState, Queue, needs_approval},
    telegram::{
        outbox::{Class, Edit, LiveText, Send},
        render::escape_html,
    },
};

/// How long a node may take to answer StartJob / CancelJob.
const NODE_CALL: std::time::Duration = std::time::Duration::from_secs(30);

/// What a status message shows (text and buttons), to skip edits that change nothing.
type Shown = (String, crate::telegram::api::Keyboard);

struct Runtime {
    jobs: Jobs,
    queue: Queue,
    /// Kept across a restart after a panic (the queue is loaded again from the store).
    kept: tokio::sync::OwnedMutexGuard<Kept>,
}

/// What the runtime keeps across a restart after a panic: its messages, status messages on
/// their way, and delivery tasks. The queue is loaded again from the store, but a status message
/// is not sent twice nor a job's events handed to two delivery tasks.
pub(super) struct Kept {
    rx: mpsc::UnboundedReceiver<Msg>,
    /// Status messages not yet accepted by Telegram (their text may still change) and the
    /// buttons they go out with.
    unsent: HashMap<JobId, (LiveText, crate::telegram::api::Keyboard)>,
    shown: HashMap<JobId, Shown>,
    deliveries: HashMap<String, mpsc::UnboundedSender<(String, v1::JobEvent)>>,
}

impl Kept {
    pub(super) fn new(rx: mpsc::UnboundedReceiver<Msg>) -> Self {
        Self {
            rx,
            unsent: HashMap::new(),
            shown: HashMap::new(),
            deliveries: HashMap::new(),
        }
    }
}

pub(super) async fn run(jobs: Jobs, kept: Arc<tokio::sync::Mutex<Kept>>) {
    let mut rt = Runtime {
        queue: Queue::new(jobs.env.cfg.limits),
        jobs,
        kept: kept.lock_owned().await,
    };
    rt.restore();
    loop {
        let deadline = rt.queue.next_deadline();
        let msg = match deadline {
            Some(at) => {
                let wait = std::time::Duration::from_millis((at - now_ms()).max(0) as u64);
                tokio::select! {
                    msg = rt.kept.rx.recv() => msg,
                    () = tokio::time::sleep(wait) => {
                        let effects = rt.queue.expire(now_ms());
                        rt.apply(effects, "");
                        continue;
                    }
                }
            }
            None => rt.kept.rx.recv().await,
        };
        let Some(msg) = msg else { break };
        rt.handle(msg);
    }
}

impl Runtime {
    fn env(&self) -> &super::Env {
        &self.jobs.env
    }

    /// Loads the unfinished jobs of an earlier process (or of this runtime before a panic
    /// started it again); nodes connected later get their running jobs asked for again when
    /// they come online, and nodes connected already (after a restart of the runtime) now.
    fn restore(&mut self) {
        let open = match self.env().store.open_jobs() {
            Ok(open) => open,
            Err(err) => {
                tracing::error!(error = %err, "cannot read the jobs; unfinished jobs wait for a restart");
                return;
            }
        };
        for job in open {
            if job.state.is_final() {
                continue; // its end is delivered when its node replays it
            }
            // Nodes are not connected yet: every node counts as away until it says hello.
            self.queue.node_online(&job.job.node, false);
            let effects = self.queue.restore(
                job.id,
                job.job.surface.chat_id,
                &job.job.node,
                job.state,
                job.approval_until_ms,
            );
            // A running job is asked for when its node comes online.
            drop(effects);
            // A status message that never went out (the process stopped first) goes out now:
            // a job waiting for approval needs its buttons.
            if job.status_msg.is_none() {
                self.redraw(job.id);
            }
        }
        let connected: Vec<String> = self
            .env()
            .nodes
            .locked()
            .iter()
            .filter(|(_, conn)| conn.online())
            .map(|(name, _)| name.clone())
            .collect();
        for node in connected {
            self.handle(Msg::NodeOnline(node, true));
        }
    }

    fn handle(&mut self, msg: Msg) {
        match msg {
            Msg::Submit(job, reply) => {
                let settings = JobSettings::from_json(&job.settings);
                let risky = needs_approval(&job.prompt, &settings.sandbox, &self.env().cfg.risky);
                let until = risky
                    .as_ref()
                    .map(|_| now_ms() + self.env().cfg.approval_ttl.as_millis() as i64);
                let state = if risky.is_some() {
                    JobState::AwaitingApproval
                } else {
                    JobState::Queued
                };
                let reason = risky.unwrap_or_default();
                let saved = self
                    .env()
                    .store
                    .insert_job(&job, state, &reason, until, now_ms());
                let id = match saved {
                    Ok(id) => id,
                    Err(err) => {
                        tracing::error!(error = %err, "saving a job failed");
                        let _ = reply.send(Err(err));
                        return;
                    }
                };
                let _ = reply.send(Ok(id));
                // A node the center has no link to waits; one whose link is registered but
                // has not said hello yet is taken as online (its requests wait on the link).
                if self.env().node(&job.node).is_none() {
                    self.queue.node_online(&job.node, false);
                }
                let effects = self.queue.submit(id, job.surface.chat_id, &job.node, until);
                self.apply(effects, "");
            }
            Msg::Decide(id, decision, reply) => {
                let decided = match decision {
                    Decision::Approve => self.queue.approve(id),
                    Decision::Reject => self.queue.reject(id),
                    Decision::Cancel => self.queue.cancel(id),
                };
                match decided {
                    Ok(effects) => {
                        let _ = reply.send(Ok(()));
                        self.apply(effects, "");
                    }
                    Err(refusal) => {
                        let _ = reply.send(Err(refusal));
                    }
                }
            }
            Msg::StartReply(id, result) => self.started(id, result),
            Msg::StopReply(id, result) => {
                if let Err(err) = result {
                    self.notice(id, &format!("Could not stop job {id}: {err}"));
                }
            }
            Msg::Finished(id, state, reason, saved) => {
                // Its slot goes to the next job now; its own status message turns to the end
                // only after its answer went out (the delivery task asks for that redraw), so
                // a status that shows the end means the answer is recorded as sent.
                let effects = self.queue.finished(id, state);
                self.save(id, state, &reason);
                let others = effects
                    .into_iter()
                    .filter(|e| !matches!(e, Effect::Became(job, _) if *job == id))
                    .collect();
                self.apply(others, "");
                let _ = saved.send(());
            }
            Msg::Redraw(id) => self.redraw(id),
            Msg::StatusSent(id, message_id) => {
                let live = self.kept.unsent.remove(&id);
                match message_id {
                    Some(mid) => {
                        if let Err(err) = self.env().store.set_job_status_msg(id, mid) {
                            tracing::error!(error = %err, "saving a job's status message failed");
                        }
                        // What went out is the live text and the first buttons; show what is
                        // true now.
                        if let Some((live, keyboard)) = live {
                            self.kept.shown.insert(id, (live.text(), keyboard));
                        }
                        self.redraw(id);
                    }
                    None => {
                        self.kept.shown.remove(&id);
                    }
                }
            }
            Msg::NodeOnline(node, online) => {
                let effects = self.queue.node_online(&node, online);
                if online {
                    // Running jobs of the node are asked for again (idempotent on the node):
                    // ones asked while it was away, and ones of an earlier center process.
                    if let Ok(open) = self.env().store.open_jobs() {
                        for job in open {
                            if job.job.node == node && job.state == JobState::Running {
                                self.start(job.id);
                            }
                        }
                    }
                }
                self.apply(effects, "");
                // Queued jobs of the node show "waiting for" or their place again.
                if let Ok(open) = self.env().store.open_jobs() {
                    for job in open {
                        if job.job.node == node && job.state == JobState::Queued {
                            self.redraw(job.id);
                        }
                    }
                }
            }
            Msg::Event(node, event) => self.route_event(node, event),
        }
    }

    /// Hands an event to its job's delivery task, starting one if needed.
    fn route_event(&mut self, node: String, event: v1::JobEvent) {
        let key = event.job_id.clone();
        let mut item = (node, event);
        for _ in 0..2 {
            let tx = self.kept.deliveries.entry(key.clone()).or_insert_with(|| {
                let (tx, rx) = mpsc::unbounded_channel();
                tokio::spawn(delivery::run(self.jobs.clone(), key.clone(), rx));
                tx
            });
            match tx.send(item) {
                Ok(()) => return,
                Err(mpsc::error::SendError(back)) => {
                    // The task ended (a panic); a new one resumes from the acked position.
                    self.kept.deliveries.remove(&key);
                    item = back;
                }
            }
        }
    }

    fn apply(&mut self, effects: Vec<Effect>, reason: &str) {
        for effect in effects {
            match effect {
                Effect::Became(id, state) => {
                    self.save(id, state, reason);
                    self.redraw(id);
                }
                Effect::Start(id) => self.start(id),
                Effect::Stop(id) => self.stop(id),
            }
        }
    }

    fn save(&self, id: JobId, state: JobState, reason: &str) {
        if let Err(err) = self.env().store.set_job_state(id, state, reason, now_ms()) {
            tracing::error!(error = %err, job = %id, "saving a job's state failed");
        }
    }

    /// Asks the job's node to start it (again: the node never runs one job twice).
    fn start(&self, id: JobId) {
        let Ok(Some(job)) = self.env().store.job(id) else {
            return;
        };
        let jobs = self.jobs.clone();
        let settings = JobSettings::from_json(&job.job.settings).to_wire(&jobs.env.cfg);
        let kind = match job.job.kind.as_str() {
            "resume" => v1::JobKind::Resume,
            "review" => v1::JobKind::Review,
            _ => v1::JobKind::Exec,
        };
        let op = Op::StartJob(v1::StartJob {
            job_id: job.wire_id.clone(),
            cwd: job.job.cwd.clone(),
            kind: kind as i32,
            prompt: job.job.prompt.clone(),
            resume_thread_id: job.job.resume_thread.clone(),
            review_target: job.job.review_target.clone(),
            settings: Some(settings),
        });
        tokio::spawn(async move {
            let result = match jobs.env.node(&job.job.node) {
                None => Err(CallError::Offline),
                Some(node) => match node.call(op, NODE_CALL).await {
                    Ok(R::JobStarted(s)) => Ok(s.job.unwrap_or_default()),
                    Ok(other) => Err(CallError::Failed {
                        code: v1::ErrorCode::Internal,
                        message: format!("unexpected reply {other:?}"),
                    }),
                    Err(err) => Err(err),
                },
            };
            jobs.send(Msg::StartReply(id, result));
        });
    }

    fn started(&mut self, id: JobId, result: Result<v1::JobInfo, CallError>) {
        match result {
            Ok(info) => {
                if let Err(err) = self.env().store.set_job_running(
                    id,
                    info.pid,
                    &info.thread_id,
                    &info.command_line,
                ) {
                    tracing::error!(error = %err, "saving a job's process failed");
                }
                self.redraw(id);
            }
            // Asked again when the node is back.
            Err(CallError::Offline | CallError::Timeout) => {
                tracing::info!(job = %id, "the job's node is away; it is started when it is back");
                self.redraw(id);
            }
            Err(CallError::Failed { message, code }) => {
                let reason = if code == v1::ErrorCode::InvalidArgument && message == "empty request"
                {
                    "the node does not run jobs (upgrade its agent-node)".to_owned()
                } else {
                    message
                };
                let effects = self.queue.start_failed(id);
                self.apply(effects, &format!("not started: {reason}"));
            }
        }
    }

    fn stop(&mut self, id: JobId) {
        let Ok(Some(job)) = self.env().store.job(id) else {
            return;
        };
        let jobs = self.jobs.clone();
        let grace = jobs.env.cfg.cancel_grace;
        tokio::spawn(async move {
            let result = match jobs.env.node(&job.job.node) {
                None => Err(CallError::Offline),
                Some(node) => node
                    .call(
                        Op::CancelJob(v1::CancelJob {
                            job_id: job.wire_id.clone(),
                            grace_ms: grace.as_millis() as u32,
                        }),
                        NODE_CALL,
                    )
                    .await
                    .map(drop),
            };
            jobs.send(Msg::StopReply(id, result));
        });
        self.redraw(id);
    }

    /// Shows the job as it is now in its status message: sent once (replying to the command),
    /// then edited; an edit that would change nothing is not made.
    fn redraw(&mut self, id: JobId) {
        let job = match self.env().store.job(id) {
            Ok(Some(job)) => job,
            Ok(None) => return,
            Err(err) => {
                tracing::error!(error = %err, "reading a job failed");
                return;
            }
        };
        let waiting_for = (job.state == JobState::Queued
            && self.env().node(&job.job.node).is_none_or(|n| !n.online()))
        .then_some(job.job.node.as_str());
        let text = view::status_text(&job, self.queue.ahead_of(id), waiting_for);
        let keyboard = view::status_keyboard(&job);
        let now = (text.clone(), keyboard.clone());
        if self.kept.shown.get(&id) == Some(&now) {
            return;
        }
        if let Some((live, _)) = self.kept.unsent.get(&id) {
            // Buttons cannot change before it is sent (nor anything once it is being sent):
            // `StatusSent` edits what must change.
            live.update_unsent(|t| t.clone_from(&text));
            return;
        }
        self.kept.shown.insert(id, now);
        let surface = job.job.surface;
        match job.status_msg {
            Some(message_id) => {
                drop(self.env().outbox.edit(Edit {
                    chat_id: surface.chat_id,
                    message_id,
                    html: escape_html(&text),
                    plain: text,
                    keyboard: Some(keyboard),
                    status_of: None,
                }));
            }
            None => {
                let live = LiveText::new(text.clone());
                let sent = self.env().outbox.send_live(
                    Send {
                        surface,
                        html: escape_html(&text),
                        plain: text,
                        keyboard: Some(keyboard.clone()),
                        reply_to: job.job.reply_to,
                        class: Class::Message,
                    },
                    live.clone(),
                );
                self.kept.unsent.insert(id, (live, keyboard));
                let jobs = self.jobs.clone();
                tokio::spawn(async move {
                    let message_id = sent.await.ok().and_then(Result::ok);
                    jobs.send(Msg::StatusSent(id, message_id));
                });
            }
        }
    }

    fn notice(&self, id: JobId, text: &str) {
        let Ok(Some(job)) = self.env().store.job(id) else {
            return;
        };
        drop(self.env().outbox.send(Send {
            surface: job.job.surface,
            html: escape_html(text),
            plain: text.to_owned(),
            keyboard: None,
            reply_to: job.status_msg,
            class: Class::Message,
        }));
    }
}
