//! GitHub issues as a source of jobs: each `[[github]]` entry watches one repository's open
//! issues with one label; each new one becomes exactly one ordinary job (source
//! `github:<owner>/<repo>#<n>`) whose status and answer go to the entry's chat, and whose final
//! message (or how it ended) is commented back on the issue exactly once.
//!
//! Settings are in [`config`]; the REST calls in [`api`]; prompt and comment texts in [`text`];
//! the polling task, and how "exactly once" survives restarts, in [`poller`].

mod api;
pub(crate) mod config;
mod poller;
mod text;

pub(crate) use config::GithubConfig;
pub(crate) use config::GithubFileConfig;

use super::Jobs;

/// Starts one poller per `[[github]]` entry.
pub(super) fn spawn(jobs: &Jobs) {
    for cfg in jobs.cfg().github.clone() {
        // It ends with the job runtime; a panic starts it again.
        let jobs = jobs.clone();
        shared::shutdown::supervise(
            "github poller",
            tokio_util::sync::CancellationToken::new(),
            move || poller::run(jobs.clone(), cfg.clone()),
        );
    }
}
