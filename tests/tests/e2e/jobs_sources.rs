//! Jobs that no chat message starts, end to end: a schedule made with `/schedule` fires and its
//! job answers in the topic; a run missed while the center was down runs once when it starts.
//! A labelled issue on the fake GitHub becomes one job whose answer is commented back on the
//! issue once; a center restart makes no second job and no second comment.
//!
//! Schedules are tested with six-field cron expressions (seconds first) that name one second a
//! few seconds ahead, so a run is due within the test without a test-only clock.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use e2e::{center_proc::CenterProcess, fake_github::FakeGithub};

use crate::center::CenterEnv;

const WAIT: Duration = Duration::from_secs(90);

/// Alice sends `text` in `thread`.
fn send(env: &CenterEnv, thread: i64, text: &str) {
    env.tg
        .send_text(&env.alice, env.chat, Some(thread), text)
        .unwrap();
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

/// A cron expression (with seconds) for the UTC second `ahead` from now; and how long until it.
fn cron_in(ahead: Duration) -> (String, Duration) {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    let at = (now + ahead).as_secs();
    let until = Duration::from_secs(at) - now;
    (format!("{} {} * * * *", at % 60, (at / 60) % 60), until)
}

fn count(env: &CenterEnv, thread: i64, text: &str) -> usize {
    env.tg
        .messages_in(env.chat, Some(thread))
        .into_iter()
        .filter(|m| m.text() == text)
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schedule_fires_and_a_run_missed_while_down_runs_once() {
    let mut env = CenterEnv::start("jobs-schedule").await;
    let thread = jobs_topic(&env, "Nightly").await;

    send(&env, thread, "/schedule add \"every day\" echo: never");
    let refused = env
        .message(thread, "bad cron", |m| m.text().starts_with("Not added:"))
        .await;
    assert!(
        refused.text().contains("is not a cron expression"),
        "{}",
        refused.text()
    );

    let (cron, _) = cron_in(Duration::from_secs(12));
    send(
        &env,
        thread,
        &format!("/schedule add \"{cron}\" echo: the scheduled answer"),
    );
    let added = env
        .message(thread, "added", |m| {
            m.text().starts_with("Schedule 1 added")
        })
        .await;
    assert!(added.text().contains("(UTC)"), "{}", added.text());
    // The run's job reports in the topic: a status message of its own, then the answer.
    let answer = env
        .message(thread, "the scheduled answer", |m| {
            m.text() == "the scheduled answer"
        })
        .await;
    let status = env
        .tg
        .messages_in(env.chat, Some(thread))
        .into_iter()
        .find(|m| Some(m.message_id) == answer.reply_to)
        .expect("the answer replies to the job's status message");
    assert_eq!(status.reply_to, None, "no command message to reply to");

    send(&env, thread, "/schedule list");
    let list = env
        .message(thread, "list", |m| {
            m.text()
                .starts_with("Schedules in this chat (times in UTC)")
        })
        .await;
    assert!(
        list.text().contains(&format!("1 · {cron} · next")),
        "{}",
        list.text()
    );
    send(&env, thread, "/schedule remove 1");
    env.message(thread, "removed", |m| m.text() == "Schedule 1 removed.")
        .await;

    // A run that falls due while the center is down runs once when it is back.
    let (cron, until) = cron_in(Duration::from_secs(8));
    send(
        &env,
        thread,
        &format!("/schedule add \"{cron}\" echo: the missed answer"),
    );
    env.message(thread, "added", |m| {
        m.text().starts_with("Schedule 2 added")
    })
    .await;
    env.center.kill().await.unwrap();
    tokio::time::sleep(until + Duration::from_secs(2)).await;
    env.center = CenterProcess::start(&env.opts).await.unwrap();
    let missed = env
        .message(thread, "the missed answer", |m| {
            m.text() == "the missed answer"
        })
        .await;
    // The status shows the end once the answer is recorded as sent; then restart.
    let status = missed.reply_to.expect("the answer replies to its status");
    env.tg
        .wait_for_message("the run's status · succeeded", WAIT, |m| {
            m.message_id == status && m.text().contains("· succeeded")
        })
        .await
        .unwrap();
    // Another restart repeats nothing (the next run is an hour away).
    env.restart_center().await;
    send(&env, thread, "/schedule list");
    env.message(thread, "list after restart", |m| {
        m.text().contains("2 · ") && m.text().starts_with("Schedules in this chat")
    })
    .await;
    assert_eq!(count(&env, thread, "the missed answer"), 1);
    assert_eq!(count(&env, thread, "the scheduled answer"), 1);
    assert_eq!(env.model.times_typed("echo: the missed answer"), 1);
}

const GH_TOKEN: &str = "ghp_e2e-token-for-the-fake-github";
const REPO: &str = "octo/app";

/// Model requests (not title requests) that carry `text` as a user message: one per job run.
fn runs_of(env: &CenterEnv, text: &str) -> usize {
    env.model
        .responses_requests()
        .iter()
        .filter(|r| !r.is_title_request())
        .filter(|r| r.user_texts().iter().any(|t| t.trim() == text))
        .count()
}

/// Waits until `done` holds (the fake GitHub tells nobody when it is called, so this looks
/// every 200 ms).
async fn until(what: &str, done: impl Fn() -> bool) {
    let deadline = std::time::Instant::now() + WAIT;
    while !done() {
        assert!(std::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Issue-list requests the fake GitHub answered so far.
fn polls(gh: &FakeGithub) -> usize {
    gh.requests()
        .iter()
        .filter(|r| r.method == "GET" && r.uri.starts_with(&format!("/repos/{REPO}/issues?")))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_labelled_issue_becomes_one_job_and_one_comment_across_restarts() {
    let gh = FakeGithub::start(GH_TOKEN).await.unwrap();
    let issue = gh.open_issue(REPO, "Flaky test", "It fails on CI.", &["codex"]);
    gh.open_issue(REPO, "Not for Codex", "", &["bug"]);
    gh.open_pull_request(REPO, "A pull request", &["codex"]);

    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("center.toml");
    std::fs::write(&config, "").unwrap();
    let mut env = CenterEnv::start_with(
        "jobs-github",
        vec![
            ("CENTER_CONFIG".into(), config.display().to_string()),
            ("FLEET_E2E_GITHUB_TOKEN".into(), GH_TOKEN.into()),
        ],
    )
    .await;
    // The chat exists once the center runs: point the entry at it and restart.
    let thread = env
        .tg
        .create_topic(&env.alice, env.chat, "Issues")
        .unwrap()
        .thread_id
        .unwrap();
    std::fs::write(
        &config,
        format!(
            "[[github]]\nrepo = \"{REPO}\"\nlabel = \"codex\"\ntoken_env = \"FLEET_E2E_GITHUB_TOKEN\"\n\
             folder = \"{}\"\nchat_id = {}\nthread_id = {thread}\napi_url = \"{}\"\ninterval_secs = 2\n",
            env.project.display(),
            env.chat,
            gh.api_url()
        ),
    )
    .unwrap();
    // The first comment lands but its answer is lost: the retry must find it, not post again.
    gh.lose_next_comment_replies(1);
    env.restart_center().await;

    let prompt = format!(
        "GitHub issue {REPO}#{issue}: Flaky test\nhttps://github.com/{REPO}/issues/{issue}\n\nIt fails on CI."
    );
    let answer = format!("You said: {prompt}");
    let answered = env
        .message(thread, "the issue's answer", |m| m.text() == answer)
        .await;
    let status = answered
        .reply_to
        .expect("the answer replies to the job's status");
    env.tg
        .wait_for_message("the issue job's status · succeeded", WAIT, |m| {
            m.message_id == status && m.text().contains("· succeeded")
        })
        .await
        .unwrap();
    until("the comment", || !gh.comments(REPO, issue).is_empty()).await;
    // Past the failed post and its retry.
    until("the retry looked", || {
        gh.requests().iter().any(|r| {
            r.uri
                .starts_with(&format!("/repos/{REPO}/issues/{issue}/comments?"))
        })
    })
    .await;
    let comments = gh.comments(REPO, issue);
    assert_eq!(comments.len(), 1, "{comments:?}");
    assert!(comments[0].starts_with(&answer), "{}", comments[0]);
    assert!(
        comments[0].contains("Codex Fleet job 1 · succeeded"),
        "{}",
        comments[0]
    );
    assert!(comments[0].contains("https://t.me/c/"), "{}", comments[0]);
    until("a poll answered 304", || gh.answered(304) > 0).await;

    // A restart makes no second job and no second comment.
    env.restart_center().await;
    let seen = polls(&gh);
    until("two polls after the restart", || polls(&gh) >= seen + 2).await;
    assert_eq!(gh.comments(REPO, issue).len(), 1);
    assert_eq!(runs_of(&env, &prompt), 1, "the issue's job ran again");
    let answers = env
        .tg
        .messages_in(env.chat, Some(thread))
        .into_iter()
        .filter(|m| m.text() == answer)
        .count();
    assert_eq!(answers, 1);
    // Nothing else was commented on, and nothing was refused.
    for other in [2, 3] {
        assert!(gh.comments(REPO, other).is_empty());
    }
    for refused in [400, 401, 403, 404, 422] {
        assert_eq!(
            gh.answered(refused),
            0,
            "HTTP {refused}: {:?}",
            gh.requests()
        );
    }
}
