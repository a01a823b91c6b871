//! Telegram's HTML parse mode, re-implemented so the fake can reject what the real server rejects.
//!
//! The algorithm and the error texts follow tdlib's `parse_html` (`td/telegram/MessageEntity.cpp`),
//! which is what the Bot API server runs. One deliberate difference makes the fake stricter than
//! Telegram: tdlib keeps a `&` that does not start a known entity as a literal `&`, while here every
//! `&` must spell `&lt;` `&gt;` `&amp;` `&quot;` or a numeric reference ending in `;`. Code that
//! passes here therefore escapes correctly for Telegram, and a renderer that forgets to escape `&`
//! fails in tests instead of producing text that depends on tdlib's leniency.
//!
//! Offsets and lengths are in UTF-16 code units, as in the Bot API.

use serde_json::{Value, json};

/// One formatting entity of a message, as the Bot API reports it in `entities`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entity {
    /// Bot API entity type: `bold`, `italic`, `code`, `pre`, `text_link`, ...
    pub kind: String,
    /// Start, in UTF-16 code units.
    pub offset: usize,
    /// Length, in UTF-16 code units.
    pub length: usize,
    /// `text_link` target.
    pub url: Option<String>,
    /// `pre` language.
    pub language: Option<String>,
    /// `custom_emoji` id.
    pub custom_emoji_id: Option<String>,
}

impl Entity {
    fn new(kind: &str, offset: usize, length: usize) -> Self {
        Self {
            kind: kind.to_owned(),
            offset,
            length,
            url: None,
            language: None,
            custom_emoji_id: None,
        }
    }

    /// The Bot API JSON object for this entity.
    pub fn to_json(&self) -> Value {
        let mut v = json!({ "type": self.kind, "offset": self.offset, "length": self.length });
        if let Some(url) = &self.url {
            v["url"] = json!(url);
        }
        if let Some(language) = &self.language {
            v["language"] = json!(language);
        }
        if let Some(id) = &self.custom_emoji_id {
            v["custom_emoji_id"] = json!(id);
        }
        v
    }
}

/// Text with its entities, after parsing.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Parsed {
    /// The text a user sees (tags removed, HTML entities decoded).
    pub text: String,
    /// Formatting, sorted by offset (outer entities first).
    pub entities: Vec<Entity>,
}

/// Length in UTF-16 code units, the unit of every Bot API text limit and entity offset.
pub fn utf16_len(s: &str) -> usize {
    s.encode_utf16().count()
}

const TAGS: &[&str] = &[
    "a",
    "b",
    "strong",
    "i",
    "em",
    "s",
    "strike",
    "del",
    "u",
    "ins",
    "tg-spoiler",
    "tg-emoji",
    "tg-time",
    "span",
    "pre",
    "code",
    "blockquote",
];

struct Open {
    tag: String,
    argument: String,
    offset: usize,
    text_begin: usize,
}

/// tdlib's `is_space`, which also stops at the end of the input (its strings are NUL-terminated).
fn is_space(c: Option<u8>) -> bool {
    matches!(c, None | Some(b' ' | b'\t' | b'\r' | b'\n' | b'\x0b'))
}

