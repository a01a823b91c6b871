//! Markdown as Codex writes it → Telegram HTML, split into messages that fit Telegram's limit.
//!
//! Pure (no I/O, no Telegram types): the delivery side calls [`markdown_to_html`] for an answer and
//! sends each part with `parse_mode = HTML`; if Telegram answers "can't parse entities" for a part,
//! it resends the same-index part of [`plain_parts`] without a parse mode.
//!
//! pulldown-cmark parses the Markdown (linear time, no regexes) and the events are rendered into a
//! document: the visible text exactly as Telegram will show it, plus properly nested styled spans
//! (bold, code, pre, link, ...) over it. Splitting works on that visible text, so:
//! * the limit is measured in what Telegram counts: UTF-16 units of the text *after* entity
//!   parsing. Tags and `&amp;`-style entities cost nothing there, so the HTML source of a part may be
//!   longer than the limit, which Telegram accepts; the source is not bounded separately;
//! * a tag or an entity can never be cut, and a char (surrogate pair) never is either;
//! * a span that crosses a cut is closed at the end of one part and reopened, with the same
//!   language or href, at the start of the next (`</code></pre>` … `<pre><code class="language-x">`).
//!
//! Cuts prefer a blank line (paragraph boundary), then a line break, then a space, and only then
//! fall at the last char that fits (stepping back over emoji joiners). The whitespace at a cut is
//! dropped; a part whose visible text would be whitespace only is not produced.

use std::ops::Range;

use pulldown_cmark::{Alignment, CodeBlockKind, Event, LinkType, Options, Parser, Tag, TagEnd};

/// Telegram's message limit, in UTF-16 code units after entity parsing.
pub const MESSAGE_LIMIT: usize = 4096;

/// Nested list items are indented by their parents' marker widths, up to this many spaces: deeper
/// nesting gains nothing on a phone screen, and the cap keeps the output linear in the input.
const MAX_INDENT: usize = 16;

/// Table columns are padded to the widest cell, but not beyond this many chars (output stays
/// linear in the input however long one cell is).
const MAX_CELL_PAD: usize = 40;

/// How many chars a hard cut may step back to avoid separating an emoji from its joiner/modifier.
const MAX_JOINER_BACKOFF: usize = 16;

/// UTF-16 length of a string.
pub fn utf16_len(s: &str) -> usize {
    s.chars().map(char::len_utf16).sum()
}

/// Escapes `<`, `>`, `&` and `"` for HTML parse mode; the result is safe both as text and inside a
/// double-quoted attribute value.
pub fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    escape_into(&mut out, s, true);
    out
}

/// Renders Markdown as Codex writes it into Telegram HTML parts, each with at most `limit` UTF-16
/// units of visible text (a `limit` below 2 counts as 2: one astral char needs two units).
///
/// Supported: headings (bold), paragraphs, emphasis, strong, strikethrough, inline code, fenced and
/// indented code blocks (with a language if it matches `[A-Za-z0-9_+-]+`), links (`<a href>` for
/// http(s), tg and mailto targets, plain text otherwise), images (alt text and URL as text), nested
/// bullet/numbered/task lists, block quotes, tables (as preformatted text), rules and line breaks.
/// HTML in the Markdown is shown as text. Empty or whitespace-only input gives no parts.
pub fn markdown_to_html(md: &str, limit: usize) -> Vec<String> {
    let doc = Doc::from_markdown(md);
    let ranges = split_ranges(&doc.text, limit);
    doc.to_html(&ranges)
}

/// The visible text of each part of [`markdown_to_html`]`(md, limit)`, without any markup: the
/// fallback to send without a parse mode after Telegram rejected a part's HTML. The two lists have
/// the same length and `plain_parts(md, limit)[i]` is exactly what Telegram shows for
/// `markdown_to_html(md, limit)[i]` (link targets other than the text are lost).
pub fn plain_parts(md: &str, limit: usize) -> Vec<String> {
    let doc = Doc::from_markdown(md);
    split_ranges(&doc.text, limit)
        .into_iter()
        .map(|r| doc.text[r].to_owned())
        .collect()
}

// === Document: visible text + styled spans ===

#[derive(Debug, Clone, PartialEq, Eq)]
enum Style {
    Bold,
    Italic,
    Strike,
    Code,
    Pre(Option<String>),
    Link(String),
    Quote,
}

impl Style {
    /// Index into `Renderer::active`.
    fn kind(&self) -> usize {
        match self {
            Self::Bold => 0,
            Self::Italic => 1,
            Self::Strike => 2,
            Self::Code => 3,
            Self::Pre(_) => 4,
            Self::Link(_) => 5,
            Self::Quote => 6,
        }
    }

    fn open_tag(&self, out: &mut String) {
        match self {
            Self::Bold => out.push_str("<b>"),
            Self::Italic => out.push_str("<i>"),
            Self::Strike => out.push_str("<s>"),
            Self::Code => out.push_str("<code>"),
            Self::Pre(None) => out.push_str("<pre>"),
            Self::Pre(Some(lang)) => {
                out.push_str("<pre><code class=\"language-");
                out.push_str(lang); // [A-Za-z0-9_+-]+: nothing to escape
                out.push_str("\">");
            }
            Self::Link(href) => {
                out.push_str("<a href=\"");
                escape_into(out, href, true);
                out.push_str("\">");
            }
            Self::Quote => out.push_str("<blockquote>"),
        }
    }

    fn close_tag(&self, out: &mut String) {
        out.push_str(match self {
            Self::Bold => "</b>",
            Self::Italic => "</i>",
            Self::Strike => "</s>",
            Self::Code => "</code>",
            Self::Pre(None) => "</pre>",
            Self::Pre(Some(_)) => "</code></pre>",
            Self::Link(_) => "</a>",
            Self::Quote => "</blockquote>",
        });
    }
}

