//! Evidence in, health out: probe results, re-checks and agent reports feed
//! the health tracker of each (backend, vantage); the controller reads them
//! back as the health of a vantage, the quorum over the vantages that
//! report, and the aggregate health of a backend.
//!
//! # Guarantees
//! - Every health change is recorded in the node-local health history
//!   (also on a standby) and emitted as [`Event::HealthChanged`]; a
//!   recording that fails is counted, the change still happens.
//! - An agent silent for longer than `verify.agent_timeout` counts as
//!   unknown: it neither holds an incident open nor counts towards quorum.

use std::time::Instant;

use super::{Backend, Controller, Event, LOCAL, Vantage, Verification};
use crate::clock::Now;
use crate::health::{Health, Observation, Transition};

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

impl Controller {
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
            if let Err(e) = self.store.record_health(now.wall, &name, vantage, t.from, t.to, &t.reason) {
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

    pub(super) fn fresh(&self, v: &Vantage, name: &str, now: Instant) -> bool {
        name == LOCAL || now.saturating_duration_since(v.last_seen) <= self.config.verify.agent_timeout
    }

    /// Health of one vantage: an agent that went silent is unknown.
    pub(super) fn vantage_health(&self, v: &Vantage, name: &str, now: Instant) -> Health {
        if self.fresh(v, name, now) { v.tracker.state() } else { Health::Unknown }
    }

    pub fn quorum(&self, backend: &str, now: Instant) -> Quorum {
        let b = &self.backends[self.index(backend).expect("known backend")];
        let reporting: Vec<(&String, &Vantage)> = b.vantages.iter().filter(|(n, v)| self.fresh(v, n, now)).collect();
        let down = reporting.iter().filter(|(_, v)| v.tracker.state() == Health::Down).count();
        Quorum { required: self.config.verify.quorum, down, reporting: reporting.len() }
    }

    /// Every vantage of backend `i` with fresh evidence says healthy (a
    /// silent agent does not hold an incident open), and at least one has
    /// evidence: a vantage with none yet (just started) resolves nothing.
    pub(super) fn all_fresh_healthy(&self, i: usize, now: Instant) -> bool {
        let states: Vec<Health> = self.backends[i]
            .vantages
            .iter()
            .filter(|(n, v)| self.fresh(v, n, now))
            .map(|(_, v)| v.tracker.state())
            .collect();
        !states.is_empty() && states.iter().all(|s| *s == Health::Healthy)
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

    /// The evidence of the vantages that report is latency alone.
    pub(super) fn latency_only(&self, b: &Backend, now: Instant) -> bool {
        crate::health::latency_only(b.vantages.iter().filter(|(n, v)| self.fresh(v, n, now)).map(|(_, v)| &v.tracker))
    }
}
