//! Helpers for running the real Codex CLI in tests: finding the pinned binary and preparing a
//! private `CODEX_HOME` whose config points at the [`crate::fake_model::FakeModel`].
//!
//! The tests run against every version in [`SUPPORTED_CODEX_VERSIONS`] (`tests/run` installs
//! them all and runs the e2e tests once per version). The binary comes from `CODEX_BIN` (set by
//! the test script) or the cache path the setup script installs to; `CODEX_EXPECTED_VERSION`
//! says which version that binary must be. A missing binary or another version is an error, never
//! a skipped test.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use anyhow::{Context as _, bail};
use tempfile::TempDir;

/// The Codex CLI versions the tests and the recorded fixtures are pinned to (oldest first);
/// `tests/run` installs each and runs the e2e tests against each.
pub const SUPPORTED_CODEX_VERSIONS: &[&str] = &["0.169.0", "0.171.0"];

/// The version used when neither `CODEX_EXPECTED_VERSION` nor `CODEX_BIN` says otherwise.
pub const PINNED_CODEX_VERSION: &str = SUPPORTED_CODEX_VERSIONS[0];

/// Environment variable naming the version `CODEX_BIN` must report (set by `tests/run` with
/// each `CODEX_BIN`, so a mix-up fails loudly instead of testing the wrong release twice).
pub const EXPECTED_VERSION_VAR: &str = "CODEX_EXPECTED_VERSION";

/// Value of `FAKE_OPENAI_API_KEY` in [`CodexHome::env`].
pub const FAKE_API_KEY: &str = "fake-key";

/// A shell stand-in for the Codex TUI, for benches that write rollouts themselves: it draws
/// what the node reads on a Codex screen — submitted messages as `› …` history, then the
/// composer `› ` with the cursor in it (so typed text shows there), a blank line and a footer —
/// and takes each line typed (Enter) into the history. No model, no transcript.
pub const STAND_IN_CODEX: &str = "h=''; while :; do printf '\\033[2J\\033[H%b\\342\\200\\272 \\n\\n  footer\\n\\033[3A\\033[3G' \"$h\"; IFS= read -r l || exit; h=\"$h\\342\\200\\272 $l\\n\\n\"; done";

/// Where the setup script installs Codex `version`: `$CODEX_FLEET_CACHE` (default
/// `~/.cache/codex-fleet`)`/codex-<version>/node_modules/.bin/codex`.
pub fn default_codex_bin(version: &str) -> PathBuf {
    let cache = match std::env::var_os("CODEX_FLEET_CACHE") {
        Some(cache) if !cache.is_empty() => PathBuf::from(cache),
        _ => {
            let home = std::env::var_os("HOME").unwrap_or_else(|| "/root".into());
            PathBuf::from(home).join(".cache/codex-fleet")
        }
    };
    cache.join(format!("codex-{version}/node_modules/.bin/codex"))
}

/// Path of the Codex CLI under test, checked once per process with `--version`.
///
/// Reads `CODEX_BIN`, else falls back to [`default_codex_bin`] of the expected version if it
/// exists. The binary must report `CODEX_EXPECTED_VERSION` when that is set, else a version in
/// [`SUPPORTED_CODEX_VERSIONS`]. Fails with a message saying how to fix it otherwise.
pub fn codex_bin() -> anyhow::Result<PathBuf> {
    static BIN: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    BIN.get_or_init(|| find_codex_bin().map_err(|error| format!("{error:#}")))
        .clone()
        .map_err(anyhow::Error::msg)
}

/// The version the Codex CLI under test reports (see [`codex_bin`]).
pub fn codex_bin_version() -> anyhow::Result<String> {
    static VERSION: OnceLock<Result<String, String>> = OnceLock::new();
    VERSION
        .get_or_init(|| {
            codex_bin()
                .and_then(|bin| codex_version(&bin))
                .map_err(|error| format!("{error:#}"))
        })
        .clone()
        .map_err(anyhow::Error::msg)
}

fn expected_version() -> anyhow::Result<Option<String>> {
    match std::env::var(EXPECTED_VERSION_VAR) {
        Ok(version) if !version.is_empty() => {
            if !SUPPORTED_CODEX_VERSIONS.contains(&version.as_str()) {
                bail!(
                    "{EXPECTED_VERSION_VAR}={version} is not a supported Codex CLI version \
                     (supported: {})",
                    SUPPORTED_CODEX_VERSIONS.join(", ")
                );
            }
            Ok(Some(version))
        }
        _ => Ok(None),
    }
}

