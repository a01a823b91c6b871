//! The `codex exec` command line of a job, built from a `StartJob` without a shell: every value
//! is its own argv element, settings are checked against the values Codex accepts before anything
//! runs (a bad value is the center's mistake, not a failed job), and the prompt goes last, after
//! `--`, so a prompt starting with `-` is never read as a flag.
//!
//! Both supported Codex versions (0.169, 0.171) take the same flags here. `exec resume` and
//! `exec review` do not take `-s`, so the sandbox goes through `-c sandbox_mode=…` for every kind;
//! `-C`, `-o`, `--json` and `--skip-git-repo-check` are `exec` options placed before the
//! subcommand. Review takes a target (`--uncommitted`, `--base`, `--commit`) *or* instructions,
//! never both (Codex refuses the pair).

use std::{ffi::OsString, path::Path};

use proto::v1;

/// Longest job id.
const MAX_JOB_ID: usize = 64;
/// Prompt characters shown in a command line.
const SHOWN_PROMPT: usize = 60;

/// A `StartJob` that cannot run as asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub(crate) struct Invalid(pub(crate) String);

fn invalid(msg: impl Into<String>) -> Invalid {
    Invalid(msg.into())
}

/// Whether `id` is a job id: 1 to 64 of `[A-Za-z0-9-]` (it names a folder).
pub(crate) fn valid_job_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_JOB_ID
        && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
}

/// The arguments after the Codex program, and the command line shown to people.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Invocation {
    pub(crate) args: Vec<OsString>,
    /// Shell-quoted, with the prompt shortened and instructions replaced by their length.
    pub(crate) display: String,
}

/// The arguments for `req`, run in `cwd` (already resolved), writing the last message to
/// `last_message`.
pub(crate) fn build(
    program: &str,
    req: &v1::StartJob,
    cwd: &Path,
    last_message: &Path,
) -> Result<Invocation, Invalid> {
    let mut args = Args::default();
    args.push_all(["exec", "--json", "--skip-git-repo-check"]);
    args.push("-C");
    args.push_path(cwd);
    args.push("-o");
    args.push_path(last_message);
    settings(
        &mut args,
        req.settings.as_ref().unwrap_or(&v1::JobSettings::default()),
    )?;
    let prompt = req.prompt.as_str();
    if prompt.contains('\0') {
        return Err(invalid("the prompt contains a NUL character"));
    }
    match v1::JobKind::try_from(req.kind).unwrap_or(v1::JobKind::Unspecified) {
        v1::JobKind::Unspecified | v1::JobKind::Exec => {
            if prompt.trim().is_empty() {
                return Err(invalid("a job needs a prompt"));
            }
            args.push("--");
            args.push_prompt(prompt);
        }
        v1::JobKind::Resume => {
            let thread = req.resume_thread_id.trim();
            if thread.is_empty() || thread.len() > 200 || thread.chars().any(char::is_control) {
                return Err(invalid("resume needs a Codex thread id or name"));
            }
            if prompt.trim().is_empty() {
                return Err(invalid("resume needs a prompt"));
            }
            args.push_all(["resume", "--", thread]);
            args.push_prompt(prompt);
        }
        v1::JobKind::Review => {
            args.push("review");
            let target = review_target(&req.review_target)?;
            match (target, prompt.trim().is_empty()) {
                (Some(flag), true) => args.push(&flag),
                (None, false) => {
                    args.push("--");
                    args.push_prompt(prompt);
                }
                (None, true) => args.push("--uncommitted"),
                (Some(_), false) => {
                    return Err(invalid(
                        "a review takes a target or instructions, not both (Codex refuses the pair)",
                    ));
                }
            }
        }
    }
    Ok(args.finish(program))
}

/// `uncommitted` | `base <branch>` | `commit <sha>` as one Codex flag (`--base=<branch>`, so a
/// branch starting with `-` stays a value).
fn review_target(target: &str) -> Result<Option<String>, Invalid> {
    let target = target.trim();
    if target.is_empty() {
        return Ok(None);
    }
    let (word, rest) = target
        .split_once(char::is_whitespace)
        .map_or((target, ""), |(w, r)| (w, r.trim()));
    let ok_ref = |r: &str| {
        !r.is_empty()
            && r.len() <= 200
            && !r.starts_with('-')
            && r.chars().all(|c| c.is_ascii_graphic())
    };
    match word {
        "uncommitted" if rest.is_empty() => Ok(Some("--uncommitted".into())),
        "base" if ok_ref(rest) => Ok(Some(format!("--base={rest}"))),
        "commit" if ok_ref(rest) => Ok(Some(format!("--commit={rest}"))),
        _ => Err(invalid(format!(
            "unknown review target {target:?} (uncommitted, base <branch> or commit <sha>)"
        ))),
    }
}

