//! Files crossing the link: attachments the center hands to a session (stored under the node's
//! state directory with a sanitised name, so Codex gets a plain local path) and files the center
//! reads back (images Codex viewed, files `agent-node send` offered).

use std::{
    os::unix::fs::FileExt,
    path::{Path, PathBuf},
};

use proto::v1::{self, reply::Result as R};

use crate::{error::NodeError, windows::Windows};

/// The largest attachment a node accepts (Telegram's upload cap for documents).
pub(crate) const MAX_FILE: u64 = 50 * 1024 * 1024;
/// The largest chunk read or written in one request.
pub const MAX_CHUNK: usize = 512 * 1024;

/// Where attachments are kept: one folder per session under the state directory.
pub(crate) fn inbox(state_dir: &Path) -> PathBuf {
    state_dir.join("inbox")
}

/// Writes one chunk of an attachment for a window of `windows` into its folder under `inbox`;
/// the finishing chunk moves it to its final name.
pub(crate) async fn put_file(
    windows: &Windows,
    inbox: &Path,
    req: v1::PutFile,
) -> Result<R, NodeError> {
    if req.upload_id.is_empty()
        || req.upload_id.len() > 64
        || !req
            .upload_id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-')
    {
        return Err(NodeError::InvalidArgument("bad upload id".into()));
    }
    if req.total_size > MAX_FILE {
        return Err(NodeError::InvalidArgument(format!(
            "the file is too large ({} MB; at most {} MB)",
            req.total_size / (1024 * 1024),
            MAX_FILE / (1024 * 1024)
        )));
    }
    let end = req.offset.checked_add(req.data.len() as u64);
    if req.data.len() > MAX_CHUNK || end.is_none_or(|end| end > req.total_size) {
        return Err(NodeError::InvalidArgument(
            "the chunk lies outside the file".into(),
        ));
    }
    let record = windows
        .record(&req.session_id)
        .ok_or_else(|| NodeError::NotFound(format!("no window {} on this node", req.session_id)))?;
    if record.exited {
        return Err(NodeError::WindowDead("that window has exited".into()));
    }
    let dir = inbox.join(&req.session_id);
    tokio::task::spawn_blocking(move || write_chunk(&dir, &req))
        .await
        .map_err(|e| NodeError::Internal(e.to_string()))?
}

/// Reads part of a regular file on this machine: an image, or a file `is_offered` says
/// `agent-node send` offers.
pub(crate) async fn read_file(
    req: v1::ReadFile,
    is_offered: impl FnOnce(&Path) -> bool,
) -> Result<R, NodeError> {
    let path = PathBuf::from(&req.path);
    if !path.is_absolute() {
        return Err(NodeError::InvalidArgument(format!(
            "{} is not an absolute path",
            req.path
        )));
    }
    // Images (what Codex views) may be read; anything else only while `agent-node send`
    // offers it, so a center — or a prompt-injected tool call — cannot pull secrets.
    let offered = is_offered(&path);
    tokio::task::spawn_blocking(move || {
            if !offered && !is_image_file(&path) {
                return Err(NodeError::InvalidArgument(format!(
                    "{} is not an image; only images and files offered by `agent-node send` can be read",
                    path.display()
                )));
            }
            read_chunk(&path, req.offset, req.max_bytes)
        })
            .await
            .map_err(|e| NodeError::Internal(e.to_string()))?
}

/// Removes what interrupted uploads left behind (`.<upload>.part` files) under `inbox`.
pub(crate) fn sweep_partial_uploads(inbox: &Path) {
    let Ok(sessions) = std::fs::read_dir(inbox) else {
        return;
    };
    for session in sessions.flatten() {
        let Ok(files) = std::fs::read_dir(session.path()) else {
            continue;
        };
        for f in files.flatten() {
            let name = f.file_name();
            let name = name.to_string_lossy();
            if name.starts_with('.') && name.ends_with(".part") {
                let _ = std::fs::remove_file(f.path());
            }
        }
    }
}

/// Whether `bytes` start like a PNG, JPEG, GIF or WebP image.
pub fn is_image(bytes: &[u8]) -> bool {
    bytes.starts_with(b"\x89PNG\r\n\x1a\n")
        || bytes.starts_with(&[0xFF, 0xD8, 0xFF])
        || bytes.starts_with(b"GIF87a")
        || bytes.starts_with(b"GIF89a")
        || (bytes.len() >= 12 && &bytes[..4] == b"RIFF" && &bytes[8..12] == b"WEBP")
}

/// Whether the file at `path` starts like an image (see [`is_image`]).
pub(crate) fn is_image_file(path: &Path) -> bool {
    use std::io::Read;
    let mut head = [0u8; 12];
    let Ok(mut file) = open_regular(path) else {
        return true; // let the read report what is wrong
    };
    let n = file.read(&mut head).unwrap_or(0);
    is_image(&head[..n])
}

