//! A restart keeps what is true (issue 18): a controller built again on the
//! same store starts with health unknown, keeps open incidents open until the
//! backend recovers by the recovery rules, and keeps a pending approval
//! pending and approvable.

use std::path::Path;
use std::time::{Duration, Instant};

use cutover_control::clock::{Clock, Now};
use cutover_control::controller::{Controller, Event, LOCAL};
use cutover_control::health::Health;
use cutover_control::policy::{Action, Policy};
use std::sync::Arc;

use cutover_core::domain::IncidentState;
use cutover_store::SqliteStore;

/// The controller's time at `t`: one clock for the whole test, so that wall
/// times follow the instants.
fn at(t: Instant) -> Now {
    static CLOCK: std::sync::OnceLock<Clock> = std::sync::OnceLock::new();
    CLOCK.get_or_init(Clock::system).at(t)
}

/// No failover without a human: the rate limit is zero, so the default policy
/// asks for approval.
fn controller(dir: &Path, t0: Instant) -> Controller {
    let text = format!("[policy]\nmax_failovers_per_hour = 0\n{}", cutover_core::fixtures::TWO_BACKENDS);
    let env = |_: &str| Some("set".to_string());
    let config = cutover_core::config::load_str(&text, "cutover.toml", dir, &env).unwrap();
    let store = Arc::new(SqliteStore::open(&dir.join("cutover.db")).unwrap());
    Controller::new(config, Policy::load(None).unwrap(), store, t0).unwrap()
}

/// One probe a second from `from_s` (true = ok), each answered in 20 ms.
fn feed(c: &mut Controller, t0: Instant, backend: &str, from_s: u64, results: &[bool]) -> Vec<Event> {
    let mut events = Vec::new();
    for (i, &ok) in results.iter().enumerate() {
        let started = t0 + Duration::from_secs(from_s + i as u64);
        let now = started + Duration::from_millis(20);
        let outcome = if ok { "Ok" } else { "Timeout" };
        events.extend(c.observe(at(now), backend, LOCAL, started, ok, outcome));
        events.extend(c.tick(at(now)));
    }
    events
}

/// Runs a controller until the primary's incident awaits approval; returns its id.
fn incident_awaiting_approval(dir: &Path, t0: Instant) -> String {
    let mut c = controller(dir, t0);
    feed(&mut c, t0, "secondary", 0, &[true; 10]);
    feed(&mut c, t0, "primary", 0, &[true, true]);
    let events = feed(&mut c, t0, "primary", 2, &[false; 5]);
    let decided = events.iter().find_map(|e| match e {
        Event::Decided { decision, .. } => Some(decision.action),
        _ => None,
    });
    assert_eq!(decided, Some(Action::AwaitApproval), "{events:?}");
    let inc = c.store().open_incident_for("primary").unwrap().expect("an open incident");
    assert_eq!(inc.state, IncidentState::AwaitingApproval);
    inc.id
}

#[test]
fn health_is_unknown_after_restart_until_evidence() {
    let dir = tempfile::tempdir().unwrap();
    let t0 = Instant::now();
    incident_awaiting_approval(dir.path(), t0);
    let t1 = t0 + Duration::from_secs(60);
    let mut c = controller(dir.path(), t1);
    c.tick(at(t1));
    assert_eq!(c.health("primary", t1), Health::Unknown);
    assert_eq!(c.health("secondary", t1), Health::Unknown);
    let status = c.status(t1);
    assert_eq!(status["backends"][0]["vantages"]["local"]["health"], "unknown", "{status}");
    // Fresh evidence: the secondary (no incident) is healthy on its first success.
    feed(&mut c, t1, "secondary", 0, &[true]);
    assert_eq!(c.health("secondary", t1 + Duration::from_secs(1)), Health::Healthy);
}

#[test]
fn restart_while_primary_hung_keeps_the_incident_open() {
    let dir = tempfile::tempdir().unwrap();
    let t0 = Instant::now();
    let id = incident_awaiting_approval(dir.path(), t0);
    let t1 = t0 + Duration::from_secs(60);
    let mut c = controller(dir.path(), t1);
    // Ticks with no evidence, then one good probe: not a recovery.
    for ms in (0..2000).step_by(100) {
        c.tick(at(t1 + Duration::from_millis(ms)));
    }
    let events = feed(&mut c, t1, "primary", 2, &[true]);
    assert!(!events.iter().any(|e| matches!(e, Event::IncidentResolved { .. })), "{events:?}");
    assert_eq!(c.health("primary", t1 + Duration::from_secs(3)), Health::Recovering);
    assert_eq!(c.store().incident(&id).unwrap().unwrap().state, IncidentState::AwaitingApproval);
    // Still hung: fresh failures confirm it again and the policy is asked again.
    let events = feed(&mut c, t1, "primary", 3, &[false; 4]);
    assert!(events.iter().any(|e| matches!(e, Event::Decided { .. })), "re-evaluated: {events:?}");
    assert_eq!(c.store().open_incident_for("primary").unwrap().unwrap().id, id, "the same incident");
    // It really recovers: recover_successes over recover_after resolve it.
    let events = feed(&mut c, t1, "primary", 7, &[true; 5]);
    assert!(events.iter().any(|e| matches!(e, Event::IncidentResolved { id: r, .. } if *r == id)), "{events:?}");
}

#[test]
fn restart_keeps_a_pending_approval_pending() {
    let dir = tempfile::tempdir().unwrap();
    let t0 = Instant::now();
    let id = incident_awaiting_approval(dir.path(), t0);
    let t1 = t0 + Duration::from_secs(60);
    let mut c = controller(dir.path(), t1);
    feed(&mut c, t1, "secondary", 0, &[true; 3]);
    feed(&mut c, t1, "primary", 0, &[false; 4]);
    assert_eq!(c.store().incident(&id).unwrap().unwrap().state, IncidentState::AwaitingApproval);
    let due = c
        .approval(&id, true, "oncall", "paged, go", at(t1 + Duration::from_secs(10)))
        .expect("approvable by the paged id");
    let due = due.expect("a failover is due");
    assert_eq!((due.incident.as_str(), due.target.as_str()), (id.as_str(), "secondary"));
}
