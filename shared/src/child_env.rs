//! The environment the daemons give programs they start on their own (the voice transcription
//! command, ffmpeg): only what a program needs to run, never the daemon's own settings and
//! secrets (the bot token, provider keys) that sit in its environment.

/// Variables passed on: where programs and libraries are, the user, the locale, a temp dir.
const KEPT: &[&str] = &[
    "PATH", "HOME", "USER", "LOGNAME", "LANG", "LC_ALL", "LC_CTYPE", "TMPDIR", "TZ",
];

/// The part of this process's environment a child may see.
pub fn minimal() -> Vec<(String, String)> {
    std::env::vars()
        .filter(|(k, _)| KEPT.contains(&k.as_str()))
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn only_the_basics_pass() {
        let env = super::minimal();
        assert!(env.iter().all(|(k, _)| super::KEPT.contains(&k.as_str())));
        assert!(env.iter().any(|(k, _)| k == "PATH"));
    }
}
