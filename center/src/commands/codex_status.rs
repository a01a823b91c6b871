//! The lines `/status` adds from what the node read in the window's rollout: the model, token
//! use, context left and usage limits, counted the way Codex's own `/status` counts them.

use proto::v1;

use crate::telegram::render::escape_html;

/// Tokens Codex counts as always in the context (prompts, tools, room to compact): its
/// "context left" leaves them out of both the window and the use.
const BASELINE_TOKENS: u64 = 12_000;

/// HTML lines (each starting with a newline), empty when nothing is known.
pub(super) fn lines(status: &v1::CodexStatus, now_unix_s: i64) -> String {
    let mut text = String::new();
    if !status.model.is_empty() {
        text += &format!("\n<b>Model</b> {}", escape_html(&status.model));
        if !status.reasoning_effort.is_empty() {
            text += &format!(" · reasoning {}", escape_html(&status.reasoning_effort));
        }
    }
    let Some(t) = &status.tokens else {
        return text;
    };
    text += &format!(
        "\n<b>Tokens</b> {} used this session",
        compact(t.total_tokens)
    );
    if t.cached_input_tokens > 0 {
        text += &format!(" ({} cached)", compact(t.cached_input_tokens));
    }
    if status.turn_tokens > 0 {
        text += &format!(" · last turn {}", compact(status.turn_tokens));
    }
    if let Some(left) = context_left_percent(t.last_total_tokens, t.context_window) {
        text += &format!(
            "\n<b>Context</b> {left}% left ({} used of {})",
            compact(t.last_total_tokens),
            compact(t.context_window)
        );
    }
    let limits: Vec<String> = [&t.primary_limit, &t.secondary_limit]
        .into_iter()
        .flatten()
        .map(|w| limit(w, now_unix_s))
        .collect();
    if !limits.is_empty() {
        text += &format!("\n<b>Limits</b> {}", limits.join(" · "));
    }
    text
}

/// Percent of the context window left, as Codex's footer and `/status` show it; `None` when the
/// window is unknown.
fn context_left_percent(in_context: u64, window: u64) -> Option<u64> {
    if window == 0 {
        return None;
    }
    if window <= BASELINE_TOKENS {
        return Some(0);
    }
    let effective = window - BASELINE_TOKENS;
    let used = in_context.saturating_sub(BASELINE_TOKENS);
    let remaining = effective.saturating_sub(used);
    Some((remaining as f64 / effective as f64 * 100.0).round() as u64)
}

/// `950`, `1.2k`, `12.3k`, `258k`, `1.5M`.
fn compact(n: u64) -> String {
    let (scaled, suffix) = match n {
        n if n < 1_000 => return n.to_string(),
        n if n < 1_000_000 => (n as f64 / 1e3, "k"),
        n if n < 1_000_000_000 => (n as f64 / 1e6, "M"),
        n => (n as f64 / 1e9, "B"),
    };
    let decimals = match scaled {
        s if s < 10.0 => 2,
        s if s < 100.0 => 1,
        _ => 0,
    };
    let mut s = format!("{scaled:.decimals$}");
    if s.contains('.') {
        s = s.trim_end_matches('0').trim_end_matches('.').to_owned();
    }
    format!("{s}{suffix}")
}

/// `5h 24% used, resets in 2 h 10 min`.
fn limit(w: &v1::RateLimitWindow, now_unix_s: i64) -> String {
    let name = match w.window_minutes {
        0 => "limit".to_owned(),
        10_080 => "weekly".to_owned(),
        m if m % 1440 == 0 => format!("{}d", m / 1440),
        m if m % 60 == 0 => format!("{}h", m / 60),
        m => format!("{m}min"),
    };
    let mut text = format!("{name} {:.0}% used", w.used_percent);
    if w.resets_at_unix_s > now_unix_s {
        let secs = (w.resets_at_unix_s - now_unix_s) as u64;
        let when = match secs {
            s if s < 3600 => format!("{} min", s.div_ceil(60)),
            s if s < 86_400 => format!("{} h {} min", s / 3600, s % 3600 / 60),
            s => format!("{} d {} h", s / 86_400, s % 86_400 / 3600),
        };
        text += &format!(", resets in {when}");
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens(total: u64, last: u64, window: u64) -> v1::TokenUsage {
        v1::TokenUsage {
            input_tokens: total - 100,
            output_tokens: 100,
            total_tokens: total,
            context_window: window,
            last_total_tokens: last,
            ..Default::default()
        }
    }

    #[test]
    fn model_tokens_and_context_as_codex_counts_them() {
        let status = v1::CodexStatus {
            model: "gpt-5.1-codex".into(),
            reasoning_effort: "high".into(),
            tokens: Some(tokens(12_345, 80_000, 272_000)),
            turn_tokens: 1_234,
        };
        assert_eq!(
            lines(&status, 0),
            "\n<b>Model</b> gpt-5.1-codex · reasoning high\
             \n<b>Tokens</b> 12.3k used this session · last turn 1.23k\
             \n<b>Context</b> 74% left (80k used of 272k)"
        );
    }

    #[test]
    fn what_is_not_known_is_left_out() {
        assert_eq!(lines(&v1::CodexStatus::default(), 0), "");
        let model_only = v1::CodexStatus {
            model: "fake-model".into(),
            ..Default::default()
        };
        assert_eq!(lines(&model_only, 0), "\n<b>Model</b> fake-model");
        // An older Codex: no turn totals, no window.
        let tokens_only = v1::CodexStatus {
            tokens: Some(tokens(950, 950, 0)),
            ..Default::default()
        };
        assert_eq!(
            lines(&tokens_only, 0),
            "\n<b>Tokens</b> 950 used this session"
        );
    }

    #[test]
    fn limits_say_how_much_is_used_and_when_they_reset() {
        let window = |used_percent, window_minutes, resets_at_unix_s| v1::RateLimitWindow {
            used_percent,
            window_minutes,
            resets_at_unix_s,
        };
        let mut t = tokens(2_000_000, 0, 258_400);
        t.cached_input_tokens = 1_500_000;
        t.primary_limit = Some(window(23.6, 300, 1_000 + 7_800));
        t.secondary_limit = Some(window(40.0, 10_080, 0));
        let status = v1::CodexStatus {
            tokens: Some(t),
            ..Default::default()
        };
        assert_eq!(
            lines(&status, 1_000),
            "\n<b>Tokens</b> 2M used this session (1.5M cached)\
             \n<b>Context</b> 100% left (0 used of 258k)\
             \n<b>Limits</b> 5h 24% used, resets in 2 h 10 min · weekly 40% used"
        );
    }

    #[test]
    fn context_left_matches_codex() {
        assert_eq!(context_left_percent(0, 0), None);
        assert_eq!(context_left_percent(5_000, 10_000), Some(0));
        assert_eq!(context_left_percent(12_000, 272_000), Some(100));
        assert_eq!(context_left_percent(142_000, 272_000), Some(50));
        assert_eq!(context_left_percent(500_000, 272_000), Some(0));
        assert_eq!(compact(999), "999");
        assert_eq!(compact(1_000), "1k");
        assert_eq!(compact(258_400), "258k");
        assert_eq!(compact(12_345_678), "12.3M");
    }
}
