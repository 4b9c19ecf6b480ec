//! Falling back: a failed-over incident whose backend has been healthy for
//! `stable_for`, at least `min_dwell` after the failover, gets its fallback
//! runbook when the policy's fallback rule (or, without one, those two
//! durations) allows it.
//!
//! # Guarantees
//! - Only the leader decides a fallback; each incident is considered at
//!   most once a second.
//! - The decision, its timeline and audit entries and the incident's new
//!   state (`falling_back`) commit together: no fallback that is not
//!   recorded and audited.
//!
//! # Caveats
//! - A policy error is logged and alerted each time the rule is asked, not
//!   recorded in the timeline.

use std::time::Duration;

use cutover_core::domain::{IncidentState, RunKind};
use cutover_store::prelude::*;
use cutover_store::{Fence, Incident};
use serde_json::json;

use super::{Controller, Event, RunbookDue, record_timeline};
use crate::clock::Now;

impl Controller {
    /// Starts the fallback of failed-over incidents whose backend has been
    /// healthy for `stable_for`, at least `min_dwell` after the failover,
    /// when the policy's fallback rule allows it.
    pub(super) fn check_fallback(&mut self, now: Now) -> Vec<Event> {
        if !self.is_leading() {
            return Vec::new(); // a standby decides nothing
        }
        let open = match self.store.open_incidents() {
            Ok(open) => open,
            Err(e) => {
                self.store_failed("incident.read", &e);
                return Vec::new();
            }
        };
        let mut events = Vec::new();
        for inc in open.into_iter().filter(|i| i.state == IncidentState::FailedOver) {
            let Some(reason) = self.fallback_verdict(&inc, now, &mut events) else { continue };
            let Some(fence) = self.role.fence().cloned() else { break }; // fenced out meanwhile
            events.extend(self.start_fallback(&fence, &inc, reason, now));
        }
        events
    }

    /// Why the failed-over `inc` falls back now, or `None`: its backend is
    /// not healthy or is the active one, it was considered less than a
    /// second ago, the answer is no, or the policy failed (the failure is
    /// emitted into `events`).
    fn fallback_verdict(&mut self, inc: &Incident, now: Now, events: &mut Vec<Event>) -> Option<String> {
        let failed_over_at = *self.failed_over_at.entry(inc.id.clone()).or_insert(now.mono);
        let since = self.healthy_since.get(&inc.backend).copied()?;
        if inc.backend == self.active {
            return None;
        }
        let last = self.fallback_checked.get(&inc.id).copied();
        if last.is_some_and(|t| now.mono.duration_since(t) < Duration::from_secs(1)) {
            return None;
        }
        self.fallback_checked.insert(inc.id.clone(), now.mono);
        let fb = &self.config.fallback;
        let healthy_for = now.mono.duration_since(since);
        let since_failover = now.mono.duration_since(failed_over_at);
        let mut input = self.policy_input(&inc.id, &inc.opened_at, &inc.backend, now);
        input["fallback"] = json!({
            "backend": inc.backend,
            "health": self.health(&inc.backend, now.mono),
            "healthy_for_ms": healthy_for.as_millis() as u64,
            "stable_for_ms": fb.stable_for.as_millis() as u64,
            "since_failover_ms": since_failover.as_millis() as u64,
            "min_dwell_ms": fb.min_dwell.as_millis() as u64,
        });
        let (allow, reason) = match self.policy.fallback(&input) {
            Ok(Some(v)) => v,
            Ok(None) => (
                healthy_for >= fb.stable_for && since_failover >= fb.min_dwell,
                format!("{} healthy for {healthy_for:?}, {since_failover:?} since the failover", inc.backend),
            ),
            Err(e) => {
                // Asked again every second: logged and alerted, not
                // recorded in the timeline each time.
                events.push(self.emit(Event::PolicyFailed { incident: inc.id.clone(), error: e.to_string() }));
                return None;
            }
        };
        allow.then_some(reason)
    }

    /// Records the fallback decision on `inc` and makes its runbook due.
    fn start_fallback(&mut self, fence: &Fence, inc: &Incident, reason: String, now: Now) -> Vec<Event> {
        let at = now.wall;
        let decided = Event::FallbackDecided {
            incident: inc.id.clone(),
            target: inc.backend.clone(),
            reason: reason.clone(),
            policy_sha256: self.policy.sha256().to_string(),
        };
        let detail = decided.timeline().map(|t| t.detail).unwrap_or_default();
        let recorded = self.store.atomic(fence, |tx| {
            tx.set_incident_state(&inc.id, IncidentState::FallingBack, None)?;
            record_timeline(tx, at, &decided)?;
            tx.audit(at, "controller", "fallback.decision", &json!({"incident": inc.id, "decision": detail}))
        });
        if let Err(e) = recorded {
            self.store_failed("fallback.decision", &e);
            return Vec::new(); // no fallback that is not recorded and audited
        }
        let due = RunbookDue {
            incident: inc.id.clone(),
            backend: inc.backend.clone(),
            kind: RunKind::Fallback,
            source: self.active.clone(),
            target: inc.backend.clone(),
            reason,
            actor: "controller".into(),
        };
        vec![self.emit(decided), self.emit(Event::RunbookDue(due))]
    }
}