fn settings(args: &mut Args, s: &v1::JobSettings) -> Result<(), Invalid> {
    let model = s.model.trim();
    if !model.is_empty() {
        let ok = model.len() <= 100
            && !model.starts_with('-')
            && model
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._:/-".contains(c));
        if !ok {
            return Err(invalid(format!("{model:?} is not a model name")));
        }
        args.push_all(["-m", model]);
    }
    one_of(
        args,
        "model_reasoning_effort",
        &s.reasoning_effort,
        &["minimal", "low", "medium", "high", "xhigh"],
    )?;
    one_of(
        args,
        "sandbox_mode",
        &s.sandbox,
        &["read-only", "workspace-write", "danger-full-access"],
    )?;
    one_of(
        args,
        "approval_policy",
        &s.approvals,
        &["untrusted", "on-failure", "on-request", "never"],
    )?;
    one_of(
        args,
        "web_search",
        &s.web_search,
        &["live", "cached", "disabled"],
    )?;
    for (flag, features) in [
        ("--enable", &s.enable_features),
        ("--disable", &s.disable_features),
    ] {
        for f in features {
            let ok = !f.is_empty()
                && f.len() <= 64
                && f.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
            if !ok {
                return Err(invalid(format!("{f:?} is not a Codex feature name")));
            }
            args.push_all([flag, f]);
        }
    }
    if !s.instructions.trim().is_empty() {
        if s.instructions.contains('\0') {
            return Err(invalid("the instructions contain a NUL character"));
        }
        // A TOML string (the value of `-c` is parsed as TOML), so any text survives.
        let value = toml::Value::String(s.instructions.clone()).to_string();
        args.push("-c");
        args.push_hidden(
            format!("developer_instructions={value}"),
            &format!(
                "developer_instructions=<{} characters>",
                s.instructions.chars().count()
            ),
        );
    }
    Ok(())
}

fn one_of(args: &mut Args, key: &str, value: &str, allowed: &[&str]) -> Result<(), Invalid> {
    let value = value.trim();
    if value.is_empty() {
        return Ok(());
    }
    if !allowed.contains(&value) {
        return Err(invalid(format!(
            "{value:?} is not a valid {key} (one of {})",
            allowed.join(", ")
        )));
    }
    args.push("-c");
    args.push(&format!("{key}=\"{value}\""));
    Ok(())
}

/// Arguments with their displayed form.
#[derive(Default)]
struct Args {
    args: Vec<OsString>,
    shown: Vec<String>,
}

impl Args {
    fn push(&mut self, arg: &str) {
        self.args.push(arg.into());
        self.shown.push(quote(arg));
    }

    fn push_all<'a>(&mut self, args: impl IntoIterator<Item = &'a str>) {
        for a in args {
            self.push(a);
        }
    }

    fn push_path(&mut self, path: &Path) {
        self.args.push(path.as_os_str().to_owned());
        self.shown.push(quote(&path.to_string_lossy()));
    }

    fn push_prompt(&mut self, prompt: &str) {
        self.args.push(prompt.into());
        let mut short: String = prompt
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .take(SHOWN_PROMPT)
            .collect();
        if prompt.chars().count() > SHOWN_PROMPT {
            short.push('…');
        }
        self.shown.push(quote(&short));
    }

    fn push_hidden(&mut self, arg: String, shown: &str) {
        self.args.push(arg.into());
        self.shown.push(quote(shown));
    }

    fn finish(self, program: &str) -> Invocation {
        let mut display = quote(program);
        for s in self.shown {
            display.push(' ');
            display.push_str(&s);
        }
        Invocation {
            args: self.args,
            display,
        }
    }
}

