//! The rollback guard: a rollback that would move traffic back onto a
//! backend the guard refuses undoes nothing until a human approves it.

use super::*;
use cutover_core::domain::{RunState, StepPhase};
use cutover_store::Fence;

/// Answers every question the same way and remembers what it was asked.
struct ScriptedGuard {
    allow: bool,
    asked: Mutex<Vec<String>>,
}

impl ScriptedGuard {
    fn new(allow: bool) -> Arc<Self> {
        Arc::new(Self { allow, asked: Mutex::default() })
    }
}

impl RollbackGuard for ScriptedGuard {
    fn may_roll_back_onto<'a>(&'a self, r: &'a RollbackRequest<'a>) -> BoxFut<'a, RollbackVerdict> {
        self.asked.lock().unwrap().push(format!("{} {} {} after {:?}", r.run, r.kind, r.onto, r.failed_step));
        let reason = if self.allow {
            format!("{} healthy", r.onto)
        } else {
            format!("not rolling back onto {}: it is down", r.onto)
        };
        let health = Some(if self.allow { "healthy" } else { "down" }.into());
        Box::pin(std::future::ready(RollbackVerdict { allow: self.allow, reason, health }))
    }
}

fn timeline(f: &Fixture, j: &Job) -> Vec<cutover_store::TimelineEvent> {
    f.store.timeline(&j.incident).unwrap()
}

#[tokio::test]
async fn a_rollback_onto_a_backend_the_guard_refuses_is_held_and_undoes_nothing() {
    let f = fixture();
    let guard = ScriptedGuard::new(false);
    let engine = f.engine.clone().with_guard(guard.clone());
    *f.host.validate_failures.lock().unwrap() = 1;
    let j = job(&f.store);
    let (run, outcome) = engine.run(&j, &rb(SWITCH_VALIDATE)).await.unwrap();
    assert!(
        matches!(&outcome, RunOutcome::RollbackHeld { step, error, reason }
            if step == "validate" && error.contains("SignatureDoesNotMatch") && reason.contains("primary: it is down")),
        "{outcome:?}"
    );
    assert_eq!(*guard.asked.lock().unwrap(), [format!("{run} failover primary after \"validate\"")]);
    assert_eq!(*f.host.calls.lock().unwrap(), ["switch secondary", "validate secondary"], "nothing undone");
    assert!(f.store.steps(run).unwrap().iter().all(|s| s.phase == StepPhase::Do));
    let record = f.store.run(run).unwrap().unwrap();
    assert_eq!((record.state, record.ended_at.as_deref()), (RunState::RollbackHeld, None));
    let events = timeline(&f, &j);
    let held = events.iter().find(|e| e.kind == "rollback.held").expect("rollback.held in the timeline");
    assert_eq!(held.detail["onto"], "primary");
    assert_eq!(held.detail["onto_health"], "down");
    assert_eq!(held.detail["failed_step"], "validate");
    assert!(held.detail["error"].as_str().unwrap().contains("SignatureDoesNotMatch"), "{held:?}");
    assert!(!events.iter().any(|e| e.kind == "runbook.rolling_back"), "{events:?}");
    assert!(f.store.verify_audit().unwrap().is_ok());
    // A restart does not resume it: it waits for a human.
    let again = engine.resume(&record, "primary", Some(&rb(SWITCH_VALIDATE))).await.unwrap();
    assert!(matches!(again, RunOutcome::RollbackHeld { .. }), "{again:?}");
    assert_eq!(f.host.calls.lock().unwrap().len(), 2);
}