/// A styled byte range of `Doc::text`; spans nest (never overlap partially).
#[derive(Debug)]
struct Span {
    start: usize,
    end: usize,
    style: Style,
}

/// Marks a span whose start or end is not known yet.
const UNSET: usize = usize::MAX;

#[derive(Debug, Default)]
struct Doc {
    /// Exactly the text Telegram shows.
    text: String,
    /// Non-empty spans sorted by start, outer before inner.
    spans: Vec<Span>,
}

impl Doc {
    fn from_markdown(md: &str) -> Self {
        let md = normalize_newlines(md);
        let options =
            Options::ENABLE_TABLES | Options::ENABLE_STRIKETHROUGH | Options::ENABLE_TASKLISTS;
        let mut r = Renderer::default();
        for event in Parser::new_ext(&md, options) {
            r.event(event);
        }
        let mut spans: Vec<Span> = r
            .spans
            .into_iter()
            .filter(|s| s.start != UNSET && s.end != UNSET && s.start < s.end)
            .collect();
        // Stable: among spans with the same range, the one opened first (the outer one) stays first.
        spans.sort_by_key(|s| (s.start, std::cmp::Reverse(s.end)));
        Self {
            text: r.text,
            spans,
        }
    }

    /// The HTML of each range of `text`; spans crossing a range's edge are clipped to it.
    fn to_html(&self, ranges: &[Range<usize>]) -> Vec<String> {
        let spans = &self.spans;
        let mut parts = Vec::with_capacity(ranges.len());
        let mut next = 0; // first span not opened yet
        let mut carry: Vec<usize> = Vec::new(); // spans open at the previous cut, outer first
        for range in ranges {
            let (a, b) = (range.start, range.end);
            let mut out = String::with_capacity(b - a + 64);
            // Reopen what crossed the cut, then what began in the dropped whitespace before `a`;
            // both lists are in nesting order and the second nests inside the first.
            let mut stack: Vec<usize> = carry.drain(..).filter(|&i| spans[i].end > a).collect();
            while next < spans.len() && spans[next].start < a {
                if spans[next].end > a {
                    stack.push(next);
                }
                next += 1;
            }
            for &i in &stack {
                spans[i].style.open_tag(&mut out);
            }
            let mut p = a;
            loop {
                while let Some(&top) = stack.last()
                    && spans[top].end <= p
                {
                    spans[top].style.close_tag(&mut out);
                    stack.pop();
                }
                if p >= b {
                    break;
                }
                while next < spans.len() && spans[next].start <= p {
                    spans[next].style.open_tag(&mut out);
                    stack.push(next);
                    next += 1;
                }
                let mut q = b;
                if let Some(&top) = stack.last() {
                    q = q.min(spans[top].end);
                }
                if let Some(s) = spans.get(next) {
                    q = q.min(s.start);
                }
                escape_into(&mut out, &self.text[p..q], false);
                p = q;
            }
            for &i in stack.iter().rev() {
                spans[i].style.close_tag(&mut out);
            }
            carry = stack;
            parts.push(out);
        }
        parts
    }
}

// === Renderer: pulldown-cmark events → Doc ===

#[derive(Default)]
struct Renderer {
    text: String,
    spans: Vec<Span>,
    /// Spans opened but still waiting for their first visible char (so they exclude the block
    /// separators and indentation written before it).
    unstarted: Vec<usize>,
    /// Open spans per `Style::kind`: used to refuse nesting Telegram does not support.
    active: [u32; 7],
    /// Newlines owed before the next content (block separation).
    need: usize,
    /// Written after every newline inside a list item.
    indent: String,
    item_indents: Vec<usize>,
    /// Next number of each open list (`None`: bullets).
    lists: Vec<Option<u64>>,
    /// Span (if any) of each open heading, quote and emphasis tag.
    tags: Vec<Option<usize>>,
    links: Vec<Link>,
    /// Code or HTML block being collected.
    block: Option<Block>,
    table: Option<Table>,
    /// Bytes of content put so far, wherever they went (tells whether a link had any text).
    written: usize,
}

struct Link {
    span: Option<usize>,
    url: String,
    mark: usize,
    image: bool,
}

struct Block {
    buf: String,
    lang: Option<String>,
    html: bool,
}

struct Table {
    aligns: Vec<Alignment>,
    rows: Vec<Vec<String>>,
    row: Vec<String>,
    cell: String,
    head_rows: usize,
}

impl Renderer {
    fn event(&mut self, event: Event<'_>) {
        match event {
            Event::Start(tag) => self.start(tag),
            Event::End(tag) => self.end(tag),
            Event::Code(s) => {
                let span = self.open(Style::Code);
                self.put(&s);
                self.close(span);
            }
            Event::Text(s)
            | Event::Html(s)
            | Event::InlineHtml(s)
            | Event::InlineMath(s)
            | Event::DisplayMath(s) => self.put(&s),
            Event::FootnoteReference(s) => {
                self.put("[^");
                self.put(&s);
                self.put("]");
            }
            Event::SoftBreak | Event::HardBreak => self.put("\n"),
            Event::Rule => {
                self.put("———");
                self.gap();
            }
            Event::TaskListMarker(done) => self.put(if done { "[x] " } else { "[ ] " }),
        }
    }

