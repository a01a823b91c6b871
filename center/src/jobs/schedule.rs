//! Jobs on a schedule: `/schedule add "<cron>" <prompt>`, `/schedule list`, `/schedule remove
//! <n>`. A schedule belongs to the chat it was made in and keeps the place jobs had there at
//! that moment (node, folder, topic), so a later `/workdir` does not move it. Each run is an
//! ordinary job (source `schedule:<n>`), with the approval gate and limits of any job; its
//! status and answer go to the topic the schedule was made in.
//!
//! One task ([`timer`]) sleeps until the next run is due and is woken when schedules change;
//! the cron rules, all in UTC, are pure ([`cron`]).

mod cron;
mod timer;

pub(super) use timer::run;

use super::{Jobs, commands::Context, now_ms};
use crate::store::sources::NewSchedule;

const USAGE: &str = "Usage:\n\
/schedule add \"<cron>\" <prompt> — runs the prompt as a job here on that schedule\n\
/schedule list\n\
/schedule remove <number>\n\
Times are UTC. Cron: five fields, minute hour day-of-month month day-of-week \
(\"0 9 * * 1-5\" is 09:00 UTC on weekdays), six with seconds first, or @hourly/@daily/@weekly.";

/// The longest prompt shown in `/schedule list`.
const SHOWN_PROMPT_CHARS: usize = 120;

impl Jobs {
    /// `/schedule add "<cron>" <prompt> | list | remove <n>`.
    pub(crate) async fn schedule_command(&self, ctx: &Context, args: &str) {
        let args = args.trim();
        let (verb, rest) = args.split_once(char::is_whitespace).unwrap_or((args, ""));
        let text = match verb {
            "add" => self.schedule_add(ctx, rest),
            "list" => self.schedule_list(ctx),
            "remove" | "rm" | "delete" => self.schedule_remove(ctx, rest),
            _ => USAGE.to_owned(),
        };
        self.reply_plain(ctx, &text);
    }

    fn schedule_add(&self, ctx: &Context, rest: &str) -> String {
        let (expr, prompt) = match split_add(rest) {
            Ok(parts) => parts,
            Err(why) => return format!("{why}\n\n{USAGE}"),
        };
        let now = now_ms();
        let spec = match cron::Spec::parse(expr, now) {
            Ok(spec) => spec,
            Err(err) => return format!("Not added: {err}."),
        };
        let (node, cwd) = match self.place(ctx) {
            Ok(place) => place,
            Err(why) => return why.to_string(),
        };
        let schedule = NewSchedule {
            surface: ctx.surface,
            node,
            cwd,
            cron: expr.to_owned(),
            prompt: prompt.to_owned(),
        };
        let Ok(id) = self.store().insert_schedule(&schedule, now) else {
            return crate::store::STATE_UNREADABLE.to_owned();
        };
        self.schedules.notify_one();
        let next = spec
            .next_after(now)
            .map_or_else(|| "never".to_owned(), cron::utc);
        format!(
            "Schedule {id} added: {expr} (UTC) in {}:{}. Next run: {next}.",
            schedule.node, schedule.cwd
        )
    }

    fn schedule_list(&self, ctx: &Context) -> String {
        let Ok(schedules) = self.store().schedules_of_chat(ctx.surface.chat_id) else {
            return crate::store::STATE_UNREADABLE.to_owned();
        };
        if schedules.is_empty() {
            return format!("No schedules in this chat.\n\n{USAGE}");
        }
        let mut text = String::from("Schedules in this chat (times in UTC):");
        for s in schedules {
            let now = now_ms();
            let next = cron::Spec::parse(&s.schedule.cron, now)
                .ok()
                .and_then(|spec| spec.next_after(s.last_ms.max(now)))
                .map_or_else(|| "never".to_owned(), cron::utc);
            let here = if s.schedule.surface.thread_id == ctx.surface.thread_id {
                String::new()
            } else {
                format!(" · topic {}", s.schedule.surface.thread_id)
            };
            text.push_str(&format!(
                "\n\n{} · {} · next {next} · {}:{}{here}\n{}",
                s.id,
                s.schedule.cron,
                s.schedule.node,
                s.schedule.cwd,
                shorten(&s.schedule.prompt, SHOWN_PROMPT_CHARS)
            ));
        }
        text
    }

    fn schedule_remove(&self, ctx: &Context, rest: &str) -> String {
        let Ok(id) = rest.trim().trim_start_matches('#').parse::<i64>() else {
            return "Usage: /schedule remove <number> (see /schedule list)".to_owned();
        };
        match self.store().remove_schedule(id, ctx.surface.chat_id) {
            Ok(true) => {
                self.schedules.notify_one();
                format!("Schedule {id} removed.")
            }
            Ok(false) => format!("There is no schedule {id} in this chat."),
            Err(_) => crate::store::STATE_UNREADABLE.to_owned(),
        }
    }
}

/// `"<cron>" <prompt>` → (cron, prompt). Phones turn `"` into `“…”`, so those count too.
fn split_add(rest: &str) -> Result<(&str, &str), &'static str> {
    let rest = rest.trim();
    let mut chars = rest.char_indices();
    let Some((_, open)) = chars.next() else {
        return Err("Give a cron expression in quotes and a prompt.");
    };
    let close: &[char] = match open {
        '"' => &['"'],
        '“' | '”' | '„' => &['”', '“'],
        '\'' => &['\''],
        _ => return Err("Put the cron expression in quotes."),
    };
    let start = open.len_utf8();
    let Some(len) = rest[start..].find(close) else {
        return Err("The cron expression's closing quote is missing.");
    };
    let expr = rest[start..start + len].trim();
    let end = start + len + rest[start + len..].chars().next().map_or(0, char::len_utf8);
    let prompt = rest[end..].trim();
    if expr.is_empty() {
        return Err("The cron expression is empty.");
    }
    if prompt.is_empty() {
        return Err("Give the prompt after the cron expression.");
    }
    Ok((expr, prompt))
}

/// The first `max` characters of `text` on one line, with `…` when cut.
fn shorten(text: &str, max: usize) -> String {
    let line: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if line.chars().count() <= max {
        return line;
    }
    let mut cut: String = line.chars().take(max).collect();
    cut.push('…');
    cut
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn add_takes_a_quoted_cron_and_a_prompt() {
        assert_eq!(
            split_add(r#""0 9 * * 1-5" summarise the open PRs"#),
            Ok(("0 9 * * 1-5", "summarise the open PRs"))
        );
        assert_eq!(
            split_add("“*/30 * * * * *”  echo: tick"),
            Ok(("*/30 * * * * *", "echo: tick"))
        );
        assert_eq!(split_add("'@daily' x"), Ok(("@daily", "x")));
        assert!(split_add("0 9 * * * report").is_err(), "unquoted");
        assert!(split_add(r#""0 9 * * *""#).is_err(), "no prompt");
        assert!(split_add(r#""0 9 * * * report"#).is_err(), "unclosed");
        assert!(split_add(r#""" report"#).is_err(), "empty");
        assert!(split_add("").is_err());
    }

    #[test]
    fn long_prompts_are_shortened_on_one_line() {
        assert_eq!(shorten("a\nb  c", 10), "a b c");
        assert_eq!(shorten("abcdef", 3), "abc…");
    }
}
