//! `agent-node preflight`: checks that this machine can run Codex windows before a center ever
//! asks it to, and says how to fix what cannot work.
//!
//! A node that starts fine can still fail at the first `/new`: tmux too old, Codex missing or
//! logged out, a `CODEX_HOME` it cannot write, a root that is gone, or a Codex release that
//! writes rollout records this node's parser does not know (the failure that made a peer stop
//! delivering anything). Each of those is one [`Check`] here; the center's `preflight` runs the
//! same checks for its embedded node.
//!
//! The decisions are pure functions fed with what the programs printed (unit-tested with fake
//! outputs); [`run`] only gathers those outputs. This module starts processes itself (`tmux -V`,
//! `codex --version`, `codex login status`, `codex exec`) instead of going through `tmux.rs`:
//! these are one-shot diagnostics of the programs the node depends on, run before any window
//! exists. Codex gets the environment a window would get (the node's own, minus the fleet's
//! secrets), and nothing Codex prints about credentials is echoed.

use std::{
    collections::BTreeSet,
    path::{Path, PathBuf},
    process::Stdio,
    time::Duration,
};

use shared::preflight::Check;
use tokio::process::Command;

use crate::{
    NodeConfig,
    config::RootConfig,
    transcript::{
        locate::all_rollouts,
        parse::{Record, parse_line},
    },
};

/// The oldest tmux the node works with (README: prerequisites).
pub const MIN_TMUX: (u32, u32) = (3, 2);

/// The Codex CLI releases the node's parser and screen reading are tested against (the e2e
/// tests and the recorded fixtures in `testdata/` are pinned to these; keep in step with
/// `tests/src/codex.rs`).
pub const SUPPORTED_CODEX: &[&str] = &["0.169.0", "0.171.0"];

/// How long `--version` and `login status` may take (Codex's npm shim starts a native binary).
const QUICK: Duration = Duration::from_secs(30);
/// How long the scratch `codex exec` may take (one model turn).
const SCRATCH: Duration = Duration::from_secs(180);
/// The scratch run's prompt: a trivial turn that needs no tools.
const SCRATCH_PROMPT: &str = "Reply with the single word: ok";

/// What to check besides the basics.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// Run one short `codex exec` turn (it uses the configured model and leaves one session in
    /// `CODEX_HOME`) and check that every record of its rollout is known to the parser.
    pub scratch: bool,
}

/// Runs every check for `cfg`, in the order they are printed.
pub async fn run(cfg: &NodeConfig, opts: Options) -> Vec<Check> {
    let mut checks = vec![tmux_check(&run_tmux_version().await)];
    let program = codex_program(&cfg.codex_command);
    let found = resolve(&program, std::env::var_os("PATH").as_deref());
    checks.push(codex_found_check(&program, found.as_deref()));
    checks.push(codex_home_check(&cfg.codex_home));
    if let Some(codex) = &found {
        let env = codex_env(cfg);
        let version = run_codex(codex, &["--version"], &env, None, QUICK).await;
        checks.push(version_check(&version));
        let login = run_codex(codex, &["login", "status"], &env, None, QUICK).await;
        checks.push(login_check(&login));
        if opts.scratch {
            checks.push(scratch_run(cfg, codex, &env).await);
        }
    }
    checks.extend(cfg.roots.iter().map(root_check));
    checks.push(private_dir("state dir", &cfg.state_dir));
    checks
}

/// [`private_dir_check`] of `dir` as it is on disk, for the user running this.
pub fn private_dir(name: &str, dir: &Path) -> Check {
    private_dir_check(
        name,
        dir,
        dir_owner_mode(dir),
        rustix::process::getuid().as_raw(),
    )
}

/// What a program run gave: whether it exited 0, and its stdout and stderr together.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ran {
    /// Exit status 0.
    pub success: bool,
    /// stdout followed by stderr.
    pub output: String,
}

