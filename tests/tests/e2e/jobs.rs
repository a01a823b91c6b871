//! Jobs from Telegram, end to end: `/run` with the real `codex exec` on the fake model, a node
//! limited to one job running them one after the other, the risky-prompt gate (Reject never
//! runs, Approve runs), `/cancel` of a running job, `/diff` in a real git repository and
//! outside one, and the clear answers when there is no folder for jobs.

use std::time::{Duration, Instant};

use e2e::fake_telegram::BotMessage;

use crate::center::CenterEnv;

const WAIT: Duration = Duration::from_secs(90);

/// Alice sends `text` in `thread`; the id of her message.
fn send(env: &CenterEnv, thread: i64, text: &str) -> Option<i64> {
    env.tg
        .send_text(&env.alice, env.chat, Some(thread), text)
        .unwrap()
        .message_id
}

/// A new topic whose jobs run in the project folder.
async fn jobs_topic(env: &CenterEnv, name: &str) -> i64 {
    let thread = env
        .tg
        .create_topic(&env.alice, env.chat, name)
        .unwrap()
        .thread_id
        .unwrap();
    send(
        env,
        thread,
        &format!("/workdir set {}", env.project.display()),
    );
    env.message(thread, "workdir set", |m| {
        m.text().contains("Jobs in this chat now run in local:")
    })
    .await;
    thread
}

/// The first model request whose user messages include `text`.
fn model_request_with(env: &CenterEnv, text: &str) -> e2e::fake_model::RecordedRequest {
    env.model
        .responses_requests()
        .into_iter()
        .find(|r| r.user_texts().iter().any(|t| t.contains(text)))
        .unwrap_or_else(|| panic!("the model never saw {text:?}"))
}

async fn status_of(env: &CenterEnv, thread: i64, command: Option<i64>, state: &str) -> BotMessage {
    let state = format!("· {state}");
    env.tg
        .wait_for_message(&format!("job status {state}"), WAIT, |m| {
            m.thread_id == Some(thread) && m.reply_to == command && m.text().contains(&state)
        })
        .await
        .unwrap()
}

