//! `[[github]]` in the center's config: which repository and label to watch, with which token,
//! where the jobs run and which chat hears about them. The token comes from a variable or a
//! file, is read once at startup, and is never printed (its `Debug` is redacted; errors name
//! the variable or file, never the value).

use std::{path::PathBuf, time::Duration};

use serde::Deserialize;
use shared::{
    config::{ConfigError, expand_tilde},
    secret::Secret,
};

use crate::store::Surface;

/// GitHub's API.
pub(crate) const DEFAULT_API_URL: &str = "https://api.github.com";
/// Seconds between polls unless set.
pub(crate) const DEFAULT_INTERVAL_SECS: u64 = 300;
/// The shortest interval taken. Conditional requests answered `304` do not count against
/// GitHub's rate limit, so a short interval costs little; 2 s keeps tests quick.
pub(crate) const MIN_INTERVAL_SECS: u64 = 2;

/// One `[[github]]` entry as written in the file. Each open issue of `repo` carrying `label`
/// becomes one job (its title, link and body as the prompt) in `folder` on `node`; the job's
/// status and answer go to `chat_id` (and `thread_id`), and its final message is commented back
/// on the issue. (Sending an issue into a bound topic's live session instead is not built.)
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GithubFileConfig {
    /// The repository, `owner/name`.
    pub repo: String,
    /// Open issues with this label become jobs, each once.
    pub label: String,
    /// The environment variable holding the token (a fine-grained token with read and write
    /// access to the repository's issues). Set this or `token_file`.
    pub token_env: Option<String>,
    /// A file holding the token (e.g. `$CREDENTIALS_DIRECTORY/github`).
    pub token_file: Option<PathBuf>,
    /// The node the jobs run on (default `[jobs] default_node`).
    pub node: Option<String>,
    /// The folder they run in: absolute, under the node's roots.
    pub folder: String,
    /// The chat that gets each job's status message and answer.
    pub chat_id: i64,
    /// The forum topic in that chat (default: none).
    pub thread_id: Option<i32>,
    /// The API's base URL (default `https://api.github.com`; GitHub Enterprise Server:
    /// `https://HOST/api/v3`).
    pub api_url: Option<String>,
    /// Seconds between polls of the issue list (default 300, at least 2). Finished jobs are
    /// commented on at the next poll.
    pub interval_secs: Option<u64>,
}

/// A `[[github]]` entry in effect.
#[derive(Debug, Clone)]
pub(crate) struct GithubConfig {
    /// `owner/name`.
    pub(crate) repo: String,
    pub(crate) label: String,
    pub(crate) token: Secret,
    pub(crate) node: String,
    pub(crate) folder: String,
    pub(crate) surface: Surface,
    /// Without a trailing `/`.
    pub(crate) api_url: String,
    pub(crate) interval: Duration,
}

fn invalid(repo: &str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        setting: "github",
        message: format!("{repo:?}: {}", message.into()),
    }
}

