//! Small text shaping shared by what the center shows: the first line of a text, and a text cut
//! to a length with "…". Plain `&str` in, `String` out; no Telegram or HTML here.

/// The first non-blank line, trimmed ("" if there is none).
pub(crate) fn first_line(s: &str) -> String {
    s.lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .trim()
        .to_owned()
}

/// `s` when it has at most `max` characters, else its first `max - 1` and "…".
pub(crate) fn ellipsize(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_owned();
    }
    let cut: String = s.chars().take(max.saturating_sub(1)).collect();
    format!("{cut}…")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_and_cuts() {
        assert_eq!(first_line("\n  \n  two words \nthree"), "two words");
        assert_eq!(first_line(""), "");
        assert_eq!(ellipsize("abc", 3), "abc");
        assert_eq!(ellipsize("abcdé", 3), "ab…");
    }
}
