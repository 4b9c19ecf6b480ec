//! Telemetry as typed events: one [`Event`] per thing that happens, and one
//! function, [`Telemetry::emit`], that turns an event into its metric, its
//! log line and its timeline entry, so that the three never drift.
//!
//! # Guarantees
//! - Every variant is handled by the three exhaustive matches of this module
//!   (`count.rs`, `log.rs`, [`Event::timeline`]): a new variant cannot be
//!   added without saying what it counts, what it logs and whether it goes
//!   into an incident's timeline.
//! - The event lines of `cutover run` (health changes, incidents, decisions,
//!   runbooks, steps) are `tracing` events with target [`EVENTS`], the kind
//!   in the field `event`, the message, and the event's fields as one JSON
//!   object in the field `fields`; the binary prints them in its format.
//!
//! # Caveats
//! - An entry that must commit together with other writes (a decision with
//!   its audit entry) is written by the caller from [`Event::timeline`] in
//!   its transaction, before [`Telemetry::emit`]: an event is emitted only
//!   once what it reports is recorded.

use std::time::Duration;

use cutover_core::domain::{DecisionAction, RunKind, RunOutcome, StepPhase, Verdict};
use cutover_s3::probe::ProbeReport;
use serde_json::{Value, json};

use crate::controller::{Leader, Quorum, RunbookDue};
use crate::health::Health;
use crate::metrics::Metrics;
use crate::policy::Decision;

mod count;
mod log;

/// The `tracing` target of the event lines.
pub const EVENTS: &str = "cutover::event";

/// Something that happened, reported once.
#[derive(Debug, Clone)]
pub enum Event {
    /// A probe cycle of a vantage ended.
    ProbeCycle { vantage: String, report: ProbeReport },
    /// A vantage's view of a backend's health changed.
    HealthChanged { backend: String, vantage: String, from: Health, to: Health, reason: String },
    /// An incident was opened: by the evidence (`quorum`) or by a forced
    /// failover (`by`).
    IncidentOpened { id: String, backend: String, quorum: Option<Quorum>, by: Option<String> },
    /// The policy decided.
    Decided { incident: String, decision: Decision, policy_sha256: String },
    /// An admin forced a failover (`POST /v1/failover`).
    FailoverForced { incident: String, target: String, reason: String, actor: String },
    /// The policy failed; the controller holds and alerts.
    PolicyFailed { incident: String, error: String },
    /// The fallback of a failed-over incident was decided.
    FallbackDecided { incident: String, target: String, reason: String, policy_sha256: String },
    /// A human's verdict on an incident.
    Approval { incident: String, verdict: Verdict, by: String, comment: String },
    /// A human's verdict on a held rollback (`rollback` is what it is about).
    RollbackVerdict { incident: String, verdict: Verdict, rollback: Value },
    /// A runbook should run: a failover (decided, approved or forced), a
    /// fallback or an approved rollback. Runs never overlap.
    RunbookDue(RunbookDue),
    /// An incident's backend is healthy again.
    IncidentResolved { id: String, backend: String, reason: String },
    /// `state.switch`: the active backend changed.
    Switched { from: String, to: String },
    /// A runbook run began (or resumed after a restart).
    RunStarted { run: i64, incident: String, kind: RunKind, runbook: String, resumed: bool },
    /// A step (or its undo) began.
    StepStarted { run: i64, incident: String, step: String, uses: String, phase: StepPhase, attempt: u32 },
    /// A step recorded `ok` before a restart, not run again.
    StepSkipped { run: i64, incident: String, step: String },
    /// A step (or its undo) ended; `detail` is its result or error.
    StepFinished {
        run: i64,
        incident: String,
        step: String,
        uses: String,
        phase: StepPhase,
        ok: bool,
        attempts: u32,
        duration: Duration,
        detail: String,
    },
    /// An `approval` step waits for a verdict.
    ApprovalRequested { run: i64, incident: String, step: String, message: String, timeout: Duration },
    /// A runbook run ended (a held rollback included).
    RunFinished { run: i64, incident: String, kind: RunKind, outcome: RunOutcome, duration: Duration },
    /// The controller moved an incident on after a run; a completed failover
    /// says how long after the incident opened (when this process saw it).
    RunSettled { incident: String, kind: RunKind, outcome: RunOutcome, detection_to_switch: Option<Duration> },
    /// A state store operation failed (`op` names it).
    StoreFailed { op: String, error: Option<String> },
    /// A signal was read (`value`, `firing`: `None` while unavailable).
    SignalRead { name: String, up: bool, value: Option<f64>, firing: Option<bool> },
    /// A listener closed a connection at once: it was at its cap.
    ConnectionRefused { listener: String },
    /// A scheduled drill ended (`result`: `met`, `breached` or `error`).
    DrillFinished { scenario: String, result: String, report: String, detail: String },
    /// An audit segment was uploaded to the export (`last`: its newest
    /// entry), or the upload failed (`None`).
    AuditSegmentExported { last: Option<i64> },
    /// The controller started or stopped acting (HA): `token` is the
    /// fencing token while leading in HA; `leader` who leads instead, when
    /// known.
    LeadershipChanged { leading: bool, token: Option<i64>, leader: Option<Leader> },
    /// The store refused a write because its fence no longer holds (a
    /// deposed leader racing its deadline); the controller stands by.
    WriteFenced { op: String, revision: Option<i64> },
}

