//! The interface, through `dyn Store`, against SQLite: the watch of the
//! active backend, atomicity, and the domain enums stored as the old TEXT.

use std::sync::Arc;
use std::time::SystemTime;

use cutover_core::domain::{DecisionAction, IncidentState, RunKind, RunState, StepPhase, StepState, Verdict};
use serde_json::json;

use crate::{DecisionRecord, Fence, NewRun, SqliteStore, StepRef, Store, StoreError, StoreExt};

fn open() -> (tempfile::TempDir, SqliteStore, Arc<dyn Store>) {
    let dir = tempfile::tempdir().unwrap();
    let s = SqliteStore::open(&dir.path().join("state.db")).unwrap();
    let store: Arc<dyn Store> = Arc::new(s.clone());
    (dir, s, store)
}

#[test]
fn watch_sees_set_active_backend() {
    let (dir, _, store) = open();
    let mut rx = store.watch_active_backend();
    assert_eq!(*rx.borrow_and_update(), None);
    store.set_active_backend(&Fence::local(), "secondary").unwrap();
    assert!(rx.has_changed().unwrap());
    assert_eq!(rx.borrow_and_update().as_deref(), Some("secondary"));
    // Setting the same value again is no change.
    store.set_active_backend(&Fence::local(), "secondary").unwrap();
    assert!(!rx.has_changed().unwrap());
    // A receiver taken later, and a store opened later, start from the stored value.
    assert_eq!(store.watch_active_backend().borrow().as_deref(), Some("secondary"));
    let again = SqliteStore::open(&dir.path().join("state.db")).unwrap();
    assert_eq!(crate::ActiveBackend::watch_active_backend(&again).borrow().as_deref(), Some("secondary"));
}

#[test]
fn a_failed_atomically_leaves_nothing_written() {
    let (_dir, _, store) = open();
    let at = SystemTime::now();
    let r: Result<(), StoreError> = store.atomic(&Fence::local(), |tx| {
        let id = tx.open_incident("primary", at)?;
        tx.add_event(&id, at, "incident.opened", &json!({}))?;
        tx.set_incident_state(&id, IncidentState::FailingOver, None)?;
        tx.record_approval(&id, Verdict::Approve, "oncall", "", at)?;
        tx.audit(at, "controller", "incident.open", &json!({"incident": id}))?;
        Err(StoreError::Incomplete) // the caller gives up after every write
    });
    assert!(matches!(r, Err(StoreError::Incomplete)), "{r:?}");
    assert!(store.incidents().unwrap().is_empty());
    assert_eq!(store.last_approval_id().unwrap(), 0);
    assert!(store.audit_entries().unwrap().is_empty());
    // And one that succeeds returns what its body returned.
    let id = store.atomic(&Fence::local(), |tx| tx.open_incident("primary", at)).unwrap();
    assert_eq!(store.incident(&id).unwrap().unwrap().state, IncidentState::Open);
}

/// The TEXT stored in `column` of `table`, in row order.
fn texts(s: &SqliteStore, sql: &str) -> Vec<String> {
    let conn = s.conn();
    let mut stmt = conn.prepare(sql).unwrap();
    stmt.query_map([], |r| r.get(0)).unwrap().collect::<Result<_, _>>().unwrap()
}

