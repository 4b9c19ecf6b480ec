//! `@every DURATION`, or five-field cron schedules (`minute hour day-of-month month day-of-week`,
//! UTC) for scheduled drills: `*`, numbers, ranges `a-b`, steps `*/n` and
//! `a-b/n`, and lists `a,b`. Day of week 0 or 7 is Sunday. When both day
//! fields are restricted, a day matching either one matches (as in cron).

use std::num::ParseIntError;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::duration::DurationError;
use crate::time::{civil_from_days, days_from_civil};

/// Why a text is not a schedule. A field error names the field
/// (`minute`, `hour`, `day-of-month`, `month`, `day-of-week`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CronError {
    /// Not five whitespace-separated fields.
    #[error("{text:?} has {count} fields; write five: minute hour day-of-month month day-of-week (UTC)")]
    FieldCount { text: String, count: usize },
    /// The duration of `@every` does not parse.
    #[error(transparent)]
    Every(#[from] DurationError),
    /// `@every` shorter than a second.
    #[error("{text:?}: @every needs at least 1s")]
    EveryTooShort { text: String },
    /// The step after `/` is not a number.
    #[error("{field}: step {step:?} is not a number")]
    StepNotANumber {
        field: &'static str,
        step: String,
        #[source]
        source: ParseIntError,
    },
    /// `*/0`.
    #[error("{field}: a step of 0")]
    ZeroStep { field: &'static str },
    /// A value that is not a number (`mon`).
    #[error("{field}: {value:?} is not a number")]
    NotANumber {
        field: &'static str,
        value: String,
        #[source]
        source: ParseIntError,
    },
    /// A number outside the field's range.
    #[error("{field}: {value} is outside {min}-{max}")]
    OutOfRange { field: &'static str, value: u32, min: u32, max: u32 },
    /// `a-b` with `a > b`.
    #[error("{field}: range {lo}-{hi} runs backwards")]
    Backwards { field: &'static str, lo: u32, hi: u32 },
}

/// A parsed schedule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cron {
    minutes: Vec<bool>,
    hours: Vec<bool>,
    days: Vec<bool>,
    months: Vec<bool>,
    weekdays: Vec<bool>,
    days_any: bool,
    weekdays_any: bool,
    text: String,
    /// `@every DURATION`: fixed intervals instead of calendar fields.
    every: Option<Duration>,
}

fn field(text: &str, name: &'static str, min: u32, max: u32) -> Result<Vec<bool>, CronError> {
    let mut set = vec![false; max as usize + 1];
    for part in text.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((r, s)) => {
                let step: u32 = s.parse().map_err(|source| CronError::StepNotANumber {
                    field: name,
                    step: s.to_string(),
                    source,
                })?;
                if step == 0 {
                    return Err(CronError::ZeroStep { field: name });
                }
                (r, step)
            }
            None => (part, 1),
        };
        let num = |s: &str| -> Result<u32, CronError> {
            let n: u32 =
                s.parse().map_err(|source| CronError::NotANumber { field: name, value: s.to_string(), source })?;
            if n < min || n > max {
                return Err(CronError::OutOfRange { field: name, value: n, min, max });
            }
            Ok(n)
        };
        let (lo, hi) = match range {
            "*" => (min, max),
            r => match r.split_once('-') {
                Some((a, b)) => (num(a)?, num(b)?),
                None if step > 1 => (num(r)?, max),
                None => {
                    let n = num(r)?;
                    (n, n)
                }
            },
        };
        if lo > hi {
            return Err(CronError::Backwards { field: name, lo, hi });
        }
        for v in (lo..=hi).step_by(step as usize) {
            set[v as usize] = true;
        }
    }
    Ok(set)
}

impl Cron {
    pub fn parse(text: &str) -> Result<Self, CronError> {
        if let Some(d) = text.trim().strip_prefix("@every ") {
            let every = crate::duration::parse_duration(d.trim())?;
            if every < Duration::from_secs(1) {
                return Err(CronError::EveryTooShort { text: text.to_string() });
            }
            let none = Vec::new();
            return Ok(Self {
                minutes: none.clone(),
                hours: none.clone(),
                days: none.clone(),
                months: none.clone(),
                weekdays: none,
                days_any: true,
                weekdays_any: true,
                text: text.to_string(),
                every: Some(every),
            });
        }
        let f: Vec<&str> = text.split_whitespace().collect();
        if f.len() != 5 {
            return Err(CronError::FieldCount { text: text.to_string(), count: f.len() });
        }
        let mut weekdays = field(f[4], "day-of-week", 0, 7)?;
        if weekdays[7] {
            weekdays[0] = true;
        }
        Ok(Self {
            minutes: field(f[0], "minute", 0, 59)?,
            hours: field(f[1], "hour", 0, 23)?,
            days: field(f[2], "day-of-month", 1, 31)?,
            months: field(f[3], "month", 1, 12)?,
            weekdays,
            days_any: f[2] == "*",
            weekdays_any: f[4] == "*",
            text: text.to_string(),
            every: None,
        })
    }

