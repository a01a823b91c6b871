//! A strict fake of OpenAI's speech-to-text endpoint (`POST /v1/audio/transcriptions`) on
//! loopback, for testing the center's voice-message transcription without the real service.
//!
//! It is strict like the real API, with OpenAI's error shapes and texts: a missing or wrong
//! bearer key gets `401` (when the fake was started with a key), a missing `file` or `model`, an
//! empty file, an unsupported file format, an unknown model, an invalid language or response
//! format gets `400`/`404`, a file over 25 MB gets `413`, other methods get `405` and other paths
//! `404`. Fields the real API does not know are refused with a message starting `fake_stt:`.
//!
//! What a request returns: the transcript registered for the uploaded bytes
//! ([`FakeStt::set_transcript_for`]), else the one set with [`FakeStt::set_transcript`], else
//! `transcript of <file name> (<n> bytes)`. Accepted requests are recorded ([`FakeStt::requests`]),
//! refused ones too ([`FakeStt::rejections`]). Dropping the `FakeStt` stops the server.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use anyhow::Context as _;
use axum::Router;
use axum::extract::{DefaultBodyLimit, FromRequest, Multipart, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::json;
use tokio::task::JoinHandle;

/// Largest file the real API accepts (25 MiB; its 413 names 26214400).
pub const MAX_FILE_BYTES: usize = 25 * 1024 * 1024;

/// Largest request body read at all; bigger than [`MAX_FILE_BYTES`] so that limit can answer.
const MAX_BODY: usize = 64 << 20;

/// Models the fake accepts (OpenAI's transcription models).
pub const MODELS: &[&str] = &["whisper-1", "gpt-4o-transcribe", "gpt-4o-mini-transcribe"];

/// File extensions the real API accepts, in the order its error message lists them.
const FORMATS: &[&str] = &[
    "flac", "m4a", "mp3", "mp4", "mpeg", "mpga", "oga", "ogg", "wav", "webm",
];

/// Form fields the real API knows.
const KNOWN_FIELDS: &[&str] = &[
    "file",
    "model",
    "language",
    "prompt",
    "response_format",
    "temperature",
    "timestamp_granularities[]",
    "include[]",
    "chunking_strategy",
    "stream",
];

/// One accepted transcription request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SttRequest {
    /// The `model` field.
    pub model: String,
    /// File name of the `file` part.
    pub file_name: String,
    /// Content type of the `file` part, if the client sent one.
    pub content_type: Option<String>,
    /// Size of the uploaded file.
    pub bytes: usize,
    /// The `language` field, if sent.
    pub language: Option<String>,
    /// The `response_format` field, if sent.
    pub response_format: Option<String>,
    /// The `prompt` field, if sent.
    pub prompt: Option<String>,
    /// What the fake answered.
    pub transcript: String,
}

/// One refused request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SttRejection {
    /// HTTP status of the answer.
    pub status: u16,
    /// The `error.message` of the answer.
    pub message: String,
}

#[derive(Debug, Default)]
struct Inner {
    transcript: Option<String>,
    by_bytes: HashMap<Vec<u8>, String>,
    failure: Option<(u16, String)>,
    delay: Duration,
    /// Requests whose body was read (counted before any delay: "being transcribed").
    received: usize,
    requests: Vec<SttRequest>,
    rejections: Vec<SttRejection>,
}

#[derive(Debug)]
struct Shared {
    api_key: Option<String>,
    state: Mutex<Inner>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock must not hide later assertions.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A running fake transcription server. Dropping it stops the server.
#[derive(Debug)]
pub struct FakeStt {
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

// === impl FakeStt ===

impl FakeStt {
    /// Binds `127.0.0.1:0` and starts serving; ready as soon as this returns. With `api_key`,
    /// every request must carry `Authorization: Bearer <api_key>`.
    pub async fn start(api_key: Option<&str>) -> anyhow::Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .context("binding the fake transcription server to 127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            api_key: api_key.map(str::to_owned),
            state: Mutex::default(),
        });
        let app = Router::new()
            .route("/v1/audio/transcriptions", post(transcriptions))
            .fallback(not_found)
            .layer(DefaultBodyLimit::max(MAX_BODY))
            .with_state(Arc::clone(&shared));
        let task = tokio::spawn(async move {
            if let Err(error) = axum::serve(listener, app).await {
                tracing::warn!(%error, "fake transcription server failed");
            }
        });
        Ok(Self {
            addr,
            shared,
            _server: ServerTask(task),
        })
    }

