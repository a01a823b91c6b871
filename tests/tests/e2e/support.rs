//! A node under test with everything it needs: the fake model, a CODEX_HOME, a project folder
//! inside a root, a private tmux server, the agent-node process and a client on it.

use std::{path::PathBuf, time::Duration};

use e2e::{
    codex::{CodexHome, codex_bin},
    fake_model::FakeModel,
    node_client::NodeClient,
    node_proc::{NodeOptions, NodeProcess, TmuxSandbox},
};
use proto::v1::{self, reply::Result as R, request::Op};

pub(crate) const TURN: Duration = Duration::from_secs(60);

pub(crate) struct NodeEnv {
    pub(crate) model: FakeModel,
    _codex: CodexHome,
    pub(crate) root: tempfile::TempDir,
    pub(crate) project: PathBuf,
    _state: tempfile::TempDir,
    pub(crate) tmux: TmuxSandbox,
    pub(crate) node: NodeProcess,
    pub(crate) client: NodeClient,
    opts: NodeOptions,
}

impl NodeEnv {
    pub(crate) async fn start(label: &str, paste_burst: bool) -> anyhow::Result<Self> {
        let model = FakeModel::start().await?;
        let root = tempfile::tempdir()?;
        let project = root.path().join("project").canonicalize().or_else(|_| {
            std::fs::create_dir_all(root.path().join("project"))?;
            root.path().join("project").canonicalize()
        })?;
        let codex = CodexHome::builder(&model.base_url())
            .trust(&project)
            .paste_burst(paste_burst)
            .build()?;
        let state = tempfile::tempdir()?;
        let tmux = TmuxSandbox::new(label);
        let opts = NodeOptions {
            state_dir: state.path().to_owned(),
            codex_home: codex.path().to_owned(),
            tmux_socket: tmux.socket.clone(),
            codex_command: codex_bin()?.display().to_string(),
            roots: vec![format!("test={}", root.path().canonicalize()?.display())],
            env: codex.env(),
            port: 0,
        };
        let node = NodeProcess::start(&opts).await?;
        let client = NodeClient::connect(&node.addr, &[]).await?;
        Ok(Self {
            model,
            _codex: codex,
            root,
            project,
            _state: state,
            tmux,
            node,
            client,
            opts,
        })
    }

    /// Kills the node (SIGKILL) and starts it again on the same port and state.
    pub(crate) async fn restart_node(&mut self) -> anyhow::Result<()> {
        self.node.kill().await?;
        self.opts.port = self.node.addr.port();
        self.node = NodeProcess::start(&self.opts).await?;
        Ok(())
    }

    pub(crate) async fn create(&self, cwd: &std::path::Path) -> anyhow::Result<v1::SessionInfo> {
        match self
            .client
            .request(Op::CreateSession(v1::CreateSession {
                cwd: cwd.display().to_string(),
                resume_id: String::new(),
                idempotency_key: String::new(),
                ..Default::default()
            }))
            .await?
        {
            R::Created(c) => Ok(c.session.expect("session info")),
            other => anyhow::bail!("create failed: {other:?}"),
        }
    }

    pub(crate) async fn send(&self, session: &str, text: &str) -> anyhow::Result<R> {
        self.client
            .request(Op::SendInput(v1::SendInput {
                session_id: session.to_owned(),
                text: text.to_owned(),
                mode: v1::InputMode::Steer as i32,
            }))
            .await
    }

    pub(crate) async fn key(&self, session: &str, key: v1::NamedKey) -> anyhow::Result<R> {
        self.client
            .request(Op::SendKey(v1::SendKey {
                session_id: session.to_owned(),
                key: Some(v1::send_key::Key::Named(key as i32)),
                expect_prompt: String::new(),
            }))
            .await
    }

    pub(crate) async fn capture(&self, session: &str) -> anyhow::Result<String> {
        match self
            .client
            .request(Op::CapturePane(v1::CapturePane {
                session_id: session.to_owned(),
                ansi: false,
            }))
            .await?
        {
            R::Capture(c) => Ok(c.text),
            other => anyhow::bail!("capture failed: {other:?}"),
        }
    }
}

/// Asserts the reply says the input was confirmed by the transcript.
pub(crate) fn assert_confirmed(reply: &R) {
    match reply {
        R::Input(i) => assert_eq!(
            i.outcome(),
            v1::InputOutcome::Confirmed,
            "input not confirmed: {i:?}"
        ),
        other => panic!("input failed: {other:?}"),
    }
}
