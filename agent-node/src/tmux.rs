//! Everything the node asks of tmux, on a private server (`tmux -L <socket>`).
//!
//! This is the only module that starts processes. Every argument is passed as a separate argv
//! entry (never through a shell), user text reaches tmux only on stdin (`load-buffer -`), and
//! panes are targeted by id (`%N`), windows by id (`@N`).

use std::{process::Stdio, time::Duration};

use tokio::{io::AsyncWriteExt, process::Command};

/// What went wrong talking to tmux.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// tmux could not be started at all.
    #[error("cannot run tmux: {0}")]
    Spawn(#[source] std::io::Error),
    /// tmux ran and reported an error.
    #[error("tmux {command} failed: {stderr}")]
    Exit {
        /// The tmux command (first argument), e.g. `new-window`.
        command: String,
        /// What tmux printed.
        stderr: String,
    },
    /// The pane or window does not exist (any more).
    #[error("the tmux window is gone")]
    Gone,
    /// tmux did not answer in time.
    #[error("tmux did not answer within {0:?}")]
    Timeout(Duration),
}

/// Variables the tmux client itself keeps (socket location, locale, identity).
const CLIENT_ENV: &[&str] = &[
    "HOME",
    "PATH",
    "TMUX_TMPDIR",
    "LANG",
    "USER",
    "LOGNAME",
    "SHELL",
];

/// How long any single tmux command may take.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(10);
/// User option set on every window the node creates; holds the node's session id.
pub(crate) const SESSION_OPTION: &str = "@codex-fleet-session";

/// A window to create.
#[derive(Debug, Clone)]
pub(crate) struct WindowSpec {
    /// Window name.
    pub(crate) name: String,
    /// Working directory.
    pub(crate) cwd: std::path::PathBuf,
    /// Shell command run in the window (from the operator's config, never from chat text).
    pub(crate) command: String,
    /// Environment for the window's process. It never goes on a command line (every local
    /// user can read `/proc/*/cmdline`): it is written to an owner-only file in `env_dir` that
    /// the window's shell reads and deletes before it starts the command.
    pub(crate) env: Vec<(String, String)>,
    /// An owner-only directory for that file.
    pub(crate) env_dir: std::path::PathBuf,
    /// Value for [`SESSION_OPTION`].
    pub(crate) session_id: String,
}

/// Ids of a newly created window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NewWindow {
    /// `@N`.
    pub(crate) window_id: String,
    /// `%N`.
    pub(crate) pane_id: String,
}

/// One pane as `list-panes` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PaneInfo {
    /// `@N`.
    pub(crate) window_id: String,
    /// `%N`.
    pub(crate) pane_id: String,
    /// The process in the pane exited (remain-on-exit keeps the pane).
    pub(crate) dead: bool,
    /// Name of the foreground process, e.g. `codex` or `bash`.
    pub(crate) current_command: String,
    /// The pane is in copy mode or another mode.
    pub(crate) in_mode: bool,
    /// Value of [`SESSION_OPTION`] on the pane's window (empty if not ours).
    pub(crate) session_id: String,
    /// Window name.
    pub(crate) window_name: String,
}

const PANE_FORMAT: &str = "#{window_id}\t#{pane_id}\t#{pane_dead}\t#{pane_current_command}\t#{pane_in_mode}\t#{@codex-fleet-session}\t#{window_name}";

fn parse_pane_line(line: &str) -> Option<PaneInfo> {
    let mut f = line.split('\t');
    Some(PaneInfo {
        window_id: f.next()?.to_owned(),
        pane_id: f.next()?.to_owned(),
        dead: f.next()? == "1",
        current_command: f.next()?.to_owned(),
        in_mode: f.next()? == "1",
        session_id: f.next()?.to_owned(),
        window_name: f.next().unwrap_or_default().to_owned(),
    })
}