    /// Socket address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// OpenAI-style base URL, e.g. `http://127.0.0.1:PORT/v1`.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// What the following requests return (unless their bytes have their own transcript).
    pub fn set_transcript(&self, text: impl Into<String>) {
        self.shared.lock().transcript = Some(text.into());
    }

    /// What a request uploading exactly `bytes` returns.
    pub fn set_transcript_for(&self, bytes: impl Into<Vec<u8>>, text: impl Into<String>) {
        self.shared
            .lock()
            .by_bytes
            .insert(bytes.into(), text.into());
    }

    /// While set, valid requests get this status and OpenAI-style error message (e.g. `500`,
    /// `429`); they are recorded as rejections.
    pub fn set_failure(&self, failure: Option<(u16, &str)>) {
        self.shared.lock().failure = failure.map(|(status, message)| (status, message.to_owned()));
    }

    /// How many requests were read so far, answered or still being answered.
    pub fn received(&self) -> usize {
        self.shared.lock().received
    }

    /// Delays every answer (after the body was read) by `delay`, to test client timeouts.
    pub fn set_delay(&self, delay: Duration) {
        self.shared.lock().delay = delay;
    }

    /// Every accepted request so far, in arrival order.
    pub fn requests(&self) -> Vec<SttRequest> {
        self.shared.lock().requests.clone()
    }

    /// Every refused request so far, in arrival order.
    pub fn rejections(&self) -> Vec<SttRejection> {
        self.shared.lock().rejections.clone()
    }
}

/// An OpenAI-style error answer.
struct Refusal {
    status: StatusCode,
    message: String,
    param: Option<&'static str>,
    code: Option<&'static str>,
}

impl Refusal {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            param: None,
            code: None,
        }
    }

    fn bad(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    fn param(mut self, param: &'static str) -> Self {
        self.param = Some(param);
        self
    }

    fn code(mut self, code: &'static str) -> Self {
        self.code = Some(code);
        self
    }

    fn into_response(self, shared: &Shared) -> Response {
        shared.lock().rejections.push(SttRejection {
            status: self.status.as_u16(),
            message: self.message.clone(),
        });
        let body = json!({
            "error": {
                "message": self.message,
                "type": "invalid_request_error",
                "param": self.param,
                "code": self.code,
            }
        });
        (self.status, axum::Json(body)).into_response()
    }
}

async fn not_found(State(shared): State<Arc<Shared>>, req: Request) -> Response {
    let message = format!("Invalid URL ({} {})", req.method(), req.uri().path());
    Refusal::new(StatusCode::NOT_FOUND, message).into_response(&shared)
}

async fn transcriptions(State(shared): State<Arc<Shared>>, req: Request) -> Response {
    match handle(&shared, req).await {
        Ok(response) => response,
        Err(refusal) => refusal.into_response(&shared),
    }
}

/// The fields of one upload.
#[derive(Default)]
struct Form {
    file: Option<(String, Option<String>, Vec<u8>)>,
    model: Option<String>,
    language: Option<String>,
    response_format: Option<String>,
    prompt: Option<String>,
}

