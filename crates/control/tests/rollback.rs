//! Rolling back onto a backend that is down is never done silently (issue
//! 18): the controller's rollback verdict (health, or the policy's optional
//! `rollback` rule), and a human's approval or rejection of a held rollback.

use std::path::Path;
use std::time::{Duration, Instant};

use std::sync::Arc;

use cutover_control::clock::{Clock, Now};
use cutover_control::controller::{Controller, Event, LOCAL, RequestError, RollbackQuestion};
use cutover_control::policy::Policy;
use cutover_core::domain::{IncidentState, RunKind, RunOutcome, RunState};
use cutover_store::{Fence, NewRun, SqliteStore, StoreExt};
use serde_json::json;

/// The controller's time at `t`: one clock for the whole test, so that wall
/// times follow the instants.
fn at(t: Instant) -> Now {
    static CLOCK: std::sync::OnceLock<Clock> = std::sync::OnceLock::new();
    CLOCK.get_or_init(Clock::system).at(t)
}

fn controller(dir: &Path, t0: Instant, policy: Policy) -> Controller {
    let text = format!("[policy]\nmax_failovers_per_hour = 0\n{}", cutover_core::fixtures::TWO_BACKENDS);
    let env = |_: &str| Some("set".to_string());
    let config = cutover_core::config::load_str(&text, "cutover.toml", dir, &env).unwrap();
    let store = Arc::new(SqliteStore::open(&dir.join("cutover.db")).unwrap());
    Controller::new(config, policy, store, t0).unwrap()
}

/// One probe a second from `from_s` (true = ok), each answered in 20 ms.
fn feed(c: &mut Controller, t0: Instant, backend: &str, from_s: u64, results: &[bool]) -> Vec<Event> {
    let mut events = Vec::new();
    for (i, &ok) in results.iter().enumerate() {
        let started = t0 + Duration::from_secs(from_s + i as u64);
        let now = started + Duration::from_millis(20);
        events.extend(c.observe(at(now), backend, LOCAL, started, ok, if ok { "Ok" } else { "Timeout" }));
        events.extend(c.tick(at(now)));
    }
    events
}

/// A forced failover to the secondary whose run switched, then failed at
/// "smoke test", its rollback held: (incident, run).
fn held_failover(c: &mut Controller, t0: Instant) -> (String, i64) {
    feed(c, t0, "secondary", 0, &[true; 3]);
    feed(c, t0, "primary", 0, &[true; 3]);
    let due = c.force_failover("secondary", "drill", "boss", at(t0)).unwrap();
    let store = c.store().clone();
    let run = store
        .begin_run(
            &Fence::local(),
            &NewRun {
                incident: &due.incident,
                kind: RunKind::Failover,
                source: "primary",
                target: "secondary",
                reason: "drill",
                actor: "boss",
                runbook: "built-in failover",
                runbook_sha256: "x",
            },
            std::time::SystemTime::now(),
        )
        .unwrap();
    c.set_active("secondary").unwrap();
    let detail = json!({"step": "smoke test", "error": "connection refused", "reason": "primary is down"});
    store.set_run_state(&Fence::local(), run, RunState::RollbackHeld, Some(&detail), None).unwrap();
    let held = RunOutcome::RollbackHeld {
        step: "smoke test".into(),
        error: "connection refused".into(),
        reason: "primary is down".into(),
    };
    c.run_finished(&due.incident, RunKind::Failover, &held, at(t0));
    (due.incident, run)
}

fn question<'a>(incident: &'a str, run: i64) -> RollbackQuestion<'a> {
    RollbackQuestion {
        run,
        incident,
        kind: RunKind::Failover,
        failed_step: "smoke test",
        error: "connection refused",
        onto: "primary",
    }
}

#[test]
fn a_rollback_onto_a_down_backend_is_not_allowed_without_a_say() {
    let dir = tempfile::tempdir().unwrap();
    let t0 = Instant::now();
    let mut c = controller(dir.path(), t0, Policy::load(None).unwrap());
    let (id, run) = held_failover(&mut c, t0);
    let (allow, reason, _) = c.rollback_verdict(&question(&id, run), at(t0 + Duration::from_secs(3)));
    assert!(allow, "healthy: {reason}");
    assert_eq!(reason, "primary healthy");
    let now = t0 + Duration::from_secs(20);
    feed(&mut c, t0, "primary", 3, &[false; 15]);
    let (allow, reason, health) = c.rollback_verdict(&question(&id, run), at(now));
    assert!(!allow);
    assert_eq!(health.as_str(), "down");
    assert_eq!(
        reason,
        "not rolling back onto primary: it is down; approve to roll back anyway, reject to stay on secondary"
    );
}

