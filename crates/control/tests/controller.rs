//! The controller with a real store and the default policy, fed scripted
//! probe results: a latency-only brownout is evidence that asks for approval,
//! and signal readings reach the policy input.

use std::path::Path;
use std::time::{Duration, Instant};

use cutover_control::clock::{Clock, Now};
use cutover_control::controller::{Controller, Event, LOCAL};
use cutover_control::health::Health;
use cutover_control::policy::{Action, Policy};
use std::sync::Arc;

use cutover_store::SqliteStore;
use serde_json::json;

/// The controller's time at `t`: one clock for the whole test, so that wall
/// times follow the instants.
fn at(t: Instant) -> Now {
    static CLOCK: std::sync::OnceLock<Clock> = std::sync::OnceLock::new();
    CLOCK.get_or_init(Clock::system).at(t)
}

fn config_text() -> String {
    format!("[detect]\np95_latency = \"300ms\"\n{}", cutover_core::fixtures::TWO_BACKENDS)
}

fn controller(dir: &Path, t0: Instant) -> Controller {
    let env = |_: &str| Some("set".to_string());
    let config = cutover_core::config::load_str(&config_text(), "cutover.toml", dir, &env).unwrap();
    let store = Arc::new(SqliteStore::open(&dir.join("cutover.db")).unwrap());
    Controller::new(config, Policy::load(None).unwrap(), store, t0).unwrap()
}

/// One probe a second from `from_s`, each taking `latency_ms` (0 = failed).
fn feed(c: &mut Controller, t0: Instant, backend: &str, from_s: u64, latencies_ms: &[u64]) -> Vec<Event> {
    let mut events = Vec::new();
    for (i, &lat) in latencies_ms.iter().enumerate() {
        let started = t0 + Duration::from_secs(from_s + i as u64);
        let (ok, lat, outcome) = if lat == 0 { (false, 5, "ConnectRefused") } else { (true, lat, "Ok") };
        let now = started + Duration::from_millis(lat);
        events.extend(c.observe(at(now), backend, LOCAL, started, ok, outcome));
        events.extend(c.tick(at(now)));
    }
    events
}

fn decisions(events: &[Event]) -> Vec<(Action, String)> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Decided { decision, .. } => Some((decision.action, decision.reason.clone())),
            _ => None,
        })
        .collect()
}

#[test]
fn a_latency_only_brownout_asks_for_approval_with_the_signals_in_the_input() {
    let dir = tempfile::tempdir().unwrap();
    let t0 = Instant::now();
    let mut c = controller(dir.path(), t0);
    let reading =
        json!({"status": "ok", "value": 0.3, "threshold": 0.05, "firing": true, "backend": "primary", "age_ms": 120});
    c.set_signal("prometheus", reading.clone());
    feed(&mut c, t0, "secondary", 0, &[20; 20]);
    feed(&mut c, t0, "primary", 0, &[20; 10]);
    let events = feed(&mut c, t0, "primary", 10, &[450; 5]);
    let reasons: Vec<&str> = events
        .iter()
        .filter_map(|e| match e {
            Event::HealthChanged { reason, .. } => Some(reason.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(reasons.len(), 2, "{events:?}");
    assert!(reasons[0].contains("p95 latency 450ms") && reasons[0].contains("detect.p95_latency 300ms"), "{reasons:?}");
    assert!(reasons[1].contains("p95 latency 450ms") && reasons[1].ends_with("s"), "{reasons:?}");
    assert_eq!(c.health("primary", t0 + Duration::from_secs(15)), Health::Down);

    let d = decisions(&events);
    assert_eq!(d.len(), 1, "{events:?}");
    assert_eq!(d[0].0, Action::AwaitApproval, "{d:?}");
    assert!(d[0].1.contains("latency only"), "{d:?}");

    let incident = c.store().open_incident_for("primary").unwrap().unwrap();
    let input = c.policy_input(&incident.id, &incident.opened_at, "primary", at(t0 + Duration::from_secs(15)));
    assert_eq!(input["evidence"]["latency_only"], true, "{input}");
    assert_eq!(input["signals"], json!({"prometheus": reading}));
}

#[test]
fn failures_are_more_than_latency() {
    let dir = tempfile::tempdir().unwrap();
    let t0 = Instant::now();
    let mut c = controller(dir.path(), t0);
    feed(&mut c, t0, "secondary", 0, &[20; 20]);
    feed(&mut c, t0, "primary", 0, &[20; 10]);
    let events = feed(&mut c, t0, "primary", 10, &[450, 450, 0, 0, 0, 0]);
    let incident = c.store().open_incident_for("primary").unwrap().expect("an incident");
    let input = c.policy_input(&incident.id, &incident.opened_at, "primary", at(t0 + Duration::from_secs(16)));
    assert_eq!(input["evidence"]["latency_only"], false, "{input}");
    assert_eq!(input["signals"], json!({}), "no signal configured, none in the input");
    assert!(!decisions(&events).is_empty(), "{events:?}");
}
