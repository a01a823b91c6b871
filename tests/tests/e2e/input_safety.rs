//! Nothing typed or pressed through the node may answer a question the user did not see, and
//! typing stays correct once Enter follows the paste as soon as Codex shows the text. Real
//! agent-node, real tmux, real Codex (paste-burst detection on) against the fake model.
//!
//! - A key for a question that is no longer on screen is refused as stale; the question's own
//!   id works.
//! - A question that comes up between the paste and the Enter gets no Enter: the send is
//!   Blocked, the command is not approved, and the typed text does not reach Codex then or
//!   later (glued to the next message), and once the question is answered the next message
//!   goes through.
//! - Ordinary messages, multi-line and long ones too, are still confirmed.

use std::path::PathBuf;

use e2e::{
    codex::{CodexHome, codex_bin},
    fake_model::FakeModel,
    node_client::{NodeClient, final_answer, terminal_of},
    node_proc::{NodeOptions, NodeProcess, TmuxSandbox},
};
use proto::v1::{self, reply::Result as R, request::Op};

use crate::support::{NodeEnv, TURN, assert_confirmed};

/// Sends a key for the question `expect_prompt` (empty: for no question in particular).
async fn key_for(client: &NodeClient, sid: &str, choice: &str, expect_prompt: &str) -> R {
    client
        .request(Op::SendKey(v1::SendKey {
            session_id: sid.to_owned(),
            key: Some(v1::send_key::Key::Choice(choice.to_owned())),
            expect_prompt: expect_prompt.to_owned(),
        }))
        .await
        .unwrap()
}

/// Waits for the question `session` shows (a Prompt state with choices).
async fn question(client: &mut NodeClient, sid: &str) -> v1::TerminalState {
    client
        .wait_for("a question", 0, TURN, |m| {
            terminal_of(m, sid)
                .filter(|t| t.state() == v1::ScreenState::Prompt && !t.choices.is_empty())
                .cloned()
        })
        .await
        .unwrap()
        .0
}

