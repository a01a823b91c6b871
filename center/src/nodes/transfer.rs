//! Moving file bytes between the center and a node over the link: attachments go to the node in
//! chunks (so one large file never blocks the stream), and files on the node (images Codex
//! viewed, `agent-node send`) come back the same way.

use std::time::Duration;

use proto::v1::{self, reply::Result as R, request::Op};

use crate::nodes::{CallError, NodeConn};

/// Bytes per request (well under gRPC's 4 MB message limit).
const CHUNK: usize = 512 * 1024;
/// Time allowed per chunk.
const CHUNK_TIMEOUT: Duration = Duration::from_secs(30);

/// A node from before file transfers reads the request as empty; say what to do instead.
fn too_old(err: CallError) -> CallError {
    match err {
        CallError::Failed { code, message } if message == "empty request" => CallError::Failed {
            code,
            message: "the agent-node on that machine is too old for file transfers; update it"
                .into(),
        },
        other => other,
    }
}

/// Stores `bytes` as an attachment of session `session_id` on `node`; returns its path there.
pub async fn put_file(
    node: &NodeConn,
    session_id: &str,
    upload_id: &str,
    file_name: &str,
    bytes: &[u8],
) -> Result<String, CallError> {
    let total = bytes.len() as u64;
    let mut chunks: Vec<(usize, &[u8])> = bytes
        .chunks(CHUNK)
        .scan(0, |at, c| {
            let offset = *at;
            *at += c.len();
            Some((offset, c))
        })
        .collect();
    if chunks.is_empty() {
        chunks.push((0, &[]));
    }
    let last = chunks.len() - 1;
    for (i, (offset, data)) in chunks.into_iter().enumerate() {
        let op = Op::PutFile(v1::PutFile {
            upload_id: upload_id.to_owned(),
            session_id: session_id.to_owned(),
            file_name: file_name.to_owned(),
            offset: offset as u64,
            data: data.to_vec(),
            total_size: total,
            finish: i == last,
        });
        match node.call(op, CHUNK_TIMEOUT).await.map_err(too_old)? {
            R::Stored(s) => return Ok(s.path),
            R::Done(_) if i != last => {}
            other => {
                return Err(CallError::Failed {
                    code: v1::ErrorCode::Internal,
                    message: format!("unexpected reply to a file chunk: {other:?}"),
                });
            }
        }
    }
    Err(CallError::Failed {
        code: v1::ErrorCode::Internal,
        message: "the node did not store the file".into(),
    })
}

/// Reads a whole file (at most `max` bytes) from `node`; returns its name and bytes.
pub async fn read_file(
    node: &NodeConn,
    path: &str,
    max: u64,
) -> Result<(String, Vec<u8>), CallError> {
    let mut out = Vec::new();
    loop {
        let op = Op::ReadFile(v1::ReadFile {
            path: path.to_owned(),
            offset: out.len() as u64,
            max_bytes: CHUNK as u32,
        });
        let chunk = match node.call(op, CHUNK_TIMEOUT).await.map_err(too_old)? {
            R::Chunk(c) => c,
            other => {
                return Err(CallError::Failed {
                    code: v1::ErrorCode::Internal,
                    message: format!("unexpected reply to a file read: {other:?}"),
                });
            }
        };
        if chunk.total_size > max {
            return Err(CallError::Failed {
                code: v1::ErrorCode::InvalidArgument,
                message: format!(
                    "{} is too large to send ({:.1} MB; at most {} MB)",
                    chunk.file_name,
                    chunk.total_size as f64 / 1_048_576.0,
                    max / 1_048_576
                ),
            });
        }
        let empty = chunk.data.is_empty();
        out.extend_from_slice(&chunk.data);
        if chunk.eof || empty {
            return Ok((chunk.file_name, out));
        }
    }
}