fn find_codex_bin() -> anyhow::Result<PathBuf> {
    let expected = expected_version()?;
    let fallback_version = expected.as_deref().unwrap_or(PINNED_CODEX_VERSION);
    let fallback = default_codex_bin(fallback_version);
    let bin = match std::env::var_os("CODEX_BIN") {
        Some(bin) if !bin.is_empty() => PathBuf::from(bin),
        _ if fallback.exists() => fallback,
        _ => bail!(
            "Codex CLI {fallback_version} not found: CODEX_BIN is not set and {} does not \
             exist; install it with the project's test script (bash tests/run; it runs \
             npm install @openai/codex@{fallback_version}) or set CODEX_BIN",
            fallback.display()
        ),
    };
    let version = codex_version(&bin)?;
    check_version(&bin, &version, expected.as_deref())?;
    Ok(bin)
}

fn check_version(bin: &Path, version: &str, expected: Option<&str>) -> anyhow::Result<()> {
    match expected {
        Some(expected) if version != expected => bail!(
            "{} is Codex CLI {version}, but {EXPECTED_VERSION_VAR} is {expected}; set CODEX_BIN \
             to a {expected} binary",
            bin.display()
        ),
        None if !SUPPORTED_CODEX_VERSIONS.contains(&version) => bail!(
            "{} is Codex CLI {version}, but the tests and fixtures are pinned to {}; set \
             CODEX_BIN to one of those",
            bin.display(),
            SUPPORTED_CODEX_VERSIONS.join(" or ")
        ),
        _ => Ok(()),
    }
}

/// Runs `BIN --version` and returns the version number (`codex-cli 0.169.0` → `0.169.0`).
pub fn codex_version(bin: &Path) -> anyhow::Result<String> {
    #[allow(
        clippy::disallowed_methods,
        reason = "test harness: checking the Codex binary is not tmux-driven process spawning"
    )]
    let output = std::process::Command::new(bin)
        .arg("--version")
        .stdin(std::process::Stdio::null())
        .output()
        .with_context(|| format!("running {} --version", bin.display()))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        bail!(
            "{} --version failed ({}): {}{}",
            bin.display(),
            output.status,
            stdout.trim(),
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    parse_version(&stdout).with_context(|| {
        format!(
            "unexpected `{} --version` output: {stdout:?}",
            bin.display()
        )
    })
}

fn parse_version(stdout: &str) -> Option<String> {
    let line = stdout.lines().find(|line| line.starts_with("codex"))?;
    line.split_whitespace().last().map(str::to_owned)
}

/// A temporary `CODEX_HOME` with a `config.toml` that points Codex at a fake model server.
///
/// Deleted on drop (with any rollouts in it).
#[derive(Debug)]
pub struct CodexHome {
    dir: TempDir,
}

/// Options for [`CodexHome`]; start with [`CodexHome::builder`].
#[derive(Debug, Clone)]
pub struct CodexHomeBuilder {
    base_url: String,
    trusted_dirs: Vec<PathBuf>,
    paste_burst: bool,
    daemon: bool,
}

// === impl CodexHome ===

impl CodexHome {
    /// A home whose fake provider uses `model_base_url`, trusting `trusted_dirs` (which skips the
    /// "Trust this folder?" screen there) and with the TUI's paste-burst detection on or off.
    /// The shared app-server daemon is off.
    pub fn new(
        model_base_url: &str,
        trusted_dirs: &[&Path],
        paste_burst: bool,
    ) -> anyhow::Result<Self> {
        let mut builder = Self::builder(model_base_url).paste_burst(paste_burst);
        for dir in trusted_dirs {
            builder = builder.trust(dir);
        }
        builder.build()
    }

    /// Starts a builder with the defaults users have: paste-burst detection on, no trusted
    /// dirs; and the one test default: daemon off.
    pub fn builder(model_base_url: &str) -> CodexHomeBuilder {
        CodexHomeBuilder {
            base_url: model_base_url.to_owned(),
            trusted_dirs: Vec::new(),
            paste_burst: true,
            daemon: false,
        }
    }

    /// The `CODEX_HOME` directory.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// `$CODEX_HOME/config.toml`.
    pub fn config_path(&self) -> PathBuf {
        self.path().join("config.toml")
    }

    /// `$CODEX_HOME/sessions`, where rollouts go (`YYYY/MM/DD/rollout-*.jsonl`).
    pub fn sessions_dir(&self) -> PathBuf {
        self.path().join("sessions")
    }

