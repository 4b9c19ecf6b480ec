//! The health changes a `cutover run --log-format json` process logged: one
//! JSON object per line on its stdout, those with `"event": "health"`
//! carrying `backend`, `vantage`, `from`, `to` and `reason`.

use std::time::{Duration, SystemTime};

use cutover_core::domain::Health;
use cutover_core::time::parse_rfc3339;
use serde::Deserialize;

/// One logged health change.
#[derive(Debug, Clone, PartialEq)]
pub struct HealthChange {
    pub at: SystemTime,
    pub backend: String,
    pub vantage: String,
    pub from: Health,
    pub to: Health,
    pub reason: String,
}

#[derive(Deserialize)]
struct Line {
    ts: String,
    event: String,
    #[serde(default)]
    backend: String,
    #[serde(default)]
    vantage: String,
    from: Option<Health>,
    to: Option<Health>,
    #[serde(default)]
    reason: String,
}

/// The health changes in `log`, in order; other lines are skipped.
pub fn health_changes(log: &str) -> Vec<HealthChange> {
    log.lines()
        .filter_map(|l| serde_json::from_str::<Line>(l).ok())
        .filter(|l| l.event == "health")
        .filter_map(|l| {
            Some(HealthChange {
                at: parse_rfc3339(&l.ts)?,
                backend: l.backend,
                vantage: l.vantage,
                from: l.from?,
                to: l.to?,
                reason: l.reason,
            })
        })
        .collect()
}

/// The changes of the primary seen from this controller (`primary@local`)
/// from `from` to `to`.
pub fn primary_changes(changes: &[HealthChange], from: Health, to: Health) -> impl Iterator<Item = &HealthChange> {
    changes.iter().filter(move |c| c.backend == "primary" && c.vantage == "local" && c.from == from && c.to == to)
}

/// The time from `onset` to the first `healthy -> suspect` of the primary
/// after it.
pub fn first_suspect(changes: &[HealthChange], onset: SystemTime) -> Option<Duration> {
    primary_changes(changes, Health::Healthy, Health::Suspect).find_map(|c| c.at.duration_since(onset).ok())
}

/// The longest failing streak that ended a suspect episode of the primary
/// (`suspect -> healthy`; the streak is given in the reason, `... a failing
/// streak of 1.93s ...`).
pub fn longest_streak(changes: &[HealthChange]) -> Option<Duration> {
    primary_changes(changes, Health::Suspect, Health::Healthy)
        .filter_map(|c| c.reason.split("failing streak of ").nth(1)?.split('s').next()?.parse::<f64>().ok())
        .map(Duration::from_secs_f64)
        .max()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(ts: &str, backend: &str, from: &str, to: &str, reason: &str) -> String {
        format!(
            r#"{{"ts":"{ts}","level":"info","event":"health","message":"health {backend}@local: {from} -> {to} ({reason})","backend":"{backend}","vantage":"local","from":"{from}","to":"{to}","reason":"{reason}"}}"#
        )
    }

    #[test]
    fn health_lines_are_parsed_and_others_skipped() {
        let log = [
            r#"{"ts":"2026-11-24T03:20:30.000Z","level":"info","event":"start","message":"cutover run: ..."}"#
                .to_string(),
            "not json".to_string(),
            line("2026-11-24T03:20:31.000Z", "primary", "healthy", "suspect", "a probe failed"),
            r#"{"ts":"2026-11-24T03:20:32.000Z","level":"info","event":"incident.opened","backend":"primary"}"#
                .to_string(),
        ]
        .join("\n");
        let changes = health_changes(&log);
        assert_eq!(changes.len(), 1);
        assert_eq!(changes[0].backend, "primary");
        assert_eq!((changes[0].from, changes[0].to), (Health::Healthy, Health::Suspect));
        assert_eq!(changes[0].at, parse_rfc3339("2026-11-24T03:20:31.000Z").unwrap());
    }

    #[test]
    fn the_first_suspect_change_after_the_onset_counts() {
        let onset = parse_rfc3339("2026-11-24T03:20:35.000Z").unwrap();
        let log = [
            line("2026-11-24T03:20:30.000Z", "primary", "healthy", "suspect", "a probe failed"),
            line("2026-11-24T03:20:35.500Z", "secondary", "healthy", "suspect", "a probe failed"),
            line("2026-11-24T03:20:36.250Z", "primary", "healthy", "suspect", "a probe failed"),
        ]
        .join("\n");
        assert_eq!(first_suspect(&health_changes(&log), onset), Some(Duration::from_millis(1250)));
    }

    #[test]
    fn the_longest_failing_streak_of_the_primary_is_found() {
        let streak = |s: &str| {
            format!("a probe succeeded again after a failing streak of {s}s, before the outage was confirmed")
        };
        let log = [
            line("2026-11-24T03:20:30.000Z", "primary", "suspect", "healthy", &streak("1.93")),
            line("2026-11-24T03:20:31.000Z", "secondary", "suspect", "healthy", &streak("2.40")),
            line("2026-11-24T03:20:32.000Z", "primary", "suspect", "healthy", &streak("2.04")),
            line("2026-11-24T03:20:33.000Z", "primary", "suspect", "down", "a probe failed"),
        ]
        .join("\n");
        let changes = health_changes(&log);
        assert_eq!(longest_streak(&changes), Some(Duration::from_millis(2040)));
        assert_eq!(primary_changes(&changes, Health::Suspect, Health::Down).count(), 1);
        assert_eq!(longest_streak(&[]), None);
    }
}
