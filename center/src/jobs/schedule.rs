//! Jobs on a schedule (`/schedule`). Not built yet: the command says so.

use super::{Jobs, commands::Context};

impl Jobs {
    /// `/schedule add "<cron>" <prompt> | list | remove <n>`.
    pub(crate) async fn schedule_command(&self, ctx: &Context, _args: &str) {
        self.reply_plain(ctx, "Schedules are not available yet.");
    }
}
