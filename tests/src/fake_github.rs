//! A strict fake of the few GitHub REST endpoints the center's issue source uses, on loopback:
//! listing a repository's issues (`GET /repos/{owner}/{repo}/issues`), and listing and posting
//! an issue's comments (`GET`/`POST /repos/{owner}/{repo}/issues/{n}/comments`).
//!
//! It is strict like the real API: without `Authorization: Bearer <token>` (or `token <token>`)
//! the answer is `401` "Requires authentication", with another token `401` "Bad credentials";
//! without a `User-Agent` `403`; query parameters the endpoint does not know get `400` (a
//! message starting `fake_github:`); an unknown repository or issue `404`; a comment without a
//! `body` or longer than 65536 characters `422`. Lists carry an `ETag`, and a request whose
//! `If-None-Match` names the current one gets `304 Not Modified` with no body. Issues can be
//! pull requests (they have a `pull_request` key, as in the real list).
//!
//! Every request is logged with its answer's status ([`FakeGithub::requests`]); comments are
//! kept per issue ([`FakeGithub::comments`]). Failures can be injected: comment posts that are
//! refused with `502` ([`FakeGithub::fail_next_comments`]) or that are kept but answered with
//! `502` anyway, as when a reply is lost ([`FakeGithub::lose_next_comment_replies`]). Dropping
//! the `FakeGithub` stops the server.

use std::collections::{BTreeMap, HashMap};
use std::hash::{Hash, Hasher};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use anyhow::Context as _;
use axum::Router;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};
use tokio::task::JoinHandle;

/// The longest comment body GitHub takes.
pub const MAX_COMMENT_CHARS: usize = 65_536;

/// Query parameters of `GET /repos/{owner}/{repo}/issues`.
const ISSUE_LIST_PARAMS: &[&str] = &[
    "milestone",
    "state",
    "assignee",
    "type",
    "creator",
    "mentioned",
    "labels",
    "sort",
    "direction",
    "since",
    "per_page",
    "page",
];

/// Query parameters of `GET /repos/{owner}/{repo}/issues/{n}/comments`.
const COMMENT_LIST_PARAMS: &[&str] = &["since", "per_page", "page"];

/// One request the fake answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Logged {
    /// `GET` or `POST`.
    pub method: String,
    /// Path and query.
    pub uri: String,
    /// Status of the answer.
    pub status: u16,
}

#[derive(Debug, Clone)]
struct Issue {
    title: String,
    body: String,
    labels: Vec<String>,
    pull: bool,
    open: bool,
    comments: Vec<(u64, String)>,
}

#[derive(Debug, Default)]
struct Repo {
    issues: BTreeMap<u64, Issue>,
}

#[derive(Debug, Default)]
struct Inner {
    repos: HashMap<String, Repo>,
    log: Vec<Logged>,
    fail_comments: usize,
    lose_comment_replies: usize,
    next_id: u64,
}

#[derive(Debug)]
struct Shared {
    token: String,
    state: Mutex<Inner>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock must not hide later assertions.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A running fake GitHub API. Dropping it stops the server.
#[derive(Debug)]
pub struct FakeGithub {
    addr: SocketAddr,
    shared: Arc<Shared>,
    _server: ServerTask,
}

#[derive(Debug)]
struct ServerTask(JoinHandle<()>);

impl Drop for ServerTask {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl FakeGithub {
    /// Binds `127.0.0.1:0` and serves; every request must carry `token`.
    pub async fn start(token: &str) -> anyhow::Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .context("binding the fake GitHub to 127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            token: token.to_owned(),
            state: Mutex::default(),
        });
        let app = Router::new()
            .route("/repos/{owner}/{repo}/issues", get(list_issues))
            .route(
                "/repos/{owner}/{repo}/issues/{number}/comments",
                get(list_comments).post(post_comment),
            )
            .fallback(not_found)
            .layer(axum::middleware::from_fn_with_state(
                Arc::clone(&shared),
                gate,
            ))
            .with_state(Arc::clone(&shared));
        let task = tokio::spawn(async move {
            if let Err(error) = axum::serve(listener, app).await {
                tracing::warn!(%error, "fake GitHub failed");
            }
        });
        Ok(Self {
            addr,
            shared,
            _server: ServerTask(task),
        })
    }

