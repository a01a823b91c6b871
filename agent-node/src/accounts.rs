//! Saved Codex accounts of this node (`/codexlogin`, `/codexaccount`).
//!
//! Why: one machine often needs more than one Codex login (a second seat when the first runs out
//! of quota), and Codex keeps its login in `$CODEX_HOME/auth.json`. So each account is a
//! `CODEX_HOME` of its own, `<state_dir>/accounts/<name>/` (0700), that links back to the node's
//! `codex_home` for what must stay shared: `config.toml` (the user's settings), `sessions/` (so the
//! node's transcript watcher, resume and history see every account's rollouts) and
//! `session_index.jsonl` (thread titles). `auth.json` is never shared.
//!
//! The selected account (a name in `<state_dir>/accounts/selected`) is read whenever a window or
//! job starts; windows already running keep the `CODEX_HOME` they started with. The login itself
//! is in [`login`].

pub(crate) mod login;

use std::{
    io,
    os::unix::fs::{DirBuilderExt, PermissionsExt},
    path::{Path, PathBuf},
};

use proto::v1;

use crate::{config::NodeConfig, error::NodeError};

/// Files and folders an account's `CODEX_HOME` shares with the node's `codex_home` (symlinks).
const SHARED: [&str; 3] = ["config.toml", "sessions", "session_index.jsonl"];

/// `<state_dir>/accounts`.
fn root(state_dir: &Path) -> PathBuf {
    state_dir.join("accounts")
}

/// Whether `name` can name an account: 1-32 of a-z, 0-9, '-', '_' (a folder name, and safe to
/// show).
pub(crate) fn valid_name(name: &str) -> bool {
    (1..=32).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
}

fn checked(name: &str) -> Result<&str, NodeError> {
    if valid_name(name) {
        Ok(name)
    } else {
        Err(NodeError::InvalidArgument(format!(
            "{name:?} is not an account name (1-32 of a-z, 0-9, - and _)"
        )))
    }
}

/// The `CODEX_HOME` of account `name` (it may not exist yet).
pub(crate) fn home(state_dir: &Path, name: &str) -> PathBuf {
    root(state_dir).join(name)
}

/// Creates (or repairs) account `name`'s `CODEX_HOME`: a 0700 folder with the shared links.
pub(crate) fn prepare(cfg: &NodeConfig, name: &str) -> Result<PathBuf, NodeError> {
    let name = checked(name)?;
    let dir = home(&cfg.state_dir, name);
    let io_err = |what: &str, err: io::Error| {
        NodeError::Internal(format!("cannot {what} for account {name}: {err}"))
    };
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)
        .map_err(|e| io_err("create its folder", e))?;
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))
        .map_err(|e| io_err("restrict its folder", e))?;
    // Rollouts must land where the node watches.
    std::fs::create_dir_all(cfg.codex_home.join("sessions"))
        .map_err(|e| io_err("create the shared sessions folder", e))?;
    for shared in SHARED {
        let link = dir.join(shared);
        if link.symlink_metadata().is_ok() {
            continue;
        }
        std::os::unix::fs::symlink(cfg.codex_home.join(shared), &link)
            .map_err(|e| io_err(&format!("link {shared}"), e))?;
    }
    Ok(dir)
}

/// The selected account, if one is selected and still saved.
pub(crate) fn selected(state_dir: &Path) -> Option<String> {
    let name = std::fs::read_to_string(root(state_dir).join("selected")).ok()?;
    let name = name.trim();
    (valid_name(name) && home(state_dir, name).is_dir()).then(|| name.to_owned())
}

/// The `CODEX_HOME` a new window or job gets: the selected account's, else the node's own.
pub(crate) fn codex_home_for_new(cfg: &NodeConfig) -> PathBuf {
    match selected(&cfg.state_dir) {
        Some(name) => home(&cfg.state_dir, &name),
        None => cfg.codex_home.clone(),
    }
}

fn select(state_dir: &Path, name: Option<&str>) -> Result<(), NodeError> {
    let file = root(state_dir).join("selected");
    let result = match name {
        Some(name) => std::fs::create_dir_all(root(state_dir))
            .and_then(|()| std::fs::write(&file, format!("{name}\n"))),
        None => match std::fs::remove_file(&file) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            other => other,
        },
    };
    result.map_err(|e| NodeError::Internal(format!("cannot save the selected account: {e}")))
}

/// Saved accounts, sorted, with whether each holds a login (`auth.json`).
fn saved(state_dir: &Path) -> Vec<(String, bool)> {
    let mut names: Vec<(String, bool)> = std::fs::read_dir(root(state_dir))
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| valid_name(n))
        .map(|n| {
            let logged_in = home(state_dir, &n).join("auth.json").is_file();
            (n, logged_in)
        })
        .collect();
    names.sort();
    names
}

