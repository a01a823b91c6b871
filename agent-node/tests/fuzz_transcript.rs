//! Property tests of the rollout reader: the [`Tailer`] that cuts appended bytes into lines and
//! [`parse_line`] that reads each line. Rollout files are written by Codex, whose schema changes
//! between releases, and a Codex window can write anything into them; whatever they hold, the
//! node must neither panic nor grow an event past its bounds, since one bad line would otherwise
//! stop a session's transcript.
//!
//! Bounded for CI: a fixed number of cases and a fixed seed (set `PROPTEST_CASES` or
//! `PROPTEST_RNG_SEED` to explore further locally).

use agent_node::transcript::{
    parse::{self, MAX_ARGUMENTS_BYTES, MAX_OUTPUT_BYTES, Record, parse_line},
    tail::Tailer,
};
use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, RngSeed};
use proto::v1::session_event::Kind;
use serde_json::{Map, Value, json};

/// Cases per property: a few seconds in a debug build.
const CASES: u32 = 2000;

fn config() -> ProptestConfig {
    let mut config = ProptestConfig {
        failure_persistence: None,
        ..ProptestConfig::default()
    };
    if std::env::var_os("PROPTEST_CASES").is_none() {
        config.cases = CASES;
    }
    if std::env::var_os("PROPTEST_RNG_SEED").is_none() {
        config.rng_seed = RngSeed::Fixed(0x726f_6c6c);
    }
    config
}

/// Record types the parser knows, and a few it does not.
const RECORD_TYPES: &[&str] = &[
    "session_meta",
    "event_msg",
    "response_item",
    "turn_context",
    "compacted",
    "brand_new",
];

/// Payload types of `event_msg`, `response_item` and `item_completed` items, known and not.
const PAYLOAD_TYPES: &[&str] = &[
    "task_started",
    "turn_started",
    "task_complete",
    "turn_complete",
    "turn_aborted",
    "error",
    "stream_error",
    "token_count",
    "item_completed",
    "user_message",
    "agent_message",
    "agent_reasoning",
    "exec_command_end",
    "patch_apply_end",
    "plan_update",
    "exec_command_begin",
    "function_call",
    "custom_tool_call",
    "local_shell_call",
    "message",
    "function_call_output",
    "UserMessage",
    "AgentMessage",
    "Reasoning",
    "CommandExecution",
    "FileChange",
    "Plan",
    "TodoList",
    "never_seen",
];

/// Every key the parser looks up somewhere, so random objects hit its paths.
const KEYS: &[&str] = &[
    "type",
    "payload",
    "timestamp",
    "id",
    "cwd",
    "forked_from_id",
    "turn_id",
    "error",
    "message",
    "last_agent_message",
    "reason",
    "info",
    "total_token_usage",
    "input_tokens",
    "output_tokens",
    "total_tokens",
    "model_context_window",
    "item",
    "images",
    "phase",
    "text",
    "content",
    "summary",
    "summary_text",
    "changes",
    "path",
    "status",
    "success",
    "plan",
    "items",
    "step",
    "explanation",
    "name",
    "arguments",
    "call_id",
    "command",
    "cmd",
    "exit_code",
    "aggregated_output",
    "formatted_output",
    "stdout",
    "duration",
    "secs",
    "nanos",
];

fn texts() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(PAYLOAD_TYPES).prop_map(str::to_owned),
        prop::sample::select(RECORD_TYPES).prop_map(str::to_owned),
        Just("<environment_context>".to_owned()),
        Just("2026-11-21T16:31:52.123+05:30".to_owned()),
        "\\PC{0,12}",
        // Long enough to be cut to the event bounds.
        (1usize..3, "[a-zé😀]{1,3}").prop_map(|(n, unit)| unit.repeat(n * 1500)),
    ]
}

fn numbers() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        Just(Value::from(u64::MAX)),
        Just(Value::from(i64::MIN)),
        any::<f64>().prop_map(|f| json!(f)),
    ]
}

/// JSON of any shape, biased towards the keys and values the parser reads.
fn values() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        numbers(),
        texts().prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::vec((prop::sample::select(KEYS), inner), 0..6).prop_map(|kv| {
                Value::Object(kv.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
            }),
        ]
    })
}