async fn edited_to(env: &CenterEnv, status: &BotMessage, state: &str) -> BotMessage {
    let id = status.message_id;
    let state = format!("· {state}");
    env.tg
        .wait_for_message(&format!("job {state}"), WAIT, |m| {
            m.message_id == id && m.text().contains(&state)
        })
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_answers_and_a_node_limited_to_one_runs_jobs_one_after_the_other() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("center.toml");
    std::fs::write(&config, "[jobs]\nper_node_limit = 1\n").unwrap();
    let env = CenterEnv::start_with(
        "jobs-run",
        vec![("CENTER_CONFIG".into(), config.display().to_string())],
    )
    .await;
    let thread = env
        .tg
        .create_topic(&env.alice, env.chat, "Jobs")
        .unwrap()
        .thread_id
        .unwrap();
    // No folder for jobs yet: a clear answer, nothing runs.
    send(&env, thread, "/run echo: nowhere");
    env.message(thread, "no folder", |m| {
        m.text().contains("No folder for jobs here")
    })
    .await;
    send(&env, thread, "/workdir set /definitely/not/under/the/roots");
    env.message(thread, "outside the roots", |m| {
        m.text().starts_with("Not set:")
    })
    .await;
    send(
        &env,
        thread,
        &format!("/workdir set {}", env.project.display()),
    );
    env.message(thread, "workdir set", |m| {
        m.text().contains("Jobs in this chat now run in local:")
    })
    .await;

    let first = send(&env, thread, "/run slow: 6");
    let second = send(&env, thread, "/run echo: the second answer");
    let one = status_of(&env, thread, first, "").await;
    let two = status_of(&env, thread, second, "").await;
    env.model.wait_for_user_text("slow: 6", WAIT).await.unwrap();
    let slow_seen = Instant::now();
    env.model
        .wait_for_user_text("echo: the second answer", WAIT)
        .await
        .unwrap();
    assert!(
        slow_seen.elapsed() >= Duration::from_secs(5),
        "the second job ran while the first held the node's only slot"
    );
    let answer_one = env
        .message(thread, "first answer", |m| {
            m.text() == "Done after 6 seconds."
        })
        .await;
    let answer_two = env
        .message(thread, "second answer", |m| m.text() == "the second answer")
        .await;
    // Each answer replies to its job's status message, which ends as succeeded.
    assert_eq!(answer_one.reply_to, Some(one.message_id));
    assert_eq!(answer_two.reply_to, Some(two.message_id));
    let two = edited_to(&env, &two, "succeeded").await;
    assert!(two.buttons().iter().any(|b| b.text.contains("Run again")));
    // The second waited in the queue while the first ran.
    assert!(
        two.history.iter().any(|r| r.text.contains("· queued")),
        "{:?}",
        two.history
    );
    send(&env, thread, "/jobs");
    let list = env
        .message(thread, "job list", |m| {
            m.text().starts_with("Jobs (newest first)")
        })
        .await;
    assert_eq!(
        list.text().matches("succeeded").count(),
        2,
        "{}",
        list.text()
    );
    // /info has the diagnostics.
    send(&env, thread, "/info 2");
    let info = env
        .message(thread, "info", |m| {
            m.text().starts_with("Job 2 · succeeded")
        })
        .await;
    for part in ["Codex thread:", "Command:", "Tokens:", "Exit status: 0"] {
        assert!(info.text().contains(part), "{part}: {}", info.text());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn risky_jobs_wait_for_approval_cancel_stops_and_diff_reads_git() {
    let env = CenterEnv::start("jobs-gate").await;
    let thread = jobs_topic(&env, "Gate").await;

    // Rejected: never reaches Codex.
    let asked = send(&env, thread, "/run echo: sudo rejected answer");
    let waiting = status_of(&env, thread, asked, "awaiting approval").await;
    assert!(waiting.text().contains("sudo"), "{}", waiting.text());
    env.press(&waiting, "🚫 Reject");
    edited_to(&env, &waiting, "rejected").await;
    // Approved: runs and answers.
    let asked = send(&env, thread, "/run echo: sudo approved answer");
    let waiting = status_of(&env, thread, asked, "awaiting approval").await;
    env.press(&waiting, "✅ Approve");
    env.message(thread, "approved answer", |m| {
        m.text() == "sudo approved answer"
    })
    .await;
    edited_to(&env, &waiting, "succeeded").await;
    assert_eq!(env.model.times_typed("echo: sudo rejected answer"), 0);
    // A job that is over cannot be approved any more.
    send(&env, thread, "/approve 1");
    env.message(thread, "over", |m| m.text() == "Job 1 is over (rejected).")
        .await;

    // Cancel stops a running job.
    let asked = send(&env, thread, "/run slow: 120");
    let running = status_of(&env, thread, asked, "").await;
    env.model
        .wait_for_user_text("slow: 120", WAIT)
        .await
        .unwrap();
    let running = edited_to(&env, &running, "running").await;
    env.press(&running, "⏹ Cancel");
    edited_to(&env, &running, "cancelled").await;

    // /diff: not a repository, then a real one with a change.
    send(&env, thread, "/diff");
    env.message(thread, "not a repo", |m| {
        m.text().starts_with("Not a git repository")
    })
    .await;
    let git = |args: &[&str]| {
        #[allow(
            clippy::disallowed_methods,
            reason = "test fixture: a real git repository"
        )]
        let out = std::process::Command::new("git")
            .args(["-C", &env.project.display().to_string()])
            .args(["-c", "user.name=t", "-c", "user.email=t@example.com"])
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "git {args:?}: {out:?}");
    };
    std::fs::write(env.project.join("notes.txt"), "one\n").unwrap();
    git(&["init", "-q"]);
    git(&["add", "notes.txt"]);
    git(&["commit", "-q", "-m", "first"]);
    std::fs::write(env.project.join("notes.txt"), "one\ntwo\n").unwrap();
    let asked = send(&env, thread, "/diff");
    let stat = env
        .message(thread, "diff stat", |m| m.text().starts_with("Changes in"))
        .await;
    assert!(stat.text().contains("notes.txt"), "{}", stat.text());
    let patch = env
        .message(thread, "the patch", |m| {
            m.reply_to == asked && m.media_kind().is_some()
        })
        .await;
    assert_eq!(patch.caption(), Some("The patch."));
    // A review job of the uncommitted change runs Codex's review and ends.
    let asked = send(&env, thread, "/review");
    let review = status_of(&env, thread, asked, "").await;
    assert!(
        review.text().contains("review (uncommitted)"),
        "{}",
        review.text()
    );
    let review = env
        .tg
        .wait_for_message("review over", WAIT, |m| {
            m.message_id == review.message_id
                && (m.text().contains("· succeeded") || m.text().contains("· failed"))
        })
        .await
        .unwrap();
    assert!(review.text().contains("· succeeded"), "{}", review.text());

    // The operator's CLI submits a job under the same rules; its answer comes to the topic.
    let out = env.center_cli(&[
        "job",
        "add",
        "--folder",
        &env.project.display().to_string(),
        &format!("--chat={}", env.chat),
        &format!("--thread={thread}"),
        "echo: from the command line",
    ]);
    assert!(out.status.success(), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("submitted"),
        "{out:?}"
    );
    env.message(thread, "the CLI job's answer", |m| {
        m.text() == "from the command line"
    })
    .await;
    let refused = env.center_cli(&["job", "add", "--folder", "/etc", "echo: x"]);
    assert!(!refused.status.success(), "{refused:?}");
}

