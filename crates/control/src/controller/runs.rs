//! What runbooks do to the controller: `state.switch` moves the active
//! backend, and the end of a run moves its incident on.
//!
//! # Guarantees
//! - Only the leader records: on a standby both answer
//!   [`RequestError::NotLeader`] and write nothing.
//! - A run's end sets its incident's state (and, for a completed fallback,
//!   closes the incident with its audit entry) in one transaction.

use std::time::Instant;

use cutover_core::domain::{IncidentState, RunKind, RunOutcome};
use cutover_store::StoreError;
use cutover_store::prelude::*;
use serde_json::json;

use super::{Controller, Event, RequestError};
use crate::clock::Now;

impl Controller {
    /// `state.switch`: makes `target` the active backend (recorded in the
    /// store, which the standalone gateway follows). Returns the previous one.
    pub fn set_active(&mut self, target: &str) -> Result<String, RequestError> {
        let fence = self.acting()?;
        if self.config.backend(target).is_none() {
            return Err(RequestError::NotFound(format!("no backend named {target:?}")));
        }
        match self.store.set_active_backend(&fence, target) {
            Ok(()) => {}
            Err(e @ StoreError::Fenced { .. }) => return Err(self.refused("active.set", e)),
            Err(e) => return Err(e.into()),
        }
        let from = std::mem::replace(&mut self.active, target.to_string());
        if from != target {
            self.telemetry.emit(&Event::Switched { from: from.clone(), to: target.to_string() });
        }
        Ok(from)
    }

    /// When an incident was opened, if this process saw it open.
    pub fn opened_instant(&self, incident: &str) -> Option<Instant> {
        self.opened.get(incident).copied()
    }

    /// Records how a runbook run ended and moves its incident on:
    /// failover completed → `failed_over` (fallback waits for `stable_for`
    /// and `min_dwell`); failover rolled back → `rolled_back` (no new
    /// automatic decision; a human may force one); fallback completed →
    /// `resolved`; fallback rolled back → `failed_over` again (and the
    /// primary must be stable for `stable_for` once more); rollback held →
    /// `awaiting_approval` (of the rollback); an approved rollback that
    /// completed → `rolled_back`. Emits [`Event::RunSettled`] (with the
    /// time from the incident's opening to a completed failover). On a
    /// standby it records nothing (see [`Controller::try_run_finished`]).
    pub fn run_finished(&mut self, incident: &str, kind: RunKind, outcome: &RunOutcome, now: Now) {
        // A store failure is already counted and logged by `try_run_finished`.
        if let Err(e @ RequestError::NotLeader { .. }) = self.try_run_finished(incident, kind, outcome, now) {
            tracing::warn!(incident, error = %e, "the end of a run was not recorded");
        }
    }

    /// [`Controller::run_finished`], saying why the end of the run was not
    /// recorded: [`RequestError::NotLeader`] on a standby (nothing written),
    /// or the store's error (counted; the run's end is lost).
    pub fn try_run_finished(
        &mut self,
        incident: &str,
        kind: RunKind,
        outcome: &RunOutcome,
        now: Now,
    ) -> Result<(), RequestError> {
        let fence = self.acting()?;
        let (state, closed) = match (kind, outcome) {
            (_, RunOutcome::RollbackHeld { .. }) => (IncidentState::AwaitingApproval, None),
            (RunKind::Rollback, RunOutcome::Completed | RunOutcome::RolledBack { .. }) => {
                (IncidentState::RolledBack, None)
            }
            (RunKind::Rollback, RunOutcome::Failed { .. }) => (IncidentState::FailoverFailed, None),
            (RunKind::Failover, RunOutcome::Completed) => {
                self.failed_over_at.insert(incident.to_string(), now.mono);
                (IncidentState::FailedOver, None)
            }
            (RunKind::Failover, RunOutcome::RolledBack { .. }) => (IncidentState::RolledBack, None),
            (RunKind::Failover, RunOutcome::Failed { .. }) => (IncidentState::FailoverFailed, None),
            (RunKind::Fallback, RunOutcome::Completed) => (IncidentState::Resolved, Some(now.wall)),
            (RunKind::Fallback, RunOutcome::RolledBack { .. }) => {
                self.healthy_since.clear();
                (IncidentState::FailedOver, None)
            }
            (RunKind::Fallback, RunOutcome::Failed { .. }) => (IncidentState::FailoverFailed, None),
        };
        let recorded = self.store.atomic(&fence, |tx| {
            tx.set_incident_state(incident, state, closed)?;
            if let Some(at) = closed {
                tx.audit(
                    at,
                    "controller",
                    "incident.resolve",
                    &json!({"incident": incident, "by": RunKind::Fallback}),
                )?;
            }
            Ok(())
        });
        let refused = recorded.err().map(|e| self.refused("run.finished", e));
        let detection_to_switch = match (kind, outcome) {
            (RunKind::Failover, RunOutcome::Completed) => {
                self.opened.get(incident).map(|t| now.mono.saturating_duration_since(*t))
            }
            _ => None,
        };
        self.telemetry.emit(&Event::RunSettled {
            incident: incident.to_string(),
            kind,
            outcome: outcome.clone(),
            detection_to_switch,
        });
        refused.map_or(Ok(()), Err)
    }
}
