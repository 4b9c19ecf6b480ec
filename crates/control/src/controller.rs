//! The controller's state: one health tracker per (backend, vantage), the
//! latest verification per backend, and the incident logic that turns
//! evidence into a recorded, reasoned decision.
//!
//! It does no network I/O and reads no clock: the runner feeds it probe
//! results, verification results and agent evidence with the [`Now`] of the
//! command that brought them, and calls [`Controller::tick`]. Every record
//! it writes (timeline, audit, health history, policy input) takes that
//! `Now`. What happens is emitted through [`Telemetry::emit`] (metric and
//! log line) once it is recorded, and returned as [`Event`]s for the runner
//! (runbooks to queue).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use cutover_core::Config;
use cutover_core::config::Role;
use cutover_core::domain::{DecisionAction, IncidentState, RunKind, RunOutcome, Verdict};
use cutover_store::prelude::*;
use cutover_store::{DecisionRecord, Fence, StoreError};
use serde_json::{Value, json};

use crate::clock::Now;
use crate::health::{Health, Observation, Thresholds, Tracker, Transition};
use crate::policy::{Action, Decision, Policy};
use crate::telemetry::{Telemetry, quorum_json};

mod leadership;
mod rollback;
mod task;

/// What the controller reports: the one event type of [`crate::telemetry`].
pub use crate::telemetry::Event;
pub use leadership::{Leader, Leadership};
pub use rollback::RollbackQuestion;
pub use task::{BackendStatus, ControllerHandle, Report, Status, VantageStatus, start};

/// A runbook to run, with what its templates need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunbookDue {
    pub incident: String,
    /// The backend the incident is about.
    pub backend: String,
    /// `failover`, `fallback`, or [`RunKind::Rollback`] (the approved
    /// rollback of a held run; `source` is where traffic is, `target` where
    /// the rollback moves it back to).
    pub kind: RunKind,
    pub source: String,
    pub target: String,
    pub reason: String,
    /// `controller`, or the token name of who approved or forced it.
    pub actor: String,
}

/// Why an approval, rejection or forced failover was refused.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    /// No such incident or backend.
    #[error("{0}")]
    NotFound(String),
    /// The request does not fit the current state (nothing awaits approval,
    /// a runbook is running, the target is already active).
    #[error("{0}")]
    Conflict(String),
    /// The state store failed.
    #[error("state store: {0}")]
    Store(#[from] StoreError),
    /// The controller has stopped (the process is shutting down).
    #[error("the controller has stopped")]
    Stopped,
    /// This controller stands by (HA): only the leader acts. `leader` is who
    /// leads, when known (the API answers 503 naming it).
    #[error("this node is a standby: {}", match leader {
        Some(l) => format!("the leader is {} ({})", l.node, l.api),
        None => "no leader is known".to_string(),
    })]
    NotLeader { leader: Option<Leader> },
}

/// The controller's own vantage point.
pub const LOCAL: &str = "local";

#[derive(Debug, Clone)]
struct Vantage {
    tracker: Tracker,
    last_seen: Instant,
    last_outcome: String,
}

#[derive(Debug, Clone)]
struct Verification {
    ok: bool,
    outcome: String,
}

#[derive(Debug, Clone)]
struct Backend {
    name: String,
    role: Role,
    residency: Option<String>,
    vantages: BTreeMap<String, Vantage>,
    verify: Option<Verification>,
    /// The evidence the current decision was made on: (down, met, verify failed).
    decided_on: Option<(usize, bool, bool)>,
    /// An incident was open for this backend when the controller started:
    /// its vantages start Unknown and must recover by the recovery rules
    /// before the incident can resolve (see [`Tracker::resumed`]).
    resumed: bool,
}

impl Backend {
    /// A tracker for a vantage of this backend with no evidence yet.
    fn new_tracker(&self, t: &Thresholds) -> Tracker {
        if self.resumed { Tracker::resumed(t.clone()) } else { Tracker::unknown(t.clone()) }
    }
}

/// Quorum over the vantages that report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quorum {
    pub required: usize,
    pub down: usize,
    pub reporting: usize,
}

impl Quorum {
    pub fn met(&self) -> bool {
        self.down >= self.required
    }
}

