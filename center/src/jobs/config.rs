//! `[jobs]` in the center's config: where jobs run by default, how many run at once, which
//! prompts need approval and for how long one may wait, which files come back as artifacts.

use std::time::Duration;

use serde::Deserialize;
use shared::config::ConfigError;

use crate::router::jobs::{DEFAULT_RISKY, Limits};

/// `[jobs]` as written in the file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobsFileConfig {
    /// The node for jobs of a chat that is not bound and has no `/workdir` (default `local`).
    pub default_node: Option<String>,
    /// The folder on it (absolute, under the node's roots). Without one such chats must bind
    /// a topic or use `/workdir set` first.
    pub default_workdir: Option<String>,
    /// Jobs running at once on one node (default 2).
    pub per_node_limit: Option<usize>,
    /// Jobs running at once in the fleet (default 8).
    pub fleet_limit: Option<usize>,
    /// Regular expressions (case-insensitive) of prompts that wait for approval; replaces the
    /// defaults (recursive deletes, force pushes, dropping tables, sudo, secrets leaving the
    /// machine, production deploys, pipe-to-shell). `[]` turns the prompt gate off; jobs asking
    /// for danger-full-access always wait.
    pub risky_patterns: Option<Vec<String>>,
    /// How long a job waits for approval before it expires (default 60 minutes).
    pub approval_minutes: Option<u64>,
    /// Extensions of files sent back when a job creates or changes them.
    pub artifact_extensions: Option<Vec<String>>,
    /// The largest artifact sent, in MB (default and most 50: Telegram's limit).
    pub artifact_max_mb: Option<u64>,
    /// Seconds between SIGTERM and SIGKILL when a job is cancelled (default 5).
    pub cancel_grace_secs: Option<u64>,
    /// Schedule runs (`/schedule`) that fell due while the center was down: `"once"` (default:
    /// one run as soon as it starts, however many were missed) or `"skip"` (none; each schedule
    /// waits for its next time).
    pub missed_runs: Option<MissedRuns>,
}

/// `[jobs] missed_runs`: what happens to schedule runs that fell due while the center was down.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MissedRuns {
    /// One run as soon as the center starts, however many were missed.
    #[default]
    Once,
    /// None: the schedule waits for its next time.
    Skip,
}

/// The job settings in effect.
#[derive(Debug, Clone)]
pub struct JobsConfig {
    pub(crate) default_node: String,
    pub(crate) default_workdir: Option<String>,
    pub(crate) limits: Limits,
    pub(crate) risky: Vec<regex::Regex>,
    pub(crate) approval_ttl: Duration,
    pub(crate) artifact_extensions: Vec<String>,
    pub(crate) artifact_max_bytes: u64,
    pub(crate) cancel_grace: Duration,
    pub(crate) missed_runs: MissedRuns,
    /// `[[github]]` entries (set by the center's config, not by `[jobs]`).
    pub(crate) github: Vec<super::github::GithubConfig>,
}

impl Default for JobsConfig {
    fn default() -> Self {
        Self::resolve(JobsFileConfig::default()).expect("the defaults are valid")
    }
}

impl JobsConfig {
    /// Checks the file's `[jobs]` and fills in defaults.
    pub fn resolve(file: JobsFileConfig) -> Result<Self, ConfigError> {
        let patterns: Vec<String> = file
            .risky_patterns
            .unwrap_or_else(|| DEFAULT_RISKY.iter().map(|p| (*p).to_owned()).collect());
        let mut risky = Vec::new();
        for p in &patterns {
            let case_insensitive = if p.starts_with("(?i)") {
                p.clone()
            } else {
                format!("(?i){p}")
            };
            risky.push(
                regex::Regex::new(&case_insensitive).map_err(|e| ConfigError::Invalid {
                    setting: "jobs.risky_patterns",
                    message: format!("{p:?} is not a regular expression: {e}"),
                })?,
            );
        }
        if let Some(dir) = &file.default_workdir
            && !dir.starts_with('/')
        {
            return Err(ConfigError::Invalid {
                setting: "jobs.default_workdir",
                message: format!("{dir:?} is not an absolute path"),
            });
        }
        let extensions = file.artifact_extensions.unwrap_or_else(|| {
            [
                "png", "jpg", "jpeg", "gif", "webp", "mp4", "mov", "webm", "pdf", "csv", "txt",
                "md", "zip", "tar", "gz",
            ]
            .iter()
            .map(|e| (*e).to_owned())
            .collect()
        });
        Ok(Self {
            default_node: file
                .default_node
                .unwrap_or_else(|| crate::nodes::LOCAL.to_owned()),
            default_workdir: file.default_workdir,
            limits: Limits {
                per_node: file.per_node_limit.unwrap_or(2).clamp(1, 64),
                fleet: file.fleet_limit.unwrap_or(8).clamp(1, 512),
            },
            risky,
            approval_ttl: Duration::from_secs(
                60 * file.approval_minutes.unwrap_or(60).clamp(1, 7 * 24 * 60),
            ),
            artifact_extensions: extensions
                .into_iter()
                .map(|e| e.trim_start_matches('.').to_ascii_lowercase())
                .collect(),
            artifact_max_bytes: file.artifact_max_mb.unwrap_or(50).clamp(1, 50) * 1024 * 1024,
            cancel_grace: Duration::from_secs(file.cancel_grace_secs.unwrap_or(5).clamp(1, 300)),
            missed_runs: file.missed_runs.unwrap_or_default(),
            github: Vec::new(),
        })
    }
}

impl JobsConfig {
    /// Adds the checked `[[github]]` entries (read from the file's top level, not `[jobs]`).
    pub(crate) fn with_github(
        mut self,
        entries: Vec<super::github::GithubFileConfig>,
    ) -> Result<Self, ConfigError> {
        for entry in entries {
            let resolved = super::github::config::resolve(entry, &self.default_node)?;
            self.github.push(resolved);
        }
        Ok(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_checks() {
        let d = JobsConfig::default();
        assert_eq!(
            d.limits,
            Limits {
                per_node: 2,
                fleet: 8
            }
        );
        assert_eq!(d.default_node, "local");
        assert!(!d.risky.is_empty());
        let bad = JobsFileConfig {
            risky_patterns: Some(vec!["(".into()]),
            ..JobsFileConfig::default()
        };
        let err = JobsConfig::resolve(bad).unwrap_err().to_string();
        assert!(err.contains("jobs.risky_patterns"), "{err}");
        let rel = JobsFileConfig {
            default_workdir: Some("proj".into()),
            ..JobsFileConfig::default()
        };
        assert!(JobsConfig::resolve(rel).is_err());
        let custom = JobsFileConfig {
            risky_patterns: Some(vec!["launch".into()]),
            ..JobsFileConfig::default()
        };
        let c = JobsConfig::resolve(custom).unwrap();
        assert!(c.risky[0].is_match("LAUNCH it"), "case-insensitive");
    }
}
