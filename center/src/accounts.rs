//! Codex accounts per machine (`/codexlogin`, `/codexaccount`). Not built yet: the commands say
//! so.

use std::sync::Arc;

use crate::{app::App, store::Surface, telegram::command::Command};

/// `/codexlogin [name]` and `/codexaccount list|use <name>|clear`.
pub(crate) async fn command(
    app: &Arc<App>,
    surface: Surface,
    cmd: Command,
    _args: &str,
    msg_id: i32,
) {
    app.notice(
        surface,
        &format!("/{} is not available yet.", cmd.name()),
        Some(msg_id),
    );
}