/// The controller.
#[derive(Debug)]
pub struct Controller {
    config: Config,
    policy: Policy,
    store: Arc<dyn Store>,
    /// Leading (with the fence its writes carry: [`Fence::local`] when
    /// embedded) or standing by.
    role: Leadership,
    /// A leadership change the controller made by itself (a fenced write),
    /// until the task takes it.
    role_change: Option<Event>,
    /// The active backend as the store publishes it (a standby follows it).
    active_watch: tokio::sync::watch::Receiver<Option<String>>,
    thresholds: Thresholds,
    backends: Vec<Backend>,
    active: String,
    /// When each incident was opened (for the detection-to-switch time).
    opened: BTreeMap<String, Instant>,
    /// When each failed-over incident's failover completed (for `min_dwell`).
    failed_over_at: BTreeMap<String, Instant>,
    /// Since when each backend has been healthy without a break.
    healthy_since: BTreeMap<String, Instant>,
    /// When the fallback of an incident was last considered.
    fallback_checked: BTreeMap<String, Instant>,
    signals: serde_json::Map<String, Value>,
    /// `input.replication`: lag of `cutover replicate` and the gateway's journal.
    replication: Value,
    /// State store writes that failed, by operation (`cutover_store_errors_total`).
    store_errors: BTreeMap<&'static str, u64>,
    /// Where what happens is reported (metrics and log).
    telemetry: Telemetry,
}

impl Controller {
    /// Builds the controller, leading with [`Fence::local`] (embedded); the
    /// active backend comes from the store (a restart keeps it), else the
    /// primary.
    pub fn new(config: Config, policy: Policy, store: Arc<dyn Store>, now: Instant) -> Result<Self, StoreError> {
        Self::build(config, policy, store, now, Leadership::Leading(Fence::local()))
    }

    fn build(
        config: Config,
        policy: Policy,
        store: Arc<dyn Store>,
        now: Instant,
        role: Leadership,
    ) -> Result<Self, StoreError> {
        let d = &config.detect;
        let thresholds = Thresholds {
            failures: d.failures,
            confirm_after: d.confirm_after,
            error_rate: d.error_rate,
            window: d.window,
            p95_latency: d.p95_latency,
            recover_successes: d.recover_successes,
            recover_after: d.recover_after,
        };
        let backends = config
            .backends
            .iter()
            .map(|b| Backend {
                name: b.name.clone(),
                role: b.role,
                residency: b.residency.clone(),
                vantages: BTreeMap::new(),
                verify: None,
                decided_on: None,
                resumed: false,
            })
            .collect();
        let active_watch = store.watch_active_backend();
        let active = config.primary().name.clone();
        let mut controller = Self {
            config,
            policy,
            store,
            role,
            role_change: None,
            active_watch,
            thresholds,
            backends,
            active,
            opened: BTreeMap::new(),
            failed_over_at: BTreeMap::new(),
            healthy_since: BTreeMap::new(),
            fallback_checked: BTreeMap::new(),
            signals: serde_json::Map::new(),
            replication: json!({"lags": [], "journal": null}),
            store_errors: BTreeMap::new(),
            telemetry: Telemetry::default(),
        };
        controller.reload()?;
        for b in &mut controller.backends {
            let tracker = b.new_tracker(&controller.thresholds);
            b.vantages.insert(LOCAL.to_string(), Vantage { tracker, last_seen: now, last_outcome: "none".into() });
        }
        Ok(controller)
    }

    /// Reads from the store what a starting controller (or one that starts
    /// to lead) must know: the open incidents (their backends must recover
    /// by the recovery rules before they resolve, and are decided on afresh
    /// from the incident's stored state) and the active backend (the
    /// primary when none was ever set, which a leader records).
    fn reload(&mut self) -> Result<(), StoreError> {
        // A restart keeps what is true: health is unknown until fresh
        // evidence, and a backend with an open incident must recover by the
        // recovery rules before that incident resolves.
        let open: Vec<String> = self.store.open_incidents()?.into_iter().map(|i| i.backend).collect();
        for b in &mut self.backends {
            b.resumed = open.contains(&b.name);
            b.decided_on = None;
        }
        self.fallback_checked.clear();
        self.active = match self.store.active_backend()? {
            Some(a) if self.config.backend(&a).is_some() => a,
            _ => {
                let p = self.config.primary().name.clone();
                if let Some(fence) = self.role.fence() {
                    self.store.set_active_backend(fence, &p)?;
                }
                p
            }
        };
        self.active_watch.mark_unchanged();
        Ok(())
    }

    /// Reports into `telemetry` (the process's registered metrics) instead
    /// of metrics of its own.
    pub fn with_telemetry(mut self, telemetry: Telemetry) -> Self {
        self.telemetry = telemetry;
        self
    }

