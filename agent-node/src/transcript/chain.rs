//! One window's transcripts in order, and the sequence numbers that span them.
//!
//! A window's Codex may move to a new rollout file (`/new`, `/fork`, ...) while the center keeps
//! acking one sequence per session. So a session's sequence space is the concatenation of its
//! files: each file is a [`Segment`] that starts at `base` (the previous segment's `end`), and a
//! line ending at byte `o` of that file has sequence `base + o`. Sequences therefore never go
//! backwards across a switch, and a cursor (the center's ack) names one place in one file, which
//! is what replay after a reconnect or a node restart needs. Pure: no I/O here.

use std::path::PathBuf;

use shared::ids::ThreadId;

/// One rollout file of a window and the sequences it covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    /// The rollout file.
    pub path: PathBuf,
    /// Its Codex thread id (empty if unknown).
    pub thread_id: ThreadId,
    /// Sequence of the file's byte 0.
    pub base: u64,
    /// Sequence past the last byte that belongs to the session, for a file the window has left;
    /// `None` for the file it writes now. Lines ending past it are never delivered.
    pub end: Option<u64>,
}

impl Segment {
    /// Does a line ending at file offset `line_end` still belong to this segment?
    pub fn holds(&self, line_end: u64) -> bool {
        self.end.is_none_or(|end| self.base + line_end <= end)
    }

    /// Has reading reached this segment's end (file offset `at`)?
    pub fn finished_at(&self, at: u64) -> bool {
        self.end.is_some_and(|end| self.base + at >= end)
    }
}

/// Where delivery resumes after a sequence: a segment and a byte offset in its file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    /// Index of the segment.
    pub index: usize,
    /// Byte offset in that segment's file (a line start).
    pub offset: u64,
}

/// The segments of one window, oldest first; `base`s grow and each `end` is the next `base`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Chain {
    segments: Vec<Segment>,
}

impl Chain {
    /// A chain from segments ordered by `base`.
    pub fn new(segments: Vec<Segment>) -> Self {
        Self { segments }
    }

    /// The segments, oldest first.
    pub fn segments(&self) -> &[Segment] {
        &self.segments
    }

    /// The segment at `index`.
    pub fn get(&self, index: usize) -> Option<&Segment> {
        self.segments.get(index)
    }

    /// Is there a segment after `index`?
    pub fn has_next(&self, index: usize) -> bool {
        index + 1 < self.segments.len()
    }

    /// The window moved to `path`: the current segment ends at `end` (its base plus the old
    /// file's length) and a new one starts there. Returns the new segment's base.
    pub fn switch(&mut self, path: PathBuf, thread_id: ThreadId, end: u64) -> u64 {
        let base = match self.segments.last_mut() {
            Some(last) => {
                // Never let a segment end before it starts: sequences must not repeat.
                let end = end.max(last.base);
                last.end = Some(end);
                end
            }
            None => end,
        };
        self.segments.push(Segment {
            path,
            thread_id,
            base,
            end: None,
        });
        base
    }

    /// Where to read from so that exactly the lines with a sequence above `seq` are delivered:
    /// the newest segment starting at or before `seq`, or the next one if `seq` is its end.
    /// `None` for an empty chain.
    pub fn position(&self, seq: u64) -> Option<Position> {
        let index = self
            .segments
            .iter()
            .rposition(|s| s.base <= seq)
            .unwrap_or(0);
        let segment = self.segments.get(index)?;
        if segment.finished_at(seq.saturating_sub(segment.base)) && self.has_next(index) {
            return Some(Position {
                index: index + 1,
                offset: 0,
            });
        }
        Some(Position {
            index,
            offset: seq.saturating_sub(segment.base),
        })
    }

    /// The sequence of file offset `offset` in segment `index`.
    pub fn seq(&self, index: usize, offset: u64) -> u64 {
        self.segments.get(index).map_or(offset, |s| s.base + offset)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(lens: &[u64]) -> Chain {
        let mut c = Chain::default();
        let mut end = 0;
        for (i, len) in lens.iter().enumerate() {
            c.switch(format!("/r{i}").into(), format!("t{i}").into(), end);
            end += len;
        }
        c
    }

    #[test]
    fn sequences_continue_across_files() {
        let c = chain(&[100, 50, 70]);
        let bases: Vec<u64> = c.segments().iter().map(|s| s.base).collect();
        assert_eq!(bases, vec![0, 100, 150]);
        assert_eq!(c.segments()[1].end, Some(150));
        assert_eq!(c.segments()[2].end, None);
        assert_eq!(c.seq(1, 20), 120);
        assert_eq!(c.seq(2, 1), 151);
    }

    #[test]
    fn a_cursor_names_one_place_in_one_file() {
        let c = chain(&[100, 50, 70]);
        let at = |seq| {
            let p = c.position(seq).unwrap();
            (p.index, p.offset)
        };
        assert_eq!(at(0), (0, 0));
        assert_eq!(at(40), (0, 40));
        // The end of a file is the start of the next.
        assert_eq!(at(100), (1, 0));
        assert_eq!(at(149), (1, 49));
        assert_eq!(at(150), (2, 0));
        assert_eq!(at(500), (2, 350));
        assert_eq!(Chain::default().position(3), None);
    }

    #[test]
    fn lines_past_a_left_file_s_end_are_not_its_own() {
        let c = chain(&[100, 50]);
        let old = &c.segments()[0];
        assert!(old.holds(100) && !old.holds(101));
        assert!(old.finished_at(100) && !old.finished_at(99));
        assert!(c.segments()[1].holds(u64::MAX / 2));
    }

    #[test]
    fn a_switch_never_moves_backwards() {
        let mut c = chain(&[]);
        c.switch("/a".into(), "a".into(), 0);
        c.switch("/b".into(), "b".into(), 10);
        // An end below the current base (a shrunken file) still never repeats a sequence.
        assert_eq!(c.switch("/c".into(), "c".into(), 5), 10);
        assert_eq!(c.position(10).unwrap().index, 2);
    }
}