    fn start(&mut self, tag: Tag<'_>) {
        let style = match tag {
            Tag::Heading { .. } | Tag::Strong => Some(Style::Bold),
            Tag::Emphasis => Some(Style::Italic),
            Tag::Strikethrough => Some(Style::Strike),
            Tag::BlockQuote(_) => Some(Style::Quote),
            Tag::Superscript | Tag::Subscript => None,
            Tag::CodeBlock(kind) => {
                let lang = match kind {
                    CodeBlockKind::Fenced(info) => language(&info),
                    CodeBlockKind::Indented => None,
                };
                let (buf, html) = (String::new(), false);
                self.block = Some(Block { buf, lang, html });
                return;
            }
            Tag::HtmlBlock => {
                let (buf, lang, html) = (String::new(), None, true);
                self.block = Some(Block { buf, lang, html });
                return;
            }
            Tag::List(first) => {
                self.lists.push(first);
                self.need = self.need.max(1);
                return;
            }
            Tag::Item => return self.item(),
            Tag::Table(aligns) => {
                let (rows, row, cell) = (Vec::new(), Vec::new(), String::new());
                self.table = Some(Table {
                    aligns,
                    rows,
                    row,
                    cell,
                    head_rows: 0,
                });
                return;
            }
            Tag::Link {
                link_type,
                dest_url,
                ..
            } => {
                let span = href(link_type, &dest_url).and_then(|h| self.open(Style::Link(h)));
                let (url, mark) = (dest_url.into_string(), self.written);
                self.links.push(Link {
                    span,
                    url,
                    mark,
                    image: false,
                });
                return;
            }
            Tag::Image { dest_url, .. } => {
                let (url, mark) = (dest_url.into_string(), self.written);
                self.links.push(Link {
                    span: None,
                    url,
                    mark,
                    image: true,
                });
                return;
            }
            // Paragraphs need nothing at their start; the rest are not enabled.
            _ => return,
        };
        let span = style.and_then(|s| self.open(s));
        self.tags.push(span);
    }

    fn end(&mut self, tag: TagEnd) {
        match tag {
            TagEnd::Paragraph => self.gap(),
            TagEnd::Heading(_) | TagEnd::BlockQuote(_) => {
                let span = self.tags.pop().flatten();
                self.close(span);
                self.gap();
            }
            TagEnd::Emphasis
            | TagEnd::Strong
            | TagEnd::Strikethrough
            | TagEnd::Superscript
            | TagEnd::Subscript => {
                let span = self.tags.pop().flatten();
                self.close(span);
            }
            TagEnd::CodeBlock | TagEnd::HtmlBlock => {
                let Some(block) = self.block.take() else {
                    return;
                };
                let content = block.buf.trim_end_matches('\n');
                if block.html {
                    self.put(content);
                    self.gap();
                } else {
                    self.pre(block.lang, content);
                }
            }
            TagEnd::List(_) => {
                self.lists.pop();
                self.need = self.need.max(if self.lists.is_empty() { 2 } else { 1 });
            }
            TagEnd::Item => {
                if let Some(len) = self.item_indents.pop() {
                    self.indent.truncate(len);
                }
                self.need = self.need.max(1);
            }
            TagEnd::TableCell => {
                if let Some(t) = &mut self.table {
                    let cell = std::mem::take(&mut t.cell);
                    t.row.push(cell);
                }
            }
            TagEnd::TableHead | TagEnd::TableRow => {
                if let Some(t) = &mut self.table {
                    let row = std::mem::take(&mut t.row);
                    t.rows.push(row);
                    if tag == TagEnd::TableHead {
                        t.head_rows = t.rows.len();
                    }
                }
            }
            TagEnd::Table => {
                if let Some(t) = self.table.take() {
                    self.pre(None, &t.render());
                }
            }
            TagEnd::Link | TagEnd::Image => self.link_end(),
            _ => {}
        }
    }

    fn item(&mut self) {
        let marker = match self.lists.last_mut() {
            Some(Some(n)) => {
                let marker = format!("{n}. ");
                *n = n.saturating_add(1);
                marker
            }
            _ => "• ".to_owned(),
        };
        self.need = self.need.max(1);
        self.flush(true);
        self.text.push_str(&marker);
        self.item_indents.push(self.indent.len());
        let width = marker
            .chars()
            .count()
            .min(MAX_INDENT.saturating_sub(self.indent.len()));
        self.indent.extend(std::iter::repeat_n(' ', width));
    }

    fn link_end(&mut self) {
        let Some(link) = self.links.pop() else { return };
        let url = link.url.trim();
        if self.written == link.mark {
            self.put(url);
        } else if link.image && !url.is_empty() {
            self.put(" (");
            self.put(url);
            self.put(")");
        }
        self.close(link.span);
    }

    /// A preformatted block: code or a table.
    fn pre(&mut self, lang: Option<String>, content: &str) {
        if content.is_empty() {
            return;
        }
        self.need = self.need.max(1);
        let span = self.open(Style::Pre(lang));
        self.flush(false);
        push_clean(&mut self.text, content, "");
        self.close(span);
        self.gap();
    }

    /// Ends a block: the next content starts after a blank line.
    fn gap(&mut self) {
        self.need = self.need.max(2);
    }

    /// Appends visible content wherever it currently goes.
    fn put(&mut self, s: &str) {
        if s.is_empty() {
            return;
        }
        self.written += s.len();
        if let Some(block) = &mut self.block {
            block.buf.push_str(s);
        } else if let Some(table) = &mut self.table {
            table.cell.push_str(s);
        } else {
            self.flush(true);
            push_clean(&mut self.text, s, &self.indent);
        }
    }

    /// Writes the owed newlines (and indentation) and starts the spans waiting for content.
    fn flush(&mut self, indent: bool) {
        if self.need > 0 && !self.text.is_empty() {
            self.text.extend(std::iter::repeat_n('\n', self.need));
            if indent {
                self.text.push_str(&self.indent);
            }
        }
        self.need = 0;
        let at = self.text.len();
        for i in self.unstarted.drain(..) {
            self.spans[i].start = at;
        }
    }

    /// Opens a span unless Telegram could not show it there: no nesting of the same kind (one
    /// blockquote level, no bold in bold), nothing inside code, no code inside a link, and no
    /// styling in tables, which are rendered as preformatted text.
    fn open(&mut self, style: Style) -> Option<usize> {
        let [.., code, pre, link, _] = self.active;
        let blocked = self.active[style.kind()] > 0
            || code + pre > 0
            || (style == Style::Code && link > 0)
            || self.block.is_some()
            || self.table.is_some();
        if blocked {
            return None;
        }
        self.active[style.kind()] += 1;
        self.spans.push(Span {
            start: UNSET,
            end: UNSET,
            style,
        });
        self.unstarted.push(self.spans.len() - 1);
        Some(self.spans.len() - 1)
    }

