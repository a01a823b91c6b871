//! Loading TOML config files with errors that name the file and the problem.

use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;

/// Why a configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid TOML for this program.
    #[error("config file {path} is invalid: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What is wrong, with line and column.
        message: String,
    },
    /// A setting has a value that cannot work.
    #[error("setting `{setting}` is invalid: {message}")]
    Invalid {
        /// The setting's name as a user writes it.
        setting: &'static str,
        /// What is wrong.
        message: String,
    },
}

/// Reads and parses a TOML file.
pub fn load_toml<T: DeserializeOwned>(path: &Path) -> Result<T, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    toml::from_str(&text).map_err(|err| ConfigError::Parse {
        path: path.to_owned(),
        message: err.to_string(),
    })
}

/// The user's home directory from `$HOME`.
pub fn home_dir() -> Option<PathBuf> {
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(PathBuf::from)
}

/// Expands a leading `~/` (or a lone `~`) to the home directory.
pub fn expand_tilde(path: &Path) -> PathBuf {
    let Some(home) = home_dir() else {
        return path.to_owned();
    };
    match path.strip_prefix("~") {
        Ok(rest) => home.join(rest),
        Err(_) => path.to_owned(),
    }
}
