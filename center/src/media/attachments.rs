//! Attachments sent to a bound topic become files on the session's machine and local paths in
//! Codex's input: photos, documents of any type, audio, video, animations and stickers are
//! downloaded from Telegram (within the Bot API's 20 MB cap or a lower configured one), moved to
//! the node over the link, and announced to Codex with the caption as the message. An album, or
//! several attachments sent in a burst, becomes one input.

use std::{path::Path, sync::Arc};

use super::attachment::{Attachment, AttachmentKind};
use crate::{
    app::App, inbox::UpdateLease, nodes::CallError, pending::PendingInput, store::Surface,
};

/// A stored attachment, for the input text.
struct Stored {
    path: String,
    kind: AttachmentKind,
    size: u64,
    note: Option<String>,
}

fn human_size(n: u64) -> String {
    if n >= 1 << 20 {
        format!("{:.1} MB", n as f64 / 1_048_576.0)
    } else if n >= 1 << 10 {
        format!("{} KB", n.div_ceil(1024))
    } else {
        format!("{n} bytes")
    }
}

/// Codex's input for a batch: the caption(s) as the message, then the local paths.
fn input_text(captions: &[String], stored: &[Stored]) -> String {
    let mut text = String::new();
    for c in captions {
        if !c.trim().is_empty() {
            text.push_str(c.trim());
            text.push_str("\n\n");
        }
    }
    text.push_str(if stored.len() == 1 {
        "Attached file (saved on this machine):"
    } else {
        "Attached files (saved on this machine):"
    });
    for s in stored {
        text.push_str(&format!(
            "\n- {} ({}, {})",
            s.path,
            s.kind.label(),
            human_size(s.size)
        ));
        if let Some(note) = &s.note {
            text.push_str(&format!("; {note}"));
        }
    }
    text
}

/// Converts a WebP image (stickers, their thumbnails) to PNG; other bytes are returned as they
/// are.
pub fn webp_to_png(bytes: &[u8]) -> Result<Vec<u8>, String> {
    if !(bytes.len() > 12 && &bytes[..4] == b"RIFF" && &bytes[8..12] == b"WEBP") {
        return Ok(bytes.to_vec());
    }
    let mut decoder = image_webp::WebPDecoder::new(std::io::Cursor::new(bytes))
        .map_err(|e| format!("not a readable WebP image: {e}"))?;
    let (w, h) = decoder.dimensions();
    let alpha = decoder.has_alpha();
    let size = decoder
        .output_buffer_size()
        .ok_or("the WebP image is too large")?;
    let mut pixels = vec![0; size];
    decoder
        .read_image(&mut pixels)
        .map_err(|e| format!("cannot decode the WebP image: {e}"))?;
    let mut out = Vec::new();
    let mut enc = png::Encoder::new(&mut out, w, h);
    enc.set_color(if alpha {
        png::ColorType::Rgba
    } else {
        png::ColorType::Rgb
    });
    enc.set_depth(png::BitDepth::Eight);
    let mut writer = enc.write_header().map_err(|e| e.to_string())?;
    writer
        .write_image_data(&pixels)
        .map_err(|e| e.to_string())?;
    writer.finish().map_err(|e| e.to_string())?;
    Ok(out)
}

/// Where `ffmpeg` is, if installed.
fn ffmpeg() -> Option<std::path::PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join("ffmpeg"))
        .find(|p| p.is_file())
}

/// The first frame of a video as PNG, using ffmpeg (`Err` says why there is none).
async fn preview_frame(video: &[u8], scratch: &Path) -> Result<Vec<u8>, String> {
    let Some(ffmpeg) = ffmpeg() else {
        return Err("no preview frame: ffmpeg is not installed on the center".into());
    };
    frame_with(&ffmpeg, video, scratch).await
}

/// Runs `ffmpeg` to take the first frame of `video` (in `scratch`, removed afterwards).
async fn frame_with(ffmpeg: &Path, video: &[u8], scratch: &Path) -> Result<Vec<u8>, String> {
    std::fs::create_dir_all(scratch).map_err(|e| e.to_string())?;
    let input = scratch.join("video.bin");
    let output = scratch.join("frame.png");
    std::fs::write(&input, video).map_err(|e| e.to_string())?;
    let status = tokio::process::Command::new(ffmpeg)
        .args(["-v", "error", "-y", "-i"])
        .arg(&input)
        .args(["-frames:v", "1"])
        .arg(&output)
        .env_clear()
        .envs(shared::child_env::minimal())
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .status();
    let status = tokio::time::timeout(std::time::Duration::from_secs(30), status).await;
    let frame = match status {
        Ok(Ok(s)) if s.success() => std::fs::read(&output).map_err(|e| e.to_string()),
        Ok(Ok(s)) => Err(format!("no preview frame: ffmpeg failed ({s})")),
        Ok(Err(e)) => Err(format!("no preview frame: cannot run ffmpeg: {e}")),
        Err(_) => Err("no preview frame: ffmpeg took too long".into()),
    };
    let _ = std::fs::remove_dir_all(scratch);
    frame
}

