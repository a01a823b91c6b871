//! The fake model's script: picks the reply to one Responses API request body.
//!
//! Pure functions over the request JSON; `fake_model` turns the chosen [`Reply`] into SSE events.
//! The reply depends on the last input item: after a `function_call_output` the script continues
//! the turn (final answer), otherwise the text of the last user message selects a command:
//!
//! | user text | reply |
//! |---|---|
//! | `echo: X` | final message `X` |
//! | `run: CMD` | `exec_command` call `{"cmd": CMD, "yield_time_ms": 1000}`, then `ran CMD` |
//! | `hold: CMD` | like `run:`, but `ran CMD` waits until the test calls `FakeModel::release_held` (see [`held`]) |
//! | `plain: CMD` | `exec_command` call `{"cmd": CMD, "login": false, "yield_time_ms": 30000}` (no login shell, waits for the end), then `ran CMD` |
//! | `approve: CMD` | `run:`'s call with `sandbox_permissions: "require_escalated"` (no login shell, waits for the end), then `ran CMD` |
//! | `slow: N` | `Done after N seconds.`, delivered after N seconds |
//! | `long: N` | a markdown answer of exactly N characters |
//! | `commentary: X` | commentary message `X` + `exec_command` `echo X`, then `Done: X` |
//! | anything else | `You said: <text>` |

use std::time::Duration;

use serde_json::{Map, Value, json};

/// Message phase as Codex 0.169 understands it (`MessagePhase` in its protocol).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Progress text shown while the turn goes on.
    Commentary,
    /// The answer that ends the turn.
    FinalAnswer,
}

impl Phase {
    /// The wire spelling (`commentary` / `final_answer`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Commentary => "commentary",
            Self::FinalAnswer => "final_answer",
        }
    }
}

/// One output item of a scripted response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    /// An assistant message, streamed as `output_text` deltas.
    Message {
        /// Full text.
        text: String,
        /// `phase` field of the message item (`None` leaves it out).
        phase: Option<Phase>,
    },
    /// A `function_call` to Codex's `exec_command` tool.
    ExecCommand {
        /// Shell command line.
        cmd: String,
        /// Ask for `require_escalated` sandbox permissions, which makes the TUI prompt.
        escalate: bool,
    },
    /// A `function_call` to Codex's `exec_command` tool without a login shell, waiting for the
    /// command to end (`codex exec` ends with its turn and takes running commands with it).
    PlainCommand {
        /// Shell command line.
        cmd: String,
    },
    /// A `function_call` to Codex's `view_image` tool.
    ViewImage {
        /// The image's path.
        path: String,
    },
}

/// What the fake model answers to one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// Output items, in order.
    pub items: Vec<Item>,
    /// How long the stream stays open (sending `response.in_progress` once a second) before
    /// the items are sent.
    pub delay: Duration,
}

impl Reply {
    fn items(items: Vec<Item>) -> Self {
        Self {
            items,
            delay: Duration::ZERO,
        }
    }

    fn final_answer(text: impl Into<String>) -> Self {
        Self::items(vec![Item::Message {
            text: text.into(),
            phase: Some(Phase::FinalAnswer),
        }])
    }
}

/// Chooses the reply for a `POST /responses` body.
pub fn reply_for(body: &Value) -> Reply {
    if let Some(schema) = json_schema_format(body) {
        return Reply::items(vec![Item::Message {
            text: title_json(schema).to_string(),
            phase: None,
        }]);
    }
    let input = body
        .get("input")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let prompt = last_user_text(input).unwrap_or_default();
    let after_tool = input
        .last()
        .and_then(|item| item.get("type"))
        .and_then(Value::as_str)
        == Some("function_call_output");
    if after_tool {
        return continue_after_tool(&prompt, input);
    }
    first_reply(&prompt)
}

