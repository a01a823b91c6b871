//! What users send besides text, and pictures the center draws: attachments taken to the
//! session's machine ([`attachments`], re-exported here), voice messages ([`voice`]) and their
//! transcription ([`transcribe`]), and screenshots of Codex's pane as PNG ([`pane_image`]).

mod attachment;
mod attachments;
pub mod pane_image;
pub mod transcribe;
pub mod voice;

pub use attachment::{Attachment, AttachmentKind};
pub use attachments::webp_to_png;
