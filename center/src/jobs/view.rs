//! How jobs read in Telegram: a job's status message and its buttons, the `/jobs` list and
//! `/info`'s diagnostics. Plain text (escaped by the caller); pure functions.

use crate::{
    router::jobs::{JobId, JobState},
    store::JobRecord,
    telegram::{
        api::Keyboard,
        callback::{Callback, JobAction},
    },
};

/// Characters of a prompt shown in a status message.
const PROMPT_CHARS: usize = 300;
/// Characters of a prompt in a list line.
const LIST_PROMPT_CHARS: usize = 60;

/// `text` on one line (runs of whitespace as one space), cut to `max` characters.
fn short(text: &str, max: usize) -> String {
    let one_line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    crate::text::ellipsize(&one_line, max)
}

fn what(job: &JobRecord) -> String {
    match job.job.kind.as_str() {
        "review" => format!(
            "review ({})",
            if job.job.review_target.is_empty() {
                "uncommitted"
            } else {
                &job.job.review_target
            }
        ),
        "resume" => format!(
            "continue {}: {}",
            job.job.resume_thread,
            short(&job.job.prompt, PROMPT_CHARS)
        ),
        _ => short(&job.job.prompt, PROMPT_CHARS),
    }
}

/// "1 m 5 s".
pub(crate) fn duration(ms: i64) -> String {
    let s = (ms / 1000).max(0);
    match s {
        0..60 => format!("{s} s"),
        60..3600 => format!("{} m {} s", s / 60, s % 60),
        _ => format!("{} h {} m", s / 3600, (s % 3600) / 60),
    }
}

/// The job's status message. `ahead`: queued jobs before it on its node; `waiting_for`: its
/// node, while that is away.
pub(crate) fn status_text(job: &JobRecord, ahead: usize, waiting_for: Option<&str>) -> String {
    let mut lines = vec![format!(
        "{} Job {} · {}",
        job.state.icon(),
        job.id,
        job.state.name()
    )];
    lines.push(format!("📝 {}", what(job)));
    lines.push(format!("📍 {} · {}", job.job.node, job.job.cwd));
    match job.state {
        JobState::AwaitingApproval => {
            lines.push(format!(
                "Needs approval: {}.",
                if job.reason.is_empty() {
                    "a risky request"
                } else {
                    &job.reason
                }
            ));
        }
        JobState::Queued => {
            if let Some(node) = waiting_for {
                lines.push(format!("Waiting for {node} to come back."));
            } else if ahead > 0 {
                lines.push(format!("{ahead} ahead of it on {}.", job.job.node));
            }
        }
        JobState::Running => {
            if !job.activity.is_empty() {
                lines.push(format!("… {}", short(&job.activity, 200)));
            }
        }
        _ => {
            let mut facts = Vec::new();
            if let (Some(start), Some(end)) = (job.started_ms, job.finished_ms) {
                facts.push(duration(end - start));
            }
            if let Some(tokens) = job.tokens.filter(|t| *t > 0) {
                facts.push(format!("{tokens} tokens"));
            }
            if let Some(code) = job.exit_code.filter(|c| *c != 0) {
                facts.push(format!("exit status {code}"));
            }
            if !facts.is_empty() {
                lines.push(facts.join(" · "));
            }
            if matches!(job.state, JobState::Failed | JobState::Lost) && !job.reason.is_empty() {
                lines.push(short(&job.reason, 300));
            }
        }
    }
    lines.join("\n")
}

fn button(label: &str, id: JobId, action: JobAction) -> (String, String) {
    (
        label.to_owned(),
        Callback::Job { id: id.0, action }.encode(),
    )
}

/// The buttons under a job's status message.
pub(crate) fn status_keyboard(job: &JobRecord) -> Keyboard {
    match job.state {
        JobState::AwaitingApproval => vec![vec![
            button("✅ Approve", job.id, JobAction::Approve),
            button("🚫 Reject", job.id, JobAction::Reject),
        ]],
        JobState::Queued | JobState::Running => {
            vec![vec![button("⏹ Cancel", job.id, JobAction::Cancel)]]
        }
        _ => vec![vec![button("🔁 Run again", job.id, JobAction::Rerun)]],
    }
}

/// `/jobs`: the chat's recent jobs, newest first.
pub(crate) fn list(jobs: &[JobRecord], now_ms: i64) -> String {
    if jobs.is_empty() {
        return "No jobs yet in this chat. /run <prompt> starts one.".to_owned();
    }
    let mut out = vec!["Jobs (newest first):".to_owned()];
    for job in jobs {
        out.push(format!(
            "{} {} · {} · {} ago · {}",
            job.state.icon(),
            job.id,
            job.state.name(),
            duration(now_ms - job.created_ms),
            short(&what(job), LIST_PROMPT_CHARS)
        ));
    }
    out.push("/job <n> shows one; /info <n> everything about it.".to_owned());
    out.join("\n")
}

