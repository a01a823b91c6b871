//! A fake OpenAI Responses API server on loopback that the real Codex CLI talks to.
//!
//! Tests start a [`FakeModel`], write its [`FakeModel::base_url`] into a `CodexHome` config and
//! run Codex; every `POST /v1/responses` is answered by the script in [`script`] as an SSE stream
//! built by [`sse`], and recorded for assertions. Other paths are recorded and get `404`.
//! Dropping the `FakeModel` stops the server and ends any stream still open.

pub mod failure;
pub mod script;
pub mod sse;

use std::collections::VecDeque;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use anyhow::Context as _;
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use futures::Stream;
use serde_json::Value;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use self::sse::Step;

/// One HTTP request the fake model received.
#[derive(Debug, Clone)]
pub struct RecordedRequest {
    /// HTTP method.
    pub method: String,
    /// Path and query, e.g. `/v1/responses`.
    pub path: String,
    /// Request headers (lower-case names).
    pub headers: Vec<(String, String)>,
    /// Body parsed as JSON (`Value::Null` if empty or not JSON).
    pub body: Value,
}

impl RecordedRequest {
    /// Whether this is a `POST .../responses` model call.
    pub fn is_responses(&self) -> bool {
        self.method == "POST" && self.path.ends_with("/responses")
    }

    /// Whether this is the extra thread-title request (`text.format` of type `json_schema`).
    pub fn is_title_request(&self) -> bool {
        self.body["text"]["format"]["type"] == "json_schema"
    }

    /// Texts of every user message in the request's history, oldest first.
    pub fn user_texts(&self) -> Vec<String> {
        self.body["input"]
            .as_array()
            .map(|input| script::user_texts(input))
            .unwrap_or_default()
    }

    /// Text of the last user message a person typed (harness messages skipped).
    pub fn last_user_text(&self) -> Option<String> {
        script::last_user_text(self.body["input"].as_array()?)
    }
}

/// Shared state of the running server.
#[derive(Debug, Default)]
struct Shared {
    requests: Mutex<Vec<RecordedRequest>>,
    seq: AtomicU64,
    failing: AtomicBool,
    /// Bumped after every recorded request, so tests can wait without polling.
    recorded: watch::Sender<usize>,
    /// Set once the test released held replies (`hold:`); they wait for it.
    released: watch::Sender<bool>,
}

impl Shared {
    fn requests(&self) -> MutexGuard<'_, Vec<RecordedRequest>> {
        // A panic while holding the lock leaves the Vec intact; keep serving.
        self.requests
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }
}

/// A running fake model server. Drop (or [`FakeModel::shutdown`]) stops it.
#[derive(Debug)]
pub struct FakeModel {
    addr: SocketAddr,
    shared: Arc<Shared>,
    /// Dropping the sender tells the server and every open stream to stop.
    stop: Option<watch::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

// === impl FakeModel ===

impl FakeModel {
    /// Binds `127.0.0.1:0` and starts serving; ready as soon as this returns.
    pub async fn start() -> anyhow::Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .context("binding the fake model server to 127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared::default());
        let (stop, stop_rx) = watch::channel(());
        let app = Router::new()
            .route("/v1/responses", post(responses))
            .route("/responses", post(responses))
            .fallback(other)
            .with_state(AppState {
                shared: Arc::clone(&shared),
                stop: stop_rx.clone(),
            });
        let mut shutdown = stop_rx;
        let task = tokio::spawn(async move {
            let serve = axum::serve(listener, app).with_graceful_shutdown(async move {
                // Resolves when the sender is dropped.
                while shutdown.changed().await.is_ok() {}
            });
            if let Err(error) = serve.await {
                tracing::warn!(%error, "fake model server failed");
            }
        });
        Ok(Self {
            addr,
            shared,
            stop: Some(stop),
            task: Some(task),
        })
    }

    /// Socket address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Provider base URL for Codex's config, e.g. `http://127.0.0.1:PORT/v1`.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// Every request received so far, in arrival order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.requests().clone()
    }

