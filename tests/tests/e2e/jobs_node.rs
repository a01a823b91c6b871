//! Jobs on a real agent-node (no center): `codex exec` run by the node against the fake model,
//! its events, artifacts, cancel, replay with acks, and a node killed mid-job.
//!
//! `NodeClient` speaks Hello without job cursors and never acks jobs, so the replay tests use
//! [`JobLink`], a small client of their own that does both.

use std::{path::Path, time::Duration};

use anyhow::{Context, bail};
use e2e::node_client::NodeClient;
use futures::StreamExt;
use proto::v1::{
    self, center_msg, job_event::Kind, node_link_client::NodeLinkClient, node_msg,
    reply::Result as R, request::Op,
};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use crate::support::{NodeEnv, TURN};

fn start_job(id: &str, cwd: &Path, prompt: &str, settings: v1::JobSettings) -> Op {
    Op::StartJob(v1::StartJob {
        job_id: id.to_owned(),
        cwd: cwd.display().to_string(),
        kind: v1::JobKind::Exec as i32,
        prompt: prompt.to_owned(),
        settings: Some(settings),
        ..Default::default()
    })
}

fn job_event<'a>(msg: &'a v1::NodeMsg, job: &str) -> Option<&'a v1::JobEvent> {
    match &msg.kind {
        Some(node_msg::Kind::JobEvent(e)) if e.job_id == job => Some(e),
        _ => None,
    }
}

fn finished_of(msg: &v1::NodeMsg, job: &str) -> Option<v1::JobFinished> {
    match &job_event(msg, job)?.kind {
        Some(Kind::Finished(f)) => Some(f.clone()),
        _ => None,
    }
}

async fn started(client: &NodeClient, op: Op) -> v1::JobStarted {
    match client.request(op).await.unwrap() {
        R::JobStarted(s) => s,
        other => panic!("StartJob failed: {other:?}"),
    }
}

