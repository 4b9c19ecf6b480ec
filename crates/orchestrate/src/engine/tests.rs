//! The engine's journaling, undo and resume logic, with an in-memory host
//! (the real actuators are tested against real servers elsewhere).

use std::sync::Mutex;

use cutover_store::SqliteStore;

use super::*;

#[derive(Default)]
struct FakeHost {
    calls: Mutex<Vec<String>>,
    /// Validation failures to hand out before succeeding.
    validate_failures: Mutex<u32>,
    validate_delay: Mutex<Duration>,
}

impl Host for FakeHost {
    fn switch<'a>(&'a self, to: &'a str) -> BoxFut<'a, Result<Value, StepError>> {
        Box::pin(async move {
            self.calls.lock().unwrap().push(format!("switch {to}"));
            Ok(json!({"active": to}))
        })
    }
    fn validate<'a>(&'a self, backend: &'a str) -> BoxFut<'a, Result<Value, StepError>> {
        Box::pin(async move {
            self.calls.lock().unwrap().push(format!("validate {backend}"));
            let delay = *self.validate_delay.lock().unwrap();
            tokio::time::sleep(delay).await;
            let mut f = self.validate_failures.lock().unwrap();
            if *f > 0 {
                *f -= 1;
                return Err(StepError::Failed("PUT: SignatureDoesNotMatch".into()));
            }
            Ok(json!({"passed": 9}))
        })
    }
    fn resync(&self, _rounds: u32, _since: Option<std::time::SystemTime>) -> BoxFut<'_, Result<Value, StepError>> {
        Box::pin(async move {
            self.calls.lock().unwrap().push("resync".into());
            Ok(json!({"copied": 0}))
        })
    }
}

struct Fixture {
    _dir: tempfile::TempDir,
    store: Arc<dyn Store>,
    host: Arc<FakeHost>,
    engine: Engine,
    events: Arc<Mutex<Vec<EngineEvent>>>,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&dir.path().join("state.db")).unwrap());
    let host = Arc::new(FakeHost::default());
    let events = Arc::new(Mutex::new(Vec::new()));
    let sink = events.clone();
    let mut engine = Engine::new(
        store.clone(),
        host.clone(),
        dir.path().join("work"),
        Arc::new(|_| None),
        Arc::new(move |e: &EngineEvent| sink.lock().unwrap().push(e.clone())),
    );
    engine.approval_poll = Duration::from_millis(10);
    Fixture { _dir: dir, store, host, engine, events }
}

fn job(store: &Arc<dyn Store>) -> Job {
    let incident = store.open_incident(&Fence::local(), "primary", SystemTime::now()).unwrap();
    Job {
        incident,
        backend: "primary".into(),
        kind: RunKind::Failover,
        source: "primary".into(),
        target: "secondary".into(),
        reason: "primary down".into(),
        actor: "controller".into(),
    }
}

fn rb(text: &str) -> Runbook {
    runbook::parse(text, "test.toml", &[]).unwrap()
}

const SWITCH_VALIDATE: &str = r#"
[[steps]]
name = "switch"
uses = "state.switch"
with = { to = "{{ target }}" }
[[steps]]
name = "validate"
uses = "validate"
with = { backend = "{{ target }}" }
"#;

#[tokio::test]
async fn a_clean_run_journals_every_step_and_completes() {
    let f = fixture();
    let j = job(&f.store);
    let (run, outcome) = f.engine.run(&j, &rb(SWITCH_VALIDATE)).await.unwrap();
    assert_eq!(outcome, RunOutcome::Completed);
    assert_eq!(*f.host.calls.lock().unwrap(), ["switch secondary", "validate secondary"]);
    let steps = f.store.steps(run).unwrap();
    assert!(steps.iter().all(|s| s.phase == StepPhase::Do && s.state == StepState::Ok && s.attempts == 1), "{steps:?}");
    assert_eq!(f.store.run(run).unwrap().unwrap().state, RunState::Completed);
    let kinds: Vec<String> = f.store.timeline(&j.incident).unwrap().into_iter().map(|e| e.kind).collect();
    assert_eq!(kinds, ["runbook.started", "step", "step", "runbook.completed"]);
    assert!(f.store.verify_audit().unwrap().is_ok());
    assert!(f.store.unfinished_runs().unwrap().is_empty());
}