    /// Only the `POST /responses` model calls (title requests included).
    pub fn responses_requests(&self) -> Vec<RecordedRequest> {
        self.shared
            .requests()
            .iter()
            .filter(|request| request.is_responses())
            .cloned()
            .collect()
    }

    /// Number of requests received so far.
    pub fn request_count(&self) -> usize {
        self.shared.requests().len()
    }

    /// Waits until at least `count` requests were received; errors after `timeout`.
    pub async fn wait_for_requests(&self, count: usize, timeout: Duration) -> anyhow::Result<()> {
        let mut recorded = self.shared.recorded.subscribe();
        tokio::time::timeout(timeout, recorded.wait_for(|seen| *seen >= count))
            .await
            .with_context(|| {
                format!(
                    "fake model got {} of {count} requests within {timeout:?}",
                    self.request_count()
                )
            })?
            .context("fake model state dropped")?;
        Ok(())
    }

    /// How many times `text` was typed into Codex as a user message, as the model's newest
    /// request shows the conversation (0 if no request carried it).
    pub fn times_typed(&self, text: &str) -> usize {
        self.responses_requests()
            .iter()
            .filter(|r| !r.is_title_request())
            .map(|r| r.user_texts().iter().filter(|t| t.trim() == text).count())
            .max()
            .unwrap_or(0)
    }

    /// Waits until a model request carries a user message `text`; errors after `timeout`.
    pub async fn wait_for_user_text(&self, text: &str, timeout: Duration) -> anyhow::Result<()> {
        let mut recorded = self.shared.recorded.subscribe();
        tokio::time::timeout(timeout, async {
            loop {
                if self.times_typed(text) > 0 {
                    return;
                }
                if recorded.changed().await.is_err() {
                    return;
                }
            }
        })
        .await
        .with_context(|| format!("the model never saw {text:?} within {timeout:?}"))
    }

    /// Lets every held reply (the answer ending a `hold:` turn, see [`script::held`]) go,
    /// now and from now on: the turn it ends stays open until the test has seen what it waits
    /// for while the turn runs.
    pub fn release_held(&self) {
        self.shared.released.send_replace(true);
    }

    /// While `failing`, model calls get `500 Internal Server Error` (still recorded).
    pub fn set_failing(&self, failing: bool) {
        self.shared.failing.store(failing, Ordering::SeqCst);
    }

    /// Stops the server, ends open streams and waits (briefly) for the server task.
    pub async fn shutdown(mut self) {
        self.stop.take();
        if let Some(task) = self.task.take() {
            let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
        }
    }
}

impl Drop for FakeModel {
    fn drop(&mut self) {
        // Dropping the sender starts the graceful shutdown and ends open SSE streams, which
        // lets the server task finish on its own; it is not awaited here.
        self.stop.take();
    }
}

#[derive(Clone)]
struct AppState {
    shared: Arc<Shared>,
    stop: watch::Receiver<()>,
}

fn record(shared: &Shared, method: &Method, uri: &Uri, headers: &HeaderMap, body: &[u8]) {
    let request = RecordedRequest {
        method: method.to_string(),
        path: uri.to_string(),
        headers: headers
            .iter()
            .map(|(name, value)| {
                let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
                (name.as_str().to_owned(), value)
            })
            .collect(),
        body: serde_json::from_slice(body).unwrap_or(Value::Null),
    };
    let count = {
        let mut requests = shared.requests();
        requests.push(request);
        requests.len()
    };
    shared.recorded.send_replace(count);
}

async fn responses(
    State(state): State<AppState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    record(&state.shared, &method, &uri, &headers, &body);
    if state.shared.failing.load(Ordering::SeqCst) {
        return (StatusCode::INTERNAL_SERVER_ERROR, "fake model is failing").into_response();
    }
    let Ok(request) = serde_json::from_slice::<Value>(&body) else {
        return (StatusCode::BAD_REQUEST, "body is not JSON").into_response();
    };
    if let Some(failure) = failure::failure_for(&request, shared::clock::now_unix_ms() / 1000) {
        tracing::debug!(status = %failure.status, "fake model refuses the call");
        return (failure.status, axum::Json(failure.body)).into_response();
    }
    let seq = state.shared.seq.fetch_add(1, Ordering::SeqCst) + 1;
    let reply = script::reply_for(&request);
    let held = script::held(&request);
    tracing::debug!(seq, ?reply, held, "fake model reply");
    let steps = if held {
        sse::held_steps(&reply, seq)
    } else {
        sse::steps(&reply, seq)
    };
    let released = state.shared.released.subscribe();
    Sse::new(event_stream(steps, released, state.stop))
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(5)))
        .into_response()
}

