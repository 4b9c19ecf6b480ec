//! Rolling back onto a backend that is down is never done silently: the
//! runbook engine asks [`Controller::rollback_verdict`] before a rollback
//! moves traffic back onto a backend; a rollback it holds waits for a
//! human's verdict ([`Controller::approval`] of the incident, which comes
//! here).
//!
//! The states it adds are typed (`cutover_core::domain`): the incident
//! state `RollingBack`, the run states `RollbackHeld` (written by the
//! engine, `RunOutcome::RollbackHeld`) and `RollbackRejected`, and the run
//! kind `Rollback` of a queued approved rollback.

use cutover_core::domain::{IncidentState, RunKind, RunState, Verdict};
use cutover_store::prelude::*;
use cutover_store::{Incident, RunRecord, StoreError};
use serde_json::json;

use super::{Controller, Event, RequestError, RunbookDue, record_timeline};
use crate::clock::Now;
use crate::health::Health;

/// A rollback the engine is about to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RollbackQuestion<'a> {
    pub run: i64,
    pub incident: &'a str,
    pub kind: RunKind,
    pub failed_step: &'a str,
    pub error: &'a str,
    /// The backend the rollback would make active again.
    pub onto: &'a str,
}

impl Controller {
    /// Whether a rollback may move traffic back onto `q.onto`: the policy's
    /// `rollback` rule when it has one (input: the usual document plus
    /// `rollback = {run, kind, failed_step, error, onto, onto_health}`),
    /// else only when `onto` is healthy or recovering. A policy error holds
    /// the rollback. Returns (allow, reason, the health of `onto`).
    pub fn rollback_verdict(&self, q: &RollbackQuestion<'_>, now: Now) -> (bool, String, Health) {
        let health = self.health(q.onto, now.mono);
        let default = || match health {
            Health::Healthy | Health::Recovering => (true, format!("{} {}", q.onto, health.as_str())),
            other => (
                false,
                format!(
                    "not rolling back onto {}: it is {}; approve to roll back anyway, reject to stay on {}",
                    q.onto,
                    other.as_str(),
                    self.active
                ),
            ),
        };
        let incident = match self.store.incident(q.incident) {
            Ok(Some(i)) if self.index(&i.backend).is_some() => i,
            _ => {
                let (allow, reason) = default();
                return (allow, reason, health);
            }
        };
        let mut input = self.policy_input(&incident.id, &incident.opened_at, &incident.backend, now);
        input["rollback"] = json!({
            "run": q.run, "kind": q.kind, "failed_step": q.failed_step, "error": q.error,
            "onto": q.onto, "onto_health": health,
        });
        let (allow, reason) = match self.policy.rollback(&input) {
            Ok(Some((allow, reason))) => (allow, reason),
            Ok(None) => default(),
            Err(e) => {
                tracing::error!(incident = q.incident, error = %e, "the policy's rollback rule failed; holding the rollback");
                (false, format!("policy error, holding the rollback onto {}: {e}", q.onto))
            }
        };
        (allow, reason, health)
    }

    /// The run of `incident` whose rollback is held, if its latest run is.
    pub fn held_rollback(&self, incident: &str) -> Result<Option<RunRecord>, StoreError> {
        Ok(self.store.runs_for(incident)?.pop().filter(|r| r.state == RunState::RollbackHeld && r.ended_at.is_none()))
    }

    /// Whether `incident` awaits a verdict on a held rollback (the
    /// controller decides nothing new on it meanwhile).
    pub(super) fn awaits_rollback_verdict(&mut self, incident: &Incident) -> bool {
        if incident.state != IncidentState::AwaitingApproval {
            return false;
        }
        match self.held_rollback(&incident.id) {
            Ok(held) => held.is_some(),
            Err(e) => {
                self.store_failed("incident.read", &e);
                true // unknown: decide nothing rather than something wrong
            }
        }
    }

    /// A human's verdict on the held rollback of `run`: approve runs it (a
    /// [`RunbookDue`] of kind [`RunKind::Rollback`]; the incident is
    /// rolling back), reject keeps what the run did (a failover stays
    /// `failed_over` and falls back later as usual; a fallback that stays on
    /// the primary is `failover_failed`: a human must look).
    pub(super) fn rollback_approval(
        &mut self,
        inc: &Incident,
        run: &RunRecord,
        approve: bool,
        actor: &str,
        comment: &str,
        now: Now,
    ) -> Result<Option<RunbookDue>, RequestError> {
        let fence = self.acting()?;
        let verdict = if approve { Verdict::Approve } else { Verdict::Reject };
        let state = match (approve, run.kind) {
            (true, _) => IncidentState::RollingBack,
            (false, RunKind::Fallback) => IncidentState::FailoverFailed,
            (false, _) => IncidentState::FailedOver,
        };
        let at = now.wall;
        let rollback = json!({
            "run": run.id, "kind": run.kind, "failed_step": run.detail["step"], "error": run.detail["error"],
            "onto": run.source, "by": actor, "comment": comment,
        });
        let approval =
            Event::Approval { incident: inc.id.clone(), verdict, by: actor.to_string(), comment: comment.to_string() };
        let decided = Event::RollbackVerdict { incident: inc.id.clone(), verdict, rollback: rollback.clone() };
        let recorded = self.store.atomic(&fence, |tx| {
            tx.record_approval(&inc.id, verdict, actor, comment, at)?;
            record_timeline(tx, at, &approval)?;
            record_timeline(tx, at, &decided)?;
            let audit = json!({"incident": inc.id, "comment": comment, "rollback": rollback});
            tx.audit(at, actor, verdict.as_str(), &audit)?;
            tx.set_incident_state(&inc.id, state, None)
        });
        if let Err(e) = recorded {
            return Err(self.refused("approval", e));
        }
        self.telemetry.emit(&approval);
        self.telemetry.emit(&decided);
        if !approve {
            let mut done = run.detail.clone();
            done["rejected_by"] = json!(actor);
            if let Err(e) = self.store.set_run_state(&fence, run.id, RunState::RollbackRejected, Some(&done), Some(at))
            {
                self.store_failed("run.finished", &e);
            }
            return Ok(None);
        }
        let due = RunbookDue {
            incident: inc.id.clone(),
            backend: inc.backend.clone(),
            kind: RunKind::Rollback,
            source: run.target.clone(),
            target: run.source.clone(),
            reason: format!("rollback approved by {actor}: {comment}"),
            actor: actor.to_string(),
        };
        self.telemetry.emit(&Event::RunbookDue(due.clone()));
        Ok(Some(due))
    }
}