    /// Environment Codex needs: `CODEX_HOME` and `FAKE_OPENAI_API_KEY`.
    pub fn env(&self) -> Vec<(String, String)> {
        vec![
            ("CODEX_HOME".to_owned(), self.path().display().to_string()),
            ("FAKE_OPENAI_API_KEY".to_owned(), FAKE_API_KEY.to_owned()),
        ]
    }

    /// All rollout files under `sessions/`, sorted by path (that is, by creation time).
    pub fn rollouts(&self) -> anyhow::Result<Vec<PathBuf>> {
        let mut found = Vec::new();
        let sessions = self.sessions_dir();
        if sessions.exists() {
            collect_rollouts(&sessions, &mut found)?;
        }
        found.sort();
        Ok(found)
    }
}

fn collect_rollouts(dir: &Path, found: &mut Vec<PathBuf>) -> anyhow::Result<()> {
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        if path.is_dir() {
            collect_rollouts(&path, found)?;
        } else if path
            .file_name()
            .and_then(|name| name.to_str())
            .is_some_and(|name| name.starts_with("rollout-") && name.ends_with(".jsonl"))
        {
            found.push(path);
        }
    }
    Ok(())
}

// === impl CodexHomeBuilder ===

impl CodexHomeBuilder {
    /// Marks `dir` as a trusted project (both as given and canonicalized, since Codex looks up
    /// the resolved path).
    pub fn trust(mut self, dir: impl AsRef<Path>) -> Self {
        self.trusted_dirs.push(dir.as_ref().to_path_buf());
        self
    }

    /// Paste-burst detection in the TUI composer (on by default, as users run it). When on,
    /// an Enter that follows typed text too quickly is taken as part of a paste.
    pub fn paste_burst(mut self, on: bool) -> Self {
        self.paste_burst = on;
        self
    }

    /// Lets the TUI start the shared `codex app-server` daemon (off by default).
    pub fn daemon(mut self, on: bool) -> Self {
        self.daemon = on;
        self
    }

    /// The `config.toml` text this builder writes.
    pub fn config_toml(&self) -> String {
        let mut projects = toml::Table::new();
        for dir in &self.trusted_dirs {
            let mut names = vec![dir.display().to_string()];
            if let Ok(canonical) = std::fs::canonicalize(dir) {
                names.push(canonical.display().to_string());
            }
            for name in names {
                projects.insert(
                    name,
                    toml::Value::Table(table([("trust_level", "trusted".into())])),
                );
            }
        }
        let provider = table([
            ("name", "Fake".into()),
            ("base_url", self.base_url.clone().into()),
            ("wire_api", "responses".into()),
            ("env_key", "FAKE_OPENAI_API_KEY".into()),
            ("request_max_retries", 0.into()),
            ("stream_max_retries", 0.into()),
        ]);
        let config = table([
            ("model", "fake-model".into()),
            ("model_provider", "fake".into()),
            ("check_for_update_on_startup", false.into()),
            ("model_providers", table([("fake", provider.into())]).into()),
            (
                "features",
                table([
                    ("daemon_auto_start", self.daemon.into()),
                    ("plugins", false.into()),
                ])
                .into(),
            ),
            ("analytics", table([("enabled", false.into())]).into()),
            ("feedback", table([("enabled", false.into())]).into()),
            (
                "tui",
                table([
                    ("disable_paste_burst", (!self.paste_burst).into()),
                    ("show_tooltips", false.into()),
                ])
                .into(),
            ),
            ("projects", projects.into()),
        ]);
        config.to_string()
    }

    /// Creates the temporary directory and writes `config.toml`.
    pub fn build(self) -> anyhow::Result<CodexHome> {
        let dir = tempfile::Builder::new()
            .prefix("codex-home-")
            .tempdir()
            .context("creating a temporary CODEX_HOME")?;
        let config = dir.path().join("config.toml");
        std::fs::write(&config, self.config_toml())
            .with_context(|| format!("writing {}", config.display()))?;
        Ok(CodexHome { dir })
    }
}