    /// Emits `event` (metric and log line) and returns it for the runner.
    fn emit(&self, event: Event) -> Event {
        self.telemetry.emit(&event);
        event
    }

    /// Where the controller reports what happens.
    pub fn telemetry(&self) -> &Telemetry {
        &self.telemetry
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// State store operations that failed since the start, by operation.
    pub fn store_errors(&self) -> &BTreeMap<&'static str, u64> {
        &self.store_errors
    }

    /// Logs and counts a failed store operation. What it was part of is not
    /// performed (a mutation that cannot be recorded and audited does not
    /// happen), except records of what already happened (health history,
    /// timeline notes, a runbook's end), which are only lost.
    /// A write refused with [`StoreError::Fenced`] is not a failure of the
    /// store: the controller stands by instead ([`Controller::fenced_out`]).
    fn store_failed(&mut self, op: &'static str, e: &StoreError) {
        if let StoreError::Fenced { revision, .. } = e {
            self.fenced_out(op, *revision);
            return;
        }
        self.telemetry.emit(&Event::StoreFailed { op: op.to_string(), error: Some(e.to_string()) });
        *self.store_errors.entry(op).or_default() += 1;
    }

    pub fn active(&self) -> &str {
        &self.active
    }

    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    fn index(&self, backend: &str) -> Option<usize> {
        self.backends.iter().position(|b| b.name == backend)
    }

    /// Feeds one probe result from a vantage.
    pub fn observe(
        &mut self,
        now: Now,
        backend: &str,
        vantage: &str,
        started: Instant,
        ok: bool,
        outcome: &str,
    ) -> Vec<Event> {
        let Some(i) = self.index(backend) else { return Vec::new() };
        let tracker = self.backends[i].new_tracker(&self.thresholds);
        let v = self.backends[i].vantages.entry(vantage.to_string()).or_insert_with(|| Vantage {
            tracker,
            last_seen: now.mono,
            last_outcome: "none".into(),
        });
        v.last_seen = now.mono;
        v.last_outcome = outcome.to_string();
        let change = v.tracker.observe(now.mono, Observation { started, ok });
        let mut events = Vec::new();
        self.push_change(&mut events, now, i, vantage, change);
        events.extend(self.evaluate(now, i));
        events
    }

    /// Feeds an independent re-check (fresh connection, read of a known
    /// object). It is also local evidence.
    pub fn verified(&mut self, now: Now, backend: &str, started: Instant, ok: bool, outcome: &str) -> Vec<Event> {
        let Some(i) = self.index(backend) else { return Vec::new() };
        self.backends[i].verify = Some(Verification { ok, outcome: outcome.to_string() });
        self.observe(now, backend, LOCAL, started, ok, outcome)
    }

    /// True while a backend needs re-checks: any vantage not healthy.
    pub fn needs_verify(&self, backend: &str) -> bool {
        self.index(backend).is_some_and(|i| {
            self.backends[i].vantages.values().any(|v| !matches!(v.tracker.state(), Health::Healthy | Health::Unknown))
        })
    }

    /// Applies time-based rules (confirmation, recovery, agent ageing).
    pub fn tick(&mut self, now: Now) -> Vec<Event> {
        self.follow_active();
        let mut events = Vec::new();
        for i in 0..self.backends.len() {
            let names: Vec<String> = self.backends[i].vantages.keys().cloned().collect();
            for vantage in names {
                let change = self.backends[i].vantages.get_mut(&vantage).and_then(|v| v.tracker.tick(now.mono));
                self.push_change(&mut events, now, i, &vantage, change);
            }
            events.extend(self.evaluate(now, i));
            let name = self.backends[i].name.clone();
            if self.health(&name, now.mono) == Health::Healthy {
                self.healthy_since.entry(name).or_insert(now.mono);
            } else {
                self.healthy_since.remove(&name);
            }
        }
        events.extend(self.check_fallback(now));
        events
    }

    fn push_change(&mut self, events: &mut Vec<Event>, now: Now, i: usize, vantage: &str, change: Option<Transition>) {
        if let Some(t) = change {
            let name = self.backends[i].name.clone();
            if let Err(e) =
                self.store.record_health(now.wall, &name, vantage, t.from.as_str(), t.to.as_str(), &t.reason)
            {
                self.store_failed("health.record", &e);
            }
            events.push(self.emit(Event::HealthChanged {
                backend: name,
                vantage: vantage.to_string(),
                from: t.from,
                to: t.to,
                reason: t.reason,
            }));
        }
    }

