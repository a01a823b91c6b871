//! What users send besides text, shaped as Telegram delivers it: photos in several sizes (largest
//! last), documents (also ones too big to download), voice notes, stickers (static WebP, animated
//! `.tgs`, video `.webm`, each with a thumbnail), audio, videos, animations (an `animation` and a
//! `document` object for the same file) and video notes, and albums (several messages sharing a
//! `media_group_id`, the caption on the first). Every file and thumbnail is stored so getFile and
//! the download URL work on it.
//!
//! Like the rest of the users' side, content a Telegram client could not produce (a static
//! sticker that is not a 512 px WebP, an audio file with a video MIME type, an album of one) is
//! refused with an `anyhow` error: it is a mistake in the test.

use anyhow::{Context as _, ensure};
use bytes::Bytes;
use serde_json::{Value, json};

use super::{Injected, command_entities, post_locked};
use crate::fake_telegram::FakeTelegram;
use crate::fake_telegram::methods::{MAX_THUMBNAIL_SIDE, image_size};
use crate::fake_telegram::model::{PhotoSize, State, User, fit};
use crate::fake_telegram::webp::{sample_webp, webp_size};

/// Format of a sticker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StickerFormat {
    /// A WebP image.
    Static,
    /// A gzipped Lottie animation (`.tgs`).
    Animated,
    /// A WebM video (`.webm`).
    Video,
}

/// A sticker from a sticker set, as a user sends it with [`FakeTelegram::send_sticker`].
#[derive(Debug, Clone)]
pub struct StickerFile {
    format: StickerFormat,
    bytes: Bytes,
    thumbnail: Option<Bytes>,
    size: Option<(u32, u32)>,
    emoji: Option<String>,
    set_name: Option<String>,
}

impl StickerFile {
    /// A static sticker: WebP bytes (see [`sample_webp`](crate::fake_telegram::sample_webp)) with
    /// one side of 512 px and the other at most 512. Telegram gives it a small WebP thumbnail;
    /// the fake makes one unless [`Self::thumbnail`] provides it.
    pub fn webp(bytes: impl Into<Bytes>) -> Self {
        Self::new(StickerFormat::Static, bytes.into(), None)
    }

    /// An animated sticker: gzipped Lottie bytes (starting `1f 8b`), 512×512, and its thumbnail
    /// (an image of at most 320 px a side, e.g. a 128×128 `sample_webp`).
    pub fn tgs(bytes: impl Into<Bytes>, thumbnail: impl Into<Bytes>) -> Self {
        Self::new(
            StickerFormat::Animated,
            bytes.into(),
            Some(thumbnail.into()),
        )
    }

    /// A video sticker: WebM bytes (starting with the EBML magic `1a 45 df a3`), 512×512 unless
    /// [`Self::size`] says otherwise, and its thumbnail.
    pub fn webm(bytes: impl Into<Bytes>, thumbnail: impl Into<Bytes>) -> Self {
        Self::new(StickerFormat::Video, bytes.into(), Some(thumbnail.into()))
    }

    fn new(format: StickerFormat, bytes: Bytes, thumbnail: Option<Bytes>) -> Self {
        Self {
            format,
            bytes,
            thumbnail,
            size: None,
            emoji: Some("🙂".to_owned()),
            set_name: None,
        }
    }

    /// The emoji the sticker stands for (default 🙂).
    pub fn emoji(mut self, emoji: &str) -> Self {
        self.emoji = Some(emoji.to_owned());
        self
    }

    /// The sticker set it comes from.
    pub fn set_name(mut self, name: &str) -> Self {
        self.set_name = Some(name.to_owned());
        self
    }

    /// Replaces the thumbnail (an image of at most 320 px a side).
    pub fn thumbnail(mut self, bytes: impl Into<Bytes>) -> Self {
        self.thumbnail = Some(bytes.into());
        self
    }

    /// Width and height of a video sticker (static ones take them from the WebP header, animated
    /// ones are always 512×512).
    pub fn size(mut self, width: u32, height: u32) -> Self {
        self.size = Some((width, height));
        self
    }