/// Why a program gave no answer to judge (one that ran and failed is a [`Ran`] that did not
/// succeed). The message is what a check shows after the program's name.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// It could not be started (not found, not executable, ...).
    #[error("cannot start it: {0}")]
    Start(std::io::Error),
    /// It did not finish in time (it was killed).
    #[error("no answer within {} s", .0.as_secs())]
    Timeout(Duration),
    /// Its output could not be read.
    #[error("cannot read its output: {0}")]
    Read(std::io::Error),
}

// === tmux ===

async fn run_tmux_version() -> Result<Ran, RunError> {
    let mut cmd = Command::new("tmux");
    // `-V` starts no server; still, tmux gets only what it needs, never the fleet's secrets.
    cmd.env_clear();
    for (key, value) in shared::child_env::minimal() {
        cmd.env(key, value);
    }
    output(cmd.arg("-V"), QUICK).await
}

/// `tmux -V` (or why it could not run) → the tmux check.
pub fn tmux_check(ran: &Result<Ran, RunError>) -> Check {
    let fix = format!(
        "install tmux {}.{} or newer (e.g. apt install tmux)",
        MIN_TMUX.0, MIN_TMUX.1
    );
    let text = match ran {
        Ok(ran) if ran.success => ran.output.trim(),
        Ok(ran) => {
            let why = last_line(&ran.output);
            return Check::fail("tmux", format!("cannot run tmux: {why}"), fix);
        }
        Err(why) => return Check::fail("tmux", format!("cannot run tmux: {why}"), fix),
    };
    let shown = text.strip_prefix("tmux ").unwrap_or(text);
    match parse_tmux_version(shown) {
        Some(v) if v >= MIN_TMUX => Check::ok("tmux", shown),
        Some(_) => Check::fail(
            "tmux",
            format!(
                "{shown} is too old (the node needs {}.{}+)",
                MIN_TMUX.0, MIN_TMUX.1
            ),
            fix,
        ),
        None => Check::warn(
            "tmux",
            format!("cannot tell the version of {shown:?}"),
            format!("use a released tmux {}.{} or newer", MIN_TMUX.0, MIN_TMUX.1),
        ),
    }
}

/// `3.3a` → (3, 3); `next-3.4` → (3, 4).
fn parse_tmux_version(text: &str) -> Option<(u32, u32)> {
    let text = text.strip_prefix("next-").unwrap_or(text);
    let (major, rest) = text.split_once('.')?;
    let minor: String = rest.chars().take_while(char::is_ascii_digit).collect();
    Some((major.parse().ok()?, minor.parse().ok()?))
}

// === Codex ===

/// The program of the configured command: its first word (`codex --no-daemon` → `codex`).
pub fn codex_program(command: &str) -> String {
    shlex::split(command)
        .and_then(|words| words.into_iter().next())
        .unwrap_or_else(|| command.split_whitespace().next().unwrap_or("").to_owned())
}

/// Where `program` is: itself if it names a path, else the first executable of that name on
/// `path` (the node's `PATH`, which Codex windows inherit).
pub fn resolve(program: &str, path: Option<&std::ffi::OsStr>) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let executable = |p: &Path| {
        std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    if program.is_empty() {
        return None;
    }
    if program.contains('/') {
        let p = PathBuf::from(program);
        return executable(&p).then_some(p);
    }
    std::env::split_paths(path?)
        .map(|dir| dir.join(program))
        .find(|p| executable(p))
}

fn codex_found_check(program: &str, found: Option<&Path>) -> Check {
    match found {
        Some(path) => Check::ok("Codex command", path.display().to_string()),
        None => Check::fail(
            "Codex command",
            format!("{program:?} not found (not an executable file or not on PATH)"),
            "install Codex (npm install -g @openai/codex) or set codex_command (--codex-command) to its full path",
        ),
    }
}