async fn handle(shared: &Shared, req: Request) -> Result<Response, Refusal> {
    check_auth(shared, req.headers())?;
    let form = read_form(req).await?;
    let Some((file_name, content_type, bytes)) = form.file else {
        return Err(Refusal::bad(
            "1 validation error for Request\nbody -> file\n  field required (type=value_error.missing)",
        )
        .param("file"));
    };
    let Some(model) = form.model.filter(|m| !m.is_empty()) else {
        return Err(Refusal::bad("you must provide a model parameter"));
    };
    if bytes.len() > MAX_FILE_BYTES {
        return Err(Refusal::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "Maximum content size limit ({MAX_FILE_BYTES}) exceeded ({} bytes read)",
                bytes.len()
            ),
        ));
    }
    if !MODELS.contains(&model.as_str()) {
        return Err(Refusal::new(
            StatusCode::NOT_FOUND,
            format!("The model `{model}` does not exist or you do not have access to it."),
        )
        .code("model_not_found"));
    }
    let extension = file_name
        .rsplit_once('.')
        .map(|(_, ext)| ext.to_ascii_lowercase())
        .unwrap_or_default();
    if !FORMATS.contains(&extension.as_str()) {
        let list = FORMATS
            .iter()
            .map(|f| format!("'{f}'"))
            .collect::<Vec<_>>()
            .join(", ");
        return Err(
            Refusal::bad(format!("Invalid file format. Supported formats: [{list}]")).param("file"),
        );
    }
    if bytes.is_empty() {
        return Err(
            Refusal::bad("Audio file is too short. Minimum audio length is 0.1 seconds.")
                .param("file")
                .code("audio_too_short"),
        );
    }
    if let Some(language) = &form.language {
        let iso_639_1 = language.len() == 2 && language.bytes().all(|b| b.is_ascii_lowercase());
        if !iso_639_1 {
            return Err(Refusal::bad(format!(
                "Invalid language '{language}'. Language parameter must be specified in ISO-639-1 format."
            ))
            .param("language"));
        }
    }
    let format = form.response_format.as_deref().unwrap_or("json");
    match format {
        "json" | "text" | "verbose_json" => {}
        "srt" | "vtt" => {
            return Err(Refusal::bad(format!(
                "fake_stt: response_format '{format}' is not modelled"
            )));
        }
        other => {
            return Err(Refusal::bad(format!(
                "'{other}' is not one of ['json', 'text', 'srt', 'verbose_json', 'vtt'] - 'response_format'"
            ))
            .param("response_format"));
        }
    }
    let (transcript, failure, delay) = {
        let mut state = shared.lock();
        state.received += 1;
        let transcript = state
            .by_bytes
            .get(&bytes)
            .or(state.transcript.as_ref())
            .cloned()
            .unwrap_or_else(|| format!("transcript of {file_name} ({} bytes)", bytes.len()));
        (transcript, state.failure.clone(), state.delay)
    };
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    if let Some((status, message)) = failure {
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        return Err(Refusal::new(status, message));
    }
    let response = match format {
        "text" => (StatusCode::OK, format!("{transcript}\n")).into_response(),
        "verbose_json" => axum::Json(json!({
            "task": "transcribe",
            "language": form.language.as_deref().unwrap_or("english"),
            "duration": 1.0,
            "text": transcript,
            "segments": [],
        }))
        .into_response(),
        _ => axum::Json(json!({ "text": transcript })).into_response(),
    };
    shared.lock().requests.push(SttRequest {
        model,
        file_name,
        content_type,
        bytes: bytes.len(),
        language: form.language,
        response_format: form.response_format,
        prompt: form.prompt,
        transcript,
    });
    Ok(response)
}

fn check_auth(shared: &Shared, headers: &HeaderMap) -> Result<(), Refusal> {
    let Some(expected) = &shared.api_key else {
        return Ok(());
    };
    let unauthorized = |message: String| Refusal::new(StatusCode::UNAUTHORIZED, message);
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Err(unauthorized(
            "You didn't provide an API key. You need to provide your API key in an Authorization \
             header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY), or as the password \
             field (with blank username) if you're accessing the API from your browser and are \
             prompted for a username and password. You can obtain an API key from \
             https://platform.openai.com/account/api-keys."
                .to_owned(),
        ));
    };
    let value = String::from_utf8_lossy(value.as_bytes());
    let given = value.strip_prefix("Bearer ").unwrap_or_default().trim();
    if given == expected {
        return Ok(());
    }
    Err(unauthorized(format!(
        "Incorrect API key provided: {}. You can find your API key at \
         https://platform.openai.com/account/api-keys.",
        mask(given)
    ))
    .code("invalid_api_key"))
}

