//! What an issue's job is asked (the prompt) and what is written back on the issue (the
//! comment), as pure functions. The comment ends with an invisible marker naming the job, so
//! a retry after an unclear failure can see that the comment is already there.

use super::api::Issue;
use crate::{router::jobs::JobState, store::JobRecord};

/// The longest job answer put in a comment (GitHub takes 65536 characters; the rest is for
/// the footer).
const MAX_ANSWER_CHARS: usize = 60_000;

/// The job's prompt: the issue's title, link and body.
pub(crate) fn prompt(repo: &str, issue: &Issue) -> String {
    let body = issue.body.as_deref().map(str::trim).unwrap_or_default();
    let body = if body.is_empty() {
        "(The issue has no description.)"
    } else {
        body
    };
    format!(
        "GitHub issue {repo}#{n}: {title}\n{url}\n\n{body}",
        n = issue.number,
        title = issue.title.trim(),
        url = issue.html_url,
    )
}

/// What makes a job's comment recognisable (HTML comments are not shown on GitHub).
pub(crate) fn marker(job: &JobRecord) -> String {
    format!("<!-- codex-fleet job {} -->", job.wire_id)
}

/// The comment for a job that is over: its final message, or how it ended.
pub(crate) fn comment(job: &JobRecord) -> String {
    let mut text = match job.state {
        JobState::Succeeded if !job.final_message.trim().is_empty() => {
            shorten(job.final_message.trim(), MAX_ANSWER_CHARS)
        }
        JobState::Succeeded => "The job finished without a final message.".to_owned(),
        state => {
            let why = [job.error.trim(), job.reason.trim()]
                .into_iter()
                .find(|w| !w.is_empty())
                .map(|w| format!(": {}", shorten(w, 2_000)))
                .unwrap_or_default();
            format!("The job ended {}{why}", state.name())
        }
    };
    let link = job
        .status_msg
        .and_then(|m| telegram_link(job.job.surface.chat_id, m))
        .map(|l| format!(" · [in Telegram]({l})"))
        .unwrap_or_default();
    text.push_str(&format!(
        "\n\n---\n_Codex Fleet job {} · {}{link}_\n{}",
        job.id,
        job.state.name(),
        marker(job)
    ));
    text
}

/// A link to a message of a supergroup (`-100…` ids); other chats have no public link.
pub(crate) fn telegram_link(chat_id: i64, message_id: i32) -> Option<String> {
    let id = chat_id.to_string();
    let internal = id.strip_prefix("-100")?;
    Some(format!("https://t.me/c/{internal}/{message_id}"))
}

fn shorten(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut cut: String = text.chars().take(max).collect();
    cut.push_str("\n\n… (cut)");
    cut
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        router::jobs::JobId,
        store::{NewJob, Surface},
    };

    fn issue(body: Option<&str>) -> Issue {
        Issue {
            number: 7,
            title: " Flaky test ".into(),
            body: body.map(str::to_owned),
            html_url: "https://github.com/octo/app/issues/7".into(),
            pull_request: None,
        }
    }

    fn job(state: JobState) -> JobRecord {
        JobRecord {
            id: JobId(12),
            wire_id: "j12-1000".into(),
            job: NewJob {
                surface: Surface {
                    chat_id: -1_001_234_567_890,
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
                source: "github:octo/app#7".into(),
            },
            state,
            reason: String::new(),
            created_ms: 0,
            started_ms: None,
            finished_ms: None,
            approval_until_ms: None,
            status_msg: Some(55),
            pid: None,
            codex_thread: String::new(),
            command_line: String::new(),
            activity: String::new(),
            exit_code: None,
            tokens: None,
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
    fn the_prompt_has_title_link_and_body() {
        assert_eq!(
            prompt("octo/app", &issue(Some("It fails on CI.\n"))),
            "GitHub issue octo/app#7: Flaky test\nhttps://github.com/octo/app/issues/7\n\nIt fails on CI."
        );
        assert!(prompt("octo/app", &issue(None)).ends_with("(The issue has no description.)"));
    }

    #[test]
    fn the_comment_is_the_answer_or_the_failure_with_a_marker() {
        let mut done = job(JobState::Succeeded);
        done.final_message = "Fixed in abc123.".into();
        let text = comment(&done);
        assert!(text.starts_with("Fixed in abc123.\n\n---\n"), "{text}");
        assert!(
            text.contains("[in Telegram](https://t.me/c/1234567890/55)"),
            "{text}"
        );
        assert!(
            text.ends_with("<!-- codex-fleet job j12-1000 -->"),
            "{text}"
        );

        let mut failed = job(JobState::Failed);
        failed.error = "codex exited with status 1".into();
        assert!(comment(&failed).starts_with("The job ended failed: codex exited with status 1"));
        let mut rejected = job(JobState::Rejected);
        rejected.reason = "matches a risky pattern".into();
        assert!(comment(&rejected).starts_with("The job ended rejected: matches a risky pattern"));

        let mut long = job(JobState::Succeeded);
        long.final_message = "x".repeat(100_000);
        assert!(comment(&long).chars().count() < 65_536);
    }

    #[test]
    fn only_supergroups_have_message_links() {
        assert_eq!(
            telegram_link(-1_001_234, 5).as_deref(),
            Some("https://t.me/c/1234/5")
        );
        assert_eq!(telegram_link(-4_000_000_001, 5), None);
        assert_eq!(telegram_link(42, 5), None);
    }
}
