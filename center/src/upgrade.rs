//! Upgrading agent-nodes from the center: `/node upgrade <name|all>` in Telegram and
//! `center nodes upgrade <name|all> [--binary FILE]` on the center's machine. The center sends an
//! `agent-node` binary (by default the one next to its own executable, as `cargo build` and
//! `cargo install` leave them) over each node's link in chunks with its SHA-256 (`UpgradeNode`),
//! then waits for the node to come back and reports the version it now runs.
//!
//! Nodes are upgraded one at a time. A node that refuses (too old to know the request, a folder
//! it cannot write, the embedded node) is reported and the next one is tried; a node that took
//! the binary but does not come back stops the run, so a bad binary never takes down more than
//! one machine.

use std::{
    path::{Path, PathBuf},
    sync::Arc,
    time::{Duration, Instant},
};

use proto::v1::{self, reply::Result as R, request::Op};

use crate::{
    app::App,
    nodes::{CallError, LOCAL, NodeConn},
    operator::ControlAnswer,
    store::Surface,
};

/// Bytes per request (well under gRPC's 4 MB message limit).
const CHUNK: usize = 512 * 1024;
/// Time allowed per chunk.
const CHUNK_TIMEOUT: Duration = Duration::from_secs(30);
/// Time allowed for the last chunk: the node hashes the file and runs its `--version`.
const FINISH_TIMEOUT: Duration = Duration::from_secs(90);
/// How long a node may take to restart and reconnect.
const RETURN_TIMEOUT: Duration = Duration::from_secs(120);
/// The largest binary sent (the node's limit too).
const MAX_SIZE: u64 = 512 * 1024 * 1024;

/// Why an upgrade run cannot start: no binary to send, or no node to send it to (the text is
/// the answer to the operator).
#[derive(Debug, thiserror::Error)]
pub(crate) enum CannotUpgrade {
    #[error("cannot tell where the center's executable is ({0}); pass --binary")]
    NoExecutable(std::io::Error),
    #[error("the center's executable has no folder; pass --binary")]
    NoFolder,
    #[error(
        "cannot read {} ({source}); build it (`cargo build --release -p agent-node`) or pass --binary",
        .path.display()
    )]
    Missing {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{} is not a file", .0.display())]
    NotAFile(PathBuf),
    #[error("{} is too large for an agent-node ({} MB)", .path.display(), .size / 1_048_576)]
    TooLarge { path: PathBuf, size: u64 },
    #[error("cannot read {}: {source}", .path.display())]
    Unreadable {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{} is not an executable for Linux (no ELF header)", .0.display())]
    NotElf(PathBuf),
    /// `all` found no remote node.
    #[error(
        "there are no remote nodes to upgrade (the local node is part of the center; upgrade the center instead)"
    )]
    NoRemoteNodes,
}

/// An agent-node binary, read and hashed once for every node it goes to.
pub(crate) struct Binary {
    path: PathBuf,
    bytes: Vec<u8>,
    sha256: String,
}

impl Binary {
    /// The `agent-node` next to the running `center` executable.
    pub(crate) fn default_path() -> Result<PathBuf, CannotUpgrade> {
        let exe = std::env::current_exe().map_err(CannotUpgrade::NoExecutable)?;
        // After a rebuild the running executable reads as "<path> (deleted)": its folder is
        // still the right one.
        let dir = exe.parent().ok_or(CannotUpgrade::NoFolder)?;
        Ok(dir.join("agent-node"))
    }

