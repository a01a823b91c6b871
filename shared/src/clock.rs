//! Wall-clock time as the state files store it: milliseconds since the Unix epoch. One helper,
//! so every table and log agrees on the unit and on what a clock before 1970 reads as (0).

/// Milliseconds since the Unix epoch (0 if the clock is set before it).
pub fn now_unix_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
