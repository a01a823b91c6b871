//! The three GitHub REST calls the issue source makes: list a label's open issues (conditional
//! on the last `ETag`, so an unchanged list costs a `304` and no rate limit), list an issue's
//! comments (to see whether a comment already landed), and post a comment. The token goes only
//! into the `Authorization` header; errors carry GitHub's status and message, never the token.

use std::time::Duration;

use reqwest::{StatusCode, header};
use serde::Deserialize;
use shared::secret::Secret;

use super::config::GithubConfig;

/// How long one call may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// Pages of comments read when looking for ours (100 each).
const MAX_COMMENT_PAGES: u32 = 20;

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    #[error("GitHub could not be reached: {0}")]
    Transport(#[source] reqwest::Error),
    #[error(
        "GitHub refused the token (HTTP {0}); check that it may read and write the repository's issues"
    )]
    Auth(u16),
    #[error("GitHub answered HTTP {status}: {message}")]
    Status { status: u16, message: String },
    #[error("GitHub's answer was not understood: {0}")]
    Decode(String),
}

impl Error {
    /// The issue is gone (deleted, transferred) or locked: commenting will never work.
    pub(crate) fn is_permanent(&self) -> bool {
        matches!(self, Self::Status { status, .. } if [404, 410, 422].contains(status))
    }
}

/// One issue of the list (pull requests are in it too, with a `pull_request` key).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub(crate) struct Issue {
    pub(crate) number: u64,
    pub(crate) title: String,
    #[serde(default)]
    pub(crate) body: Option<String>,
    pub(crate) html_url: String,
    #[serde(default)]
    pub(crate) pull_request: Option<serde_json::Value>,
}

impl Issue {
    pub(crate) fn is_pull_request(&self) -> bool {
        self.pull_request.is_some()
    }
}

#[derive(Debug, Deserialize)]
struct Comment {
    #[serde(default)]
    body: Option<String>,
}

/// The answer to a conditional list.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Listing {
    /// Same as last time (`304`).
    NotModified,
    /// The list, and the `ETag` to send next time.
    Changed {
        etag: Option<String>,
        issues: Vec<Issue>,
    },
}

/// A client for one repository.
pub(crate) struct Client {
    http: reqwest::Client,
    base: String,
    repo: String,
    token: Secret,
}

impl Client {
    pub(crate) fn new(cfg: &GithubConfig) -> Result<Self, Error> {
        let mut headers = header::HeaderMap::new();
        headers.insert(
            header::ACCEPT,
            header::HeaderValue::from_static("application/vnd.github+json"),
        );
        headers.insert(
            "X-GitHub-Api-Version",
            header::HeaderValue::from_static("2022-11-28"),
        );
        let http = reqwest::Client::builder()
            .user_agent(concat!("codex-fleet-center/", env!("CARGO_PKG_VERSION")))
            .default_headers(headers)
            .timeout(CALL_TIMEOUT)
            .build()
            .map_err(Error::Transport)?;
        Ok(Self {
            http,
            base: cfg.api_url.clone(),
            repo: cfg.repo.clone(),
            token: cfg.token.clone(),
        })
    }

    fn get(&self, path: &str) -> reqwest::RequestBuilder {
        self.http
            .get(format!("{}/repos/{}{path}", self.base, self.repo))
            .bearer_auth(self.token.expose())
    }

    /// The open issues (and pull requests) with `label`, newest first (the first 100), unless
    /// the list still has the ETag `etag`.
    pub(crate) async fn open_issues(
        &self,
        label: &str,
        etag: Option<&str>,
    ) -> Result<Listing, Error> {
        let mut req =
            self.get("/issues")
                .query(&[("labels", label), ("state", "open"), ("per_page", "100")]);
        if let Some(etag) = etag {
            req = req.header(header::IF_NONE_MATCH, etag);
        }
        let resp = req.send().await.map_err(Error::Transport)?;
        if resp.status() == StatusCode::NOT_MODIFIED {
            return Ok(Listing::NotModified);
        }
        let resp = checked(resp).await?;
        let etag = resp
            .headers()
            .get(header::ETAG)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let issues = resp
            .json::<Vec<Issue>>()
            .await
            .map_err(|e| Error::Decode(e.to_string()))?;
        Ok(Listing::Changed { etag, issues })
    }

    /// Whether a comment on issue `number` contains `marker`.
    pub(crate) async fn has_comment_with(&self, number: u64, marker: &str) -> Result<bool, Error> {
        for page in 1..=MAX_COMMENT_PAGES {
            let resp = self
                .get(&format!("/issues/{number}/comments"))
                .query(&[("per_page", "100".to_owned()), ("page", page.to_string())])
                .send()
                .await
                .map_err(Error::Transport)?;
            let comments = checked(resp)
                .await?
                .json::<Vec<Comment>>()
                .await
                .map_err(|e| Error::Decode(e.to_string()))?;
            if comments
                .iter()
                .any(|c| c.body.as_deref().is_some_and(|b| b.contains(marker)))
            {
                return Ok(true);
            }
            if comments.len() < 100 {
                break;
            }
        }
        Ok(false)
    }

