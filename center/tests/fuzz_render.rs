//! Property tests of Markdown → Telegram HTML ([`markdown_to_html`], [`plain_parts`]). Codex's
//! answers, and whatever a prompt-injected Codex chooses to write, end up here; a part Telegram
//! cannot parse is an answer the user never sees, and a link Telegram renders is one the user
//! may tap. So for any text at all: no panic; every part parses as Telegram's HTML parse mode
//! does (the strict fake Bot API's parser) and with our own stricter reading — only the tags we
//! emit, balanced and properly nested, every `<`, `>`, `&` escaped, links to http(s), tg and
//! mailto only; every part is within the limit and not blank; the plain fallback shows the same
//! text; and nothing is lost or repeated across the cuts.
//!
//! Button data (`telegram::callback`) is `pub(crate)`, so its properties live in that module's
//! own tests (round trip, arbitrary data).
//!
//! Bounded for CI: a fixed number of cases and a fixed seed (set `PROPTEST_CASES` or
//! `PROPTEST_RNG_SEED` to explore further locally).

use center::telegram::render::{
    MESSAGE_LIMIT, escape_html, markdown_to_html, plain_parts, utf16_len,
};
use e2e::fake_telegram::parse_html;
use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, RngSeed};

/// Cases per property: a few seconds in a debug build.
const CASES: u32 = 1500;

fn config() -> ProptestConfig {
    let mut config = ProptestConfig {
        failure_persistence: None,
        ..ProptestConfig::default()
    };
    if std::env::var_os("PROPTEST_CASES").is_none() {
        config.cases = CASES;
    }
    if std::env::var_os("PROPTEST_RNG_SEED").is_none() {
        config.rng_seed = RngSeed::Fixed(0x7265_6e64);
    }
    config
}

/// Pieces of Markdown as Codex writes it, and of the things that break renderers: nesting,
/// unclosed constructs, HTML, entities, hostile link targets, wide and control characters.
const PIECES: &[&str] = &[
    "# head",
    "## **bold** head",
    "*it*",
    "**b**",
    "***bi***",
    "~~s~~",
    "`c`",
    "``a`b``",
    "_a *b_ c*",
    "**unclosed",
    "- item",
    "  - nested",
    "    - deeper",
    "1. one",
    "99999999999999999999. big",
    "- [x] done",
    "> quote",
    "> > deep quote",
    ">",
    "```rust",
    "```",
    "~~~",
    "    indented code",
    "| a | b |",
    "|---|:-:|",
    "| **1** | `2` | 3 |",
    "---",
    "[l](https://e.com/?a&b=\"c\")",
    "[rel](x/y)",
    "[js](javascript:alert(1))",
    "[JS](JaVaScRiPt:alert(1))",
    "[data](data:text/html,<b>x</b>)",
    "[tg](tg://resolve?domain=x)",
    "[](https://empty.text)",
    "[**bold link** `code`](https://e.com)",
    "![img](https://e.com/i.png \"t\")",
    "<https://auto.link>",
    "<a@b.c>",
    "<b>html</b>",
    "<a href=\"javascript:x\">y</a>",
    "<div>\nblock\n</div>",
    "<!-- comment -->",
    "&amp; &lt; &#60; &#x3C; &bogus; &",
    "x < y > z \"q\" 'a'",
    "😀👨‍👩‍👧 中文 e\u{301} \u{200d}\u{fe0f}",
    "\u{0}\u{7}\u{1b}[31m\u{7f}\u{85}\u{2028}",
    "\r\n",
    "\t",
    "line  ",
    "\\",
    "[^1]",
    "[^1]: note",
    "$x^2$",
    "word word word word word word word word",
    "",
];

fn markdown() -> impl Strategy<Value = String> {
    let line = prop::collection::vec(prop::sample::select(PIECES), 1..4).prop_map(|p| p.join(" "));
    prop::collection::vec(line, 0..30).prop_map(|lines| lines.join("\n"))
}

fn texts() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => markdown(),
        1 => any::<String>(),
        1 => "[a-z0-9 *_`~#>|:.()!\\[\\]<>&\"\\\\\n\t\u{1F600}\u{4E2D}\u{301}-]{0,200}",
    ]
}

fn limits() -> impl Strategy<Value = usize> {
    prop_oneof![0usize..8, 8usize..120, Just(MESSAGE_LIMIT)]
}

