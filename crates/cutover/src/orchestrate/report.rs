//! One log line per engine event (text or `--log-format json`), and the
//! metrics.

use cutover_control::metrics;
use cutover_orchestrate::engine::{EngineEvent, RunOutcome, StepPhase};
use serde_json::json;

use crate::wiring::Shared;

/// One log line per engine event (text or `--log-format json`), and the metrics.
pub fn report(shared: &Shared, e: &EngineEvent) {
    use crate::logs::event;
    match e {
        EngineEvent::RunStarted { run, incident, kind, runbook, resumed } => {
            let verb = if *resumed { "resuming" } else { "running" };
            event(
                "info",
                "runbook.started",
                &format!("runbook {incident}: {verb} {kind} run {run} ({runbook})"),
                json!({"incident": incident, "run": run, "kind": kind, "runbook": runbook, "resumed": resumed}),
            );
        }
        EngineEvent::StepStarted { run, incident, step, uses, phase, attempt } => {
            let undo = if *phase == StepPhase::Undo { "undo " } else { "" };
            let again = if *attempt > 1 { format!(" (attempt {attempt})") } else { String::new() };
            event(
                "info",
                "step.started",
                &format!("step {incident}: {undo}{step:?} [{uses}] started{again}"),
                json!({"incident": incident, "run": run, "step": step, "uses": uses, "phase": phase.as_str(), "attempt": attempt}),
            );
        }
        EngineEvent::StepSkipped { run, incident, step } => event(
            "info",
            "step.skipped",
            &format!("step {incident}: {step:?} already done before the restart; not run again"),
            json!({"incident": incident, "run": run, "step": step}),
        ),
        EngineEvent::StepFinished { run, incident, step, uses, phase, ok, attempts, duration, detail } => {
            let undo = if *phase == StepPhase::Undo { "undo " } else { "" };
            let verdict = if *ok { "ok" } else { "FAILED" };
            let detail: String = detail.chars().take(300).collect();
            event(
                if *ok { "info" } else { "warn" },
                "step",
                &format!(
                    "step {incident}: {undo}{step:?} [{uses}] {verdict} in {duration:.2?} ({attempts} attempt(s)): {detail}"
                ),
                json!({"incident": incident, "run": run, "step": step, "uses": uses, "phase": phase.as_str(),
                       "ok": ok, "outcome": if *ok { "ok" } else { "failed" }, "attempts": attempts,
                       "duration_ms": duration.as_millis() as u64, "detail": detail}),
            );
            let mut m = shared.metrics.lock().unwrap();
            m.observe(
                metrics::STEP_DURATION,
                vec![("uses", uses.clone()), ("phase", phase.as_str().into()), ("ok", ok.to_string())],
                duration.as_secs_f64(),
            );
        }
        EngineEvent::ApprovalRequested { run, incident, step, message, timeout } => event(
            "info",
            "approval.requested",
            &format!(
                "approval {incident}: step {step:?} waits up to {timeout:?}: {message} \
                 (cutover approve {incident} --comment ... | cutover reject {incident})"
            ),
            json!({"incident": incident, "run": run, "step": step, "message": message,
                   "timeout_ms": timeout.as_millis() as u64}),
        ),
        EngineEvent::RunFinished { run, incident, kind, outcome, duration } => {
            let (level, what) = match outcome {
                RunOutcome::Completed => ("info", "completed".to_string()),
                RunOutcome::RolledBack { step, error } => {
                    ("warn", format!("ROLLED BACK after step {step:?} failed: {error}"))
                }
                RunOutcome::Failed { step, error } => (
                    "warn",
                    format!("FAILED: step {step:?} failed ({error}) and an undo failed too; a human must look"),
                ),
                RunOutcome::RollbackHeld { step, error, reason } => (
                    "warn",
                    format!(
                        "ROLLBACK HELD after step {step:?} failed ({error}): {reason} \
                         (cutover approve {incident} | cutover reject {incident})"
                    ),
                ),
            };
            let mut fields = json!({"incident": incident, "run": run, "kind": kind, "outcome": outcome.as_str(),
                                    "duration_ms": duration.as_millis() as u64});
            if let RunOutcome::RolledBack { step, error }
            | RunOutcome::Failed { step, error }
            | RunOutcome::RollbackHeld { step, error, .. } = outcome
            {
                fields["step"] = json!(step);
                fields["error"] = json!(error);
            }
            if let RunOutcome::RollbackHeld { reason, .. } = outcome {
                fields["reason"] = json!(reason);
            }
            event(level, "runbook.finished", &format!("runbook {incident}: {kind} {what} in {duration:.2?}"), fields);
            let mut m = shared.metrics.lock().unwrap();
            m.inc(metrics::RUNS, vec![("kind", kind.to_string()), ("outcome", outcome.as_str().into())]);
        }
        EngineEvent::StoreError { op } => {
            shared.metrics.lock().unwrap().inc(metrics::STORE_ERRORS, vec![("op", (*op).into())]);
        }
    }
}
