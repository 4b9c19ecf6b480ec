//! The same behaviour tests on the SQLite store and on the etcd store,
//! through `&dyn Store`.

mod common;

use std::time::{Duration, SystemTime};

use cutover_core::domain::{DecisionAction, Health, IncidentState, RunKind, RunState, StepPhase, StepState, Verdict};
use cutover_etcd::{Client, Cmp, Compare, Op};
use cutover_store::{DecisionRecord, Fence, NewRun, SqliteStore, StepRef, Store, StoreError, StoreExt};
use serde_json::json;

/// Every behaviour the interface promises, on `store`, writing with `fence`.
fn behaviour(store: &dyn Store, fence: &Fence) {
    active_backend(store, fence);
    failed_atomically(store, fence);
    incidents(store, fence);
    journal(store, fence);
    audit(store, fence);
    probe_samples(store);
}

/// Node-local probe samples: a batch comes back within its window (on
/// etcd, from the node's local SQLite).
fn probe_samples(store: &dyn Store) {
    use cutover_store::{ProbeOutcome, ProbeSample};
    let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_790_000_000);
    let batch: Vec<ProbeSample> = (0..6u64)
        .map(|i| ProbeSample {
            backend: if i % 2 == 0 { "primary" } else { "secondary" }.into(),
            vantage: "local".into(),
            at: t0 + Duration::from_secs(i),
            latency_ms: 1.5 * i as f64,
            outcome: if i == 4 { ProbeOutcome::Failed } else { ProbeOutcome::Ok },
        })
        .collect();
    store.record_probe_samples(&batch).unwrap();
    assert_eq!(store.probe_samples(t0, t0 + Duration::from_secs(10)).unwrap(), batch);
    let some = store.probe_samples(t0 + Duration::from_secs(2), t0 + Duration::from_secs(4)).unwrap();
    assert_eq!(some, batch[2..5].to_vec());
}

fn active_backend(store: &dyn Store, fence: &Fence) {
    assert_eq!(store.active_backend().unwrap(), None);
    let mut rx = store.watch_active_backend();
    assert_eq!(*rx.borrow_and_update(), None);
    store.set_active_backend(fence, "secondary").unwrap();
    assert!(rx.has_changed().unwrap(), "seen once set_active_backend returned");
    assert_eq!(rx.borrow_and_update().as_deref(), Some("secondary"));
    store.set_active_backend(fence, "secondary").unwrap();
    std::thread::sleep(Duration::from_millis(200)); // the etcd watch delivers the PUT: still no change
    assert!(!rx.has_changed().unwrap(), "the same value again is no change");
    assert_eq!(store.watch_active_backend().borrow().as_deref(), Some("secondary"));
    assert_eq!(store.active_backend().unwrap().as_deref(), Some("secondary"));
}

fn failed_atomically(store: &dyn Store, fence: &Fence) {
    let at = SystemTime::now();
    let r: Result<(), StoreError> = store.atomic(fence, |tx| {
        let id = tx.open_incident("primary", at)?;
        tx.add_event(&id, at, "incident.opened", &json!({}))?;
        tx.set_incident_state(&id, IncidentState::FailingOver, None)?;
        tx.record_approval(&id, Verdict::Approve, "oncall", "", at)?;
        tx.audit(at, "controller", "incident.open", &json!({"incident": id}))?;
        Err(StoreError::Incomplete)
    });
    assert!(matches!(r, Err(StoreError::Incomplete)), "{r:?}");
    assert!(store.incidents().unwrap().is_empty());
    assert_eq!(store.last_approval_id().unwrap(), 0);
    assert!(store.audit_entries().unwrap().is_empty());
}