fn table<const N: usize>(entries: [(&str, toml::Value); N]) -> toml::Table {
    entries
        .into_iter()
        .map(|(key, value)| (key.to_owned(), value))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_parses_and_has_the_fake_provider() {
        let work = tempfile::tempdir().unwrap();
        let home = CodexHome::new("http://127.0.0.1:1234/v1", &[work.path()], true).unwrap();
        let text = std::fs::read_to_string(home.config_path()).unwrap();
        let config: toml::Table = text.parse().unwrap();
        assert_eq!(config["model_provider"].as_str(), Some("fake"));
        let provider = &config["model_providers"]["fake"];
        assert_eq!(
            provider["base_url"].as_str(),
            Some("http://127.0.0.1:1234/v1")
        );
        assert_eq!(provider["wire_api"].as_str(), Some("responses"));
        assert_eq!(provider["env_key"].as_str(), Some("FAKE_OPENAI_API_KEY"));
        assert_eq!(config["check_for_update_on_startup"].as_bool(), Some(false));
        assert_eq!(
            config["features"]["daemon_auto_start"].as_bool(),
            Some(false)
        );
        assert_eq!(config["analytics"]["enabled"].as_bool(), Some(false));
        assert_eq!(config["tui"]["disable_paste_burst"].as_bool(), Some(false));
        let key = work.path().canonicalize().unwrap().display().to_string();
        assert_eq!(
            config["projects"][&key]["trust_level"].as_str(),
            Some("trusted")
        );
        let env = home.env();
        assert!(env.contains(&("CODEX_HOME".to_owned(), home.path().display().to_string())));
        assert!(
            env.iter()
                .any(|(key, value)| key == "FAKE_OPENAI_API_KEY" && !value.is_empty())
        );
        assert!(home.rollouts().unwrap().is_empty());
    }

    #[test]
    fn builder_options() {
        let builder = CodexHome::builder("http://x/v1")
            .paste_burst(false)
            .daemon(true);
        let config: toml::Table = builder.config_toml().parse().unwrap();
        assert_eq!(config["tui"]["disable_paste_burst"].as_bool(), Some(true));
        assert_eq!(
            config["features"]["daemon_auto_start"].as_bool(),
            Some(true)
        );
        // Paths with quotes and spaces stay valid TOML keys.
        let odd = CodexHome::builder("http://x/v1")
            .trust("/tmp/a \"b\"/c")
            .config_toml();
        let config: toml::Table = odd.parse().unwrap();
        assert!(config["projects"].get("/tmp/a \"b\"/c").is_some());
    }

    #[test]
    fn version_parsing() {
        assert_eq!(
            parse_version("codex-cli 0.169.0\n").as_deref(),
            Some("0.169.0")
        );
        assert_eq!(
            parse_version("WARNING: x\ncodex-cli 1.2.3").as_deref(),
            Some("1.2.3")
        );
        assert_eq!(parse_version("nope"), None);
    }

    #[test]
    fn version_check() {
        let bin = Path::new("/x/codex");
        for version in SUPPORTED_CODEX_VERSIONS {
            check_version(bin, version, None).unwrap();
            check_version(bin, version, Some(version)).unwrap();
        }
        let error = check_version(bin, "0.169.0", Some("0.171.0")).unwrap_err();
        assert!(
            error
                .to_string()
                .contains("CODEX_EXPECTED_VERSION is 0.171.0")
        );
        assert!(check_version(bin, "0.170.0", None).is_err());
    }

    #[test]
    fn the_test_script_pins_the_same_versions() {
        let script = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/run")).unwrap();
        let line = script
            .lines()
            .find_map(|l| l.strip_prefix("PINNED_CODEX_VERSIONS="))
            .expect("tests/run sets PINNED_CODEX_VERSIONS");
        let pinned: Vec<&str> = line.trim_matches('"').split_whitespace().collect();
        assert_eq!(pinned, SUPPORTED_CODEX_VERSIONS);
    }

    #[test]
    fn default_bin_is_under_the_cache() {
        let bin = default_codex_bin("0.171.0");
        assert!(
            bin.ends_with("codex-0.171.0/node_modules/.bin/codex"),
            "{bin:?}"
        );
    }

    #[test]
    fn pinned_codex_is_installed() {
        // Fails loudly (never skips) when the CLI under test is missing or is not the version
        // CODEX_EXPECTED_VERSION names: the e2e tests need it.
        let bin = codex_bin().unwrap();
        let version = codex_version(&bin).unwrap();
        assert_eq!(codex_bin_version().unwrap(), version);
        match expected_version().unwrap() {
            Some(expected) => assert_eq!(version, expected),
            None => assert!(SUPPORTED_CODEX_VERSIONS.contains(&version.as_str())),
        }
    }
}
