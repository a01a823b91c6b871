//! `/cleanup`: topics whose windows are gone and windows no topic holds. Not built yet: the
//! command says so.

use crate::{app::App, store::Surface};

/// `/cleanup`.
pub(crate) async fn command(app: &App, surface: Surface, msg_id: i32) {
    app.notice(surface, "/cleanup is not available yet.", Some(msg_id));
}