async fn other(
    State(state): State<AppState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    record(&state.shared, &method, &uri, &headers, &body);
    StatusCode::NOT_FOUND
}

/// Plays `steps`; ends early when the server stops. A client that hangs up (Codex interrupted
/// with Escape) simply drops this stream.
fn event_stream(
    steps: Vec<Step>,
    released: watch::Receiver<bool>,
    stop: watch::Receiver<()>,
) -> impl Stream<Item = Result<Event, Infallible>> {
    futures::stream::unfold(
        (VecDeque::from(steps), released, stop),
        |(mut steps, mut released, mut stop)| async move {
            loop {
                match steps.pop_front()? {
                    Step::Wait(wait) => {
                        tokio::select! {
                            () = tokio::time::sleep(wait) => {}
                            _ = wait_stopped(&mut stop) => return None,
                        }
                    }
                    Step::Hold(tick) => {
                        let open = tokio::select! {
                            // Released (or the model is gone: its stop ends the stream below).
                            _ = released.wait_for(|open| *open) => true,
                            () = tokio::time::sleep(Duration::from_secs(1)) => false,
                            _ = wait_stopped(&mut stop) => return None,
                        };
                        if !open {
                            // Still held: tell Codex the response is alive, then hold on.
                            let event = sse_event("response.in_progress", &tick);
                            steps.push_front(Step::Hold(tick));
                            return Some((Ok(event), (steps, released, stop)));
                        }
                    }
                    Step::Event(name, data) => {
                        let event = sse_event(name, &data);
                        return Some((Ok(event), (steps, released, stop)));
                    }
                }
            }
        },
    )
}

fn sse_event(name: &'static str, data: &Value) -> Event {
    Event::default().event(name).data(data.to_string())
}

