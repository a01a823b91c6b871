//! sendPhoto, sendDocument, sendVideo, sendAudio, sendAnimation, editMessageMedia and getFile:
//! multipart uploads or `file_id`s with Telegram's size limits (photo 10 MB, other uploads 50 MB,
//! download 20 MB), photos checked to be real images (PNG, JPEG, GIF) and stored with Telegram's
//! several sizes, thumbnails kept only when Telegram would keep them, and the bytes kept so tests
//! can assert on them and the bot can download them again.
//!
//! Parameter handling follows the Bot API server (`Client.cpp`): numbers such as `duration` are
//! read leniently and clamped, thumbnails must be uploads (a string that is not `attach://` is
//! ignored), and `InputMedia` errors are wrapped in `can't parse InputMedia: ...`.

use bytes::Bytes;
use serde_json::{Map, Value, json};

use super::messages::{
    MAX_CAPTION, SEND_COMMON, apply_edit, editable, format, format_parts, not_modified, post,
    reply_markup, target,
};
use super::{Res, admit, no_business};
use crate::fake_telegram::html::utf16_len;
use crate::fake_telegram::model::{Media, MediaKind, PhotoSize, Revision, State};
use crate::fake_telegram::params::{ApiError, FileRef, Params, Upload};

const MB: usize = 1 << 20;
/// Upload limit for photos.
pub(crate) const MAX_PHOTO: usize = 10 * MB;
/// Upload limit for documents, videos, audio and animations.
pub(crate) const MAX_DOCUMENT: usize = 50 * MB;
/// getFile limit.
pub(crate) const MAX_DOWNLOAD: usize = 20 * MB;
/// Thumbnails: at most 320 px a side and 200 kB, or Telegram drops them.
pub(crate) const MAX_THUMBNAIL_SIDE: u32 = 320;
const MAX_THUMBNAIL_BYTES: usize = 200 * 1024;
/// The server clamps widths and heights to this, and durations to a day.
const MAX_LENGTH: i64 = 10_000;
const MAX_DURATION: i64 = 24 * 60 * 60;

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

const CAPTION: &[&str] = &["caption", "parse_mode", "caption_entities"];

