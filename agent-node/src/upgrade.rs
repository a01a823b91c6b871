//! Upgrading the `agent-node` binary from the center (`UpgradeNode`, see `link.proto`): the new
//! binary arrives in chunks ([`stage`] keeps them in a temp file next to the executable), is
//! checked (size, SHA-256, and that it runs here as an agent-node), renamed over the executable,
//! and the process restarts: it re-executes itself with the same arguments, or — under systemd
//! (`INVOCATION_ID` set) — exits with status 75 so that systemd starts the new binary
//! (`Restart=on-failure`). tmux windows live in their own server and jobs are adopted again at
//! start, so neither notices more than a reconnect.
//!
//! Only the `agent-node` binary can be upgraded this way: it calls [`enable`] at start, recording
//! its executable and arguments. That is a fact about the process, not about a [`Node`] (the
//! center embeds a node in its own process, whose executable is the center), hence a process-wide
//! value here; a node in a process that never called [`enable`] refuses.

mod stage;

use std::{
    ffi::OsString,
    path::PathBuf,
    sync::{
        OnceLock,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use proto::v1::{self, reply::Result as R};

use crate::{error::NodeError, node::Node};

/// What an embedded node answers.
pub const EMBEDDED: &str = "the local node is part of the center; upgrade the center instead";
/// Exit status asking systemd for a restart (EX_TEMPFAIL; the unit has `Restart=on-failure`).
pub const RESTART_EXIT_STATUS: i32 = 75;
/// Time for the reply to reach the center before the link goes down.
const REPLY_GRACE: Duration = Duration::from_millis(500);
/// If serving has not wound down this long after the restart was asked for, restart anyway.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
/// Time allowed for the new binary's `--version`.
const VERSION_TIMEOUT: Duration = Duration::from_secs(20);

/// This process's executable, recorded by [`enable`].
struct SelfExe {
    path: PathBuf,
    arg0: OsString,
    args: Vec<OsString>,
    version: String,
}

static SELF_EXE: OnceLock<SelfExe> = OnceLock::new();
static RESTART: AtomicBool = AtomicBool::new(false);
/// [`enable`] was called (whether or not it could read the executable).
static STANDALONE: AtomicBool = AtomicBool::new(false);

/// Lets the center replace this process's executable (the `agent-node` binary calls it before
/// serving). Also names the build: [`node_version`] becomes `<version>+<first 12 hex digits of
/// the executable's SHA-256>`, so `/nodes` tells two builds of one version apart.
pub fn enable() -> std::io::Result<()> {
    STANDALONE.store(true, Ordering::SeqCst);
    let path = std::env::current_exe()?;
    let (_, sha) = shared::digest::sha256_file(&path)?;
    let mut argv = std::env::args_os();
    let arg0 = argv.next().unwrap_or_else(|| path.clone().into_os_string());
    let me = SelfExe {
        version: format!("{}+{}", env!("CARGO_PKG_VERSION"), &sha[..12]),
        path,
        arg0,
        args: argv.collect(),
    };
    tracing::info!(exe = %me.path.display(), version = %me.version, "self-upgrade enabled");
    let _ = SELF_EXE.set(me);
    Ok(())
}

/// This node's software version as reported to the center (`Welcome`, heartbeats).
pub fn node_version() -> String {
    SELF_EXE.get().map_or_else(
        || env!("CARGO_PKG_VERSION").to_owned(),
        |me| me.version.clone(),
    )
}

/// Whether a restart under systemd is an exit rather than a re-exec.
fn under_systemd() -> bool {
    std::env::var_os("INVOCATION_ID").is_some_and(|v| !v.is_empty())
}

/// The binary calls this once serving has stopped: if an upgrade asked for a restart, the process
/// restarts here (and this does not return); otherwise it returns at once.
pub fn restart_if_requested() {
    if RESTART.load(Ordering::SeqCst) {
        restart();
    }
}

/// Re-executes the (new) executable with the original arguments, or exits for systemd.
fn restart() -> ! {
    use std::os::unix::process::CommandExt;
    if under_systemd() {
        tracing::info!("upgraded: exiting for systemd to start the new binary");
        std::process::exit(RESTART_EXIT_STATUS);
    }
    let Some(me) = SELF_EXE.get() else {
        std::process::exit(RESTART_EXIT_STATUS);
    };
    tracing::info!(exe = %me.path.display(), "upgraded: executing the new binary");
    // Same path, same arguments, same environment; every descriptor we opened is close-on-exec.
    let err = std::process::Command::new(&me.path)
        .arg0(&me.arg0)
        .args(&me.args)
        .exec();
    tracing::error!(error = %err, exe = %me.path.display(), "cannot execute the new binary");
    std::process::exit(1);
}

impl From<stage::Error> for NodeError {
    fn from(err: stage::Error) -> Self {
        use stage::Error as E;
        match err {
            E::NotWritable { .. } => Self::Unavailable(err.to_string()),
            E::InProgress => Self::AlreadyExists(err.to_string()),
            E::Io { .. } => Self::Internal(err.to_string()),
            E::BadRequest(_)
            | E::NoUpload(_)
            | E::OutOfOrder { .. }
            | E::SizeMismatch { .. }
            | E::HashMismatch { .. } => Self::InvalidArgument(err.to_string()),
        }
    }
}

impl Node {
    /// One chunk of an upgrade (`UpgradeNode`): stored, or — the last one — verified, installed
    /// and followed by a restart.
    pub(crate) async fn upgrade(&self, req: v1::UpgradeNode) -> Result<R, NodeError> {
        let Some(me) = SELF_EXE.get() else {
            if STANDALONE.load(Ordering::SeqCst) {
                return Err(NodeError::Unavailable(
                    "this agent-node could not read its own executable when it started (see its log), so it cannot replace it; replace the binary by hand".into(),
                ));
            }
            return Err(NodeError::Unavailable(EMBEDDED.into()));
        };
        if RESTART.load(Ordering::SeqCst) {
            return Err(NodeError::Unavailable(
                "this node is restarting after an upgrade; try again when it is back".into(),
            ));
        }
        if req.finish && !shared::digest::is_sha256_hex(&req.sha256) {
            return Err(NodeError::InvalidArgument(
                "the upgrade names no SHA-256 of the binary".into(),
            ));
        }
        let exe = me.path.clone();
        let v1::UpgradeNode {
            upload_id,
            offset,
            data,
            total_size,
            sha256,
            finish,
        } = req;
        let id = upload_id.clone();
        on_staging(&exe, move |s| s.write(&id, offset, &data, total_size)).await?;
        if !finish {
            return Ok(R::Done(v1::Done {}));
        }
        let id = upload_id.clone();
        let temp = on_staging(&exe, move |s| s.verify(&id, total_size, &sha256)).await?;
        let new_version = match runs_here(&temp).await {
            Ok(v) => v,
            Err(why) => {
                stage::Staging::new(&exe).discard(&upload_id);
                return Err(NodeError::InvalidArgument(format!(
                    "the new binary does not run on this machine ({why}); nothing was replaced, the node keeps running its current version"
                )));
            }
        };
        on_staging(&exe, move |s| s.install(&temp)).await?;
        let restart = if under_systemd() {
            "systemd"
        } else {
            "re-exec"
        };
        tracing::info!(exe = %exe.display(), new_version, restart, "agent-node binary replaced");
        self.restart_soon();
        Ok(R::NodeUpgraded(v1::NodeUpgraded {
            previous_version: me.version.clone(),
            new_version,
            path: exe.to_string_lossy().into_owned(),
            restart: restart.into(),
        }))
    }

    /// After the reply had time to leave: saves the window registry, stops serving (the binary
    /// then calls [`restart_if_requested`]), and restarts anyway if that takes too long.
    fn restart_soon(&self) {
        let node = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(REPLY_GRACE).await;
            node.inner.windows.save();
            RESTART.store(true, Ordering::SeqCst);
            node.inner.token.cancel();
            tokio::time::sleep(SHUTDOWN_GRACE).await;
            tracing::warn!("serving did not stop in time; restarting anyway");
            restart();
        });
    }
}