impl App {
    /// The largest attachment accepted (the Bot API cannot download more than 20 MB).
    pub(crate) fn attachment_cap(&self) -> u64 {
        self.cfg
            .max_attachment_bytes
            .min(crate::telegram::api::MAX_DOWNLOAD)
    }

    /// Downloads a Telegram file within the cap; `Err` is a message for the user.
    pub(crate) async fn download(
        &self,
        file_id: &str,
        name: &str,
        known_size: Option<u64>,
    ) -> Result<Vec<u8>, String> {
        let cap = self.attachment_cap();
        let too_large = |size: Option<u64>| match size {
            Some(n) => format!(
                "“{name}” is too large ({}; the limit is {})",
                human_size(n),
                human_size(cap)
            ),
            None => format!("“{name}” is too large (the limit is {})", human_size(cap)),
        };
        if known_size.is_some_and(|n| n > cap) {
            return Err(too_large(known_size));
        }
        let tg = self.outbox.tg();
        let (path, size) = match tg.file_info(file_id).await {
            Ok(info) => info,
            Err(crate::telegram::api::TgError::FileTooBig) => return Err(too_large(known_size)),
            Err(e) => return Err(format!("cannot fetch “{name}” from Telegram: {e}")),
        };
        if size > cap {
            return Err(too_large(Some(size)));
        }
        match tg.download(&path, cap).await {
            Ok(bytes) => Ok(bytes),
            Err(crate::telegram::api::TgError::FileTooBig) => Err(too_large(None)),
            Err(e) => Err(format!("cannot download “{name}” from Telegram: {e}")),
        }
    }

    /// Takes a batch of attachments (one message, an album, or a burst) to the topic's session
    /// as one input, on the topic's input queue (so it keeps its place among the topic's
    /// messages while downloads run, and the topic's buttons and commands stay responsive).
    /// The batch's updates stay unfinished in the inbox until the input was typed (or the user
    /// told why not).
    pub(crate) fn take_attachments(
        self: &Arc<Self>,
        surface: Surface,
        batch: Vec<(Attachment, UpdateLease)>,
    ) {
        let app = self.clone();
        let (batch, leases): (Vec<Attachment>, Vec<UpdateLease>) = batch.into_iter().unzip();
        self.enqueue_input(
            surface,
            Box::pin(async move {
                app.fetch_attachments(surface, batch).await;
                drop(leases);
            }),
        );
    }

