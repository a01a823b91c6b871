//! The HTTP side of the fake: routes `/bot<token>/<method>` and `/file/bot<token>/<path>`, reads
//! parameters from the query string and from JSON, form-urlencoded or multipart bodies like the
//! real server, runs the method, logs the call (every request, whatever its outcome: a wrong token,
//! an unreadable body and an unknown method are logged too) and answers in Telegram's envelope.
//!
//! getUpdates is a real long poll: it waits on a `Notify` that update injection signals, and a
//! newer getUpdates ends an older one with 409 Conflict (generation counter). Every completed
//! call bumps a `watch` counter so the harness's `wait_for` re-checks its predicate.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, FromRequest, Multipart, Request, State as AxState};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tokio::sync::{Notify, watch};
use tokio::time::Instant;

use super::methods;
use super::model::{ApiCall, State};
use super::params::{ApiError, Params, Upload};

/// Largest request body read; bigger than the 50 MB document limit so that limit can answer.
const MAX_BODY: usize = 64 << 20;

pub(super) struct Shared {
    pub(super) token: String,
    pub(super) state: Mutex<State>,
    /// Signalled when updates are queued or a newer getUpdates starts.
    pub(super) updates: Notify,
    /// Bumped after every change the harness may wait for.
    pub(super) changed: watch::Sender<u64>,
}

impl Shared {
    pub(super) fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock (a bug in the fake) must not hide later assertions.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(super) fn bump(&self) {
        self.changed.send_modify(|v| *v += 1);
    }
}

pub(super) fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .fallback(handle)
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(shared)
}

fn reply(outcome: &Result<Value, ApiError>) -> Response {
    match outcome {
        Ok(result) => (
            StatusCode::OK,
            axum::Json(json!({ "ok": true, "result": result })),
        )
            .into_response(),
        Err(e) => {
            let status = StatusCode::from_u16(e.code).unwrap_or(StatusCode::BAD_REQUEST);
            (status, axum::Json(e.to_json())).into_response()
        }
    }
}

async fn handle(AxState(sh): AxState<Arc<Shared>>, req: Request) -> Response {
    let path = req.uri().path().to_owned();
    if let Some(rest) = path.strip_prefix("/file/bot") {
        return download(&sh, rest);
    }
    let Some((token, method)) = path.strip_prefix("/bot").and_then(|r| r.split_once('/')) else {
        let outcome = Err(ApiError::status(404, "Not Found"));
        log_call(&sh, path, json!({}), outcome.clone());
        return reply(&outcome);
    };
    let authorized = percent_decode(token) == sh.token;
    let method = method.to_owned();
    let params = read_params(req).await;
    let log_params = params
        .as_ref()
        .map_or_else(|_| json!({}), Params::to_log_json);
    let outcome = match params {
        _ if !authorized => Err(ApiError::status(401, "Unauthorized")),
        Err(e) => Err(e),
        Ok(_) if method.is_empty() || method.contains('/') => {
            Err(ApiError::status(404, "Not Found"))
        }
        Ok(params) if method.eq_ignore_ascii_case("getUpdates") => get_updates(&sh, &params).await,
        Ok(params) => {
            let mut st = sh.lock();
            if take_server_error(&mut st.server_errors, &method) {
                drop(st);
                let outcome = Err(ApiError::status(502, "Bad Gateway"));
                log_call(&sh, method, log_params, outcome);
                return bad_gateway();
            }
            methods::call(&mut st, &method, &params)
                .unwrap_or_else(|| Err(ApiError::status(404, "Not Found")))
        }
    };
    log_call(&sh, method, log_params, outcome.clone());
    reply(&outcome)
}

/// Whether a forced server error takes this call (see `force_server_error_on`).
fn take_server_error(forced: &mut Vec<(String, u32)>, method: &str) -> bool {
    let method = method.to_ascii_lowercase();
    let Some(f) = forced.iter_mut().find(|(m, n)| *m == method && *n > 0) else {
        return false;
    };
    f.1 -= 1;
    forced.retain(|(_, n)| *n > 0);
    true
}

/// What a reverse proxy says when Telegram behind it is unreachable.
fn bad_gateway() -> Response {
    (
        StatusCode::BAD_GATEWAY,
        [(header::CONTENT_TYPE, "text/html")],
        "<html><head><title>502 Bad Gateway</title></head><body><center><h1>502 Bad Gateway</h1></center></body></html>",
    )
        .into_response()
}

