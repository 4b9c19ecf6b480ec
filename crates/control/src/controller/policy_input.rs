//! The policy input document (see docs/policy.md): the active backend, the
//! health of every backend, the evidence about the incident's backend
//! (vantages, quorum, re-check, latency alone), the latest signals and
//! replication lag, and the failover history.

use std::time::Duration;

use serde_json::{Value, json};

use super::Controller;
use crate::clock::Now;
use crate::telemetry::quorum_json;

impl Controller {
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

    /// Replication lag and pending journal entries for the policy input
    /// (`input.replication`; see docs/policy.md).
    pub fn set_replication(&mut self, value: Value) {
        self.replication = value;
    }

    /// Sets the latest reading of a signal (`prometheus`, `statuspage`); it
    /// goes into the policy input under `signals` (see `crate::signals`).
    pub fn set_signal(&mut self, name: &str, value: Value) {
        self.signals.insert(name.to_string(), value);
    }
}