/// A key the node may send (never user text).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Key {
    /// Escape: interrupts a turn or cancels a prompt.
    Escape,
    /// Enter: submits.
    Enter,
    /// Tab: Codex's queue gesture.
    Tab,
    /// Ctrl-C.
    CtrlC,
    /// Arrow up.
    Up,
    /// Arrow down.
    Down,
    /// Arrow left.
    Left,
    /// Arrow right.
    Right,
    /// One ASCII letter or digit (prompt shortcuts).
    Char(char),
    /// Ctrl-E: end of the composer line.
    CtrlE,
    /// Ctrl-U: delete to the start of the composer line (at its start: the line break before).
    CtrlU,
    /// Ctrl-K: delete to the end of the composer line (at its end: the line break after).
    CtrlK,
    /// Backspace.
    Backspace,
    /// Delete (forward).
    Delete,
}

impl Key {
    fn tmux_name(self) -> String {
        match self {
            Self::Escape => "Escape".into(),
            Self::Enter => "Enter".into(),
            Self::Tab => "Tab".into(),
            Self::CtrlC => "C-c".into(),
            Self::Up => "Up".into(),
            Self::Down => "Down".into(),
            Self::Left => "Left".into(),
            Self::Right => "Right".into(),
            Self::Char(c) => c.to_string(),
            Self::CtrlE => "C-e".into(),
            Self::CtrlU => "C-u".into(),
            Self::CtrlK => "C-k".into(),
            Self::Backspace => "BSpace".into(),
            Self::Delete => "DC".into(),
        }
    }
}

/// The node's handle on its private tmux server.
#[derive(Debug, Clone)]
pub(crate) struct TmuxCli {
    socket: String,
    session: String,
    size: (u16, u16),
}

impl TmuxCli {
    /// Talks to `tmux -L socket`, keeping Codex windows in `session`.
    pub(crate) fn new(socket: &str, session: &str, size: (u16, u16)) -> Self {
        Self {
            socket: socket.to_owned(),
            session: session.to_owned(),
            size,
        }
    }

    async fn run(&self, args: &[&str], stdin: Option<&[u8]>) -> Result<String, Error> {
        #[allow(clippy::disallowed_methods)] // this module is the project's one process spawner
        let mut cmd = Command::new("tmux");
        // A clean environment: a server this starts must not inherit the node's secrets (the
        // center's bot token); windows get exactly the environment given with `-e`.
        cmd.env_clear();
        for (key, value) in std::env::vars_os() {
            if CLIENT_ENV.iter().any(|k| key == *k) || key.to_string_lossy().starts_with("LC_") {
                cmd.env(key, value);
            }
        }
        // -f /dev/null: a private server with predictable options, whatever ~/.tmux.conf says.
        cmd.arg("-L").arg(&self.socket).arg("-f").arg("/dev/null");
        cmd.args(args)
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let fut = async {
            let mut child = cmd.spawn().map_err(Error::Spawn)?;
            if let Some(input) = stdin
                && let Some(mut pipe) = child.stdin.take()
            {
                pipe.write_all(input).await.map_err(Error::Spawn)?;
            }
            child.wait_with_output().await.map_err(Error::Spawn)
        };
        let out = tokio::time::timeout(COMMAND_TIMEOUT, fut)
            .await
            .map_err(|_| Error::Timeout(COMMAND_TIMEOUT))??;
        if out.status.success() {
            return Ok(String::from_utf8_lossy(&out.stdout).into_owned());
        }
        let stderr = String::from_utf8_lossy(&out.stderr).trim().to_owned();
        if is_gone(&stderr) {
            return Err(Error::Gone);
        }
        Err(Error::Exit {
            command: args.first().copied().unwrap_or_default().to_owned(),
            stderr,
        })
    }