/// Masks a key the way OpenAI's error messages do (first 3 and last 4 characters shown, and only
/// for keys long enough that this reveals little).
fn mask(key: &str) -> String {
    let chars: Vec<char> = key.chars().collect();
    if chars.len() < 12 {
        return "*".repeat(chars.len());
    }
    let head: String = chars[..3].iter().collect();
    let tail: String = chars[chars.len() - 4..].iter().collect();
    format!("{head}{}{tail}", "*".repeat(chars.len() - 7))
}

async fn read_form(req: Request) -> Result<Form, Refusal> {
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_ascii_lowercase();
    if !content_type.starts_with("multipart/form-data") {
        return Err(Refusal::bad(format!(
            "fake_stt: expected a multipart/form-data body, got content type '{content_type}'"
        )));
    }
    let too_large = || {
        Refusal::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("Maximum content size limit ({MAX_FILE_BYTES}) exceeded"),
        )
    };
    let mut multipart = Multipart::from_request(req, &())
        .await
        .map_err(|e| Refusal::bad(format!("fake_stt: bad multipart body: {e}")))?;
    let mut form = Form::default();
    while let Some(field) = multipart.next_field().await.map_err(|_| too_large())? {
        let name = field.name().unwrap_or_default().to_owned();
        if !KNOWN_FIELDS.contains(&name.as_str()) {
            return Err(Refusal::bad(format!("fake_stt: unknown field '{name}'")));
        }
        let file_name = field.file_name().map(str::to_owned);
        let content_type = field.content_type().map(str::to_owned);
        let bytes = field.bytes().await.map_err(|_| too_large())?;
        let text = || String::from_utf8_lossy(&bytes).into_owned();
        match name.as_str() {
            "file" => {
                let Some(file_name) = file_name else {
                    return Err(Refusal::bad(
                        "fake_stt: the 'file' field must be a file upload (with a file name)",
                    )
                    .param("file"));
                };
                form.file = Some((file_name, content_type, bytes.to_vec()));
            }
            "model" => form.model = Some(text()),
            "language" => form.language = Some(text()),
            "response_format" => form.response_format = Some(text()),
            "prompt" => form.prompt = Some(text()),
            _ => {}
        }
    }
    Ok(form)
}

#[cfg(test)]
mod tests {
    use reqwest::multipart::{Form as ReqForm, Part};
    use serde_json::Value;

    use super::*;

    fn form(file: Option<(&str, Vec<u8>)>, model: Option<&str>) -> ReqForm {
        let mut form = ReqForm::new();
        if let Some((name, bytes)) = file {
            form = form.part(
                "file",
                Part::bytes(bytes)
                    .file_name(name.to_owned())
                    .mime_str("audio/ogg")
                    .unwrap(),
            );
        }
        if let Some(model) = model {
            form = form.text("model", model.to_owned());
        }
        form
    }

    async fn post(stt: &FakeStt, key: Option<&str>, form: ReqForm) -> (u16, Value) {
        let mut req = reqwest::Client::new()
            .post(format!("{}/audio/transcriptions", stt.base_url()))
            .multipart(form);
        if let Some(key) = key {
            req = req.bearer_auth(key);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    #[tokio::test]
    async fn answers_and_records_a_valid_upload() {
        let stt = FakeStt::start(Some("sk-test-0123456789")).await.unwrap();
        let (status, body) = post(
            &stt,
            Some("sk-test-0123456789"),
            form(Some(("voice.ogg", vec![1, 2, 3])), Some("whisper-1")).text("language", "de"),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["text"], "transcript of voice.ogg (3 bytes)");

        stt.set_transcript("hello");
        stt.set_transcript_for(vec![9u8], "nine");
        let (_, body) = post(
            &stt,
            Some("sk-test-0123456789"),
            form(Some(("a.mp3", vec![7])), Some("whisper-1")),
        )
        .await;
        assert_eq!(body["text"], "hello");
        let (_, body) = post(
            &stt,
            Some("sk-test-0123456789"),
            form(Some(("b.oga", vec![9])), Some("whisper-1")),
        )
        .await;
        assert_eq!(body["text"], "nine");

        let requests = stt.requests();
        assert_eq!(requests.len(), 3);
        assert_eq!(requests[0].model, "whisper-1");
        assert_eq!(requests[0].file_name, "voice.ogg");
        assert_eq!(requests[0].content_type.as_deref(), Some("audio/ogg"));
        assert_eq!(requests[0].bytes, 3);
        assert_eq!(requests[0].language.as_deref(), Some("de"));
        assert!(stt.rejections().is_empty());
    }

    #[tokio::test]
    async fn refuses_missing_and_wrong_keys_like_openai() {
        let key = "sk-secret-abcdefghijkl";
        let stt = FakeStt::start(Some(key)).await.unwrap();
        let good = || form(Some(("v.ogg", vec![1])), Some("whisper-1"));
        let (status, body) = post(&stt, None, good()).await;
        assert_eq!(status, 401);
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .starts_with("You didn't provide an API key")
        );
        let wrong = "sk-wrong-zyxwvutsrqpo";
        let (status, body) = post(&stt, Some(wrong), good()).await;
        assert_eq!(status, 401);
        assert_eq!(body["error"]["code"], "invalid_api_key");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains("sk-**************rqpo"), "{message}");
        assert!(!message.contains(wrong));
        assert!(stt.requests().is_empty());
        assert_eq!(stt.rejections().len(), 2);
    }