fn incidents(store: &dyn Store, fence: &Fence) {
    let now = SystemTime::now();
    // Several writes in one transaction, read back together.
    let id = store
        .atomic(fence, |tx| {
            let id = tx.open_incident("primary", now)?;
            tx.add_event(&id, now, "health", &json!({"to": "down"}))?;
            tx.add_event(&id, now, "decision", &json!({"n": 2}))?;
            Ok(id)
        })
        .unwrap();
    assert!(id.starts_with("inc-"), "{id}");
    let input = json!({"backend": "primary"});
    let d = DecisionRecord {
        incident: &id,
        action: DecisionAction::Failover,
        target: Some("secondary"),
        reason: "confirmed",
        policy_sha256: "abc",
        input: &input,
    };
    store.record_decision(fence, &d, now).unwrap();
    let inc = store.open_incident_for("primary").unwrap().unwrap();
    assert_eq!(inc.decision, json!({"action": "failover", "target": "secondary", "reason": "confirmed"}));
    let tl = store.timeline(&id).unwrap();
    assert_eq!(tl.iter().map(|e| e.kind.as_str()).collect::<Vec<_>>(), ["health", "decision"]);
    assert_eq!(tl[0].detail, json!({"to": "down"}));
    assert_eq!(store.failovers_since(now - Duration::from_secs(60)).unwrap(), 1);
    assert_eq!(store.failovers_since(now + Duration::from_secs(60)).unwrap(), 0);
    assert_eq!(store.decision_input(&id).unwrap(), Some(input.clone()), "the evidence of the decision");
    assert_eq!(store.decision_input("inc-none").unwrap(), None);
    assert_eq!(store.open_incidents().unwrap().len(), 1);
    store.set_incident_state(fence, &id, IncidentState::AwaitingApproval, None).unwrap();
    assert_eq!(store.incident(&id).unwrap().unwrap().state, IncidentState::AwaitingApproval);
    store.set_incident_state(fence, &id, IncidentState::Resolved, Some(now)).unwrap();
    assert!(store.open_incident_for("primary").unwrap().is_none());
    assert!(store.open_incidents().unwrap().is_empty());
    let inc = store.incident(&id).unwrap().unwrap();
    assert_eq!((inc.state, inc.closed_at.is_some()), (IncidentState::Resolved, true));
    // JSON carries the same words as SQLite's columns.
    assert_eq!(serde_json::to_value(&inc).unwrap()["state"], "resolved");
    // Newest first.
    let later = store.open_incident(fence, "secondary", now + Duration::from_secs(5)).unwrap();
    assert_eq!(store.incidents().unwrap().iter().map(|i| i.id.clone()).collect::<Vec<_>>(), [later.clone(), id]);
    assert!(store.incident("inc-nope").unwrap().is_none());
    store.set_incident_state(fence, &later, IncidentState::Resolved, Some(now)).unwrap();
}

fn journal(store: &dyn Store, fence: &Fence) {
    let at = SystemTime::now();
    let inc = store.open_incident(fence, "primary", at).unwrap();
    let before = store.record_approval(fence, &inc, Verdict::Approve, "early", "", at).unwrap();
    assert_eq!(store.last_approval_id().unwrap(), before);
    let run = NewRun {
        incident: &inc,
        kind: RunKind::Failover,
        source: "primary",
        target: "secondary",
        reason: "r",
        actor: "controller",
        runbook: "built-in failover",
        runbook_sha256: "s",
    };
    let id = store.begin_run(fence, &run, at).unwrap();
    let r = store.run(id).unwrap().unwrap();
    assert_eq!((r.state, r.kind, r.approval_base, r.ended_at), (RunState::Running, RunKind::Failover, before, None));
    assert_eq!(store.unfinished_runs().unwrap().iter().map(|r| r.id).collect::<Vec<_>>(), [id]);
    let do0 = StepRef { run: id, idx: 0, phase: StepPhase::Do };
    let undo0 = StepRef { run: id, idx: 0, phase: StepPhase::Undo };
    let do1 = StepRef { run: id, idx: 1, phase: StepPhase::Do };
    store.step_intent(fence, do1, "notify", "notify", &json!({"n": 1}), at).unwrap();
    store.step_intent(fence, do0, "switch", "state.switch", &json!({"to": "secondary"}), at).unwrap();
    store.step_intent(fence, do0, "switch", "state.switch", &json!({"to": "secondary", "try": 2}), at).unwrap();
    store.step_result(fence, do0, StepState::Ok, &json!({"ok": true}), at).unwrap();
    store.step_intent(fence, undo0, "switch", "state.switch", &json!({}), at).unwrap();
    let steps = store.steps(id).unwrap();
    let order: Vec<_> = steps.iter().map(|s| (s.idx, s.phase, s.state, s.attempts)).collect();
    assert_eq!(
        order,
        [
            (0, StepPhase::Do, StepState::Ok, 2),
            (0, StepPhase::Undo, StepState::Started, 1),
            (1, StepPhase::Do, StepState::Started, 1)
        ]
    );
    assert_eq!(steps[0].intent, json!({"to": "secondary", "try": 2}));
    assert_eq!(steps[0].result, json!({"ok": true}));
    assert!(steps[0].ended_at.is_some() && steps[1].ended_at.is_none());
    // Approvals after the run's base count for it; the earlier one does not.
    assert_eq!(store.approval_after(&inc, r.approval_base).unwrap(), None);
    let a = store.record_approval(fence, &inc, Verdict::Reject, "oncall", "no", at).unwrap();
    assert!(a > before);
    let got = store.approval_after(&inc, r.approval_base).unwrap().unwrap();
    assert_eq!((got.id, got.verdict, got.actor.as_str()), (a, Verdict::Reject, "oncall"));
    assert_eq!(store.approval_after("inc-other", 0).unwrap(), None);
    store.set_run_state(fence, id, RunState::RollingBack, Some(&json!({"why": "x"})), None).unwrap();
    store.set_run_state(fence, id, RunState::RolledBack, None, Some(at)).unwrap();
    let r = store.run(id).unwrap().unwrap();
    assert_eq!((r.state, r.detail.clone(), r.ended_at.is_some()), (RunState::RolledBack, json!({"why": "x"}), true));
    assert!(store.unfinished_runs().unwrap().is_empty());
    assert_eq!(store.runs_for(&inc).unwrap().len(), 1);
    assert!(store.runs_for("inc-other").unwrap().is_empty());
    let json = serde_json::to_value(store.run(id).unwrap().unwrap()).unwrap();
    assert_eq!((json["kind"].as_str(), json["state"].as_str()), (Some("failover"), Some("rolled_back")));
}

