//! Model calls the fake model refuses the way OpenAI's API does, chosen by the prompt:
//!
//! | user text | answer |
//! |---|---|
//! | `limit: X` | `429` with `{"error": {"type": "usage_limit_reached", "resets_at": now + 90 min, …}}`: Codex reports "You've hit your usage limit … try again at <local time>" |
//! | `unauthorized: X` | `401` with an `invalid_api_key` error: Codex reports "unexpected status 401 Unauthorized: …" |
//!
//! What Codex 0.169.0 and 0.171.0 write to the rollout for them (both the same): a `task_complete`
//! with `last_agent_message: null` and `error: {"message": …, "codex_error_info":
//! "usage_limit_exceeded"}` for the first, `{"http_connection_failed": {"http_status_code": 401}}`
//! for the second. Title requests (json_schema) are never refused.

use axum::http::StatusCode;
use serde_json::{Value, json};

/// Seconds from now until the usage limit of a `limit:` answer resets.
pub const LIMIT_RESETS_IN_SECS: i64 = 90 * 60;

/// A refused model call: the status and the JSON body.
#[derive(Debug, Clone, PartialEq)]
pub struct Failure {
    /// HTTP status (429 or 401).
    pub status: StatusCode,
    /// The error body.
    pub body: Value,
}

/// The refusal for `request`, if its newest prompt asks for one.
pub fn failure_for(request: &Value, now_unix_s: i64) -> Option<Failure> {
    if super::script::json_schema_requested(request) {
        return None;
    }
    let input = request.get("input")?.as_array()?;
    let prompt = super::script::last_user_text(input)?;
    let (command, _) = prompt.split_once(':')?;
    match command.trim() {
        "limit" => Some(Failure {
            status: StatusCode::TOO_MANY_REQUESTS,
            body: json!({"error": {
                "type": "usage_limit_reached",
                "message": "The usage limit has been reached",
                "plan_type": "plus",
                "resets_at": now_unix_s + LIMIT_RESETS_IN_SECS,
                "resets_in_seconds": LIMIT_RESETS_IN_SECS,
            }}),
        }),
        "unauthorized" => Some(Failure {
            status: StatusCode::UNAUTHORIZED,
            body: json!({"error": {
                "type": "invalid_request_error",
                "code": "invalid_api_key",
                "message": "Incorrect API key provided",
            }}),
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(text: &str) -> Value {
        json!({"input": [{"type": "message", "role": "user",
            "content": [{"type": "input_text", "text": text}]}]})
    }

    #[test]
    fn prompts_choose_the_refusal() {
        let limit = failure_for(&request("limit: now"), 1000).unwrap();
        assert_eq!(limit.status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(limit.body["error"]["type"], "usage_limit_reached");
        assert_eq!(
            limit.body["error"]["resets_at"],
            1000 + LIMIT_RESETS_IN_SECS
        );
        let auth = failure_for(&request("unauthorized: x"), 0).unwrap();
        assert_eq!(auth.status, StatusCode::UNAUTHORIZED);
        assert_eq!(failure_for(&request("echo: limit: x"), 0), None);
        assert_eq!(failure_for(&request("hello"), 0), None);
    }
}