/// A record of a known (or unknown) type whose payload and item are random objects.
fn records() -> impl Strategy<Value = Value> {
    (
        prop::sample::select(RECORD_TYPES),
        prop::sample::select(PAYLOAD_TYPES),
        prop::sample::select(PAYLOAD_TYPES),
        values(),
        values(),
        prop_oneof![texts().prop_map(Value::String), values()],
    )
        .prop_map(
            |(record, payload_type, item_type, payload, item, timestamp)| {
                let mut item = as_object(item);
                item.insert("type".into(), payload_type_value(item_type));
                let mut payload = as_object(payload);
                payload.insert("type".into(), payload_type_value(payload_type));
                payload.insert("item".into(), Value::Object(item));
                json!({ "timestamp": timestamp, "type": record, "payload": payload })
            },
        )
}

/// Payloads of the known types with their fields in the shapes Codex writes (and numbers at
/// their extremes), so each branch of the parser is reached with plausible data.
fn shaped_payloads() -> impl Strategy<Value = Value> {
    let command = prop_oneof![
        texts().prop_map(Value::String),
        prop::collection::vec(texts(), 0..4).prop_map(|v| json!(v)),
        Just(json!(["/bin/bash", "-lc", "ls -a"])),
    ];
    let duration = prop_oneof![
        numbers(),
        (numbers(), numbers()).prop_map(|(secs, nanos)| json!({ "secs": secs, "nanos": nanos })),
    ];
    let exec = (command.clone(), numbers(), texts(), duration, texts()).prop_map(
        |(command, exit_code, output, duration, id)| {
            json!({
                "command": command,
                "exit_code": exit_code,
                "aggregated_output": output,
                "duration": duration,
                "call_id": id,
            })
        },
    );
    let tokens = (numbers(), numbers(), numbers()).prop_map(|(a, b, c)| {
        json!({ "info": { "total_token_usage": { "input_tokens": a, "output_tokens": b,
            "total_tokens": c }, "model_context_window": a } })
    });
    let call = (texts(), command, texts()).prop_map(|(name, cmd, id)| {
        let arguments = json!({ "cmd": cmd }).to_string();
        json!({ "name": name, "arguments": arguments, "call_id": id })
    });
    let done = prop_oneof![
        Just(Value::Null),
        texts().prop_map(Value::String),
        texts().prop_map(|m| json!({ "message": m })),
    ]
    .prop_map(|error| json!({ "error": error, "last_agent_message": "done" }));
    let plan = prop::collection::vec((texts(), texts()), 0..4).prop_map(|steps| {
        let steps: Vec<Value> = steps
            .into_iter()
            .map(|(step, status)| json!({ "step": step, "status": status }))
            .collect();
        json!({ "plan": steps, "items": steps })
    });
    (
        prop::sample::select(PAYLOAD_TYPES),
        prop_oneof![exec, tokens, call, done, plan],
    )
        .prop_map(|(t, mut fields)| {
            if let Value::Object(map) = &mut fields {
                map.insert("type".into(), payload_type_value(t));
                map.insert(
                    "item".into(),
                    json!({ "type": t, "text": "x", "command": ["sh", "-c", "x"] }),
                );
            }
            fields
        })
}

fn payload_type_value(t: &str) -> Value {
    Value::String(t.to_owned())
}

fn as_object(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(map) => map,
        other => [("value".to_owned(), other)].into_iter().collect(),
    }
}

/// The most an event field bounded to `max` bytes may hold: the head, the tail and the marker.
fn within(s: &str, max: usize) -> bool {
    s.len() <= max + 64
}