/// Opens `path` for reading without ever blocking (a FIFO's open waits for a writer forever)
/// and only if it is a regular file.
fn open_regular(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)?;
    if !file.metadata()?.is_file() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "not a regular file",
        ));
    }
    Ok(file)
}

fn io_error(what: &str, path: &Path, err: &std::io::Error) -> NodeError {
    match err.kind() {
        std::io::ErrorKind::NotFound => {
            NodeError::NotFound(format!("{} does not exist", path.display()))
        }
        std::io::ErrorKind::PermissionDenied => {
            NodeError::InvalidArgument(format!("{} is not readable", path.display()))
        }
        _ => NodeError::Internal(format!("{what} {}: {err}", path.display())),
    }
}

fn write_chunk(dir: &Path, req: &v1::PutFile) -> Result<R, NodeError> {
    std::fs::create_dir_all(dir).map_err(|e| io_error("cannot create", dir, &e))?;
    let part = dir.join(format!(".{}.part", req.upload_id));
    let file = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(false)
        .open(&part)
        .map_err(|e| io_error("cannot open", &part, &e))?;
    file.write_all_at(&req.data, req.offset)
        .map_err(|e| io_error("cannot write", &part, &e))?;
    if !req.finish {
        return Ok(R::Done(v1::Done {}));
    }
    let size = file
        .metadata()
        .map_err(|e| io_error("cannot inspect", &part, &e))?
        .len();
    if size != req.total_size {
        let _ = std::fs::remove_file(&part);
        return Err(NodeError::InvalidArgument(format!(
            "the file arrived incomplete ({size} of {} bytes)",
            req.total_size
        )));
    }
    file.sync_all()
        .map_err(|e| io_error("cannot sync", &part, &e))?;
    // A hard link fails if the name exists, so a file that appeared meanwhile is never replaced.
    let name = sanitize_file_name(&req.file_name);
    let mut target = unique_path(dir, &name);
    let mut attempts = 0;
    loop {
        match std::fs::hard_link(&part, &target) {
            Ok(()) => break,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && attempts < 100 => {
                attempts += 1;
                target = unique_path(dir, &name);
            }
            Err(e) => return Err(io_error("cannot store", &target, &e)),
        }
    }
    let _ = std::fs::remove_file(&part);
    Ok(R::Stored(v1::StoredFile {
        path: target.to_string_lossy().into_owned(),
        size,
    }))
}

fn read_chunk(path: &Path, offset: u64, max_bytes: u32) -> Result<R, NodeError> {
    let file = match open_regular(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::InvalidInput => {
            return Err(NodeError::InvalidArgument(format!(
                "{} is not a regular file",
                path.display()
            )));
        }
        Err(e) => return Err(io_error("cannot open", path, &e)),
    };
    let meta = file
        .metadata()
        .map_err(|e| io_error("cannot inspect", path, &e))?;
    let total = meta.len();
    if total > MAX_FILE {
        return Err(NodeError::InvalidArgument(format!(
            "{} is too large to send ({} MB; at most {} MB)",
            path.display(),
            total / (1024 * 1024),
            MAX_FILE / (1024 * 1024)
        )));
    }
    let want = (max_bytes as usize).clamp(1, MAX_CHUNK);
    let mut data = vec![0; want.min(total.saturating_sub(offset) as usize)];
    let mut filled = 0;
    while filled < data.len() {
        let n = file
            .read_at(&mut data[filled..], offset + filled as u64)
            .map_err(|e| io_error("cannot read", path, &e))?;
        if n == 0 {
            break;
        }
        filled += n;
    }
    data.truncate(filled);
    Ok(R::Chunk(v1::FileChunk {
        eof: offset + filled as u64 >= total,
        data,
        total_size: total,
        file_name: path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
    }))
}

/// A name safe to create in a directory and to paste into a prompt: letters, digits, `.`, `-`
/// and `_` only, no leading dot, at most 100 bytes, keeping the extension.
pub(crate) fn sanitize_file_name(name: &str) -> String {
    let base = name.rsplit(['/', '\\']).next().unwrap_or_default();
    let mut clean: String = base
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                c
            } else {
                '_'
            }
        })
        .collect();
    while clean.starts_with('.') {
        clean.remove(0);
    }
    if clean.len() > 100 {
        let ext = clean
            .rsplit_once('.')
            .map(|(_, e)| e)
            .filter(|e| e.len() <= 10)
            .map(|e| format!(".{e}"))
            .unwrap_or_default();
        clean.truncate(100 - ext.len());
        clean.push_str(&ext);
    }
    if clean.trim_matches(['_', '.']).is_empty() {
        "file".to_owned()
    } else {
        clean
    }
}

