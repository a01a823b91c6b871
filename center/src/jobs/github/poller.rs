//! One task per `[[github]]` entry. Every `interval` it lists the label's open issues (a `304`
//! when nothing changed), records each new one and submits its job, then looks in the store
//! for its issues whose job is over and comments on them. A failed comment is retried on
//! `shared::backoff`'s schedule (capped at the poll interval) until it lands.
//!
//! Exactly once, across restarts: an issue is recorded before its job is submitted, and a
//! recorded issue without a job gets the job of its source if one exists (a crash between the
//! two) or a new one. A comment is marked "trying" before it is posted and "done" after; an
//! issue found "trying" is first searched for the comment's marker, so a post whose answer was
//! lost (or a crash right after it) is never repeated.

use std::time::Duration;

use shared::backoff::Backoff;
use tokio::time::Instant;

use super::{
    api::{Client, Issue, Listing},
    config::GithubConfig,
    text,
};
use crate::{
    jobs::{JobSettings, Jobs, Stopped, now_ms},
    store::{
        NewJob, StoreError,
        sources::{CommentState, GithubItem},
    },
};

/// What stops a pass: the center stopping, or something to retry.
enum Halt {
    Stopped,
    Retry(String),
}

impl From<Stopped> for Halt {
    fn from(_: Stopped) -> Self {
        Self::Stopped
    }
}

impl From<StoreError> for Halt {
    fn from(err: StoreError) -> Self {
        Self::Retry(err.to_string())
    }
}

impl From<super::api::Error> for Halt {
    fn from(err: super::api::Error) -> Self {
        Self::Retry(err.to_string())
    }
}

struct Poller {
    jobs: Jobs,
    cfg: GithubConfig,
    client: Client,
    etag: Option<String>,
}

/// Runs the entry's poller until the job runtime stops.
pub(super) async fn run(jobs: Jobs, cfg: GithubConfig) {
    let client = match Client::new(&cfg) {
        Ok(client) => client,
        Err(err) => {
            tracing::error!(repo = %cfg.repo, error = %err, "GitHub issues are not watched");
            return;
        }
    };
    let backoff = Backoff::capped(cfg.interval.max(Duration::from_secs(1)));
    let mut poller = Poller {
        jobs,
        cfg,
        client,
        etag: None,
    };
    let mut next_poll = Instant::now();
    let mut retry: Option<(Instant, u32)> = None;
    loop {
        let wake = retry.map_or(next_poll, |(at, _)| at.min(next_poll));
        tokio::select! {
            () = tokio::time::sleep_until(wake) => {}
            () = poller.jobs.tx.closed() => return,
        }
        let mut outcome = Ok(());
        if Instant::now() >= next_poll {
            next_poll = Instant::now() + poller.cfg.interval;
            outcome = poller.poll().await;
        }
        if outcome.is_ok() {
            outcome = poller.settle().await;
        }
        match outcome {
            Ok(()) => retry = None,
            Err(Halt::Stopped) => return,
            Err(Halt::Retry(why)) => {
                let attempt = retry.map_or(1, |(_, a)| a + 1);
                let wait = backoff.delay(attempt);
                tracing::warn!(repo = %poller.cfg.repo, error = %why, retry_in = ?wait, "GitHub issues: will retry");
                retry = Some((Instant::now() + wait, attempt));
            }
        }
    }
}

impl Poller {
    fn repo(&self) -> &str {
        &self.cfg.repo
    }

    /// Lists the label's open issues and takes the new ones.
    async fn poll(&mut self) -> Result<(), Halt> {
        let listing = self
            .client
            .open_issues(&self.cfg.label, self.etag.as_deref())
            .await?;
        let Listing::Changed { etag, issues } = listing else {
            return Ok(());
        };
        for issue in issues.iter().filter(|i| !i.is_pull_request()) {
            self.take(issue).await?;
        }
        // Only once every issue of this list is recorded: otherwise the next poll reads it again.
        self.etag = etag;
        Ok(())
    }

    /// Records a new issue and submits its job.
    async fn take(&self, issue: &Issue) -> Result<(), Halt> {
        let store = self.jobs.store();
        let new = store.insert_github_item(
            self.repo(),
            issue.number,
            &self.cfg.label,
            &issue.title,
            &issue.html_url,
            now_ms(),
        )?;
        if new {
            tracing::info!(repo = %self.repo(), issue = issue.number, "a labelled issue becomes a job");
            self.submit(issue.number, text::prompt(self.repo(), issue))
                .await?;
        }
        Ok(())
    }

    /// Submits the job of issue `number`, unless one was made before a crash.
    async fn submit(&self, number: u64, prompt: String) -> Result<(), Halt> {
        let store = self.jobs.store();
        let source = format!("github:{}#{number}", self.repo());
        if let Some((job, _)) = store.latest_job_of_source(&source)? {
            store.set_github_job(self.repo(), number, job)?;
            return Ok(());
        }
        let job = NewJob {
            surface: self.cfg.surface,
            requested_by: 0,
            node: self.cfg.node.clone(),
            cwd: self.cfg.folder.clone(),
            kind: "exec".into(),
            prompt,
            resume_thread: String::new(),
            review_target: String::new(),
            settings: JobSettings::default().to_json(),
            reply_to: None,
            source,
        };
        let id = self.jobs.submit(job).await??;
        store.set_github_job(self.repo(), number, id)?;
        Ok(())
    }

    /// Submits the jobs a crash left out, and comments on the issues whose job is over.
    async fn settle(&self) -> Result<(), Halt> {
        let items = self
            .jobs
            .store()
            .github_items_open(self.repo(), &self.cfg.label)?;
        let mut failed = None;
        for item in items {
            let done = match item.job {
                None => {
                    let issue = Issue {
                        number: item.number,
                        title: item.title.clone(),
                        body: None,
                        html_url: item.url.clone(),
                        pull_request: None,
                    };
                    self.submit(item.number, text::prompt(self.repo(), &issue))
                        .await
                }
                Some(_) => self.comment(&item).await,
            };
            match done {
                Ok(()) => {}
                Err(Halt::Stopped) => return Err(Halt::Stopped),
                Err(retry) => failed = Some(retry),
            }
        }
        failed.map_or(Ok(()), Err)
    }

    /// Comments on the item's issue once its job is over.
    async fn comment(&self, item: &GithubItem) -> Result<(), Halt> {
        let store = self.jobs.store();
        let Some(id) = item.job else {
            return Ok(());
        };
        let Some(job) = store.job(id)? else {
            return Ok(());
        };
        if !job.state.is_final() {
            return Ok(());
        }
        let marker = text::marker(&job);
        let (repo, n) = (self.repo(), item.number);
        if item.comment == CommentState::Trying && self.client.has_comment_with(n, &marker).await? {
            store.set_github_comment(repo, n, CommentState::Done, now_ms())?;
            return Ok(());
        }
        store.set_github_comment(repo, n, CommentState::Trying, now_ms())?;
        match self.client.comment(n, &text::comment(&job)).await {
            Ok(()) => {
                store.set_github_comment(repo, n, CommentState::Done, now_ms())?;
                tracing::info!(%repo, issue = n, job = %id, "the job's answer is commented on its issue");
                Ok(())
            }
            Err(err) if err.is_permanent() => {
                tracing::warn!(%repo, issue = n, error = %err, "cannot comment on the issue; giving up");
                store.set_github_comment(repo, n, CommentState::Done, now_ms())?;
                Ok(())
            }
            Err(err) => Err(err.into()),
        }
    }
}