/// `codex --version` → the version check (supported releases pass, others warn).
pub fn version_check(ran: &Result<Ran, RunError>) -> Check {
    let supported = SUPPORTED_CODEX.join(", ");
    let ran = match ran {
        Ok(ran) if ran.success => ran,
        Ok(ran) => {
            return Check::fail(
                "Codex version",
                format!("`codex --version` failed: {}", last_line(&ran.output)),
                "reinstall Codex (npm install -g @openai/codex)",
            );
        }
        Err(why) => return Check::fail("Codex version", why.to_string(), "reinstall Codex"),
    };
    let Some(version) = ran
        .output
        .lines()
        .find(|l| l.starts_with("codex"))
        .and_then(|l| l.split_whitespace().last())
    else {
        return Check::fail(
            "Codex version",
            format!(
                "`--version` printed no version ({:?})",
                last_line(&ran.output)
            ),
            "point codex_command at the Codex CLI",
        );
    };
    if SUPPORTED_CODEX.contains(&version) {
        Check::ok("Codex version", format!("{version} (supported)"))
    } else {
        Check::warn(
            "Codex version",
            format!("{version} is not one of the tested releases ({supported})"),
            format!(
                "install one of them (npm install -g @openai/codex@{}) or run `agent-node preflight --scratch` to check its records",
                SUPPORTED_CODEX[SUPPORTED_CODEX.len() - 1]
            ),
        )
    }
}

/// `codex login status` → the login check. Says only how Codex is logged in, never what it
/// printed about the credential (it shows parts of API keys).
pub fn login_check(ran: &Result<Ran, RunError>) -> Check {
    let fix = "run `codex login` as this user (`codex login --device-auth` on a machine without a browser), with the same CODEX_HOME";
    match ran {
        Ok(ran) if ran.success => {
            let how = if ran.output.contains("ChatGPT") {
                "logged in with ChatGPT"
            } else if ran.output.to_lowercase().contains("api key") {
                "logged in with an API key"
            } else {
                "logged in"
            };
            Check::ok("Codex login", how)
        }
        Ok(ran) if ran.output.to_lowercase().contains("not logged in") => {
            Check::fail("Codex login", "not logged in", fix)
        }
        Ok(ran) => Check::fail(
            "Codex login",
            format!("`codex login status` failed: {}", last_line(&ran.output)),
            fix,
        ),
        Err(why) => Check::fail("Codex login", why.to_string(), fix),
    }
}

/// `CODEX_HOME` exists and this user can write in it (a file is created and removed).
pub fn codex_home_check(home: &Path) -> Check {
    let shown = home.display();
    if !home.is_dir() {
        return Check::fail(
            "CODEX_HOME",
            format!("{shown} does not exist"),
            format!("create it (mkdir -p {shown}) or run codex once as this user"),
        );
    }
    let probe = home.join(format!(".codex-fleet-preflight-{}", std::process::id()));
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe);
    match written {
        Ok(_) => {
            let _ = std::fs::remove_file(&probe);
            Check::ok("CODEX_HOME", format!("{shown} (writable)"))
        }
        Err(err) => Check::fail(
            "CODEX_HOME",
            format!("{shown} is not writable ({err})"),
            format!("give this user write access to {shown} (chown/chmod)"),
        ),
    }
}

/// The environment Codex runs with: the node's own minus the fleet's secrets and settings
/// (as for a window), plus `CODEX_HOME` and the configured window extras.
pub(crate) fn codex_env(cfg: &NodeConfig) -> Vec<(String, String)> {
    let mut env = vec![(
        "CODEX_HOME".to_owned(),
        cfg.codex_home.to_string_lossy().into_owned(),
    )];
    env.extend(cfg.window_env.iter().cloned());
    env
}

/// Variables a Codex window never sees (the same rule as `requests::window_env`).
fn withheld(key: &str) -> bool {
    const EXACT: &[&str] = &["TELEGRAM_BOT_TOKEN", "TELOXIDE_TOKEN", "CODEX_HOME", "TMUX"];
    const PREFIXES: &[&str] = &["CODEX_FLEET_", "AGENT_NODE_", "CENTER_", "TELEGRAM_"];
    EXACT.contains(&key) || PREFIXES.iter().any(|p| key.starts_with(p))
}