    fn close(&mut self, span: Option<usize>) {
        let Some(i) = span else { return };
        let kind = self.spans[i].style.kind();
        self.active[kind] = self.active[kind].saturating_sub(1);
        if let Some(at) = self.unstarted.iter().rposition(|&u| u == i) {
            self.unstarted.remove(at); // no content: the span is dropped
        } else {
            self.spans[i].end = self.text.len();
        }
    }
}

impl Table {
    fn render(&self) -> String {
        let mut widths: Vec<usize> = Vec::new();
        for row in &self.rows {
            for (c, cell) in row.iter().enumerate() {
                let w = cell.chars().count().clamp(1, MAX_CELL_PAD);
                match widths.get_mut(c) {
                    Some(width) => *width = (*width).max(w),
                    None => widths.push(w),
                }
            }
        }
        let mut out = String::new();
        for (r, row) in self.rows.iter().enumerate() {
            // Trailing empty cells add only padding.
            let n = row.iter().rposition(|c| !c.is_empty()).map_or(0, |i| i + 1);
            let line_start = out.len();
            for (c, cell) in row[..n].iter().enumerate() {
                if c > 0 {
                    out.push_str(" | ");
                }
                let pad = widths[c].saturating_sub(cell.chars().count());
                let (left, right) = match self.aligns.get(c) {
                    Some(Alignment::Right) => (pad, 0),
                    Some(Alignment::Center) => (pad / 2, pad - pad / 2),
                    _ => (0, pad),
                };
                out.extend(std::iter::repeat_n(' ', left));
                out.push_str(cell);
                out.extend(std::iter::repeat_n(' ', right));
            }
            let trimmed = out[line_start..].trim_end().len();
            out.truncate(line_start + trimmed);
            out.push('\n');
            if r + 1 == self.head_rows {
                for (c, w) in widths.iter().enumerate() {
                    if c > 0 {
                        out.push_str("-+-");
                    }
                    out.extend(std::iter::repeat_n('-', *w));
                }
                out.push('\n');
            }
        }
        out.truncate(out.trim_end_matches('\n').len());
        out
    }
}

// === Splitting ===

/// Cuts `text` into byte ranges of at most `limit` UTF-16 units, none of them whitespace only.
/// Only whitespace lies between consecutive ranges.
fn split_ranges(text: &str, limit: usize) -> Vec<Range<usize>> {
    let limit = limit.max(2);
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < text.len() {
        let hard = fit(text, pos, limit);
        let (end, next) = if hard == text.len() {
            (hard, hard)
        } else {
            cut(text, pos, hard, limit)
        };
        let part = text[pos..end].trim_end();
        if !part.trim_start().is_empty() {
            out.push(pos..pos + part.len());
        }
        pos = next;
    }
    out
}

/// The largest char boundary `hard` with `text[pos..hard]` at most `limit` UTF-16 units.
fn fit(text: &str, pos: usize, limit: usize) -> usize {
    let mut units = 0;
    for (i, c) in text[pos..].char_indices() {
        units += c.len_utf16();
        if units > limit {
            return pos + i;
        }
    }
    text.len()
}

/// Where to end the part that starts at `pos` and may reach `hard`, and where the next one starts.
fn cut(text: &str, pos: usize, hard: usize, limit: usize) -> (usize, usize) {
    let window = &text[pos..hard];
    let half = window.len() / 2;
    // A blank line in the second half, or one right before a block that fits whole in the next part.
    if let Some(i) = window.rfind("\n\n")
        && i > 0
        && (i >= half || fits_block(text, skip(text, pos + i, |c| c == '\n'), limit))
    {
        return (pos + i, skip(text, pos + i, |c| c == '\n'));
    }
    for min in [half, window.len() / 4] {
        if let Some(i) = window.rfind('\n')
            && i >= min.max(1)
        {
            return (pos + i, skip(text, pos + i, |c| c == '\n'));
        }
        if let Some(i) = window.rfind(char::is_whitespace)
            && i >= min.max(1)
        {
            return (pos + i, skip(text, pos + i, char::is_whitespace));
        }
    }
    let at = hard_cut(text, pos, hard);
    (at, at)
}

/// Whether the block starting at `from` ends (at a blank line or the end) within `limit` units.
fn fits_block(text: &str, from: usize, limit: usize) -> bool {
    let mut units = 0;
    let mut newline = false;
    for c in text[from..].chars() {
        if c == '\n' && newline {
            return true;
        }
        newline = c == '\n';
        units += c.len_utf16();
        if units > limit {
            return false;
        }
    }
    true
}

fn skip(text: &str, from: usize, pred: impl Fn(char) -> bool) -> usize {
    text[from..]
        .find(|c| !pred(c))
        .map_or(text.len(), |i| from + i)
}

/// `hard`, or a little before it if that would separate an emoji or letter from a joiner, variation
/// selector, skin tone or combining mark.
fn hard_cut(text: &str, pos: usize, hard: usize) -> usize {
    let glue = |c: char| {
        matches!(c, '\u{200d}' | '\u{20e3}' | '\u{fe00}'..='\u{fe0f}' | '\u{0300}'..='\u{036f}')
            || matches!(c, '\u{1f3fb}'..='\u{1f3ff}' | '\u{e0020}'..='\u{e007f}')
    };
    let mut at = hard;
    for _ in 0..MAX_JOINER_BACKOFF {
        let after = text[at..].chars().next();
        let Some(before) = text[..at].chars().next_back() else {
            break;
        };
        if !(after.is_some_and(glue) || before == '\u{200d}') {
            return at;
        }
        if at - before.len_utf8() <= pos {
            break;
        }
        at -= before.len_utf8();
    }
    hard
}