/// Outputs of tool calls the model received (a command that ran reports its exit code).
fn tool_outputs(model: &FakeModel) -> Vec<String> {
    model
        .requests()
        .iter()
        .flat_map(|r| r.body["input"].as_array().cloned().unwrap_or_default())
        .filter(|i| i["type"] == "function_call_output")
        .map(|i| i["output"].to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_for_a_question_no_longer_shown_presses_nothing() {
    let mut env = NodeEnv::start("stalekey", true).await.unwrap();
    let sid = env.create(&env.project.clone()).await.unwrap().session_id;
    assert_confirmed(&env.send(&sid, "approve: touch stale.txt").await.unwrap());
    let shown = question(&mut env.client, &sid).await;
    assert!(shown.prompt_text.contains("touch stale.txt"), "{shown:?}");
    assert_eq!(
        shown.prompt_id,
        shared::prompt::prompt_id(&shown.prompt_text)
    );

    // A button of another (older) question: nothing is pressed.
    match key_for(&env.client, &sid, "1", "0badc0de").await {
        R::Failure(f) => {
            assert_eq!(f.code(), v1::ErrorCode::Stale, "{f:?}");
            assert_eq!(
                f.message,
                "This question is no longer on screen; nothing was pressed."
            );
        }
        other => panic!("a stale key was pressed: {other:?}"),
    }
    let screen = env.capture(&sid).await.unwrap();
    assert!(screen.contains("Would you like to run"), "{screen}");
    assert!(!env.project.join("stale.txt").exists());

    // The question's own button works (which it could not if the stale one had answered it).
    let reply = key_for(&env.client, &sid, "1", &shown.prompt_id).await;
    assert!(matches!(reply, R::Done(_)), "{reply:?}");
    let (answer, _) = env
        .client
        .wait_for("final answer", 0, TURN, |m| final_answer(m, &sid))
        .await
        .unwrap();
    assert!(answer.contains("touch stale.txt"), "{answer}");

    // Once answered, the same button is stale too.
    match key_for(&env.client, &sid, "1", &shown.prompt_id).await {
        R::Failure(f) => assert_eq!(f.code(), v1::ErrorCode::Stale, "{f:?}"),
        other => panic!("a key for an answered question was pressed: {other:?}"),
    }
}

/// A node whose floor between paste and Enter is `floor_ms`: a wide gap in which a question
/// can come up, for the test below.
struct SlowTyping {
    model: FakeModel,
    _codex: CodexHome,
    _root: tempfile::TempDir,
    project: PathBuf,
    _state: tempfile::TempDir,
    _tmux: TmuxSandbox,
    _node: NodeProcess,
    client: NodeClient,
}

impl SlowTyping {
    async fn start(label: &str, floor_ms: u64) -> anyhow::Result<Self> {
        let model = FakeModel::start().await?;
        let root = tempfile::tempdir()?;
        std::fs::create_dir_all(root.path().join("project"))?;
        let project = root.path().join("project").canonicalize()?;
        let codex = CodexHome::builder(&model.base_url())
            .trust(&project)
            .paste_burst(true)
            .build()?;
        let state = tempfile::tempdir()?;
        let tmux = TmuxSandbox::new(label);
        let mut env = codex.env();
        env.push((
            "CODEX_FLEET_PASTE_DELAY_MS".to_owned(),
            floor_ms.to_string(),
        ));
        let opts = NodeOptions {
            state_dir: state.path().to_owned(),
            codex_home: codex.path().to_owned(),
            tmux_socket: tmux.socket.clone(),
            codex_command: codex_bin()?.display().to_string(),
            roots: vec![format!("test={}", root.path().canonicalize()?.display())],
            env,
            port: 0,
        };
        let node = NodeProcess::start(&opts).await?;
        let client = NodeClient::connect(&node.addr, &[]).await?;
        Ok(Self {
            model,
            _codex: codex,
            _root: root,
            project,
            _state: state,
            _tmux: tmux,
            _node: node,
            client,
        })
    }

    async fn send(&self, sid: &str, text: &str) -> R {
        self.client
            .request(Op::SendInput(v1::SendInput {
                session_id: sid.to_owned(),
                text: text.to_owned(),
                mode: v1::InputMode::Steer as i32,
            }))
            .await
            .unwrap()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_question_that_comes_up_while_typing_gets_no_enter() {
    // 4 s between paste and Enter: the approval the first message asks for comes up while the
    // second message waits for its Enter (or, on a slow host, before it is pasted; both must
    // end the same way).
    let mut env = SlowTyping::start("typedprompt", 4000).await.unwrap();
    let created = env
        .client
        .request(Op::CreateSession(v1::CreateSession {
            cwd: env.project.display().to_string(),
            resume_id: String::new(),
            idempotency_key: String::new(),
            ..Default::default()
        }))
        .await
        .unwrap();
    let R::Created(created) = created else {
        panic!("{created:?}");
    };
    let sid = created.session.unwrap().session_id;
    assert_confirmed(&env.send(&sid, "approve: touch never.txt").await);

    let typed = "echo: typed while the question came up";
    match env.send(&sid, typed).await {
        R::Failure(f) => {
            assert_eq!(f.code(), v1::ErrorCode::Blocked, "{f:?}");
            assert!(f.message.contains("Would you like to run"), "{f:?}");
        }
        other => panic!("input went through while a question was up: {other:?}"),
    }
    // The approval was not given: the question is still there, the command did not run.
    let shown = question(&mut env.client, &sid).await;
    assert!(shown.prompt_text.contains("touch never.txt"), "{shown:?}");
    let screen = capture(&env.client, &sid).await;
    assert!(screen.contains("Would you like to run"), "{screen}");
    assert!(!env.project.join("never.txt").exists());
    assert!(
        tool_outputs(&env.model).is_empty(),
        "{:?}",
        tool_outputs(&env.model)
    );

    // The user says no; the next message reaches Codex alone (the text typed under the
    // question was taken out of the composer, not glued to it or sent later).
    let reply = key_for(&env.client, &sid, "3", &shown.prompt_id).await;
    assert!(matches!(reply, R::Done(_)), "{reply:?}");
    // Done means the answer was taken: the question is off the screen already.
    let screen = capture(&env.client, &sid).await;
    assert!(!screen.contains("Would you like to run"), "{screen}");
    let after = "echo: after the question";
    // The aborted turn may still be closing; Busy is fine (it steers), a question is not.
    assert_confirmed(&env.send(&sid, after).await);
    let (answer, _) = env
        .client
        .wait_for("the answer after the question", 0, TURN, |m| {
            final_answer(m, &sid).filter(|a| a == "after the question")
        })
        .await
        .unwrap();
    assert_eq!(answer, "after the question");
    assert_eq!(env.model.times_typed(typed), 0);
    assert_eq!(env.model.times_typed(after), 1);
    assert!(!env.project.join("never.txt").exists());
    assert!(
        tool_outputs(&env.model)
            .iter()
            .all(|o| !o.contains("Process exited")),
        "{:?}",
        tool_outputs(&env.model)
    );
}

async fn capture(client: &NodeClient, sid: &str) -> String {
    match client
        .request(Op::CapturePane(v1::CapturePane {
            session_id: sid.to_owned(),
            ansi: false,
        }))
        .await
        .unwrap()
    {
        R::Capture(c) => c.text,
        other => panic!("capture failed: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typed_messages_are_confirmed_one_line_multi_line_and_long() {
    // The node's default floor (Enter as soon as Codex shows the text), paste-burst on.
    let mut env = NodeEnv::start("typing", true).await.unwrap();
    let sid = env.create(&env.project.clone()).await.unwrap().session_id;
    let long = format!("echo: {}", "0123456789 ".repeat(150).trim_end());
    let texts = [
        "echo: one line".to_owned(),
        "echo: first line\nsecond line\n\nfourth line".to_owned(),
        long,
        // What an attachment becomes: the caption, a blank line, a bullet with a long path.
        "echo: stored\n\n• /tmp/.tmpRYxbw5/state/inbox/sa5f8e48230851cfb/data.bin (document, 1.2 MB)"
            .to_owned(),
    ];
    let mut from = 0;
    for text in &texts {
        assert_confirmed(&env.send(&sid, text).await.unwrap());
        let expected = text.trim_start_matches("echo:").trim().to_owned();
        let (_, at) = env
            .client
            .wait_for("its answer", from, TURN, |m| {
                final_answer(m, &sid).filter(|a| *a == expected)
            })
            .await
            .unwrap();
        from = at + 1;
        assert_eq!(env.model.times_typed(text), 1, "{text:?}");
    }
}
