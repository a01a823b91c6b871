//! Markdown as Codex writes it → Telegram HTML, split into messages that fit Telegram's limit.
//!
//! Pure (no I/O, no Telegram types): the delivery side calls [`markdown_to_html`] for an answer and
//! sends each part with `parse_mode = HTML`; after a "can't parse entities" error it resends
//! [`plain_parts`] without a parse mode.
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

/// The text as it is, without any markup, split the same way as [`markdown_to_html`]: the fallback
/// to send without a parse mode after Telegram rejected the HTML. Markdown syntax stays visible.
pub fn plain_parts(text: &str, limit: usize) -> Vec<String> {
    let text = normalize_newlines(text);
    split_ranges(&text, limit)
        .into_iter()
        .map(|r| text[r].to_owned())
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
mod scratch {
    #[test]
    fn show() {
        let md = std::fs::read_to_string("/tmp/md.md").unwrap();
        for p in super::markdown_to_html(&md, 4096) {
            println!("-----\n{p}");
        }
    }
    #[test]
    fn perf() {
        let mut cases: Vec<(&str, String)> = vec![
            ("brackets", "[".repeat(50_000)),
            ("brackets2", "[a](".repeat(50_000)),
            ("stars", "*".repeat(100_000)),
            ("stars_words", "*a ".repeat(100_000)),
            ("under", "_a ".repeat(100_000)),
            ("quotes", ">".repeat(50_000) + " x"),
            ("lists", "- ".repeat(20_000) + "x"),
            (
                "lists_lines",
                (0..5000)
                    .map(|i| format!("{}- x\n", "  ".repeat(i)))
                    .collect(),
            ),
            ("backticks", "`".repeat(100_000)),
            ("backticks_mixed", "`a``".repeat(50_000)),
            ("links_nested", "[".repeat(10_000) + &"](x)".repeat(10_000)),
            ("emph_nested", "*a **b ".repeat(50_000)),
            (
                "table",
                format!(
                    "{}\n{}\n{}",
                    "|a".repeat(5000),
                    "|-".repeat(5000),
                    "|x|\n".repeat(5000)
                ),
            ),
            ("lt", "<".repeat(200_000)),
            ("amp", "&amp;".repeat(200_000)),
            ("plain", "word ".repeat(200_000)),
            ("nowhite", "x".repeat(1_000_000)),
            ("emoji", "😀".repeat(250_000)),
        ];
        cases.push((
            "code",
            format!("```rust\n{}```\n", "let x = 1; // <>&\n".repeat(50_000)),
        ));
        for (name, md) in cases {
            let t = std::time::Instant::now();
            let parts = super::markdown_to_html(&md, 4096);
            let total: usize = parts.iter().map(|p| p.len()).sum();
            println!(
                "{name}: in {} out {} parts {} {:?}",
                md.len(),
                total,
                parts.len(),
                t.elapsed()
            );
        }
    }
}
