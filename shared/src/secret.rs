//! One type for a secret string (the bot token, the voice API key): whatever holds one can be
//! logged, dumped with `{:?}` or put in an error without leaking it, because neither `Debug`
//! nor `Display` shows the value. The value is reached only through [`Secret::expose`], so
//! every place that uses it is greppable.
//!
//! Join codes keep their secret as raw bytes inside `pki::join::JoinCode`, whose own `Debug`
//! redacts it: the bytes are the code's wire format and are read field by field by its tests.

use std::fmt;

use serde::Deserialize;

/// What a secret shows instead of itself.
pub const REDACTED: &str = "<redacted>";

/// A secret string; `Debug` and `Display` show [`REDACTED`].
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The value itself, for the one place that sends it (a header, an API client).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Self(value)
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Self(value.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_shown_only_exposed() {
        let s = Secret::new("sk-live-1234");
        assert_eq!(
            format!("{s} {s:?} {:?}", Some(&s)),
            "<redacted> <redacted> Some(<redacted>)"
        );
        assert_eq!(s.expose(), "sk-live-1234");
        assert_eq!(Secret::from("a"), Secret::from(String::from("a")));
    }

    #[test]
    fn deserializes_from_a_plain_string() {
        #[derive(Deserialize)]
        struct Cfg {
            key: Secret,
        }
        let cfg: Cfg = serde_json::from_str(r#"{"key":"sk-x"}"#).unwrap();
        assert_eq!(cfg.key.expose(), "sk-x");
    }
}