/// Parses `src` as Telegram HTML. The error is the text that follows
/// `Bad Request: can't parse entities: ` in the Bot API's answer.
pub fn parse(src: &str) -> Result<Parsed, String> {
    let b = src.as_bytes();
    let at = |i: usize| b.get(i).copied();
    let mut text = String::with_capacity(src.len());
    let mut utf16 = 0usize;
    let mut open: Vec<Open> = Vec::new();
    let mut entities: Vec<Entity> = Vec::new();
    let mut i = 0usize;
    while i < b.len() {
        let c = b[i];
        if c == b'&' {
            let (ch, len) = decode_entity(&b[i..]).ok_or_else(|| {
                format!(
                    "Character '&' must be escaped as \"&amp;\" unless it starts \"&lt;\", \"&gt;\", \"&amp;\", \"&quot;\" or a numeric character reference ending in ';' at byte offset {i}"
                )
            })?;
            text.push(ch);
            utf16 += ch.len_utf16();
            i += len;
            continue;
        }
        if c != b'<' {
            // Copy one whole UTF-8 character; `i` always sits on a boundary here.
            let ch = src[i..].chars().next().unwrap_or('\u{fffd}');
            text.push(ch);
            utf16 += ch.len_utf16();
            i += ch.len_utf8();
            continue;
        }
        let begin = i;
        i += 1;
        if at(i) != Some(b'/') {
            while !is_space(at(i)) && at(i) != Some(b'>') {
                i += 1;
            }
            if at(i).is_none() {
                return Err(format!("Unclosed start tag at byte offset {begin}"));
            }
            let tag = src[begin + 1..i].to_ascii_lowercase();
            if !TAGS.contains(&tag.as_str()) {
                return Err(format!(
                    "Unsupported start tag \"{tag}\" at byte offset {begin}"
                ));
            }
            let mut argument = String::new();
            while at(i) != Some(b'>') {
                while at(i).is_some() && is_space(at(i)) {
                    i += 1;
                }
                if at(i) == Some(b'>') {
                    break;
                }
                let name_begin = i;
                while !is_space(at(i)) && !matches!(at(i), Some(b'=' | b'>' | b'/' | b'"' | b'\''))
                {
                    i += 1;
                }
                let name = &src[name_begin..i];
                if name.is_empty() {
                    return Err(format!(
                        "Empty attribute name in the tag \"{tag}\" at byte offset {begin}"
                    ));
                }
                while at(i).is_some() && is_space(at(i)) {
                    i += 1;
                }
                if at(i) != Some(b'=') {
                    if at(i).is_none() {
                        return Err(format!(
                            "Unclosed start tag \"{tag}\" at byte offset {begin}"
                        ));
                    }
                    if tag == "blockquote" && name == "expandable" {
                        argument = "1".to_owned();
                    }
                    continue;
                }
                i += 1;
                while at(i).is_some() && is_space(at(i)) {
                    i += 1;
                }
                if at(i).is_none() {
                    return Err(format!(
                        "Unclosed start tag \"{tag}\" at byte offset {begin}"
                    ));
                }
                let value;
                if let Some(quote @ (b'"' | b'\'')) = at(i) {
                    i += 1;
                    let mut v = String::new();
                    while at(i).is_some() && at(i) != Some(quote) {
                        if at(i) == Some(b'&')
                            && let Some((ch, len)) = decode_entity(&b[i..])
                        {
                            v.push(ch);
                            i += len;
                            continue;
                        }
                        let ch = src[i..].chars().next().unwrap_or('\u{fffd}');
                        v.push(ch);
                        i += ch.len_utf8();
                    }
                    if at(i) == Some(quote) {
                        i += 1;
                    }
                    value = v;
                } else {
                    let token_begin = i;
                    while matches!(at(i), Some(c) if c.is_ascii_alphanumeric() || c == b'.' || c == b'-')
                    {
                        i += 1;
                    }
                    value = src[token_begin..i].to_ascii_lowercase();
                    if !is_space(at(i)) && at(i) != Some(b'>') {
                        return Err(format!(
                            "Unexpected end of name token at byte offset {token_begin}"
                        ));
                    }
                }
                if at(i).is_none() {
                    return Err(format!("Unclosed start tag at byte offset {begin}"));
                }
                match (tag.as_str(), name) {
                    ("a", "href") | ("tg-emoji", "emoji-id") => argument = value,
                    ("code", "class") if value.starts_with("language-") => {
                        argument = value["language-".len()..].to_owned();
                    }
                    ("span", "class") if value.starts_with("tg-") => {
                        argument = value["tg-".len()..].to_owned();
                    }
                    ("blockquote", "expandable") => argument = "1".to_owned(),
                    _ => {}
                }
            }
            if tag == "span" && argument != "spoiler" {
                return Err(format!(
                    "Tag \"span\" must have class \"tg-spoiler\" at byte offset {begin}"
                ));
            }
            i += 1; // '>'
            open.push(Open {
                tag,
                argument,
                offset: utf16,
                text_begin: text.len(),
            });
        } else {
            let Some(top) = open.pop() else {
                return Err(format!("Unexpected end tag at byte offset {begin}"));
            };
            while !is_space(at(i)) && at(i) != Some(b'>') {
                i += 1;
            }
            let end_tag = src[begin + 2..i].to_ascii_lowercase();
            while at(i).is_some() && is_space(at(i)) {
                i += 1;
            }
            if at(i) != Some(b'>') {
                return Err(format!("Unclosed end tag at byte offset {begin}"));
            }
            i += 1;
            if !end_tag.is_empty() && end_tag != top.tag {
                return Err(format!(
                    "Unmatched end tag at byte offset {begin}, expected \"</{}>\", found \"</{end_tag}>\"",
                    top.tag
                ));
            }
            if utf16 > top.offset {
                close_entity(&mut entities, top, utf16, &text)?;
            }
        }
    }
    if let Some(top) = open.last() {
        return Err(format!(
            "Can't find end tag corresponding to start tag \"{}\"",
            top.tag
        ));
    }
    for e in &mut entities {
        if e.kind == "code" {
            e.language = None;
        }
    }
    // tdlib's sort_entities: by offset, longer (outer) first.
    entities.sort_by(|a, b| a.offset.cmp(&b.offset).then(b.length.cmp(&a.length)));
    Ok(Parsed { text, entities })
}

