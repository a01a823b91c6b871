//! One cancellation token and one task set per process, so shutdown is orderly: signals cancel
//! the token, every long-lived task watches it, and `main` waits a grace period for them.
//! Long-lived loops (alerts, scans, pollers) run under [`supervise`]: a bug that panics one
//! of them restarts it after a pause instead of silently ending a feature for the rest of the
//! process's life.

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

    /// Runs `fut` as a tracked task of its own and waits for it. A panic in it is logged once
    /// with `name` and comes back as [`Panicked`] instead of ending the caller: a loop that runs
    /// one unit of work after another (a topic's updates, its inputs) survives a bug in one of
    /// them, and shutdown waits for the unit in flight (see [`Tasks::drain`]).
    pub async fn run_guarded<F>(&self, name: &'static str, fut: F) -> Result<F::Output, Panicked>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let span = tracing::info_span!("task", task.name = name);
        match self.tracker.spawn(fut.instrument(span)).await {
            Ok(out) => Ok(out),
            Err(err) => {
                let why = if err.is_panic() {
                    "panicked"
                } else {
                    "was cancelled"
                };
                tracing::error!(
                    task.name = name,
                    "a task {why}; its work is abandoned, the rest goes on"
                );
                Err(Panicked)
            }
        }
    }

    /// Waits up to `grace` for the tracked tasks running now, without cancelling anything (new
    /// ones may still start; long-lived loops should not be tracked this way). True if they all
    /// finished.
    pub async fn drain(&self, grace: Duration) -> bool {
        self.tracker.close();
        let done = tokio::time::timeout(grace, self.tracker.wait())
            .await
            .is_ok();
        self.tracker.reopen();
        done
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

/// A loop that ran this long before it panicked starts again from the first pause.
const STEADY: Duration = Duration::from_secs(300);

/// Runs the long-lived loop `make()` builds until it returns or `token` is cancelled, starting
/// it again after a panic (logged with `name`): after 0.5 s, then doubling up to 30 s while it
/// keeps failing fast ([`crate::backoff`]). The loop must be safe to start again: anything it
/// keeps in memory starts afresh.
pub fn supervise<F, Fut>(
    name: &'static str,
    token: CancellationToken,
    make: F,
) -> tokio::task::JoinHandle<()>
where
    F: Fn() -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    supervise_with(name, token, crate::backoff::Backoff::DEFAULT, make)
}

fn supervise_with<F, Fut>(
    name: &'static str,
    token: CancellationToken,
    schedule: crate::backoff::Backoff,
    make: F,
) -> tokio::task::JoinHandle<()>
where
    F: Fn() -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    tokio::spawn(async move {
        let mut failures = 0;
        loop {
            let span = tracing::info_span!("task", task.name = name);
            let started = tokio::time::Instant::now();
            let run = tokio::spawn(make().instrument(span));
            let abort = run.abort_handle();
            let ended = tokio::select! {
                ended = run => ended,
                () = token.cancelled() => {
                    // The loop watches the token too; it is not waited for here.
                    drop(abort);
                    return;
                }
            };
            match ended {
                Ok(()) => return,
                Err(err) if err.is_panic() => {
                    if started.elapsed() >= STEADY {
                        failures = 0;
                    }
                    let pause = schedule.base(failures);
                    failures += 1;
                    tracing::error!(
                        task.name = name,
                        restart_in_ms = pause.as_millis() as u64,
                        "a long-lived task panicked; starting it again"
                    );
                    tokio::select! {
                        () = token.cancelled() => return,
                        () = tokio::time::sleep(pause) => {}
                    }
                }
                Err(_) => return,
            }
        }
    })
}

/// A guarded task panicked (or was cancelled); it was logged where it happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Panicked;

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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_guarded_panic_is_returned_not_propagated() {
        let tasks = Tasks::new(CancellationToken::new());
        assert_eq!(tasks.run_guarded("ok", async { 7 }).await, Ok(7));
        let failed = tasks
            .run_guarded("boom", async {
                panic!("a bug in one unit of work");
            })
            .await;
        assert_eq!(failed, Err::<(), _>(Panicked));
        // The caller goes on.
        assert_eq!(tasks.run_guarded("after", async { 8 }).await, Ok(8));
    }

    #[tokio::test]
    async fn a_supervised_loop_that_panics_starts_again_until_it_returns() {
        use std::sync::{
            Arc,
            atomic::{AtomicU32, Ordering},
        };
        let runs = Arc::new(AtomicU32::new(0));
        let counted = runs.clone();
        let quick = crate::backoff::Backoff::capped(Duration::from_millis(1));
        let handle = supervise_with("flaky", CancellationToken::new(), quick, move || {
            let runs = counted.clone();
            async move {
                if runs.fetch_add(1, Ordering::SeqCst) < 2 {
                    panic!("a bug that shows twice");
                }
            }
        });
        tokio::time::timeout(Duration::from_secs(10), handle)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(runs.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn a_cancelled_supervisor_starts_nothing_again() {
        let token = CancellationToken::new();
        let slow = crate::backoff::Backoff::capped(Duration::from_secs(3600));
        let handle = supervise_with("broken", token.clone(), slow, || async {
            panic!("always");
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        token.cancel();
        tokio::time::timeout(Duration::from_secs(10), handle)
            .await
            .unwrap()
            .unwrap();
    }

    #[tokio::test]
    async fn drain_waits_for_the_work_in_flight() {
        let tasks = Tasks::new(CancellationToken::new());
        let (tx, rx) = tokio::sync::oneshot::channel();
        let runner = tasks.clone();
        tokio::spawn(async move {
            let _ = runner
                .run_guarded("slow", async move {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    let _ = tx.send(());
                })
                .await;
        });
        tokio::task::yield_now().await;
        assert!(tasks.drain(Duration::from_secs(5)).await);
        assert!(rx.await.is_ok(), "drained only after the work finished");
    }
}