/// Tags the renderer writes, and what each may hold; everything else is a finding.
fn check_html(part: &str) -> Result<(), String> {
    let mut open: Vec<String> = Vec::new();
    let mut rest = part;
    while let Some(i) = rest.find(['<', '>', '&']) {
        let text = &rest[..i];
        if text
            .chars()
            .any(|c| c.is_control() && c != '\n' && c != '\t')
        {
            return Err(format!("a control char in {text:?}"));
        }
        rest = &rest[i..];
        if rest.starts_with('>') {
            return Err("a raw '>'".into());
        }
        if rest.starts_with('&') {
            let entity = ["&lt;", "&gt;", "&amp;", "&quot;"]
                .into_iter()
                .find(|e| rest.starts_with(e))
                .ok_or_else(|| format!("a raw '&' at {:?}", &rest[..rest.len().min(10)]))?;
            rest = &rest[entity.len()..];
            continue;
        }
        let end = rest.find('>').ok_or("an unterminated tag")?;
        let tag = &rest[1..end];
        rest = &rest[end + 1..];
        if let Some(name) = tag.strip_prefix('/') {
            match open.pop() {
                Some(top) if top == name => {}
                other => return Err(format!("</{name}> closes {other:?}")),
            }
            continue;
        }
        let (name, attrs) = tag.split_once(' ').unwrap_or((tag, ""));
        let inside_code = open.iter().any(|t| t == "code");
        if inside_code || open.iter().any(|t| t == name) {
            return Err(format!("<{tag}> inside {open:?}"));
        }
        match (name, attrs) {
            ("b" | "i" | "s" | "blockquote" | "pre", "") => {}
            ("code", "") => {}
            ("code", a) if open.last().is_some_and(|t| t == "pre") => {
                let lang = a
                    .strip_prefix("class=\"language-")
                    .and_then(|l| l.strip_suffix('"'))
                    .ok_or_else(|| format!("code attributes {a:?}"))?;
                if lang.is_empty()
                    || !lang
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"_+-".contains(&b))
                {
                    return Err(format!("language {lang:?}"));
                }
            }
            ("a", a) => {
                let href = a
                    .strip_prefix("href=\"")
                    .and_then(|h| h.strip_suffix('"'))
                    .ok_or_else(|| format!("link attributes {a:?}"))?;
                if href.contains(['"', '<', '>']) {
                    return Err(format!("unescaped href {href:?}"));
                }
                let lower = href.to_ascii_lowercase();
                if !["http://", "https://", "tg://", "mailto:"]
                    .iter()
                    .any(|s| lower.starts_with(s))
                {
                    return Err(format!("a link to {href:?}"));
                }
            }
            _ => return Err(format!("tag <{tag}>")),
        }
        open.push(name.to_owned());
    }
    if rest
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\t')
    {
        return Err(format!("a control char in {rest:?}"));
    }
    if !open.is_empty() {
        return Err(format!("unclosed {open:?}"));
    }
    Ok(())
}

/// The text without any whitespace: what must survive cutting (cuts drop whitespace only).
fn squeezed<'a>(parts: impl IntoIterator<Item = &'a str>) -> String {
    parts
        .into_iter()
        .flat_map(|p| p.chars().filter(|c| !c.is_whitespace()))
        .collect()
}

proptest! {
    #![proptest_config(config())]

    /// Any text, any limit: valid parts within the limit, a plain fallback that matches, and the
    /// same text as an uncut rendering.
    #[test]
    fn any_text_renders_to_valid_parts_within_the_limit(md in texts(), limit in limits()) {
        let parts = markdown_to_html(&md, limit);
        let plain = plain_parts(&md, limit);
        prop_assert_eq!(parts.len(), plain.len());
        let mut shown = Vec::new();
        for (part, plain) in parts.iter().zip(&plain) {
            let parsed = parse_html(part);
            prop_assert!(parsed.is_ok(), "{:?}: {:?}", parsed.err(), part);
            let parsed = parsed.map_err(TestCaseError::fail)?;
            let strict = check_html(part);
            prop_assert!(strict.is_ok(), "{:?}: {:?}", strict.err(), part);
            prop_assert!(utf16_len(&parsed.text) <= limit.max(2), "{} > {}: {:?}", utf16_len(&parsed.text), limit, part);
            prop_assert!(!parsed.text.trim().is_empty(), "blank part {:?}", part);
            prop_assert_eq!(&parsed.text, plain);
            shown.push(parsed.text);
        }
        let whole = plain_parts(&md, usize::MAX / 4);
        prop_assert!(whole.len() <= 1);
        prop_assert_eq!(
            squeezed(shown.iter().map(String::as_str)),
            squeezed(whole.iter().map(String::as_str))
        );
    }

    /// Escaped text is shown exactly as it was, never as markup.
    #[test]
    fn escaped_text_is_shown_verbatim(s in any::<String>()) {
        let escaped = escape_html(&s);
        prop_assert!(!escaped.contains(['<', '>', '"']));
        let parsed = parse_html(&escaped);
        prop_assert_eq!(parsed.map(|p| p.text).ok(), Some(s));
    }
}

#[test]
fn the_strict_reading_catches_what_it_should() {
    for bad in [
        "<b>x",
        "<b><i>x</b></i>",
        "<b><b>x</b></b>",
        "<u>x</u>",
        "<code><b>x</b></code>",
        "<a href=\"javascript:x\">y</a>",
        "a & b",
        "a > b",
        "<pre><code class=\"language-\">x</code></pre>",
        "bell \u{7}",
    ] {
        assert!(check_html(bad).is_err(), "{bad:?}");
    }
    for good in [
        "<b>x</b> &amp; <i>y</i>",
        "<pre><code class=\"language-rust\">fn</code></pre>",
        "<a href=\"https://e.com/?a&amp;b\">l</a>",
        "<blockquote>q <b>b</b></blockquote>",
    ] {
        assert_eq!(check_html(good), Ok(()), "{good:?}");
    }
}
