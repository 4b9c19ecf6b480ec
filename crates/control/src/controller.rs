//! The controller's state: one health tracker per (backend, vantage), the
//! latest verification per backend, and the incident logic that turns
//! evidence into a recorded, reasoned decision.
//!
//! It does no network I/O and reads no clock: the runner feeds it probe
//! results, verification results and agent evidence with timestamps, and
//! calls [`Controller::tick`]. Each call returns the [`Event`]s that
//! happened, for the log, the metrics and the timeline.

use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime};

use cutover_core::Config;
use cutover_core::config::Role;
use cutover_store::{DecisionRecord, Store, StoreError};
use serde_json::{Value, json};

use crate::health::{Health, Observation, Thresholds, Tracker, Transition};
use crate::policy::{Action, Decision, Policy};

/// The controller's own vantage point.
pub const LOCAL: &str = "local";

/// Something that happened, reported once.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    HealthChanged {
        backend: String,
        vantage: String,
        from: Health,
        to: Health,
        reason: String,
    },
    IncidentOpened {
        id: String,
        backend: String,
    },
    Decided {
        incident: String,
        decision: Decision,
    },
    /// The policy failed; the controller holds and alerts.
    PolicyFailed {
        incident: String,
        error: String,
    },
    Switched {
        incident: String,
        from: String,
        to: String,
    },
    IncidentResolved {
        id: String,
        backend: String,
    },
}

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
    store: Store,
    thresholds: Thresholds,
    backends: Vec<Backend>,
    active: String,
    signals: serde_json::Map<String, Value>,
}

