//! Voice messages to text, so a user can talk to a Codex session from their phone.
//!
//! Telegram delivers voice messages as OGG/Opus files, but Codex only takes text. This module
//! turns a downloaded audio file into a transcript with one of two providers, chosen in the
//! center's configuration ([`TranscribeConfig`]):
//!
//! - **`openai`**: any OpenAI-compatible speech-to-text service (`POST {base_url}/audio/
//!   transcriptions`, multipart upload), e.g. OpenAI itself, Groq or a self-hosted
//!   faster-whisper server.
//! - **`command`**: a local program such as whisper.cpp, given as a template like
//!   `whisper-cli --file {input} --output-txt -`. The template is split into arguments here and
//!   the program is started directly — never through a shell — so the audio file's path is always
//!   exactly one argument and can never be interpreted as shell syntax.
//!
//! Errors ([`TranscribeError`]) are worded for the Telegram user. The API key never appears in
//! `Debug` output, logs or errors.

use std::ffi::OsString;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde::Deserialize;
use tokio::io::{AsyncRead, AsyncReadExt};

/// Model used with the `openai` provider when none is configured.
pub const DEFAULT_MODEL: &str = "whisper-1";

/// Time limit for one transcription when none is configured.
pub const DEFAULT_TIMEOUT_SECS: u64 = 120;

/// Largest file the `openai` provider uploads (OpenAI's limit is 25 MB).
pub const MAX_UPLOAD_BYTES: u64 = 25 * 1024 * 1024;

/// The placeholder in a command template that becomes the audio file's path.
pub const INPUT_PLACEHOLDER: &str = "{input}";

/// Largest transcript read from a command's standard output.
const MAX_COMMAND_OUTPUT: usize = 1 << 20;

/// How much of a command's standard error is kept (its end) to report a failure.
const STDERR_TAIL: usize = 16 << 10;

/// Longest detail (a server's error message, a command's last stderr line) put into an error.
const MAX_DETAIL_CHARS: usize = 200;

/// An API key: [`shared::secret::Secret`] (redacted in `Debug` and `Display`), named for what
/// it holds here.
pub type ApiKey = shared::secret::Secret;

/// How voice messages are transcribed (the `[transcribe]` settings). Every field is optional;
/// without `provider` transcription is off.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TranscribeConfig {
    /// `"openai"` (an OpenAI-compatible HTTP service) or `"command"` (a local program).
    pub provider: Option<String>,
    /// `openai`: the API base, e.g. `https://api.openai.com/v1`; the upload goes to
    /// `{base_url}/audio/transcriptions`.
    pub base_url: Option<String>,
    /// `openai`: sent as `Authorization: Bearer <key>` when set. Never printed.
    pub api_key: Option<ApiKey>,
    /// `openai`: the model, [`DEFAULT_MODEL`] when unset.
    pub model: Option<String>,
    /// `openai`: the spoken language as ISO-639-1 (`"en"`, `"de"`); detected when unset.
    pub language: Option<String>,
    /// `command`: the program and its arguments, with [`INPUT_PLACEHOLDER`] where the audio
    /// file's path goes, e.g. `whisper-cli --file {input} --output-txt -`. Split on whitespace;
    /// single and double quotes group (`\"` and `\\` inside double quotes, `\` escapes outside
    /// quotes). No shell is involved. The transcript is what the program prints on stdout.
    pub command: Option<String>,
    /// Time limit for one transcription in seconds, [`DEFAULT_TIMEOUT_SECS`] when unset.
    pub timeout_secs: Option<u64>,
}

