//! How the command lines take a join code (`agent-node join`, `center nodes add`): from standard
//! input — prompted for, without echo, on a terminal; one line otherwise — or from a file
//! (`--code-file`). Never from an argument: every local user can read a process's arguments in
//! `/proc/<pid>/cmdline`, and a join code is a one-time secret. A code given as an argument is
//! refused with a message saying how to pass it.

use std::{
    io::{BufRead, IsTerminal, Write},
    path::{Path, PathBuf},
};

/// The longest line read as a code (a code is about 120 characters).
const MAX_LINE: u64 = 4096;

/// Why no join code could be read. Messages never contain the code.
#[derive(Debug, thiserror::Error)]
pub enum CodeInputError {
    /// The code was given as an argument.
    #[error(
        "refusing a join code on the command line: every local user can read it in /proc/<pid>/cmdline. Leave it out and paste it when asked (or pipe it on standard input), or use --code-file <path>"
    )]
    InArgv,
    /// The code file could not be read.
    #[error("cannot read the join code from {}: {source}", path.display())]
    File {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Standard input could not be read.
    #[error("cannot read the join code from standard input: {0}")]
    Stdin(#[source] std::io::Error),
    /// Nothing was given.
    #[error(
        "no join code given: paste it when asked, pipe it on standard input, or use --code-file <path>"
    )]
    Empty,
}

/// The join code for a command: `--code-file` if given, else standard input. `in_argv` is what
/// the command line held where the code used to go (refused if anything).
pub fn read_join_code(
    in_argv: Option<&str>,
    code_file: Option<&Path>,
) -> Result<String, CodeInputError> {
    if in_argv.is_some() {
        return Err(CodeInputError::InArgv);
    }
    let line = match code_file {
        Some(path) => std::fs::read_to_string(path).map_err(|source| CodeInputError::File {
            path: path.to_owned(),
            source,
        })?,
        None => from_stdin()?,
    };
    first_line(&line)
}

/// The code in `text`: its first non-blank line, trimmed.
fn first_line(text: &str) -> Result<String, CodeInputError> {
    text.lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .map(str::to_owned)
        .ok_or(CodeInputError::Empty)
}

fn from_stdin() -> Result<String, CodeInputError> {
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        return read_line(stdin.lock());
    }
    eprint!("Join code (input hidden): ");
    let _ = std::io::stderr().flush();
    let echo = EchoOff::new(&stdin);
    let line = read_line(stdin.lock());
    drop(echo);
    eprintln!();
    line
}

fn read_line(input: impl BufRead) -> Result<String, CodeInputError> {
    let mut line = String::new();
    input
        .take(MAX_LINE)
        .read_line(&mut line)
        .map_err(CodeInputError::Stdin)?;
    Ok(line)
}

/// Turns the terminal's echo off while it lives (nothing happens if that is impossible).
struct EchoOff<'a> {
    stdin: &'a std::io::Stdin,
    saved: Option<rustix::termios::Termios>,
}

impl<'a> EchoOff<'a> {
    fn new(stdin: &'a std::io::Stdin) -> Self {
        use rustix::termios::{LocalModes, OptionalActions, tcgetattr, tcsetattr};
        let saved = tcgetattr(stdin).ok();
        if let Some(saved) = &saved {
            let mut quiet = saved.clone();
            quiet.local_modes.remove(LocalModes::ECHO);
            let _ = tcsetattr(stdin, OptionalActions::Now, &quiet);
        }
        Self { stdin, saved }
    }
}

impl Drop for EchoOff<'_> {
    fn drop(&mut self) {
        if let Some(saved) = &self.saved {
            let _ = rustix::termios::tcsetattr(
                self.stdin,
                rustix::termios::OptionalActions::Now,
                saved,
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_code_in_argv_is_refused_with_how_to_pass_it() {
        let err = read_join_code(Some("cfj1.secret"), None).unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, CodeInputError::InArgv));
        assert!(
            msg.contains("--code-file") && msg.contains("standard input"),
            "{msg}"
        );
        assert!(
            !msg.contains("cfj1.secret"),
            "the code is never echoed: {msg}"
        );
    }

    #[test]
    fn the_code_is_the_first_non_blank_line_of_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("code");
        std::fs::write(&path, "\n  cfj1.abc  \nrest\n").unwrap();
        assert_eq!(read_join_code(None, Some(&path)).unwrap(), "cfj1.abc");
        std::fs::write(&path, " \n").unwrap();
        assert!(matches!(
            read_join_code(None, Some(&path)),
            Err(CodeInputError::Empty)
        ));
        let missing = dir.path().join("missing");
        let err = read_join_code(None, Some(&missing)).unwrap_err();
        assert!(err.to_string().contains("missing"), "{err}");
    }

    #[test]
    fn one_line_is_read_from_a_pipe() {
        let line = read_line(std::io::Cursor::new("cfj1.xyz\nnot this\n")).unwrap();
        assert_eq!(first_line(&line).unwrap(), "cfj1.xyz");
        let line = read_line(std::io::Cursor::new("")).unwrap();
        assert!(matches!(first_line(&line), Err(CodeInputError::Empty)));
    }
}
