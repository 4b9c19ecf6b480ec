//! What a drill reads back from its controller: completed failovers and
//! the timeline's measures.

use cutover_core::domain::{RunKind, RunState};
use std::time::Instant;

use crate::wiring::Running;

/// Completed failover runs.
pub fn failovers(r: &Running) -> u32 {
    let store = &r.shared.store;
    let incidents = store.incidents().unwrap_or_default();
    incidents
        .iter()
        .flat_map(|i| store.runs_for(&i.id).unwrap_or_default())
        .filter(|run| run.kind == RunKind::Failover && run.state == RunState::Completed)
        .count() as u32
}

/// Detection, first decision and validated switch, from the first
/// incident's timeline, in seconds after `onset`.
pub fn timeline_measures(r: &Running, onset: Instant) -> (Option<f64>, Option<String>, Option<f64>) {
    let store = &r.shared.store;
    let Some(inc) = store.incidents().ok().and_then(|v| v.into_iter().last()) else { return (None, None, None) };
    let since = |at: &str| -> Option<f64> {
        let t = cutover_core::time::parse_rfc3339(at)?;
        let now = std::time::SystemTime::now();
        let age = now.duration_since(t).ok()?;
        let at_instant = Instant::now().checked_sub(age)?;
        Some(at_instant.saturating_duration_since(onset).as_secs_f64())
    };
    let timeline = store.timeline(&inc.id).unwrap_or_default();
    let detect = timeline.iter().find(|e| e.kind == "incident.opened").and_then(|e| since(&e.at));
    let decision =
        timeline.iter().find(|e| e.kind == "decision").and_then(|e| e.detail["action"].as_str().map(String::from));
    let rto = timeline
        .iter()
        .find(|e| e.kind == "runbook.completed" && e.detail["kind"] == RunKind::Failover.as_str())
        .and_then(|e| since(&e.at));
    (detect, decision, rto)
}
