//! Incidents from health: a backend that a vantage sees down gets an
//! incident; the policy decides on it whenever the evidence changes; it
//! resolves when every vantage that reports says healthy again before any
//! failover (or after a failover that was rolled back).
//!
//! # Guarantees
//! - Only the leader evaluates: a standby opens, decides and resolves
//!   nothing.
//! - Each step (opening, deciding, resolving) commits with its timeline and
//!   audit entries in one transaction: what cannot be recorded and audited
//!   does not happen, and a decision that failed to commit is made again.
//! - An incident that is busy (a runbook running or traffic moved), awaits
//!   a verdict on a held rollback, was rejected or rolled back gets no new
//!   automatic decision.

use cutover_core::domain::{IncidentState, RunKind};
use cutover_store::prelude::*;
use cutover_store::{DecisionRecord, Fence, Incident};
use serde_json::json;

use super::{Controller, Event, RunbookDue, record_timeline};
use crate::clock::Now;
use crate::policy::{Action, Decision};

impl Controller {
    /// Opens, decides and resolves incidents for backend `i`; only while
    /// leading (a standby writes nothing and decides nothing).
    pub(super) fn evaluate(&mut self, now: Now, i: usize) -> Vec<Event> {
        let Some(fence) = self.role.fence().cloned() else { return Vec::new() };
        let name = self.backends[i].name.clone();
        match self.store.open_incident_for(&name) {
            Ok(None) => self.open_incident(&fence, now, i),
            Ok(Some(incident)) => self.follow_incident(&fence, now, i, &incident),
            Err(e) => {
                self.store_failed("incident.read", &e);
                Vec::new()
            }
        }
    }

    /// Opens an incident for backend `i`, which has none, when a vantage
    /// sees it down, and evaluates it at once.
    fn open_incident(&mut self, fence: &Fence, now: Now, i: usize) -> Vec<Event> {
        let name = self.backends[i].name.clone();
        let q = self.quorum(&name, now.mono);
        let mut events = Vec::new();
        if q.down == 0 {
            return events;
        }
        let at = now.wall;
        let opened = self.store.atomic(fence, |tx| {
            let id = tx.open_incident(&name, at)?;
            let opened = Event::IncidentOpened { id: id.clone(), backend: name.clone(), quorum: Some(q), by: None };
            record_timeline(tx, at, &opened)?;
            tx.audit(at, "controller", "incident.open", &json!({"incident": id, "backend": name}))?;
            Ok((id, opened))
        });
        match opened {
            Ok((id, opened)) => {
                self.opened.insert(id, now.mono);
                events.push(self.emit(opened));
                self.backends[i].decided_on = None;
                events.extend(self.evaluate(now, i));
            }
            Err(e) => self.store_failed("incident.open", &e),
        }
        events
    }

    /// The open `incident` of backend `i`: left alone while busy or awaiting
    /// a verdict on a held rollback, resolved once healthy again, else
    /// decided on whenever the evidence it was decided on changed.
    fn follow_incident(&mut self, fence: &Fence, now: Now, i: usize, incident: &Incident) -> Vec<Event> {
        if incident.state.busy() || self.awaits_rollback_verdict(incident) {
            return Vec::new();
        }
        let q = self.quorum(&self.backends[i].name, now.mono);
        if q.down == 0 && self.all_fresh_healthy(i, now.mono) {
            return self.resolve_incident(fence, now, i, incident);
        }
        if matches!(incident.state, IncidentState::Rejected | IncidentState::RolledBack) {
            return Vec::new(); // a human said no, or the runbook failed: no new automatic decision
        }
        let verify_failed = self.backends[i].verify.as_ref().is_some_and(|v| !v.ok);
        let basis = (q.down, q.met(), verify_failed);
        if self.backends[i].decided_on == Some(basis) || q.down == 0 {
            return Vec::new();
        }
        self.backends[i].decided_on = Some(basis);
        self.decide(fence, now, i, incident)
    }