impl Controller {
    /// Builds the controller; the active backend comes from the store (a
    /// restart keeps it), else the primary.
    pub fn new(config: Config, policy: Policy, store: Store, now: Instant) -> Result<Self, StoreError> {
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
                vantages: BTreeMap::from([(
                    LOCAL.to_string(),
                    Vantage { tracker: Tracker::new(thresholds.clone()), last_seen: now, last_outcome: "none".into() },
                )]),
                verify: None,
                decided_on: None,
            })
            .collect();
        let active = match store.active_backend()? {
            Some(a) if config.backend(&a).is_some() => a,
            _ => {
                let p = config.primary().name.clone();
                store.set_active_backend(&p)?;
                p
            }
        };
        Ok(Self { config, policy, store, thresholds, backends, active, signals: serde_json::Map::new() })
    }

    pub fn store(&self) -> &Store {
        &self.store
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
        now: Instant,
        backend: &str,
        vantage: &str,
        started: Instant,
        ok: bool,
        outcome: &str,
    ) -> Vec<Event> {
        let Some(i) = self.index(backend) else { return Vec::new() };
        let t = self.thresholds.clone();
        let v = self.backends[i].vantages.entry(vantage.to_string()).or_insert_with(|| Vantage {
            tracker: Tracker::new(t),
            last_seen: now,
            last_outcome: "none".into(),
        });
        v.last_seen = now;
        v.last_outcome = outcome.to_string();
        let change = v.tracker.observe(now, Observation { started, ok });
        let mut events = Vec::new();
        self.push_change(&mut events, i, vantage, change);
        events.extend(self.evaluate(now, i));
        events
    }

    /// Feeds an independent re-check (fresh connection, read of a known
    /// object). It is also local evidence.
    pub fn verified(&mut self, now: Instant, backend: &str, started: Instant, ok: bool, outcome: &str) -> Vec<Event> {
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
    pub fn tick(&mut self, now: Instant) -> Vec<Event> {
        let mut events = Vec::new();
        for i in 0..self.backends.len() {
            let names: Vec<String> = self.backends[i].vantages.keys().cloned().collect();
            for vantage in names {
                let change = self.backends[i].vantages.get_mut(&vantage).and_then(|v| v.tracker.tick(now));
                self.push_change(&mut events, i, &vantage, change);
            }
            events.extend(self.evaluate(now, i));
        }
        events
    }

    fn push_change(&self, events: &mut Vec<Event>, i: usize, vantage: &str, change: Option<Transition>) {
        if let Some(t) = change {
            let b = &self.backends[i];
            let _ = self.store.record_health(
                SystemTime::now(),
                &b.name,
                vantage,
                t.from.as_str(),
                t.to.as_str(),
                &t.reason,
            );
            events.push(Event::HealthChanged {
                backend: b.name.clone(),
                vantage: vantage.to_string(),
                from: t.from,
                to: t.to,
                reason: t.reason,
            });
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
        } else if b.vantages.get(LOCAL).is_some_and(|v| v.last_outcome == "none") {
            Health::Unknown
        } else {
            Health::Healthy
        }
    }

    /// Opens, decides and resolves incidents for backend `i`.
    fn evaluate(&mut self, now: Instant, i: usize) -> Vec<Event> {
        let name = self.backends[i].name.clone();
        let q = self.quorum(&name, now);
        let verify_failed = self.backends[i].verify.as_ref().is_some_and(|v| !v.ok);
        let mut events = Vec::new();
        let open = match self.store.open_incident_for(&name) {
            Ok(o) => o,
            Err(e) => {
                tracing::error!(error = %e, "state store");
                return events;
            }
        };
        let Some(incident) = open else {
            if q.down > 0 {
                match self.store.open_incident(&name, SystemTime::now()) {
                    Ok(id) => {
                        let _ = self.store.add_event(
                            &id,
                            SystemTime::now(),
                            "incident.opened",
                            &json!({"backend": name, "quorum": quorum_json(&q)}),
                        );
                        let _ = self.store.audit(
                            SystemTime::now(),
                            "controller",
                            "incident.open",
                            &json!({"incident": id, "backend": name}),
                        );
                        events.push(Event::IncidentOpened { id, backend: name.clone() });
                        self.backends[i].decided_on = None;
                        events.extend(self.evaluate(now, i));
                    }
                    Err(e) => tracing::error!(error = %e, "state store"),
                }
            }
            return events;
        };
        if incident.state == "failed_over" {
            return events;
        }
        let all_healthy = self.backends[i]
            .vantages
            .iter()
            .all(|(n, v)| matches!(self.vantage_health(v, n, now), Health::Healthy | Health::Unknown));
        if q.down == 0 && all_healthy {
            let _ = self.store.set_incident_state(&incident.id, "resolved", Some(SystemTime::now()));
            let _ = self.store.add_event(
                &incident.id,
                SystemTime::now(),
                "incident.resolved",
                &json!({"reason": "healthy again before any failover"}),
            );
            let _ = self.store.audit(
                SystemTime::now(),
                "controller",
                "incident.resolve",
                &json!({"incident": incident.id}),
            );
            self.backends[i].decided_on = None;
            events.push(Event::IncidentResolved { id: incident.id, backend: name });
            return events;
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
                let _ = self.store.add_event(&incident.id, SystemTime::now(), "policy.error", &json!({"error": error}));
                events.push(Event::PolicyFailed { incident: incident.id.clone(), error: error.clone() });
                Decision { action: Action::Hold, target: None, reason: format!("policy error, holding: {error}") }
            }
        };
        let record = DecisionRecord {
            incident: &incident.id,
            action: decision.action.as_str(),
            target: decision.target.as_deref(),
            reason: &decision.reason,
            policy_sha256: self.policy.sha256(),
            input: &input,
        };
        let at = SystemTime::now();
        let _ = self.store.record_decision(&record, at);
        let summary = json!({"action": decision.action, "target": decision.target, "reason": decision.reason, "policy_sha256": self.policy.sha256()});
        let _ = self.store.add_event(&incident.id, at, "decision", &summary);
        let _ = self.store.audit(
            at,
            "controller",
            "decision",
            &json!({"incident": incident.id, "decision": summary, "evidence": input["evidence"]}),
        );
        let state = match decision.action {
            Action::Failover => "failing_over",
            Action::AwaitApproval => "awaiting_approval",
            Action::Hold => "held",
        };
        let _ = self.store.set_incident_state(&incident.id, state, None);
        events.push(Event::Decided { incident: incident.id.clone(), decision: decision.clone() });
        if decision.action == Action::Failover
            && let Some(target) = decision.target.clone()
        {
            events.extend(self.switch(&incident.id, &target));
        }
        events
    }

    /// The built-in `state.switch`: makes `target` the active backend.
    pub fn switch(&mut self, incident: &str, target: &str) -> Vec<Event> {
        let from = self.active.clone();
        if self.config.backend(target).is_none() || from == target {
            return Vec::new();
        }
        let at = SystemTime::now();
        if let Err(e) = self.store.set_active_backend(target) {
            tracing::error!(error = %e, "could not record the switch");
            return Vec::new();
        }
        self.active = target.to_string();
        let detail = json!({"step": "state.switch", "from": from, "to": target, "ok": true});
        let _ = self.store.add_event(incident, at, "step", &detail);
        let _ = self.store.audit(
            at,
            "controller",
            "state.switch",
            &json!({"incident": incident, "from": from, "to": target}),
        );
        let _ = self.store.set_incident_state(incident, "failed_over", None);
        vec![Event::Switched { incident: incident.to_string(), from, to: target.to_string() }]
    }

    /// The policy input document (see docs/policy.md).
    pub fn policy_input(&self, incident: &str, opened_at: &str, backend: &str, now: Instant) -> Value {
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
        let hour_ago = SystemTime::now() - Duration::from_secs(3600);
        json!({
            "version": 1,
            "time": cutover_core::time::rfc3339(SystemTime::now()),
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

fn quorum_json(q: &Quorum) -> Value {
    json!({"required": q.required, "down": q.down, "reporting": q.reporting, "met": q.met() && q.down > 0})
}

impl Controller {
    /// Sets the latest reading of a signal (`prometheus`, `statuspage`); it
    /// goes into the policy input under `signals` (see `crate::signals`).
    pub fn set_signal(&mut self, name: &str, value: Value) {
        self.signals.insert(name.to_string(), value);
    }

    /// The evidence of the vantages that report is latency alone.
    fn latency_only(&self, b: &Backend, now: Instant) -> bool {
        crate::health::latency_only(b.vantages.iter().filter(|(n, v)| self.fresh(v, n, now)).map(|(_, v)| &v.tracker))
    }
}