    /// Creates a window running `spec.command` with `spec.env`, creating the session (and
    /// server) if needed.
    pub(crate) async fn new_window(&self, spec: &WindowSpec) -> Result<NewWindow, Error> {
        let cwd = spec.cwd.to_string_lossy().into_owned();
        let command = env_file_command(spec)?;
        let mut tail: Vec<&str> = vec![
            "-P",
            "-F",
            "#{window_id} #{pane_id}",
            "-n",
            &spec.name,
            "-c",
            &cwd,
        ];
        tail.push(&command);

        let target = format!("={}:", self.session);
        let mut args = vec!["new-window", "-d", "-t", &target];
        args.extend(&tail);
        let out = match self.run(&args, None).await {
            Ok(out) => out,
            Err(Error::Gone) | Err(Error::Exit { .. }) if !self.has_session().await? => {
                let (w, h) = (self.size.0.to_string(), self.size.1.to_string());
                let mut args = vec!["new-session", "-d", "-s", &self.session, "-x", &w, "-y", &h];
                args.extend(&tail);
                self.run(&args, None).await?
            }
            Err(err) => return Err(err),
        };
        let mut ids = out.split_whitespace();
        let (Some(window_id), Some(pane_id)) = (ids.next(), ids.next()) else {
            return Err(Error::Exit {
                command: "new-window".into(),
                stderr: format!("unexpected output {out:?}"),
            });
        };
        let created = NewWindow {
            window_id: window_id.to_owned(),
            pane_id: pane_id.to_owned(),
        };
        // Keep the pane after Codex exits so its last screen can be read and the exit reported;
        // and mark it as ours. A window left unmarked would run Codex that no one tracks (and a
        // node with desk topics on would take it for one started at the desk): on failure it
        // is closed again.
        for (option, value) in [
            ("remain-on-exit", "on"),
            (SESSION_OPTION, spec.session_id.as_str()),
        ] {
            let set = self
                .run(
                    &["set-option", "-w", "-t", &created.window_id, option, value],
                    None,
                )
                .await;
            if let Err(err) = set {
                let _ = self
                    .run(&["kill-window", "-t", &created.window_id], None)
                    .await;
                return Err(err);
            }
        }
        Ok(created)
    }

    /// Marks `window` as the node's session `session_id` (a window started at the desk that
    /// the node adopts), so a restarted node finds it again.
    pub(crate) async fn mark_window(&self, window: &str, session_id: &str) -> Result<(), Error> {
        self.run(
            &["set-option", "-w", "-t", window, SESSION_OPTION, session_id],
            None,
        )
        .await
        .map(drop)
    }

    /// The current folder of `pane`.
    pub(crate) async fn pane_path(&self, pane: &str) -> Result<String, Error> {
        let out = self
            .run(
                &["display-message", "-p", "-t", pane, "#{pane_current_path}"],
                None,
            )
            .await?;
        Ok(out.trim().to_owned())
    }

    /// Whether the node's tmux session exists.
    pub(crate) async fn has_session(&self) -> Result<bool, Error> {
        let target = format!("={}", self.session);
        match self.run(&["has-session", "-t", &target], None).await {
            Ok(_) => Ok(true),
            Err(Error::Gone | Error::Exit { .. }) => Ok(false),
            Err(err) => Err(err),
        }
    }

    /// Every pane of the node's session (empty when the session or server does not exist).
    pub(crate) async fn list_panes(&self) -> Result<Vec<PaneInfo>, Error> {
        let target = format!("={}", self.session);
        match self
            .run(
                &["list-panes", "-s", "-t", &target, "-F", PANE_FORMAT],
                None,
            )
            .await
        {
            Ok(out) => Ok(out.lines().filter_map(parse_pane_line).collect()),
            Err(Error::Gone) => Ok(Vec::new()),
            Err(Error::Exit { stderr, .. }) if stderr.contains("can't find session") => {
                Ok(Vec::new())
            }
            Err(err) => Err(err),
        }
    }

    /// One pane's state.
    pub(crate) async fn pane_info(&self, pane: &str) -> Result<PaneInfo, Error> {
        let out = self
            .run(
                &["display-message", "-p", "-t", pane, "-F", PANE_FORMAT],
                None,
            )
            .await?;
        parse_pane_line(out.trim_end_matches('\n')).ok_or(Error::Gone)
    }