async fn wait_stopped(stop: &mut watch::Receiver<()>) {
    while stop.changed().await.is_ok() {}
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// Parses an SSE body into `(event, data)` pairs.
    fn parse_sse(text: &str) -> Vec<(String, Value)> {
        text.split("\n\n")
            .filter_map(|block| {
                let mut name = None;
                let mut data = None;
                for line in block.lines() {
                    if let Some(value) = line.strip_prefix("event: ") {
                        name = Some(value.to_owned());
                    } else if let Some(value) = line.strip_prefix("data: ") {
                        data = Some(serde_json::from_str(value).unwrap());
                    }
                }
                Some((name?, data?))
            })
            .collect()
    }

    fn request(text: &str) -> Value {
        json!({"model": "fake-model", "stream": true, "input": [
            {"type": "message", "role": "developer", "content": [{"type": "input_text", "text": "base"}]},
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}]})
    }

    #[tokio::test]
    async fn streams_an_echo_reply() {
        let model = FakeModel::start().await.unwrap();
        assert!(model.base_url().starts_with("http://127.0.0.1:"));
        let response = reqwest::Client::new()
            .post(format!("{}/responses", model.base_url()))
            .bearer_auth("fake-key")
            .json(&request("echo: hello"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let content_type = response.headers()["content-type"]
            .to_str()
            .unwrap()
            .to_owned();
        assert_eq!(content_type, "text/event-stream");
        let events = parse_sse(&response.text().await.unwrap());
        let names: Vec<&str> = events.iter().map(|(name, _)| name.as_str()).collect();
        assert_eq!(names.first(), Some(&"response.created"));
        assert_eq!(names.last(), Some(&"response.completed"));
        for (name, data) in &events {
            assert_eq!(data["type"], name.as_str());
        }
        let text: String = events
            .iter()
            .filter(|(name, _)| name == "response.output_text.delta")
            .map(|(_, data)| data["delta"].as_str().unwrap())
            .collect();
        assert_eq!(text, "hello");
        let (_, done) = events
            .iter()
            .find(|(name, _)| name == "response.output_item.done")
            .unwrap();
        assert_eq!(done["item"]["content"][0]["text"], "hello");
        assert!(events.last().unwrap().1["response"]["id"].is_string());

        model
            .wait_for_requests(1, Duration::from_secs(1))
            .await
            .unwrap();
        let requests = model.responses_requests();
        assert_eq!(requests.len(), 1);
        assert_eq!(requests[0].last_user_text().as_deref(), Some("echo: hello"));
        assert!(
            requests[0]
                .headers
                .iter()
                .any(|(name, value)| name == "authorization" && value == "Bearer fake-key")
        );
        model.shutdown().await;
    }

    #[tokio::test]
    async fn records_other_paths_and_fails_on_demand() {
        let model = FakeModel::start().await.unwrap();
        let client = reqwest::Client::new();
        let models = client
            .get(format!("{}/models", model.base_url()))
            .send()
            .await
            .unwrap();
        assert_eq!(models.status(), 404);
        model.set_failing(true);
        let failed = client
            .post(format!("{}/responses", model.base_url()))
            .json(&request("hi"))
            .send()
            .await
            .unwrap();
        assert_eq!(failed.status(), 500);
        assert_eq!(model.request_count(), 2);
        assert_eq!(model.responses_requests().len(), 1);
        assert!(
            model
                .wait_for_requests(3, Duration::from_millis(50))
                .await
                .is_err()
        );
    }

    #[tokio::test]
    async fn a_held_answer_waits_for_its_release() {
        let model = FakeModel::start().await.unwrap();
        let body = json!({"model": "fake-model", "stream": true, "input": [
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "hold: echo hi"}]},
            {"type": "function_call", "name": "exec_command", "call_id": "c1",
                "arguments": "{\"cmd\":\"echo hi\"}"},
            {"type": "function_call_output", "call_id": "c1", "output": "hi"}]});
        let mut response = reqwest::Client::new()
            .post(format!("{}/responses", model.base_url()))
            .json(&body)
            .send()
            .await
            .unwrap();
        // Held: keep-alive ticks come, the answer does not.
        let mut text = String::new();
        while !text.contains("response.in_progress") {
            let chunk = tokio::time::timeout(Duration::from_secs(10), response.chunk())
                .await
                .unwrap()
                .unwrap()
                .expect("the held stream ended");
            text.push_str(&String::from_utf8_lossy(&chunk));
        }
        assert!(!text.contains("response.output_item"), "{text}");
        model.release_held();
        let rest = tokio::time::timeout(Duration::from_secs(10), response.text())
            .await
            .unwrap()
            .unwrap();
        text.push_str(&rest);
        let events = parse_sse(&text);
        let names: Vec<&str> = events.iter().map(|(name, _)| name.as_str()).collect();
        assert_eq!(names[..2], ["response.created", "response.in_progress"]);
        assert_eq!(names.last(), Some(&"response.completed"));
        let answer = events
            .iter()
            .find(|(name, _)| name == "response.output_item.done")
            .unwrap();
        assert_eq!(answer.1["item"]["content"][0]["text"], "ran echo hi");
    }

    #[tokio::test]
    async fn drop_ends_a_slow_stream() {
        let model = FakeModel::start().await.unwrap();
        let url = format!("{}/responses", model.base_url());
        let response = reqwest::Client::new()
            .post(url)
            .json(&request("slow: 60"))
            .send()
            .await
            .unwrap();
        drop(model);
        // The stream ends without response.completed instead of running for a minute.
        let body = tokio::time::timeout(Duration::from_secs(10), response.text())
            .await
            .unwrap()
            .unwrap_or_default();
        assert!(body.contains("response.created"));
        assert!(!body.contains("response.completed"));
    }
}