    fn dimensions(&self) -> anyhow::Result<(u32, u32)> {
        match self.format {
            StickerFormat::Static => {
                ensure!(
                    self.size.is_none(),
                    "a static sticker's size comes from its WebP header"
                );
                webp_size(&self.bytes).context("static sticker bytes are not a WebP image")
            }
            StickerFormat::Animated => {
                ensure!(self.size.is_none(), "animated stickers are always 512×512");
                Ok((512, 512))
            }
            StickerFormat::Video => Ok(self.size.unwrap_or((512, 512))),
        }
    }
}

/// An audio file (music) a user sends with [`FakeTelegram::send_audio`].
#[derive(Debug, Clone)]
pub struct AudioFile {
    /// File name, e.g. `song.mp3`.
    pub file_name: String,
    /// MIME type, `audio/...`.
    pub mime_type: String,
    /// The file.
    pub bytes: Bytes,
    /// Duration in seconds.
    pub duration: u32,
    /// Performer from the file's tags.
    pub performer: Option<String>,
    /// Title from the file's tags.
    pub title: Option<String>,
    /// Album cover thumbnail (an image of at most 320 px a side).
    pub thumbnail: Option<Bytes>,
}

impl AudioFile {
    /// An audio file without tags or cover.
    pub fn new(
        file_name: &str,
        mime_type: &str,
        bytes: impl Into<Bytes>,
        duration_secs: u32,
    ) -> Self {
        Self {
            file_name: file_name.to_owned(),
            mime_type: mime_type.to_owned(),
            bytes: bytes.into(),
            duration: duration_secs,
            performer: None,
            title: None,
            thumbnail: None,
        }
    }

    /// Sets the performer.
    pub fn performer(mut self, performer: &str) -> Self {
        self.performer = Some(performer.to_owned());
        self
    }

    /// Sets the title.
    pub fn title(mut self, title: &str) -> Self {
        self.title = Some(title.to_owned());
        self
    }

    /// Sets the cover thumbnail.
    pub fn thumbnail(mut self, bytes: impl Into<Bytes>) -> Self {
        self.thumbnail = Some(bytes.into());
        self
    }
}

/// A video or animation a user sends with [`FakeTelegram::send_video`] or
/// [`FakeTelegram::send_animation`], or puts in an album.
#[derive(Debug, Clone)]
pub struct VideoFile {
    /// File name, e.g. `clip.mp4`.
    pub file_name: String,
    /// MIME type: `video/...` (animations: `video/mp4` or `image/gif`).
    pub mime_type: String,
    /// The file.
    pub bytes: Bytes,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Duration in seconds.
    pub duration: u32,
    /// Thumbnail (an image of at most 320 px a side).
    pub thumbnail: Option<Bytes>,
}

impl VideoFile {
    /// A video without thumbnail.
    pub fn new(
        file_name: &str,
        mime_type: &str,
        bytes: impl Into<Bytes>,
        width: u32,
        height: u32,
        duration_secs: u32,
    ) -> Self {
        Self {
            file_name: file_name.to_owned(),
            mime_type: mime_type.to_owned(),
            bytes: bytes.into(),
            width,
            height,
            duration: duration_secs,
            thumbnail: None,
        }
    }

    /// Sets the thumbnail.
    pub fn thumbnail(mut self, bytes: impl Into<Bytes>) -> Self {
        self.thumbnail = Some(bytes.into());
        self
    }
}

/// One item of an album ([`FakeTelegram::send_media_group`]). Photos and videos mix; documents
/// only group with documents, as in Telegram.
#[derive(Debug, Clone)]
pub enum AlbumItem {
    /// A photo (PNG, JPEG or GIF bytes).
    Photo(Bytes),
    /// A document.
    Document {
        /// File name.
        file_name: String,
        /// MIME type.
        mime_type: String,
        /// The file.
        bytes: Bytes,
    },
    /// A video.
    Video(VideoFile),
}

impl AlbumItem {
    /// A photo item.
    pub fn photo(bytes: impl Into<Bytes>) -> Self {
        Self::Photo(bytes.into())
    }

    /// A document item.
    pub fn document(file_name: &str, mime_type: &str, bytes: impl Into<Bytes>) -> Self {
        Self::Document {
            file_name: file_name.to_owned(),
            mime_type: mime_type.to_owned(),
            bytes: bytes.into(),
        }
    }
}