#[tokio::test]
async fn a_failed_validation_undoes_the_switch() {
    let f = fixture();
    *f.host.validate_failures.lock().unwrap() = 1;
    let j = job(&f.store);
    let (run, outcome) = f.engine.run(&j, &rb(SWITCH_VALIDATE)).await.unwrap();
    assert!(
        matches!(&outcome, RunOutcome::RolledBack { step, error } if step == "validate" && error.contains("SignatureDoesNotMatch")),
        "{outcome:?}"
    );
    assert_eq!(*f.host.calls.lock().unwrap(), ["switch secondary", "validate secondary", "switch primary"]);
    let undo = f.store.steps(run).unwrap().into_iter().find(|s| s.phase == StepPhase::Undo).unwrap();
    assert_eq!((undo.idx, undo.state), (0, StepState::Ok));
    assert_eq!(f.store.run(run).unwrap().unwrap().state, RunState::RolledBack);
}

#[tokio::test]
async fn retries_then_success() {
    let f = fixture();
    *f.host.validate_failures.lock().unwrap() = 1;
    let j = job(&f.store);
    let text = SWITCH_VALIDATE.replace("backend = \"{{ target }}\" }", "backend = \"{{ target }}\" }\nretries = 1");
    let (run, outcome) = f.engine.run(&j, &rb(&text)).await.unwrap();
    assert_eq!(outcome, RunOutcome::Completed);
    assert_eq!(f.store.steps(run).unwrap()[1].attempts, 2);
}

#[tokio::test]
async fn a_step_over_its_timeout_fails_and_rolls_back() {
    let f = fixture();
    *f.host.validate_delay.lock().unwrap() = Duration::from_secs(30);
    let j = job(&f.store);
    let text =
        SWITCH_VALIDATE.replace("backend = \"{{ target }}\" }", "backend = \"{{ target }}\" }\ntimeout = \"100ms\"");
    let (_, outcome) = f.engine.run(&j, &rb(&text)).await.unwrap();
    assert!(matches!(&outcome, RunOutcome::RolledBack { error, .. } if error.contains("timed out")), "{outcome:?}");
}

#[tokio::test]
async fn on_failure_continue_goes_on() {
    let f = fixture();
    *f.host.validate_failures.lock().unwrap() = 1;
    let j = job(&f.store);
    let text = r#"
[[steps]]
name = "check first"
uses = "validate"
with = { backend = "{{ target }}" }
on_failure = "continue"
[[steps]]
name = "switch"
uses = "state.switch"
with = { to = "{{ target }}" }
"#;
    let (_, outcome) = f.engine.run(&j, &rb(text)).await.unwrap();
    assert_eq!(outcome, RunOutcome::Completed);
    assert_eq!(*f.host.calls.lock().unwrap(), ["validate secondary", "switch secondary"]);
}

/// Simulates a crash after step 0 finished and step 1 started.
fn interrupted(f: &Fixture, runbook: &Runbook) -> (Job, RunRecord) {
    interrupted_with_undo(f, runbook, json!({"uses": "state.switch", "with": {"to": "primary"}}))
}

/// [`interrupted`], with `undo` journaled as step 0's undo call.
fn interrupted_with_undo(f: &Fixture, runbook: &Runbook, undo: Value) -> (Job, RunRecord) {
    let j = job(&f.store);
    let run = f
        .store
        .begin_run(
            &Fence::local(),
            &NewRun {
                incident: &j.incident,
                kind: RunKind::Failover,
                source: "primary",
                target: "secondary",
                reason: "down",
                actor: "controller",
                runbook: &runbook.origin,
                runbook_sha256: &runbook.sha256,
            },
            SystemTime::now(),
        )
        .unwrap();
    let intent =
        json!({"uses": "state.switch", "with": {"to": "secondary"}, "undo": undo, "timeout_ms": 1000, "retries": 0});
    f.store
        .step_intent(
            &Fence::local(),
            StepRef { run, idx: 0, phase: StepPhase::Do },
            "switch",
            "state.switch",
            &intent,
            SystemTime::now(),
        )
        .unwrap();
    let step = StepRef { run, idx: 0, phase: StepPhase::Do };
    f.store.step_result(&Fence::local(), step, StepState::Ok, &json!({}), SystemTime::now()).unwrap();
    f.store
        .step_intent(
            &Fence::local(),
            StepRef { run, idx: 1, phase: StepPhase::Do },
            "validate",
            "validate",
            &json!({"uses": "validate"}),
            SystemTime::now(),
        )
        .unwrap();
    (j, f.store.unfinished_runs().unwrap().remove(0))
}

