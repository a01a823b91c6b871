//! Rules for user text on its way into Codex: what is stripped before it is typed, and how a
//! submitted message is recognised when it shows up in the transcript.

/// Longest message the node types into Codex (bytes after sanitising).
pub const MAX_INPUT_BYTES: usize = 64 * 1024;

/// Removes control characters except newline and tab (ESC above all: it could end the
/// bracketed paste early and turn the rest into key presses). CR and CRLF become LF.
pub fn sanitize(text: &str) -> String {
    text.replace("\r\n", "\n")
        .replace('\r', "\n")
        .chars()
        .filter(|&c| !c.is_control() || c == '\n' || c == '\t')
        .collect()
}

/// Whitespace-insensitive form used to compare what was typed with what the transcript holds.
pub fn normalize(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Does a user message seen in the transcript correspond to `sent` (already normalized)?
pub fn is_same_message(sent: &str, seen: &str) -> bool {
    let seen = normalize(seen);
    if seen == sent {
        return true;
    }
    // Codex may add context around a message; a long common start is proof enough.
    let prefix: String = sent.chars().take(64).collect();
    prefix.chars().count() >= 12 && seen.contains(&prefix)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_go_newlines_and_tabs_stay() {
        assert_eq!(sanitize("a\u{1b}[201~b\r\nc\td\u{7}"), "a[201~b\nc\td");
        assert_eq!(
            sanitize("$(touch pwned); rm -rf ~"),
            "$(touch pwned); rm -rf ~"
        );
    }

    #[test]
    fn submitted_messages_are_recognised() {
        let sent = normalize("line one\n  line two ");
        assert!(is_same_message(&sent, "line one\nline two"));
        assert!(!is_same_message(&sent, "something else"));
        assert!(!is_same_message(&normalize("hi"), "hi there"));
    }
}