/// `dir/name`, or `dir/stem-2.ext`, `-3`, … when that exists already.
fn unique_path(dir: &Path, name: &str) -> PathBuf {
    let first = dir.join(name);
    if !first.exists() {
        return first;
    }
    let (stem, ext) = match name.rsplit_once('.') {
        Some((s, e)) if !s.is_empty() => (s, format!(".{e}")),
        _ => (name, String::new()),
    };
    (2..)
        .map(|n| dir.join(format!("{stem}-{n}{ext}")))
        .find(|p| !p.exists())
        .unwrap_or(first)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_sanitised() {
        assert_eq!(sanitize_file_name("report.pdf"), "report.pdf");
        assert_eq!(sanitize_file_name("../../etc/passwd"), "passwd");
        assert_eq!(sanitize_file_name(".bashrc"), "bashrc");
        assert_eq!(
            sanitize_file_name("a b$(rm -rf).tar.gz"),
            "a_b__rm_-rf_.tar.gz"
        );
        assert_eq!(sanitize_file_name(""), "file");
        assert_eq!(sanitize_file_name("..."), "file");
        assert_eq!(sanitize_file_name("фото.jpg"), "____.jpg");
        let long = format!("{}.png", "x".repeat(300));
        let s = sanitize_file_name(&long);
        assert_eq!(s.len(), 100);
        assert!(s.ends_with(".png"));
    }

    #[test]
    fn chunks_in_any_order_make_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let chunk = |offset: u64, data: &[u8], finish: bool| v1::PutFile {
            upload_id: "u1".into(),
            session_id: "s".into(),
            file_name: "notes.txt".into(),
            offset,
            data: data.to_vec(),
            total_size: 6,
            finish,
        };
        assert!(matches!(
            write_chunk(dir.path(), &chunk(3, b"def", false)),
            Ok(R::Done(_))
        ));
        let Ok(R::Stored(s)) = write_chunk(dir.path(), &chunk(0, b"abc", true)) else {
            panic!("not stored");
        };
        assert_eq!(std::fs::read(&s.path).unwrap(), b"abcdef");
        assert!(s.path.ends_with("/notes.txt"));
        // The same name again gets a suffix, never overwrites.
        let Ok(R::Stored(again)) = write_chunk(
            dir.path(),
            &v1::PutFile {
                upload_id: "u2".into(),
                ..chunk(0, b"abcdef", true)
            },
        ) else {
            panic!("not stored");
        };
        assert!(again.path.ends_with("/notes-2.txt"), "{}", again.path);
        // An incomplete file is refused and removed.
        let err = write_chunk(
            dir.path(),
            &v1::PutFile {
                upload_id: "u3".into(),
                ..chunk(0, b"ab", true)
            },
        );
        assert!(matches!(err, Err(NodeError::InvalidArgument(_))));
        assert!(!dir.path().join(".u3.part").exists());
    }

    #[test]
    fn images_are_told_by_their_bytes() {
        assert!(is_image(b"\x89PNG\r\n\x1a\nrest"));
        assert!(is_image(&[0xFF, 0xD8, 0xFF, 0xE0]));
        assert!(is_image(b"GIF89a.."));
        assert!(is_image(b"RIFF\0\0\0\0WEBPVP8 "));
        assert!(!is_image(b"-----BEGIN OPENSSH PRIVATE KEY-----"));
        assert!(!is_image(b"{\"tokens\": 1}"));
        assert!(!is_image(b""));
    }

    #[test]
    fn reads_are_chunked_and_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("img.png");
        std::fs::write(&p, vec![7u8; 1000]).unwrap();
        let Ok(R::Chunk(c)) = read_chunk(&p, 0, 600) else {
            panic!()
        };
        assert_eq!((c.data.len(), c.total_size, c.eof), (600, 1000, false));
        let Ok(R::Chunk(c)) = read_chunk(&p, 600, 600) else {
            panic!()
        };
        assert_eq!((c.data.len(), c.eof), (400, true));
        assert!(matches!(
            read_chunk(dir.path(), 0, 10),
            Err(NodeError::InvalidArgument(_))
        ));
        assert!(matches!(
            read_chunk(&dir.path().join("nope"), 0, 10),
            Err(NodeError::NotFound(_))
        ));
    }

    #[test]
    fn a_fifo_is_refused_at_once_never_waited_on() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("pipe.png");
        #[allow(clippy::disallowed_methods, reason = "making a FIFO for the test")]
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(made.success());
        // Opening a FIFO for reading would wait for a writer forever; these return at once.
        let _ = is_image_file(&fifo);
        assert!(matches!(
            read_chunk(&fifo, 0, 10),
            Err(NodeError::InvalidArgument(m)) if m.contains("not a regular file")
        ));
    }
}