/// `/codexaccount list|use <name>|clear`.
pub(crate) fn handle(
    cfg: &NodeConfig,
    req: &v1::CodexAccounts,
) -> Result<v1::CodexAccountList, NodeError> {
    match req.action() {
        v1::CodexAccountsAction::List => {}
        v1::CodexAccountsAction::Use => {
            let name = checked(&req.name)?;
            if !home(&cfg.state_dir, name).is_dir() {
                return Err(NodeError::NotFound(format!(
                    "no saved account {name} on this machine (log it in with /codexlogin {name})"
                )));
            }
            prepare(cfg, name)?;
            select(&cfg.state_dir, Some(name))?;
        }
        v1::CodexAccountsAction::Clear => select(&cfg.state_dir, None)?,
        v1::CodexAccountsAction::Unspecified => {
            return Err(NodeError::InvalidArgument(
                "no account action asked for".into(),
            ));
        }
    }
    Ok(list(cfg))
}

fn list(cfg: &NodeConfig) -> v1::CodexAccountList {
    let (names, logged_in) = saved(&cfg.state_dir).into_iter().unzip();
    v1::CodexAccountList {
        names,
        logged_in,
        selected: selected(&cfg.state_dir).unwrap_or_default(),
        rotate: cfg.accounts.rotate,
    }
}

/// With rotation on: selects the saved, logged-in account after the current one (wrapping; the
/// node's default counts as before the first). Returns the new account, or `None` when there is
/// no other to switch to.
pub(crate) fn rotate(cfg: &NodeConfig) -> Option<String> {
    if !cfg.accounts.rotate {
        return None;
    }
    let current = selected(&cfg.state_dir);
    let candidates: Vec<String> = saved(&cfg.state_dir)
        .into_iter()
        .filter(|(_, logged_in)| *logged_in)
        .map(|(n, _)| n)
        .collect();
    let next = match &current {
        None => candidates.first().cloned(),
        Some(cur) => candidates
            .iter()
            .find(|n| n.as_str() > cur.as_str())
            .or_else(|| candidates.first())
            .filter(|n| *n != cur)
            .cloned(),
    }?;
    select(&cfg.state_dir, Some(&next)).ok()?;
    Some(next)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(dir: &Path) -> NodeConfig {
        let mut cfg = NodeConfig::with_defaults(dir.join("state"));
        cfg.codex_home = dir.join("codex");
        std::fs::create_dir_all(&cfg.codex_home).unwrap();
        std::fs::write(cfg.codex_home.join("config.toml"), "model = \"m\"\n").unwrap();
        cfg
    }

    fn action(action: v1::CodexAccountsAction, name: &str) -> v1::CodexAccounts {
        v1::CodexAccounts {
            action: action as i32,
            name: name.into(),
        }
    }

    #[test]
    fn an_account_shares_config_and_sessions_but_not_its_login() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = cfg(dir.path());
        let home = prepare(&cfg, "work").unwrap();
        let mode = std::fs::metadata(&home).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
        assert_eq!(
            std::fs::read_to_string(home.join("config.toml")).unwrap(),
            "model = \"m\"\n"
        );
        assert_eq!(
            std::fs::canonicalize(home.join("sessions")).unwrap(),
            std::fs::canonicalize(cfg.codex_home.join("sessions")).unwrap()
        );
        assert!(!home.join("auth.json").exists());
        assert!(prepare(&cfg, "../x").is_err());
        assert!(prepare(&cfg, "Work").is_err());
    }

    #[test]
    fn use_and_clear_choose_the_codex_home_of_new_windows() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = cfg(dir.path());
        assert_eq!(codex_home_for_new(&cfg), cfg.codex_home);
        let use_ = v1::CodexAccountsAction::Use;
        assert!(matches!(
            handle(&cfg, &action(use_, "work")),
            Err(NodeError::NotFound(_))
        ));
        prepare(&cfg, "work").unwrap();
        let list = handle(&cfg, &action(use_, "work")).unwrap();
        assert_eq!(list.names, vec!["work".to_owned()]);
        assert_eq!(list.logged_in, vec![false]);
        assert_eq!(list.selected, "work");
        assert_eq!(codex_home_for_new(&cfg), home(&cfg.state_dir, "work"));
        let list = handle(&cfg, &action(v1::CodexAccountsAction::Clear, "")).unwrap();
        assert_eq!(list.selected, "");
        assert_eq!(codex_home_for_new(&cfg), cfg.codex_home);
    }

    #[test]
    fn rotation_moves_to_the_next_logged_in_account_when_on() {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = cfg(dir.path());
        for name in ["a", "b", "c"] {
            let home = prepare(&cfg, name).unwrap();
            if name != "b" {
                std::fs::write(home.join("auth.json"), "{}").unwrap();
            }
        }
        assert_eq!(rotate(&cfg), None, "off by default");
        cfg.accounts.rotate = true;
        assert_eq!(rotate(&cfg).as_deref(), Some("a"));
        assert_eq!(rotate(&cfg).as_deref(), Some("c"), "b has no login");
        assert_eq!(rotate(&cfg).as_deref(), Some("a"));
        assert_eq!(selected(&cfg.state_dir).as_deref(), Some("a"));
    }
}
