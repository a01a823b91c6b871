//! Rules for user text on its way into Codex: what is stripped before it is typed, how a
//! submitted message is recognised when it shows up in the transcript, and which texts are
//! Codex slash commands (those never show up in the transcript, so they are confirmed by the
//! screen instead; see `requests::composer`).

/// Longest message the node types into Codex (bytes after sanitising).
pub(crate) const MAX_INPUT_BYTES: usize = 64 * 1024;

/// Removes control characters except newline and tab (ESC above all: it could end the
/// bracketed paste early and turn the rest into key presses). CR and CRLF become LF.
pub(crate) fn sanitize(text: &str) -> String {
    text.replace("\r\n", "\n")
        .replace('\r', "\n")
        .chars()
        .filter(|&c| !c.is_control() || c == '\n' || c == '\t')
        .collect()
}

/// Whitespace-insensitive form used to compare what was typed with what the transcript holds.
pub(crate) fn normalize(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Does a user message seen in the transcript correspond to `sent` (already normalized)?
pub(crate) fn is_same_message(sent: &str, seen: &str) -> bool {
    let seen = normalize(seen);
    if seen == sent {
        return true;
    }
    // Codex may add context around a message; a long common start is proof enough.
    let prefix: String = sent.chars().take(64).collect();
    prefix.chars().count() >= 12 && seen.contains(&prefix)
}

/// The `/name` token when `text` is a Codex slash command, as Codex 0.169 decides it on Enter:
/// the text starts with `/` (no leading space: `  /new` is sent as a message) and its first
/// word holds no other `/` (`/tmp/x look` is a message; `/frobnicate`, `/run@bot`, `/123` and a
/// bare `/` are commands, known or not). Only single-line texts count here: a multi-line text
/// goes the message way, and if Codex refuses it the composer is cleared all the same.
pub(crate) fn slash_command(text: &str) -> Option<&str> {
    let text = text.trim_end();
    if !text.starts_with('/') || text.contains('\n') {
        return None;
    }
    let token = text.split_whitespace().next()?;
    (!token[1..].contains('/')).then_some(token)
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

    #[test]
    fn slash_commands_are_told_from_messages_as_codex_does() {
        assert_eq!(slash_command("/new"), Some("/new"));
        assert_eq!(slash_command("/status \n"), Some("/status"));
        assert_eq!(slash_command("/frobnicate with args"), Some("/frobnicate"));
        assert_eq!(slash_command("/run@bot hello"), Some("/run@bot"));
        assert_eq!(slash_command("/"), Some("/"));
        assert_eq!(slash_command("/tmp/x what is this"), None);
        assert_eq!(slash_command("  /new"), None);
        assert_eq!(slash_command("hello /new"), None);
        assert_eq!(slash_command("/review\nthe parser"), None);
        assert_eq!(slash_command("//"), None);
    }
}
