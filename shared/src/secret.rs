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

/// `text` with the user information of every URL in it blanked: `https://me:token@host/x` →
/// `https://<redacted>@host/x`. Programs the fleet runs (git, npm) name remotes and registries
/// whose URLs may carry a token, and their output reaches logs and Telegram.
pub fn without_url_credentials(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("://") {
        let (before, after) = rest.split_at(at + 3);
        out.push_str(before);
        let authority_end = after
            .find(|c: char| c == '/' || c == '\'' || c == '"' || c.is_whitespace())
            .unwrap_or(after.len());
        let authority = &after[..authority_end];
        match authority.rfind('@') {
            Some(userinfo_end) => {
                out.push_str(REDACTED);
                out.push_str(&authority[userinfo_end..]);
            }
            None => out.push_str(authority),
        }
        rest = &after[authority_end..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_in_urls_are_blanked() {
        assert_eq!(
            without_url_credentials(
                "fatal: unable to access 'https://me:ghp_secret@github.com/o/r.git/': timeout"
            ),
            "fatal: unable to access 'https://<redacted>@github.com/o/r.git/': timeout"
        );
        assert_eq!(
            without_url_credentials("ssh://git@host:22/r and https://host/x"),
            "ssh://<redacted>@host:22/r and https://host/x"
        );
        assert_eq!(
            without_url_credentials("https://registry.npmjs.org/@openai%2fcodex"),
            "https://registry.npmjs.org/@openai%2fcodex"
        );
        assert_eq!(without_url_credentials("no url here"), "no url here");
    }

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