pub(crate) async fn run_codex(
    program: &Path,
    args: &[&str],
    env: &[(String, String)],
    cwd: Option<&Path>,
    timeout: Duration,
) -> Result<Ran, RunError> {
    let mut cmd = Command::new(program);
    for (key, _) in std::env::vars_os() {
        if withheld(&key.to_string_lossy()) {
            cmd.env_remove(key);
        }
    }
    cmd.envs(env.iter().map(|(k, v)| (k, v))).args(args);
    if let Some(dir) = cwd {
        cmd.current_dir(dir);
    }
    output(&mut cmd, timeout).await
}

async fn output(cmd: &mut Command, timeout: Duration) -> Result<Ran, RunError> {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let child = cmd.spawn().map_err(RunError::Start)?;
    let out = tokio::time::timeout(timeout, child.wait_with_output())
        .await
        .map_err(|_| RunError::Timeout(timeout))?
        .map_err(RunError::Read)?;
    Ok(Ran {
        success: out.status.success(),
        output: format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    })
}

/// The last meaningful line of a program's output, without Codex's startup warnings and with
/// anything that looks like a credential blanked, at most 200 characters.
fn last_line(output: &str) -> String {
    let line = output
        .lines()
        .map(str::trim)
        .rfind(|l| !l.is_empty() && !l.starts_with("WARNING:"))
        .unwrap_or("(no output)");
    redact(line).chars().take(200).collect()
}

/// `codex-cli 0.171.0` → `0.171.0` (the last word of the first line naming codex).
pub(crate) fn parse_version(output: &str) -> Option<String> {
    output
        .lines()
        .find(|l| l.starts_with("codex"))
        .and_then(|l| l.split_whitespace().last())
        .map(str::to_owned)
}

/// `line` with every word that looks like a credential (an API key, a long token) blanked.
pub(crate) fn redact(line: &str) -> String {
    let redacted: Vec<String> = line
        .split(' ')
        .map(|w| {
            if w.starts_with("sk-") || w.starts_with("npm_") || (w.len() >= 32 && !w.contains('/'))
            {
                shared::secret::REDACTED.to_owned()
            } else {
                shared::secret::without_url_credentials(w)
            }
        })
        .collect();
    redacted.join(" ")
}

// === the scratch run ===

/// One `codex exec` turn in a scratch folder, then the node's own parser over its rollout.
async fn scratch_run(cfg: &NodeConfig, codex: &Path, env: &[(String, String)]) -> Check {
    const NAME: &str = "scratch Codex run";
    let sessions = cfg.codex_home.join("sessions");
    let before: BTreeSet<PathBuf> = all_rollouts(&sessions).into_iter().collect();
    let dir = std::env::temp_dir().join(format!(
        "codex-fleet-preflight-{}-{}",
        std::process::id(),
        shared::clock::now_unix_ms()
    ));
    if let Err(err) = std::fs::create_dir_all(&dir) {
        return Check::fail(
            NAME,
            format!("cannot create {} ({err})", dir.display()),
            "check that TMPDIR is writable",
        );
    }
    let folder = dir.to_string_lossy().into_owned();
    let args = [
        "exec",
        "--skip-git-repo-check",
        "-C",
        &folder,
        SCRATCH_PROMPT,
    ];
    let ran = run_codex(codex, &args, env, Some(&dir), SCRATCH).await;
    let _ = std::fs::remove_dir_all(&dir);
    let fix = "run `codex exec --skip-git-repo-check 'hi'` as this user to see why (model, network, login)";
    match ran {
        Ok(ran) if ran.success => {}
        Ok(ran) => {
            return Check::fail(
                NAME,
                format!("codex exec failed: {}", last_line(&ran.output)),
                fix,
            );
        }
        Err(why) => return Check::fail(NAME, format!("codex exec: {why}"), fix),
    }
    let newest = all_rollouts(&sessions)
        .into_iter()
        .filter(|p| !before.contains(p))
        .max_by_key(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok());
    let Some(rollout) = newest else {
        return Check::fail(
            NAME,
            format!("Codex wrote no rollout under {}", sessions.display()),
            "set codex_home to the CODEX_HOME Codex really uses",
        );
    };
    match std::fs::read_to_string(&rollout) {
        Ok(text) => rollout_check(&text),
        Err(err) => Check::fail(
            NAME,
            format!("cannot read {} ({err})", rollout.display()),
            "check the permissions of CODEX_HOME/sessions",
        ),
    }
}