    /// Reads the binary at `path` and checks that it can be one (a Linux executable).
    pub(crate) fn load(path: &Path) -> Result<Self, CannotUpgrade> {
        let meta = std::fs::metadata(path).map_err(|source| CannotUpgrade::Missing {
            path: path.to_owned(),
            source,
        })?;
        if !meta.is_file() {
            return Err(CannotUpgrade::NotAFile(path.to_owned()));
        }
        if meta.len() > MAX_SIZE {
            return Err(CannotUpgrade::TooLarge {
                path: path.to_owned(),
                size: meta.len(),
            });
        }
        let bytes = std::fs::read(path).map_err(|source| CannotUpgrade::Unreadable {
            path: path.to_owned(),
            source,
        })?;
        if !bytes.starts_with(b"\x7fELF") {
            return Err(CannotUpgrade::NotElf(path.to_owned()));
        }
        let sha256 = shared::digest::sha256_hex(&bytes);
        Ok(Self {
            path: path.to_owned(),
            bytes,
            sha256,
        })
    }

    /// One line about the binary: path, size and the start of its hash.
    pub(crate) fn describe(&self) -> String {
        format!(
            "{} ({:.1} MB, SHA-256 {})",
            self.path.display(),
            self.bytes.len() as f64 / 1_048_576.0,
            &self.sha256[..12]
        )
    }
}

/// The outcome of one node's upgrade.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Upgraded and back.
    Done(String),
    /// Not upgraded; the node keeps running what it ran.
    Refused(String),
    /// It took the binary but did not come back: stop upgrading others.
    Lost(String),
}

impl Outcome {
    fn line(&self) -> &str {
        match self {
            Self::Done(s) | Self::Refused(s) | Self::Lost(s) => s,
        }
    }
}

/// The nodes `target` names: one name, or `all` (every known node but the embedded one, which
/// is upgraded with the center). The second list is the nodes left out, with why.
pub(crate) fn targets(
    target: &str,
    known: &[(String, bool)],
) -> Result<(Vec<String>, Vec<String>), CannotUpgrade> {
    if target != "all" {
        return Ok((vec![target.to_owned()], Vec::new()));
    }
    let mut chosen = Vec::new();
    let mut skipped = Vec::new();
    for (name, online) in known {
        if name == LOCAL {
            continue;
        } else if *online {
            chosen.push(name.clone());
        } else {
            skipped.push(format!("⚪ {name} is offline: not upgraded"));
        }
    }
    if chosen.is_empty() && skipped.is_empty() {
        return Err(CannotUpgrade::NoRemoteNodes);
    }
    Ok((chosen, skipped))
}

/// What a node's refusal means for the user.
fn refusal(name: &str, version: &str, err: CallError) -> String {
    match err {
        // A node from before this request reads it as a request without an operation.
        CallError::Failed { message, .. } if message == "empty request" => format!(
            "✗ {name} runs agent-node {version}, which cannot be upgraded from the center (it does not know the upgrade request); replace its binary by hand once, later upgrades work from here"
        ),
        CallError::Failed { message, .. } => format!("✗ {name}: {message}"),
        CallError::Offline => format!("✗ {name} is offline: not upgraded"),
        CallError::Timeout => {
            format!(
                "✗ {name} did not answer in time; the upgrade was abandoned, nothing was replaced"
            )
        }
    }
}

impl App {
    /// Upgrades the nodes `target` names with the binary at `binary` (default: the one next to
    /// the center); `progress` hears each line as it happens. Returns whether every named node
    /// was upgraded.
    pub(crate) async fn upgrade_nodes(
        self: &Arc<Self>,
        target: &str,
        binary: Option<&Path>,
        progress: &(dyn Fn(&str) + Send + Sync),
    ) -> bool {
        let (names, skipped) = match targets(target, &self.known_nodes()) {
            Ok(t) => t,
            Err(why) => {
                progress(&format!("✗ {why}"));
                return false;
            }
        };
        let path = match binary.map_or_else(Binary::default_path, |p| Ok(p.to_owned())) {
            Ok(p) => p,
            Err(why) => {
                progress(&format!("✗ {why}"));
                return false;
            }
        };
        let bin = match tokio::task::spawn_blocking(move || Binary::load(&path)).await {
            Ok(Ok(b)) => b,
            Ok(Err(why)) => {
                progress(&format!("✗ {why}"));
                return false;
            }
            Err(e) => {
                progress(&format!("✗ {e}"));
                return false;
            }
        };
        progress(&format!(
            "⏳ Upgrading {} with {}",
            names.join(", "),
            bin.describe()
        ));
        let mut ok = skipped.is_empty();
        for line in &skipped {
            progress(line);
        }
        for (i, name) in names.iter().enumerate() {
            let outcome = self.upgrade_one(name, &bin).await;
            progress(outcome.line());
            match outcome {
                Outcome::Done(_) => {}
                Outcome::Refused(_) => ok = false,
                Outcome::Lost(_) => {
                    if i + 1 < names.len() {
                        progress(&format!(
                            "Stopped: {} not touched.",
                            names[i + 1..].join(", ")
                        ));
                    }
                    return false;
                }
            }
        }
        ok
    }