/// Why a transcription could not be made. The messages are meant for the Telegram user.
#[derive(Debug, thiserror::Error)]
pub enum TranscribeError {
    /// The settings are unusable (found at startup by [`Transcriber::from_config`]).
    #[error("transcription is not set up correctly: {0}")]
    Config(String),
    /// The downloaded audio file could not be read.
    #[error("transcription failed: cannot read the audio file: {0}")]
    ReadAudio(#[source] std::io::Error),
    /// The audio file has no bytes.
    #[error("transcription failed: the audio file is empty")]
    EmptyAudio,
    /// The audio is over the service's upload limit.
    #[error(
        "transcription failed: the audio is too large ({:.1} MB; the service accepts up to 25 MB)",
        *size as f64 / (1024.0 * 1024.0)
    )]
    TooLarge {
        /// Size of the file in bytes.
        size: u64,
    },
    /// The service could not be reached (DNS, connection, TLS).
    #[error("transcription failed: cannot reach the service: {0}")]
    Unreachable(String),
    /// The service answered with an error status.
    #[error("transcription failed: the service answered {status}{}", suffix(detail.as_deref()))]
    Http {
        /// The HTTP status.
        status: reqwest::StatusCode,
        /// The service's error message, if it sent one.
        detail: Option<String>,
    },
    /// The service answered 2xx but not with a transcript.
    #[error("transcription failed: the service's answer was not understood: {0}")]
    BadAnswer(String),
    /// No result within the time limit (a command is killed).
    #[error("transcription failed: no result within {secs} s")]
    Timeout {
        /// The configured limit.
        secs: u64,
    },
    /// The command could not be started.
    #[error("transcription failed: cannot run `{program}`: {source}")]
    Spawn {
        /// The program from the template.
        program: String,
        /// Why it could not start.
        source: std::io::Error,
    },
    /// The command failed.
    #[error("transcription failed: `{program}` failed ({status}){}", suffix(stderr.as_deref()))]
    CommandFailed {
        /// The program from the template.
        program: String,
        /// Its exit status, e.g. `exit status: 1`.
        status: String,
        /// The last line it wrote to stderr (bounded).
        stderr: Option<String>,
    },
    /// The command printed more than a transcript can reasonably be.
    #[error("transcription failed: `{program}` printed more than 1 MiB")]
    TooMuchOutput {
        /// The program from the template.
        program: String,
    },
    /// The result is empty: nothing was recognized.
    #[error("transcription failed: no speech was recognized")]
    Empty,
}

fn suffix(detail: Option<&str>) -> String {
    detail.map(|d| format!(": {d}")).unwrap_or_default()
}

/// A configured transcription provider. Cheap to clone.
#[derive(Debug, Clone)]
pub enum Transcriber {
    /// An OpenAI-compatible HTTP service.
    OpenAi {
        /// HTTP client with the configured timeout.
        client: reqwest::Client,
        /// `{base_url}/audio/transcriptions`.
        endpoint: String,
        /// Bearer key, if any.
        api_key: Option<ApiKey>,
        /// Model name.
        model: String,
        /// ISO-639-1 language, if set.
        language: Option<String>,
        /// Time limit of one request.
        timeout: Duration,
    },
    /// A local program.
    Command {
        /// The split template; elements may contain [`INPUT_PLACEHOLDER`].
        argv: Vec<String>,
        /// Time limit of one run; the program is killed after it.
        timeout: Duration,
    },
}

// === impl Transcriber ===

impl Transcriber {
    /// Checks the settings and builds the provider; `Ok(None)` when transcription is off.
    pub fn from_config(cfg: &TranscribeConfig) -> Result<Option<Self>, TranscribeError> {
        let Some(provider) = cfg.provider.as_deref() else {
            return Ok(None);
        };
        let timeout = match cfg.timeout_secs {
            None => Duration::from_secs(DEFAULT_TIMEOUT_SECS),
            Some(0) => return Err(config("timeout_secs must be at least 1")),
            Some(secs) => Duration::from_secs(secs),
        };
        match provider.trim().to_ascii_lowercase().as_str() {
            "openai" => Self::openai(cfg, timeout).map(Some),
            "command" => Self::command(cfg, timeout).map(Some),
            _ => Err(config(format!(
                "provider {provider:?} is unknown; use \"openai\" or \"command\""
            ))),
        }
    }

    fn openai(cfg: &TranscribeConfig, timeout: Duration) -> Result<Self, TranscribeError> {
        let base = non_empty(cfg.base_url.as_deref()).ok_or_else(|| {
            config("provider \"openai\" needs base_url, e.g. \"https://api.openai.com/v1\"")
        })?;
        let url = reqwest::Url::parse(base)
            .map_err(|e| config(format!("base_url {base:?} is not a valid URL: {e}")))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(config(format!(
                "base_url {base:?} must start with https:// or http://"
            )));
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(config(format!(
                "base_url {base:?} must not have a query or fragment"
            )));
        }
        let api_key = match &cfg.api_key {
            Some(key) if !key.expose().trim().is_empty() => {
                let key = key.expose().trim();
                if !key.bytes().all(|b| b.is_ascii_graphic()) {
                    return Err(config(
                        "api_key contains spaces or characters that cannot be sent in a header",
                    ));
                }
                Some(ApiKey::new(key))
            }
            _ => None,
        };
        let language = non_empty(cfg.language.as_deref()).map(str::to_owned);
        if let Some(language) = &language
            && !(language.len() == 2 && language.bytes().all(|b| b.is_ascii_lowercase()))
        {
            return Err(config(format!(
                "language {language:?} must be a two-letter ISO-639-1 code such as \"en\""
            )));
        }
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .user_agent(concat!("codex-fleet/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| config(format!("cannot set up the HTTP client: {}", innermost(&e))))?;
        Ok(Self::OpenAi {
            client,
            endpoint: format!("{}/audio/transcriptions", base.trim_end_matches('/')),
            api_key,
            model: non_empty(cfg.model.as_deref())
                .unwrap_or(DEFAULT_MODEL)
                .to_owned(),
            language,
            timeout,
        })
    }

    fn command(cfg: &TranscribeConfig, timeout: Duration) -> Result<Self, TranscribeError> {
        let template = non_empty(cfg.command.as_deref()).ok_or_else(|| {
            config(
                "provider \"command\" needs command, e.g. \"whisper-cli --file {input} --output-txt -\"",
            )
        })?;
        let argv = split_template(template).map_err(|e| config(format!("command: {e}")))?;
        if argv.is_empty() {
            return Err(config("command is empty"));
        }
        if argv[0].contains(INPUT_PLACEHOLDER) {
            return Err(config(
                "command must start with a program, not with {input}",
            ));
        }
        if !argv.iter().any(|arg| arg.contains(INPUT_PLACEHOLDER)) {
            return Err(config(
                "command must contain {input} where the audio file's path goes",
            ));
        }
        Ok(Self::Command { argv, timeout })
    }

    /// The provider's name for logs: `openai` or `command`.
    pub fn provider(&self) -> &'static str {
        match self {
            Self::OpenAi { .. } => "openai",
            Self::Command { .. } => "command",
        }
    }

