use std::time::Duration;

use cutover_core::Outcome;
use cutover_core::domain::{RunKind, RunOutcome};
use cutover_s3::probe::{OpReport, ProbeReport};
use prometheus_client::registry::Registry;

use super::*;
use crate::controller::{BackendStatus, Status};
use crate::policy::{Action, Decision};
use crate::telemetry::{Event, Telemetry};

/// The text exposition of `telemetry`'s metrics, as `/metrics` shows them.
fn render(telemetry: &Telemetry) -> String {
    let mut registry = Registry::default();
    telemetry.metrics().register(&mut registry);
    let mut text = String::new();
    prometheus_client::encoding::prometheus_text::encode(&mut text, &registry).unwrap();
    text
}

fn probe(backend: &str, ms: f64) -> Event {
    let op = OpReport { op: "put", ok: true, ms, outcome: Outcome::Ok, detail: None };
    let report = ProbeReport { backend: backend.into(), ok: true, outcome: Outcome::Ok, ops: vec![op], detail: None };
    Event::ProbeCycle { vantage: "local".into(), report }
}

#[test]
fn renders_histograms_counters_and_gauges() {
    let t = Telemetry::default();
    t.emit(&probe("a", 3.0));
    let decision = Decision { action: Action::Failover, target: Some("b".into()), reason: "down".into() };
    t.emit(&Event::Decided { incident: "inc-1".into(), decision, policy_sha256: "x".into() });
    t.metrics().set_status(&Status {
        active: "a".into(),
        backends: vec![BackendStatus {
            name: "a".into(),
            role: "primary",
            health: Health::Down,
            vantages: Default::default(),
            needs_verify: true,
        }],
        open_incidents: 1,
        store_errors: Default::default(),
        leading: true,
        token: None,
    });
    let text = render(&t);
    assert!(
        text.contains(
            "cutover_probe_duration_seconds_bucket{backend=\"a\",vantage=\"local\",op=\"put\",le=\"0.005\"} 1"
        ),
        "{text}"
    );
    assert!(
        text.contains(
            "cutover_probe_duration_seconds_bucket{backend=\"a\",vantage=\"local\",op=\"put\",le=\"0.0025\"} 0"
        )
    );
    assert!(text.contains("cutover_probe_cycles_total{backend=\"a\",vantage=\"local\",outcome=\"Ok\"} 1"), "{text}");
    assert!(text.contains("cutover_decisions_total{action=\"failover\"} 1"), "{text}");
    assert!(text.contains("# TYPE cutover_open_incidents gauge\ncutover_open_incidents 1"), "{text}");
    assert!(text.contains("cutover_backend_health{backend=\"a\",state=\"down\"} 1"), "{text}");
    assert!(text.contains("cutover_backend_health{backend=\"a\",state=\"healthy\"} 0"), "{text}");
    assert!(text.contains("# HELP cutover_decisions_total "), "every family has a HELP line: {text}");

    let settled = Event::RunSettled {
        incident: "inc-1".into(),
        kind: RunKind::Failover,
        outcome: RunOutcome::Completed,
        detection_to_switch: Some(Duration::from_secs(2)),
    };
    t.emit(&settled);
    let text = render(&t);
    assert!(text.contains("cutover_detection_to_validated_switch_seconds_bucket{le=\"2.5\"} 1"), "{text}");
    assert!(text.contains("cutover_detection_to_validated_switch_seconds_bucket{le=\"1\"} 0"), "{text}");
    assert!(text.contains("cutover_detection_to_validated_switch_seconds_count 1"), "{text}");
    // Regression: bucket counts were made cumulative twice (here and by the
    // text encoder), so every bucket above the first non-empty one grew.
    assert!(text.contains("cutover_detection_to_validated_switch_seconds_bucket{le=\"5\"} 1"), "{text}");
    assert!(text.contains("cutover_detection_to_validated_switch_seconds_bucket{le=\"+Inf\"} 1"), "{text}");
    assert!(text.contains("cutover_failovers_total 1"), "{text}");
}

#[test]
fn set_gauges_stay_until_set_again() {
    let t = Telemetry::default();
    t.emit(&Event::SignalRead { name: "prometheus".into(), up: true, value: Some(0.0), firing: None });
    t.emit(&Event::SignalRead { name: "prometheus".into(), up: false, value: None, firing: Some(true) });
    t.metrics().set_status(&Status {
        active: "a".into(),
        backends: Vec::new(),
        open_incidents: 0,
        store_errors: Default::default(),
        leading: true,
        token: None,
    });
    let text = render(&t);
    assert!(text.contains("# TYPE cutover_signal_up gauge\ncutover_signal_up{signal=\"prometheus\"} 0\n"), "{text}");
    assert!(text.contains("cutover_signal_value{signal=\"prometheus\"} NaN\n"), "{text}");
    assert!(text.contains("cutover_signal_firing{signal=\"prometheus\"} 1\n"), "{text}");
    assert!(text.contains("# TYPE cutover_open_incidents gauge\ncutover_open_incidents 0"), "{text}");
}

#[test]
fn whole_numbers_show_without_a_fraction_and_others_as_they_are() {
    let t = Telemetry::default();
    t.emit(&Event::SignalRead { name: "p".into(), up: true, value: Some(0.0), firing: Some(false) });
    t.emit(&Event::SignalRead { name: "q".into(), up: true, value: Some(0.25), firing: Some(false) });
    let text = render(&t);
    assert!(text.contains("cutover_signal_value{signal=\"p\"} 0\n"), "{text}");
    assert!(text.contains("cutover_signal_value{signal=\"q\"} 0.25\n"), "{text}");
}

#[test]
fn copied_counters_show_their_source() {
    let t = Telemetry::default();
    t.emit(&Event::StoreFailed { op: "decision".into(), error: None });
    t.metrics().set_denials(2, 3, 4);
    let text = render(&t);
    assert!(text.contains("cutover_store_errors_total{op=\"decision\"} 1\n"), "{text}");
    assert!(text.contains("cutover_store_errors_total{op=\"audit.denied\"} 2\n"), "{text}");
    assert!(text.contains("cutover_audit_denials_queue_full_total 3\n"), "{text}");
    assert!(text.contains("cutover_audit_denial_entries_total 4\n"), "{text}");
}

#[test]
fn leadership_events_drive_the_ha_metrics() {
    let t = Telemetry::default();
    let text = render(&t);
    assert!(text.contains("# TYPE cutover_ha_leader gauge\ncutover_ha_leader 0\n"), "{text}");
    t.emit(&Event::LeadershipChanged { leading: true, token: Some(42), leader: None });
    let text = render(&t);
    assert!(text.contains("cutover_ha_leader 1\n"), "{text}");
    assert!(text.contains("cutover_ha_leadership_changes_total 1\n"), "{text}");
    t.emit(&Event::WriteFenced { op: "decision".into(), revision: Some(42) });
    t.emit(&Event::LeadershipChanged { leading: false, token: None, leader: None });
    let text = render(&t);
    assert!(text.contains("cutover_ha_leader 0\n"), "{text}");
    assert!(text.contains("cutover_ha_leadership_changes_total 2\n"), "{text}");
    assert!(text.contains("cutover_ha_fenced_writes_total 1\n"), "{text}");
    assert!(!text.contains("cutover_store_errors_total{op=\"decision\"}"), "a fenced write is no store error: {text}");
}