    /// The API's base URL, e.g. `http://127.0.0.1:PORT` (GitHub's is `https://api.github.com`).
    pub fn api_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Opens an issue in `repo` (`owner/name`, created on first use); its number.
    pub fn open_issue(&self, repo: &str, title: &str, body: &str, labels: &[&str]) -> u64 {
        self.add(repo, title, body, labels, false)
    }

    /// Opens a pull request (which the issues list includes); its number.
    pub fn open_pull_request(&self, repo: &str, title: &str, labels: &[&str]) -> u64 {
        self.add(repo, title, "", labels, true)
    }

    /// Closes an issue.
    pub fn close(&self, repo: &str, number: u64) {
        let mut st = self.shared.lock();
        if let Some(issue) = st
            .repos
            .get_mut(repo)
            .and_then(|r| r.issues.get_mut(&number))
        {
            issue.open = false;
        }
    }

    fn add(&self, repo: &str, title: &str, body: &str, labels: &[&str], pull: bool) -> u64 {
        let mut st = self.shared.lock();
        let issues = &mut st.repos.entry(repo.to_owned()).or_default().issues;
        let number = issues.keys().next_back().map_or(1, |n| n + 1);
        issues.insert(
            number,
            Issue {
                title: title.to_owned(),
                body: body.to_owned(),
                labels: labels.iter().map(|l| (*l).to_owned()).collect(),
                pull,
                open: true,
                comments: Vec::new(),
            },
        );
        number
    }

    /// The bodies of an issue's comments, oldest first.
    pub fn comments(&self, repo: &str, number: u64) -> Vec<String> {
        self.shared
            .lock()
            .repos
            .get(repo)
            .and_then(|r| r.issues.get(&number))
            .map(|i| i.comments.iter().map(|(_, b)| b.clone()).collect())
            .unwrap_or_default()
    }

    /// The next `n` valid comment posts are refused with `502` (nothing is kept).
    pub fn fail_next_comments(&self, n: usize) {
        self.shared.lock().fail_comments = n;
    }

    /// The next `n` valid comment posts are kept but answered with `502`, like a reply lost on
    /// the way back.
    pub fn lose_next_comment_replies(&self, n: usize) {
        self.shared.lock().lose_comment_replies = n;
    }

    /// Every request so far, in arrival order.
    pub fn requests(&self) -> Vec<Logged> {
        self.shared.lock().log.clone()
    }

    /// How many requests so far were answered with `status`.
    pub fn answered(&self, status: u16) -> usize {
        self.shared
            .lock()
            .log
            .iter()
            .filter(|l| l.status == status)
            .count()
    }
}

/// GitHub's error shape.
fn error(status: StatusCode, message: &str) -> Response {
    (
        status,
        axum::Json(json!({
            "message": message,
            "documentation_url": "https://docs.github.com/rest",
            "status": status.as_u16().to_string(),
        })),
    )
        .into_response()
}

/// Checks the headers every endpoint needs and logs the answer.
async fn gate(
    State(shared): State<Arc<Shared>>,
    req: Request,
    next: axum::middleware::Next,
) -> Response {
    let method = req.method().to_string();
    let uri = req.uri().to_string();
    let response = match refusal(&shared, req.headers()) {
        Some(refusal) => refusal,
        None => next.run(req).await,
    };
    shared.lock().log.push(Logged {
        method,
        uri,
        status: response.status().as_u16(),
    });
    response
}

