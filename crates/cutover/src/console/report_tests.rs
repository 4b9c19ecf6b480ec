use std::time::{Duration, SystemTime};

use cutover_core::domain::{RunKind, RunState, StepPhase, StepState};
use cutover_store::prelude::*;
use cutover_store::{Fence, NewRun, SqliteStore, StepRecord, StepRef};
use serde_json::json;

use super::*;

/// An incident that awaited approval, was approved, failed over (switch
/// and validate) and fell back, recorded in a real SQLite store.
fn recorded() -> (tempfile::TempDir, SqliteStore, String) {
    let dir = tempfile::tempdir().unwrap();
    let s = SqliteStore::open(&dir.path().join("state.db")).unwrap();
    let f = Fence::local();
    let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_780_000_000);
    let at = |ms: u64| t0 + Duration::from_millis(ms);
    let id = s.open_incident(&f, "primary", at(0)).unwrap();
    s.add_event(&f, &id, at(0), "incident.opened", &json!({"backend": "primary", "quorum": {"down": 1}})).unwrap();
    let decision = json!({"action": "await_approval", "target": "secondary", "reason": "a | human decides", "policy_sha256": "feed"});
    s.add_event(&f, &id, at(500), "decision", &decision).unwrap();
    let approval = json!({"verdict": "approve", "by": "oncall", "comment": "go <now>"});
    s.add_event(&f, &id, at(4_000), "approval", &approval).unwrap();
    let run = |kind| NewRun {
        incident: &id,
        kind,
        source: "primary",
        target: "secondary",
        reason: "approved",
        actor: "oncall",
        runbook: "built-in",
        runbook_sha256: "x",
    };
    let r = s.begin_run(&f, &run(RunKind::Failover), at(4_100)).unwrap();
    for (idx, uses, end) in [(0usize, "state.switch", 4_200u64), (1, "validate", 4_900)] {
        let step = StepRef { run: r, idx, phase: StepPhase::Do };
        s.step_intent(&f, step, uses, uses, &json!({}), at(end - 50)).unwrap();
        s.step_result(&f, step, StepState::Ok, &json!({"ok": true}), at(end)).unwrap();
    }
    s.set_run_state(&f, r, RunState::Completed, None, Some(at(5_000))).unwrap();
    let fb = s.begin_run(&f, &run(RunKind::Fallback), at(60_000)).unwrap();
    let resync = StepRef { run: fb, idx: 0, phase: StepPhase::Do };
    s.step_intent(&f, resync, "sync.resync", "sync.resync", &json!({}), at(60_100)).unwrap();
    let copied = json!({"copied": 12, "deleted": 2, "rounds": 1, "remaining": 0, "restored_missing": 1});
    s.step_result(&f, resync, StepState::Ok, &copied, at(61_000)).unwrap();
    s.set_run_state(&f, fb, RunState::Completed, None, Some(at(62_500))).unwrap();
    (dir, s, id)
}

#[test]
fn acknowledged_writes_lost_come_from_the_fallbacks_resync() {
    let (_dir, s, id) = recorded();
    let sum = Report::read(&s, &id).unwrap().unwrap().summary();
    assert!(sum.writes_lost.starts_with("none: "), "{}", sum.writes_lost);
    assert!(sum.writes_lost.contains("12 writes and 2 deletes and restored 1 object"), "{}", sum.writes_lost);
    assert!(!writes_lost(None).starts_with("none"), "no fallback yet is not a finding");
    let step = |state, result| StepRecord {
        idx: 0,
        phase: StepPhase::Do,
        name: "copy back".into(),
        uses: "sync.resync".into(),
        state,
        attempts: 1,
        started_at: String::new(),
        ended_at: None,
        intent: json!({}),
        result,
    };
    let failed = writes_lost(Some(&[step(StepState::Failed, json!({"error": "3 writes are still not copied back"}))]));
    assert!(failed.starts_with("unknown: ") && failed.contains("3 writes are still not copied back"), "{failed}");
    assert!(writes_lost(Some(&[])).starts_with("not checked"));
    let left = writes_lost(Some(&[step(StepState::Ok, json!({"remaining": 4}))]));
    assert!(left.starts_with("unknown: ") && left.contains("4 writes remaining"), "{left}");
}

#[test]
fn the_summary_times_come_from_the_records() {
    let (_dir, s, id) = recorded();
    let r = Report::read(&s, &id).unwrap().unwrap();
    let sum = r.summary();
    assert_eq!(sum.to_decide, Some(Duration::from_millis(500)));
    assert_eq!(sum.rto, Some(Duration::from_millis(4_900)));
    assert_eq!(sum.fallback, Some(Duration::from_millis(2_500)));
    assert_eq!(sum.verdicts.len(), 1);
    assert!(sum.verdicts[0].starts_with("approve by oncall"), "{:?}", sum.verdicts);
    assert!(Report::read(&s, "inc-none").unwrap().is_none());
}

#[test]
fn the_markdown_report_has_every_section_and_keeps_its_tables_whole() {
    let (_dir, s, id) = recorded();
    let md = Report::read(&s, &id).unwrap().unwrap().render(Format::Markdown);
    for part in [
        "# Incident",
        "## Summary",
        "RTO (incident opened → validated switch): 4.9 s",
        "## Decision",
        "`feed`",
        "## Evidence",
        "## Timeline",
        "## Runbook steps",
        "| 2 | do | validate | validate | ok | 1 |",
        "- decision:",
        "- switch:",
        "- validation:",
        "- fallback:",
    ] {
        assert!(md.contains(part), "{part:?} missing:\n{md}");
    }
    assert!(md.contains("a \\| human decides"), "a pipe in a cell is escaped:\n{md}");
}