    fn fresh(&self, v: &Vantage, name: &str, now: Instant) -> bool {
        name == LOCAL || now.saturating_duration_since(v.last_seen) <= self.config.verify.agent_timeout
    }

    /// Health of one vantage: an agent that went silent is unknown.
    fn vantage_health(&self, v: &Vantage, name: &str, now: Instant) -> Health {
        if self.fresh(v, name, now) { v.tracker.state() } else { Health::Unknown }
    }

    pub fn quorum(&self, backend: &str, now: Instant) -> Quorum {
        let b = &self.backends[self.index(backend).expect("known backend")];
        let reporting: Vec<(&String, &Vantage)> = b.vantages.iter().filter(|(n, v)| self.fresh(v, n, now)).collect();
        let down = reporting.iter().filter(|(_, v)| v.tracker.state() == Health::Down).count();
        Quorum { required: self.config.verify.quorum, down, reporting: reporting.len() }
    }

    /// The aggregate health of a backend.
    pub fn health(&self, backend: &str, now: Instant) -> Health {
        let Some(i) = self.index(backend) else { return Health::Unknown };
        let b = &self.backends[i];
        let q = self.quorum(backend, now);
        let states: Vec<Health> = b.vantages.iter().map(|(n, v)| self.vantage_health(v, n, now)).collect();
        if q.met() && q.down > 0 {
            Health::Down
        } else if states.iter().any(|s| matches!(s, Health::Suspect | Health::Down)) {
            Health::Suspect
        } else if states.contains(&Health::Recovering) {
            Health::Recovering
        } else if states.contains(&Health::Healthy) {
            Health::Healthy
        } else {
            Health::Unknown // no fresh evidence yet (just started) or every agent silent
        }
    }

