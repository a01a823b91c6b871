//! Method parameters and errors in the Bot API's own terms.
//!
//! The real server turns every parameter into a string, whatever the transport (query string,
//! form, JSON body or multipart), and re-parses JSON-typed ones (`reply_markup`, `entities`, ...)
//! from that string. [`Params`] keeps the values as they came and coerces the same way, so a
//! client that sends `"chat_id": "-100123"` or `reply_markup` as a JSON string is accepted exactly
//! when Telegram would accept it. [`ApiError`] renders Telegram's error envelope.

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use serde_json::{Map, Value, json};

/// An error answer: HTTP status, `error_code` and `description`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP status and `error_code`.
    pub code: u16,
    /// Telegram's `description`, e.g. `Bad Request: chat not found`.
    pub description: String,
    /// `parameters.retry_after` of a 429.
    pub retry_after: Option<u32>,
}

impl ApiError {
    /// A 400 whose description is `Bad Request: {what}`.
    pub fn bad(what: impl std::fmt::Display) -> Self {
        Self {
            code: 400,
            description: format!("Bad Request: {what}"),
            retry_after: None,
        }
    }

    /// A 429 asking the client to wait `secs` seconds.
    pub fn retry_after(secs: u32) -> Self {
        Self {
            code: 429,
            description: format!("Too Many Requests: retry after {secs}"),
            retry_after: Some(secs),
        }
    }

    /// The error a long poll gets when a newer getUpdates replaces it.
    pub fn conflict() -> Self {
        Self {
            code: 409,
            description: "Conflict: terminated by other getUpdates request; make sure that only one bot instance is running".to_owned(),
            retry_after: None,
        }
    }

    pub(super) fn status(code: u16, description: &str) -> Self {
        Self {
            code,
            description: description.to_owned(),
            retry_after: None,
        }
    }

    /// Telegram's JSON body for this error.
    pub fn to_json(&self) -> Value {
        let mut v =
            json!({ "ok": false, "error_code": self.code, "description": self.description });
        if let Some(secs) = self.retry_after {
            v["parameters"] = json!({ "retry_after": secs });
        }
        v
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.code, self.description)
    }
}

impl std::error::Error for ApiError {}

/// A file part of a multipart request.
#[derive(Debug, Clone)]
pub(super) struct Upload {
    pub(super) file_name: Option<String>,
    pub(super) content_type: Option<String>,
    pub(super) bytes: Bytes,
}

/// What an `InputFile` parameter named.
pub(super) enum FileRef<'a> {
    /// Bytes uploaded with this request.
    Upload(&'a Upload),
    /// An existing `file_id` (or a URL, which the fake cannot fetch).
    Id(String),
}

/// The parameters of one call.
#[derive(Debug, Default)]
pub(super) struct Params {
    values: Map<String, Value>,
    files: BTreeMap<String, Upload>,
}

type Res<T> = Result<T, ApiError>;

impl Params {
    pub(super) fn set(&mut self, name: String, value: Value) {
        self.values.insert(name, value);
    }

    pub(super) fn add_file(&mut self, name: String, upload: Upload) {
        self.files.insert(name, upload);
    }

    /// The parameters as JSON, uploads summarised, for the call log.
    pub(super) fn to_log_json(&self) -> Value {
        let mut v = self.values.clone();
        for (name, up) in &self.files {
            v.insert(
                name.clone(),
                json!({ "upload": { "file_name": up.file_name, "size": up.bytes.len() } }),
            );
        }
        Value::Object(v)
    }

    /// Rejects parameters the method does not have. Telegram ignores them, but a misspelt
    /// parameter (`message_thread` for `message_thread_id`) silently changes behaviour there, so
    /// the fake refuses it with a description that names itself.
    pub(super) fn check_known(&self, method: &str, known: &[&str]) -> Res<()> {
        let attached: BTreeSet<String> = self
            .values
            .values()
            .filter_map(|v| v.as_str()?.strip_prefix("attach://").map(str::to_owned))
            .collect();
        let unknown = self
            .values
            .keys()
            .chain(self.files.keys())
            .find(|k| !known.contains(&k.as_str()) && !attached.contains(*k));
        match unknown {
            Some(k) => Err(ApiError::bad(format!(
                "fake_telegram: {method} has no parameter \"{k}\""
            ))),
            None => Ok(()),
        }
    }