fn first_reply(prompt: &str) -> Reply {
    let (command, arg) = match prompt.split_once(':') {
        Some((command, arg)) => (command.trim(), arg.trim()),
        None => ("", prompt.trim()),
    };
    match command {
        "echo" => Reply::final_answer(arg),
        "run" | "hold" => Reply::items(vec![Item::ExecCommand {
            cmd: arg.to_owned(),
            escalate: false,
        }]),
        "plain" => Reply::items(vec![Item::PlainCommand {
            cmd: arg.to_owned(),
        }]),
        "approve" => Reply::items(vec![Item::ExecCommand {
            cmd: arg.to_owned(),
            escalate: true,
        }]),
        "slow" => {
            let secs = arg.parse::<u64>().unwrap_or(5);
            Reply {
                delay: Duration::from_secs(secs),
                ..Reply::final_answer(format!("Done after {secs} seconds."))
            }
        }
        "view" => Reply::items(vec![Item::ViewImage {
            path: arg.to_owned(),
        }]),
        "long" => Reply::final_answer(long_text(arg.parse::<usize>().unwrap_or(1000))),
        "commentary" => Reply::items(vec![
            Item::Message {
                text: arg.to_owned(),
                phase: Some(Phase::Commentary),
            },
            Item::ExecCommand {
                cmd: format!("echo {}", shell_quote(arg)),
                escalate: false,
            },
        ]),
        _ => Reply::final_answer(format!("You said: {}", prompt.trim())),
    }
}

fn continue_after_tool(prompt: &str, input: &[Value]) -> Reply {
    let (command, arg) = prompt.split_once(':').unwrap_or(("", prompt));
    if command.trim() == "commentary" {
        return Reply::final_answer(format!("Done: {}", arg.trim()));
    }
    let cmd = last_exec_cmd(input).unwrap_or_else(|| arg.trim().to_owned());
    Reply::final_answer(format!("ran {cmd}"))
}

/// Whether the reply to `body` waits for the test's release: the answer that ends a `hold:`
/// turn. A test that must see something while a turn runs (a live preview of it, say) holds
/// the turn open until it saw it, instead of racing a turn of some fixed length.
pub fn held(body: &Value) -> bool {
    let Some(input) = body.get("input").and_then(Value::as_array) else {
        return false;
    };
    let after_tool = input
        .last()
        .and_then(|item| item.get("type"))
        .and_then(Value::as_str)
        == Some("function_call_output");
    let prompt = last_user_text(input).unwrap_or_default();
    after_tool
        && !json_schema_requested(body)
        && prompt
            .split_once(':')
            .is_some_and(|(command, _)| command.trim() == "hold")
}

/// The `cmd` argument of the last `exec_command` call in the input.
fn last_exec_cmd(input: &[Value]) -> Option<String> {
    input
        .iter()
        .rev()
        .find(|item| item.get("type").and_then(Value::as_str) == Some("function_call"))
        .and_then(|call| call.get("arguments")?.as_str())
        .and_then(|args| serde_json::from_str::<Value>(args).ok())
        .and_then(|args| Some(args.get("cmd")?.as_str()?.to_owned()))
}

/// Text of the last `user` message that a person typed (harness messages such as
/// `<environment_context>` or `<turn_aborted>` are skipped).
pub fn last_user_text(input: &[Value]) -> Option<String> {
    input
        .iter()
        .rev()
        .filter(|item| {
            item.get("type").and_then(Value::as_str) == Some("message")
                && item.get("role").and_then(Value::as_str) == Some("user")
        })
        .map(message_text)
        .find(|text| !is_harness_text(text))
}

/// Texts of every user message a person typed, oldest first (harness messages skipped).
pub fn user_texts(input: &[Value]) -> Vec<String> {
    input
        .iter()
        .filter(|item| {
            item.get("type").and_then(Value::as_str) == Some("message")
                && item.get("role").and_then(Value::as_str) == Some("user")
        })
        .map(message_text)
        .filter(|text| !is_harness_text(text))
        .collect()
}

fn is_harness_text(text: &str) -> bool {
    let text = text.trim_start();
    text.starts_with('<') || text.starts_with("# AGENTS.md")
}