    /// Transcribes the audio file at `audio`; the result is trimmed and never empty.
    pub async fn transcribe(&self, audio: &Path) -> Result<String, TranscribeError> {
        let size = tokio::fs::metadata(audio)
            .await
            .map_err(TranscribeError::ReadAudio)?
            .len();
        if size == 0 {
            return Err(TranscribeError::EmptyAudio);
        }
        let started = Instant::now();
        let text = match self {
            Self::OpenAi {
                client,
                endpoint,
                api_key,
                model,
                language,
                timeout,
            } => {
                if size > MAX_UPLOAD_BYTES {
                    return Err(TranscribeError::TooLarge { size });
                }
                let request = Upload {
                    client,
                    endpoint,
                    api_key: api_key.as_ref(),
                    model,
                    language: language.as_deref(),
                    timeout: *timeout,
                };
                request.send(audio).await?
            }
            Self::Command { argv, timeout } => run_command(argv, audio, *timeout).await?,
        };
        let text = text.trim();
        if text.is_empty() {
            return Err(TranscribeError::Empty);
        }
        tracing::debug!(
            provider = self.provider(),
            bytes = size,
            chars = text.chars().count(),
            elapsed_ms = started.elapsed().as_millis(),
            "voice message transcribed"
        );
        Ok(text.to_owned())
    }
}

fn config(message: impl Into<String>) -> TranscribeError {
    TranscribeError::Config(message.into())
}

fn non_empty(value: Option<&str>) -> Option<&str> {
    value.map(str::trim).filter(|v| !v.is_empty())
}

// === openai ===

/// One upload to an OpenAI-compatible service.
struct Upload<'a> {
    client: &'a reqwest::Client,
    endpoint: &'a str,
    api_key: Option<&'a ApiKey>,
    model: &'a str,
    language: Option<&'a str>,
    timeout: Duration,
}

#[derive(Deserialize)]
struct Transcription {
    text: String,
}

impl Upload<'_> {
    async fn send(&self, audio: &Path) -> Result<String, TranscribeError> {
        let bytes = tokio::fs::read(audio)
            .await
            .map_err(TranscribeError::ReadAudio)?;
        let (file_name, mime) = upload_name(audio);
        let part = reqwest::multipart::Part::bytes(bytes)
            .file_name(file_name)
            .mime_str(mime)
            .map_err(|e| TranscribeError::BadAnswer(innermost(&e)))?;
        let mut form = reqwest::multipart::Form::new()
            .part("file", part)
            .text("model", self.model.to_owned())
            .text("response_format", "json");
        if let Some(language) = self.language {
            form = form.text("language", language.to_owned());
        }
        let mut request = self.client.post(self.endpoint).multipart(form);
        if let Some(key) = self.api_key {
            request = request.bearer_auth(key.expose());
        }
        let response = request.send().await.map_err(|e| self.failed(&e))?;
        let status = response.status();
        let body = response.bytes().await.map_err(|e| self.failed(&e))?;
        if !status.is_success() {
            let detail = error_detail(&body).map(|d| self.scrub(&d));
            return Err(TranscribeError::Http { status, detail });
        }
        match serde_json::from_slice::<Transcription>(&body) {
            Ok(answer) => Ok(answer.text),
            Err(_) => Err(TranscribeError::BadAnswer(
                "expected JSON with a \"text\" field".to_owned(),
            )),
        }
    }

    fn failed(&self, error: &reqwest::Error) -> TranscribeError {
        if error.is_timeout() {
            return TranscribeError::Timeout {
                secs: self.timeout.as_secs(),
            };
        }
        TranscribeError::Unreachable(self.scrub(&innermost(error)))
    }

    /// Removes the key from text that came from elsewhere (a server might echo it).
    fn scrub(&self, text: &str) -> String {
        match self.api_key {
            Some(key) if !key.expose().is_empty() => text.replace(key.expose(), "<redacted>"),
            _ => text.to_owned(),
        }
    }
}

