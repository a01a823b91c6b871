//! The result model of `center preflight` and `agent-node preflight`, and how both print it.
//!
//! An operator setting up a machine wants one screen that says what is wrong and what to do about
//! it, in the same words whichever binary they ran (and the center runs the embedded node's
//! checks too). So each check becomes one [`Check`]: a name and an [`Outcome`] that carries the
//! detail for a pass, or the reason and the fix for a warning or a failure. [`render`] turns them
//! into lines (`✓ tmux 3.4`, `✗ Codex not logged in — fix: run codex login`), and
//! [`any_failed`] decides the exit status. Warnings never fail a run: they are for things that
//! work today but are not what we test (an unpinned Codex release, say).

/// How one check came out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// It is fine; the detail says what was found (may be empty).
    Ok(String),
    /// It works, but not the way we test it.
    Warn {
        /// What is off.
        why: String,
        /// What to do about it.
        fix: String,
    },
    /// It will not work.
    Fail {
        /// What is wrong.
        why: String,
        /// What to do about it.
        fix: String,
    },
}

/// One line of a preflight report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    /// What was checked, e.g. `tmux` or `Codex login`.
    pub name: String,
    /// How it came out.
    pub outcome: Outcome,
}

// === impl Check ===

impl Check {
    /// A passed check with what was found.
    pub fn ok(name: impl Into<String>, detail: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            outcome: Outcome::Ok(detail.into()),
        }
    }

    /// A warning: it works, but `why`; `fix` says how to make it right.
    pub fn warn(name: impl Into<String>, why: impl Into<String>, fix: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            outcome: Outcome::Warn {
                why: why.into(),
                fix: fix.into(),
            },
        }
    }

    /// A failure: `why` it will not work and the `fix`.
    pub fn fail(name: impl Into<String>, why: impl Into<String>, fix: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            outcome: Outcome::Fail {
                why: why.into(),
                fix: fix.into(),
            },
        }
    }

    /// Whether this check failed.
    pub fn failed(&self) -> bool {
        matches!(self.outcome, Outcome::Fail { .. })
    }

    /// The same check with `prefix` before its name (e.g. `embedded node: `).
    pub fn prefixed(mut self, prefix: &str) -> Self {
        self.name = format!("{prefix}{}", self.name);
        self
    }

    /// The check as one line: `✓ name detail`, `⚠ name why — fix: …` or `✗ name why — fix: …`.
    pub fn line(&self) -> String {
        let joined = |mark: &str, rest: &str| {
            if rest.is_empty() {
                format!("{mark} {}", self.name)
            } else {
                format!("{mark} {} {rest}", self.name)
            }
        };
        match &self.outcome {
            Outcome::Ok(detail) => joined("✓", detail),
            Outcome::Warn { why, fix } => joined("⚠", &with_fix(why, fix)),
            Outcome::Fail { why, fix } => joined("✗", &with_fix(why, fix)),
        }
    }
}

fn with_fix(why: &str, fix: &str) -> String {
    if fix.is_empty() {
        why.to_owned()
    } else {
        format!("{why} — fix: {fix}")
    }
}

/// All checks, one line each (each ending in a newline).
pub fn render(checks: &[Check]) -> String {
    checks.iter().map(|c| c.line() + "\n").collect()
}

/// Whether any check failed (the preflight commands then exit with status 1).
pub fn any_failed(checks: &[Check]) -> bool {
    checks.iter().any(Check::failed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_carry_mark_name_detail_and_fix() {
        assert_eq!(Check::ok("tmux", "3.4").line(), "✓ tmux 3.4");
        assert_eq!(Check::ok("roots", "").line(), "✓ roots");
        assert_eq!(
            Check::fail("Codex", "not logged in", "run codex login").line(),
            "✗ Codex not logged in — fix: run codex login"
        );
        assert_eq!(
            Check::warn("Codex version", "0.170.0 is not tested", "install 0.171.0").line(),
            "⚠ Codex version 0.170.0 is not tested — fix: install 0.171.0"
        );
        assert_eq!(Check::fail("x", "broken", "").line(), "✗ x broken");
        assert_eq!(
            Check::ok("tmux", "3.4").prefixed("embedded node: ").line(),
            "✓ embedded node: tmux 3.4"
        );
    }

    #[test]
    fn only_failures_fail_the_run() {
        let mut checks = vec![Check::ok("a", "1"), Check::warn("b", "old", "upgrade")];
        assert!(!any_failed(&checks));
        assert_eq!(render(&checks), "✓ a 1\n⚠ b old — fix: upgrade\n");
        checks.push(Check::fail("c", "missing", "install it"));
        assert!(any_failed(&checks));
        assert!(render(&checks).ends_with("✗ c missing — fix: install it\n"));
        assert!(!any_failed(&[]));
    }
}
