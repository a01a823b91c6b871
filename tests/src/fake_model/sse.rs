//! Turns a scripted [`Reply`] into the Responses API SSE events Codex 0.169 consumes.
//!
//! Events sent, in order: `response.created`, then per item `response.output_item.added`,
//! `response.output_text.delta` (messages only, a few chunks), `response.output_item.done`,
//! and last `response.completed` with the response id and a usage block. While a reply is
//! delayed (`slow:`) a `response.in_progress` event goes out every second so that Codex's
//! stream-idle timer never fires; the same goes for a reply held until the test releases it
//! (`hold:`, see [`held_steps`]).

use std::time::Duration;

use serde_json::{Value, json};

use super::script::{Item, Reply};

/// One step of an SSE stream.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// Send an event: SSE `event:` name and the JSON `data:` (which repeats the name as `type`).
    Event(&'static str, Value),
    /// Wait before the next step.
    Wait(Duration),
    /// Wait until the test releases held replies (`FakeModel::release_held`), sending this
    /// `response.in_progress` event every second meanwhile.
    Hold(Value),
}

/// Builds the steps for `reply`; `seq` makes the response and item ids unique per request.
pub fn steps(reply: &Reply, seq: u64) -> Vec<Step> {
    let response_id = format!("resp_fake_{seq}");
    let mut steps = vec![event(
        "response.created",
        json!({"response": {"id": response_id, "object": "response", "status": "in_progress",
            "model": "fake-model", "output": []}}),
    )];
    let ticks = reply.delay.as_secs();
    let rest = reply.delay - Duration::from_secs(ticks);
    for _ in 0..ticks {
        steps.push(Step::Wait(Duration::from_secs(1)));
        steps.push(event(
            "response.in_progress",
            json!({"response": {"id": response_id, "object": "response", "status": "in_progress"}}),
        ));
    }
    if !rest.is_zero() {
        steps.push(Step::Wait(rest));
    }
    let mut output = Vec::new();
    let mut output_chars = 0;
    for (index, item) in reply.items.iter().enumerate() {
        let done = item_json(item, seq, index);
        let mut added = done.clone();
        match item {
            Item::Message { text, .. } => {
                added["content"] = json!([]);
                steps.push(event(
                    "response.output_item.added",
                    json!({"output_index": index, "item": added}),
                ));
                for delta in chunks(text, 3) {
                    steps.push(event(
                        "response.output_text.delta",
                        json!({"item_id": done["id"], "output_index": index, "content_index": 0,
                            "delta": delta}),
                    ));
                }
                output_chars += text.len();
            }
            Item::ExecCommand { .. } | Item::PlainCommand { .. } | Item::ViewImage { .. } => {
                added["arguments"] = json!("");
                steps.push(event(
                    "response.output_item.added",
                    json!({"output_index": index, "item": added}),
                ));
                output_chars += done["arguments"].as_str().map_or(0, str::len);
            }
        }
        steps.push(event(
            "response.output_item.done",
            json!({"output_index": index, "item": done}),
        ));
        output.push(done);
    }
    let output_tokens = output_chars / 4 + 1;
    steps.push(event(
        "response.completed",
        json!({"response": {"id": response_id, "object": "response", "status": "completed",
            "model": "fake-model", "output": output,
            "usage": {"input_tokens": 100, "input_tokens_details": {"cached_tokens": 0},
                "output_tokens": output_tokens,
                "output_tokens_details": {"reasoning_tokens": 0},
                "total_tokens": 100 + output_tokens}}}),
    ));
    steps
}

/// Like [`steps`], but the items wait at a [`Step::Hold`] right after `response.created`.
pub fn held_steps(reply: &Reply, seq: u64) -> Vec<Step> {
    let mut steps = steps(reply, seq);
    let tick = json!({"type": "response.in_progress", "response": {
        "id": format!("resp_fake_{seq}"), "object": "response", "status": "in_progress"}});
    steps.insert(1, Step::Hold(tick));
    steps
}

fn event(kind: &'static str, mut data: Value) -> Step {
    data["type"] = json!(kind);
    Step::Event(kind, data)
}

/// The finished output item as it appears in `response.output_item.done`.
fn item_json(item: &Item, seq: u64, index: usize) -> Value {
    match item {
        Item::Message { text, phase } => {
            let mut message = json!({"type": "message", "id": format!("msg_fake_{seq}_{index}"),
                "status": "completed", "role": "assistant",
                "content": [{"type": "output_text", "text": text, "annotations": []}]});
            if let Some(phase) = phase {
                message["phase"] = json!(phase.as_str());
            }
            message
        }
        Item::ViewImage { path } => {
            json!({"type": "function_call", "id": format!("fc_fake_{seq}_{index}"),
                "status": "completed", "call_id": format!("call_fake_{seq}_{index}"),
                "name": "view_image", "arguments": json!({"path": path}).to_string()})
        }
        Item::PlainCommand { cmd } => {
            // No login shell (its profile may be slow), and Codex waits for the whole command.
            let arguments = json!({"cmd": cmd, "yield_time_ms": 30_000, "login": false});
            json!({"type": "function_call", "id": format!("fc_fake_{seq}_{index}"),
                "status": "completed", "call_id": format!("call_fake_{seq}_{index}"),
                "name": "exec_command", "arguments": arguments.to_string()})
        }
        Item::ExecCommand { cmd, escalate } => {
            // Codex waits this long for the command before answering with partial output; a
            // `sleep` waits until it is done, so the turn really lasts that long.
            // An approved command too: a login shell here can take seconds under load, and a
            // command still running when the turn ends dies with it.
            let yield_ms = if cmd.starts_with("sleep ") || *escalate {
                30_000
            } else {
                1000
            };
            let mut arguments = json!({"cmd": cmd, "yield_time_ms": yield_ms});
            if *escalate {
                // Without a login shell: this machine's profile (pyenv's rehash lock) can hold
                // a login shell for a minute when several start at once.
                arguments["login"] = json!(false);
                arguments["sandbox_permissions"] = json!("require_escalated");
                arguments["justification"] = json!(format!(
                    "The fake model wants to run `{cmd}` outside the sandbox."
                ));
            }
            json!({"type": "function_call", "id": format!("fc_fake_{seq}_{index}"),
                "status": "completed", "call_id": format!("call_fake_{seq}_{index}"),
                "name": "exec_command", "arguments": arguments.to_string()})
        }
    }
}

