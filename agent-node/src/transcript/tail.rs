//! Byte-offset tailing of one JSONL file, as a pure state machine: feed it the bytes that were
//! appended, get back the complete lines with the offsets they occupy. A trailing partial line
//! is kept until its newline arrives — up to [`MAX_LINE`] bytes: a longer line keeps its place
//! in the offsets but comes back empty (the parser counts it as unknown), so one runaway record
//! cannot make the node's memory grow without bound.

/// The longest line kept (a rollout line carries at most an image or a large tool output).
pub const MAX_LINE: usize = 32 * 1024 * 1024;

/// One complete line and where it sits in the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// Offset of the line's first byte.
    pub start: u64,
    /// Offset just past its newline: the sequence number of whatever the line yields.
    pub end: u64,
    /// The line without its newline (invalid UTF-8 replaced); empty if it was too long.
    pub text: String,
    /// Longer than [`MAX_LINE`]: its bytes were not kept.
    pub too_long: bool,
}

/// Tail position in one file.
#[derive(Debug, Default, Clone)]
pub struct Tailer {
    /// Offset of the next byte to read from the file.
    next: u64,
    /// Bytes of an unfinished line, starting at `next - partial.len() - overflow`.
    partial: Vec<u8>,
    /// Bytes of the unfinished line past [`MAX_LINE`], counted but not kept.
    overflow: u64,
}

impl Tailer {
    /// Starts reading at `offset`, which must be the start of a line.
    pub fn at(offset: u64) -> Self {
        Self {
            next: offset,
            partial: Vec::new(),
            overflow: 0,
        }
    }

    /// Where the next read must start.
    pub fn read_offset(&self) -> u64 {
        self.next
    }

    /// Offset just past the last complete line returned.
    pub fn line_offset(&self) -> u64 {
        self.next - self.partial.len() as u64 - self.overflow
    }

    /// Takes bytes read at [`Tailer::read_offset`] and returns the lines they complete.
    pub fn push(&mut self, bytes: &[u8]) -> Vec<Line> {
        let mut lines = Vec::new();
        let mut start = self.line_offset();
        let mut rest = bytes;
        while let Some(pos) = rest.iter().position(|&b| b == b'\n') {
            let (head, tail) = rest.split_at(pos);
            self.keep(head);
            let end = start + self.partial.len() as u64 + self.overflow + 1;
            let mut raw = std::mem::take(&mut self.partial);
            let too_long = std::mem::take(&mut self.overflow) > 0;
            if raw.last() == Some(&b'\r') {
                raw.pop();
            }
            lines.push(Line {
                start,
                end,
                text: if too_long {
                    String::new()
                } else {
                    String::from_utf8_lossy(&raw).into_owned()
                },
                too_long,
            });
            start = end;
            rest = &tail[1..];
        }
        self.keep(rest);
        self.next += bytes.len() as u64;
        lines
    }

    /// Adds bytes to the unfinished line, counting those past [`MAX_LINE`] without keeping them.
    fn keep(&mut self, bytes: &[u8]) {
        let room = MAX_LINE.saturating_sub(self.partial.len()).min(bytes.len());
        self.partial.extend_from_slice(&bytes[..room]);
        self.overflow += (bytes.len() - room) as u64;
    }

    /// Moves to `offset` (a line start), dropping any partial line: after a rewind for replay,
    /// or from 0 when the file was truncated or replaced.
    pub fn reset(&mut self, offset: u64) {
        self.next = offset;
        self.partial.clear();
        self.overflow = 0;
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn a_line_past_the_limit_keeps_its_offsets_but_not_its_bytes() {
        let mut t = Tailer::at(10);
        let big = vec![b'x'; MAX_LINE + 100];
        assert!(t.push(&big[..MAX_LINE / 2]).is_empty());
        assert!(t.push(&big[MAX_LINE / 2..]).is_empty());
        assert_eq!(t.partial.len(), MAX_LINE, "memory stays bounded");
        let lines = t.push(b"\n{\"ok\":1}\n");
        assert_eq!(lines.len(), 2);
        assert_eq!(
            (lines[0].start, lines[0].end),
            (10, 10 + MAX_LINE as u64 + 101)
        );
        assert!(lines[0].text.is_empty() && lines[0].too_long);
        assert!(!lines[1].too_long);
        assert_eq!(lines[1].text, "{\"ok\":1}");
        assert_eq!(lines[1].start, lines[0].end);
        assert_eq!(t.line_offset(), t.read_offset());
    }

    #[test]
    fn lines_carry_their_offsets_and_partials_wait() {
        let mut t = Tailer::at(10);
        let lines = t.push(b"ab\ncd");
        assert_eq!(
            lines,
            vec![Line {
                start: 10,
                end: 13,
                text: "ab".into(),
                too_long: false,
            }]
        );
        assert_eq!(t.read_offset(), 15);
        assert_eq!(t.line_offset(), 13);
        let lines = t.push(b"e\r\n");
        assert_eq!(lines[0].text, "cde");
        assert_eq!((lines[0].start, lines[0].end), (13, 18));
        t.reset(3);
        assert_eq!(t.read_offset(), 3);
        assert_eq!(t.push(b"x\n")[0].start, 3);
    }

    proptest! {
        #[test]
        fn chunk_boundaries_never_change_the_lines(
            lines in proptest::collection::vec("[ -~]{0,40}", 0..20),
            cuts in proptest::collection::vec(0usize..1000, 0..10),
        ) {
            let file: String = lines.iter().map(|l| format!("{l}\n")).collect();
            let bytes = file.as_bytes();
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c % (bytes.len() + 1)).collect();
            cuts.push(0);
            cuts.push(bytes.len());
            cuts.sort_unstable();
            let mut tailer = Tailer::default();
            let mut got = Vec::new();
            for w in cuts.windows(2) {
                got.extend(tailer.push(&bytes[w[0]..w[1]]));
            }
            let texts: Vec<&str> = got.iter().map(|l| l.text.as_str()).collect();
            prop_assert_eq!(texts, lines.iter().map(String::as_str).collect::<Vec<_>>());
            // Offsets tile the file exactly.
            let mut at = 0;
            for l in &got {
                prop_assert_eq!(l.start, at);
                at = l.end;
            }
            prop_assert_eq!(at, bytes.len() as u64);
        }

        #[test]
        fn arbitrary_bytes_never_panic(chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..64), 0..8)) {
            let mut t = Tailer::default();
            for c in &chunks {
                let _ = t.push(c);
            }
        }
    }
}