/// A rollout's text → whether the node's parser knows every record in it.
pub fn rollout_check(text: &str) -> Check {
    const NAME: &str = "rollout records";
    let mut records = 0;
    let mut unknown = BTreeSet::new();
    let mut broken = 0;
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        records += 1;
        match parse_line(line) {
            Ok(Record::Unknown(kind)) => {
                unknown.insert(if kind.is_empty() {
                    "(no type)".to_owned()
                } else {
                    kind
                });
            }
            Ok(_) => {}
            Err(_) => broken += 1,
        }
    }
    let fix = format!(
        "upgrade agent-node, or use a Codex release it supports ({})",
        SUPPORTED_CODEX.join(", ")
    );
    if records == 0 {
        return Check::fail(NAME, "the scratch rollout is empty", fix);
    }
    if !unknown.is_empty() {
        let list: Vec<String> = unknown.into_iter().collect();
        return Check::fail(
            NAME,
            format!(
                "{} of {records} records have types this node does not know: {}",
                list.len(),
                list.join(", ")
            ),
            fix,
        );
    }
    if broken > 0 {
        return Check::fail(
            NAME,
            format!("{broken} of {records} lines are not JSON records"),
            fix,
        );
    }
    Check::ok(NAME, format!("{records} records, all known"))
}

// === folders ===

fn root_check(root: &RootConfig) -> Check {
    let name = format!("root {}", root.name);
    let shown = root.path.display();
    match std::fs::read_dir(&root.path) {
        Ok(_) => Check::ok(name, shown.to_string()),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Check::fail(
            name,
            format!("{shown} does not exist"),
            "create it or change the root (roots / --root)",
        ),
        Err(err) => Check::fail(
            name,
            format!("{shown} cannot be read ({err})"),
            "give this user read access or change the root",
        ),
    }
}

/// The owner uid and permission bits of a directory, if it exists.
fn dir_owner_mode(dir: &Path) -> Option<(u32, u32)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(dir).ok().map(|m| (m.uid(), m.mode()))
}

/// A private directory (keys, sockets, state): owned by `me` and closed to everyone else.
pub fn private_dir_check(name: &str, dir: &Path, owner_mode: Option<(u32, u32)>, me: u32) -> Check {
    let shown = dir.display();
    match owner_mode {
        None => Check::ok(name, format!("{shown} (created owner-only at first start)")),
        Some((owner, _)) if owner != me => Check::fail(
            name,
            format!("{shown} belongs to uid {owner}, not this user ({me})"),
            format!("run as its owner, or chown -R {me} {shown}"),
        ),
        Some((_, mode)) if mode & 0o022 != 0 => Check::fail(
            name,
            format!(
                "{shown} may be changed by other users (mode {:o})",
                mode & 0o777
            ),
            format!("chmod 700 {shown}"),
        ),
        // 0710 is what `serve` sets when other uids may use its socket (--allow-uid).
        Some((_, mode)) if mode & 0o077 & !0o010 != 0 => Check::warn(
            name,
            format!(
                "{shown} is readable by other users (mode {:o})",
                mode & 0o777
            ),
            format!("chmod 700 {shown}"),
        ),
        Some(_) => Check::ok(name, format!("{shown} (owner-only)")),
    }
}