// === Text helpers ===

fn escape_into(out: &mut String, s: &str, quotes: bool) {
    let mut last = 0;
    for (i, b) in s.bytes().enumerate() {
        let esc = match b {
            b'&' => "&amp;",
            b'<' => "&lt;",
            b'>' => "&gt;",
            b'"' if quotes => "&quot;",
            _ => continue,
        };
        out.push_str(&s[last..i]);
        out.push_str(esc);
        last = i + 1;
    }
    out.push_str(&s[last..]);
}

/// Appends `s` without control chars other than tab and newline, indenting after each newline.
fn push_clean(out: &mut String, s: &str, indent: &str) {
    for c in s.chars() {
        match c {
            '\n' => {
                out.push('\n');
                out.push_str(indent);
            }
            '\t' => out.push('\t'),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
}

fn normalize_newlines(s: &str) -> std::borrow::Cow<'_, str> {
    if s.contains('\r') {
        s.replace("\r\n", "\n").replace('\r', "\n").into()
    } else {
        s.into()
    }
}

/// The first word of a fenced block's info string, if it is a plausible language name.
fn language(info: &str) -> Option<String> {
    let word = info
        .split(|c: char| c.is_whitespace() || c == ',' || c == '{')
        .next()?;
    let ok = !word.is_empty()
        && word
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'+' | b'-'));
    ok.then(|| word.to_owned())
}