fn close_entity(
    entities: &mut Vec<Entity>,
    top: Open,
    end: usize,
    text: &str,
) -> Result<(), String> {
    let (offset, length) = (top.offset, end - top.offset);
    let simple = match top.tag.as_str() {
        "i" | "em" => Some("italic"),
        "b" | "strong" => Some("bold"),
        "s" | "strike" | "del" => Some("strikethrough"),
        "u" | "ins" => Some("underline"),
        "tg-spoiler" | "span" => Some("spoiler"),
        _ => None,
    };
    if let Some(kind) = simple {
        entities.push(Entity::new(kind, offset, length));
        return Ok(());
    }
    let same_span = |e: &Entity| e.offset == offset && e.length == length;
    match top.tag.as_str() {
        "tg-emoji" => {
            if !top.argument.parse::<i64>().is_ok_and(|id| id != 0) {
                return Err("Invalid custom emoji identifier specified".to_owned());
            }
            let mut e = Entity::new("custom_emoji", offset, length);
            e.custom_emoji_id = Some(top.argument);
            entities.push(e);
        }
        "tg-time" => {}
        "a" => {
            let url = if top.argument.is_empty() {
                text[top.text_begin..].to_owned()
            } else {
                top.argument
            };
            if !url.trim().is_empty() {
                let mut e = Entity::new("text_link", offset, length);
                e.url = Some(url);
                entities.push(e);
            }
        }
        "pre" => match entities.last_mut() {
            Some(last) if last.kind == "code" && same_span(last) && last.language.is_some() => {
                last.kind = "pre".to_owned();
            }
            _ => entities.push(Entity::new("pre", offset, length)),
        },
        "code" => match entities.last_mut() {
            Some(last) if last.kind == "pre" && same_span(last) && !top.argument.is_empty() => {
                last.language = Some(top.argument);
            }
            _ => {
                let mut e = Entity::new("code", offset, length);
                e.language = (!top.argument.is_empty()).then_some(top.argument);
                entities.push(e);
            }
        },
        "blockquote" => {
            let kind = if top.argument.is_empty() {
                "blockquote"
            } else {
                "expandable_blockquote"
            };
            entities.push(Entity::new(kind, offset, length));
        }
        other => unreachable!("tag {other} passed the allow-list but has no entity"),
    }
    Ok(())
}

