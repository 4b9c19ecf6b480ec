//! A mutation that cannot be audited is not performed: with the state store
//! refusing audit entries (a trigger that raises on insert), no decision, no
//! failover and no approval takes effect, and every failure is counted.

use std::path::Path;
use std::time::{Duration, Instant};

use cutover_control::clock::{Clock, Now};
use cutover_control::controller::{Controller, Event, LOCAL, RequestError};
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

fn controller(dir: &Path, t0: Instant, extra: &str) -> Controller {
    let env = |_: &str| Some("set".to_string());
    let text = format!("{extra}\n{}", cutover_core::fixtures::TWO_BACKENDS);
    let config = cutover_core::config::load_str(&text, "cutover.toml", dir, &env).unwrap();
    let store = Arc::new(SqliteStore::open(&dir.join("cutover.db")).unwrap());
    Controller::new(config, Policy::load(None).unwrap(), store, t0).unwrap()
}

/// A second connection to the database, as an operator (or a full disk)
/// would break it: audit inserts of `action` (any when `None`) fail.
fn refuse_audit(dir: &Path, action: Option<&str>) {
    let db = rusqlite::Connection::open(dir.join("cutover.db")).unwrap();
    let when = action.map(|a| format!("WHEN NEW.action = '{a}'")).unwrap_or_default();
    db.execute_batch(&format!(
        "CREATE TRIGGER refuse_audit BEFORE INSERT ON audit {when} BEGIN SELECT RAISE(ABORT, 'audit refused'); END;"
    ))
    .unwrap();
}

fn allow_audit(dir: &Path) {
    rusqlite::Connection::open(dir.join("cutover.db")).unwrap().execute_batch("DROP TRIGGER refuse_audit").unwrap();
}

/// Probes of `backend` every 100 ms from `from` for `n` rounds (ok or not,
/// with a failed re-check when not), each followed by a tick.
fn feed(c: &mut Controller, t0: Instant, from: Duration, n: u32, backend: &str, ok: bool) -> Vec<Event> {
    let mut events = Vec::new();
    for i in 0..n {
        let started = t0 + from + Duration::from_millis(100) * i;
        let now = started + Duration::from_millis(5);
        let outcome = if ok { "Ok" } else { "ConnectRefused" };
        events.extend(c.observe(at(now), backend, LOCAL, started, ok, outcome));
        if !ok {
            // The independent re-check fails too: full evidence.
            events.extend(c.verified(at(now), backend, started, false, outcome));
        }
        events.extend(c.observe(at(now), "secondary", LOCAL, started, true, "Ok"));
        events.extend(c.tick(at(now)));
    }
    events
}

fn runbooks(events: &[Event]) -> usize {
    events.iter().filter(|e| matches!(e, Event::RunbookDue(_))).count()
}

#[test]
fn a_failover_decision_that_cannot_be_audited_is_not_made_and_is_counted() {
    let dir = tempfile::tempdir().unwrap();
    let t0 = Instant::now();
    let mut c = controller(dir.path(), t0, "");
    feed(&mut c, t0, Duration::ZERO, 10, "primary", true);
    refuse_audit(dir.path(), Some("decision"));
    let events = feed(&mut c, t0, Duration::from_secs(1), 40, "primary", false);
    assert!(events.iter().any(|e| matches!(e, Event::IncidentOpened { .. })), "{events:?}");
    assert!(!events.iter().any(|e| matches!(e, Event::Decided { .. })), "{events:?}");
    assert_eq!(runbooks(&events), 0, "a failover started without its audit entry: {events:?}");
    let inc = c.store().open_incident_for("primary").unwrap().unwrap();
    assert_eq!((inc.state, &inc.decision), (IncidentState::Open, &serde_json::Value::Null), "{inc:?}");
    assert!(c.store().timeline(&inc.id).unwrap().iter().all(|e| e.kind != "decision"));
    let failed = c.store_errors().get("decision").copied().unwrap_or(0);
    assert!(failed >= 1, "{:?}", c.store_errors());

    // Once the store takes audit entries again, the decision is made.
    allow_audit(dir.path());
    let events = feed(&mut c, t0, Duration::from_secs(5), 5, "primary", false);
    assert_eq!(runbooks(&events), 1, "{events:?}");
    let inc = c.store().incident(&inc.id).unwrap().unwrap();
    assert_eq!(inc.state, IncidentState::FailingOver);
    assert_eq!(c.store().verify_audit().unwrap().map(|n| n > 0), Ok(true));
}

#[test]
fn an_incident_that_cannot_be_audited_is_not_opened() {
    let dir = tempfile::tempdir().unwrap();
    let t0 = Instant::now();
    let mut c = controller(dir.path(), t0, "");
    feed(&mut c, t0, Duration::ZERO, 10, "primary", true);
    refuse_audit(dir.path(), None);
    let events = feed(&mut c, t0, Duration::from_secs(1), 40, "primary", false);
    assert!(events.iter().any(|e| matches!(e, Event::HealthChanged { .. })), "{events:?}");
    assert!(!events.iter().any(|e| matches!(e, Event::IncidentOpened { .. } | Event::RunbookDue(_))), "{events:?}");
    assert!(c.store().incidents().unwrap().is_empty());
    assert!(c.store_errors().get("incident.open").copied().unwrap_or(0) >= 1, "{:?}", c.store_errors());
}

#[test]
fn an_approval_that_cannot_be_audited_is_refused_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let t0 = Instant::now();
    let mut c = controller(dir.path(), t0, "[policy]\nmax_failovers_per_hour = 0\n");
    feed(&mut c, t0, Duration::ZERO, 10, "primary", true);
    let events = feed(&mut c, t0, Duration::from_secs(1), 40, "primary", false);
    let decided: Vec<Action> = events
        .iter()
        .filter_map(|e| match e {
            Event::Decided { decision, .. } => Some(decision.action),
            _ => None,
        })
        .collect();
    assert_eq!(decided, vec![Action::AwaitApproval], "{events:?}");
    let inc = c.store().open_incident_for("primary").unwrap().unwrap();

    refuse_audit(dir.path(), None);
    let r = c.approval(&inc.id, true, "oncall", "go", at(t0 + Duration::from_secs(10)));
    assert!(matches!(r, Err(RequestError::Store(ref e)) if e.to_string().contains("audit refused")), "{r:?}");
    assert_eq!(c.store().incident(&inc.id).unwrap().unwrap().state, IncidentState::AwaitingApproval);
    assert_eq!(c.store().approval_after(&inc.id, 0).unwrap(), None, "the verdict was recorded without its audit entry");
    assert_eq!(c.store_errors().get("approval"), Some(&1));

    let r = c.force_failover("secondary", "drill", "admin", at(t0 + Duration::from_secs(9)));
    assert!(matches!(r, Err(RequestError::Store(_))), "{r:?}");
    assert_eq!(c.store().incident(&inc.id).unwrap().unwrap().state, IncidentState::AwaitingApproval);
    assert_eq!(c.store_errors().get("failover.forced"), Some(&1));

    allow_audit(dir.path());
    let due = c
        .approval(&inc.id, true, "oncall", "go", at(t0 + Duration::from_secs(10)))
        .unwrap()
        .expect("the failover starts");
    assert_eq!(due.target, "secondary");
}
