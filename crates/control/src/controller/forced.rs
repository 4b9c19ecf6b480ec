//! `POST /v1/failover`: a failover forced by an admin, through the same
//! runbook as the policy's.
//!
//! # Guarantees
//! - Refused while another incident runs a runbook, when the target is
//!   unknown or already active, and on a standby.
//! - The incident (the active backend's open one, or a new one), the
//!   decision, its timeline and audit entries and the new state commit
//!   together: a forced failover that cannot be audited is refused.

use cutover_core::domain::{DecisionAction, IncidentState, RunKind};
use cutover_store::DecisionRecord;
use cutover_store::prelude::*;
use serde_json::json;

use super::{Controller, Event, RequestError, RunbookDue, record_timeline};
use crate::clock::Now;

impl Controller {
    /// `POST /v1/failover`: a failover forced by an admin, through the same
    /// runbook. It uses the active backend's open incident, or opens one.
    pub fn force_failover(
        &mut self,
        target: &str,
        reason: &str,
        actor: &str,
        now: Now,
    ) -> Result<RunbookDue, RequestError> {
        let fence = self.acting()?;
        if self.config.backend(target).is_none() {
            return Err(RequestError::NotFound(format!("no backend named {target:?}")));
        }
        if target == self.active {
            return Err(RequestError::Conflict(format!("{target} is already the active backend")));
        }
        if let Some(busy) = self.store.open_incidents()?.into_iter().find(|i| i.state.running_runbook()) {
            return Err(RequestError::Conflict(format!("incident {} is running a runbook ({})", busy.id, busy.state)));
        }
        let source = self.active.clone();
        let at = now.wall;
        let existing = match self.store.open_incident_for(&source) {
            Ok(i) => i,
            Err(e) => {
                self.store_failed("incident.read", &e);
                return Err(e.into());
            }
        };
        let reason = format!("forced by {actor}: {reason}");
        let input = json!({"manual": true, "actor": actor, "source": source, "target": target});
        // The incident, the decision, its audit entry and the new state
        // commit together: a forced failover that cannot be audited is refused.
        let recorded = self.store.atomic(&fence, |tx| {
            let (id, opened) = match &existing {
                Some(i) => (i.id.clone(), None),
                None => {
                    let id = tx.open_incident(&source, at)?;
                    let opened = Event::IncidentOpened {
                        id: id.clone(),
                        backend: source.clone(),
                        quorum: None,
                        by: Some(actor.to_string()),
                    };
                    record_timeline(tx, at, &opened)?;
                    (id, Some(opened))
                }
            };
            let forced = Event::FailoverForced {
                incident: id.clone(),
                target: target.to_string(),
                reason: reason.clone(),
                actor: actor.to_string(),
            };
            let detail = forced.timeline().map(|t| t.detail).unwrap_or_default();
            let record = DecisionRecord {
                incident: &id,
                action: DecisionAction::Failover,
                target: Some(target),
                reason: &reason,
                policy_sha256: "manual",
                input: &input,
            };
            tx.record_decision(&record, at)?;
            record_timeline(tx, at, &forced)?;
            tx.audit(at, actor, "failover.forced", &json!({"incident": id, "decision": detail}))?;
            tx.set_incident_state(&id, IncidentState::FailingOver, None)?;
            Ok((id, opened, forced))
        });
        let (id, opened, forced) = match recorded {
            Ok(r) => r,
            Err(e) => return Err(self.refused("failover.forced", e)),
        };
        if let Some(opened) = opened {
            self.opened.insert(id.clone(), now.mono);
            self.telemetry.emit(&opened);
        }
        self.telemetry.emit(&forced);
        let due = RunbookDue {
            incident: id,
            backend: source.clone(),
            kind: RunKind::Failover,
            source,
            target: target.to_string(),
            reason,
            actor: actor.to_string(),
        };
        self.telemetry.emit(&Event::RunbookDue(due.clone()));
        Ok(due)
    }
}