/// Decodes one strict HTML entity at the start of `b` (which starts with `&`): the character and
/// the number of bytes consumed.
fn decode_entity(b: &[u8]) -> Option<(char, usize)> {
    let semi = b.iter().take(12).position(|&c| c == b';')?;
    let body = std::str::from_utf8(&b[1..semi]).ok()?;
    let ch = match body {
        "lt" => '<',
        "gt" => '>',
        "amp" => '&',
        "quot" => '"',
        _ => {
            let code = if let Some(hex) = body.strip_prefix("#x").or(body.strip_prefix("#X")) {
                if hex.is_empty() || !hex.bytes().all(|c| c.is_ascii_hexdigit()) {
                    return None;
                }
                u32::from_str_radix(hex, 16).ok()?
            } else {
                let dec = body.strip_prefix('#')?;
                if dec.is_empty() || !dec.bytes().all(|c| c.is_ascii_digit()) {
                    return None;
                }
                dec.parse().ok()?
            };
            if code == 0 {
                return None;
            }
            char::from_u32(code)?
        }
    };
    Some((ch, semi + 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(p: &Parsed) -> Vec<(&str, usize, usize)> {
        p.entities
            .iter()
            .map(|e| (e.kind.as_str(), e.offset, e.length))
            .collect()
    }

    #[test]
    fn nesting_and_entities() {
        let p = parse("<b>bold <i>both</i></b> &lt;x&gt; &amp; &quot;q&quot; &#65;&#x42;").unwrap();
        assert_eq!(p.text, "bold both <x> & \"q\" AB");
        assert_eq!(kinds(&p), vec![("bold", 0, 9), ("italic", 5, 4)]);

        let p = parse("<pre><code class=\"language-rust\">fn x() {}</code></pre>").unwrap();
        assert_eq!(kinds(&p), vec![("pre", 0, 9)]);
        assert_eq!(p.entities[0].language.as_deref(), Some("rust"));

        let p = parse("<code class=\"language-rust\">x</code>").unwrap();
        assert_eq!(p.entities[0].language, None);

        let p = parse("<a href=\"https://e.com/?a=1&amp;b=2\">link</a>").unwrap();
        assert_eq!(p.entities[0].url.as_deref(), Some("https://e.com/?a=1&b=2"));

        let p = parse("<blockquote expandable>q</blockquote><span class=\"tg-spoiler\">s</span>")
            .unwrap();
        assert_eq!(
            kinds(&p),
            vec![("expandable_blockquote", 0, 1), ("spoiler", 1, 1)]
        );
        // An empty end tag closes the innermost open tag, as in tdlib.
        assert_eq!(parse("<b>x</>").unwrap().text, "x");
        // Upper-case tags and bare '>' are fine.
        assert_eq!(parse("<B>a > b</B>").unwrap().text, "a > b");
    }

    #[test]
    fn utf16_offsets() {
        let p = parse("😀 <b>é</b>").unwrap();
        assert_eq!(kinds(&p), vec![("bold", 3, 1)]);
        assert_eq!(utf16_len(&p.text), 4);
    }

    #[test]
    fn errors_match_tdlib() {
        let err = |s| parse(s).unwrap_err();
        assert_eq!(err("a < b"), "Unsupported start tag \"\" at byte offset 2");
        assert_eq!(err("<br>"), "Unsupported start tag \"br\" at byte offset 0");
        assert_eq!(
            err("<b><i>x</b></i>"),
            "Unmatched end tag at byte offset 7, expected \"</i>\", found \"</b>\""
        );
        assert_eq!(
            err("<b>x"),
            "Can't find end tag corresponding to start tag \"b\""
        );
        assert_eq!(err("x</b>"), "Unexpected end tag at byte offset 1");
        assert_eq!(err("<b"), "Unclosed start tag at byte offset 0");
        assert_eq!(
            err("<span>x</span>"),
            "Tag \"span\" must have class \"tg-spoiler\" at byte offset 0"
        );
        assert!(err("fish & chips").contains("at byte offset 5"));
        assert!(err("&nbsp;").contains("'&'"));
        assert!(err("&amp").contains("'&'"));
    }
}