/// The file name to upload and its content type. Telegram's voice files are OGG/Opus, often
/// named `*.oga` or without an extension; they are uploaded as `*.ogg`, which every
/// OpenAI-compatible service accepts.
fn upload_name(audio: &Path) -> (String, &'static str) {
    let stem = audio
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "voice".to_owned());
    let extension = audio
        .extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase());
    let mime = match extension.as_deref() {
        None | Some("ogg" | "oga" | "opus") => return (format!("{stem}.ogg"), "audio/ogg"),
        Some("mp3" | "mpga" | "mpeg") => "audio/mpeg",
        Some("m4a" | "mp4") => "audio/mp4",
        Some("wav") => "audio/wav",
        Some("webm") => "audio/webm",
        Some("flac") => "audio/flac",
        Some(_) => "application/octet-stream",
    };
    let name = audio
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| format!("{stem}.ogg"));
    (name, mime)
}

/// The message in an error answer: OpenAI's `{"error": {"message": ...}}`, the shapes other
/// compatible servers use, or a short plain-text body.
fn error_detail(body: &[u8]) -> Option<String> {
    if let Ok(json) = serde_json::from_slice::<serde_json::Value>(body) {
        let message = [
            &json["error"]["message"],
            &json["error"],
            &json["detail"],
            &json["message"],
        ]
        .into_iter()
        .find_map(serde_json::Value::as_str)?;
        return Some(bounded(message.trim())).filter(|m| !m.is_empty());
    }
    let text = String::from_utf8_lossy(body);
    let line = text.lines().map(str::trim).find(|l| !l.is_empty())?;
    // An HTML error page says nothing useful in one line.
    (!line.starts_with('<')).then(|| bounded(line))
}

/// The most specific cause of an error, e.g. `Connection refused (os error 111)`; never the URL.
fn innermost(error: &reqwest::Error) -> String {
    let mut cause: &dyn std::error::Error = error;
    while let Some(source) = cause.source() {
        cause = source;
    }
    cause.to_string()
}

/// `text` cut to [`MAX_DETAIL_CHARS`] characters.
fn bounded(text: &str) -> String {
    match text.char_indices().nth(MAX_DETAIL_CHARS) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_owned(),
    }
}

// === command ===

/// Splits a command template into arguments like a POSIX shell splits words, without any
/// expansion (`shlex`): whitespace separates; `'...'` is literal; `"..."` is literal except for
/// backslash escapes; outside quotes `\` makes the next character literal.
fn split_template(template: &str) -> Result<Vec<String>, String> {
    shlex::split(template).ok_or_else(|| "a quote (' or \") is not closed".to_owned())
}

/// `arg` with every [`INPUT_PLACEHOLDER`] replaced by `audio` (kept as an `OsString`, so any
/// path works, UTF-8 or not).
fn substitute(arg: &str, audio: &Path) -> OsString {
    let mut out = OsString::new();
    let mut pieces = arg.split(INPUT_PLACEHOLDER);
    if let Some(first) = pieces.next() {
        out.push(first);
    }
    for piece in pieces {
        out.push(audio.as_os_str());
        out.push(piece);
    }
    out
}

