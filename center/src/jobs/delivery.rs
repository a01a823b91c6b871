//! One job's events from its node, in order: progress goes to the job's status message (through
//! the runtime, its only writer), the end goes out as the answer (a reply to the status message)
//! and the job's artifacts. Each event is acked to the node only after Telegram accepted what it
//! produced (or refused it for good), so a restart or a dropped link repeats and loses nothing;
//! an answer already sent is never sent again. The status message shows the job's end only once
//! its answer is recorded as sent; what remains is the moment between Telegram accepting the
//! answer and that record (milliseconds), where a crash means the answer is sent again.

use proto::v1::{self, job_event::Kind};
use tokio::sync::{mpsc, oneshot};

use super::{Jobs, Msg};
use crate::{
    router::jobs::JobState,
    store::{JobEnd, JobRecord},
    telegram::{
        api::{MediaKind, Upload},
        outbox::{Class, MediaSend, Send},
        render::escape_html,
    },
};

pub(super) async fn run(
    jobs: Jobs,
    wire_id: String,
    mut rx: mpsc::UnboundedReceiver<(String, v1::JobEvent)>,
) {
    while let Some((node, event)) = rx.recv().await {
        let job = match jobs.env.store.job_by_wire(&wire_id) {
            Ok(Some(job)) if job.job.node == node => job,
            Ok(_) => {
                // Not a job of ours on that node (a wiped database, or a node reporting
                // someone else's id): nothing to show; acked so the node stops replaying it.
                tracing::warn!(node = %node, job = %wire_id, "event of an unknown job ignored");
                ack(&jobs, &node, &wire_id, event.seq).await;
                continue;
            }
            Err(err) => {
                // Not acked: the node replays it on the next link.
                tracing::error!(error = %err, "reading a job failed; its event waits for a replay");
                continue;
            }
        };
        let done = match &event.kind {
            _ if event.seq <= job.acked_seq && event.seq != 0 => true,
            Some(Kind::Running(r)) => {
                if let Err(err) =
                    jobs.env
                        .store
                        .set_job_running(job.id, r.pid, &r.thread_id, &r.command_line)
                {
                    tracing::error!(error = %err, "saving a job's process failed");
                }
                jobs.redraw(job.id);
                true
            }
            Some(Kind::Activity(a)) => {
                if let Err(err) = jobs.env.store.set_job_activity(job.id, &a.line) {
                    tracing::error!(error = %err, "saving a job's activity failed");
                }
                jobs.redraw(job.id);
                true
            }
            Some(Kind::Finished(f)) => finish(&jobs, &job, f).await,
            None => true,
        };
        if done {
            if let Err(err) = jobs.env.store.ack_job(job.id, event.seq) {
                tracing::error!(error = %err, "saving a job's ack failed");
            }
            ack(&jobs, &node, &wire_id, event.seq).await;
        }
    }
}

async fn ack(jobs: &Jobs, node: &str, wire_id: &str, seq: u64) {
    if let Some(conn) = jobs.env.node(node) {
        conn.ack_job(wire_id, seq).await;
    }
}

/// Saves the job's end, lets the runtime free its slot and redraw it, then sends the answer and
/// the artifacts once. True when all went out (or was refused for good).
async fn finish(jobs: &Jobs, job: &JobRecord, f: &v1::JobFinished) -> bool {
    let state = match f.outcome() {
        v1::JobOutcome::Succeeded => JobState::Succeeded,
        v1::JobOutcome::Cancelled => JobState::Cancelled,
        v1::JobOutcome::Lost => JobState::Lost,
        v1::JobOutcome::Failed | v1::JobOutcome::Unspecified => JobState::Failed,
    };
    if job.final_sent {
        jobs.redraw(job.id);
        return true;
    }
    let end = JobEnd {
        exit_code: f.has_exit_code.then_some(f.exit_code),
        tokens: f.tokens.as_ref().map(|t| t.total_tokens),
        final_message: f.final_message.clone(),
        error: f.error.clone(),
        stderr_tail: f.stderr_tail.clone(),
        rollout_path: f.rollout_path.clone(),
        codex_thread: f.thread_id.clone(),
        artifacts: f
            .artifacts
            .iter()
            .map(|a| a.path.as_str())
            .collect::<Vec<_>>()
            .join("\n"),
    };
    if let Err(err) = jobs.env.store.set_job_end(job.id, &end) {
        tracing::error!(error = %err, "saving a job's end failed; it waits for a replay");
        return false;
    }
    let (saved, wait) = oneshot::channel();
    let reason = if state == JobState::Failed {
        crate::text::ellipsize(&crate::text::first_line(&f.error), 300)
    } else {
        String::new()
    };
    jobs.send(Msg::Finished(job.id, state, reason, saved));
    let _ = wait.await;
    let status_msg = jobs
        .env
        .store
        .job(job.id)
        .ok()
        .flatten()
        .and_then(|j| j.status_msg);
    if !f.final_message.trim().is_empty() {
        answer(jobs, job, &f.final_message, status_msg).await;
    }
    for artifact in &f.artifacts {
        send_artifact(jobs, job, artifact, status_msg).await;
    }
    if let Err(err) = jobs.env.store.set_job_final_sent(job.id) {
        tracing::error!(error = %err, "saving that a job's answer went out failed");
    }
    jobs.redraw(job.id);
    true
}