/// Method name, file parameter and the parameters beyond [`SEND_COMMON`] and [`CAPTION`].
fn spec(kind: MediaKind) -> (&'static str, &'static [&'static str]) {
    match kind {
        MediaKind::Photo => (
            "sendPhoto",
            &["photo", "show_caption_above_media", "has_spoiler"],
        ),
        MediaKind::Document => (
            "sendDocument",
            &["document", "thumbnail", "disable_content_type_detection"],
        ),
        MediaKind::Video => (
            "sendVideo",
            &[
                "video",
                "duration",
                "width",
                "height",
                "thumbnail",
                "cover",
                "start_timestamp",
                "show_caption_above_media",
                "has_spoiler",
                "supports_streaming",
            ],
        ),
        MediaKind::Audio => (
            "sendAudio",
            &["audio", "duration", "performer", "title", "thumbnail"],
        ),
        MediaKind::Animation => (
            "sendAnimation",
            &[
                "animation",
                "duration",
                "width",
                "height",
                "thumbnail",
                "show_caption_above_media",
                "has_spoiler",
            ],
        ),
    }
}

/// Where Telegram files a kind of media, and the extension when the name has none.
fn dir_and_ext(kind: MediaKind, file_name: Option<&str>) -> (&'static str, String) {
    let (dir, default) = match kind {
        MediaKind::Photo => return ("photos", "jpg".to_owned()),
        MediaKind::Document => ("documents", "bin"),
        MediaKind::Video => ("videos", "mp4"),
        MediaKind::Audio => ("music", "mp3"),
        MediaKind::Animation => ("animations", "mp4"),
    };
    let ext = file_name
        .and_then(|n| n.rsplit_once('.'))
        .map_or(default, |(_, e)| e);
    (dir, ext.to_owned())
}

/// The MIME type Telegram reports for an upload whose part has none: from the file name's
/// extension, else a default for the kind (Telegram always reports one for these kinds).
fn guess_mime(kind: MediaKind, file_name: Option<&str>) -> Option<String> {
    let ext = file_name
        .and_then(|n| n.rsplit_once('.'))
        .map(|(_, e)| e.to_ascii_lowercase());
    let by_ext = match ext.as_deref() {
        Some("txt" | "log") => "text/plain",
        Some("md") => "text/markdown",
        Some("html" | "htm") => "text/html",
        Some("csv") => "text/csv",
        Some("json") => "application/json",
        Some("pdf") => "application/pdf",
        Some("zip") => "application/zip",
        Some("gz" | "tgz") => "application/gzip",
        Some("png") => "image/png",
        Some("jpg" | "jpeg") => "image/jpeg",
        Some("gif") => "image/gif",
        Some("webp") => "image/webp",
        Some("mp4" | "m4v") => "video/mp4",
        Some("webm") => "video/webm",
        Some("mov") => "video/quicktime",
        Some("mp3") => "audio/mpeg",
        Some("m4a") => "audio/mp4",
        Some("ogg" | "oga" | "opus") => "audio/ogg",
        Some("flac") => "audio/flac",
        Some("wav") => "audio/x-wav",
        _ => match kind {
            MediaKind::Photo => return None,
            MediaKind::Document => "application/octet-stream",
            MediaKind::Video | MediaKind::Animation => "video/mp4",
            MediaKind::Audio => "audio/mpeg",
        },
    };
    (kind != MediaKind::Photo).then(|| by_ext.to_owned())
}

/// A number parameter as the server reads it (`td::to_integer`: garbage is 0), clamped.
fn clamped(p: &Params, name: &str, max: i64) -> u32 {
    p.int(name).ok().flatten().unwrap_or(0).clamp(0, max) as u32
}

/// What a send or `InputMedia` says about the file besides the file itself.
#[derive(Default)]
struct Meta {
    width: u32,
    height: u32,
    duration: u32,
    performer: Option<String>,
    title: Option<String>,
}

impl Meta {
    fn apply(self, media: &mut Media) {
        match media.kind {
            MediaKind::Video | MediaKind::Animation => {
                media.width = Some(self.width);
                media.height = Some(self.height);
                media.duration = Some(self.duration);
            }
            MediaKind::Audio => {
                media.duration = Some(self.duration);
                media.performer = self.performer.filter(|s| !s.is_empty());
                media.title = self.title.filter(|s| !s.is_empty());
            }
            MediaKind::Photo | MediaKind::Document => {}
        }
    }
}

/// The file a send or edit names, checked like the real server, not yet stored: uploads get
/// their `file_id` from [`store`] once flood control admitted the call.
fn resolve(st: &State, kind: MediaKind, file: FileRef<'_>) -> Res<Media> {
    let mut media = Media {
        kind,
        file_id: String::new(),
        file_name: None,
        mime_type: None,
        bytes: Bytes::new(),
        sizes: Vec::new(),
        thumbnail: None,
        width: None,
        height: None,
        duration: None,
        performer: None,
        title: None,
    };
    match file {
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
                media.width = Some(w);
                media.height = Some(h);
            }
            media.file_name.clone_from(&up.file_name);
            media.mime_type = up
                .content_type
                .clone()
                .or_else(|| guess_mime(kind, up.file_name.as_deref()));
            media.bytes = up.bytes.clone();
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
            media.file_name.clone_from(&f.file_name);
            media.mime_type.clone_from(&f.mime_type);
            media.bytes = f.bytes.clone();
            if kind == MediaKind::Photo {
                // Any size of a photo re-sends the whole photo.
                let sizes = st.photo_sets.get(&id).cloned().unwrap_or_else(|| {
                    let (w, h) = image_size(&f.bytes).unwrap_or((1, 1));
                    vec![PhotoSize {
                        file_id: id.clone(),
                        width: w,
                        height: h,
                    }]
                });
                let (full, smaller) = sizes.split_last().map_or_else(
                    || (None, Vec::new()),
                    |(full, smaller)| (Some(full.clone()), smaller.to_vec()),
                );
                if let Some(full) = full {
                    media.file_id = full.file_id;
                    media.width = Some(full.width);
                    media.height = Some(full.height);
                    media.bytes = st.files[&media.file_id].bytes.clone();
                }
                media.sizes = smaller;
            } else {
                media.file_id = id;
            }
        }
    }
    Ok(media)
}

/// A thumbnail Telegram would keep (an image of at most 320×320 and 200 kB), else `None`.
fn check_thumbnail(up: Option<&Upload>) -> Option<(Bytes, (u32, u32))> {
    let up = up?;
    let (w, h) = image_size(&up.bytes)?;
    let fits = w > 0 && h > 0 && w.max(h) <= MAX_THUMBNAIL_SIDE;
    (fits && up.bytes.len() <= MAX_THUMBNAIL_BYTES).then(|| (up.bytes.clone(), (w, h)))
}

