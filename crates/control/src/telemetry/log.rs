//! What each event writes to the log. The event lines of `cutover run` go to
//! target [`EVENTS`]; the rest are ordinary log lines.

use serde_json::{Value, json};
use tracing::Level;

use super::{EVENTS, Event};
use cutover_core::domain::{RunOutcome, StepPhase};

/// One event line: its level, kind (the field `event`), message and fields.
fn line(level: Level, kind: &'static str, message: &str, fields: Value) {
    let fields = fields.to_string();
    match level {
        Level::ERROR => tracing::error!(target: EVENTS, event = kind, fields = %fields, "{message}"),
        Level::WARN => tracing::warn!(target: EVENTS, event = kind, fields = %fields, "{message}"),
        _ => tracing::info!(target: EVENTS, event = kind, fields = %fields, "{message}"),
    }
}

/// Logs `event`: one function per group of events; the match below names
/// every event, so that a new one must be given a group.
pub(super) fn log(event: &Event) {
    match event {
        Event::ProbeCycle { .. }
        | Event::HealthChanged { .. }
        | Event::IncidentOpened { .. }
        | Event::Decided { .. }
        | Event::FailoverForced { .. }
        | Event::PolicyFailed { .. }
        | Event::FallbackDecided { .. }
        | Event::Approval { .. }
        | Event::RollbackVerdict { .. }
        | Event::IncidentResolved { .. }
        | Event::Switched { .. } => incident(event),
        Event::RunbookDue(_)
        | Event::RunStarted { .. }
        | Event::StepStarted { .. }
        | Event::StepSkipped { .. }
        | Event::StepFinished { .. }
        | Event::ApprovalRequested { .. }
        | Event::RunFinished { .. }
        | Event::RunSettled { .. } => runbook(event),
        Event::StoreFailed { .. }
        | Event::SignalRead { .. }
        | Event::ConnectionRefused { .. }
        | Event::DrillFinished { .. }
        | Event::AuditSegmentExported { .. }
        | Event::LeadershipChanged { .. }
        | Event::WriteFenced { .. } => process(event),
    }
}

/// Probes, health, incidents, decisions, verdicts and switches.
fn incident(event: &Event) {
    match event {
        Event::ProbeCycle { vantage, report } if !report.ok => {
            tracing::debug!(backend = %report.backend, vantage, outcome = %report.outcome, "probe failed");
        }
        Event::HealthChanged { backend, vantage, from, to, reason } => line(
            Level::INFO,
            "health",
            &format!("health {backend}@{vantage}: {} -> {} ({reason})", from.as_str(), to.as_str()),
            json!({"backend": backend, "vantage": vantage, "from": from, "to": to, "reason": reason}),
        ),
        Event::IncidentOpened { id, backend, .. } => line(
            Level::INFO,
            "incident.opened",
            &format!("incident {id} opened for {backend}"),
            json!({"incident": id, "backend": backend}),
        ),
        Event::Decided { incident, decision, .. } => line(
            Level::INFO,
            "decision",
            &format!(
                "decision {incident}: {} {} ({})",
                decision.action.as_str(),
                decision.target.as_deref().unwrap_or("-"),
                decision.reason
            ),
            json!({"incident": incident, "action": decision.action.as_str(), "target": decision.target,
                   "reason": decision.reason}),
        ),
        Event::FailoverForced { incident, target, reason, actor } => line(
            Level::INFO,
            "failover.forced",
            &format!("decision {incident}: failover {target} ({reason})"),
            json!({"incident": incident, "target": target, "reason": reason, "actor": actor}),
        ),
        Event::PolicyFailed { incident, error } => line(
            Level::ERROR,
            "policy.error",
            &format!("ALERT policy error on {incident}, holding: {error}"),
            json!({"incident": incident, "error": error}),
        ),
        Event::FallbackDecided { incident, target, reason, .. } => line(
            Level::INFO,
            "fallback.decision",
            &format!("fallback {incident}: back to {target} ({reason})"),
            json!({"incident": incident, "target": target, "reason": reason}),
        ),
        Event::Approval { incident, verdict, by, comment } => line(
            Level::INFO,
            "approval",
            &format!("approval {incident}: {} by {by}: {comment}", verdict.past()),
            json!({"incident": incident, "verdict": verdict, "by": by, "comment": comment}),
        ),
        Event::RollbackVerdict { incident, verdict, rollback } => line(
            Level::INFO,
            "rollback.verdict",
            &format!("rollback {incident}: {} by {}", verdict.past(), rollback["by"].as_str().unwrap_or("-")),
            json!({"incident": incident, "verdict": verdict, "rollback": rollback}),
        ),
        Event::IncidentResolved { id, backend, .. } => line(
            Level::INFO,
            "incident.resolved",
            &format!("incident {id} resolved: {backend} healthy again"),
            json!({"incident": id, "backend": backend}),
        ),
        Event::Switched { from, to } => line(
            Level::INFO,
            "switch",
            &format!("switch: the active backend is {to} (was {from})"),
            json!({"from": from, "to": to}),
        ),
        _ => {} // a probe that succeeded, or another group's (see `log`)
    }
}