fn quote(s: &str) -> String {
    shlex::try_quote(s).map_or_else(|_| format!("{s:?}"), |q| q.into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn start(kind: v1::JobKind, prompt: &str) -> v1::StartJob {
        v1::StartJob {
            job_id: "j1".into(),
            cwd: "/w".into(),
            kind: kind as i32,
            prompt: prompt.into(),
            ..Default::default()
        }
    }

    fn args(inv: &Invocation) -> Vec<String> {
        inv.args
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn job_ids_are_checked() {
        assert!(valid_job_id("job-42-ABC"));
        assert!(valid_job_id(&"a".repeat(64)));
        for bad in ["", "a/b", "../x", "a b", "ä", &"a".repeat(65), "x_y", "x.y"] {
            assert!(!valid_job_id(bad), "{bad:?}");
        }
    }

    #[test]
    fn exec_puts_the_prompt_after_a_double_dash() {
        let mut req = start(v1::JobKind::Exec, "--help; rm -rf ~ $(id)");
        req.settings = Some(v1::JobSettings {
            model: "gpt-5.1-codex".into(),
            reasoning_effort: "high".into(),
            sandbox: "workspace-write".into(),
            approvals: "never".into(),
            web_search: "disabled".into(),
            enable_features: vec!["shell_tool".into()],
            disable_features: vec!["apps".into()],
            instructions: "Plan only.\n\"quoted\"".into(),
            ..Default::default()
        });
        let inv = build("codex", &req, Path::new("/w"), Path::new("/s/last.md")).unwrap();
        let a = args(&inv);
        assert_eq!(
            &a[..7],
            &[
                "exec",
                "--json",
                "--skip-git-repo-check",
                "-C",
                "/w",
                "-o",
                "/s/last.md"
            ]
        );
        assert!(a.windows(2).any(|w| w == ["-m", "gpt-5.1-codex"]));
        assert!(
            a.windows(2)
                .any(|w| w == ["-c", "model_reasoning_effort=\"high\""])
        );
        assert!(
            a.windows(2)
                .any(|w| w == ["-c", "sandbox_mode=\"workspace-write\""])
        );
        assert!(
            a.windows(2)
                .any(|w| w == ["-c", "approval_policy=\"never\""])
        );
        assert!(a.windows(2).any(|w| w == ["-c", "web_search=\"disabled\""]));
        assert!(a.windows(2).any(|w| w == ["--enable", "shell_tool"]));
        assert!(a.windows(2).any(|w| w == ["--disable", "apps"]));
        let instr = a
            .iter()
            .find(|x| x.starts_with("developer_instructions="))
            .unwrap();
        let parsed: toml::Table = toml::from_str(instr).unwrap();
        assert_eq!(
            parsed["developer_instructions"].as_str(),
            Some("Plan only.\n\"quoted\"")
        );
        assert_eq!(&a[a.len() - 2..], &["--", "--help; rm -rf ~ $(id)"]);
        assert!(!inv.display.contains("Plan only"), "{}", inv.display);
        assert!(
            inv.display.starts_with("codex exec --json"),
            "{}",
            inv.display
        );
    }

    #[test]
    fn long_prompts_are_shortened_in_the_display_only() {
        let prompt = "x".repeat(500);
        let inv = build(
            "codex",
            &start(v1::JobKind::Exec, &prompt),
            Path::new("/w"),
            Path::new("/o"),
        )
        .unwrap();
        assert_eq!(args(&inv).last().unwrap(), &prompt);
        assert!(inv.display.len() < 200, "{}", inv.display);
        assert!(inv.display.ends_with("…'"), "{}", inv.display);
    }

    #[test]
    fn resume_and_review_shapes() {
        let mut req = start(v1::JobKind::Resume, "go on");
        req.resume_thread_id = "01a2-b3".into();
        let a = args(&build("codex", &req, Path::new("/w"), Path::new("/o")).unwrap());
        assert_eq!(&a[a.len() - 4..], &["resume", "--", "01a2-b3", "go on"]);

        let mut req = start(v1::JobKind::Review, "");
        req.review_target = "base main".into();
        let a = args(&build("codex", &req, Path::new("/w"), Path::new("/o")).unwrap());
        assert_eq!(&a[a.len() - 2..], &["review", "--base=main"]);

        let req = start(v1::JobKind::Review, "");
        let a = args(&build("codex", &req, Path::new("/w"), Path::new("/o")).unwrap());
        assert_eq!(a.last().unwrap(), "--uncommitted");

        let req = start(v1::JobKind::Review, "focus on errors");
        let a = args(&build("codex", &req, Path::new("/w"), Path::new("/o")).unwrap());
        assert_eq!(&a[a.len() - 3..], &["review", "--", "focus on errors"]);
    }

    #[test]
    fn bad_settings_are_named_before_anything_runs() {
        let cases = [
            v1::JobSettings {
                sandbox: "yolo".into(),
                ..Default::default()
            },
            v1::JobSettings {
                reasoning_effort: "max".into(),
                ..Default::default()
            },
            v1::JobSettings {
                model: "--config=x".into(),
                ..Default::default()
            },
            v1::JobSettings {
                enable_features: vec!["a b".into()],
                ..Default::default()
            },
        ];
        for s in cases {
            let mut req = start(v1::JobKind::Exec, "hi");
            req.settings = Some(s.clone());
            assert!(
                build("codex", &req, Path::new("/w"), Path::new("/o")).is_err(),
                "{s:?}"
            );
        }
        assert!(
            build(
                "codex",
                &start(v1::JobKind::Exec, " "),
                Path::new("/w"),
                Path::new("/o")
            )
            .is_err()
        );
        let mut req = start(v1::JobKind::Review, "x");
        req.review_target = "commit abc".into();
        assert!(build("codex", &req, Path::new("/w"), Path::new("/o")).is_err());
        req.review_target = "base -x".into();
        req.prompt.clear();
        assert!(build("codex", &req, Path::new("/w"), Path::new("/o")).is_err());
    }
}