    /// Opens, decides and resolves incidents for backend `i`; only while
    /// leading (a standby writes nothing and decides nothing).
    fn evaluate(&mut self, now: Now, i: usize) -> Vec<Event> {
        let Some(fence) = self.role.fence().cloned() else { return Vec::new() };
        let fence = &fence;
        let name = self.backends[i].name.clone();
        let q = self.quorum(&name, now.mono);
        let verify_failed = self.backends[i].verify.as_ref().is_some_and(|v| !v.ok);
        let mut events = Vec::new();
        let open = match self.store.open_incident_for(&name) {
            Ok(o) => o,
            Err(e) => {
                self.store_failed("incident.read", &e);
                return events;
            }
        };
        let Some(incident) = open else {
            if q.down > 0 {
                let at = now.wall;
                let opened = self.store.atomic(fence, |tx| {
                    let id = tx.open_incident(&name, at)?;
                    let opened =
                        Event::IncidentOpened { id: id.clone(), backend: name.clone(), quorum: Some(q), by: None };
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
            }
            return events;
        };
        if incident.state.busy() || self.awaits_rollback_verdict(&incident) {
            return events;
        }
        // Every vantage with fresh evidence says healthy (a silent agent does
        // not hold an incident open), and at least one has evidence: a
        // vantage with none yet (just started) resolves nothing.
        let states: Vec<Health> = self.backends[i]
            .vantages
            .iter()
            .filter(|(n, v)| self.fresh(v, n, now.mono))
            .map(|(_, v)| v.tracker.state())
            .collect();
        let all_healthy = !states.is_empty() && states.iter().all(|s| *s == Health::Healthy);
        if q.down == 0 && all_healthy {
            let at = now.wall;
            let reason = if incident.state == IncidentState::RolledBack {
                "healthy; the failover was rolled back"
            } else {
                "healthy again before any failover"
            };
            let resolved =
                Event::IncidentResolved { id: incident.id.clone(), backend: name, reason: reason.to_string() };
            let recorded = self.store.atomic(fence, |tx| {
                tx.set_incident_state(&incident.id, IncidentState::Resolved, Some(at))?;
                record_timeline(tx, at, &resolved)?;
                tx.audit(at, "controller", "incident.resolve", &json!({"incident": incident.id}))
            });
            if let Err(e) = recorded {
                self.store_failed("incident.resolve", &e);
                return events;
            }
            self.backends[i].decided_on = None;
            self.backends[i].resumed = false;
            events.push(self.emit(resolved));
            return events;
        }
        if matches!(incident.state, IncidentState::Rejected | IncidentState::RolledBack) {
            return events; // a human said no, or the runbook failed: no new automatic decision
        }
        let basis = (q.down, q.met(), verify_failed);
        if self.backends[i].decided_on == Some(basis) || q.down == 0 {
            return events;
        }
        self.backends[i].decided_on = Some(basis);
        let input = self.policy_input(&incident.id, &incident.opened_at, &name, now);
        let decision = match self.policy.decide(&input) {
            Ok(d) => d,
            Err(e) => {
                let error = e.to_string();
                let failed = Event::PolicyFailed { incident: incident.id.clone(), error: error.clone() };
                if let Some(t) = self.telemetry.emit(&failed)
                    && let Err(e) = self.store.add_event(fence, &t.incident, now.wall, t.kind, &t.detail)
                {
                    self.store_failed("timeline", &e);
                }
                events.push(failed);
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
                backend: name.clone(),
                kind: RunKind::Failover,
                source: self.active.clone(),
                target,
                reason: decision.reason.clone(),
                actor: "controller".into(),
            })));
        }
        events
    }

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

    /// Starts the fallback of failed-over incidents whose backend has been
    /// healthy for `stable_for`, at least `min_dwell` after the failover,
    /// when the policy's fallback rule allows it.
    fn check_fallback(&mut self, now: Now) -> Vec<Event> {
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
            let failed_over_at = *self.failed_over_at.entry(inc.id.clone()).or_insert(now.mono);
            let Some(since) = self.healthy_since.get(&inc.backend).copied() else { continue };
            if inc.backend == self.active {
                continue;
            }
            let last = self.fallback_checked.get(&inc.id).copied();
            if last.is_some_and(|t| now.mono.duration_since(t) < Duration::from_secs(1)) {
                continue;
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
            let verdict = match self.policy.fallback(&input) {
                Ok(Some(v)) => v,
                Ok(None) => (
                    healthy_for >= fb.stable_for && since_failover >= fb.min_dwell,
                    format!("{} healthy for {healthy_for:?}, {since_failover:?} since the failover", inc.backend),
                ),
                Err(e) => {
                    // Asked again every second: logged and alerted, not
                    // recorded in the timeline each time.
                    events.push(self.emit(Event::PolicyFailed { incident: inc.id.clone(), error: e.to_string() }));
                    continue;
                }
            };
            let (true, reason) = verdict else { continue };
            let Some(fence) = self.role.fence().cloned() else { break }; // fenced out meanwhile
            let at = now.wall;
            let decided = Event::FallbackDecided {
                incident: inc.id.clone(),
                target: inc.backend.clone(),
                reason: reason.clone(),
                policy_sha256: self.policy.sha256().to_string(),
            };
            let detail = decided.timeline().map(|t| t.detail).unwrap_or_default();
            let recorded = self.store.atomic(&fence, |tx| {
                tx.set_incident_state(&inc.id, IncidentState::FallingBack, None)?;
                record_timeline(tx, at, &decided)?;
                tx.audit(at, "controller", "fallback.decision", &json!({"incident": inc.id, "decision": detail}))
            });
            if let Err(e) = recorded {
                self.store_failed("fallback.decision", &e);
                continue; // no fallback that is not recorded and audited
            }
            events.push(self.emit(decided));
            events.push(self.emit(Event::RunbookDue(RunbookDue {
                incident: inc.id.clone(),
                backend: inc.backend.clone(),
                kind: RunKind::Fallback,
                source: self.active.clone(),
                target: inc.backend.clone(),
                reason,
                actor: "controller".into(),
            })));
        }
        events
    }

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
        let mut waiting_step = inc.state.running_runbook();
        if waiting_step {
            // A runbook's `approval` step takes the first verdict recorded
            // after its run began: one verdict per run.
            let running = self.store.runs_for(incident)?.into_iter().rfind(|r| r.ended_at.is_none());
            match running {
                Some(run) => {
                    if let Some(done) = self.store.approval_after(incident, run.approval_base)? {
                        return Err(already_decided(incident, inc.state, &done));
                    }
                    // Only a run that reached an `approval` step waits for a verdict.
                    let timeline = self.store.timeline(incident)?;
                    let started = timeline.iter().rposition(|e| e.kind == "runbook.started").unwrap_or(0);
                    waiting_step = timeline[started..].iter().any(|e| e.kind == "approval.requested");
                }
                None => waiting_step = false,
            }
        }
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

    /// The latest approval or rejection recorded for `incident`.
    fn last_verdict(&self, incident: &str) -> Result<Option<cutover_store::Approval>, StoreError> {
        let mut last = None;
        let mut after = 0;
        while let Some(a) = self.store.approval_after(incident, after)? {
            after = a.id;
            last = Some(a);
        }
        Ok(last)
    }

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

    /// The policy input document (see docs/policy.md).
    pub fn policy_input(&self, incident: &str, opened_at: &str, backend: &str, at: Now) -> Value {
        let now = at.mono;
        let i = self.index(backend).expect("known backend");
        let b = &self.backends[i];
        let q = self.quorum(backend, now);
        let vantages: serde_json::Map<String, Value> = b
            .vantages
            .iter()
            .map(|(n, v)| {
                let health = self.vantage_health(v, n, now);
                (
                    n.clone(),
                    json!({
                        "health": health,
                        "failures": v.tracker.failures(),
                        "error_rate": v.tracker.error_rate(),
                        "last_outcome": v.last_outcome,
                        "age_ms": now.saturating_duration_since(v.last_seen).as_millis() as u64,
                        "streak_ms": v.tracker.streak(now).map(|d| d.as_millis() as u64),
                    }),
                )
            })
            .collect();
        let hour_ago = at.wall - Duration::from_secs(3600);
        json!({
            "version": 1,
            "time": cutover_core::time::rfc3339(at.wall),
            "active": self.active,
            "incident": {"id": incident, "backend": backend, "opened_at": opened_at},
            "backends": self.backends.iter().map(|x| json!({
                "name": x.name,
                "role": x.role.as_str(),
                "health": self.health(&x.name, now),
                "residency": x.residency,
                "active": x.name == self.active,
            })).collect::<Vec<_>>(),
            "evidence": {
                "vantages": vantages,
                "quorum": quorum_json(&q),
                "verify": match &b.verify {
                    Some(v) => json!({"failed": !v.ok, "outcome": v.outcome}),
                    None => json!({"failed": false, "outcome": null}),
                },
                "latency_only": self.latency_only(b, now),
            },
            "signals": self.signals,
            "replication": self.replication,
            "history": {"failovers_last_hour": self.store.failovers_since(hour_ago).unwrap_or(0)},
            "limits": {"max_failovers_per_hour": self.config.policy.max_failovers_per_hour},
        })
    }

    /// `/v1/status`.
    pub fn status(&self, now: Instant) -> Value {
        let open = self.store.open_incidents().map(|v| v.len()).unwrap_or(0);
        json!({
            "active": self.active,
            "backends": self.backends.iter().map(|b| json!({
                "name": b.name,
                "role": b.role.as_str(),
                "health": self.health(&b.name, now),
                "vantages": b.vantages.iter().map(|(n, v)| (n.clone(), json!({
                    "health": self.vantage_health(v, n, now),
                    "last_outcome": v.last_outcome,
                    "age_ms": now.saturating_duration_since(v.last_seen).as_millis() as u64,
                }))).collect::<serde_json::Map<_, _>>(),
            })).collect::<Vec<_>>(),
            "open_incidents": open,
        })
    }

    /// The names of the configured backends.
    pub fn backend_names(&self) -> Vec<String> {
        self.backends.iter().map(|b| b.name.clone()).collect()
    }
}