    #[tokio::test]
    async fn refuses_bad_uploads() {
        let stt = FakeStt::start(None).await.unwrap();
        let cases = [
            (form(None, Some("whisper-1")), 400, "field required"),
            (
                form(Some(("v.ogg", vec![1])), None),
                400,
                "you must provide a model parameter",
            ),
            (
                form(Some(("v.ogg", vec![])), Some("whisper-1")),
                400,
                "Audio file is too short",
            ),
            (
                form(Some(("v.opus", vec![1])), Some("whisper-1")),
                400,
                "Invalid file format",
            ),
            (
                form(Some(("v.ogg", vec![1])), Some("whisper-9")),
                404,
                "does not exist",
            ),
            (
                form(Some(("v.ogg", vec![1])), Some("whisper-1")).text("language", "german"),
                400,
                "Invalid language",
            ),
            (
                form(Some(("v.ogg", vec![1])), Some("whisper-1")).text("temperatur", "0"),
                400,
                "fake_stt: unknown field",
            ),
            (
                form(
                    Some(("v.ogg", vec![0; MAX_FILE_BYTES + 1])),
                    Some("whisper-1"),
                ),
                413,
                "Maximum content size limit",
            ),
        ];
        for (form, want_status, want_message) in cases {
            let (status, body) = post(&stt, None, form).await;
            let message = body["error"]["message"].as_str().unwrap_or_default();
            assert_eq!(status, want_status, "{body}");
            assert!(message.contains(want_message), "{message}");
        }
        assert!(stt.requests().is_empty());
    }

    #[tokio::test]
    async fn only_post_on_the_one_path() {
        let stt = FakeStt::start(None).await.unwrap();
        let client = reqwest::Client::new();
        let url = format!("{}/audio/transcriptions", stt.base_url());
        let get = client.get(&url).send().await.unwrap();
        assert_eq!(get.status().as_u16(), 405);
        let other = client
            .post(format!("{}/audio/translations", stt.base_url()))
            .send()
            .await
            .unwrap();
        assert_eq!(other.status().as_u16(), 404);
        let json = client
            .post(&url)
            .json(&json!({"model": "whisper-1"}))
            .send()
            .await
            .unwrap();
        assert_eq!(json.status().as_u16(), 400);
    }

    #[tokio::test]
    async fn failure_mode_and_stop_on_drop() {
        let stt = FakeStt::start(None).await.unwrap();
        stt.set_failure(Some((500, "The server had an error")));
        let (status, body) = post(
            &stt,
            None,
            form(Some(("v.ogg", vec![1])), Some("whisper-1")),
        )
        .await;
        assert_eq!(status, 500);
        assert_eq!(body["error"]["message"], "The server had an error");
        let addr = stt.addr();
        drop(stt);
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(tokio::net::TcpStream::connect(addr).await.is_err());
    }
}