/// The answer to a request without a User-Agent or the right token.
fn refusal(shared: &Shared, headers: &HeaderMap) -> Option<Response> {
    if headers.get(header::USER_AGENT).is_none() {
        return Some((
            StatusCode::FORBIDDEN,
            "Request forbidden by administrative rules. Please make sure your request has a \
             User-Agent header (https://docs.github.com/en/rest/overview/resources-in-the-rest-api#user-agent-required).",
        )
            .into_response());
    }
    let Some(auth) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    else {
        return Some(error(StatusCode::UNAUTHORIZED, "Requires authentication"));
    };
    let token = auth
        .strip_prefix("Bearer ")
        .or_else(|| auth.strip_prefix("token "));
    (token != Some(shared.token.as_str()))
        .then(|| error(StatusCode::UNAUTHORIZED, "Bad credentials"))
}

fn unknown_params(query: &HashMap<String, String>, known: &[&str]) -> Option<Response> {
    let unknown: Vec<&String> = query
        .keys()
        .filter(|k| !known.contains(&k.as_str()))
        .collect();
    (!unknown.is_empty()).then(|| {
        error(
            StatusCode::BAD_REQUEST,
            &format!("fake_github: unknown query parameters {unknown:?}"),
        )
    })
}

/// `per_page` (1..=100, default 30) and `page` (from 1), or why not.
fn paging(query: &HashMap<String, String>) -> Result<(usize, usize), String> {
    let number = |name: &str, default: usize| match query.get(name) {
        None => Ok(default),
        Some(v) => v
            .parse::<usize>()
            .map_err(|_| format!("fake_github: {name}={v:?} is not a number")),
    };
    Ok((
        number("per_page", 30)?.clamp(1, 100),
        number("page", 1)?.max(1),
    ))
}

/// A JSON list with a weak ETag of its bytes, or `304` when `If-None-Match` names it.
fn list(headers: &HeaderMap, items: Vec<Value>) -> Response {
    let body = Value::Array(items).to_string();
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    body.hash(&mut hasher);
    let etag = format!("W/\"{:016x}\"", hasher.finish());
    let etag_value = HeaderValue::from_str(&etag).unwrap_or(HeaderValue::from_static("W/\"0\""));
    let matches = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag));
    if matches {
        return (StatusCode::NOT_MODIFIED, [(header::ETAG, etag_value)]).into_response();
    }
    (
        StatusCode::OK,
        [
            (header::ETAG, etag_value),
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json; charset=utf-8"),
            ),
        ],
        body,
    )
        .into_response()
}

async fn list_issues(
    State(shared): State<Arc<Shared>>,
    Path((owner, repo)): Path<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    if let Some(refusal) = unknown_params(&query, ISSUE_LIST_PARAMS) {
        return refusal;
    }
    let (per_page, page) = match paging(&query) {
        Ok(p) => p,
        Err(why) => return error(StatusCode::UNPROCESSABLE_ENTITY, &why),
    };
    let wanted: Vec<&str> = query
        .get("labels")
        .map(|l| {
            l.split(',')
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .collect()
        })
        .unwrap_or_default();
    let state = query.get("state").map_or("open", String::as_str);
    if !["open", "closed", "all"].contains(&state) {
        return error(StatusCode::UNPROCESSABLE_ENTITY, "Validation Failed");
    }
    let full = format!("{owner}/{repo}");
    let st = shared.lock();
    let Some(r) = st.repos.get(&full) else {
        return error(StatusCode::NOT_FOUND, "Not Found");
    };
    // Newest first, as GitHub sorts by default.
    let items: Vec<Value> = r
        .issues
        .iter()
        .rev()
        .filter(|(_, i)| match state {
            "open" => i.open,
            "closed" => !i.open,
            _ => true,
        })
        .filter(|(_, i)| wanted.iter().all(|w| i.labels.iter().any(|l| l == w)))
        .skip((page - 1) * per_page)
        .take(per_page)
        .map(|(n, i)| issue_json(&full, *n, i))
        .collect();
    drop(st);
    list(&headers, items)
}