/// The href for a link, if Telegram should get one: http(s), tg and mailto targets only.
fn href(link_type: LinkType, dest: &str) -> Option<String> {
    let dest: String = dest.trim().chars().filter(|c| !c.is_control()).collect();
    if link_type == LinkType::Email {
        return (!dest.is_empty()).then(|| format!("mailto:{dest}"));
    }
    let allowed = ["http://", "https://", "tg://", "mailto:"]
        .iter()
        .any(|scheme| {
            dest.len() > scheme.len()
                && dest.as_bytes()[..scheme.len()].eq_ignore_ascii_case(scheme.as_bytes())
        });
    allowed.then_some(dest)
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use e2e::fake_telegram::parse_html;
    use proptest::prelude::*;

    use super::*;

    /// Renders `md` and checks every part against the fake Bot API's HTML parser: it parses, its
    /// visible text is exactly the next slice of the whole document's text, within the limit and
    /// not blank, and only whitespace was dropped between parts.
    fn check(md: &str, limit: usize) -> Vec<String> {
        let parts = markdown_to_html(md, limit);
        let doc = Doc::from_markdown(md);
        let ranges = split_ranges(&doc.text, limit);
        assert_eq!(parts.len(), ranges.len());
        let mut prev = 0;
        for (part, range) in parts.iter().zip(&ranges) {
            let parsed = parse_html(part).unwrap_or_else(|e| panic!("{e}\n{part}"));
            assert_eq!(parsed.text, doc.text[range.clone()], "{part}");
            assert!(utf16_len(&parsed.text) <= limit.max(2), "{part}");
            assert!(!parsed.text.trim().is_empty(), "{part:?}");
            assert!(doc.text[prev..range.start].trim().is_empty());
            prev = range.end;
        }
        assert!(doc.text[prev..].trim().is_empty());
        let plain: Vec<String> = parts.iter().map(|p| visible(p)).collect();
        assert_eq!(plain_parts(md, limit), plain);
        parts
    }

    /// The single part of a short rendering.
    fn one(md: &str) -> String {
        let parts = check(md, MESSAGE_LIMIT);
        assert_eq!(parts.len(), 1, "{parts:?}");
        parts.into_iter().next().unwrap_or_default()
    }

    fn split(text: &str, limit: usize) -> Vec<&str> {
        split_ranges(text, limit)
            .into_iter()
            .map(|r| &text[r])
            .collect()
    }

    fn visible(part: &str) -> String {
        parse_html(part).unwrap().text
    }

    #[test]
    fn escaping() {
        assert_eq!(
            escape_html("<script>a & \"b\"</script>"),
            "&lt;script&gt;a &amp; &quot;b&quot;&lt;/script&gt;"
        );
        assert_eq!(
            one("<script>alert(1)</script>"),
            "&lt;script&gt;alert(1)&lt;/script&gt;"
        );
        assert_eq!(one("a & b, x < y, y > x"), "a &amp; b, x &lt; y, y &gt; x");
        assert_eq!(one("&amp; &lt; &#65; &copy;"), "&amp; &lt; A ©");
        assert_eq!(one("say \"hi\""), "say \"hi\"");
        assert_eq!(one("`a<b && c>d`"), "<code>a&lt;b &amp;&amp; c&gt;d</code>");
        assert_eq!(
            one("inline <b>html</b> stays text"),
            "inline &lt;b&gt;html&lt;/b&gt; stays text"
        );
        assert_eq!(
            one("<div class=\"x\">\nblock & html\n</div>\n\nafter"),
            "&lt;div class=\"x\"&gt;\nblock &amp; html\n&lt;/div&gt;\n\nafter"
        );
        assert_eq!(one("bell\u{7}and\u{0}nul\r\nline"), "bellandnul\nline");
    }

    #[test]
    fn inline_constructs() {
        assert_eq!(
            one("*em* _em_ **strong** __strong__ ~~gone~~"),
            "<i>em</i> <i>em</i> <b>strong</b> <b>strong</b> <s>gone</s>"
        );
        assert_eq!(
            one("***both*** **bold *and it***"),
            "<i><b>both</b></i> <b>bold <i>and it</i></b>"
        );
        // No bold inside bold, no styling inside code.
        assert_eq!(one("**a **b** c**"), "<b>a b c</b>");
        assert_eq!(one("# Title with **bold**"), "<b>Title with bold</b>");
        assert_eq!(one("`**not bold**`"), "<code>**not bold**</code>");
        assert_eq!(
            one("soft\nbreak and hard  \nbreak\\\nthird"),
            "soft\nbreak and hard\nbreak\nthird"
        );
        assert_eq!(one("- [x] done\n- [ ] todo"), "• [x] done\n• [ ] todo");
    }

    #[test]
    fn links_and_images() {
        assert_eq!(
            one("[docs](https://e.com/a?b=1&c=\"2\")"),
            "<a href=\"https://e.com/a?b=1&amp;c=&quot;2&quot;\">docs</a>"
        );
        assert_eq!(
            one("[x](HTTP://E.COM) [y](tg://user?id=1) [z](mailto:a@b.c)"),
            "<a href=\"HTTP://E.COM\">x</a> <a href=\"tg://user?id=1\">y</a> <a href=\"mailto:a@b.c\">z</a>"
        );
        assert_eq!(
            one("<https://e.com/x> <me@e.com>"),
            "<a href=\"https://e.com/x\">https://e.com/x</a> <a href=\"mailto:me@e.com\">me@e.com</a>"
        );
        // Other targets: the text only.
        assert_eq!(
            one(
                "[main.rs](src/main.rs:12) [js](javascript:alert(1)) [f](file:///etc) [h](http://)"
            ),
            "main.rs js f h"
        );
        // Empty link text shows the target; code inside a link loses its code style.
        assert_eq!(
            one("[](https://e.com) [`cargo`](https://doc.rust-lang.org/cargo)"),
            "<a href=\"https://e.com\">https://e.com</a> <a href=\"https://doc.rust-lang.org/cargo\">cargo</a>"
        );
        assert_eq!(
            one("**[bold link](https://e.com)**"),
            "<b><a href=\"https://e.com\">bold link</a></b>"
        );
        assert_eq!(
            one("![a diagram](https://e.com/d.png) ![](https://e.com/e.png) ![alt]()"),
            "a diagram (https://e.com/d.png) https://e.com/e.png alt"
        );
        assert_eq!(
            one("[ref link][r]\n\n[r]: https://e.com/r"),
            "<a href=\"https://e.com/r\">ref link</a>"
        );
    }

    #[test]
    fn code_blocks() {
        assert_eq!(
            one("```rust\nfn main() {\n    println!(\"<&>\");\n}\n```"),
            "<pre><code class=\"language-rust\">fn main() {\n    println!(\"&lt;&amp;&gt;\");\n}</code></pre>"
        );
        assert_eq!(
            one("```c++ {.numberLines}\nint x;\n```"),
            "<pre><code class=\"language-c++\">int x;</code></pre>"
        );
        assert_eq!(
            one("```rust,ignore\nx\n```"),
            "<pre><code class=\"language-rust\">x</code></pre>"
        );
        // A language Telegram could not take, no language, indented, unclosed.
        assert_eq!(one("```c#\nx\n```"), "<pre>x</pre>");
        assert_eq!(one("```\n  x\n\n  y\n```"), "<pre>  x\n\n  y</pre>");
        assert_eq!(
            one("text\n\n    indented\n    code"),
            "text\n\n<pre>indented\ncode</pre>"
        );
        assert_eq!(
            one("```sh\nopen"),
            "<pre><code class=\"language-sh\">open</code></pre>"
        );
        assert!(markdown_to_html("```rust\n```", MESSAGE_LIMIT).is_empty());
    }

    #[test]
    fn blocks() {
        assert_eq!(
            one("# One\n\npara\n\n## Two\ntext"),
            "<b>One</b>\n\npara\n\n<b>Two</b>\n\ntext"
        );
        assert_eq!(one("Setext\n======"), "<b>Setext</b>");
        assert_eq!(one("a\n\n---\n\nb"), "a\n\n———\n\nb");
        assert_eq!(
            one("> quoted **b**\n> > nested\n>\n> more\n\nafter"),
            "<blockquote>quoted <b>b</b>\n\nnested\n\nmore</blockquote>\n\nafter"
        );
        assert_eq!(
            one("> ```py\n> x = 1\n> ```"),
            "<blockquote><pre><code class=\"language-py\">x = 1</code></pre></blockquote>"
        );
    }

    #[test]
    fn lists() {
        assert_eq!(
            one("- a\n- b\n  - c *i*\n    - d\n- e"),
            "• a\n• b\n  • c <i>i</i>\n    • d\n• e"
        );
        assert_eq!(
            one("1. one\n2. two\n   1. sub\n10. ten"),
            "1. one\n2. two\n   1. sub\n3. ten"
        );
        assert_eq!(one("7. seven\n8. eight"), "7. seven\n8. eight");
        assert_eq!(
            one("para\n\n- a\n\n  second para\n- b\n\nafter"),
            "para\n\n• a\n\n  second para\n\n• b\n\nafter"
        );
        assert_eq!(
            one("- item\n  ```rust\n  let x;\n  ```"),
            "• item\n<pre><code class=\"language-rust\">let x;</code></pre>"
        );
        assert_eq!(
            one("> - in a quote\n> - two"),
            "<blockquote>• in a quote\n• two</blockquote>"
        );
        // Indentation stops growing at MAX_INDENT.
        let deep: String = (0..12)
            .map(|i| format!("{}- {i}\n", "  ".repeat(i)))
            .collect();
        let text = visible(&one(&deep));
        assert!(
            text.lines()
                .all(|l| l.len() - l.trim_start().len() <= MAX_INDENT),
            "{text}"
        );
    }

    #[test]
    fn tables() {
        let md = "| name | n |  c  |\n|:-----|--:|:---:|\n| a & b | 1 | x |\n| long name | 22 |\n";
        assert_eq!(
            one(md),
            "<pre>name      |  n | c\n----------+----+--\na &amp; b     |  1 | x\nlong name | 22</pre>"
        );
        assert_eq!(
            one("|`code`|[l](https://e.com)|**b**|\n|-|-|-|"),
            "<pre>code | l | b\n-----+---+--</pre>"
        );
    }

    #[test]
    fn empty_input() {
        for md in ["", "   ", "\n\n\t\n", "```\n```", "<!-- -->\n", "[](<>)"] {
            let parts = markdown_to_html(md, MESSAGE_LIMIT);
            assert!(
                parts.iter().all(|p| !visible(p).trim().is_empty()),
                "{md:?}: {parts:?}"
            );
        }
        assert!(markdown_to_html("", MESSAGE_LIMIT).is_empty());
        assert!(markdown_to_html(" \n \n", MESSAGE_LIMIT).is_empty());
        assert!(plain_parts("", MESSAGE_LIMIT).is_empty());
        assert!(plain_parts("\n \t\n", MESSAGE_LIMIT).is_empty());
    }

    #[test]
    fn utf16_counting() {
        assert_eq!(utf16_len("a"), 1);
        assert_eq!(utf16_len("é中"), 2);
        assert_eq!(utf16_len("😀"), 2);
        assert_eq!(utf16_len("👨‍👩‍👧"), 8);
        // 3000 emoji = 6000 units: an odd limit never cuts a surrogate pair.
        let emoji = "😀".repeat(3000);
        for limit in [MESSAGE_LIMIT, 4095, 3] {
            let parts = check(&emoji, limit);
            assert!(
                parts
                    .iter()
                    .all(|p| utf16_len(p) <= limit && p.chars().all(|c| c == '😀'))
            );
            assert_eq!(parts.iter().map(|p| p.chars().count()).sum::<usize>(), 3000);
        }
        assert_eq!(check(&emoji, MESSAGE_LIMIT).len(), 2);
        // CJK has no spaces: the cut falls mid-text, exactly at the limit.
        let cjk = "中文".repeat(2500);
        let parts = check(&cjk, MESSAGE_LIMIT);
        assert_eq!(
            parts.iter().map(|p| utf16_len(p)).collect::<Vec<_>>(),
            [4096, 904]
        );
        // A joined emoji is not torn apart by a hard cut.
        assert_eq!(split("aaaaaaaaa👨‍👩‍👧", 12), ["aaaaaaaaa", "👨‍👩‍👧"]);
        assert_eq!(split("aaaaaaaaaa❤️", 11), ["aaaaaaaaaa", "❤️"]);
    }

    #[test]
    fn split_preferences() {
        // A blank line in the second half of the window wins over later line breaks and spaces.
        let t = "aaaa aaaa aaaa aaaa aaaa\n\nbbbb bbbb\nbbbb bbbb";
        assert_eq!(
            split(t, 40),
            ["aaaa aaaa aaaa aaaa aaaa", "bbbb bbbb\nbbbb bbbb"]
        );
        // Then a line break, then a space, then mid-word.
        let t = "aaaa aaaa aaaa aaaa aaaa\nbbbb bbbb bbbb bbbb";
        assert_eq!(
            split(t, 40),
            ["aaaa aaaa aaaa aaaa aaaa", "bbbb bbbb bbbb bbbb"]
        );
        let t = "aaaa aaaa aaaa aaaa aaaa bbbb bbbb bbbb";
        assert_eq!(split(t, 30), ["aaaa aaaa aaaa aaaa aaaa bbbb", "bbbb bbbb"]);
        assert_eq!(
            split(&"x".repeat(100), 30)
                .iter()
                .map(|p| p.len())
                .collect::<Vec<_>>(),
            [30, 30, 30, 10]
        );
        // An early blank line is taken when the block after it then fits whole in the next part...
        let block = "y".repeat(38);
        let t = format!("Hi.\n\n{block}\n\nmore");
        assert_eq!(split(&t, 40), ["Hi.", block.as_str(), "more"]);
        // ...but not when that block must be cut anyway: then the window is filled.
        let t = format!("Hi.\n\n{}", "y ".repeat(40));
        assert_eq!(
            split(&t, 40)[0],
            format!("Hi.\n\n{}", "y ".repeat(17).trim_end())
        );
        // Line breaks inside code are kept at the cut's far side only: indentation survives.
        assert_eq!(
            split("fn a() {\n    body();\n}", 12),
            ["fn a() {", "    body();", "}"]
        );
    }

    #[test]
    fn spans_reopen_across_cuts() {
        let parts = check("**aaaa bbbb cccc dddd**", 10);
        assert_eq!(parts, ["<b>aaaa bbbb</b>", "<b>cccc dddd</b>"]);
        let parts = check("x [aaaa bbbb cccc](https://e.com/?a&b) y", 10);
        assert_eq!(
            parts,
            [
                "x <a href=\"https://e.com/?a&amp;b\">aaaa</a>",
                "<a href=\"https://e.com/?a&amp;b\">bbbb cccc</a>",
                "y"
            ]
        );
        let parts = check("> *quoted text that goes on*", 12);
        assert_eq!(
            parts,
            [
                "<blockquote><i>quoted text</i></blockquote>",
                "<blockquote><i>that goes on</i></blockquote>"
            ]
        );
        let parts = check("```rust\nlet a = 1;\nlet b = 2;\n```", 12);
        assert_eq!(
            parts,
            [
                "<pre><code class=\"language-rust\">let a = 1;</code></pre>",
                "<pre><code class=\"language-rust\">let b = 2;</code></pre>"
            ]
        );
    }

    /// A long answer as Codex writes them: prose, lists, and two code blocks, one longer than a
    /// message.
    fn long_answer() -> String {
        let mut md = String::from(
            "# Summary\n\nI changed **three** files; see `src/lib.rs` & the [docs](https://e.com/?a=1&b=2).\n\n",
        );
        for i in 0..30 {
            md.push_str(&format!(
                "- step {i}: run `cargo test -p center` and check <output> for *errors*\n"
            ));
        }
        md.push_str("\n```rust\n");
        for i in 0..60 {
            md.push_str(&format!(
                "    let value_{i} = compute(&input[{i}..]) < limit; // \"quoted\"\n"
            ));
        }
        md.push_str("```\n\nSome more prose that explains the change in detail, with words and words.\n\n```python\n");
        for i in 0..120 {
            md.push_str(&format!(
                "def f{i}(x): return x << {i} if x > 0 else -x & 0xff\n"
            ));
        }
        md.push_str("```\n\n> Note: the end.\n");
        md
    }

    #[test]
    fn long_answer_splits_into_valid_parts() {
        let md = long_answer();
        let whole = markdown_to_html(&md, usize::MAX);
        assert_eq!(whole.len(), 1);
        let whole_text = visible(&whole[0]);
        assert!(
            utf16_len(&whole_text) > 10_000,
            "{}",
            utf16_len(&whole_text)
        );

        let parts = check(&md, MESSAGE_LIMIT);
        assert!(parts.len() >= 3, "{}", parts.len());
        let squeeze = |s: &str| s.split_whitespace().collect::<String>();
        let joined: String = parts.iter().map(|p| visible(p)).collect();
        assert_eq!(squeeze(&joined), squeeze(&whole_text));
        // The python block is longer than a message: it is closed and reopened with its language.
        let reopened = parts.windows(2).any(|w| {
            w[0].ends_with("</code></pre>")
                && w[1].starts_with("<pre><code class=\"language-python\">def f")
        });
        assert!(reopened, "{parts:#?}");
        // Every part of the split code is still a code block of the right language.
        let python: Vec<_> = parts.iter().filter(|p| p.contains("def f")).collect();
        assert!(python.len() >= 2);
        for p in python {
            let parsed = parse_html(p).unwrap();
            assert!(
                parsed
                    .entities
                    .iter()
                    .any(|e| e.kind == "pre" && e.language.as_deref() == Some("python")),
                "{p}"
            );
        }
    }

    #[test]
    fn plain_fallback() {
        let md = "**bold** & <tag> [link](https://e.com)\r\n\r\n```sh\nsecond paragraph\n```\n\n"
            .repeat(200);
        let (html, plain) = (markdown_to_html(&md, 500), plain_parts(&md, 500));
        assert!(plain.len() > 1);
        assert_eq!(plain.len(), html.len());
        assert!(plain[0].starts_with("bold & <tag> link\n\nsecond paragraph\n\nbold"));
        for (h, p) in html.iter().zip(&plain) {
            assert_eq!(&visible(h), p);
        }
        assert_eq!(plain_parts("*a*\n\n**b**", 2), ["a", "b"]);
    }

    #[test]
    fn adversarial_input_is_fast() {
        let cases = [
            "[".repeat(50_000),
            "[a](".repeat(20_000),
            "[".repeat(10_000) + &"](x)".repeat(10_000),
            "*".repeat(100_000),
            "*a _b ".repeat(30_000),
            "*a **b ".repeat(30_000),
            "`".repeat(100_000),
            "`a``".repeat(30_000),
            ">".repeat(50_000) + " x",
            "- ".repeat(20_000) + "x",
            "> - ".repeat(10_000) + "x",
            (0..2_000)
                .map(|i| format!("{}- x\n", " ".repeat(2 * i)))
                .collect(),
            format!(
                "{}\n{}\n{}",
                "|a".repeat(3_000),
                "|-".repeat(3_000),
                "|x|\n".repeat(3_000)
            ),
            "<".repeat(100_000),
            "&amp;".repeat(50_000),
            "x".repeat(300_000),
            "word ".repeat(100_000),
        ];
        for md in &cases {
            let started = Instant::now();
            let parts = markdown_to_html(md, MESSAGE_LIMIT);
            // Generous for unoptimised test builds; release takes milliseconds.
            assert!(
                started.elapsed() < Duration::from_secs(5),
                "{:?}: {:?}",
                &md[..20],
                started.elapsed()
            );
            for p in &parts {
                let text = visible(p);
                assert!(utf16_len(&text) <= MESSAGE_LIMIT && !text.trim().is_empty());
            }
        }
    }

    /// Lines that exercise every construct and the places where they interact.
    fn markdown_line() -> impl Strategy<Value = String> {
        let snippets = prop::sample::select(vec![
            "# head",
            "## **bold head**",
            "para *it* **b** ~~s~~ `c`",
            "- item",
            "  - nested",
            "1. one",
            "10) ten",
            "- [x] task",
            "> quote",
            "> > deep",
            "```rust",
            "```",
            "~~~c#",
            "    indented",
            "| a | b |",
            "|---|:-:|",
            "| 1 | 2 | 3 |",
            "---",
            "[l](https://e.com/?a&b)",
            "[r](x/y)",
            "![i](https://e.com/i.png)",
            "<https://e.com>",
            "<a@b.c>",
            "<b>html</b>",
            "<div>",
            "&amp; &",
            "x < y > z \"q\"",
            "😀👨‍👩‍👧 中文 é",
            "word word word word word word",
            "",
            "   ",
            "\t",
            "***",
            "__a *b_ c*",
            "[a](<https://e.com/x y>)",
            "line  ",
            "\\",
            "[^1]",
            "\u{0}\u{7}",
        ]);
        prop::collection::vec(snippets, 0..40).prop_map(|v| v.join("\n"))
    }

    proptest! {
        #[test]
        fn arbitrary_text_gives_valid_parts(md in any::<String>(), limit in 2usize..300) {
            check(&md, limit);
            check(&md, MESSAGE_LIMIT);
        }

        #[test]
        fn markdown_gives_valid_parts(md in markdown_line(), limit in 2usize..120) {
            check(&md, limit);
            check(&md, MESSAGE_LIMIT);
        }

        #[test]
        fn markdown_chars_give_valid_parts(
            md in "[a-z0-9 *_`~#>|:.()!\\[\\]<>&\"\\\\\n\t\u{1F600}\u{4E2D}\u{301}-]{0,300}",
            limit in 2usize..80,
        ) {
            check(&md, limit);
        }
    }
}