/// kill -9 of the center (and its embedded node) while a job runs: the job's process lives on
/// in its own process group, the restarted node follows it, and its answer arrives exactly
/// once; a second restart after the answer sends nothing again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_survives_a_center_crash_and_answers_once() {
    let mut env = CenterEnv::start("jobs-crash").await;
    let thread = jobs_topic(&env, "Crash").await;
    let asked = send(&env, thread, "/run slow: 8");
    let status = status_of(&env, thread, asked, "").await;
    env.model.wait_for_user_text("slow: 8", WAIT).await.unwrap();
    env.restart_center().await;
    env.message(thread, "the answer after the crash", |m| {
        m.text() == "Done after 8 seconds."
    })
    .await;
    // The status shows the end once the answer is recorded as sent.
    edited_to(&env, &status, "succeeded").await;
    env.restart_center().await;
    // Anything the restart would repeat goes out right after it starts; give it that time.
    send(&env, thread, "/jobs");
    env.message(thread, "job list", |m| {
        m.text().starts_with("Jobs (newest first)")
    })
    .await;
    let answers = env
        .tg
        .messages_in(env.chat, Some(thread))
        .into_iter()
        .filter(|m| m.text() == "Done after 8 seconds.")
        .count();
    assert_eq!(answers, 1, "the answer was sent {answers} times");
    assert_eq!(env.model.times_typed("slow: 8"), 1, "the job ran twice");
}