/// An integer parameter as logged (a JSON number, or a string holding one).
fn logged_int(params: &Value, name: &str) -> Option<i64> {
    match params.get(name)? {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn log_call(sh: &Shared, method: String, params: Value, outcome: Result<Value, ApiError>) {
    let chat_id = logged_int(&params, "chat_id");
    let message_id = outcome
        .as_ref()
        .ok()
        .and_then(|r| r.get("message_id"))
        .and_then(Value::as_i64)
        .or_else(|| logged_int(&params, "message_id"));
    {
        let mut st = sh.lock();
        let seq = st.calls.len() as u64 + 1;
        let at = st.elapsed();
        st.calls.push(ApiCall {
            seq,
            method,
            params,
            outcome,
            at,
            chat_id,
            message_id,
        });
    }
    sh.bump();
}

async fn read_params(req: Request) -> Result<Params, ApiError> {
    let mut p = Params::default();
    if let Ok(axum::extract::Query(pairs)) =
        axum::extract::Query::<Vec<(String, String)>>::try_from_uri(req.uri())
    {
        for (k, v) in pairs {
            p.set(k, Value::String(v));
        }
    }
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_ascii_lowercase();
    let too_large = || ApiError::status(413, "Request Entity Too Large");
    if content_type.starts_with("multipart/form-data") {
        let mut mp = Multipart::from_request(req, &())
            .await
            .map_err(|e| ApiError::bad(format!("fake_telegram: bad multipart body: {e}")))?;
        while let Some(field) = mp.next_field().await.map_err(|_| too_large())? {
            let name = field.name().unwrap_or_default().to_owned();
            let file_name = field.file_name().map(str::to_owned);
            let content_type = field.content_type().map(str::to_owned);
            let bytes = field.bytes().await.map_err(|_| too_large())?;
            if file_name.is_some() {
                p.add_file(
                    name,
                    Upload {
                        file_name,
                        content_type,
                        bytes,
                    },
                );
            } else {
                p.set(
                    name,
                    Value::String(String::from_utf8_lossy(&bytes).into_owned()),
                );
            }
        }
        return Ok(p);
    }
    let body = Bytes::from_request(req, &())
        .await
        .map_err(|_| too_large())?;
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(p);
    }
    if content_type.starts_with("application/json") {
        let Ok(Value::Object(map)) = serde_json::from_slice::<Value>(&body) else {
            return Err(ApiError::bad(
                "fake_telegram: the JSON body is not an object",
            ));
        };
        for (k, v) in map {
            p.set(k, v);
        }
    } else if content_type.starts_with("application/x-www-form-urlencoded") {
        let text = String::from_utf8_lossy(&body);
        let uri: axum::http::Uri = format!("/?{text}")
            .parse()
            .map_err(|_| ApiError::bad("fake_telegram: malformed form body"))?;
        let axum::extract::Query(pairs) =
            axum::extract::Query::<Vec<(String, String)>>::try_from_uri(&uri)
                .map_err(|_| ApiError::bad("fake_telegram: malformed form body"))?;
        for (k, v) in pairs {
            p.set(k, Value::String(v));
        }
    } else {
        return Err(ApiError::bad(format!(
            "fake_telegram: unsupported Content-Type \"{content_type}\""
        )));
    }
    Ok(p)
}

async fn get_updates(sh: &Shared, p: &Params) -> Result<Value, ApiError> {
    let (generation, limit, deadline) = {
        let mut st = sh.lock();
        let (offset, limit, timeout) = methods::get_updates_params(&mut st, p)?;
        confirm(&mut st, offset);
        st.poll_generation += 1;
        let deadline = Instant::now() + Duration::from_secs(timeout);
        (st.poll_generation, limit, deadline)
    };
    // Wake an older long poll so it notices it was replaced and ends with 409.
    sh.updates.notify_waiters();
    sh.bump();
    loop {
        let notified = sh.updates.notified();
        tokio::pin!(notified);
        // Register before checking, so an injection between check and wait is not lost.
        notified.as_mut().enable();
        {
            let mut st = sh.lock();
            if st.poll_generation != generation {
                return Err(ApiError::conflict());
            }
            let batch = take_batch(&mut st, limit);
            if !batch.is_empty() || Instant::now() >= deadline {
                return Ok(Value::Array(batch));
            }
        }
        tokio::select! {
            () = &mut notified => {}
            () = tokio::time::sleep_until(deadline) => {}
        }
    }
}

/// Applies getUpdates' `offset`: updates below it are confirmed and forgotten; a negative offset
/// keeps only the last `-offset` updates.
fn confirm(st: &mut State, offset: i64) {
    if offset > 0 {
        while st.updates.front().is_some_and(|u| u.id < offset) {
            st.updates.pop_front();
        }
        st.confirmed_through = st.confirmed_through.max(offset - 1);
    } else if offset < 0 {
        let keep = usize::try_from(offset.unsigned_abs()).unwrap_or(usize::MAX);
        while st.updates.len() > keep {
            if let Some(u) = st.updates.pop_front() {
                st.confirmed_through = st.confirmed_through.max(u.id);
            }
        }
    }
}

fn take_batch(st: &mut State, limit: usize) -> Vec<Value> {
    if let Some(allowed) = &st.allowed_updates {
        // Types the bot did not ask for are never delivered; Telegram drops them.
        st.updates.retain(|u| allowed.iter().any(|a| a == u.kind));
    }
    st.updates
        .iter()
        .take(limit)
        .map(|u| {
            let mut v = json!({ "update_id": u.id });
            v[u.kind] = u.body.clone();
            v
        })
        .collect()
}

/// Decodes `%XX` escapes. teloxide pushes the file path as one URL segment, so its `/` arrive
/// as `%2F`, and the real server accepts that.
fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = b
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (b[i], hex) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn download(sh: &Shared, rest: &str) -> Response {
    let rest = percent_decode(rest);
    let Some((token, file_path)) = rest.split_once('/') else {
        let outcome = Err(ApiError::status(404, "Not Found"));
        log_call(sh, format!("file/{rest}"), json!({}), outcome.clone());
        return reply(&outcome);
    };
    if token != sh.token {
        let outcome = Err(ApiError::status(401, "Unauthorized"));
        log_call(sh, format!("file/{file_path}"), json!({}), outcome.clone());
        return reply(&outcome);
    }
    let found = {
        let st = sh.lock();
        st.files
            .values()
            .find(|f| f.file_path == file_path)
            .map(|f| (f.bytes.clone(), f.size))
    };
    let outcome = match &found {
        Some((_, size)) if *size > methods::MAX_DOWNLOAD as u64 => {
            Err(ApiError::bad("file is too big"))
        }
        Some((b, _)) => Ok(json!({ "size": b.len() })),
        None => Err(ApiError::status(404, "Not Found")),
    };
    log_call(sh, format!("file/{file_path}"), json!({}), outcome.clone());
    match (outcome, found) {
        (Ok(_), Some((bytes, _))) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/octet-stream")],
            bytes,
        )
            .into_response(),
        (outcome, _) => reply(&outcome),
    }
}