    fn day_matches(&self, days: i64) -> bool {
        let (_, m, d) = civil_from_days(days);
        if !self.months[m as usize] {
            return false;
        }
        let weekday = (days + 4).rem_euclid(7) as usize; // 1970-01-01 was a Thursday
        match (self.days_any, self.weekdays_any) {
            (true, true) => true,
            (false, true) => self.days[d as usize],
            (true, false) => self.weekdays[weekday],
            (false, false) => self.days[d as usize] || self.weekdays[weekday],
        }
    }

    /// The first time strictly after `t` that the schedule fires (to the
    /// minute), within the next five years.
    pub fn next_after(&self, t: SystemTime) -> Option<SystemTime> {
        if let Some(every) = self.every {
            // `@every 999999999999999d` is beyond any SystemTime.
            return t.checked_add(every);
        }
        let secs = t.duration_since(UNIX_EPOCH).ok()?.as_secs() / 60 * 60 + 60;
        let mut day = (secs / 86_400) as i64;
        let mut minute_of_day = (secs % 86_400) / 60;
        let last = day + 5 * 366;
        let (y, m, d) = civil_from_days(day);
        debug_assert_eq!(days_from_civil(y, m, d), day);
        while day <= last {
            if self.day_matches(day) {
                for mod_ in minute_of_day..1440 {
                    let (h, mi) = (mod_ / 60, mod_ % 60);
                    if self.hours[h as usize] && self.minutes[mi as usize] {
                        return Some(UNIX_EPOCH + Duration::from_secs(day as u64 * 86_400 + mod_ * 60));
                    }
                }
            }
            day += 1;
            minute_of_day = 0;
        }
        None
    }
}

impl std::fmt::Display for Cron {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::{parse_rfc3339, rfc3339};

    fn next(cron: &str, after: &str) -> String {
        rfc3339(Cron::parse(cron).unwrap().next_after(parse_rfc3339(after).unwrap()).unwrap())
    }

    #[test]
    fn finds_the_next_firing() {
        assert_eq!(next("0 3 * * *", "2026-11-24T04:00:00Z"), "2026-11-25T03:00:00.000Z");
        assert_eq!(next("*/15 * * * *", "2026-11-24T04:07:30Z"), "2026-11-24T04:15:00.000Z");
        assert_eq!(next("30 2 * * 1", "2026-11-24T04:00:00Z"), "2026-11-30T02:30:00.000Z"); // a Monday
        assert_eq!(next("0 0 1 * *", "2026-11-24T04:00:00Z"), "2026-12-01T00:00:00.000Z");
        assert_eq!(next("0 12 29 2 *", "2026-11-24T04:00:00Z"), "2028-02-29T12:00:00.000Z");
        assert_eq!(next("0 9 * * 0", "2026-11-24T04:00:00Z"), "2026-11-29T09:00:00.000Z"); // Sunday
        assert_eq!(next("0 9 * * 7", "2026-11-24T04:00:00Z"), "2026-11-29T09:00:00.000Z");
        assert_eq!(next("5 4 * * *", "2026-11-24T04:05:00Z"), "2026-11-25T04:05:00.000Z", "strictly after");
    }

    #[test]
    fn bad_schedules_say_what_is_wrong() {
        let err = |text: &str| Cron::parse(text).unwrap_err().to_string();
        assert!(err("0 3 * *").contains("has 4 fields"));
        assert!(err("60 3 * * *").contains("minute: 60 is outside 0-59"));
        assert!(err("0 5-3 * * *").contains("runs backwards"));
        assert!(err("*/0 * * * *").contains("step of 0"));
        assert!(err("0 3 * * mon").contains("day-of-week"));
        assert!(err("@every 10ms").contains("at least 1s"));
        assert_eq!(err("0 3 * * mon"), r#"day-of-week: "mon" is not a number"#);
        assert_eq!(err("@every 5"), r#""5" has no unit (write e.g. "5s" or "5ms")"#);
        assert!(matches!(Cron::parse("@every 5"), Err(CronError::Every(DurationError::NoUnit { .. }))));
        let t = parse_rfc3339("2026-11-24T04:00:00Z").unwrap();
        assert_eq!(Cron::parse("@every 6h").unwrap().next_after(t), Some(t + Duration::from_secs(6 * 3600)));
    }

    /// Found while writing the config fuzz target (which then reached it):
    /// `@every` with a duration that saturates parse_duration panicked in
    /// next_after (overflow adding to a SystemTime), in the drill scheduler
    /// of `cutover run`.
    #[test]
    fn every_with_a_huge_duration_has_no_next_run_not_a_panic() {
        let c = Cron::parse("@every 999999999999999d").unwrap();
        assert_eq!(c.next_after(UNIX_EPOCH + Duration::from_secs(1_764_800_000)), None);
    }
}