/// Stores an uploaded file (photos with all their sizes) and its thumbnail.
fn store(st: &mut State, media: &mut Media, thumbnail: Option<(Bytes, (u32, u32))>) {
    if media.file_id.is_empty() {
        if media.kind == MediaKind::Photo {
            let dims = (media.width.unwrap_or(1), media.height.unwrap_or(1));
            let mut sizes = st.store_photo(media.bytes.clone(), dims);
            if let Some(full) = sizes.pop() {
                media.file_id = full.file_id;
            }
            media.sizes = sizes;
        } else {
            let (dir, ext) = dir_and_ext(media.kind, media.file_name.as_deref());
            let f = st.store_file(dir, &ext, media.bytes.clone());
            f.file_name.clone_from(&media.file_name);
            f.mime_type.clone_from(&media.mime_type);
            media.file_id = f.file_id.clone();
        }
    }
    if media.kind != MediaKind::Photo {
        media.thumbnail = thumbnail.map(|(bytes, dims)| st.store_thumbnail(bytes, dims));
    }
}

pub(super) fn send(st: &mut State, p: &Params, kind: MediaKind) -> Res<Value> {
    let (method, extra) = spec(kind);
    let field = kind.as_str();
    p.check_known(method, &[SEND_COMMON, CAPTION, extra].concat())?;
    no_business(p)?;
    if p.has("cover") {
        return Err(ApiError::bad(
            "fake_telegram: video covers are not modelled",
        ));
    }
    let mut rev = match p.str("caption") {
        Some(caption) => format(p, caption, "caption_entities")?,
        None => format_parts(String::new(), p.str("parse_mode"), None)?,
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
    let mut media = resolve(st, kind, file)?;
    let thumbnail = check_thumbnail(p.upload("thumbnail"));
    Meta {
        width: clamped(p, "width", MAX_LENGTH),
        height: clamped(p, "height", MAX_LENGTH),
        duration: clamped(p, "duration", MAX_DURATION),
        performer: p.str("performer"),
        title: p.str("title"),
    }
    .apply(&mut media);
    admit(st, &method.to_ascii_lowercase(), chat_id)?;
    store(st, &mut media, thumbnail);
    post(st, chat_id, target, rev, Some(media))
}

/// Fields each `InputMedia` type has, beyond `type`, `media` and the caption ones.
fn input_media_fields(kind: MediaKind) -> &'static [&'static str] {
    match kind {
        MediaKind::Photo => &["show_caption_above_media", "has_spoiler"],
        MediaKind::Video => &[
            "thumbnail",
            "cover",
            "start_timestamp",
            "width",
            "height",
            "duration",
            "supports_streaming",
            "show_caption_above_media",
            "has_spoiler",
        ],
        MediaKind::Animation => &[
            "thumbnail",
            "width",
            "height",
            "duration",
            "show_caption_above_media",
            "has_spoiler",
        ],
        MediaKind::Audio => &["thumbnail", "duration", "performer", "title"],
        MediaKind::Document => &["thumbnail", "disable_content_type_detection"],
    }
}

/// What an `InputMedia` asks for: the caption, the file (checked once the message is found) and
/// the rest.
struct InputMedia<'p> {
    caption: Revision,
    kind: MediaKind,
    file: FileRef<'p>,
    meta: Meta,
    thumbnail: Option<(Bytes, (u32, u32))>,
}