/// Content of an injected user message.
pub(super) enum Content<'a> {
    Text(&'a str),
    Photo(Bytes, Option<&'a str>),
    /// Name, MIME type, bytes, size as reported (≥ the bytes), caption.
    Document(String, String, Bytes, u64, Option<&'a str>),
    Voice(Bytes, u32),
    Sticker(StickerFile),
    Audio(AudioFile, Option<&'a str>),
    Video(VideoFile, Option<&'a str>),
    Animation(VideoFile, Option<&'a str>),
    VideoNote {
        bytes: Bytes,
        length: u32,
        duration: u32,
        thumbnail: Option<Bytes>,
    },
}

/// Dimensions of a thumbnail a Telegram client would produce.
fn thumbnail_size(bytes: &[u8]) -> anyhow::Result<(u32, u32)> {
    let (w, h) = image_size(bytes)
        .or_else(|| webp_size(bytes))
        .context("thumbnail bytes are not a PNG, JPEG, GIF or WebP image")?;
    ensure!(
        w > 0 && h > 0 && w.max(h) <= MAX_THUMBNAIL_SIDE,
        "thumbnails are at most {MAX_THUMBNAIL_SIDE} px a side, not {w}×{h}"
    );
    Ok((w, h))
}

fn check_thumbnail(thumbnail: Option<&Bytes>) -> anyhow::Result<()> {
    thumbnail.map_or(Ok(()), |t| thumbnail_size(t).map(drop))
}

fn check_video(v: &VideoFile, what: &str) -> anyhow::Result<()> {
    ensure!(
        !v.bytes.is_empty(),
        "Telegram clients do not send empty files"
    );
    ensure!(!v.file_name.is_empty(), "{what} needs a file name");
    ensure!(
        v.width > 0 && v.height > 0,
        "{what} needs a width and a height"
    );
    check_thumbnail(v.thumbnail.as_ref())
}

/// Refuses content a Telegram client could not send. Runs before anything is stored.
pub(super) fn check(content: &Content<'_>) -> anyhow::Result<()> {
    let nonempty = |b: &Bytes| -> anyhow::Result<()> {
        ensure!(!b.is_empty(), "Telegram clients do not send empty files");
        Ok(())
    };
    match content {
        Content::Text(text) => ensure!(
            !text.trim().is_empty(),
            "Telegram clients do not send empty messages"
        ),
        Content::Photo(bytes, _) => {
            let (w, h) = image_size(bytes).context("photo bytes are not a PNG, JPEG or GIF")?;
            ensure!(w > 0 && h > 0, "a photo of {w}×{h} pixels");
        }
        Content::Document(name, _, bytes, size, _) => {
            ensure!(!name.is_empty(), "a document needs a file name");
            ensure!(*size > 0, "Telegram clients do not send empty files");
            ensure!(
                bytes.len() as u64 == *size || bytes.is_empty(),
                "document bytes and size disagree"
            );
        }
        Content::Voice(bytes, _) => nonempty(bytes)?,
        Content::Sticker(s) => {
            nonempty(&s.bytes)?;
            let (w, h) = s.dimensions()?;
            match s.format {
                StickerFormat::Static => {}
                StickerFormat::Animated => ensure!(
                    s.bytes.starts_with(&[0x1f, 0x8b]),
                    "animated stickers are gzipped Lottie files (.tgs)"
                ),
                StickerFormat::Video => ensure!(
                    s.bytes.starts_with(&[0x1a, 0x45, 0xdf, 0xa3]),
                    "video stickers are WebM files"
                ),
            }
            ensure!(
                w.max(h) == 512 && w.min(h) >= 1,
                "regular stickers have one side of 512 px and the other at most 512, not {w}×{h}"
            );
            check_thumbnail(s.thumbnail.as_ref())?;
        }
        Content::Audio(a, _) => {
            nonempty(&a.bytes)?;
            ensure!(!a.file_name.is_empty(), "an audio file needs a file name");
            ensure!(
                a.mime_type.starts_with("audio/"),
                "audio files have an audio/* MIME type, not {:?}",
                a.mime_type
            );
            check_thumbnail(a.thumbnail.as_ref())?;
        }
        Content::Video(v, _) => {
            ensure!(
                v.mime_type.starts_with("video/"),
                "videos have a video/* MIME type, not {:?}",
                v.mime_type
            );
            check_video(v, "a video")?;
        }
        Content::Animation(v, _) => {
            ensure!(
                matches!(v.mime_type.as_str(), "video/mp4" | "image/gif"),
                "animations are video/mp4 or image/gif, not {:?}",
                v.mime_type
            );
            check_video(v, "an animation")?;
        }
        Content::VideoNote {
            bytes,
            length,
            thumbnail,
            ..
        } => {
            nonempty(bytes)?;
            ensure!(
                (1..=640).contains(length),
                "video notes are 1 to 640 px across, not {length}"
            );
            check_thumbnail(thumbnail.as_ref())?;
        }
    }
    Ok(())
}

/// The message fields and files of stored content.
pub(super) struct Stored {
    pub(super) fields: Vec<(&'static str, Value)>,
    pub(super) file_id: Option<String>,
    pub(super) file_ids: Vec<String>,
}

/// Stores a file with the name and type it was sent with; returns its `file_id`.
fn store_named(
    st: &mut State,
    dir: &str,
    default_ext: &str,
    bytes: Bytes,
    name: Option<&str>,
    mime: Option<&str>,
) -> String {
    let ext = name
        .and_then(|n| n.rsplit_once('.'))
        .map_or(default_ext, |(_, e)| e)
        .to_owned();
    let f = st.store_file(dir, &ext, bytes);
    f.file_name = name.map(str::to_owned);
    f.mime_type = mime.map(str::to_owned);
    f.file_id.clone()
}

/// Stores a thumbnail checked by [`check`].
fn store_thumbnail(st: &mut State, bytes: Option<Bytes>) -> Option<PhotoSize> {
    let bytes = bytes?;
    let dims = thumbnail_size(&bytes).ok()?;
    Some(st.store_thumbnail(bytes, dims))
}

/// A stored file's Bot API object: `file_id`, `file_unique_id`, `file_size`, the `extra` fields
/// and the thumbnail; records the files in `file_ids`.
fn file_json(
    st: &State,
    file_ids: &mut Vec<String>,
    file_id: &str,
    thumb: Option<&PhotoSize>,
    extra: Value,
) -> Value {
    let mut v = st.file_meta(file_id);
    if let (Some(obj), Value::Object(extra)) = (v.as_object_mut(), extra) {
        obj.extend(extra);
    }
    if let Some(t) = thumb {
        v["thumbnail"] = st.photo_size_json(t);
    }
    if !file_ids.iter().any(|f| f == file_id) {
        file_ids.push(file_id.to_owned());
        file_ids.extend(thumb.map(|t| t.file_id.clone()));
    }
    v
}

/// Stores content checked by [`check`] and returns the message fields that carry it.
pub(super) fn store(st: &mut State, content: Content<'_>) -> Stored {
    let mut fields = Vec::new();
    let mut ids = Vec::new();
    let caption = |c: Option<&str>| ("caption", json!(c));
    match content {
        Content::Text(text) => {
            fields.push(("text", json!(text)));
            let entities = command_entities(text);
            if !entities.is_empty() {
                fields.push(("entities", json!(entities)));
            }
        }
        Content::Photo(bytes, c) => {
            let dims = image_size(&bytes).unwrap_or((1, 1));
            let sizes = st.store_photo(bytes, dims);
            let json: Vec<Value> = sizes.iter().map(|s| st.photo_size_json(s)).collect();
            ids.extend(sizes.iter().map(|s| s.file_id.clone()));
            fields.push(("photo", json!(json)));
            fields.push(caption(c));
        }
        Content::Document(name, mime, bytes, size, c) => {
            let id = store_named(st, "documents", "bin", bytes, Some(&name), Some(&mime));
            if let Some(f) = st.files.get_mut(&id) {
                f.size = size;
            }
            let extra = json!({ "file_name": name, "mime_type": mime });
            fields.push(("document", file_json(st, &mut ids, &id, None, extra)));
            fields.push(caption(c));
        }
        Content::Voice(bytes, duration) => {
            let id = store_named(st, "voice", "oga", bytes, None, Some("audio/ogg"));
            let extra = json!({ "duration": duration, "mime_type": "audio/ogg" });
            fields.push(("voice", file_json(st, &mut ids, &id, None, extra)));
        }
        Content::Sticker(s) => {
            let (w, h) = s.dimensions().unwrap_or((512, 512));
            let (ext, is_animated, is_video) = match s.format {
                StickerFormat::Static => ("webp", false, false),
                StickerFormat::Animated => ("tgs", true, false),
                StickerFormat::Video => ("webm", false, true),
            };
            let thumbnail = s.thumbnail.or_else(|| {
                // Telegram's own preview of a static sticker: a small WebP.
                let (tw, th) = fit(w, h, 128);
                Some(Bytes::from(sample_webp(tw, th, [128, 128, 128, 255])))
            });
            let id = st.store_file("stickers", ext, s.bytes).file_id.clone();
            let thumb = store_thumbnail(st, thumbnail);
            let extra = json!({
                "type": "regular", "width": w, "height": h,
                "is_animated": is_animated, "is_video": is_video,
                "emoji": s.emoji, "set_name": s.set_name,
            });
            fields.push((
                "sticker",
                file_json(st, &mut ids, &id, thumb.as_ref(), extra),
            ));
        }
        Content::Audio(a, c) => {
            let (name, mime) = (Some(a.file_name.as_str()), Some(a.mime_type.as_str()));
            let id = store_named(st, "music", "mp3", a.bytes, name, mime);
            let thumb = store_thumbnail(st, a.thumbnail);
            let extra = json!({
                "duration": a.duration, "performer": a.performer, "title": a.title,
                "file_name": a.file_name, "mime_type": a.mime_type,
            });
            fields.push(("audio", file_json(st, &mut ids, &id, thumb.as_ref(), extra)));
            fields.push(caption(c));
        }
        Content::Video(v, c) => {
            let (name, mime) = (Some(v.file_name.as_str()), Some(v.mime_type.as_str()));
            let id = store_named(st, "videos", "mp4", v.bytes, name, mime);
            let thumb = store_thumbnail(st, v.thumbnail);
            let extra = json!({
                "width": v.width, "height": v.height, "duration": v.duration,
                "file_name": v.file_name, "mime_type": v.mime_type,
            });
            fields.push(("video", file_json(st, &mut ids, &id, thumb.as_ref(), extra)));
            fields.push(caption(c));
        }
        Content::Animation(v, c) => {
            let (name, mime) = (Some(v.file_name.as_str()), Some(v.mime_type.as_str()));
            let id = store_named(st, "animations", "mp4", v.bytes, name, mime);
            let thumb = store_thumbnail(st, v.thumbnail);
            let document = json!({ "file_name": v.file_name, "mime_type": v.mime_type });
            let mut animation = document.clone();
            animation["width"] = json!(v.width);
            animation["height"] = json!(v.height);
            animation["duration"] = json!(v.duration);
            // For backward compatibility Telegram sends the same file as a document too.
            let animation = file_json(st, &mut ids, &id, thumb.as_ref(), animation);
            let document = file_json(st, &mut ids, &id, thumb.as_ref(), document);
            fields.push(("animation", animation));
            fields.push(("document", document));
            fields.push(caption(c));
        }
        Content::VideoNote {
            bytes,
            length,
            duration,
            thumbnail,
        } => {
            let id = store_named(st, "video_notes", "mp4", bytes, None, None);
            let thumb = store_thumbnail(st, thumbnail);
            let extra = json!({ "length": length, "duration": duration });
            fields.push((
                "video_note",
                file_json(st, &mut ids, &id, thumb.as_ref(), extra),
            ));
        }
    }
    let file_id = match fields.first() {
        Some(("photo", _)) => ids.last().cloned(),
        _ => ids.first().cloned(),
    };
    Stored {
        fields,
        file_id,
        file_ids: ids,
    }
}

// === impl FakeTelegram (media the users send) ===

impl FakeTelegram {
    /// `user` sends a sticker (see [`StickerFile`]).
    pub fn send_sticker(
        &self,
        user: &User,
        chat_id: i64,
        thread_id: Option<i64>,
        sticker: StickerFile,
    ) -> anyhow::Result<Injected> {
        self.post_user_message(user, chat_id, thread_id, None, Content::Sticker(sticker))
    }

    /// `user` sends an audio file (music, shown with performer and title).
    pub fn send_audio(
        &self,
        user: &User,
        chat_id: i64,
        thread_id: Option<i64>,
        audio: AudioFile,
        caption: Option<&str>,
    ) -> anyhow::Result<Injected> {
        self.post_user_message(
            user,
            chat_id,
            thread_id,
            None,
            Content::Audio(audio, caption),
        )
    }

    /// `user` sends a video.
    pub fn send_video(
        &self,
        user: &User,
        chat_id: i64,
        thread_id: Option<i64>,
        video: VideoFile,
        caption: Option<&str>,
    ) -> anyhow::Result<Injected> {
        self.post_user_message(
            user,
            chat_id,
            thread_id,
            None,
            Content::Video(video, caption),
        )
    }

    /// `user` sends an animation (a GIF or a silent MP4): the message carries an `animation` and,
    /// as Telegram does for backward compatibility, a `document` for the same file.
    pub fn send_animation(
        &self,
        user: &User,
        chat_id: i64,
        thread_id: Option<i64>,
        animation: VideoFile,
        caption: Option<&str>,
    ) -> anyhow::Result<Injected> {
        let content = Content::Animation(animation, caption);
        self.post_user_message(user, chat_id, thread_id, None, content)
    }

    /// `user` sends a video note (a round video `length` px across, at most 640).
    #[allow(clippy::too_many_arguments)]
    pub fn send_video_note(
        &self,
        user: &User,
        chat_id: i64,
        thread_id: Option<i64>,
        bytes: impl Into<Bytes>,
        length: u32,
        duration_secs: u32,
        thumbnail: Option<Bytes>,
    ) -> anyhow::Result<Injected> {
        let content = Content::VideoNote {
            bytes: bytes.into(),
            length,
            duration: duration_secs,
            thumbnail,
        };
        self.post_user_message(user, chat_id, thread_id, None, content)
    }

    /// `user` sends an album of 2 to 10 items: one message (and update) per item, all sharing a
    /// `media_group_id`, the caption on the first. Nothing is posted if any item is refused.
    pub fn send_media_group(
        &self,
        user: &User,
        chat_id: i64,
        thread_id: Option<i64>,
        items: Vec<AlbumItem>,
        caption: Option<&str>,
    ) -> anyhow::Result<Vec<Injected>> {
        ensure!(
            (2..=10).contains(&items.len()),
            "an album has 2 to 10 items, not {}",
            items.len()
        );
        let documents = items
            .iter()
            .filter(|i| matches!(i, AlbumItem::Document { .. }))
            .count();
        ensure!(
            documents == 0 || documents == items.len(),
            "documents are grouped only with documents"
        );
        let contents: Vec<Content<'_>> = items
            .into_iter()
            .enumerate()
            .map(|(i, item)| {
                let caption = caption.filter(|_| i == 0);
                match item {
                    AlbumItem::Photo(bytes) => Content::Photo(bytes, caption),
                    AlbumItem::Document {
                        file_name,
                        mime_type,
                        bytes,
                    } => {
                        let size = bytes.len() as u64;
                        Content::Document(file_name, mime_type, bytes, size, caption)
                    }
                    AlbumItem::Video(v) => Content::Video(v, caption),
                }
            })
            .collect();
        for content in &contents {
            check(content)?;
        }
        let mut st = self.shared.lock();
        let group = (13_000_000_000_000_000 + st.next_media_group).to_string();
        st.next_media_group += 1;
        let mut out = Vec::with_capacity(contents.len());
        for content in contents {
            let posted = post_locked(
                &mut st,
                user,
                chat_id,
                thread_id,
                None,
                content,
                Some(&group),
            );
            // Only the first can fail (chat, topic): later items pass the same checks.
            out.push(posted?);
        }
        drop(st);
        self.changed();
        Ok(out)
    }
}