/// A second verdict on an incident that was already decided.
fn already_decided(incident: &str, state: IncidentState, done: &cutover_store::Approval) -> RequestError {
    let how = done.verdict.past();
    RequestError::Conflict(format!(
        "incident {incident} was already decided: {how} by {} at {}; it is now {state}",
        done.actor, done.at
    ))
}

/// Writes `event`'s timeline entry, if it has one, in the transaction that
/// records what it reports.
fn record_timeline(tx: &dyn Tx, at: SystemTime, event: &Event) -> Result<(), StoreError> {
    match event.timeline() {
        Some(t) => tx.add_event(&t.incident, at, t.kind, &t.detail),
        None => Ok(()),
    }
}

impl Controller {
    /// Sets the latest reading of a signal (`prometheus`, `statuspage`); it
    /// goes into the policy input under `signals` (see `crate::signals`).
    /// Replication lag and pending journal entries for the policy input
    /// (`input.replication`; see docs/policy.md).
    pub fn set_replication(&mut self, value: Value) {
        self.replication = value;
    }

    pub fn set_signal(&mut self, name: &str, value: Value) {
        self.signals.insert(name.to_string(), value);
    }

    /// The evidence of the vantages that report is latency alone.
    fn latency_only(&self, b: &Backend, now: Instant) -> bool {
        crate::health::latency_only(b.vantages.iter().filter(|(n, v)| self.fresh(v, n, now)).map(|(_, v)| &v.tracker))
    }
}