/// Runs `f` on the staging area of `exe` on a blocking thread.
async fn on_staging<T: Send + 'static>(
    exe: &std::path::Path,
    f: impl FnOnce(&stage::Staging) -> Result<T, stage::Error> + Send + 'static,
) -> Result<T, NodeError> {
    let staging = stage::Staging::new(exe);
    tokio::task::spawn_blocking(move || f(&staging))
        .await
        .map_err(|e| NodeError::Internal(e.to_string()))?
        .map_err(NodeError::from)
}

/// Why a received binary is not taken as this machine's agent-node.
#[derive(Debug, thiserror::Error)]
enum DoesNotRun {
    #[error("`--version` did not finish in time")]
    Hangs,
    #[error("cannot start it: {0}")]
    Start(std::io::Error),
    #[error("`--version` said {0:?}, not agent-node's version")]
    NotAnAgentNode(String),
}

/// Runs `path --version` and returns what it printed, if it looks like an agent-node.
async fn runs_here(path: &std::path::Path) -> Result<String, DoesNotRun> {
    let mut attempt = 0;
    let out = loop {
        let run = tokio::process::Command::new(path)
            .arg("--version")
            .env_clear()
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true)
            .output();
        match tokio::time::timeout(VERSION_TIMEOUT, run).await {
            Err(_) => return Err(DoesNotRun::Hangs),
            // Another thread's fork may briefly hold the file we just wrote (ETXTBSY).
            Ok(Err(e)) if e.raw_os_error() == Some(26) && attempt < 10 => {
                attempt += 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Ok(Err(e)) => return Err(DoesNotRun::Start(e)),
            Ok(Ok(out)) => break out,
        }
    };
    let printed = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    if !out.status.success() || !printed.starts_with("agent-node ") {
        let said = if printed.is_empty() {
            String::from_utf8_lossy(&out.stderr).trim().to_owned()
        } else {
            printed
        };
        return Err(DoesNotRun::NotAnAgentNode(said.chars().take(120).collect()));
    }
    Ok(printed)
}
