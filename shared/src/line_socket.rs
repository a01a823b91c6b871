//! How the `center` and `agent-node` command lines reach their running daemons: an owner-only
//! Unix socket in the state directory carrying one JSON request line and one JSON answer line.

use std::{
    future::Future,
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
};

use serde::{Serialize, de::DeserializeOwned};
use tokio::{
    io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader},
    net::{UnixListener, UnixStream},
};
use tokio_util::sync::CancellationToken;

/// The longest request line read.
const MAX_REQUEST: u64 = 1 << 20;

/// A request to a daemon failed.
#[derive(Debug, thiserror::Error)]
pub enum LineError {
    /// Nothing listens on the socket.
    #[error("cannot reach {path}: {source}")]
    Unreachable {
        /// The socket.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The exchange broke off.
    #[error("talking to the daemon failed: {0}")]
    Io(#[from] std::io::Error),
    /// The answer was not what the caller expects.
    #[error("bad answer from the daemon: {0}")]
    BadAnswer(#[from] serde_json::Error),
}

/// Makes `dir` (which holds the socket, keys and attachments) private to this user, so a socket
/// in it is never reachable by others, not even between `bind` and `chmod`.
pub fn owner_only_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
}

/// Serves `dir/name` until `token` is cancelled: each connection's request line goes to
/// `handle` (or, if it is not a `Req`, to `bad` with the reason) and its answer is written back.
pub fn serve<Req, Ans, F, Fut>(
    dir: &Path,
    name: &str,
    token: CancellationToken,
    handle: F,
    bad: fn(String) -> Ans,
) -> std::io::Result<PathBuf>
where
    Req: DeserializeOwned + Send + 'static,
    Ans: Serialize + Send + 'static,
    F: Fn(Req) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Ans> + Send + 'static,
{
    owner_only_dir(dir)?;
    let path = dir.join(name);
    let _ = std::fs::remove_file(&path);
    let listener = UnixListener::bind(&path)?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
    let socket = path.clone();
    tokio::spawn(async move {
        loop {
            let conn = tokio::select! {
                () = token.cancelled() => break,
                conn = listener.accept() => conn,
            };
            let Ok((stream, _)) = conn else { continue };
            let handle = handle.clone();
            tokio::spawn(async move {
                if let Err(err) = answer(stream, handle, bad).await {
                    tracing::debug!(error = %err, "control connection failed");
                }
            });
        }
        let _ = std::fs::remove_file(&socket);
    });
    Ok(path)
}

async fn answer<Req, Ans, F, Fut>(
    stream: UnixStream,
    handle: F,
    bad: fn(String) -> Ans,
) -> std::io::Result<()>
where
    Req: DeserializeOwned,
    Ans: Serialize,
    F: Fn(Req) -> Fut,
    Fut: Future<Output = Ans>,
{
    let (read, mut write) = stream.into_split();
    let mut line = String::new();
    BufReader::new(read.take(MAX_REQUEST))
        .read_line(&mut line)
        .await?;
    let answer = match serde_json::from_str::<Req>(&line) {
        Ok(req) => handle(req).await,
        Err(e) => bad(format!("bad request: {e}")),
    };
    let mut out = serde_json::to_vec(&answer).map_err(std::io::Error::other)?;
    out.push(b'\n');
    write.write_all(&out).await
}

/// Sends `req` to the daemon listening on `path` and reads its answer.
pub async fn request<Req: Serialize, Ans: DeserializeOwned>(
    path: &Path,
    req: &Req,
) -> Result<Ans, LineError> {
    let stream = UnixStream::connect(path)
        .await
        .map_err(|source| LineError::Unreachable {
            path: path.to_owned(),
            source,
        })?;
    let (read, mut write) = stream.into_split();
    let mut line = serde_json::to_vec(req)?;
    line.push(b'\n');
    write.write_all(&line).await?;
    let mut answer = String::new();
    BufReader::new(read).read_line(&mut answer).await?;
    Ok(serde_json::from_str(&answer)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_request_line_gets_its_answer_and_strangers_cannot_connect() {
        let dir = tempfile::tempdir().unwrap();
        let token = CancellationToken::new();
        let path = serve(
            dir.path(),
            "t.sock",
            token.clone(),
            |n: u32| async move { n * 2 },
            |_| 0,
        )
        .unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let mode = std::fs::metadata(dir.path()).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
        assert_eq!(request::<u32, u32>(&path, &21).await.unwrap(), 42);
        assert_eq!(request::<&str, u32>(&path, &"x").await.unwrap(), 0);
        token.cancel();
        let gone = request::<u32, u32>(&dir.path().join("none.sock"), &1).await;
        assert!(matches!(gone, Err(LineError::Unreachable { .. })));
    }
}