async fn run_command(
    argv: &[String],
    audio: &Path,
    timeout: Duration,
) -> Result<String, TranscribeError> {
    let Some((program, args)) = argv.split_first() else {
        return Err(config("command is empty"));
    };
    let mut command = tokio::process::Command::new(substitute(program, audio));
    command
        .args(args.iter().map(|arg| substitute(arg, audio)))
        // Not the center's environment: the bot token and keys stay out of the command's reach.
        .env_clear()
        .envs(shared::child_env::minimal())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = command.spawn().map_err(|source| TranscribeError::Spawn {
        program: program.clone(),
        source,
    })?;
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();
    let run = async {
        let (status, stdout, stderr) = tokio::join!(
            child.wait(),
            read_head(stdout, MAX_COMMAND_OUTPUT),
            read_tail(stderr, STDERR_TAIL),
        );
        (status, stdout, stderr)
    };
    let outcome = tokio::time::timeout(timeout, run).await;
    let Ok((status, (stdout, overflow), stderr)) = outcome else {
        // kill_on_drop would do it too; this also reaps the child before returning.
        if let Err(error) = child.kill().await {
            tracing::warn!(%error, program, "killing the transcription command failed");
        }
        return Err(TranscribeError::Timeout {
            secs: timeout.as_secs(),
        });
    };
    let status = status.map_err(|source| TranscribeError::Spawn {
        program: program.clone(),
        source,
    })?;
    if !status.success() {
        return Err(TranscribeError::CommandFailed {
            program: program.clone(),
            status: status.to_string(),
            stderr: last_line(&stderr),
        });
    }
    if overflow {
        return Err(TranscribeError::TooMuchOutput {
            program: program.clone(),
        });
    }
    Ok(String::from_utf8_lossy(&stdout).into_owned())
}

/// Reads `pipe` to the end, keeping the first `limit` bytes; the flag says whether more came.
async fn read_head(pipe: Option<impl AsyncRead + Unpin>, limit: usize) -> (Vec<u8>, bool) {
    let mut kept = Vec::new();
    let mut overflow = false;
    let Some(mut pipe) = pipe else {
        return (kept, overflow);
    };
    let mut buf = [0u8; 8192];
    loop {
        match pipe.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                let room = limit.saturating_sub(kept.len());
                kept.extend_from_slice(&buf[..n.min(room)]);
                overflow |= n > room;
            }
        }
    }
    (kept, overflow)
}

/// Reads `pipe` to the end, keeping the last `limit` bytes.
async fn read_tail(pipe: Option<impl AsyncRead + Unpin>, limit: usize) -> Vec<u8> {
    let mut kept = Vec::new();
    let Some(mut pipe) = pipe else {
        return kept;
    };
    let mut buf = [0u8; 8192];
    loop {
        match pipe.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                kept.extend_from_slice(&buf[..n]);
                if kept.len() > limit {
                    kept.drain(..kept.len() - limit);
                }
            }
        }
    }
    kept
}