#[tokio::test]
async fn resume_skips_completed_steps() {
    let f = fixture();
    let runbook = rb(SWITCH_VALIDATE);
    let (_, record) = interrupted(&f, &runbook);
    let outcome = f.engine.resume(&record, "primary", Some(&runbook)).await.unwrap();
    assert_eq!(outcome, RunOutcome::Completed);
    assert_eq!(*f.host.calls.lock().unwrap(), ["validate secondary"], "the switch must not run twice");
    assert_eq!(f.store.steps(record.id).unwrap()[1].attempts, 2, "the interrupted attempt counts");
    assert!(
        f.events.lock().unwrap().iter().any(|e| matches!(e, EngineEvent::StepSkipped { step, .. } if step == "switch"))
    );
    assert!(f.store.unfinished_runs().unwrap().is_empty());
}

#[tokio::test]
async fn resume_with_a_changed_runbook_rolls_back() {
    let f = fixture();
    let runbook = rb(SWITCH_VALIDATE);
    let (_, record) = interrupted(&f, &runbook);
    let changed = rb(&format!("{SWITCH_VALIDATE}\n# edited\n"));
    let outcome = f.engine.resume(&record, "primary", Some(&changed)).await.unwrap();
    assert!(matches!(outcome, RunOutcome::RolledBack { .. }), "{outcome:?}");
    assert_eq!(*f.host.calls.lock().unwrap(), ["switch primary"]);
}

const WITH_APPROVAL: &str = r#"
[[steps]]
name = "ask"
uses = "approval"
with = { timeout = "5s", message = "fail over?" }
[[steps]]
name = "switch"
uses = "state.switch"
with = { to = "{{ target }}" }
"#;

#[tokio::test]
async fn an_approval_step_waits_for_the_verdict() {
    let f = fixture();
    let j = job(&f.store);
    // A verdict from before the run does not count.
    f.store.record_approval(&Fence::local(), &j.incident, Verdict::Reject, "old", "stale", SystemTime::now()).unwrap();
    let store = f.store.clone();
    let incident = j.incident.clone();
    let events = f.events.clone();
    tokio::spawn(async move {
        while !events.lock().unwrap().iter().any(|e| matches!(e, EngineEvent::ApprovalRequested { .. })) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        store.record_approval(&Fence::local(), &incident, Verdict::Approve, "oncall", "go", SystemTime::now()).unwrap();
    });
    let (run, outcome) = f.engine.run(&j, &rb(WITH_APPROVAL)).await.unwrap();
    assert_eq!(outcome, RunOutcome::Completed);
    assert_eq!(f.store.steps(run).unwrap()[0].result["by"], "oncall");
}

#[tokio::test]
async fn a_rejection_or_an_expiry_stops_the_run() {
    let f = fixture();
    let j = job(&f.store);
    let text = WITH_APPROVAL.replace("timeout = \"5s\"", "timeout = \"50ms\"");
    let (_, outcome) = f.engine.run(&j, &rb(&text)).await.unwrap();
    assert!(matches!(&outcome, RunOutcome::RolledBack { step, .. } if step == "ask"), "{outcome:?}");
    assert!(f.host.calls.lock().unwrap().is_empty());
    let text = text.replace("message", "default = \"approve\", message");
    let (_, outcome) = f.engine.run(&job(&f.store), &rb(&text)).await.unwrap();
    assert_eq!(outcome, RunOutcome::Completed);
}

/// The journal keeps undo calls redacted: an undo whose parameters were
/// redacted, after a restart with a runbook whose undo for that step changed,
/// fails (a human must look) instead of sending `[redacted]` somewhere.
#[tokio::test]
async fn an_undo_with_redacted_parameters_and_a_changed_runbook_is_not_sent() {
    let f = fixture();
    let runbook = rb(SWITCH_VALIDATE);
    let undo =
        json!({"uses": "http", "with": {"url": "http://127.0.0.1:9/x", "headers": {"Authorization": "[redacted]"}}});
    let (_, record) = interrupted_with_undo(&f, &runbook, undo);
    let changed = rb(&format!("{SWITCH_VALIDATE}\n# edited\n"));
    let outcome = f.engine.resume(&record, "primary", Some(&changed)).await.unwrap();
    assert!(matches!(&outcome, RunOutcome::Failed { .. }), "{outcome:?}");
    assert!(f.host.calls.lock().unwrap().is_empty());
    let undo = f.store.steps(record.id).unwrap().into_iter().find(|s| s.phase == StepPhase::Undo).unwrap();
    assert_eq!(undo.state, StepState::Failed);
    assert!(undo.result["error"].as_str().unwrap().contains("undo it by hand"), "{undo:?}");
}

mod guard;