    /// Resolves `incident` of backend `i`, healthy again.
    fn resolve_incident(&mut self, fence: &Fence, now: Now, i: usize, incident: &Incident) -> Vec<Event> {
        let at = now.wall;
        let reason = if incident.state == IncidentState::RolledBack {
            "healthy; the failover was rolled back"
        } else {
            "healthy again before any failover"
        };
        let resolved = Event::IncidentResolved {
            id: incident.id.clone(),
            backend: self.backends[i].name.clone(),
            reason: reason.to_string(),
        };
        let recorded = self.store.atomic(fence, |tx| {
            tx.set_incident_state(&incident.id, IncidentState::Resolved, Some(at))?;
            record_timeline(tx, at, &resolved)?;
            tx.audit(at, "controller", "incident.resolve", &json!({"incident": incident.id}))
        });
        if let Err(e) = recorded {
            self.store_failed("incident.resolve", &e);
            return Vec::new();
        }
        self.backends[i].decided_on = None;
        self.backends[i].resumed = false;
        vec![self.emit(resolved)]
    }

    /// Asks the policy about `incident` of backend `i` and records its
    /// decision (a policy error holds); a failover it decides is due.
    fn decide(&mut self, fence: &Fence, now: Now, i: usize, incident: &Incident) -> Vec<Event> {
        let name = self.backends[i].name.clone();
        let mut events = Vec::new();
        let input = self.policy_input(&incident.id, &incident.opened_at, &name, now);
        let decision = match self.policy.decide(&input) {
            Ok(d) => d,
            Err(e) => {
                let error = e.to_string();
                events.push(self.policy_failed(fence, now, &incident.id, error.clone()));
                if !self.is_leading() {
                    return events; // fenced out: no decision with the old fence
                }
                Decision { action: Action::Hold, target: None, reason: format!("policy error, holding: {error}") }
            }
        };
        let record = DecisionRecord {
            incident: &incident.id,
            action: decision.action,
            target: decision.target.as_deref(),
            reason: &decision.reason,
            policy_sha256: self.policy.sha256(),
            input: &input,
        };
        let at = now.wall;
        let decided = Event::Decided {
            incident: incident.id.clone(),
            decision: decision.clone(),
            policy_sha256: self.policy.sha256().to_string(),
        };
        let summary = decided.timeline().map(|t| t.detail).unwrap_or_default();
        let state = match decision.action {
            Action::Failover => IncidentState::FailingOver,
            Action::AwaitApproval => IncidentState::AwaitingApproval,
            Action::Hold => IncidentState::Held,
        };
        // The decision, its timeline event, its audit entry and the new
        // state commit together: a decision that cannot be audited is not made.
        let recorded = self.store.atomic(fence, |tx| {
            tx.record_decision(&record, at)?;
            record_timeline(tx, at, &decided)?;
            tx.audit(
                at,
                "controller",
                "decision",
                &json!({"incident": incident.id, "decision": summary, "evidence": input["evidence"]}),
            )?;
            tx.set_incident_state(&incident.id, state, None)
        });
        if let Err(e) = recorded {
            self.store_failed("decision", &e);
            self.backends[i].decided_on = None; // decide again once the store takes it
            return events;
        }
        events.push(self.emit(decided));
        if decision.action == Action::Failover
            && let Some(target) = decision.target.clone()
        {
            events.push(self.emit(Event::RunbookDue(RunbookDue {
                incident: incident.id.clone(),
                backend: name,
                kind: RunKind::Failover,
                source: self.active.clone(),
                target,
                reason: decision.reason.clone(),
                actor: "controller".into(),
            })));
        }
        events
    }

    /// Reports that the policy failed on `incident` (emitted, and noted in
    /// its timeline).
    fn policy_failed(&mut self, fence: &Fence, now: Now, incident: &str, error: String) -> Event {
        let failed = Event::PolicyFailed { incident: incident.to_string(), error };
        if let Some(t) = self.telemetry.emit(&failed)
            && let Err(e) = self.store.add_event(fence, &t.incident, now.wall, t.kind, &t.detail)
        {
            self.store_failed("timeline", &e);
        }
        failed
    }
}