fn issue_json(repo: &str, number: u64, i: &Issue) -> Value {
    let kind = if i.pull { "pull" } else { "issues" };
    let mut v = json!({
        "id": 1_000_000 + number,
        "number": number,
        "title": i.title,
        "body": if i.body.is_empty() { Value::Null } else { Value::from(i.body.clone()) },
        "state": if i.open { "open" } else { "closed" },
        "html_url": format!("https://github.com/{repo}/{kind}/{number}"),
        "labels": i.labels.iter().map(|l| json!({"name": l})).collect::<Vec<_>>(),
        "user": {"login": "octocat"},
        "comments": i.comments.len(),
    });
    if i.pull {
        v["pull_request"] = json!({
            "html_url": format!("https://github.com/{repo}/pull/{number}"),
        });
    }
    v
}

async fn list_comments(
    State(shared): State<Arc<Shared>>,
    Path((owner, repo, number)): Path<(String, String, u64)>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    if let Some(refusal) = unknown_params(&query, COMMENT_LIST_PARAMS) {
        return refusal;
    }
    let (per_page, page) = match paging(&query) {
        Ok(p) => p,
        Err(why) => return error(StatusCode::UNPROCESSABLE_ENTITY, &why),
    };
    let st = shared.lock();
    let Some(issue) = st
        .repos
        .get(&format!("{owner}/{repo}"))
        .and_then(|r| r.issues.get(&number))
    else {
        return error(StatusCode::NOT_FOUND, "Not Found");
    };
    let items: Vec<Value> = issue
        .comments
        .iter()
        .skip((page - 1) * per_page)
        .take(per_page)
        .map(|(id, body)| json!({"id": id, "body": body, "user": {"login": "codex-fleet"}}))
        .collect();
    drop(st);
    list(&headers, items)
}

async fn post_comment(
    State(shared): State<Arc<Shared>>,
    Path((owner, repo, number)): Path<(String, String, u64)>,
    Query(query): Query<HashMap<String, String>>,
    body: axum::body::Bytes,
) -> Response {
    if let Some(refusal) = unknown_params(&query, &[]) {
        return refusal;
    }
    let text = match serde_json::from_slice::<Value>(&body) {
        Ok(Value::Object(o)) => match o.get("body") {
            Some(Value::String(s)) if o.len() == 1 => s.clone(),
            _ => return error(StatusCode::UNPROCESSABLE_ENTITY, "Validation Failed"),
        },
        _ => return error(StatusCode::BAD_REQUEST, "Problems parsing JSON"),
    };
    if text.chars().count() > MAX_COMMENT_CHARS {
        return error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Validation Failed: body is too long (maximum is 65536 characters)",
        );
    }
    let mut st = shared.lock();
    if st.fail_comments > 0 {
        st.fail_comments -= 1;
        return error(StatusCode::BAD_GATEWAY, "Server Error");
    }
    st.next_id += 1;
    let id = st.next_id;
    let lose = st.lose_comment_replies > 0;
    if lose {
        st.lose_comment_replies -= 1;
    }
    let full = format!("{owner}/{repo}");
    let Some(issue) = st
        .repos
        .get_mut(&full)
        .and_then(|r| r.issues.get_mut(&number))
    else {
        return error(StatusCode::NOT_FOUND, "Not Found");
    };
    issue.comments.push((id, text.clone()));
    drop(st);
    if lose {
        return error(StatusCode::BAD_GATEWAY, "Server Error");
    }
    (
        StatusCode::CREATED,
        axum::Json(json!({
            "id": id,
            "body": text,
            "html_url": format!("https://github.com/{full}/issues/{number}#issuecomment-{id}"),
            "user": {"login": "codex-fleet"},
        })),
    )
        .into_response()
}

async fn not_found() -> Response {
    error(StatusCode::NOT_FOUND, "Not Found")
}