/// An entry of an incident's timeline.
#[derive(Debug, Clone, PartialEq)]
pub struct Timeline {
    pub incident: String,
    pub kind: &'static str,
    pub detail: Value,
}

/// Where events go: the metrics (registered by the binary) and the log.
/// Cheap to clone; clones count into the same metrics.
#[derive(Debug, Clone, Default)]
pub struct Telemetry {
    metrics: Metrics,
}

impl Telemetry {
    pub fn new(metrics: Metrics) -> Self {
        Self { metrics }
    }

    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// The one place an event becomes telemetry: updates its metric, writes
    /// its log line and returns its timeline entry, if it has one (for a
    /// caller that records it after the fact; see the module's caveats).
    pub fn emit(&self, event: &Event) -> Option<Timeline> {
        count::count(&self.metrics, event);
        log::log(event);
        event.timeline()
    }
}

impl Event {
    /// The entry this event adds to its incident's timeline, if any. The
    /// runbook engine writes the timeline of its runs itself.
    pub fn timeline(&self) -> Option<Timeline> {
        let (incident, kind, detail) = match self {
            Event::IncidentOpened { id, backend, quorum: Some(q), .. } => {
                (id, "incident.opened", json!({"backend": backend, "quorum": quorum_json(q)}))
            }
            Event::IncidentOpened { id, backend, quorum: None, by } => {
                (id, "incident.opened", json!({"backend": backend, "by": by}))
            }
            Event::Decided { incident, decision, policy_sha256 } => (
                incident,
                "decision",
                json!({"action": decision.action, "target": decision.target, "reason": decision.reason,
                       "policy_sha256": policy_sha256}),
            ),
            Event::FailoverForced { incident, target, reason, .. } => (
                incident,
                "decision",
                json!({"action": DecisionAction::Failover, "target": target, "reason": reason, "policy_sha256": "manual"}),
            ),
            Event::PolicyFailed { incident, error } => (incident, "policy.error", json!({"error": error})),
            Event::FallbackDecided { incident, target, reason, policy_sha256 } => (
                incident,
                "fallback.decision",
                json!({"action": RunKind::Fallback, "target": target, "reason": reason, "policy_sha256": policy_sha256}),
            ),
            Event::Approval { incident, verdict, by, comment } => {
                (incident, "approval", json!({"verdict": verdict, "by": by, "comment": comment}))
            }
            Event::RollbackVerdict { incident, verdict, rollback } => {
                let kind = match verdict {
                    Verdict::Approve => "rollback.approved",
                    Verdict::Reject => "rollback.rejected",
                };
                (incident, kind, rollback.clone())
            }
            Event::IncidentResolved { id, reason, .. } => (id, "incident.resolved", json!({"reason": reason})),
            Event::ProbeCycle { .. }
            | Event::HealthChanged { .. }
            | Event::RunbookDue(_)
            | Event::Switched { .. }
            | Event::RunStarted { .. }
            | Event::StepStarted { .. }
            | Event::StepSkipped { .. }
            | Event::StepFinished { .. }
            | Event::ApprovalRequested { .. }
            | Event::RunFinished { .. }
            | Event::RunSettled { .. }
            | Event::StoreFailed { .. }
            | Event::SignalRead { .. }
            | Event::ConnectionRefused { .. }
            | Event::DrillFinished { .. }
            | Event::AuditSegmentExported { .. }
            | Event::LeadershipChanged { .. }
            | Event::WriteFenced { .. } => return None,
        };
        Some(Timeline { incident: incident.clone(), kind, detail })
    }
}

/// The quorum as the timeline and the policy input show it.
pub(crate) fn quorum_json(q: &Quorum) -> Value {
    json!({"required": q.required, "down": q.down, "reporting": q.reporting, "met": q.met() && q.down > 0})
}

#[cfg(test)]
#[path = "telemetry/tests.rs"]
mod tests;