#[tokio::test]
async fn an_approved_held_rollback_undoes_in_reverse_as_the_approver_without_asking_again() {
    let f = fixture();
    let guard = ScriptedGuard::new(false);
    let engine = f.engine.clone().with_guard(guard.clone());
    *f.host.validate_failures.lock().unwrap() = 1;
    let j = job(&f.store);
    let (run, _) = engine.run(&j, &rb(SWITCH_VALIDATE)).await.unwrap();
    let record = f.store.run(run).unwrap().unwrap();
    let outcome = engine.roll_back_held(&record, "primary", Some(&rb(SWITCH_VALIDATE)), "oncall").await.unwrap();
    assert!(matches!(&outcome, RunOutcome::RolledBack { step, .. } if step == "validate"), "{outcome:?}");
    assert_eq!(guard.asked.lock().unwrap().len(), 1, "a human's say is not asked about again");
    assert_eq!(*f.host.calls.lock().unwrap(), ["switch secondary", "validate secondary", "switch primary"]);
    let record = f.store.run(run).unwrap().unwrap();
    assert_eq!(record.state, RunState::RolledBack);
    assert!(record.ended_at.is_some());
    let events = timeline(&f, &j);
    let rolling = events.iter().find(|e| e.kind == "runbook.rolling_back").unwrap();
    assert_eq!(rolling.detail["approved_by"], "oncall");
    assert!(events.iter().any(|e| e.kind == "runbook.rolled_back"), "{events:?}");
    let undo = events.iter().find(|e| e.kind == "step" && e.detail["phase"] == "undo").unwrap();
    assert_eq!(undo.detail["result"]["active"], "primary");
}

#[tokio::test]
async fn an_approved_rollback_interrupted_by_a_crash_resumes_without_asking_again() {
    let f = fixture();
    let guard = ScriptedGuard::new(false);
    let engine = f.engine.clone().with_guard(guard.clone());
    let runbook = rb(SWITCH_VALIDATE);
    let (_, record) = interrupted(&f, &runbook);
    let approved = json!({"step": "validate", "error": "x", "approved_by": "oncall"});
    f.store.set_run_state(&Fence::local(), record.id, RunState::RollingBack, Some(&approved), None).unwrap();
    let record = f.store.run(record.id).unwrap().unwrap();
    let outcome = engine.resume(&record, "primary", Some(&runbook)).await.unwrap();
    assert!(matches!(outcome, RunOutcome::RolledBack { .. }), "{outcome:?}");
    assert!(guard.asked.lock().unwrap().is_empty());
    assert_eq!(*f.host.calls.lock().unwrap(), ["switch primary"]);
}

#[tokio::test]
async fn an_allowed_rollback_says_why_in_the_timeline() {
    let f = fixture();
    let engine = f.engine.clone().with_guard(ScriptedGuard::new(true));
    *f.host.validate_failures.lock().unwrap() = 1;
    let j = job(&f.store);
    let (_, outcome) = engine.run(&j, &rb(SWITCH_VALIDATE)).await.unwrap();
    assert!(matches!(outcome, RunOutcome::RolledBack { .. }), "{outcome:?}");
    assert_eq!(*f.host.calls.lock().unwrap(), ["switch secondary", "validate secondary", "switch primary"]);
    let events = timeline(&f, &j);
    let allowed = events.iter().find(|e| e.kind == "rollback.allowed").expect("rollback.allowed");
    assert_eq!(
        (allowed.detail["onto"].as_str(), allowed.detail["reason"].as_str()),
        (Some("primary"), Some("primary healthy"))
    );
}

/// A rollback that moves no traffic (nothing switched yet) is not a
/// question for the guard, and the timeline says so.
#[tokio::test]
async fn a_rollback_that_moves_no_traffic_is_not_held() {
    let f = fixture();
    let guard = ScriptedGuard::new(false);
    let engine = f.engine.clone().with_guard(guard.clone());
    let j = job(&f.store);
    let text = WITH_APPROVAL.replace("timeout = \"5s\"", "timeout = \"50ms\"");
    let (_, outcome) = engine.run(&j, &rb(&text)).await.unwrap();
    assert!(matches!(&outcome, RunOutcome::RolledBack { step, .. } if step == "ask"), "{outcome:?}");
    assert!(guard.asked.lock().unwrap().is_empty());
    let allowed = timeline(&f, &j).into_iter().find(|e| e.kind == "rollback.allowed").expect("rollback.allowed");
    assert!(allowed.detail["onto"].is_null(), "{allowed:?}");
}