#[test]
fn the_html_report_is_self_contained_with_its_chart_and_escapes_what_it_shows() {
    let (_dir, s, id) = recorded();
    let html = Report::read(&s, &id).unwrap().unwrap().render(Format::Html);
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert!(
        html.contains("<svg")
            && html.contains("data-marker=\"validation\"")
            && html.contains("data-marker=\"fallback\"")
    );
    assert!(!html.contains("<script") && !html.contains("src=") && !html.contains("href="), "nothing is fetched");
    assert!(html.contains("go &lt;now&gt;") && !html.contains("go <now>"), "escaped");
    assert_eq!("md".parse::<Format>(), Ok(Format::Markdown));
    assert!("pdf".parse::<Format>().unwrap_err().contains("md or html"));
}

/// The points of the probe line of `backend` in a chart, and its failure marks.
pub(crate) fn series_of(svg: &str, backend: &str) -> (usize, usize) {
    let start = format!("<g class=\"series\" data-backend=\"{backend}\">");
    let Some(g) = svg.split(&start).nth(1).and_then(|rest| rest.split("</g>").next()) else { return (0, 0) };
    let points = g.split("points=\"").nth(1).and_then(|p| p.split('"').next()).unwrap_or("");
    (points.split_whitespace().count(), g.matches("class=\"failure\"").count())
}

#[test]
fn the_report_draws_the_stored_probe_lines_of_both_backends() {
    let (dir, s, id) = recorded();
    let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_780_000_000);
    let sample = |backend: &str, secs: i64, ok: bool| cutover_store::ProbeSample {
        backend: backend.into(),
        vantage: cutover_control::controller::LOCAL.into(),
        at: if secs < 0 { t0 - Duration::from_secs(-secs as u64) } else { t0 + Duration::from_secs(secs as u64) },
        latency_ms: 5.0 + secs.rem_euclid(7) as f64,
        outcome: if ok { cutover_store::ProbeOutcome::Ok } else { cutover_store::ProbeOutcome::Failed },
    };
    // primary fails from 3 s before the incident; secondary is fine throughout.
    let batch: Vec<_> =
        (-15..70).flat_map(|i| [sample("primary", i, !(-3..50).contains(&i)), sample("secondary", i, true)]).collect();
    s.record_probe_samples(&batch).unwrap();
    // The primary went suspect 2 s before the incident, seen locally; an
    // older suspect (out of the window) and another backend's do not count.
    use cutover_core::domain::Health;
    s.record_health(t0 - Duration::from_secs(900), "primary", "local", Health::Healthy, Health::Suspect, "old")
        .unwrap();
    s.record_health(t0 - Duration::from_secs(2), "primary", "local", Health::Healthy, Health::Suspect, "failed")
        .unwrap();
    s.record_health(t0, "secondary", "local", Health::Healthy, Health::Suspect, "other").unwrap();
    drop(s);
    // Another handle on the file, as `cutover incidents report` opens it.
    let other = SqliteStore::open(&dir.path().join("state.db")).unwrap();
    let html = Report::read(&other, &id).unwrap().unwrap().render(Format::Html);
    let (primary_points, primary_failures) = series_of(&html, "primary");
    let (secondary_points, secondary_failures) = series_of(&html, "secondary");
    assert!(primary_points >= 10 && primary_failures >= 40, "primary: {primary_points} points, {primary_failures} ×");
    assert!(secondary_points >= 60 && secondary_failures == 0, "secondary: {secondary_points} points");
    assert!(!html.contains("no probe samples stored"), "{html}");
    assert!(html.contains("data-marker=\"onset\""), "the onset comes from the stored probes");
    let md = Report::read(&other, &id).unwrap().unwrap().render(Format::Markdown);
    assert!(md.contains("- onset: "), "{md}");
    let suspect = format!("- suspect: {}", cutover_core::time::rfc3339(t0 - Duration::from_secs(2)));
    assert!(md.contains(&suspect), "{suspect:?} from the stored health history in:\n{md}");
}

#[test]
fn client_impact_sums_the_gateways_answers_of_the_incident_and_names_the_worst_second() {
    let (_dir, s, id) = recorded();
    let before = Report::read(&s, &id).unwrap().unwrap().summary();
    assert!(before.client_impact.starts_with("not recorded on this node"), "{}", before.client_impact);
    let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_780_000_000);
    let c = |secs: i64, answered: u64, failed: u64| cutover_store::ClientCount {
        at: if secs < 0 { t0 - Duration::from_secs(-secs as u64) } else { t0 + Duration::from_secs(secs as u64) },
        answered,
        failed,
    };
    // Before the incident (not counted), during it, with the worst second at +2 s.
    s.record_client_counts(&[c(-5, 50, 50), c(1, 20, 5), c(2, 20, 18), c(3, 20, 0)]).unwrap();
    let sum = Report::read(&s, &id).unwrap().unwrap().summary();
    let worst = cutover_core::time::rfc3339(t0 + Duration::from_secs(2));
    assert_eq!(
        sum.client_impact,
        format!(
            "23 of 60 client requests failed (5xx, 38.3 %) from opening to close; the worst second, {worst}, had 18 of 20 failed"
        )
    );
    let md = Report::read(&s, &id).unwrap().unwrap().render(Format::Markdown);
    assert!(md.contains("23 of 60 client requests failed"), "{md}");
}