#[cfg(test)]
mod tests {
    use shared::preflight::Outcome;

    use super::*;

    fn ran(success: bool, output: &str) -> Result<Ran, RunError> {
        Ok(Ran {
            success,
            output: output.to_owned(),
        })
    }

    #[test]
    fn tmux_versions() {
        assert_eq!(tmux_check(&ran(true, "tmux 3.3a\n")).line(), "✓ tmux 3.3a");
        assert!(!tmux_check(&ran(true, "tmux 3.2")).failed());
        assert!(!tmux_check(&ran(true, "tmux next-3.5")).failed());
        assert!(!tmux_check(&ran(true, "tmux 10.0")).failed());
        let old = tmux_check(&ran(true, "tmux 3.1c"));
        assert!(old.failed() && old.line().contains("too old"), "{old:?}");
        assert!(tmux_check(&ran(true, "tmux 2.9")).failed());
        let odd = tmux_check(&ran(true, "tmux master"));
        assert!(matches!(odd.outcome, Outcome::Warn { .. }), "{odd:?}");
        let missing = tmux_check(&Err(RunError::Start(std::io::ErrorKind::NotFound.into())));
        assert!(missing.failed() && missing.line().contains("install tmux 3.2"));
        assert!(
            missing
                .line()
                .contains("cannot run tmux: cannot start it: ")
        );
        let broken = tmux_check(&ran(false, "WARNING: a\nopen terminal failed\n"));
        assert!(
            broken
                .line()
                .contains("cannot run tmux: open terminal failed")
        );
    }

    #[test]
    fn the_codex_program_is_the_first_word() {
        assert_eq!(codex_program("codex"), "codex");
        assert_eq!(codex_program("codex --no-daemon"), "codex");
        assert_eq!(
            codex_program("'/opt/my codex/codex' -a"),
            "/opt/my codex/codex"
        );
        assert_eq!(codex_program(""), "");
    }