    /// Sends `bin` to node `name` and waits for it to come back.
    async fn upgrade_one(&self, name: &str, bin: &Binary) -> Outcome {
        let Some(conn) = self.node(name).filter(|c| c.online()) else {
            let known = self.known_nodes().iter().any(|(n, _)| n == name);
            return Outcome::Refused(if known {
                format!("✗ {name} is offline: not upgraded")
            } else {
                format!("✗ there is no node {name}")
            });
        };
        let before = conn.version();
        let started = Instant::now();
        let upgraded = match send(&conn, bin).await {
            Ok(u) => u,
            // The link failed mid-transfer: the last request (check and install) may have
            // gone through, so the node may be restarting on the new binary. Not knowing is
            // no "nothing replaced": stop, as for a node that does not come back.
            Err(CallError::Timeout | CallError::Offline) => {
                return Outcome::Lost(format!(
                    "✗ {name} stopped answering during the upgrade; it may be running the new binary or the old one — check /nodes before upgrading the others"
                ));
            }
            Err(err) => return Outcome::Refused(refusal(name, &before, err)),
        };
        tracing::info!(node = %name, new_version = %upgraded.new_version, restart = %upgraded.restart, "node took the new binary");
        let back = tokio::time::timeout(RETURN_TIMEOUT, async {
            loop {
                if let Some(c) = self.node(name)
                    && !Arc::ptr_eq(&c, &conn)
                    && c.online()
                {
                    break c.version();
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        })
        .await;
        match back {
            Ok(after) => {
                let same = if after == before {
                    " (the build it ran before)"
                } else {
                    ""
                };
                Outcome::Done(format!(
                    "✅ {name} upgraded: {before} → {after}{same}; back online after {:.0} s",
                    started.elapsed().as_secs_f64()
                ))
            }
            Err(_) => Outcome::Lost(format!(
                "⚠️ {name} took the new binary ({}) and restarted ({}), but has not come back within {} s; look at its log (journalctl --user -u agent-node)",
                upgraded.new_version,
                upgraded.restart,
                RETURN_TIMEOUT.as_secs()
            )),
        }
    }

    /// `/node upgrade <name|all>`: runs in the background, each line a message in the topic.
    pub(crate) fn upgrade_from_chat(self: &Arc<Self>, surface: Surface, target: &str, msg_id: i32) {
        let app = self.clone();
        let target = target.to_owned();
        tokio::spawn(async move {
            let say = |line: &str| app.notice(surface, line, Some(msg_id));
            app.upgrade_nodes(&target, None, &say).await;
        });
    }

    /// `center nodes upgrade`: every line in one answer.
    pub(crate) async fn upgrade_from_control(
        self: &Arc<Self>,
        target: &str,
        binary: &str,
    ) -> ControlAnswer {
        let lines = std::sync::Mutex::new(Vec::<String>::new());
        let collect = |line: &str| {
            shared::sync::LockExt::locked(&lines).push(line.to_owned());
        };
        let binary = (!binary.is_empty()).then(|| PathBuf::from(binary));
        let ok = self
            .upgrade_nodes(target, binary.as_deref(), &collect)
            .await;
        let message = shared::sync::LockExt::locked(&lines).join("\n");
        if ok {
            ControlAnswer::ok(message)
        } else {
            ControlAnswer::fail(message)
        }
    }
}

/// Sends the binary in chunks; the last one's reply says how the node restarts.
async fn send(conn: &NodeConn, bin: &Binary) -> Result<v1::NodeUpgraded, CallError> {
    let upload_id = shared::random::hex_token::<8>();
    let total = bin.bytes.len() as u64;
    let chunks: Vec<&[u8]> = bin.bytes.chunks(CHUNK).collect();
    let last = chunks.len().saturating_sub(1);
    let mut offset = 0u64;
    for (i, data) in chunks.into_iter().enumerate() {
        let finish = i == last;
        let op = Op::UpgradeNode(v1::UpgradeNode {
            upload_id: upload_id.clone(),
            offset,
            data: data.to_vec(),
            total_size: total,
            sha256: bin.sha256.clone(),
            finish,
        });
        let timeout = if finish {
            FINISH_TIMEOUT
        } else {
            CHUNK_TIMEOUT
        };
        match conn.call(op, timeout).await? {
            R::NodeUpgraded(u) if finish => return Ok(u),
            R::Done(_) if !finish => {}
            other => {
                return Err(CallError::Failed {
                    code: v1::ErrorCode::Internal,
                    message: format!("unexpected reply to an upgrade chunk: {other:?}"),
                });
            }
        }
        offset += data.len() as u64;
    }
    Err(CallError::Failed {
        code: v1::ErrorCode::Internal,
        message: "the binary is empty".into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upgrade_all_means_every_remote_node_and_says_which_are_offline() {
        let known = vec![
            ("local".to_owned(), true),
            ("vps1".to_owned(), true),
            ("vps2".to_owned(), false),
        ];
        let (names, skipped) = targets("all", &known).unwrap();
        assert_eq!(names, vec!["vps1"]);
        assert_eq!(skipped, vec!["⚪ vps2 is offline: not upgraded"]);
        assert_eq!(targets("vps2", &known).unwrap().0, vec!["vps2"]);
        // The embedded node is named explicitly only to hear why not.
        assert_eq!(targets("local", &known).unwrap().0, vec!["local"]);
        let err = targets("all", &known[..1]).unwrap_err().to_string();
        assert!(err.contains("upgrade the center instead"), "{err}");
    }

    #[test]
    fn upgrade_refusals_read_clearly() {
        let old = refusal(
            "vps1",
            "0.1.0",
            CallError::Failed {
                code: v1::ErrorCode::InvalidArgument,
                message: "empty request".into(),
            },
        );
        assert!(old.contains("vps1 runs agent-node 0.1.0"), "{old}");
        assert!(old.contains("replace its binary by hand once"), "{old}");
        let other = refusal(
            "vps1",
            "0.1.0",
            CallError::Failed {
                code: v1::ErrorCode::Unavailable,
                message: "cannot write to /usr/bin".into(),
            },
        );
        assert_eq!(other, "✗ vps1: cannot write to /usr/bin");
        assert!(refusal("vps1", "", CallError::Timeout).contains("nothing was replaced"));
    }

    #[test]
    fn upgrade_binaries_must_be_linux_executables() {
        let dir = tempfile::tempdir().unwrap();
        let text = dir.path().join("agent-node");
        std::fs::write(&text, b"#!/bin/sh\necho hi\n").unwrap();
        let err = Binary::load(&text).err().unwrap().to_string();
        assert!(err.contains("no ELF header"), "{err}");
        let err = Binary::load(&dir.path().join("missing"))
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("cargo build --release -p agent-node"), "{err}");
        let elf = dir.path().join("elf");
        std::fs::write(&elf, b"\x7fELF and the rest").unwrap();
        let bin = Binary::load(&elf).unwrap();
        assert_eq!(
            bin.sha256,
            shared::digest::sha256_hex(b"\x7fELF and the rest")
        );
        assert!(
            bin.describe().contains(&bin.sha256[..12]),
            "{}",
            bin.describe()
        );
    }
}