    /// The pane's state and its plain screen, in one tmux call.
    pub(crate) async fn snapshot(&self, pane: &str) -> Result<(PaneInfo, String), Error> {
        let out = self
            .run(
                &[
                    "display-message",
                    "-p",
                    "-t",
                    pane,
                    "-F",
                    PANE_FORMAT,
                    ";",
                    "capture-pane",
                    "-p",
                    "-t",
                    pane,
                ],
                None,
            )
            .await?;
        let (first, screen) = out.split_once('\n').unwrap_or((&out, ""));
        let info = parse_pane_line(first).ok_or(Error::Gone)?;
        Ok((info, screen.to_owned()))
    }

    /// The visible screen, plain or with ANSI colour escapes.
    pub(crate) async fn capture(&self, pane: &str, ansi: bool) -> Result<String, Error> {
        let mut args = vec!["capture-pane", "-p", "-t", pane];
        if ansi {
            args.push("-e");
        }
        self.run(&args, None).await
    }

    /// Leaves copy mode (or any other pane mode) so keys reach the program.
    pub(crate) async fn leave_mode(&self, pane: &str) -> Result<(), Error> {
        self.run(&["send-keys", "-t", pane, "-X", "cancel"], None)
            .await
            .map(drop)
    }

    /// Pastes `text` literally as a bracketed paste: the text travels on stdin, never as
    /// arguments, so tmux and shells never interpret it.
    pub(crate) async fn paste(&self, pane: &str, buffer: &str, text: &str) -> Result<(), Error> {
        self.run(&["load-buffer", "-b", buffer, "-"], Some(text.as_bytes()))
            .await?;
        self.run(
            &["paste-buffer", "-p", "-d", "-r", "-b", buffer, "-t", pane],
            None,
        )
        .await
        .map(drop)
    }

    /// Sends one key.
    pub(crate) async fn send_key(&self, pane: &str, key: Key) -> Result<(), Error> {
        let name = key.tmux_name();
        let mut args = vec!["send-keys", "-t", pane];
        if matches!(key, Key::Char(_)) {
            args.push("-l");
        }
        args.push(&name);
        self.run(&args, None).await.map(drop)
    }

    /// Sends several named keys in one tmux call, in order (no [`Key::Char`]: a letter would
    /// need `-l`, which would make every other name literal text too).
    pub(crate) async fn send_keys(&self, pane: &str, keys: &[Key]) -> Result<(), Error> {
        let names: Vec<String> = keys
            .iter()
            .filter(|k| !matches!(k, Key::Char(_)))
            .map(|k| k.tmux_name())
            .collect();
        let mut args = vec!["send-keys", "-t", pane];
        args.extend(names.iter().map(String::as_str));
        self.run(&args, None).await.map(drop)
    }

    /// Kills a window.
    pub(crate) async fn kill_window(&self, window: &str) -> Result<(), Error> {
        self.run(&["kill-window", "-t", window], None)
            .await
            .map(drop)
    }
}

fn is_gone(stderr: &str) -> bool {
    stderr.contains("can't find pane")
        || stderr.contains("can't find window")
        || stderr.contains("no server running")
        || stderr.contains("error connecting to")
}

/// Writes a fresh owner-only launcher — `spec.env` as exports, then delete itself and run
/// `spec.command` with the user's shell, as tmux would have — and returns the window's command,
/// `/bin/sh <launcher>`. The launcher is always read by `/bin/sh`, so quoting is POSIX whatever
/// the login shell (fish, csh) that tmux hands the window's command to; values are quoted with
/// `shlex`; variables whose names a shell cannot take are left out.
fn env_file_command(spec: &WindowSpec) -> Result<String, Error> {
    use std::io::Write;
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    let io = |e: std::io::Error| Error::Exit {
        command: "new-window".into(),
        stderr: format!("cannot write the window's environment: {e}"),
    };
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&spec.env_dir)
        .map_err(io)?;
    let path = spec
        .env_dir
        .join(format!("env-{}", shared::random::hex_token::<8>()));
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .map_err(io)?;
    let unquotable = |what: &str| Error::Exit {
        command: "new-window".into(),
        stderr: format!("{what} cannot be quoted for the shell"),
    };
    let command = shlex::try_quote(&spec.command).map_err(|_| unquotable("the command"))?;
    let launcher = format!(
        "{}rm -f \"$0\"\nexec \"${{SHELL:-/bin/sh}}\" -c {command}\n",
        env_script(&spec.env)
    );
    file.write_all(launcher.as_bytes()).map_err(io)?;
    let path = path.to_string_lossy();
    let quoted = shlex::try_quote(&path).map_err(|_| unquotable("the state directory's path"))?;
    Ok(format!("/bin/sh {quoted}"))
}