#[test]
fn the_policy_rollback_rule_has_the_say_when_it_has_one() {
    let dir = tempfile::tempdir().unwrap();
    let t0 = Instant::now();
    let text = format!(
        "{}\nrollback := {{\"allow\": true, \"reason\": sprintf(\"%s is %s after %s; the policy allows it\", \
         [input.rollback.onto, input.rollback.onto_health, input.rollback.failed_step])}}\n",
        cutover_control::policy::DEFAULT_POLICY
    );
    let policy = Policy::from_sources(&[("p.rego".into(), text)], "p").unwrap();
    let mut c = controller(dir.path(), t0, policy);
    let (id, run) = held_failover(&mut c, t0);
    feed(&mut c, t0, "primary", 3, &[false; 15]);
    let (allow, reason, _) = c.rollback_verdict(&question(&id, run), at(t0 + Duration::from_secs(20)));
    assert!(allow, "{reason}");
    assert_eq!(reason, "primary is down after smoke test; the policy allows it");
}

#[test]
fn a_held_rollback_awaits_approval_and_approve_runs_it() {
    let dir = tempfile::tempdir().unwrap();
    let t0 = Instant::now();
    let mut c = controller(dir.path(), t0, Policy::load(None).unwrap());
    let (id, run) = held_failover(&mut c, t0);
    assert_eq!(c.store().incident(&id).unwrap().unwrap().state, IncidentState::AwaitingApproval);
    // While it awaits a human, nothing new is decided on the incident.
    let events = feed(&mut c, t0, "primary", 3, &[false; 15]);
    assert!(!events.iter().any(|e| matches!(e, Event::Decided { .. } | Event::RunbookDue(_))), "{events:?}");
    assert_eq!(c.held_rollback(&id).unwrap().map(|r| r.id), Some(run));
    let due = c
        .approval(&id, true, "oncall", "roll back anyway", at(t0 + Duration::from_secs(20)))
        .unwrap()
        .expect("the rollback is due");
    assert_eq!(
        (due.kind, due.source.as_str(), due.target.as_str(), due.actor.as_str()),
        (RunKind::Rollback, "secondary", "primary", "oncall")
    );
    assert_eq!(c.store().incident(&id).unwrap().unwrap().state, IncidentState::RollingBack);
    let kinds: Vec<String> = c.store().timeline(&id).unwrap().into_iter().map(|e| e.kind).collect();
    assert!(kinds.contains(&"rollback.approved".to_string()), "{kinds:?}");
    let again = c.approval(&id, true, "oncall", "again", at(t0 + Duration::from_secs(20))).unwrap_err();
    assert!(matches!(&again, RequestError::Conflict(m) if m.contains("already decided")), "{again:?}");
    c.run_finished(&id, RunKind::Rollback, &RunOutcome::Completed, at(t0));
    assert_eq!(c.store().incident(&id).unwrap().unwrap().state, IncidentState::RolledBack);
}

#[test]
fn reject_keeps_the_failover_and_closes_the_held_run() {
    let dir = tempfile::tempdir().unwrap();
    let t0 = Instant::now();
    let mut c = controller(dir.path(), t0, Policy::load(None).unwrap());
    let (id, run) = held_failover(&mut c, t0);
    assert_eq!(c.approval(&id, false, "oncall", "stay on secondary", at(t0 + Duration::from_secs(20))).unwrap(), None);
    assert_eq!(c.store().incident(&id).unwrap().unwrap().state, IncidentState::FailedOver);
    assert_eq!(c.active(), "secondary");
    let record = c.store().run(run).unwrap().unwrap();
    assert_eq!(record.state, RunState::RollbackRejected);
    assert!(record.ended_at.is_some());
    assert_eq!(record.detail["step"], "smoke test", "the failed step stays recorded");
    let rejected = c.store().timeline(&id).unwrap().into_iter().find(|e| e.kind == "rollback.rejected").unwrap();
    assert_eq!(
        (rejected.detail["failed_step"].as_str(), rejected.detail["by"].as_str()),
        (Some("smoke test"), Some("oncall"))
    );
    assert!(c.store().verify_audit().unwrap().is_ok());
}