/// Splits `text` into at most `parts` pieces on char boundaries.
fn chunks(text: &str, parts: usize) -> Vec<&str> {
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    if chars.is_empty() {
        return Vec::new();
    }
    let step = chars.len().div_ceil(parts);
    let mut pieces = Vec::new();
    let mut start = 0;
    while start < chars.len() {
        let end = (start + step).min(chars.len());
        let from = chars[start].0;
        let to = chars.get(end).map_or(text.len(), |(offset, _)| *offset);
        pieces.push(&text[from..to]);
        start = end;
    }
    pieces
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake_model::script::Phase;

    fn names(steps: &[Step]) -> Vec<&str> {
        steps
            .iter()
            .filter_map(|step| match step {
                Step::Event(name, _) => Some(*name),
                Step::Wait(_) | Step::Hold(_) => None,
            })
            .collect()
    }

    #[test]
    fn message_reply_events() {
        let reply = Reply {
            items: vec![Item::Message {
                text: "héllo wörld".into(),
                phase: Some(Phase::FinalAnswer),
            }],
            delay: Duration::ZERO,
        };
        let steps = steps(&reply, 7);
        assert_eq!(
            names(&steps),
            [
                "response.created",
                "response.output_item.added",
                "response.output_text.delta",
                "response.output_text.delta",
                "response.output_text.delta",
                "response.output_item.done",
                "response.completed",
            ]
        );
        let deltas: String = steps
            .iter()
            .filter_map(|step| match step {
                Step::Event("response.output_text.delta", data) => data["delta"].as_str(),
                _ => None,
            })
            .collect();
        assert_eq!(deltas, "héllo wörld");
        let Step::Event(_, done) = &steps[5] else {
            panic!()
        };
        assert_eq!(done["item"]["phase"], "final_answer");
        assert_eq!(done["type"], "response.output_item.done");
        let Step::Event(_, completed) = &steps[6] else {
            panic!()
        };
        assert_eq!(completed["response"]["id"], "resp_fake_7");
        assert!(
            completed["response"]["usage"]["total_tokens"]
                .as_u64()
                .unwrap()
                > 100
        );
    }

    #[test]
    fn function_call_and_delay() {
        let reply = Reply {
            items: vec![Item::ExecCommand {
                cmd: "ls".into(),
                escalate: true,
            }],
            delay: Duration::from_millis(2500),
        };
        let steps = steps(&reply, 1);
        let waits: Duration = steps
            .iter()
            .filter_map(|step| match step {
                Step::Wait(wait) => Some(*wait),
                Step::Event(..) | Step::Hold(_) => None,
            })
            .sum();
        assert_eq!(waits, Duration::from_millis(2500));
        assert_eq!(
            names(&steps)
                .iter()
                .filter(|name| **name == "response.in_progress")
                .count(),
            2
        );
        let done = steps
            .iter()
            .find_map(|step| match step {
                Step::Event("response.output_item.done", data) => Some(data),
                _ => None,
            })
            .unwrap();
        let args: Value =
            serde_json::from_str(done["item"]["arguments"].as_str().unwrap()).unwrap();
        assert_eq!(args["cmd"], "ls");
        assert_eq!(args["sandbox_permissions"], "require_escalated");
        assert_eq!(done["item"]["name"], "exec_command");
    }

    #[test]
    fn a_held_reply_holds_after_its_creation() {
        let reply = Reply {
            items: vec![Item::Message {
                text: "done".into(),
                phase: Some(Phase::FinalAnswer),
            }],
            delay: Duration::ZERO,
        };
        let held = held_steps(&reply, 3);
        assert_eq!(held.len(), steps(&reply, 3).len() + 1);
        assert_eq!(names(&held)[0], "response.created");
        let Step::Hold(tick) = &held[1] else {
            panic!("{:?}", held[1])
        };
        assert_eq!(tick["type"], "response.in_progress");
        assert_eq!(tick["response"]["id"], "resp_fake_3");
    }

    #[test]
    fn chunks_cover_text() {
        assert_eq!(chunks("", 3), Vec::<&str>::new());
        assert_eq!(chunks("ab", 3), ["a", "b"]);
        assert_eq!(chunks("abcdefg", 3).concat(), "abcdefg");
    }
}
