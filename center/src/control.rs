//! The running center's control socket (`<state>/control.sock`, owner-only): one JSON request
//! line, one JSON answer line. `center status`, `center input` and `center send` use it, so
//! operator actions take the same paths (and the same Telegram budget) as the bot itself.

use std::{
    path::{Path, PathBuf},
    sync::Arc,
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
    let dir = app.cfg.state_dir.clone();
    shared::line_socket::serve(
        &dir,
        SOCKET_NAME,
        token,
        move |req: ControlRequest| {
            let app = app.clone();
            async move { app.control(req).await }
        },
        |message| ControlAnswer {
            ok: false,
            message,
            status: None,
        },
    )?;
    Ok(())
}

/// Why a `center` subcommand could not get an answer from the running center.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Nothing listens on the center's control socket.
    #[error(
        "cannot reach the running center at {} (is `center` running with this state directory?)",
        path.display()
    )]
    Unreachable {
        /// The control socket.
        path: PathBuf,
        /// Why it could not be reached.
        source: std::io::Error,
    },
    /// The exchange with the center broke off or made no sense.
    #[error(transparent)]
    Exchange(shared::line_socket::LineError),
}

/// The CLI side: sends `req` to the center whose state directory is `state_dir`.
pub async fn request(state_dir: &Path, req: &ControlRequest) -> Result<ControlAnswer, Error> {
    let path = state_dir.join(SOCKET_NAME);
    shared::line_socket::request(&path, req)
        .await
        .map_err(|e| match e {
            shared::line_socket::LineError::Unreachable { source, .. } => {
                Error::Unreachable { path, source }
            }
            other => Error::Exchange(other),
        })
}