/// `export NAME='value'` lines for a POSIX shell.
fn env_script(env: &[(String, String)]) -> String {
    let mut out = String::new();
    for (k, v) in env {
        let name_ok = k
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        let Ok(value) = shlex::try_quote(v) else {
            continue; // a NUL byte: no environment can hold it
        };
        if name_ok {
            out.push_str(&format!("export {k}={value}\n"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn window_environments_are_quoted_for_the_shell_and_bad_names_left_out() {
        let env = vec![
            ("API_KEY".to_owned(), "sk-'x' $(rm -rf ~) `y`".to_owned()),
            ("EMPTY".to_owned(), String::new()),
            ("1BAD".to_owned(), "v".to_owned()),
            ("BAD-NAME".to_owned(), "v".to_owned()),
        ];
        let script = super::env_script(&env);
        assert_eq!(script.lines().count(), 2, "{script}");
        assert!(script.starts_with("export API_KEY="), "{script}");
        assert!(script.contains("export EMPTY=''"), "{script}");
        // The shell reads exactly the value back.
        #[allow(
            clippy::disallowed_methods,
            reason = "checking the script with a real shell"
        )]
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!("{script}printf %s \"$API_KEY\""))
            .output()
            .unwrap();
        assert_eq!(String::from_utf8(out.stdout).unwrap(), env[0].1);
    }

    #[test]
    fn a_window_command_names_the_environment_file_never_its_values() {
        let dir = tempfile::tempdir().unwrap();
        let spec = super::WindowSpec {
            name: "w".into(),
            cwd: dir.path().to_owned(),
            command: "printf '%s' \"$SECRET_TOKEN\"".into(),
            env: vec![("SECRET_TOKEN".into(), "s3cr3t-4242".into())],
            env_dir: dir.path().join("window-env"),
            session_id: "s1".into(),
        };
        let command = super::env_file_command(&spec).unwrap();
        assert!(!command.contains("s3cr3t-4242"), "{command}");
        let mode = std::fs::metadata(&spec.env_dir).unwrap().permissions();
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
            0o700
        );
        // What the window's shell does: the value arrives, the file is gone.
        #[allow(
            clippy::disallowed_methods,
            reason = "checking the command with a real shell"
        )]
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(&command)
            .env_clear()
            .output()
            .unwrap();
        assert_eq!(String::from_utf8(out.stdout).unwrap(), "s3cr3t-4242");
        assert_eq!(std::fs::read_dir(&spec.env_dir).unwrap().count(), 0);
    }

    use super::*;

    #[test]
    fn pane_lines_parse() {
        let p = parse_pane_line("@3\t%7\t0\tcodex\t1\ts-abc\tcodex-proj").unwrap();
        assert_eq!(p.window_id, "@3");
        assert_eq!(p.pane_id, "%7");
        assert!(!p.dead && p.in_mode);
        assert_eq!(p.session_id, "s-abc");
        assert!(parse_pane_line("garbage").is_none());
    }

    #[test]
    fn keys_map_to_tmux_names() {
        assert_eq!(Key::CtrlC.tmux_name(), "C-c");
        assert_eq!(Key::Char('1').tmux_name(), "1");
        assert_eq!(Key::Delete.tmux_name(), "DC");
        assert_eq!(Key::Backspace.tmux_name(), "BSpace");
    }
}