fn message_text(item: &Value) -> String {
    let Some(content) = item.get("content").and_then(Value::as_array) else {
        return String::new();
    };
    content
        .iter()
        .filter_map(|part| part.get("text").and_then(Value::as_str))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Whether `body` asks for structured output (Codex's thread-title request).
pub fn json_schema_requested(body: &Value) -> bool {
    json_schema_format(body).is_some()
}

/// The JSON schema of `text.format` when the request asks for structured output.
fn json_schema_format(body: &Value) -> Option<&Value> {
    let format = body.get("text")?.get("format")?;
    if format.get("type").and_then(Value::as_str) != Some("json_schema") {
        return None;
    }
    Some(format.get("schema").unwrap_or(&Value::Null))
}

/// A value that fits a (simple) JSON schema: objects get every property, strings a title.
pub fn title_json(schema: &Value) -> Value {
    let kind = schema.get("type");
    let is = |name: &str| match kind {
        Some(Value::String(kind)) => kind == name,
        Some(Value::Array(kinds)) => kinds.iter().any(|kind| kind == name),
        _ => false,
    };
    if let Some(values) = schema.get("enum").and_then(Value::as_array)
        && let Some(first) = values.first()
    {
        return first.clone();
    }
    if is("object") || schema.get("properties").is_some() {
        let mut object = Map::new();
        if let Some(properties) = schema.get("properties").and_then(Value::as_object) {
            for (name, property) in properties {
                object.insert(name.clone(), title_json(property));
            }
        }
        return Value::Object(object);
    }
    if is("string") {
        return json!("Fake session title");
    }
    if is("array") {
        return json!([]);
    }
    if is("integer") || is("number") {
        return json!(0);
    }
    if is("boolean") {
        return json!(false);
    }
    Value::Null
}

/// Markdown of exactly `len` characters (ASCII): paragraphs and a fenced code block.
pub fn long_text(len: usize) -> String {
    const PARAGRAPH: &str = "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do \
eiusmod tempor incididunt ut labore et dolore magna aliqua. Ut enim ad minim veniam, quis \
nostrud exercitation ullamco laboris nisi ut aliquip ex ea commodo consequat.";
    const CODE: &str = "```rust\nfn main() {\n    println!(\"hello from the fake model\");\n}\n```";
    let mut text = String::from("# Long answer\n\n");
    let mut block = 0usize;
    while text.len() < len {
        block += 1;
        let piece = if block % 3 == 2 {
            CODE.to_owned()
        } else {
            format!("Paragraph {block}. {PARAGRAPH}")
        };
        text.push_str(&piece);
        text.push_str("\n\n");
    }
    text.truncate(len);
    text
}

fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(text: &str) -> Value {
        json!({"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]})
    }

    fn body(input: &[Value]) -> Value {
        json!({"model": "fake-model", "stream": true, "input": input})
    }

    fn final_text(reply: &Reply) -> &str {
        match reply.items.as_slice() {
            [Item::Message { text, .. }] => text,
            other => panic!("not a single message: {other:?}"),
        }
    }

    #[test]
    fn echo_and_default_answers() {
        let env = user("<environment_context>\n</environment_context>");
        assert_eq!(
            final_text(&reply_for(&body(&[env.clone(), user("echo: hi there")]))),
            "hi there"
        );
        assert_eq!(
            final_text(&reply_for(&body(&[user("hello")]))),
            "You said: hello"
        );
        // A harness message after the prompt does not hide the prompt.
        assert_eq!(final_text(&reply_for(&body(&[user("echo: x"), env]))), "x");
        assert_eq!(final_text(&reply_for(&body(&[]))), "You said: ");
    }

    #[test]
    fn plain_calls_exec_command_without_a_login_shell() {
        let first = reply_for(&body(&[user("plain: echo a > b.csv")]));
        assert_eq!(
            first.items,
            vec![Item::PlainCommand {
                cmd: "echo a > b.csv".into()
            }]
        );
        let steps = crate::fake_model::sse::steps(&first, 1);
        let args = steps.iter().find_map(|s| match s {
            crate::fake_model::sse::Step::Event(name, data)
                if *name == "response.output_item.done" =>
            {
                data["item"]["arguments"].as_str().map(str::to_owned)
            }
            _ => None,
        });
        let args: Value = serde_json::from_str(&args.unwrap()).unwrap();
        assert_eq!(args["login"], false);
        assert_eq!(args["yield_time_ms"], 30_000);
    }

    #[test]
    fn run_calls_exec_command_then_answers() {
        let first = reply_for(&body(&[user("run: ls -la")]));
        assert_eq!(
            first.items,
            vec![Item::ExecCommand {
                cmd: "ls -la".into(),
                escalate: false
            }]
        );
        let call = json!({"type": "function_call", "name": "exec_command", "call_id": "c1",
            "arguments": "{\"cmd\":\"ls -la\",\"yield_time_ms\":1000}"});
        let output = json!({"type": "function_call_output", "call_id": "c1", "output": "ok"});
        let second = reply_for(&body(&[user("run: ls -la"), call, output]));
        assert_eq!(final_text(&second), "ran ls -la");
    }

    #[test]
    fn hold_runs_like_run_and_holds_only_the_answer() {
        let first = body(&[user("hold: echo hi")]);
        assert_eq!(
            reply_for(&first).items,
            vec![Item::ExecCommand {
                cmd: "echo hi".into(),
                escalate: false
            }]
        );
        assert!(!held(&first));
        let call = json!({"type": "function_call", "name": "exec_command", "call_id": "c1",
            "arguments": "{\"cmd\":\"echo hi\",\"yield_time_ms\":1000}"});
        let output = json!({"type": "function_call_output", "call_id": "c1", "output": "hi"});
        let answer = body(&[user("hold: echo hi"), call.clone(), output.clone()]);
        assert_eq!(final_text(&reply_for(&answer)), "ran echo hi");
        assert!(held(&answer));
        assert!(!held(&body(&[user("run: echo hi"), call, output])));
    }

    #[test]
    fn approve_escalates() {
        let reply = reply_for(&body(&[user("approve: touch x")]));
        assert_eq!(
            reply.items,
            vec![Item::ExecCommand {
                cmd: "touch x".into(),
                escalate: true
            }]
        );
    }

    #[test]
    fn slow_long_and_commentary() {
        let slow = reply_for(&body(&[user("slow: 3")]));
        assert_eq!(slow.delay, Duration::from_secs(3));
        assert_eq!(final_text(&slow), "Done after 3 seconds.");
        let long = reply_for(&body(&[user("long: 777")]));
        assert_eq!(final_text(&long).chars().count(), 777);
        assert!(long_text(2000).contains("```rust"));
        let commentary = reply_for(&body(&[user("commentary: looking around")]));
        assert_eq!(
            commentary.items[0],
            Item::Message {
                text: "looking around".into(),
                phase: Some(Phase::Commentary)
            }
        );
        assert!(
            matches!(&commentary.items[1], Item::ExecCommand { cmd, .. } if cmd == "echo 'looking around'")
        );
        let output = json!({"type": "function_call_output", "call_id": "c1", "output": "ok"});
        let done = reply_for(&body(&[user("commentary: looking around"), output]));
        assert_eq!(final_text(&done), "Done: looking around");
    }

    #[test]
    fn title_request_gets_schema_json() {
        let schema = json!({"type": "object", "properties": {"title": {"type": "string"}},
            "required": ["title"], "additionalProperties": false});
        let request = json!({"input": [user("echo: x")],
            "text": {"format": {"type": "json_schema", "name": "t", "strict": true, "schema": schema}}});
        let text = final_text(&reply_for(&request)).to_owned();
        let parsed: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(parsed, json!({"title": "Fake session title"}));
    }
}