/// Checks the bounds every event keeps, whatever the record held.
fn check_bounds(record: &Record) -> Result<(), TestCaseError> {
    if let Record::Event { kind, .. } = record {
        match kind {
            Kind::ToolResult(r) => {
                prop_assert!(within(&r.output, MAX_OUTPUT_BYTES), "{}", r.output.len());
            }
            Kind::ToolCall(c) => {
                prop_assert!(
                    within(&c.arguments, MAX_ARGUMENTS_BYTES),
                    "{}",
                    c.arguments.len()
                );
            }
            _ => {}
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(config())]

    /// Arbitrary bytes appended in arbitrary chunks: the tailer returns contiguous lines that
    /// cover exactly the complete lines, and parsing each of them never panics.
    #[test]
    fn arbitrary_bytes_in_arbitrary_chunks(
        // Plenty of line ends: a byte below 24 becomes one.
        bytes in prop::collection::vec(any::<u8>(), 0..300)
            .prop_map(|v| v.into_iter().map(|b| if b < 24 { b'\n' } else { b }).collect::<Vec<u8>>()),
        cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..6),
        start in 0u64..1_000_000,
    ) {
        let mut at: Vec<usize> = cuts.iter().map(|i| i.index(bytes.len() + 1)).collect();
        at.sort_unstable();
        let mut tailer = Tailer::at(start);
        let mut lines = Vec::new();
        let mut from = 0;
        for cut in at.into_iter().chain([bytes.len()]) {
            lines.extend(tailer.push(&bytes[from..cut]));
            from = cut;
        }
        let mut expected_start = start;
        for line in &lines {
            prop_assert_eq!(line.start, expected_start);
            prop_assert!(line.end > line.start);
            prop_assert!(!line.too_long);
            expected_start = line.end;
            let _ = parse_line(&line.text);
        }
        let complete = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        prop_assert_eq!(tailer.line_offset(), start + complete as u64);
        prop_assert_eq!(tailer.read_offset(), start + bytes.len() as u64);
        prop_assert_eq!(lines.len(), bytes.iter().filter(|&&b| b == b'\n').count());
    }

    /// Any text: no panic, and only JSON objects are records.
    #[test]
    fn arbitrary_lines_never_panic(line in prop_oneof![any::<String>(), "[{}\\[\\]\":,0-9a-z ]{0,80}"]) {
        let is_object = serde_json::from_str::<Value>(&line).is_ok_and(|v| v.is_object());
        match parse_line(&line) {
            Ok(record) => {
                prop_assert!(is_object, "{:?}", line);
                check_bounds(&record)?;
            }
            Err(_) => prop_assert!(!is_object, "{:?}", line),
        }
    }

    /// Known record types with payloads of any shape: always a record (never an error, never a
    /// panic), with tool output and arguments within their bounds.
    #[test]
    fn known_record_types_with_arbitrary_shapes(record in records()) {
        let line = record.to_string();
        let parsed = parse_line(&line);
        prop_assert!(parsed.is_ok(), "{}", line);
        if let Ok(parsed) = parsed {
            check_bounds(&parsed)?;
        }
    }

    /// Known payload types with well-shaped fields, numbers at their extremes: always a record,
    /// within its bounds.
    #[test]
    fn known_payloads_with_extreme_values(
        record in prop::sample::select(RECORD_TYPES),
        payload in shaped_payloads(),
    ) {
        let line = json!({ "timestamp": "2026-11-21T16:31:52.123Z", "type": record, "payload": payload })
            .to_string();
        let parsed = parse_line(&line);
        prop_assert!(parsed.is_ok(), "{}", line);
        if let Ok(parsed) = parsed {
            check_bounds(&parsed)?;
        }
    }

    /// Any JSON value as a line: objects are records, everything else is refused.
    #[test]
    fn arbitrary_json_values(value in values()) {
        let parsed = parse_line(&value.to_string());
        prop_assert_eq!(parsed.is_ok(), value.is_object());
    }

    /// `bounded` keeps short text as is and long text within its bound, on char boundaries.
    #[test]
    fn bounded_output_stays_within_its_bound(s in "[a-zé😀\n]{0,120}", max in 0usize..100) {
        let b = parse::bounded(&s, max);
        if s.len() <= max {
            prop_assert_eq!(b, s);
        } else {
            prop_assert!(within(&b, max), "{} > {}", b.len(), max);
        }
    }

    /// Timestamps: any text is safe, and an offset moves the instant by exactly that much.
    #[test]
    fn timestamps_never_panic_and_respect_offsets(
        s in prop_oneof![any::<String>(), "[0-9:.TZz+-]{15,32}"],
        (y, mo, d, h, mi, sec) in (1970i64..2200, 1i64..=12, 1i64..=28, 0i64..24, 0i64..60, 0i64..60),
        frac in "[0-9]{0,9}",
        (sign, oh, om) in (prop_oneof![Just('+'), Just('-')], 0i64..24, 0i64..60),
    ) {
        let _ = parse::parse_rfc3339_ms(&s);
        let base = format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{sec:02}");
        let dot = if frac.is_empty() { String::new() } else { format!(".{frac}") };
        let utc = parse::parse_rfc3339_ms(&format!("{base}{dot}Z"));
        let shifted = parse::parse_rfc3339_ms(&format!("{base}{dot}{sign}{oh:02}:{om:02}"));
        let offset_ms = (oh * 60 + om) * 60_000 * if sign == '-' { -1 } else { 1 };
        prop_assert!(utc.is_some());
        prop_assert_eq!(shifted, utc.map(|t| t - offset_ms));
        let whole = parse::parse_rfc3339_ms(&format!("{base}Z"));
        let ms: i64 = format!("{frac:0<3}")[..3].parse().unwrap_or(0);
        prop_assert_eq!(utc, whole.map(|t| t + ms));
    }
}
