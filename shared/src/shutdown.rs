//! One cancellation token and one task set per process, so shutdown is orderly: signals cancel
//! the token, every long-lived task watches it, and `main` waits a grace period for them.

use std::{future::Future, time::Duration};

use tokio_util::{sync::CancellationToken, task::TaskTracker};
use tracing::Instrument;

/// Every long-lived task of the process: named, with a child token and a span.
#[derive(Clone, Debug)]
pub struct Tasks {
    tracker: TaskTracker,
    token: CancellationToken,
}

impl Tasks {
    /// A task set that stops when `token` is cancelled.
    pub fn new(token: CancellationToken) -> Self {
        Self {
            tracker: TaskTracker::new(),
            token,
        }
    }

    /// The root token of this task set.
    pub fn token(&self) -> &CancellationToken {
        &self.token
    }

    /// Spawns a task that receives a child token.
    pub fn spawn<F, Fut>(&self, name: &'static str, f: F)
    where
        F: FnOnce(CancellationToken) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let span = tracing::info_span!("task", task.name = name);
        self.tracker
            .spawn(f(self.token.child_token()).instrument(span));
    }

    /// Like [`Tasks::spawn`], but logs the task's error once, with its name.
    pub fn spawn_fallible<F, Fut, E>(&self, name: &'static str, f: F)
    where
        F: FnOnce(CancellationToken) -> Fut,
        Fut: Future<Output = Result<(), E>> + Send + 'static,
        E: std::fmt::Display,
    {
        self.spawn(name, move |token| {
            let fut = f(token);
            async move {
                if let Err(err) = fut.await {
                    tracing::warn!(error = %err, "task failed");
                }
            }
        });
    }

    /// Stops accepting tasks and waits up to `grace` for the running ones.
    pub async fn shutdown(&self, grace: Duration) {
        self.token.cancel();
        self.tracker.close();
        if tokio::time::timeout(grace, self.tracker.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                pending = self.tracker.len(),
                "grace period elapsed, exiting anyway"
            );
        }
    }
}

/// Cancels `token` on SIGINT or SIGTERM.
pub fn cancel_on_signal(token: CancellationToken) {
    tokio::spawn(async move {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            match signal(SignalKind::terminate()) {
                Ok(mut term) => {
                    tokio::select! {
                        _ = ctrl_c => {}
                        _ = term.recv() => {}
                    }
                }
                Err(_) => {
                    let _ = ctrl_c.await;
                }
            }
        }
        #[cfg(not(unix))]
        let _ = ctrl_c.await;
        tracing::info!("signal received, shutting down");
        token.cancel();
    });
}
