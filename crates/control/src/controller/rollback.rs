//! Rolling back onto a backend that is down is never done silently: the
//! runbook engine asks [`Controller::rollback_verdict`] before a rollback
//! moves traffic back onto a backend; a rollback it holds waits for a
//! human's verdict ([`Controller::approval`] of the incident, which comes
//! here).
//!
//! The new state names live here, in one place: the incident state
//! [`ROLLING_BACK`], and the run states [`RUN_ROLLBACK_HELD`] (written by the
//! engine, `RunOutcome::RollbackHeld`) and [`RUN_ROLLBACK_REJECTED`].

use std::time::{Instant, SystemTime};

use cutover_store::{Incident, RunRecord, StoreError};
use serde_json::json;

use super::{Controller, RequestError, RunbookDue};
use crate::health::Health;

/// Incident state while a held rollback that a human approved runs.
pub const ROLLING_BACK: &str = "rolling_back";
/// Run state of a run whose rollback the guard held (the engine's
/// `RUN_ROLLBACK_HELD`): not ended, awaiting a human.
pub const RUN_ROLLBACK_HELD: &str = "rollback_held";
/// Run state of a held rollback that a human rejected: the failed run's
/// completed steps stay, the run is over.
pub const RUN_ROLLBACK_REJECTED: &str = "rollback_rejected";
/// The kind of a [`RunbookDue`] that runs an approved held rollback.
pub const KIND_ROLLBACK: &str = "rollback";
/// The incident state of a held rollback (as of a decision awaiting approval).
const AWAITING_APPROVAL: &str = "awaiting_approval";

/// A rollback the engine is about to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RollbackQuestion<'a> {
    pub run: i64,
    pub incident: &'a str,
    /// `failover` or `fallback`.
    pub kind: &'a str,
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
    pub fn rollback_verdict(&self, q: &RollbackQuestion<'_>, now: Instant) -> (bool, String, Health) {
        let health = self.health(q.onto, now);
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
        Ok(self.store.runs_for(incident)?.pop().filter(|r| r.state == RUN_ROLLBACK_HELD && r.ended_at.is_none()))
    }

    /// Whether `incident` awaits a verdict on a held rollback (the
    /// controller decides nothing new on it meanwhile).
    pub(super) fn awaits_rollback_verdict(&mut self, incident: &Incident) -> bool {
        if incident.state != AWAITING_APPROVAL {
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
    /// [`RunbookDue`] of kind [`KIND_ROLLBACK`]; the incident is
    /// [`ROLLING_BACK`]), reject keeps what the run did (a failover stays
    /// `failed_over` and falls back later as usual; a fallback that stays on
    /// the primary is `failover_failed`: a human must look).
    pub(super) fn rollback_approval(
        &mut self,
        inc: &Incident,
        run: &RunRecord,
        approve: bool,
        actor: &str,
        comment: &str,
    ) -> Result<Option<RunbookDue>, RequestError> {
        let verdict = if approve { "approve" } else { "reject" };
        let (state, kind) = match (approve, run.kind.as_str()) {
            (true, _) => (ROLLING_BACK, "rollback.approved"),
            (false, "fallback") => ("failover_failed", "rollback.rejected"),
            (false, _) => ("failed_over", "rollback.rejected"),
        };
        let at = SystemTime::now();
        let detail = json!({"verdict": verdict, "by": actor, "comment": comment});
        let rollback = json!({
            "run": run.id, "kind": run.kind, "failed_step": run.detail["step"], "error": run.detail["error"],
            "onto": run.source, "by": actor, "comment": comment,
        });
        let recorded = self.store.atomically(|tx| {
            tx.record_approval(&inc.id, verdict, actor, comment, at)?;
            tx.add_event(&inc.id, at, "approval", &detail)?;
            tx.add_event(&inc.id, at, kind, &rollback)?;
            tx.audit(at, actor, verdict, &json!({"incident": inc.id, "comment": comment, "rollback": rollback}))?;
            tx.set_incident_state(&inc.id, state, None)
        });
        if let Err(e) = recorded {
            self.store_failed("approval", &e);
            return Err(e.into());
        }
        if !approve {
            let mut done = run.detail.clone();
            done["rejected_by"] = json!(actor);
            if let Err(e) = self.store.set_run_state(run.id, RUN_ROLLBACK_REJECTED, Some(&done), Some(at)) {
                self.store_failed("run.finished", &e);
            }
            return Ok(None);
        }
        Ok(Some(RunbookDue {
            incident: inc.id.clone(),
            backend: inc.backend.clone(),
            kind: KIND_ROLLBACK.into(),
            source: run.target.clone(),
            target: run.source.clone(),
            reason: format!("rollback approved by {actor}: {comment}"),
            actor: actor.to_string(),
        }))
    }
}
