//! The pure part of schedules: reading a cron expression (by croner: five fields, or six with
//! seconds first, or an `@daily`-style nickname; always UTC) and deciding, from the last run a
//! schedule handled, whether a run is due now, due later, or was missed while the center was
//! down. Kept free of tokio and SQLite so the rules are tested with plain numbers.

use chrono::{DateTime, Datelike, Timelike, Utc};
use croner::{
    Cron,
    parser::{CronParser, Seconds, Year},
};

use crate::jobs::config::MissedRuns;

/// A cron expression that is known to run.
#[derive(Debug, Clone)]
pub(crate) struct Spec(Cron);

/// Why an expression cannot be a schedule.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum Error {
    #[error(
        "{expr:?} is not a cron expression ({reason}). Write five fields, minute hour \
         day-of-month month day-of-week (e.g. \"0 9 * * 1-5\": 09:00 UTC on weekdays), six with \
         seconds first, or @hourly/@daily/@weekly/@monthly"
    )]
    Invalid { expr: String, reason: String },
    #[error("{0:?} never runs")]
    Never(String),
}

impl Spec {
    /// Reads `expr`; it must have a run after `now_ms`.
    pub(crate) fn parse(expr: &str, now_ms: i64) -> Result<Self, Error> {
        let expr = expr.trim();
        let parser = CronParser::builder()
            .seconds(Seconds::Optional)
            .year(Year::Disallowed)
            .build();
        let cron = parser.parse(expr).map_err(|e| Error::Invalid {
            expr: expr.to_owned(),
            reason: e.to_string().trim_end_matches('.').to_owned(),
        })?;
        let spec = Self(cron);
        match spec.next_after(now_ms) {
            Some(_) => Ok(spec),
            None => Err(Error::Never(expr.to_owned())),
        }
    }

    /// The first run strictly after `ms` (Unix milliseconds, UTC), if there is one.
    pub(crate) fn next_after(&self, ms: i64) -> Option<i64> {
        let from: DateTime<Utc> = DateTime::from_timestamp_millis(ms)?;
        self.0
            .find_next_occurrence(&from, false)
            .ok()
            .map(|t| t.timestamp_millis())
    }
}

/// What a schedule needs now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    /// Run a job for the run due at `due`, then mark runs up to `now` handled.
    Run { due: i64 },
    /// Runs up to `now` were missed and are skipped: mark them handled, run nothing.
    Skip,
    /// Nothing is due before `at`.
    Wait { at: i64 },
    /// The expression has no further run.
    Never,
}

/// What to do about a schedule whose runs up to `last_ms` are handled, at `now_ms`. A run is
/// missed when it fell due before the center started (`started_ms`): those follow `policy`.
/// Several due runs collapse into one: a schedule never bursts.
pub(crate) fn step(
    spec: &Spec,
    last_ms: i64,
    now_ms: i64,
    started_ms: i64,
    policy: MissedRuns,
) -> Step {
    match spec.next_after(last_ms) {
        None => Step::Never,
        Some(due) if due > now_ms => Step::Wait { at: due },
        Some(due) if due < started_ms && policy == MissedRuns::Skip => Step::Skip,
        Some(due) => Step::Run { due },
    }
}