/// Checks one `[[github]]` entry (`default_node` when it names none).
pub(crate) fn resolve(
    file: GithubFileConfig,
    default_node: &str,
) -> Result<GithubConfig, ConfigError> {
    let repo = file.repo.trim().to_owned();
    let valid_part = |p: &str| {
        !p.is_empty()
            && p.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    };
    match repo.split_once('/') {
        Some((owner, name)) if valid_part(owner) && valid_part(name) => {}
        _ => return Err(invalid(&repo, "repo must be owner/name")),
    }
    let label = file.label.trim().to_owned();
    if label.is_empty() || label.contains(',') {
        return Err(invalid(&repo, "label must be one label (no commas)"));
    }
    let token = match (&file.token_env, &file.token_file) {
        (Some(var), None) => match std::env::var(var) {
            Ok(t) if !t.trim().is_empty() => t.trim().to_owned(),
            _ => return Err(invalid(&repo, format!("token_env: {var} is not set"))),
        },
        (None, Some(path)) => {
            let path = expand_tilde(path);
            let text = std::fs::read_to_string(&path).map_err(|e| {
                invalid(
                    &repo,
                    format!("token_file: cannot read {}: {}", path.display(), e.kind()),
                )
            })?;
            let token = text.trim();
            if token.is_empty() {
                return Err(invalid(
                    &repo,
                    format!("token_file: {} is empty", path.display()),
                ));
            }
            token.to_owned()
        }
        _ => return Err(invalid(&repo, "set one of token_env and token_file")),
    };
    let folder = file.folder.trim().to_owned();
    if !folder.starts_with('/') {
        return Err(invalid(
            &repo,
            format!("folder {folder:?} is not an absolute path"),
        ));
    }
    let api_url = file
        .api_url
        .as_deref()
        .unwrap_or(DEFAULT_API_URL)
        .trim()
        .trim_end_matches('/')
        .to_owned();
    let scheme_ok = api_url.starts_with("https://") || api_url.starts_with("http://");
    if !scheme_ok || api_url.contains('@') {
        // Not echoed: a URL with credentials in it holds a secret.
        return Err(invalid(
            &repo,
            "api_url must be an http(s) URL without credentials",
        ));
    }
    Ok(GithubConfig {
        repo,
        label,
        token: Secret::new(token),
        node: file.node.unwrap_or_else(|| default_node.to_owned()),
        folder,
        surface: Surface {
            chat_id: file.chat_id,
            thread_id: file.thread_id.unwrap_or(0),
        },
        api_url,
        interval: Duration::from_secs(
            file.interval_secs
                .unwrap_or(DEFAULT_INTERVAL_SECS)
                .max(MIN_INTERVAL_SECS),
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jobs::JobsConfig;

    fn entry(token_file: &std::path::Path) -> GithubFileConfig {
        toml::from_str(&format!(
            "repo = \"octo/app\"\nlabel = \"codex\"\ntoken_file = {:?}\nfolder = \"/srv/app\"\nchat_id = -1001\n",
            token_file.display().to_string()
        ))
        .unwrap()
    }

    #[test]
    fn an_entry_resolves_with_defaults_and_its_token_stays_hidden() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("gh");
        std::fs::write(&file, "ghp_supersecret\n").unwrap();
        let cfg = JobsConfig::default()
            .with_github(vec![entry(&file)])
            .unwrap();
        let gh = &cfg.github[0];
        assert_eq!(gh.token.expose(), "ghp_supersecret");
        assert_eq!(gh.api_url, DEFAULT_API_URL);
        assert_eq!(gh.node, "local");
        assert_eq!(gh.interval, Duration::from_secs(DEFAULT_INTERVAL_SECS));
        assert_eq!(gh.surface.thread_id, 0);
        let shown = format!("{cfg:?}");
        assert!(!shown.contains("supersecret"), "{shown}");
        assert!(shown.contains("octo/app"), "{shown}");
    }

    #[test]
    fn the_shipped_example_entry_parses() {
        let example = include_str!("../../../../deploy/center.example.toml");
        let entry: String = example
            .lines()
            .skip_while(|l| l.trim() != "# [[github]]")
            .skip(1)
            .map_while(|l| l.strip_prefix("# "))
            .map(|l| format!("{l}\n"))
            .collect();
        let parsed: GithubFileConfig = toml::from_str(&entry).unwrap();
        assert_eq!(parsed.repo, "octo-org/app");
        assert_eq!(parsed.interval_secs, Some(DEFAULT_INTERVAL_SECS));
    }

    #[test]
    fn bad_entries_are_named_without_the_token() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("gh");
        std::fs::write(&file, "ghp_supersecret").unwrap();
        let cases: Vec<(GithubFileConfig, &str)> = vec![
            (
                GithubFileConfig {
                    repo: "octo".into(),
                    ..entry(&file)
                },
                "owner/name",
            ),
            (
                GithubFileConfig {
                    folder: "app".into(),
                    ..entry(&file)
                },
                "absolute",
            ),
            (
                GithubFileConfig {
                    token_env: Some("CODEX_FLEET_TEST_UNSET_TOKEN".into()),
                    ..entry(&file)
                },
                "one of token_env and token_file",
            ),
            (
                GithubFileConfig {
                    token_file: Some(dir.path().join("missing")),
                    ..entry(&file)
                },
                "cannot read",
            ),
            (
                GithubFileConfig {
                    api_url: Some("https://user:ghp_supersecret@example.com".into()),
                    ..entry(&file)
                },
                "without credentials",
            ),
            (
                GithubFileConfig {
                    label: "a,b".into(),
                    ..entry(&file)
                },
                "one label",
            ),
        ];
        for (bad, expected) in cases {
            let err = JobsConfig::default()
                .with_github(vec![bad])
                .unwrap_err()
                .to_string();
            assert!(err.contains(expected), "{expected}: {err}");
            assert!(err.starts_with("github") || err.contains("github"), "{err}");
            assert!(!err.contains("supersecret"), "{err}");
        }
        let quick = GithubFileConfig {
            interval_secs: Some(0),
            ..entry(&file)
        };
        let cfg = JobsConfig::default().with_github(vec![quick]).unwrap();
        assert_eq!(
            cfg.github[0].interval,
            Duration::from_secs(MIN_INTERVAL_SECS)
        );
    }
}
