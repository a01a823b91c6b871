//! sendPhoto, sendDocument and getFile: multipart uploads with Telegram's size limits (photo
//! 10 MB, document 50 MB, download 20 MB), photos checked to be real images (PNG, JPEG, GIF), and
//! the uploaded bytes kept so tests can assert on them and the bot can download them again.

use serde_json::{Value, json};

use super::messages::{MAX_CAPTION, SEND_COMMON, format, post, reply_markup, target};
use super::{Res, admit, no_business};
use crate::fake_telegram::html::utf16_len;
use crate::fake_telegram::model::{Media, MediaKind, Revision, State};
use crate::fake_telegram::params::{ApiError, FileRef, Params};

const MB: usize = 1 << 20;
/// Upload limit for photos.
pub(crate) const MAX_PHOTO: usize = 10 * MB;
/// Upload limit for documents.
pub(crate) const MAX_DOCUMENT: usize = 50 * MB;
/// getFile limit.
pub(crate) const MAX_DOWNLOAD: usize = 20 * MB;

/// Width and height of a PNG, JPEG or GIF image.
pub(crate) fn image_size(b: &[u8]) -> Option<(u32, u32)> {
    let be16 = |i: usize| Some(u32::from(u16::from_be_bytes([*b.get(i)?, *b.get(i + 1)?])));
    if b.starts_with(b"\x89PNG\r\n\x1a\n") && b.get(12..16) == Some(b"IHDR") {
        let be32 = |i: usize| Some(u32::from_be_bytes(b.get(i..i + 4)?.try_into().ok()?));
        return Some((be32(16)?, be32(20)?));
    }
    if b.starts_with(b"GIF87a") || b.starts_with(b"GIF89a") {
        let le16 = |i: usize| Some(u32::from(u16::from_le_bytes([*b.get(i)?, *b.get(i + 1)?])));
        return Some((le16(6)?, le16(8)?));
    }
    if b.starts_with(&[0xFF, 0xD8]) {
        let mut i = 2;
        while i + 4 <= b.len() {
            if b[i] != 0xFF {
                return None;
            }
            let marker = b[i + 1];
            if marker == 0xFF {
                i += 1;
                continue;
            }
            let len = be16(i + 2)? as usize;
            let is_sof = (0xC0..=0xCF).contains(&marker) && ![0xC4, 0xC8, 0xCC].contains(&marker);
            if is_sof {
                return Some((be16(i + 7)?, be16(i + 5)?));
            }
            i += 2 + len;
        }
    }
    None
}

pub(super) fn send(st: &mut State, p: &Params, kind: MediaKind) -> Res<Value> {
    let (method, field, extra): (&str, &str, &[&str]) = match kind {
        MediaKind::Photo => (
            "sendPhoto",
            "photo",
            &[
                "photo",
                "caption",
                "parse_mode",
                "caption_entities",
                "show_caption_above_media",
                "has_spoiler",
            ],
        ),
        MediaKind::Document => (
            "sendDocument",
            "document",
            &[
                "document",
                "thumbnail",
                "caption",
                "parse_mode",
                "caption_entities",
                "disable_content_type_detection",
            ],
        ),
    };
    p.check_known(method, &[SEND_COMMON, extra].concat())?;
    no_business(p)?;
    let mut rev = match p.str("caption") {
        Some(caption) => format(p, caption, "caption_entities")?,
        None => Revision {
            source: String::new(),
            parse_mode: p.str("parse_mode"),
            text: String::new(),
            entities: Vec::new(),
            reply_markup: None,
        },
    };
    if utf16_len(&rev.text) > MAX_CAPTION {
        return Err(ApiError::bad("message caption is too long"));
    }
    rev.reply_markup = reply_markup(p, false)?;
    let chat_id = p.chat_id()?;
    let target = target(st, chat_id, p)?;
    let file = p
        .file(field)?
        .ok_or_else(|| ApiError::bad(format!("there is no {field} in the request")))?;
    let media = match file {
        FileRef::Upload(up) => {
            let limit = if kind == MediaKind::Photo {
                MAX_PHOTO
            } else {
                MAX_DOCUMENT
            };
            if up.bytes.is_empty() {
                return Err(ApiError::bad("file must be non-empty"));
            }
            if up.bytes.len() > limit {
                return Err(ApiError::status(413, "Request Entity Too Large"));
            }
            if kind == MediaKind::Photo {
                let (w, h) =
                    image_size(&up.bytes).ok_or_else(|| ApiError::bad("IMAGE_PROCESS_FAILED"))?;
                if w == 0 || h == 0 || w + h > 10_000 || w.max(h) > 20 * w.min(h) {
                    return Err(ApiError::bad("PHOTO_INVALID_DIMENSIONS"));
                }
            }
            Media {
                kind,
                file_id: String::new(),
                file_name: up.file_name.clone(),
                mime_type: up.content_type.clone(),
                bytes: up.bytes.clone(),
            }
        }
        FileRef::Id(id) if id.starts_with("http://") || id.starts_with("https://") => {
            return Err(ApiError::bad(
                "fake_telegram: sending files by URL is not modelled",
            ));
        }
        FileRef::Id(id) => {
            let f = st
                .files
                .get(&id)
                .ok_or_else(|| ApiError::bad("wrong file identifier/HTTP URL specified"))?;
            Media {
                kind,
                file_id: id,
                file_name: None,
                mime_type: None,
                bytes: f.bytes.clone(),
            }
        }
    };
    admit(st, &method.to_ascii_lowercase(), chat_id)?;
    let mut media = media;
    if media.file_id.is_empty() {
        let (dir, ext) = match kind {
            MediaKind::Photo => ("photos", "jpg"),
            MediaKind::Document => (
                "documents",
                media
                    .file_name
                    .as_deref()
                    .and_then(|n| n.rsplit_once('.'))
                    .map_or("bin", |(_, e)| e),
            ),
        };
        let ext = ext.to_owned();
        media.file_id = st
            .store_file(dir, &ext, media.bytes.clone())
            .file_id
            .clone();
    }
    post(st, chat_id, target, rev, Some(media))
}

pub(super) fn get_file(st: &State, p: &Params) -> Res<Value> {
    p.check_known("getFile", &["file_id"])?;
    let id = p
        .str("file_id")
        .ok_or_else(|| ApiError::bad("invalid file_id"))?;
    let f = st
        .files
        .get(&id)
        .ok_or_else(|| ApiError::bad("invalid file_id"))?;
    if f.bytes.len() > MAX_DOWNLOAD {
        return Err(ApiError::bad("file is too big"));
    }
    Ok(json!({
        "file_id": f.file_id,
        "file_unique_id": f.file_unique_id,
        "file_size": f.bytes.len(),
        "file_path": f.file_path,
    }))
}