/// A chat's job settings reach Codex (model and effort in the model request), full access
/// waits for approval, and a named session continues its Codex thread on its second run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settings_reach_codex_and_a_named_session_continues_its_thread() {
    let env = CenterEnv::start("jobs-settings").await;
    let thread = jobs_topic(&env, "Settings").await;
    send(&env, thread, "/model gpt-fleet-test high");
    env.message(thread, "model set", |m| {
        m.text() == "Jobs in this chat now use gpt-fleet-test with high reasoning."
    })
    .await;
    send(&env, thread, "/model gpt-fleet-test enormous");
    env.message(thread, "bad effort", |m| {
        m.text().starts_with("Unknown value \"enormous\"")
    })
    .await;
    send(&env, thread, "/status");
    env.message(thread, "status", |m| {
        m.text().contains("settings: model gpt-fleet-test high")
    })
    .await;
    send(&env, thread, "/run echo: with my settings");
    env.message(thread, "answer", |m| m.text() == "with my settings")
        .await;
    let request = model_request_with(&env, "echo: with my settings");
    assert_eq!(request.body["model"], "gpt-fleet-test", "{}", request.body);
    assert_eq!(
        request.body["reasoning"]["effort"], "high",
        "{}",
        request.body
    );

    // Features are checked against the machine's Codex; /mcp asks it.
    send(&env, thread, "/experimental on no_such_feature_here");
    env.message(thread, "unknown feature", |m| {
        m.text().contains("has no feature \"no_such_feature_here\"")
    })
    .await;
    send(&env, thread, "/mcp");
    env.message(thread, "mcp list", |m| {
        m.text().starts_with("Codex on local") && m.text().contains("MCP")
    })
    .await;

    // Full access: every job waits for approval.
    send(&env, thread, "/permissions danger-full-access");
    env.message(thread, "permissions", |m| {
        m.text().contains("Every job then waits for approval")
    })
    .await;
    let asked = send(&env, thread, "/run echo: harmless");
    let waiting = status_of(&env, thread, asked, "awaiting approval").await;
    assert!(
        waiting.text().contains("danger-full-access"),
        "{}",
        waiting.text()
    );
    env.press(&waiting, "🚫 Reject");
    edited_to(&env, &waiting, "rejected").await;
    send(&env, thread, "/permissions reset");
    env.message(thread, "reset", |m| m.text().starts_with("Reset:"))
        .await;

    // A named session: the second run resumes the first run's thread.
    send(&env, thread, "/session create notes");
    env.message(thread, "session created", |m| {
        m.text().starts_with("Session notes created")
    })
    .await;
    send(&env, thread, "/run_session notes echo: first note");
    env.message(thread, "first", |m| m.text() == "first note")
        .await;
    send(&env, thread, "/run_session notes echo: second note");
    env.message(thread, "second", |m| m.text() == "second note")
        .await;
    let second = model_request_with(&env, "echo: second note");
    assert!(
        second
            .user_texts()
            .iter()
            .any(|t| t.contains("echo: first note")),
        "the second run did not continue the first: {:?}",
        second.user_texts()
    );
    send(&env, thread, "/session list");
    env.message(thread, "sessions", |m| {
        m.text().starts_with("Sessions:")
            && m.text().contains("notes")
            && m.text().contains("thread")
    })
    .await;
}

/// A picture the job's tool command writes in its folder comes back as a photo under the
/// job's status; one written outside the folder never does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_jobs_picture_comes_back_as_a_photo() {
    let env = CenterEnv::start("jobs-artifact").await;
    let thread = jobs_topic(&env, "Artifacts").await;
    let sample = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../center/testdata/pane_image/sample.png")
        .canonicalize()
        .unwrap();
    let outside = tempfile::tempdir().unwrap();
    let outside_png = outside.path().join("outside.png");
    let asked = send(
        &env,
        thread,
        &format!(
            "/run plain: cp {} chart.png; cp {} {}",
            sample.display(),
            sample.display(),
            outside_png.display()
        ),
    );
    let status = status_of(&env, thread, asked, "").await;
    let photo = env
        .message(thread, "the chart as a photo", |m| {
            m.media_kind().is_some() && m.caption().is_some_and(|c| c.contains("chart.png"))
        })
        .await;
    assert_eq!(photo.reply_to, Some(status.message_id));
    assert_eq!(
        photo.media_kind(),
        Some(e2e::fake_telegram::MediaKind::Photo)
    );
    edited_to(&env, &status, "succeeded").await;
    let others: Vec<String> = env
        .tg
        .messages_in(env.chat, Some(thread))
        .into_iter()
        .filter(|m| m.media_kind().is_some())
        .map(|m| m.text().to_owned())
        .collect();
    assert_eq!(others.len(), 1, "only the chart comes back: {others:?}");
    // The job did write outside its folder (so "never sent" means something).
    assert!(outside_png.exists());
}
