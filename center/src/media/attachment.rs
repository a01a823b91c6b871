//! What a user's message carries besides text, as Telegram describes it: the kind and the file
//! to download. The inbound reader produces these; [`super::attachments`] stores them on the
//! session's machine.

/// What kind of attachment a message carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttachmentKind {
    /// A photo (the largest size Telegram offers).
    Photo,
    /// A file of any type.
    Document,
    /// Music or another audio file.
    Audio,
    /// A video.
    Video,
    /// A GIF-like animation.
    Animation,
    /// A round video message.
    VideoNote,
    /// A static sticker (WebP, converted to PNG).
    Sticker,
    /// An animated or video sticker: only its thumbnail is passed on.
    StickerThumbnail,
}

impl AttachmentKind {
    pub(super) fn label(self) -> &'static str {
        match self {
            Self::Photo => "photo",
            Self::Document => "document",
            Self::Audio => "audio",
            Self::Video => "video",
            Self::Animation => "animation",
            Self::VideoNote => "video note",
            Self::Sticker => "sticker",
            Self::StickerThumbnail => "sticker preview",
        }
    }

    pub(super) fn is_video(self) -> bool {
        matches!(self, Self::Video | Self::Animation | Self::VideoNote)
    }
}

/// One attachment of a user's message.
#[derive(Debug, Clone)]
pub struct Attachment {
    /// Its kind.
    pub kind: AttachmentKind,
    /// The Telegram file to download.
    pub file_id: String,
    /// Its size, when Telegram said.
    pub size: Option<u64>,
    /// The name it is stored under (before sanitising on the node).
    pub file_name: String,
    /// The message that carried it.
    pub message_id: i32,
    /// The message's caption.
    pub caption: Option<String>,
    /// The album it belongs to.
    pub media_group: Option<String>,
}