    /// Downloads, stores and types a batch. Media to an unbound topic is ignored without
    /// download.
    async fn fetch_attachments(self: &Arc<Self>, surface: Surface, batch: Vec<Attachment>) {
        let Some(first) = batch.first() else { return };
        let reply_to = first.message_id;
        let binding = match self.binding(surface) {
            Ok(Some(b)) => b,
            Ok(None) => return,
            Err(_) => {
                self.notice(surface, crate::store::STATE_UNREADABLE, Some(reply_to));
                return;
            }
        };
        let Some(node) = self.node(&binding.node).filter(|n| n.online()) else {
            self.notice(
                surface,
                &format!("✗ Not delivered: {}", CallError::Offline),
                Some(reply_to),
            );
            return;
        };
        let mut stored = Vec::new();
        let mut problems = Vec::new();
        for (n, a) in batch.iter().enumerate() {
            let bytes = match self.download(&a.file_id, &a.file_name, a.size).await {
                Ok(b) => b,
                Err(why) => {
                    problems.push(why);
                    continue;
                }
            };
            let bytes = if matches!(
                a.kind,
                AttachmentKind::Sticker | AttachmentKind::StickerThumbnail
            ) {
                match webp_to_png(&bytes) {
                    Ok(png) => png,
                    Err(why) => {
                        problems.push(format!("the sticker could not be converted: {why}"));
                        continue;
                    }
                }
            } else {
                bytes
            };
            let upload = format!("t{}-{}-{n}", surface.chat_id.unsigned_abs(), a.message_id);
            let path = match crate::nodes::transfer::put_file(
                &node,
                &binding.session_id,
                &upload,
                &a.file_name,
                &bytes,
            )
            .await
            {
                Ok(p) => p,
                Err(e) => {
                    problems.push(format!("“{}” could not be stored: {e}", a.file_name));
                    continue;
                }
            };
            let mut note = None;
            if a.kind.is_video() {
                let scratch = self
                    .cfg
                    .state_dir
                    .join("scratch")
                    .join(format!("{upload}-frame"));
                note = Some(match preview_frame(&bytes, &scratch).await {
                    Ok(frame) => {
                        let stem = a
                            .file_name
                            .rsplit_once('.')
                            .map_or(a.file_name.as_str(), |(s, _)| s);
                        match crate::nodes::transfer::put_file(
                            &node,
                            &binding.session_id,
                            &format!("{upload}-frame"),
                            &format!("{stem}-preview.png"),
                            &frame,
                        )
                        .await
                        {
                            Ok(p) => format!("preview frame: {p}"),
                            Err(e) => format!("no preview frame: {e}"),
                        }
                    }
                    Err(why) => {
                        problems.push(format!("“{}”: {why}", a.file_name));
                        why
                    }
                });
            }
            stored.push(Stored {
                path,
                kind: a.kind,
                size: bytes.len() as u64,
                note,
            });
        }
        if !problems.is_empty() {
            let text = problems
                .iter()
                .map(|p| format!("⚠️ {p}"))
                .collect::<Vec<_>>()
                .join("\n");
            self.notice(surface, &text, Some(reply_to));
        }
        if stored.is_empty() {
            return;
        }
        let captions: Vec<String> = batch.iter().filter_map(|a| a.caption.clone()).collect();
        let input = PendingInput {
            text: input_text(&captions, &stored),
            reply_to,
            mode: binding.mode,
            leases: Vec::new(),
        };
        self.deliver_input(&binding, &input).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn input_names_every_path_after_the_caption() {
        let stored = vec![
            Stored {
                path: "/n/inbox/s/photo-4.jpg".into(),
                kind: AttachmentKind::Photo,
                size: 2048,
                note: None,
            },
            Stored {
                path: "/n/inbox/s/clip.mp4".into(),
                kind: AttachmentKind::Video,
                size: 3 << 20,
                note: Some("no preview frame: ffmpeg is not installed on the center".into()),
            },
        ];
        let text = input_text(&["look at these".into()], &stored);
        assert_eq!(
            text,
            "look at these\n\nAttached files (saved on this machine):\n- /n/inbox/s/photo-4.jpg (photo, 2 KB)\n- /n/inbox/s/clip.mp4 (video, 3.0 MB); no preview frame: ffmpeg is not installed on the center"
        );
    }

    #[tokio::test]
    async fn a_frame_is_taken_with_ffmpeg_and_its_failures_are_said() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        // A stand-in with ffmpeg's command line: the output file is the last argument.
        let fake = dir.path().join("ffmpeg");
        std::fs::write(
            &fake,
            "#!/bin/sh\nfor a; do last=$a; done\nprintf 'PNGDATA' > \"$last\"\n",
        )
        .unwrap();
        std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
        let scratch = dir.path().join("scratch");
        let frame = frame_with(&fake, b"video", &scratch).await.unwrap();
        assert_eq!(frame, b"PNGDATA");
        assert!(!scratch.exists(), "scratch files are removed");
        let failing = dir.path().join("ffmpeg-fails");
        std::fs::write(&failing, "#!/bin/sh\nexit 1\n").unwrap();
        std::fs::set_permissions(&failing, std::fs::Permissions::from_mode(0o755)).unwrap();
        let err = frame_with(&failing, b"video", &scratch).await.unwrap_err();
        assert!(err.starts_with("no preview frame: ffmpeg failed"), "{err}");
    }

    #[test]
    fn webp_becomes_png_and_other_bytes_pass() {
        let mut webp = Vec::new();
        image_webp::WebPEncoder::new(&mut webp)
            .encode(
                &[255, 0, 0, 255].repeat(4),
                2,
                2,
                image_webp::ColorType::Rgba8,
            )
            .unwrap();
        let png = webp_to_png(&webp).unwrap();
        assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"));
        assert_eq!(webp_to_png(b"plain").unwrap(), b"plain");
        assert!(webp_to_png(b"RIFF\0\0\0\0WEBPjunk").is_err());
    }
}