fn audit(store: &dyn Store, fence: &Fence) {
    for i in 0..5 {
        store.audit(fence, SystemTime::now(), "controller", "probe", &json!({"i": i})).unwrap();
    }
    assert_eq!(store.verify_audit().unwrap(), Ok(5));
    let (seq, hash, alg) = store.audit_head().unwrap().unwrap();
    assert_eq!((seq, alg.as_str()), (5, "sha256"));
    let rows = store.audit_rows_after(2, 2).unwrap();
    assert_eq!(rows.iter().map(|r| r.seq).collect::<Vec<_>>(), [3, 4]);
    assert_eq!(store.audit_rows_after(0, i64::MAX).unwrap().last().unwrap().hash, hash);
    let entries = store.audit_entries().unwrap();
    assert_eq!(entries[4].detail, json!({"i": 4}));
    assert!(store.verify_with_export(None).unwrap().findings.is_empty());
    assert!(!store.audit_keyed());
    assert_eq!(store.mark_keyed(fence, SystemTime::now()).unwrap(), None);
}

#[test]
fn sqlite_store_behaves() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("state.db")).unwrap();
    behaviour(&store, &Fence::local());
}

/// Makes a leader key under `prefix` (no lease); its fence.
pub fn leader_fence(client: &Client, prefix: &str) -> Fence {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let key = format!("{prefix}/leader");
    let r = rt
        .block_on(client.txn(
            &[Compare::create_revision(key.as_bytes(), Cmp::Equal, 0)],
            &[Op::put(key.as_bytes(), br#"{"node":"test","api":"http://t"}"#.to_vec())],
            &[],
        ))
        .unwrap();
    assert!(r.succeeded);
    Fence::leader(r.header.revision)
}

#[test]
fn etcd_store_behaves() {
    let cluster = common::cluster();
    let dir = tempfile::tempdir().unwrap();
    let store = common::store(&cluster, "/conf", &dir);
    let fence = leader_fence(&common::client(&cluster), "/conf");
    behaviour(&store, &fence);
    // Health history is node-local: it goes to the local SQLite.
    let (from, to) = (Health::Healthy, Health::Down);
    cutover_store::HealthHistory::record_health(&store, SystemTime::now(), "primary", "local", from, to, "x").unwrap();
    let last = cutover_store::HealthHistory::last_health(&store).unwrap();
    assert_eq!(last.len(), 1);
    assert_eq!(last[0].health, Health::Down);
}