/// `ms` as `2026-12-04 09:00 UTC` (seconds shown when they are not zero).
pub(crate) fn utc(ms: i64) -> String {
    let Some(t) = DateTime::<Utc>::from_timestamp_millis(ms) else {
        return format!("{ms} ms");
    };
    let mut text = format!(
        "{:04}-{:02}-{:02} {:02}:{:02}",
        t.year(),
        t.month(),
        t.day(),
        t.hour(),
        t.minute()
    );
    if t.second() != 0 {
        text.push_str(&format!(":{:02}", t.second()));
    }
    text.push_str(" UTC");
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-01-01 00:00:00 UTC.
    const NEW_YEAR: i64 = 1_767_225_600_000;
    const MIN: i64 = 60_000;
    const HOUR: i64 = 60 * MIN;

    #[test]
    fn five_and_six_fields_and_nicknames_parse() {
        let daily = Spec::parse("0 9 * * *", NEW_YEAR).unwrap();
        assert_eq!(daily.next_after(NEW_YEAR), Some(NEW_YEAR + 9 * HOUR));
        assert_eq!(
            daily.next_after(NEW_YEAR + 9 * HOUR),
            Some(NEW_YEAR + 33 * HOUR),
            "strictly after"
        );
        let seconds = Spec::parse("*/15 * * * * *", NEW_YEAR).unwrap();
        assert_eq!(seconds.next_after(NEW_YEAR + 1), Some(NEW_YEAR + 15_000));
        let hourly = Spec::parse("@hourly", NEW_YEAR).unwrap();
        assert_eq!(hourly.next_after(NEW_YEAR + 1), Some(NEW_YEAR + HOUR));
        // 2026-01-01 is a Thursday: the next weekday at 09:00 is the same day.
        let weekdays = Spec::parse(" 0 9 * * MON-FRI ", NEW_YEAR).unwrap();
        assert_eq!(weekdays.next_after(NEW_YEAR), Some(NEW_YEAR + 9 * HOUR));
        // Friday 09:00 → Monday 09:00.
        assert_eq!(
            weekdays.next_after(NEW_YEAR + 33 * HOUR),
            Some(NEW_YEAR + (4 * 24 + 9) * HOUR)
        );
    }

    #[test]
    fn bad_expressions_are_explained() {
        for bad in [
            "",
            "every day",
            "0 9 * *",
            "61 * * * *",
            "0 25 * * *",
            "1 2 3 4 5 6 7",
        ] {
            let err = Spec::parse(bad, NEW_YEAR).unwrap_err();
            assert!(matches!(err, Error::Invalid { .. }), "{bad}: {err:?}");
            let text = err.to_string();
            assert!(text.contains("is not a cron expression"), "{text}");
            assert!(text.contains("five fields"), "{text}");
        }
        // February 30th never comes.
        assert_eq!(
            Spec::parse("0 0 30 2 *", NEW_YEAR).unwrap_err(),
            Error::Never("0 0 30 2 *".into())
        );
    }

    #[test]
    fn a_due_run_runs_and_a_later_one_waits() {
        let spec = Spec::parse("0 * * * *", NEW_YEAR).unwrap();
        let started = NEW_YEAR;
        assert_eq!(
            step(
                &spec,
                NEW_YEAR,
                NEW_YEAR + 10 * MIN,
                started,
                MissedRuns::Once
            ),
            Step::Wait {
                at: NEW_YEAR + HOUR
            }
        );
        assert_eq!(
            step(&spec, NEW_YEAR, NEW_YEAR + HOUR, started, MissedRuns::Skip),
            Step::Run {
                due: NEW_YEAR + HOUR
            },
            "due while running: runs whatever the policy"
        );
    }

    #[test]
    fn missed_runs_run_once_or_are_skipped() {
        let spec = Spec::parse("0 * * * *", NEW_YEAR).unwrap();
        // Down from 00:00 to 05:30: five runs missed.
        let started = NEW_YEAR + 5 * HOUR + 30 * MIN;
        let once = step(&spec, NEW_YEAR, started, started, MissedRuns::Once);
        assert_eq!(
            once,
            Step::Run {
                due: NEW_YEAR + HOUR
            }
        );
        // After that run the schedule marks everything up to now handled: one run, no burst.
        assert_eq!(
            step(&spec, started, started, started, MissedRuns::Once),
            Step::Wait {
                at: NEW_YEAR + 6 * HOUR
            }
        );
        assert_eq!(
            step(&spec, NEW_YEAR, started, started, MissedRuns::Skip),
            Step::Skip
        );
    }

    #[test]
    fn times_read_in_utc() {
        assert_eq!(utc(NEW_YEAR + 9 * HOUR), "2026-01-01 09:00 UTC");
        assert_eq!(utc(NEW_YEAR + 9 * HOUR + 5_250), "2026-01-01 09:00:05 UTC");
    }
}