/// Runbook runs and their steps.
fn runbook(event: &Event) {
    match event {
        Event::RunbookDue(due) => line(
            Level::INFO,
            "runbook.queued",
            &format!(
                "runbook {}: {} {} -> {} queued (by {})",
                due.incident, due.kind, due.source, due.target, due.actor
            ),
            json!({"incident": due.incident, "kind": due.kind, "source": due.source, "target": due.target,
                   "actor": due.actor}),
        ),
        Event::RunStarted { run, incident, kind, runbook, resumed } => {
            let verb = if *resumed { "resuming" } else { "running" };
            line(
                Level::INFO,
                "runbook.started",
                &format!("runbook {incident}: {verb} {kind} run {run} ({runbook})"),
                json!({"incident": incident, "run": run, "kind": kind, "runbook": runbook, "resumed": resumed}),
            );
        }
        Event::StepStarted { run, incident, step, uses, phase, attempt } => {
            let undo = if *phase == StepPhase::Undo { "undo " } else { "" };
            let again = if *attempt > 1 { format!(" (attempt {attempt})") } else { String::new() };
            line(
                Level::INFO,
                "step.started",
                &format!("step {incident}: {undo}{step:?} [{uses}] started{again}"),
                json!({"incident": incident, "run": run, "step": step, "uses": uses, "phase": phase.as_str(),
                       "attempt": attempt}),
            );
        }
        Event::StepSkipped { run, incident, step } => line(
            Level::INFO,
            "step.skipped",
            &format!("step {incident}: {step:?} already done before the restart; not run again"),
            json!({"incident": incident, "run": run, "step": step}),
        ),
        Event::StepFinished { run, incident, step, uses, phase, ok, attempts, duration, detail } => {
            let undo = if *phase == StepPhase::Undo { "undo " } else { "" };
            let verdict = if *ok { "ok" } else { "FAILED" };
            let detail: String = detail.chars().take(300).collect();
            line(
                if *ok { Level::INFO } else { Level::WARN },
                "step",
                &format!(
                    "step {incident}: {undo}{step:?} [{uses}] {verdict} in {duration:.2?} ({attempts} attempt(s)): {detail}"
                ),
                json!({"incident": incident, "run": run, "step": step, "uses": uses, "phase": phase.as_str(),
                       "ok": ok, "outcome": if *ok { "ok" } else { "failed" }, "attempts": attempts,
                       "duration_ms": duration.as_millis() as u64, "detail": detail}),
            );
        }
        Event::ApprovalRequested { run, incident, step, message, timeout } => line(
            Level::INFO,
            "approval.requested",
            &format!(
                "approval {incident}: step {step:?} waits up to {timeout:?}: {message} \
                 (cutover approve {incident} --comment ... | cutover reject {incident})"
            ),
            json!({"incident": incident, "run": run, "step": step, "message": message,
                   "timeout_ms": timeout.as_millis() as u64}),
        ),
        Event::RunFinished { run, incident, kind, outcome, duration } => {
            run_finished(*run, incident, kind, outcome, duration)
        }
        Event::RunSettled { incident, detection_to_switch: Some(d), kind, outcome: RunOutcome::Completed }
            if *kind == cutover_core::domain::RunKind::Failover =>
        {
            let secs = d.as_secs_f64();
            line(
                Level::INFO,
                "failover.validated",
                &format!("failover {incident}: validated switch {secs:.2}s after the incident opened"),
                json!({"incident": incident, "detection_to_validated_switch_s": secs}),
            );
        }
        Event::RunSettled { .. } => {}
        _ => {} // another group's (see `log`)
    }
}

/// The process: the state store, signals, listeners, drills, the audit
/// export and leadership (HA).
fn process(event: &Event) {
    match event {
        Event::StoreFailed { op, error: Some(error) } => {
            tracing::error!(op = %op, error = %error, "state store write failed");
        }
        Event::StoreFailed { error: None, .. } => {}
        Event::SignalRead { name, up, .. } => tracing::debug!(signal = %name, up, "signal read"),
        Event::ConnectionRefused { listener } => {
            tracing::debug!(listener = %listener, "connection refused: at the connection cap");
        }
        Event::DrillFinished { scenario, result, report, detail } => line(
            Level::INFO,
            "drill.finished",
            &format!("drill {scenario}: {result}; report {report} {detail}"),
            json!({"scenario": scenario, "result": result, "report": report, "detail": detail}),
        ),
        Event::AuditSegmentExported { last } => tracing::debug!(last = ?last, "audit segment exported"),
        Event::LeadershipChanged { leading: true, token, .. } => line(
            Level::INFO,
            "ha.leading",
            &format!("ha: leading{}", token.map(|t| format!(" with fencing token {t}")).unwrap_or_default()),
            json!({"leading": true, "token": token}),
        ),
        Event::LeadershipChanged { leading: false, leader, .. } => line(
            Level::WARN,
            "ha.standby",
            &match leader {
                Some(l) => format!("ha: standing by; {} ({}) leads", l.node, l.api),
                None => "ha: standing by; no leader known".to_string(),
            },
            json!({"leading": false, "leader": leader}),
        ),
        Event::WriteFenced { op, revision } => line(
            Level::WARN,
            "ha.fenced",
            &match revision {
                Some(t) => format!("ha: {op} refused: the fence of token {t} no longer holds; standing by"),
                None => format!("ha: {op} refused: the fence no longer holds; standing by"),
            },
            json!({"op": op, "revision": revision}),
        ),
        _ => {} // another group's (see `log`)
    }
}

fn run_finished(
    run: i64,
    incident: &str,
    kind: &cutover_core::domain::RunKind,
    outcome: &RunOutcome,
    duration: &std::time::Duration,
) {
    let (level, what) = match outcome {
        RunOutcome::Completed => (Level::INFO, "completed".to_string()),
        RunOutcome::RolledBack { step, error } => {
            (Level::WARN, format!("ROLLED BACK after step {step:?} failed: {error}"))
        }
        RunOutcome::Failed { step, error } => {
            (Level::WARN, format!("FAILED: step {step:?} failed ({error}) and an undo failed too; a human must look"))
        }
        RunOutcome::RollbackHeld { step, error, reason } => (
            Level::WARN,
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
    line(level, "runbook.finished", &format!("runbook {incident}: {kind} {what} in {duration:.2?}"), fields);
}