#[test]
fn the_enums_are_stored_as_the_old_strings() {
    let (_dir, s, store) = open();
    let (at, fence) = (SystemTime::now(), Fence::local());
    let id = store.open_incident(&Fence::local(), "primary", at).unwrap();
    let input = json!({});
    let d = DecisionRecord {
        incident: &id,
        action: DecisionAction::AwaitApproval,
        target: Some("secondary"),
        reason: "r",
        policy_sha256: "x",
        input: &input,
    };
    store.record_decision(&Fence::local(), &d, at).unwrap();
    store.set_incident_state(&fence, &id, IncidentState::AwaitingApproval, None).unwrap();
    store.record_approval(&Fence::local(), &id, Verdict::Approve, "oncall", "go", at).unwrap();
    let run = NewRun {
        incident: &id,
        kind: RunKind::Failover,
        source: "primary",
        target: "secondary",
        reason: "r",
        actor: "controller",
        runbook: "built-in failover",
        runbook_sha256: "s",
    };
    let run = store.begin_run(&fence, &run, at).unwrap();
    let step = StepRef { run, idx: 0, phase: StepPhase::Do };
    store.step_intent(&fence, step, "switch", "state.switch", &json!({}), at).unwrap();
    let undo = StepRef { run, idx: 0, phase: StepPhase::Undo };
    store.step_intent(&fence, undo, "switch", "state.switch", &json!({}), at).unwrap();
    store.step_result(&fence, step, StepState::Ok, &json!({}), at).unwrap();
    store.set_run_state(&fence, run, RunState::RollingBack, None, None).unwrap();

    assert_eq!(texts(&s, "SELECT state FROM incidents"), ["awaiting_approval"]);
    assert_eq!(texts(&s, "SELECT action FROM decisions"), ["await_approval"]);
    assert_eq!(texts(&s, "SELECT json_extract(decision, '$.action') FROM incidents"), ["await_approval"]);
    assert_eq!(texts(&s, "SELECT verdict FROM approvals"), ["approve"]);
    assert_eq!(texts(&s, "SELECT kind || ' ' || state FROM runs"), ["failover rolling_back"]);
    assert_eq!(texts(&s, "SELECT phase || ' ' || state FROM run_steps ORDER BY phase"), ["do ok", "undo started"]);

    // And JSON (the API, `--json`) carries the same words.
    let inc = serde_json::to_value(store.incident(&id).unwrap().unwrap()).unwrap();
    assert_eq!(inc["state"], "awaiting_approval");
    let r = serde_json::to_value(store.run(run).unwrap().unwrap()).unwrap();
    assert_eq!((r["kind"].as_str(), r["state"].as_str()), (Some("failover"), Some("rolling_back")));
    let steps = serde_json::to_value(store.steps(run).unwrap()).unwrap();
    assert_eq!((steps[0]["phase"].as_str(), steps[0]["state"].as_str()), (Some("do"), Some("ok")));
    let a = serde_json::to_value(store.approval_after(&id, 0).unwrap().unwrap()).unwrap();
    assert_eq!(a["verdict"], "approve");
}

#[test]
fn a_database_written_with_the_old_strings_reads_typed() {
    let (dir, s, _) = open();
    s.conn()
        .execute_batch(
            "INSERT INTO incidents (id, backend, state, opened_at) VALUES ('inc-1', 'primary', 'failed_over', '2026-01-01T00:00:00Z');
             INSERT INTO decisions (incident, at, action, target, reason, policy_sha256, input)
                 VALUES ('inc-1', '2999-01-01T00:00:00Z', 'failover', 'secondary', 'r', 'x', '{}');
             INSERT INTO approvals (incident, verdict, actor, comment, at) VALUES ('inc-1', 'reject', 'a', '', 'x');
             INSERT INTO runs (incident, kind, source, target, reason, actor, runbook, runbook_sha256, state, approval_base, started_at)
                 VALUES ('inc-1', 'fallback', 'secondary', 'primary', 'r', 'controller', 'rb', 's', 'running', 0, 'x');
             INSERT INTO run_steps (run, idx, phase, name, uses, state, attempts, started_at, intent)
                 VALUES (1, 0, 'undo', 'n', 'u', 'failed', 1, 'x', '{}');",
        )
        .unwrap();
    drop(s);
    let store = SqliteStore::open(&dir.path().join("state.db")).unwrap();
    let store: &dyn Store = &store;
    assert_eq!(store.incident("inc-1").unwrap().unwrap().state, IncidentState::FailedOver);
    assert_eq!(store.failovers_since(SystemTime::UNIX_EPOCH).unwrap(), 1);
    assert_eq!(store.approval_after("inc-1", 0).unwrap().unwrap().verdict, Verdict::Reject);
    let run = store.unfinished_runs().unwrap().remove(0);
    assert_eq!((run.kind, run.state), (RunKind::Fallback, RunState::Running));
    let step = store.steps(run.id).unwrap().remove(0);
    assert_eq!((step.phase, step.state), (StepPhase::Undo, StepState::Failed));
}

#[test]
fn an_unknown_stored_word_is_an_error_not_a_panic() {
    let (_dir, s, store) = open();
    s.conn()
        .execute(
            "INSERT INTO incidents (id, backend, state, opened_at) VALUES ('inc-1', 'primary', 'exploded', 'x')",
            [],
        )
        .unwrap();
    let e = store.incidents().unwrap_err();
    assert!(e.to_string().contains("unknown incident state \"exploded\""), "{e}");
}