async fn wait_finished(client: &mut NodeClient, job: &str) -> v1::JobFinished {
    let (f, _) = client
        .wait_for("the job's finish", 0, TURN, |m| finished_of(m, job))
        .await
        .unwrap();
    f
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_answers_with_its_final_message() {
    let mut env = NodeEnv::start("job-answer", false).await.unwrap();
    let project = env.project.clone();
    let s = started(
        &env.client,
        start_job(
            "answer-1",
            &project,
            "echo: the job's answer",
            Default::default(),
        ),
    )
    .await;
    assert!(!s.existed);
    let info = s.job.unwrap();
    assert!(info.running && info.pid > 0);
    assert!(
        info.command_line.contains("exec --json"),
        "{}",
        info.command_line
    );
    let f = wait_finished(&mut env.client, "answer-1").await;
    assert_eq!(f.outcome(), v1::JobOutcome::Succeeded, "{f:?}");
    assert_eq!(f.final_message, "the job's answer");
    assert!(f.has_exit_code && f.exit_code == 0);
    assert!(!f.thread_id.is_empty());
    assert!(f.tokens.is_some_and(|t| t.total_tokens > 0));
    assert!(f.rollout_path.contains(&f.thread_id), "{f:?}");
    // Running once with the pid, once more with the thread; seqs increase.
    let events: Vec<v1::JobEvent> = env
        .client
        .seen
        .iter()
        .filter_map(|m| job_event(m, "answer-1").cloned())
        .collect();
    assert!(events.windows(2).all(|w| w[0].seq < w[1].seq));
    let running: Vec<&v1::JobRunning> = events
        .iter()
        .filter_map(|e| match &e.kind {
            Some(Kind::Running(r)) => Some(r),
            _ => None,
        })
        .collect();
    assert_eq!(running.len(), 2, "{events:?}");
    assert_eq!(running[1].thread_id, f.thread_id);
    // Starting the same id again runs nothing; the job is listed.
    let again = started(
        &env.client,
        start_job("answer-1", &project, "echo: again", Default::default()),
    )
    .await;
    assert!(again.existed);
    let R::Jobs(list) = env
        .client
        .request(Op::ListJobs(v1::ListJobs {}))
        .await
        .unwrap()
    else {
        panic!("ListJobs failed");
    };
    assert_eq!(list.jobs.len(), 1);
    assert!(!list.jobs[0].running);
    // Bad ids and folders outside the roots are refused before anything runs.
    let bad = env
        .client
        .request(start_job("../x", &project, "echo: x", Default::default()))
        .await
        .unwrap();
    assert!(
        matches!(&bad, R::Failure(f) if f.code() == v1::ErrorCode::InvalidArgument),
        "{bad:?}"
    );
    let outside = env
        .client
        .request(start_job(
            "x-2",
            Path::new("/"),
            "echo: x",
            Default::default(),
        ))
        .await
        .unwrap();
    assert!(
        matches!(&outside, R::Failure(f) if f.code() == v1::ErrorCode::OutsideRoots),
        "{outside:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn artifacts_come_back_and_nothing_from_outside_the_folder() {
    let mut env = NodeEnv::start("job-artifacts", false).await.unwrap();
    let project = env.project.clone();
    let settings = v1::JobSettings {
        // Writing outside the folder needs no sandbox at all.
        sandbox: "danger-full-access".into(),
        ..Default::default()
    };
    // `plain:` runs it without a login shell (slow here) and lets Codex wait for its end.
    let cmd = "plain: printf '\\211PNG\\r\\n\\032\\n' > chart.png && echo a,b > data.csv \
               && echo secret > ../outside.csv && ln -s ../outside.csv link.csv && echo x > notes.rs";
    started(&env.client, start_job("art-1", &project, cmd, settings)).await;
    let f = wait_finished(&mut env.client, "art-1").await;
    assert_eq!(f.outcome(), v1::JobOutcome::Succeeded, "{f:?}");
    assert!(
        env.root.path().join("outside.csv").exists(),
        "the tool command did not run: {f:?}"
    );
    let found: Vec<(String, String)> = f
        .artifacts
        .iter()
        .map(|a| (a.path.clone(), a.media_type.clone()))
        .collect();
    let chart = project.join("chart.png").display().to_string();
    let csv = project.join("data.csv").display().to_string();
    assert_eq!(
        found,
        vec![
            (chart.clone(), "photo".into()),
            (csv.clone(), "document".into())
        ]
    );
    // The center reads them with ReadFile (a CSV is no image: readable only as an artifact).
    let read = |path: String| {
        Op::ReadFile(v1::ReadFile {
            path,
            offset: 0,
            max_bytes: 1024,
        })
    };
    match env.client.request(read(csv)).await.unwrap() {
        R::Chunk(c) => assert_eq!(c.data, b"a,b\n"),
        other => panic!("reading the artifact failed: {other:?}"),
    }
    for path in [
        env.root.path().join("outside.csv"),
        project.join("link.csv"),
        project.join("notes.rs"),
    ] {
        let r = env
            .client
            .request(read(path.display().to_string()))
            .await
            .unwrap();
        assert!(
            matches!(r, R::Failure(_)),
            "{} was readable: {r:?}",
            path.display()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_kills_the_job_process_group() {
    let mut env = NodeEnv::start("job-cancel", false).await.unwrap();
    let project = env.project.clone();
    let s = started(
        &env.client,
        start_job("slow-1", &project, "slow: 120", Default::default()),
    )
    .await;
    let pid = s.job.unwrap().pid;
    // Codex has asked the model (it is mid-turn) before the cancel.
    env.model
        .wait_for_user_text("slow: 120", TURN)
        .await
        .unwrap();
    let r = env
        .client
        .request(Op::CancelJob(v1::CancelJob {
            job_id: "slow-1".into(),
            grace_ms: 3000,
        }))
        .await
        .unwrap();
    assert!(matches!(r, R::Done(_)), "{r:?}");
    let (f, _) = env
        .client
        .wait_for("the cancelled finish", 0, Duration::from_secs(30), |m| {
            finished_of(m, "slow-1")
        })
        .await
        .unwrap();
    assert_eq!(f.outcome(), v1::JobOutcome::Cancelled, "{f:?}");
    assert!(
        !Path::new(&format!("/proc/{pid}")).exists(),
        "the job's process {pid} is still there"
    );
    assert!(
        !group_alive(pid),
        "a process of the job's group {pid} is still there"
    );
}

/// Whether any process is in process group `pgid`.
fn group_alive(pgid: u32) -> bool {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| std::fs::read_to_string(e.path().join("stat")).ok())
        .any(|stat| {
            let rest = &stat[stat.rfind(')').unwrap() + 1..];
            rest.split_whitespace().nth(2) == Some(&pgid.to_string())
        })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_after_a_reconnect_sends_what_was_not_acked_once() {
    let mut env = NodeEnv::start("job-replay", false).await.unwrap();
    let project = env.project.clone();
    started(
        &env.client,
        start_job(
            "replay-1",
            &project,
            "commentary: step one",
            Default::default(),
        ),
    )
    .await;
    wait_finished(&mut env.client, "replay-1").await;
    let all: Vec<u64> = env
        .client
        .seen
        .iter()
        .filter_map(|m| job_event(m, "replay-1").map(|e| e.seq))
        .collect();
    assert!(
        all.len() >= 5,
        "running ×2, commentary, command, finish: {all:?}"
    );

    // A new link without cursors gets everything (nothing is acked); it acks two events.
    let mut a = JobLink::connect(&env, &[]).await.unwrap();
    assert_eq!(a.seqs("replay-1"), all);
    a.ack("replay-1", all[1]).await.unwrap();
    drop(a);
    // The next link gets the rest — from the node's own record of the ack — once.
    let b = JobLink::connect(&env, &[]).await.unwrap();
    assert_eq!(b.seqs("replay-1"), all[2..].to_vec());
    drop(b);
    // A cursor further on wins over the node's record.
    let mut c = JobLink::connect(&env, &[("replay-1", all[2])])
        .await
        .unwrap();
    assert_eq!(c.seqs("replay-1"), all[3..].to_vec());
    // Once the finish is acked the job is not replayed any more, not even after a node restart.
    c.ack("replay-1", *all.last().unwrap()).await.unwrap();
    drop(c);
    env.restart_node().await.unwrap();
    let d = JobLink::connect(&env, &[]).await.unwrap();
    assert_eq!(d.seqs("replay-1"), Vec::<u64>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_killed_mid_job_follows_it_after_restart() {
    let mut env = NodeEnv::start("job-restart", false).await.unwrap();
    let project = env.project.clone();
    started(
        &env.client,
        start_job("survive-1", &project, "slow: 6", Default::default()),
    )
    .await;
    env.model.wait_for_user_text("slow: 6", TURN).await.unwrap();
    env.restart_node().await.unwrap();
    env.client = NodeClient::connect(&env.node.addr, &[]).await.unwrap();
    let f = wait_finished(&mut env.client, "survive-1").await;
    // Codex outlived the node (its own process group) and was followed to its end.
    assert_eq!(f.outcome(), v1::JobOutcome::Succeeded, "{f:?}");
    assert_eq!(f.final_message, "Done after 6 seconds.");
    assert!(
        !f.has_exit_code,
        "the exit status of an adopted process is unknown"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_that_died_with_the_node_is_reported_lost() {
    let mut env = NodeEnv::start("job-lost", false).await.unwrap();
    let project = env.project.clone();
    let s = started(
        &env.client,
        start_job("lost-1", &project, "slow: 60", Default::default()),
    )
    .await;
    let pid = s.job.unwrap().pid;
    env.model
        .wait_for_user_text("slow: 60", TURN)
        .await
        .unwrap();
    // The node is frozen, so it cannot see the job die; then it is killed and started again.
    let node_pid = env.node.pid().unwrap();
    kill(&["-STOP", &node_pid.to_string()]);
    kill(&["-KILL", "--", &format!("-{pid}")]);
    env.restart_node().await.unwrap();
    env.client = NodeClient::connect(&env.node.addr, &[]).await.unwrap();
    let f = wait_finished(&mut env.client, "lost-1").await;
    assert_eq!(f.outcome(), v1::JobOutcome::Lost, "{f:?}");
    assert!(!f.has_exit_code);
    assert!(!f.error.is_empty());
    assert!(
        !f.thread_id.is_empty(),
        "what Codex wrote is reported: {f:?}"
    );
}

/// Sends a signal to processes this test started (by pid or `-pgid`).
fn kill(args: &[&str]) {
    #[allow(
        clippy::disallowed_methods,
        reason = "test signalling processes it started, by pid"
    )]
    let status = std::process::Command::new("kill")
        .args(args)
        .status()
        .unwrap();
    assert!(status.success(), "kill {args:?}");
}

/// A center-side link that says Hello with job cursors, sends job acks, and sees what the node
/// replays right after the handshake.
struct JobLink {
    tx: mpsc::Sender<v1::CenterMsg>,
    inbound: tonic::Streaming<v1::NodeMsg>,
    next_id: u64,
    events: Vec<v1::JobEvent>,
}

impl JobLink {
    /// Connects and collects what the node sends until its reply to a `ListJobs` sent after the
    /// handshake: replay happens before the node reads requests, so it is all there by then.
    async fn connect(env: &NodeEnv, cursors: &[(&str, u64)]) -> anyhow::Result<Self> {
        let (tx, rx) = mpsc::channel(64);
        tx.send(v1::CenterMsg {
            kind: Some(center_msg::Kind::Hello(v1::Hello {
                min_version: proto::MIN_PROTOCOL_VERSION,
                max_version: proto::PROTOCOL_VERSION,
                center_version: "test".into(),
                cursors: Vec::new(),
                job_cursors: cursors
                    .iter()
                    .map(|(j, s)| v1::JobCursor {
                        job_id: (*j).to_owned(),
                        acked_seq: *s,
                    })
                    .collect(),
            })),
        })
        .await?;
        let addr = env.node.addr.to_string();
        let uri = if addr.starts_with("unix:") {
            addr
        } else {
            format!("http://{addr}")
        };
        let channel = tonic::transport::Endpoint::from_shared(uri)?
            .connect()
            .await
            .context("connecting to the node")?;
        let inbound = NodeLinkClient::new(channel)
            .attach(ReceiverStream::new(rx))
            .await?
            .into_inner();
        let mut link = Self {
            tx,
            inbound,
            next_id: 1,
            events: Vec::new(),
        };
        link.round_trip().await?;
        Ok(link)
    }

    /// Sends a `ListJobs` and collects job events until its reply.
    async fn round_trip(&mut self) -> anyhow::Result<()> {
        let id = self.next_id;
        self.next_id += 1;
        self.tx
            .send(v1::CenterMsg {
                kind: Some(center_msg::Kind::Request(v1::Request {
                    id,
                    op: Some(Op::ListJobs(v1::ListJobs {})),
                })),
            })
            .await?;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let msg = tokio::time::timeout_at(deadline, self.inbound.next())
                .await
                .context("no reply in time")?
                .context("link closed")??;
            match msg.kind {
                Some(node_msg::Kind::Refused(r)) => bail!("refused: {}", r.reason),
                Some(node_msg::Kind::Reply(r)) if r.reply_to == id => return Ok(()),
                Some(node_msg::Kind::JobEvent(e)) => self.events.push(e),
                _ => {}
            }
        }
    }

    fn seqs(&self, job: &str) -> Vec<u64> {
        self.events
            .iter()
            .filter(|e| e.job_id == job)
            .map(|e| e.seq)
            .collect()
    }

    /// Acks `seq` of `job`; returns once the node has handled it (a request sent after it was
    /// answered: the node handles a link's acks in order, before the requests that follow).
    async fn ack(&mut self, job: &str, seq: u64) -> anyhow::Result<()> {
        self.tx
            .send(v1::CenterMsg {
                kind: Some(center_msg::Kind::JobAck(v1::JobAck {
                    job_id: job.to_owned(),
                    seq,
                })),
            })
            .await?;
        self.round_trip().await
    }
}
