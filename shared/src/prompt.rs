//! The identity of a question Codex asks, agreed on by node and center: a button that answers a
//! question carries it, and the node presses nothing unless that very question is on screen.

/// A short id of a question's text (8 hex digits of its SHA-256, whitespace runs folded so a
/// redraw at another width names the same question).
pub fn prompt_id(text: &str) -> String {
    let folded: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    let digest = ring::digest::digest(&ring::digest::SHA256, folded.as_bytes());
    digest.as_ref()[..4]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::prompt_id;

    #[test]
    fn same_question_same_id_other_question_other_id() {
        let a = prompt_id("Would you like to run the following command?\n  $ rm -rf build");
        assert_eq!(a.len(), 8);
        assert_eq!(
            a,
            prompt_id("Would you like to run the following command?   $ rm -rf build")
        );
        assert_ne!(
            a,
            prompt_id("Would you like to run the following command?\n  $ rm -rf /")
        );
    }
}