    /// The raw string form, as the real server sees it; `None` when absent or empty.
    pub(super) fn str(&self, name: &str) -> Option<String> {
        let s = match self.values.get(name)? {
            Value::Null => return None,
            Value::String(s) => s.clone(),
            Value::Bool(b) => b.to_string(),
            Value::Number(n) => n.to_string(),
            v @ (Value::Array(_) | Value::Object(_)) => v.to_string(),
        };
        (!s.is_empty()).then_some(s)
    }

    pub(super) fn has(&self, name: &str) -> bool {
        self.str(name).is_some() || self.files.contains_key(name)
    }

    /// An integer; absent → `None`; not a number → `Bad Request: invalid {name} specified`.
    pub(super) fn int(&self, name: &str) -> Res<Option<i64>> {
        let Some(s) = self.str(name) else {
            return Ok(None);
        };
        s.trim()
            .parse::<i64>()
            .map(Some)
            .map_err(|_| ApiError::bad(format!("invalid {name} specified")))
    }

    pub(super) fn bool(&self, name: &str) -> bool {
        matches!(self.str(name).as_deref(), Some("true" | "1" | "True"))
    }

    /// A JSON-typed parameter, given as JSON or as a string holding JSON.
    pub(super) fn json(&self, name: &str, what: &str) -> Res<Option<Value>> {
        match self.values.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if s.is_empty() => Ok(None),
            Some(Value::String(s)) => serde_json::from_str(s)
                .map(Some)
                .map_err(|_| ApiError::bad(format!("can't parse {what} JSON object"))),
            Some(v) => Ok(Some(v.clone())),
        }
    }

    /// `chat_id`: required, an integer (usernames are not modelled, so `@name` is "not found").
    pub(super) fn chat_id(&self) -> Res<i64> {
        let Some(s) = self.str("chat_id") else {
            return Err(ApiError::bad("chat_id is empty"));
        };
        s.trim()
            .parse()
            .map_err(|_| ApiError::bad("chat not found"))
    }

    /// `message_thread_id`: absent, empty or negative mean "none", as in the real server.
    pub(super) fn thread_id(&self) -> Res<Option<i64>> {
        Ok(self.int("message_thread_id")?.filter(|&t| t > 0))
    }

    /// `message_id`, required for methods that name a message.
    pub(super) fn message_id(&self) -> Res<i64> {
        match self.int("message_id")? {
            Some(id) if id > 0 => Ok(id),
            _ => Err(ApiError::bad("message identifier is not specified")),
        }
    }

    /// What a string inside a JSON parameter (an `InputMedia`'s `media` or `thumbnail`) names:
    /// `attach://<part>` is that multipart part (`None` when it is missing, as the real server
    /// treats it), anything else a file id.
    pub(super) fn reference(&self, s: &str) -> Option<FileRef<'_>> {
        match s.strip_prefix("attach://") {
            Some(part) => self.files.get(part).map(FileRef::Upload),
            None if s.is_empty() => None,
            None => Some(FileRef::Id(s.to_owned())),
        }
    }

    /// An uploaded file only (thumbnails cannot be given by id): the part `name`, or the part a
    /// `name = attach://<part>` value points to.
    pub(super) fn upload(&self, name: &str) -> Option<&Upload> {
        self.files.get(name).or_else(|| {
            let part = self.str(name)?;
            self.files.get(part.strip_prefix("attach://")?)
        })
    }

    /// An `InputFile`: an upload (directly under `name` or via `attach://`) or a file id.
    pub(super) fn file(&self, name: &str) -> Res<Option<FileRef<'_>>> {
        if let Some(up) = self.files.get(name) {
            return Ok(Some(FileRef::Upload(up)));
        }
        let Some(s) = self.str(name) else {
            return Ok(None);
        };
        if let Some(part) = s.strip_prefix("attach://") {
            return self
                .files
                .get(part)
                .map(|up| Some(FileRef::Upload(up)))
                .ok_or_else(|| ApiError::bad(format!("file {part} not found in the request")));
        }
        Ok(Some(FileRef::Id(s)))
    }
}