    /// Posts a comment on issue `number`.
    pub(crate) async fn comment(&self, number: u64, body: &str) -> Result<(), Error> {
        let resp = self
            .http
            .post(format!(
                "{}/repos/{}/issues/{number}/comments",
                self.base, self.repo
            ))
            .bearer_auth(self.token.expose())
            .json(&serde_json::json!({ "body": body }))
            .send()
            .await
            .map_err(Error::Transport)?;
        checked(resp).await.map(drop)
    }
}

/// The response if it succeeded; else GitHub's message.
async fn checked(resp: reqwest::Response) -> Result<reqwest::Response, Error> {
    let status = resp.status();
    if status.is_success() {
        return Ok(resp);
    }
    if status == StatusCode::UNAUTHORIZED {
        return Err(Error::Auth(status.as_u16()));
    }
    let text = resp.text().await.unwrap_or_default();
    let message = serde_json::from_str::<serde_json::Value>(&text)
        .ok()
        .and_then(|v| v.get("message")?.as_str().map(str::to_owned))
        .unwrap_or(text);
    Err(Error::Status {
        status: status.as_u16(),
        message: message.chars().take(300).collect(),
    })
}

#[cfg(test)]
mod tests {
    use e2e::fake_github::FakeGithub;

    use super::*;
    use crate::store::Surface;

    const TOKEN: &str = "ghp_test-token";

    fn cfg(api_url: String, token: &str) -> GithubConfig {
        GithubConfig {
            repo: "octo/app".into(),
            label: "codex".into(),
            token: Secret::new(token),
            node: "local".into(),
            folder: "/w".into(),
            surface: Surface {
                chat_id: 1,
                thread_id: 0,
            },
            api_url,
            interval: Duration::from_secs(2),
        }
    }

    #[tokio::test]
    async fn the_list_is_conditional_on_its_etag() {
        let gh = FakeGithub::start(TOKEN).await.unwrap();
        let one = gh.open_issue("octo/app", "Fix it", "Body", &["codex"]);
        gh.open_issue("octo/app", "Other", "", &["bug"]);
        let pr = gh.open_pull_request("octo/app", "A PR", &["codex"]);
        let client = Client::new(&cfg(gh.api_url(), TOKEN)).unwrap();
        let Listing::Changed { etag, issues } = client.open_issues("codex", None).await.unwrap()
        else {
            panic!("the first list has content");
        };
        let etag = etag.expect("an ETag");
        let numbers: Vec<(u64, bool)> = issues
            .iter()
            .map(|i| (i.number, i.is_pull_request()))
            .collect();
        assert_eq!(numbers, [(pr, true), (one, false)]);
        assert_eq!(issues[1].body.as_deref(), Some("Body"));
        // Unchanged: 304, nothing to read.
        assert_eq!(
            client.open_issues("codex", Some(&etag)).await.unwrap(),
            Listing::NotModified
        );
        assert_eq!(gh.answered(304), 1);
        // A new labelled issue changes the list and its ETag.
        gh.open_issue("octo/app", "New", "", &["codex"]);
        let Listing::Changed {
            etag: newer,
            issues,
        } = client.open_issues("codex", Some(&etag)).await.unwrap()
        else {
            panic!("the list changed");
        };
        assert_ne!(newer.as_deref(), Some(etag.as_str()));
        assert_eq!(issues.len(), 3);
    }

    #[tokio::test]
    async fn comments_are_posted_and_found_and_errors_hide_the_token() {
        let gh = FakeGithub::start(TOKEN).await.unwrap();
        let n = gh.open_issue("octo/app", "Fix it", "", &["codex"]);
        let client = Client::new(&cfg(gh.api_url(), TOKEN)).unwrap();
        assert!(!client.has_comment_with(n, "<!-- m -->").await.unwrap());
        client.comment(n, "Done.\n<!-- m -->").await.unwrap();
        assert!(client.has_comment_with(n, "<!-- m -->").await.unwrap());
        assert_eq!(gh.comments("octo/app", n), ["Done.\n<!-- m -->"]);
        let missing = client.comment(999, "x").await.unwrap_err();
        assert!(missing.is_permanent(), "{missing}");
        gh.fail_next_comments(1);
        let failed = client.comment(n, "x").await.unwrap_err();
        assert!(!failed.is_permanent(), "{failed}");

        let wrong = Client::new(&cfg(gh.api_url(), "ghp_wrong-secret")).unwrap();
        let err = wrong.open_issues("codex", None).await.unwrap_err();
        assert!(matches!(err, Error::Auth(401)), "{err:?}");
        for shown in [err.to_string(), format!("{err:?}")] {
            assert!(!shown.contains("wrong-secret"), "{shown}");
        }
    }
}
