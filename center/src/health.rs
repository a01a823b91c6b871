//! `/health`: each machine's health. Not built yet: the command says so.

use crate::{app::App, store::Surface};

/// `/health`.
pub(crate) async fn command(app: &App, surface: Surface, _args: &str, msg_id: i32) {
    app.notice(surface, "/health is not available yet.", Some(msg_id));
}
