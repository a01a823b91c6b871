//! Byte-offset tailing of one JSONL file, as a pure state machine: feed it the bytes that were
//! appended, get back the complete lines with the offsets they occupy. A trailing partial line
//! is kept until its newline arrives.

/// One complete line and where it sits in the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// Offset of the line's first byte.
    pub start: u64,
    /// Offset just past its newline: the sequence number of whatever the line yields.
    pub end: u64,
    /// The line without its newline (invalid UTF-8 replaced).
    pub text: String,
}

/// Tail position in one file.
#[derive(Debug, Default, Clone)]
pub struct Tailer {
    /// Offset of the next byte to read from the file.
    next: u64,
    /// Bytes of an unfinished line, starting at `next - partial.len()`.
    partial: Vec<u8>,
}

impl Tailer {
    /// Starts reading at `offset`, which must be the start of a line.
    pub fn at(offset: u64) -> Self {
        Self {
            next: offset,
            partial: Vec::new(),
        }
    }

    /// Where the next read must start.
    pub fn read_offset(&self) -> u64 {
        self.next
    }

    /// Offset just past the last complete line returned.
    pub fn line_offset(&self) -> u64 {
        self.next - self.partial.len() as u64
    }

    /// Takes bytes read at [`Tailer::read_offset`] and returns the lines they complete.
    pub fn push(&mut self, bytes: &[u8]) -> Vec<Line> {
        let mut lines = Vec::new();
        let mut start = self.line_offset();
        let mut rest = bytes;
        while let Some(pos) = rest.iter().position(|&b| b == b'\n') {
            let (head, tail) = rest.split_at(pos);
            self.partial.extend_from_slice(head);
            let end = start + self.partial.len() as u64 + 1;
            let mut raw = std::mem::take(&mut self.partial);
            if raw.last() == Some(&b'\r') {
                raw.pop();
            }
            lines.push(Line {
                start,
                end,
                text: String::from_utf8_lossy(&raw).into_owned(),
            });
            start = end;
            rest = &tail[1..];
        }
        self.partial.extend_from_slice(rest);
        self.next += bytes.len() as u64;
        lines
    }

    /// Moves to `offset` (a line start), dropping any partial line: after a rewind for replay,
    /// or from 0 when the file was truncated or replaced.
    pub fn reset(&mut self, offset: u64) {
        self.next = offset;
        self.partial.clear();
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn lines_carry_their_offsets_and_partials_wait() {
        let mut t = Tailer::at(10);
        let lines = t.push(b"ab\ncd");
        assert_eq!(
            lines,
            vec![Line {
                start: 10,
                end: 13,
                text: "ab".into()
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
