//! Read-only Codex commands the center may ask a node for (`/mcp`, and the feature list that
//! checks `/experimental` before a job starts): run with the windows' program and environment,
//! never through a shell, bounded in time and output.

use std::{process::Stdio, time::Duration};

use proto::v1;

use crate::error::NodeError;

/// The longest a Codex info command may take.
const TIMEOUT: Duration = Duration::from_secs(20);
/// The most output passed back.
const MAX_OUTPUT: usize = 8_000;

/// The arguments for `req`, or why it is refused.
pub(super) fn args(req: &v1::CodexInfo) -> Result<Vec<String>, NodeError> {
    let words: Vec<&str> = match req.kind() {
        v1::CodexInfoKind::McpList => vec!["mcp", "list"],
        v1::CodexInfoKind::McpGet => {
            let ok = (1..=64).contains(&req.name.len())
                && !req.name.starts_with('-')
                && req
                    .name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
            if !ok {
                return Err(NodeError::InvalidArgument(format!(
                    "{:?} is not an MCP server name",
                    req.name
                )));
            }
            vec!["mcp", "get", &req.name]
        }
        v1::CodexInfoKind::FeaturesList => vec!["features", "list"],
        v1::CodexInfoKind::Unspecified => {
            return Err(NodeError::InvalidArgument(
                "no Codex command asked for".into(),
            ));
        }
    };
    Ok(words.into_iter().map(str::to_owned).collect())
}

/// Runs `program args…` and returns what it printed.
pub(super) async fn run(
    program: &str,
    args: &[String],
    env: &[(String, String)],
) -> Result<v1::CodexInfoResult, NodeError> {
    #[allow(
        clippy::disallowed_methods,
        reason = "a fixed Codex subcommand with checked arguments, no shell"
    )]
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(args)
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let out = match tokio::time::timeout(TIMEOUT, cmd.output()).await {
        Ok(Ok(out)) => out,
        Ok(Err(err)) => {
            return Err(NodeError::Unavailable(format!(
                "cannot run {program}: {err}"
            )));
        }
        Err(_) => {
            return Err(NodeError::Unavailable(format!(
                "`{program} {}` did not finish within {} s",
                args.join(" "),
                TIMEOUT.as_secs()
            )));
        }
    };
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    let err = String::from_utf8_lossy(&out.stderr);
    if !err.trim().is_empty() {
        if !text.is_empty() && !text.ends_with('\n') {
            text.push('\n');
        }
        text.push_str(&err);
    }
    Ok(v1::CodexInfoResult {
        ok: out.status.success(),
        output: bounded(&strip_ansi(&text)),
    })
}

/// Text without terminal escape sequences (CSI and OSC).
fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\u{1b}' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('[') => {
                for c in chars.by_ref() {
                    if ('@'..='~').contains(&c) {
                        break;
                    }
                }
            }
            Some(']') => {
                while let Some(c) = chars.next() {
                    if c == '\u{7}' || (c == '\u{1b}' && chars.peek() == Some(&'\\')) {
                        if c == '\u{1b}' {
                            chars.next();
                        }
                        break;
                    }
                }
            }
            _ => {}
        }
    }
    out
}

fn bounded(text: &str) -> String {
    if text.len() <= MAX_OUTPUT {
        return text.to_owned();
    }
    let mut cut = MAX_OUTPUT;
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}\n…", &text[..cut])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(kind: v1::CodexInfoKind, name: &str) -> v1::CodexInfo {
        v1::CodexInfo {
            kind: kind as i32,
            name: name.into(),
        }
    }

    #[test]
    fn only_known_commands_with_plain_names_run() {
        assert_eq!(
            args(&info(v1::CodexInfoKind::McpGet, "docs-server")).unwrap(),
            ["mcp", "get", "docs-server"]
        );
        assert_eq!(
            args(&info(v1::CodexInfoKind::FeaturesList, "")).unwrap(),
            ["features", "list"]
        );
        for bad in ["", "--help", "a b", "x;rm"] {
            assert!(
                args(&info(v1::CodexInfoKind::McpGet, bad)).is_err(),
                "{bad}"
            );
        }
        assert!(args(&info(v1::CodexInfoKind::Unspecified, "")).is_err());
    }

    #[test]
    fn colours_are_stripped_and_output_bounded() {
        assert_eq!(strip_ansi("\u{1b}[1;32mok\u{1b}[0m done"), "ok done");
        assert_eq!(strip_ansi("\u{1b}]8;;http://x\u{1b}\\link"), "link");
        let long = "é".repeat(MAX_OUTPUT);
        assert!(bounded(&long).len() <= MAX_OUTPUT + 4);
    }

    #[tokio::test]
    async fn a_command_runs_without_a_shell() {
        let r = run("echo", &["mcp".into(), "$HOME".into()], &[])
            .await
            .unwrap();
        assert!(r.ok);
        assert_eq!(r.output, "mcp $HOME\n");
        let missing = run("/nonexistent/codex", &[], &[]).await.unwrap_err();
        assert!(missing.to_string().contains("cannot run"), "{missing}");
    }
}
