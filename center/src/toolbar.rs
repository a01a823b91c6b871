//! `/toolbar`: a keyboard of the topic's common keys. Not built yet: the command says so.

use crate::{
    app::App,
    store::{Binding, Surface},
};

/// `/toolbar`.
pub(crate) async fn command(app: &App, surface: Surface, _binding: Option<Binding>, msg_id: i32) {
    app.notice(surface, "/toolbar is not available yet.", Some(msg_id));
}
