//! What the controller shows of itself: the [`Status`] it publishes after
//! every change (and [`Controller::status`], the same as JSON): the active
//! backend, the health of every backend and vantage, the open incidents, and
//! whether it leads. `/v1/status`, the gateway and the console read it from
//! the task's `watch` channel without waiting for the controller.

use std::collections::BTreeMap;
use std::time::Instant;

use serde::Serialize;
use serde_json::{Value, json};

use super::Controller;
use crate::health::Health;

/// What `/v1/status` shows, published after every change.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Status {
    pub active: String,
    pub backends: Vec<BackendStatus>,
    pub open_incidents: usize,
    /// State store operations that failed since the start, by operation.
    #[serde(skip)]
    pub store_errors: BTreeMap<&'static str, u64>,
    /// This controller acts (embedded: always). Not serialized: with `[ha]`
    /// the API adds `role` and `leader` from the election.
    #[serde(skip)]
    pub leading: bool,
    /// The fencing token while leading in HA.
    #[serde(skip)]
    pub token: Option<i64>,
}

/// One backend in [`Status`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BackendStatus {
    pub name: String,
    pub role: &'static str,
    pub health: Health,
    pub vantages: BTreeMap<String, VantageStatus>,
    /// Any vantage is neither healthy nor unknown: re-checks run.
    #[serde(skip)]
    pub needs_verify: bool,
}

/// One vantage of a backend in [`Status`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VantageStatus {
    pub health: Health,
    pub last_outcome: String,
    pub age_ms: u64,
}

impl Status {
    pub fn backend(&self, name: &str) -> Option<&BackendStatus> {
        self.backends.iter().find(|b| b.name == name)
    }

    /// Health of a backend; unknown for a name that is not configured.
    pub fn health(&self, name: &str) -> Health {
        self.backend(name).map(|b| b.health).unwrap_or(Health::Unknown)
    }
}

impl Controller {
    /// What `/v1/status` shows at `now`.
    pub fn snapshot(&self, now: Instant) -> Status {
        let open_incidents = match self.store.open_incidents() {
            Ok(v) => v.len(),
            Err(e) => {
                tracing::warn!(error = %e, "reading open incidents for the status");
                0
            }
        };
        Status {
            active: self.active.clone(),
            backends: self
                .backends
                .iter()
                .map(|b| BackendStatus {
                    name: b.name.clone(),
                    role: b.role.as_str(),
                    health: self.health(&b.name, now),
                    vantages: b
                        .vantages
                        .iter()
                        .map(|(n, v)| {
                            let status = VantageStatus {
                                health: self.vantage_health(v, n, now),
                                last_outcome: v.last_outcome.clone(),
                                age_ms: now.saturating_duration_since(v.last_seen).as_millis() as u64,
                            };
                            (n.clone(), status)
                        })
                        .collect(),
                    needs_verify: self.needs_verify(&b.name),
                })
                .collect(),
            open_incidents,
            store_errors: self.store_errors.clone(),
            leading: self.is_leading(),
            token: self.leadership().token(),
        }
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
}