/// The last non-empty line of `output`, bounded.
fn last_line(output: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(output);
    text.lines()
        .map(str::trim)
        .rfind(|l| !l.is_empty())
        .map(bounded)
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use e2e::fake_stt::FakeStt;

    use super::*;

    const KEY: &str = "sk-test-4f9a2c7e1b3d5f6a";

    fn openai(base_url: &str, key: Option<&str>) -> TranscribeConfig {
        TranscribeConfig {
            provider: Some("openai".into()),
            base_url: Some(base_url.into()),
            api_key: key.map(ApiKey::from),
            ..TranscribeConfig::default()
        }
    }

    fn command(template: &str, timeout_secs: Option<u64>) -> Transcriber {
        let cfg = TranscribeConfig {
            provider: Some("command".into()),
            command: Some(template.into()),
            timeout_secs,
            ..TranscribeConfig::default()
        };
        Transcriber::from_config(&cfg).unwrap().unwrap()
    }

    fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, bytes).unwrap();
        path
    }

    /// Writes a `#!/bin/sh` script; tests run it as `/bin/sh <script>` so executing a file that
    /// was just written can never fail with "text file busy".
    fn script(dir: &Path, body: &str) -> PathBuf {
        write(
            dir,
            "fake-whisper.sh",
            format!("#!/bin/sh\n{body}\n").as_bytes(),
        )
    }

    fn config_error(cfg: &TranscribeConfig) -> String {
        match Transcriber::from_config(cfg) {
            Err(TranscribeError::Config(message)) => message,
            other => panic!("expected a config error, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn openai_with_the_right_key_returns_the_text() {
        let stt = FakeStt::start(Some(KEY)).await.unwrap();
        stt.set_transcript("  fix the failing test please \n");
        let dir = tempfile::tempdir().unwrap();
        let audio = write(dir.path(), "voice.ogg", b"OggS not really opus");
        let cfg = TranscribeConfig {
            language: Some("en".into()),
            ..openai(&format!("{}/", stt.base_url()), Some(KEY))
        };
        let transcriber = Transcriber::from_config(&cfg).unwrap().unwrap();
        assert_eq!(transcriber.provider(), "openai");
        let text = transcriber.transcribe(&audio).await.unwrap();
        assert_eq!(text, "fix the failing test please");

        let requests = stt.requests();
        assert_eq!(requests.len(), 1);
        let request = &requests[0];
        assert_eq!(request.model, DEFAULT_MODEL);
        assert_eq!(request.file_name, "voice.ogg");
        assert_eq!(request.content_type.as_deref(), Some("audio/ogg"));
        assert_eq!(request.bytes, 20);
        assert_eq!(request.language.as_deref(), Some("en"));
        assert_eq!(request.response_format.as_deref(), Some("json"));

        // Telegram's `.oga` (and extension-less) voice files are uploaded as `.ogg`.
        let oga = write(dir.path(), "file_12.oga", b"OggS");
        transcriber.transcribe(&oga).await.unwrap();
        let bare = write(dir.path(), "file_13", b"OggS");
        transcriber.transcribe(&bare).await.unwrap();
        let names: Vec<_> = stt.requests().into_iter().map(|r| r.file_name).collect();
        assert_eq!(names, ["voice.ogg", "file_12.ogg", "file_13.ogg"]);
    }

    #[tokio::test]
    async fn openai_wrong_or_missing_key_is_a_readable_401_without_the_key() {
        let stt = FakeStt::start(Some(KEY)).await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        let audio = write(dir.path(), "voice.ogg", b"OggS");
        let wrong = "sk-wrong-99887766554433";
        let cfg = openai(&stt.base_url(), Some(wrong));
        let transcriber = Transcriber::from_config(&cfg).unwrap().unwrap();
        let err = transcriber.transcribe(&audio).await.unwrap_err();
        let message = err.to_string();
        assert!(
            message.starts_with(
                "transcription failed: the service answered 401 Unauthorized: Incorrect API key"
            ),
            "{message}"
        );
        assert!(matches!(err, TranscribeError::Http { status, .. } if status.as_u16() == 401));
        for shown in [
            message,
            format!("{err:?}"),
            format!("{transcriber:?}"),
            format!("{cfg:?}"),
        ] {
            assert!(!shown.contains(wrong), "key leaked: {shown}");
        }

        let anonymous = Transcriber::from_config(&openai(&stt.base_url(), None))
            .unwrap()
            .unwrap();
        let err = anonymous.transcribe(&audio).await.unwrap_err().to_string();
        assert!(
            err.contains("401 Unauthorized: You didn't provide an API key"),
            "{err}"
        );
        assert!(stt.requests().is_empty());
    }

    #[tokio::test]
    async fn openai_refusals_and_failures_are_readable() {
        let stt = FakeStt::start(None).await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        let audio = write(dir.path(), "voice.ogg", b"OggS");

        // An empty file is refused before anything is sent.
        let transcriber = Transcriber::from_config(&openai(&stt.base_url(), None))
            .unwrap()
            .unwrap();
        let empty = write(dir.path(), "empty.ogg", b"");
        let err = transcriber.transcribe(&empty).await.unwrap_err();
        assert!(matches!(err, TranscribeError::EmptyAudio), "{err:?}");
        assert_eq!(
            err.to_string(),
            "transcription failed: the audio file is empty"
        );
        let missing = transcriber
            .transcribe(&dir.path().join("gone.ogg"))
            .await
            .unwrap_err();
        assert!(
            matches!(missing, TranscribeError::ReadAudio(_)),
            "{missing:?}"
        );
        assert!(stt.rejections().is_empty());

        let cfg = TranscribeConfig {
            model: Some("whisper-9".into()),
            ..openai(&stt.base_url(), None)
        };
        let unknown_model = Transcriber::from_config(&cfg).unwrap().unwrap();
        let err = unknown_model
            .transcribe(&audio)
            .await
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "transcription failed: the service answered 404 Not Found: The model `whisper-9` \
             does not exist or you do not have access to it."
        );

        stt.set_transcript("   ");
        let err = transcriber.transcribe(&audio).await.unwrap_err();
        assert!(matches!(err, TranscribeError::Empty), "{err:?}");
        stt.set_failure(Some((503, "The engine is currently overloaded")));
        let err = transcriber
            .transcribe(&audio)
            .await
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "transcription failed: the service answered 503 Service Unavailable: The engine is \
             currently overloaded"
        );
        stt.set_failure(None);

        stt.set_delay(Duration::from_secs(5));
        let cfg = TranscribeConfig {
            timeout_secs: Some(1),
            ..openai(&stt.base_url(), None)
        };
        let impatient = Transcriber::from_config(&cfg).unwrap().unwrap();
        let err = impatient.transcribe(&audio).await.unwrap_err();
        assert_eq!(
            err.to_string(),
            "transcription failed: no result within 1 s"
        );
        drop(stt);

        let closed = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            listener.local_addr().unwrap()
        };
        let transcriber = Transcriber::from_config(&openai(&format!("http://{closed}/v1"), None))
            .unwrap()
            .unwrap();
        let err = transcriber.transcribe(&audio).await.unwrap_err();
        assert!(matches!(err, TranscribeError::Unreachable(_)), "{err:?}");
        assert!(
            err.to_string()
                .starts_with("transcription failed: cannot reach the service: ")
        );
    }

    #[test]
    fn error_details_from_various_servers() {
        let openai = br#"{"error":{"message":"invalid key","type":"x"}}"#;
        assert_eq!(error_detail(openai).as_deref(), Some("invalid key"));
        assert_eq!(
            error_detail(br#"{"detail":"Model not loaded"}"#).as_deref(),
            Some("Model not loaded")
        );
        assert_eq!(
            error_detail(b"upstream busy\n").as_deref(),
            Some("upstream busy")
        );
        assert_eq!(error_detail(b"<html><body>502</body></html>"), None);
        assert_eq!(error_detail(b"{}"), None);
        let long = "x".repeat(500);
        let detail = error_detail(long.as_bytes()).unwrap();
        assert_eq!(detail.chars().count(), MAX_DETAIL_CHARS + 1);
    }

    #[tokio::test]
    async fn command_gets_the_path_literally_as_one_argument() {
        let dir = tempfile::tempdir().unwrap();
        let script = script(
            dir.path(),
            r#"printf 'args=%s\n' "$#"
printf 'name=%s\n' "$2"
printf 'size=%s\n' "$(wc -c < "$2" | tr -d ' ')"
printf 'flag=%s\n' "$3""#,
        );
        let nasty = dir
            .path()
            .join(r#"it's a "voice" $(touch pwned) `id`; rm -rf x"#);
        std::fs::create_dir(&nasty).unwrap();
        let audio = write(&nasty, "voice $HOME.ogg", b"12345");
        let transcriber = command(
            &format!(
                r#"/bin/sh '{}' --file {{input}} "--x={{input}}!""#,
                script.display()
            ),
            None,
        );
        assert_eq!(transcriber.provider(), "command");
        let text = transcriber.transcribe(&audio).await.unwrap();
        let path = audio.display();
        assert_eq!(
            text,
            format!("args=3\nname={path}\nsize=5\nflag=--x={path}!")
        );
        assert!(!dir.path().join("pwned").exists());
        assert!(!std::env::current_dir().unwrap().join("pwned").exists());
    }

    #[tokio::test]
    async fn command_failures_are_readable() {
        let dir = tempfile::tempdir().unwrap();
        let audio = write(dir.path(), "voice.ogg", b"OggS");

        let failing = script(
            dir.path(),
            &format!(
                "echo 'loading model' >&2\necho 'error: {} bad' >&2\necho '' >&2\nexit 3",
                "y".repeat(300)
            ),
        );
        let err = command(&format!("/bin/sh {} {{input}}", failing.display()), None)
            .transcribe(&audio)
            .await
            .unwrap_err();
        let TranscribeError::CommandFailed { stderr, .. } = &err else {
            panic!("{err:?}");
        };
        let stderr = stderr.as_deref().unwrap();
        assert!(stderr.starts_with("error: yyy"), "{stderr}");
        assert_eq!(stderr.chars().count(), MAX_DETAIL_CHARS + 1);
        assert!(
            err.to_string()
                .starts_with("transcription failed: `/bin/sh` failed (exit status: 3): error: yyy"),
            "{err}"
        );

        let silent = script(dir.path(), "echo '   '");
        let err = command(&format!("/bin/sh {} {{input}}", silent.display()), None)
            .transcribe(&audio)
            .await
            .unwrap_err();
        assert!(matches!(err, TranscribeError::Empty), "{err:?}");

        let err = command("/nonexistent/whisper-cli {input}", None)
            .transcribe(&audio)
            .await
            .unwrap_err();
        assert!(
            err.to_string()
                .starts_with("transcription failed: cannot run `/nonexistent/whisper-cli`: "),
            "{err}"
        );
    }

    #[tokio::test]
    async fn a_command_past_its_time_limit_is_killed() {
        let dir = tempfile::tempdir().unwrap();
        let audio = write(dir.path(), "voice.ogg", b"OggS");
        let pid_file = dir.path().join("pid");
        let sleeper = script(
            dir.path(),
            &format!("echo $$ > '{}'\nexec sleep 30", pid_file.display()),
        );
        let started = Instant::now();
        let err = command(&format!("/bin/sh {} {{input}}", sleeper.display()), Some(1))
            .transcribe(&audio)
            .await
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "transcription failed: no result within 1 s"
        );
        assert!(started.elapsed() < Duration::from_secs(10));
        let pid = std::fs::read_to_string(&pid_file).unwrap();
        // Killed and reaped: the process is gone, not even a zombie.
        assert!(!Path::new(&format!("/proc/{}", pid.trim())).exists());
    }

    #[test]
    fn templates_split_like_shell_words_without_expansion() {
        let split = |t: &str| split_template(t).unwrap();
        assert_eq!(
            split("whisper-cli --file {input}  -otxt"),
            ["whisper-cli", "--file", "{input}", "-otxt"]
        );
        assert_eq!(
            split(r#"'my prog' "a b" c\ d '' $(x)"#),
            ["my prog", "a b", "c d", "", "$(x)"]
        );
        assert_eq!(
            split(r#""say \"hi\" \\ \n" it's'"#),
            [r#"say "hi" \ \n"#, "its"]
        );
        assert_eq!(split("--x='{input}'.wav"), ["--x={input}.wav"]);
        assert!(split("  ").is_empty());
        assert!(split_template("a 'b").is_err());
        assert!(split_template(r#"a "b\""#).is_err());
        assert_eq!(
            substitute("--in={input}:{input}", Path::new("/a b")),
            OsString::from("--in=/a b:/a b")
        );
    }

    #[test]
    fn config_is_validated() {
        assert!(
            Transcriber::from_config(&TranscribeConfig::default())
                .unwrap()
                .is_none()
        );
        let with = |provider: &str| TranscribeConfig {
            provider: Some(provider.into()),
            ..TranscribeConfig::default()
        };
        assert_eq!(
            config_error(&with("whisper")),
            "provider \"whisper\" is unknown; use \"openai\" or \"command\""
        );
        assert!(config_error(&with("openai")).contains("needs base_url"));
        assert!(config_error(&with("command")).contains("needs command"));
        let cmd = |template: &str| TranscribeConfig {
            command: Some(template.into()),
            ..with("command")
        };
        assert_eq!(
            config_error(&cmd("whisper-cli --file voice.ogg")),
            "command must contain {input} where the audio file's path goes"
        );
        assert!(config_error(&cmd("whisper-cli '{input}")).contains("quote"));
        assert!(config_error(&cmd("whisper-cli \"{input}")).contains("quote"));
        assert!(config_error(&cmd("{input} x")).contains("must start with a program"));
        assert!(config_error(&cmd("''")).contains("must"));
        let timeout0 = TranscribeConfig {
            timeout_secs: Some(0),
            ..cmd("w {input}")
        };
        assert_eq!(config_error(&timeout0), "timeout_secs must be at least 1");
        assert!(config_error(&openai("ftp://example.com/v1", None)).contains("https://"));
        assert!(config_error(&openai("not a url", None)).contains("not a valid URL"));
        let bad_language = TranscribeConfig {
            language: Some("English".into()),
            ..openai("https://api.openai.com/v1", None)
        };
        assert!(config_error(&bad_language).contains("ISO-639-1"));
        let bad_key = openai("https://api.openai.com/v1", Some("sk-a\nb"));
        let message = config_error(&bad_key);
        assert!(
            message.contains("api_key") && !message.contains("sk-a"),
            "{message}"
        );

        let Transcriber::OpenAi {
            endpoint,
            model,
            api_key,
            timeout,
            ..
        } = Transcriber::from_config(&TranscribeConfig {
            provider: Some(" OpenAI ".into()),
            model: Some("gpt-4o-transcribe".into()),
            ..openai("https://api.openai.com/v1/", Some(""))
        })
        .unwrap()
        .unwrap()
        else {
            panic!("expected the openai provider");
        };
        assert_eq!(endpoint, "https://api.openai.com/v1/audio/transcriptions");
        assert_eq!(model, "gpt-4o-transcribe");
        assert_eq!(api_key, None);
        assert_eq!(timeout, Duration::from_secs(DEFAULT_TIMEOUT_SECS));
    }

    #[test]
    fn config_from_toml_is_strict_and_hides_the_key() {
        let cfg: TranscribeConfig = toml::from_str(&format!(
            "provider = \"openai\"\nbase_url = \"https://api.openai.com/v1\"\napi_key = \"{KEY}\"\n\
             model = \"whisper-1\"\nlanguage = \"de\"\ntimeout_secs = 30\n"
        ))
        .unwrap();
        assert_eq!(cfg.api_key.as_ref().map(ApiKey::expose), Some(KEY));
        assert_eq!(cfg.timeout_secs, Some(30));
        let shown = format!("{cfg:?} {:?}", Transcriber::from_config(&cfg).unwrap());
        assert!(!shown.contains(KEY), "{shown}");
        assert!(shown.contains("<redacted>"));

        let err = toml::from_str::<TranscribeConfig>("provider = \"openai\"\nbaseurl = \"x\"\n")
            .unwrap_err();
        assert!(err.to_string().contains("unknown field `baseurl`"), "{err}");
    }
}
