//! What each event counts.

use cutover_core::domain::{RunKind, RunOutcome};

use super::Event;
use crate::metrics::{
    ActionLabel, CycleLabels, DrillLabels, KindLabel, ListenerLabel, Metrics, OpLabel, ProbeOpLabels,
    ProbeOutcomeLabels, ResultLabel, RunLabels, SignalLabel, StepLabels, TransitionLabels, seconds,
};

pub(super) fn count(m: &Metrics, event: &Event) {
    match event {
        Event::ProbeCycle { vantage, report } => {
            for op in &report.ops {
                let labels =
                    ProbeOpLabels { backend: report.backend.clone(), vantage: vantage.clone(), op: op.op.to_string() };
                m.probe_duration.get_or_create(&labels).observe(seconds(op.ms / 1000.0));
                let labels = ProbeOutcomeLabels {
                    backend: report.backend.clone(),
                    vantage: vantage.clone(),
                    op: op.op.to_string(),
                    outcome: op.outcome.to_string(),
                };
                m.probe_ops.get_or_create(&labels).inc();
            }
            let labels = CycleLabels {
                backend: report.backend.clone(),
                vantage: vantage.clone(),
                outcome: report.outcome.to_string(),
            };
            m.probe_cycles.get_or_create(&labels).inc();
        }
        Event::HealthChanged { backend, vantage, to, .. } => {
            let labels = TransitionLabels { backend: backend.clone(), vantage: vantage.clone(), to: to.as_str() };
            m.health_changes.get_or_create(&labels).inc();
        }
        Event::Decided { decision, .. } => {
            m.decisions.get_or_create(&ActionLabel { action: decision.action.as_str() }).inc();
        }
        Event::StepFinished { uses, phase, ok, duration, .. } => {
            let labels =
                StepLabels { uses: uses.clone(), phase: phase.as_str(), ok: if *ok { "true" } else { "false" } };
            m.step_duration.get_or_create(&labels).observe(*duration);
        }
        Event::RunFinished { kind, outcome, .. } => {
            m.runs.get_or_create(&RunLabels { kind: kind.to_string(), outcome: outcome.as_str() }).inc();
        }
        Event::RunSettled { kind, outcome, detection_to_switch, .. } => match (kind, outcome) {
            (RunKind::Failover, RunOutcome::Completed) => {
                m.failovers.inc();
                if let Some(d) = detection_to_switch {
                    m.detect_to_switch.observe(*d);
                }
            }
            (RunKind::Fallback, RunOutcome::Completed) => {
                m.fallbacks.inc();
            }
            (_, RunOutcome::RolledBack { .. } | RunOutcome::Failed { .. }) => {
                m.rollbacks.get_or_create(&KindLabel { kind: kind.to_string() }).inc();
            }
            _ => {}
        },
        Event::StoreFailed { op, .. } => {
            m.store_errors.get_or_create(&OpLabel { op: op.clone() }).inc();
        }
        Event::SignalRead { name, up, value, firing } => {
            let labels = SignalLabel { signal: name.clone() };
            m.signal_up.get_or_create(&labels).set(i64::from(*up));
            m.signal_value.get_or_create(&labels).set(value.unwrap_or(f64::NAN));
            m.signal_firing.get_or_create(&labels).set(firing.map_or(f64::NAN, |f| if f { 1.0 } else { 0.0 }));
        }
        Event::ConnectionRefused { listener } => {
            m.connections_refused.get_or_create(&ListenerLabel { listener: listener.clone() }).inc();
        }
        Event::DrillFinished { scenario, result, .. } => {
            m.drills.get_or_create(&DrillLabels { scenario: scenario.clone(), result: result.clone() }).inc();
        }
        Event::AuditSegmentExported { last } => {
            let result = if last.is_some() { "ok" } else { "error" };
            m.audit_export_segments.get_or_create(&ResultLabel { result }).inc();
            if let Some(seq) = last {
                m.audit_exported_seq.set(*seq);
            }
        }
        Event::LeadershipChanged { leading, .. } => {
            m.ha_leader.set(i64::from(*leading));
            m.ha_leadership_changes.inc();
        }
        Event::WriteFenced { .. } => {
            m.ha_fenced_writes.inc();
        }
        Event::IncidentOpened { .. }
        | Event::FailoverForced { .. }
        | Event::PolicyFailed { .. }
        | Event::FallbackDecided { .. }
        | Event::Approval { .. }
        | Event::RollbackVerdict { .. }
        | Event::RunbookDue(_)
        | Event::IncidentResolved { .. }
        | Event::Switched { .. }
        | Event::RunStarted { .. }
        | Event::StepStarted { .. }
        | Event::StepSkipped { .. }
        | Event::ApprovalRequested { .. } => {}
    }
}
