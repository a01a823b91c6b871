//! The running center's control socket (`<state>/control.sock`, owner-only): one JSON request
//! line, one JSON answer line. `center status`, `center input` and `center send` use it, so
//! operator actions take the same paths (and the same Telegram budget) as the bot itself.

use std::{path::Path, sync::Arc};

use tokio::{
    io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader},
    net::{UnixListener, UnixStream},
};
use tokio_util::sync::CancellationToken;

use crate::{
    app::App,
    operator::{ControlAnswer, ControlRequest},
};

/// The socket's file name in the state directory.
pub const SOCKET_NAME: &str = "control.sock";

/// Serves the control socket until `token` is cancelled.
pub fn serve(app: Arc<App>, token: CancellationToken) -> std::io::Result<()> {
    let path = app.cfg.state_dir.join(SOCKET_NAME);
    agent_node::control::owner_only_dir(&app.cfg.state_dir)?;
    let _ = std::fs::remove_file(&path);
    let listener = UnixListener::bind(&path)?;
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
    }
    tokio::spawn(async move {
        loop {
            let conn = tokio::select! {
                () = token.cancelled() => break,
                conn = listener.accept() => conn,
            };
            let Ok((stream, _)) = conn else { continue };
            let app = app.clone();
            tokio::spawn(async move {
                if let Err(err) = answer(app, stream).await {
                    tracing::debug!(error = %err, "control connection failed");
                }
            });
        }
        let _ = std::fs::remove_file(&path);
    });
    Ok(())
}

async fn answer(app: Arc<App>, stream: UnixStream) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut line = String::new();
    BufReader::new(read.take(1 << 20))
        .read_line(&mut line)
        .await?;
    let answer = match serde_json::from_str::<ControlRequest>(&line) {
        Ok(req) => app.control(req).await,
        Err(e) => ControlAnswer {
            ok: false,
            message: format!("bad request: {e}"),
            status: None,
        },
    };
    let mut out = serde_json::to_vec(&answer).unwrap_or_default();
    out.push(b'\n');
    write.write_all(&out).await
}

/// The CLI side: sends `req` to the center whose state directory is `state_dir`.
pub async fn request(state_dir: &Path, req: &ControlRequest) -> Result<ControlAnswer, String> {
    let path = state_dir.join(SOCKET_NAME);
    let stream = UnixStream::connect(&path).await.map_err(|e| {
        format!(
            "cannot reach the running center at {}: {e} (is `center` running with this state directory?)",
            path.display()
        )
    })?;
    let (read, mut write) = stream.into_split();
    let mut line = serde_json::to_vec(req).map_err(|e| e.to_string())?;
    line.push(b'\n');
    write.write_all(&line).await.map_err(|e| e.to_string())?;
    let mut answer = String::new();
    BufReader::new(read)
        .read_line(&mut answer)
        .await
        .map_err(|e| e.to_string())?;
    serde_json::from_str(&answer).map_err(|e| format!("bad answer from the center: {e}"))
}
