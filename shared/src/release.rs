//! Codex CLI release names, as npm and `codex --version` print them (`0.171.0`, `1.0.0-beta.1`).
//! The node checks one before it becomes an argument of its install command; the center
//! checks one in button data and decides whether a published release is newer than the one a
//! node runs. One definition, so both sides agree on what a release is.

use std::cmp::Ordering;

/// Whether `v` may be a release name: a digit first, then `[0-9A-Za-z.+-]`, at most 32
/// characters (never an option, a path or shell syntax).
pub fn valid(v: &str) -> bool {
    v.len() <= 32
        && v.starts_with(|c: char| c.is_ascii_digit())
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '+' | '-'))
}

/// Whether release `candidate` is newer than `installed`, by their numeric parts. A
/// pre-release (`-beta.1`) is never offered, and names that are not releases compare as not
/// newer.
pub fn newer(candidate: &str, installed: &str) -> bool {
    if !valid(candidate) || !valid(installed) || candidate.contains('-') {
        return false;
    }
    match compare(&core(candidate), &core(installed)) {
        Ordering::Greater => true,
        // The release a pre-release led up to.
        Ordering::Equal => installed.contains('-'),
        Ordering::Less => false,
    }
}

/// The numeric parts before any pre-release or build suffix.
fn core(v: &str) -> Vec<u64> {
    v.split(['-', '+'])
        .next()
        .unwrap_or_default()
        .split('.')
        .map(|p| p.parse().unwrap_or(0))
        .collect()
}

fn compare(a: &[u64], b: &[u64]) -> Ordering {
    let len = a.len().max(b.len());
    let at = |v: &[u64], i: usize| v.get(i).copied().unwrap_or(0);
    (0..len)
        .map(|i| at(a, i).cmp(&at(b, i)))
        .find(|o| o.is_ne())
        .unwrap_or(Ordering::Equal)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_release_names_are_valid() {
        for ok in ["0.172.0", "1.0.0-beta.1", "0.1.0+build5"] {
            assert!(valid(ok), "{ok}");
        }
        let long = "1".repeat(33);
        for bad in [
            "",
            "latest",
            "-g",
            "0.1; rm -rf /",
            "0.1 0.2",
            "v1.0",
            &long,
        ] {
            assert!(!valid(bad), "{bad}");
        }
    }

    #[test]
    fn newer_compares_numbers_not_text() {
        assert!(newer("0.172.0", "0.171.0"));
        assert!(newer("0.171.10", "0.171.9"));
        assert!(newer("1.0", "0.999.999"));
        assert!(!newer("0.171.0", "0.171.0"));
        assert!(!newer("0.170.0", "0.171.0"));
        assert!(!newer("0.172.0-beta.1", "0.171.0"));
        assert!(newer("0.172.0", "0.172.0-alpha.3"));
        assert!(!newer("", "0.1.0"));
        assert!(!newer("0.2.0", ""));
    }
}