/// An `InputMedia` object, parsed like the real server's `get_input_media`.
fn input_media<'p>(p: &'p Params, v: &Value) -> Res<InputMedia<'p>> {
    let wrap = |what: String| ApiError::bad(format!("can't parse InputMedia: {what}"));
    // A tdlib error text as get_input_media wraps it: "Can't parse entities: ...".
    let rewrap = |e: ApiError| {
        let what = e
            .description
            .strip_prefix("Bad Request: ")
            .unwrap_or(&e.description);
        if what.starts_with("fake_telegram:") {
            return ApiError::bad(what);
        }
        let mut chars = what.chars();
        let first = chars.next().map(|c| c.to_ascii_uppercase());
        wrap(first.into_iter().chain(chars).collect())
    };
    let obj = v
        .as_object()
        .ok_or_else(|| wrap("expected an Object".to_owned()))?;
    let string = |obj: &Map<String, Value>, k: &str| match obj.get(k) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(Value::Number(n)) => Ok(Some(n.to_string())),
        Some(_) => Err(wrap(format!("Field \"{k}\" must be of type String"))),
    };
    let boolean = |obj: &Map<String, Value>, k: &str| match obj.get(k) {
        None | Some(Value::Bool(_)) => Ok(()),
        Some(_) => Err(wrap(format!("Field \"{k}\" must be of type Boolean"))),
    };
    let caption = string(obj, "caption")?.unwrap_or_default();
    let parse_mode = string(obj, "parse_mode")?;
    let entities = obj.get("caption_entities").cloned();
    let rev = format_parts(caption, parse_mode, entities).map_err(rewrap)?;
    boolean(obj, "show_caption_above_media")?;
    boolean(obj, "has_spoiler")?;
    let kind = match string(obj, "type")?.as_deref() {
        None => return Err(wrap("Can't find field \"type\"".to_owned())),
        Some("photo") => MediaKind::Photo,
        Some("video") => MediaKind::Video,
        Some("animation") => MediaKind::Animation,
        Some("audio") => MediaKind::Audio,
        Some("document") => MediaKind::Document,
        Some("live_photo") => {
            return Err(ApiError::bad("fake_telegram: live photos are not modelled"));
        }
        Some(other) => return Err(wrap(format!("type \"{other}\" is unsupported"))),
    };
    let fields = input_media_fields(kind);
    let common = ["type", "media", "caption", "parse_mode", "caption_entities"];
    if let Some(k) = obj
        .keys()
        .find(|k| !common.contains(&k.as_str()) && !fields.contains(&k.as_str()))
    {
        let mut ty = kind.as_str().to_owned();
        ty[..1].make_ascii_uppercase();
        return Err(ApiError::bad(format!(
            "fake_telegram: InputMedia{ty} has no field \"{k}\""
        )));
    }
    let file = string(obj, "media")?
        .and_then(|m| p.reference(&m))
        .ok_or_else(|| wrap("media not found".to_owned()))?;
    let thumbnail = match string(obj, "thumbnail")? {
        Some(t) => match p.reference(&t) {
            Some(FileRef::Upload(up)) => Some(up),
            _ => None,
        },
        None => p.upload("thumbnail"),
    };
    if obj.contains_key("cover") {
        return Err(ApiError::bad(
            "fake_telegram: video covers are not modelled",
        ));
    }
    let int = |k: &str, max: i64| -> Res<u32> {
        let raw = match obj.get(k) {
            None => return Ok(0),
            Some(Value::Number(n)) => n.to_string(),
            Some(Value::String(s)) => s.clone(),
            Some(_) => return Err(wrap(format!("Field \"{k}\" must be a Number"))),
        };
        let n: i32 = raw
            .parse()
            .map_err(|_| wrap(format!("Field \"{k}\" must be a valid Number")))?;
        Ok(i64::from(n).clamp(0, max) as u32)
    };
    let meta = Meta {
        width: int("width", MAX_LENGTH)?,
        height: int("height", MAX_LENGTH)?,
        duration: int("duration", MAX_DURATION)?,
        performer: string(obj, "performer")?,
        title: string(obj, "title")?,
    };
    boolean(obj, "supports_streaming")?;
    boolean(obj, "disable_content_type_detection")?;
    Ok(InputMedia {
        caption: rev,
        kind,
        file,
        meta,
        thumbnail: check_thumbnail(thumbnail),
    })
}

/// editMessageMedia: replaces the file and caption of a bot message (or adds media to a text
/// message, as the current Bot API allows). Omitting `reply_markup` removes the keyboard.
pub(super) fn edit_media(st: &mut State, p: &Params) -> Res<Value> {
    let mut known = vec![
        "business_connection_id",
        "chat_id",
        "message_id",
        "inline_message_id",
        "media",
        "reply_markup",
    ];
    // Parts attached from inside the InputMedia are parameters of this call too.
    let raw = p.json("media", "input media").ok().flatten();
    let attached: Vec<&str> = ["media", "thumbnail"]
        .iter()
        .filter_map(|k| raw.as_ref()?.get(*k)?.as_str()?.strip_prefix("attach://"))
        .collect();
    known.extend(attached);
    p.check_known("editMessageMedia", &known)?;
    no_business(p)?;
    let markup = reply_markup(p, true)?;
    let value = p
        .json("media", "input media")?
        .ok_or_else(|| ApiError::bad("parameter \"media\" is required"))?;
    let input = input_media(p, &value)?;
    let (chat_id, ix) = editable(st, p, "editMessageMedia", &known)?;
    let mut rev = input.caption;
    if utf16_len(&rev.text) > MAX_CAPTION {
        return Err(ApiError::bad("message caption is too long"));
    }
    rev.reply_markup = markup;
    let mut media = resolve(st, input.kind, input.file)?;
    input.meta.apply(&mut media);
    let cur = &st.bot_messages[ix];
    let same_file = cur
        .media
        .as_ref()
        .is_some_and(|old| old.kind == media.kind && old.bytes == media.bytes);
    if same_file
        && cur.current.text == rev.text
        && cur.current.entities == rev.entities
        && cur.current.reply_markup == rev.reply_markup
    {
        return Err(not_modified());
    }
    admit(st, "editmessagemedia", chat_id)?;
    store(st, &mut media, input.thumbnail);
    rev.media = Some(media);
    apply_edit(st, ix, rev)
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
    if f.size > MAX_DOWNLOAD as u64 {
        return Err(ApiError::bad("file is too big"));
    }
    Ok(json!({
        "file_id": f.file_id,
        "file_unique_id": f.file_unique_id,
        "file_size": f.size,
        "file_path": f.file_path,
    }))
}