    #[test]
    fn programs_are_found_as_paths_or_on_path() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let exe = dir.path().join("codex");
        std::fs::write(&exe, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).unwrap();
        let plain = dir.path().join("notes");
        std::fs::write(&plain, "").unwrap();
        let path = std::ffi::OsString::from(format!("/nonexistent:{}", dir.path().display()));
        assert_eq!(resolve("codex", Some(&path)), Some(exe.clone()));
        assert_eq!(resolve(&exe.display().to_string(), None), Some(exe));
        assert_eq!(resolve("notes", Some(&path)), None);
        assert_eq!(resolve("/nonexistent/codex", Some(&path)), None);
        assert_eq!(resolve("", Some(&path)), None);
        assert!(codex_found_check("codex", None).failed());
    }

    #[test]
    fn codex_versions() {
        let ok = version_check(&ran(true, "WARNING: x\ncodex-cli 0.169.0\n"));
        assert_eq!(ok.line(), "✓ Codex version 0.169.0 (supported)");
        assert!(!version_check(&ran(true, "codex-cli 0.171.0")).failed());
        let other = version_check(&ran(true, "codex-cli 0.172.0"));
        assert!(matches!(other.outcome, Outcome::Warn { .. }), "{other:?}");
        assert!(other.line().contains("0.169.0, 0.171.0"), "{other:?}");
        assert!(version_check(&ran(false, "boom")).failed());
        assert!(version_check(&ran(true, "hello")).failed());
        let slow = version_check(&Err(RunError::Timeout(Duration::from_secs(30))));
        assert!(slow.failed() && slow.line().contains("no answer within 30 s"));
    }

    #[test]
    fn login_states_never_echo_the_credential() {
        let key = ran(
            true,
            "WARNING: y\nLogged in using an API key - sk-proj-abc***xyz\n",
        );
        assert_eq!(
            login_check(&key).line(),
            "✓ Codex login logged in with an API key"
        );
        let chatgpt = ran(true, "Logged in using ChatGPT\n");
        assert_eq!(
            login_check(&chatgpt).line(),
            "✓ Codex login logged in with ChatGPT"
        );
        let out = login_check(&ran(false, "WARNING: z\nNot logged in\n"));
        assert!(out.failed(), "{out:?}");
        assert!(
            out.line()
                .starts_with("✗ Codex login not logged in — fix: run `codex login`")
        );
        let odd = login_check(&ran(false, "Error: token sk-live-1234 rejected"));
        assert!(odd.failed() && !odd.line().contains("sk-live"), "{odd:?}");
        let long = login_check(&ran(
            false,
            "bad AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        ));
        assert!(!long.line().contains("AAAAAAAAAA"), "{long:?}");
    }

    #[test]
    fn rollouts_with_unknown_records_fail() {
        let meta = r#"{"timestamp":"2026-01-01T00:00:00Z","type":"session_meta","payload":{"id":"x","cwd":"/"}}"#;
        let ctx = r#"{"timestamp":"2026-01-01T00:00:00Z","type":"turn_context","payload":{}}"#;
        let new = r#"{"timestamp":"2026-01-01T00:00:00Z","type":"brand_new","payload":{}}"#;
        let good = format!("{meta}\n{ctx}\n");
        assert_eq!(
            rollout_check(&good).line(),
            "✓ rollout records 2 records, all known"
        );
        let bad = rollout_check(&format!("{good}{new}\n{new}\n"));
        assert!(bad.failed());
        assert!(
            bad.line()
                .contains("1 of 4 records have types this node does not know: brand_new"),
            "{bad:?}"
        );
        assert!(rollout_check("").failed());
        assert!(rollout_check(&format!("{meta}\nnot json\n")).failed());
    }

    #[test]
    fn recorded_rollouts_of_the_pinned_releases_pass() {
        for dir in ["testdata/rollouts", "testdata/0.171.0/rollouts"] {
            let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
            for entry in std::fs::read_dir(dir).unwrap() {
                let path = entry.unwrap().path();
                if path.extension().is_some_and(|e| e == "jsonl") {
                    let check = rollout_check(&std::fs::read_to_string(&path).unwrap());
                    assert!(!check.failed(), "{}: {check:?}", path.display());
                }
            }
        }
    }

    #[test]
    fn folders() {
        let dir = tempfile::tempdir().unwrap();
        let me = 1000;
        let d = dir.path();
        assert!(!private_dir_check("state dir", d, Some((me, 0o40700)), me).failed());
        assert!(!private_dir_check("state dir", d, Some((me, 0o40710)), me).failed());
        let open = private_dir_check("state dir", d, Some((me, 0o40755)), me);
        assert!(matches!(open.outcome, Outcome::Warn { .. }), "{open:?}");
        assert!(open.line().contains("chmod 700"), "{open:?}");
        let writable = private_dir_check("state dir", d, Some((me, 0o40777)), me);
        assert!(writable.failed(), "{writable:?}");
        assert!(private_dir_check("state dir", d, Some((0, 0o40700)), me).failed());
        assert!(!private_dir_check("state dir", d, None, me).failed());

        assert!(codex_home_check(d).line().contains("(writable)"));
        assert!(codex_home_check(&d.join("missing")).failed());
        let root = |path: &Path| RootConfig {
            name: "work".into(),
            path: path.to_owned(),
        };
        assert!(!root_check(&root(d)).failed());
        assert!(root_check(&root(&d.join("gone"))).failed());
    }

    #[test]
    fn fleet_secrets_are_withheld_from_codex() {
        for key in [
            "TELOXIDE_TOKEN",
            "TELEGRAM_BOT_TOKEN",
            "CODEX_FLEET_VOICE_KEY",
            "CENTER_X",
        ] {
            assert!(withheld(key), "{key}");
        }
        assert!(!withheld("OPENAI_API_KEY"));
        assert!(!withheld("PATH"));
    }
}
