//! A human's verdict on an incident (`POST /v1/incidents/{id}/approve` and
//! `/reject`): on a decision that awaits approval, on a runbook waiting at
//! an `approval` step, or (through [`super::rollback`]) on a held rollback.
//!
//! # Guarantees
//! - One verdict per decision and per run: a second one is a
//!   [`RequestError::Conflict`] naming the first.
//! - The verdict, its timeline and audit entries and what it changes commit
//!   together: a verdict that cannot be audited is refused and changes
//!   nothing.

use cutover_core::domain::{IncidentState, RunKind, Verdict};
use cutover_store::prelude::*;
use cutover_store::{Approval, Incident, StoreError};
use serde_json::{Value, json};

use super::{Controller, Event, RequestError, RunbookDue, record_timeline};
use crate::clock::Now;

impl Controller {
    /// `approve`/`reject` of an incident by `actor`. An incident awaiting
    /// approval of its decision starts its failover (approve) or is held
    /// (reject); one awaiting approval of a held rollback has it run
    /// (approve) or keeps what the run did (reject); a runbook waiting at an
    /// `approval` step takes the verdict from the store. A failover it
    /// starts is emitted as [`Event::RunbookDue`] and returned.
    pub fn approval(
        &mut self,
        incident: &str,
        approve: bool,
        actor: &str,
        comment: &str,
        now: Now,
    ) -> Result<Option<RunbookDue>, RequestError> {
        let fence = self.acting()?;
        let inc = self
            .store
            .incident(incident)?
            .ok_or_else(|| RequestError::NotFound(format!("no incident {incident:?}")))?;
        if inc.closed_at.is_none()
            && inc.state == IncidentState::AwaitingApproval
            && let Some(run) = self.held_rollback(incident)?
        {
            return self.rollback_approval(&inc, &run, approve, actor, comment, now);
        }
        let verdict = if approve { Verdict::Approve } else { Verdict::Reject };
        let waiting_step = self.step_awaits_verdict(&inc)?;
        if inc.closed_at.is_some() || !(inc.state == IncidentState::AwaitingApproval || waiting_step) {
            if let Some(done) = self.last_verdict(incident)? {
                return Err(already_decided(incident, inc.state, &done));
            }
            return Err(RequestError::Conflict(format!(
                "incident {incident} is {}; nothing awaits approval",
                inc.state
            )));
        }
        let target = inc.decision.get("target").and_then(Value::as_str).map(str::to_string);
        let next_state = match (waiting_step, approve) {
            (true, _) => None,
            (false, false) => Some(IncidentState::Rejected),
            (false, true) => Some(IncidentState::FailingOver),
        };
        if next_state == Some(IncidentState::FailingOver) && target.is_none() {
            return Err(RequestError::Conflict(format!(
                "incident {incident}'s decision has no target; use POST /v1/failover"
            )));
        }
        let at = now.wall;
        let approval = Event::Approval {
            incident: incident.to_string(),
            verdict,
            by: actor.to_string(),
            comment: comment.to_string(),
        };
        // The verdict, its audit entry and what it changes commit together: a
        // verdict that cannot be audited is refused (500) and changes nothing.
        let recorded = self.store.atomic(&fence, |tx| {
            tx.record_approval(incident, verdict, actor, comment, at)?;
            record_timeline(tx, at, &approval)?;
            tx.audit(at, actor, verdict.as_str(), &json!({"incident": incident, "comment": comment}))?;
            if let Some(state) = next_state {
                tx.set_incident_state(incident, state, None)?;
            }
            Ok(())
        });
        if let Err(e) = recorded {
            return Err(self.refused("approval", e));
        }
        self.telemetry.emit(&approval);
        let (Some(IncidentState::FailingOver), Some(target)) = (next_state, target) else { return Ok(None) };
        let due = RunbookDue {
            incident: incident.to_string(),
            backend: inc.backend.clone(),
            kind: RunKind::Failover,
            source: self.active.clone(),
            target,
            reason: format!("approved by {actor}: {comment}"),
            actor: actor.to_string(),
        };
        self.telemetry.emit(&Event::RunbookDue(due.clone()));
        Ok(Some(due))
    }

    /// Whether a runbook of `inc` waits at an `approval` step. A run's
    /// `approval` step takes the first verdict recorded after its run
    /// began: one verdict per run, a second one is a conflict.
    fn step_awaits_verdict(&self, inc: &Incident) -> Result<bool, RequestError> {
        if !inc.state.running_runbook() {
            return Ok(false);
        }
        let Some(run) = self.store.runs_for(&inc.id)?.into_iter().rfind(|r| r.ended_at.is_none()) else {
            return Ok(false);
        };
        if let Some(done) = self.store.approval_after(&inc.id, run.approval_base)? {
            return Err(already_decided(&inc.id, inc.state, &done));
        }
        // Only a run that reached an `approval` step waits for a verdict.
        let timeline = self.store.timeline(&inc.id)?;
        let started = timeline.iter().rposition(|e| e.kind == "runbook.started").unwrap_or(0);
        Ok(timeline[started..].iter().any(|e| e.kind == "approval.requested"))
    }

    /// The latest approval or rejection recorded for `incident`.
    fn last_verdict(&self, incident: &str) -> Result<Option<Approval>, StoreError> {
        let mut last = None;
        let mut after = 0;
        while let Some(a) = self.store.approval_after(incident, after)? {
            after = a.id;
            last = Some(a);
        }
        Ok(last)
    }
}

/// A second verdict on an incident that was already decided.
fn already_decided(incident: &str, state: IncidentState, done: &Approval) -> RequestError {
    let how = done.verdict.past();
    RequestError::Conflict(format!(
        "incident {incident} was already decided: {how} by {} at {}; it is now {state}",
        done.actor, done.at
    ))
}