/// `/info`: everything known about a job.
pub(crate) fn info(job: &JobRecord) -> String {
    let mut out = vec![
        format!("Job {} · {}", job.id, job.state.name()),
        format!("Kind: {}", job.job.kind),
        format!("Prompt: {}", short(&job.job.prompt, 1000)),
        format!("Node: {}", job.job.node),
        format!("Folder: {}", job.job.cwd),
        format!("Node's job id: {}", job.wire_id),
    ];
    let settings = super::JobSettings::from_json(&job.job.settings);
    let mut set = Vec::new();
    for (name, value) in [
        ("model", &settings.model),
        ("effort", &settings.reasoning_effort),
        ("sandbox", &settings.sandbox),
        ("approvals", &settings.approvals),
        ("search", &settings.web_search),
    ] {
        if !value.is_empty() {
            set.push(format!("{name} {value}"));
        }
    }
    if !set.is_empty() {
        out.push(format!("Settings: {}", set.join(", ")));
    }
    if !job.reason.is_empty() {
        out.push(format!("Note: {}", job.reason));
    }
    if !job.command_line.is_empty() {
        out.push(format!("Command: {}", job.command_line));
    }
    if let Some(pid) = job.pid {
        out.push(format!("Process: {pid}"));
    }
    if let Some(start) = job.started_ms {
        let end = job.finished_ms.unwrap_or_else(super::now_ms);
        out.push(format!("Ran for: {}", duration(end - start)));
    }
    if let Some(code) = job.exit_code {
        out.push(format!("Exit status: {code}"));
    }
    if let Some(tokens) = job.tokens {
        out.push(format!("Tokens: {tokens}"));
    }
    if !job.codex_thread.is_empty() {
        out.push(format!("Codex thread: {}", job.codex_thread));
    }
    if !job.rollout_path.is_empty() {
        out.push(format!("Rollout: {}", job.rollout_path));
    }
    if !job.artifacts.is_empty() {
        out.push(format!("Artifacts:\n{}", job.artifacts));
    }
    if !job.error.is_empty() {
        out.push(format!("Error: {}", short(&job.error, 1000)));
    }
    if !job.stderr_tail.is_empty() {
        let tail: Vec<&str> = job.stderr_tail.lines().rev().take(15).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        out.push(format!("Stderr (end):\n{}", tail.join("\n")));
    }
    out.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{NewJob, Surface};

    fn job(state: JobState) -> JobRecord {
        JobRecord {
            id: JobId(7),
            wire_id: "j7-1".into(),
            job: NewJob {
                surface: Surface {
                    chat_id: 1,
                    thread_id: 0,
                },
                requested_by: 0,
                node: "vps".into(),
                cwd: "/srv/app".into(),
                kind: "exec".into(),
                prompt: "fix\nthe   tests".into(),
                resume_thread: String::new(),
                review_target: String::new(),
                settings: "{}".into(),
                reply_to: None,
                source: String::new(),
            },
            state,
            reason: String::new(),
            created_ms: 0,
            started_ms: Some(1_000),
            finished_ms: Some(66_000),
            approval_until_ms: None,
            status_msg: None,
            pid: Some(9),
            codex_thread: String::new(),
            command_line: String::new(),
            activity: "running cargo test".into(),
            exit_code: Some(0),
            tokens: Some(1200),
            final_message: String::new(),
            error: String::new(),
            stderr_tail: String::new(),
            rollout_path: String::new(),
            artifacts: String::new(),
            acked_seq: 0,
            final_sent: false,
        }
    }

    #[test]
    fn status_says_where_and_what() {
        let text = status_text(&job(JobState::Queued), 2, None);
        assert!(text.starts_with("🕒 Job 7 · queued"), "{text}");
        assert!(text.contains("📝 fix the tests"), "{text}");
        assert!(text.contains("📍 vps · /srv/app"), "{text}");
        assert!(text.contains("2 ahead of it on vps"), "{text}");
        let away = status_text(&job(JobState::Queued), 0, Some("vps"));
        assert!(away.contains("Waiting for vps"), "{away}");
        let running = status_text(&job(JobState::Running), 0, None);
        assert!(running.contains("running cargo test"), "{running}");
        let done = status_text(&job(JobState::Succeeded), 0, None);
        assert!(done.contains("1 m 5 s · 1200 tokens"), "{done}");
    }

    #[test]
    fn buttons_follow_the_state() {
        let labels = |s| {
            status_keyboard(&job(s))
                .concat()
                .into_iter()
                .map(|(l, _)| l)
                .collect::<Vec<_>>()
        };
        assert_eq!(
            labels(JobState::AwaitingApproval),
            ["✅ Approve", "🚫 Reject"]
        );
        assert_eq!(labels(JobState::Running), ["⏹ Cancel"]);
        assert_eq!(labels(JobState::Failed), ["🔁 Run again"]);
        for row in status_keyboard(&job(JobState::AwaitingApproval)) {
            for (_, data) in row {
                assert!(Callback::decode(&data).is_some());
            }
        }
    }

    #[test]
    fn durations_read_well() {
        assert_eq!(duration(5_400), "5 s");
        assert_eq!(duration(65_000), "1 m 5 s");
        assert_eq!(duration(3_723_000), "1 h 2 m");
    }
}