/// The answer as one or more messages, the first replying to the job's status message; waits
/// until Telegram took each (the outbox retries what can be retried).
async fn answer(jobs: &Jobs, job: &JobRecord, markdown: &str, reply_to: Option<i32>) {
    let parts = crate::deliver::markdown_parts(markdown);
    let mut first = true;
    for (html, plain) in parts {
        if html.trim().is_empty() {
            continue;
        }
        let sent = jobs.env.outbox.send(Send {
            surface: job.job.surface,
            html,
            plain,
            keyboard: None,
            reply_to: if first { reply_to } else { None },
            class: Class::Final,
        });
        first = false;
        if let Ok(Err(err)) = sent.await {
            tracing::warn!(error = %err, job = %job.id, "Telegram refused a job's answer");
        }
    }
}

/// One artifact, pulled from the node and sent as a photo, video or document.
pub(super) async fn send_artifact(
    jobs: &Jobs,
    job: &JobRecord,
    artifact: &v1::JobArtifact,
    reply_to: Option<i32>,
) {
    let name = artifact
        .path
        .strip_prefix(&job.job.cwd)
        .map(|p| p.trim_start_matches('/'))
        .filter(|p| !p.is_empty())
        .unwrap_or(&artifact.path)
        .to_owned();
    let kind = match artifact.media_type.as_str() {
        "photo" if artifact.size <= crate::telegram::api::MAX_PHOTO_UPLOAD => MediaKind::Photo,
        "video" => MediaKind::Video,
        _ => MediaKind::Document,
    };
    let Some(node) = jobs.env.node(&job.job.node) else {
        say(
            jobs,
            job,
            &format!("Could not fetch {name}: the machine is offline."),
            reply_to,
        );
        return;
    };
    let bytes = match crate::nodes::transfer::read_file(
        &node,
        &artifact.path,
        crate::telegram::api::MAX_UPLOAD,
    )
    .await
    {
        Ok((_, bytes)) if !bytes.is_empty() => bytes,
        Ok(_) => return, // empty files cannot be sent
        Err(err) => {
            say(
                jobs,
                job,
                &format!("Could not fetch {name}: {err}"),
                reply_to,
            );
            return;
        }
    };
    let file_name = name.rsplit('/').next().unwrap_or(&name).to_owned();
    let sent = jobs.env.outbox.send_media(MediaSend {
        surface: job.job.surface,
        upload: Upload {
            kind,
            file_name,
            bytes: std::sync::Arc::new(bytes),
        },
        caption_html: escape_html(&format!("📎 job {} · {name}", job.id)),
        caption_plain: format!("📎 job {} · {name}", job.id),
        keyboard: None,
        reply_to,
        class: Class::Final,
    });
    if let Ok(Err(err)) = sent.await {
        tracing::warn!(error = %err, job = %job.id, "Telegram refused a job's artifact");
        say(
            jobs,
            job,
            &format!("Telegram refused {name}: {err}"),
            reply_to,
        );
    }
}

fn say(jobs: &Jobs, job: &JobRecord, text: &str, reply_to: Option<i32>) {
    drop(jobs.env.outbox.send(Send {
        surface: job.job.surface,
        html: escape_html(text),
        plain: text.to_owned(),
        keyboard: None,
        reply_to,
        class: Class::Message,
    }));
}
