//! Leader election through a `coordination.k8s.io/v1` Lease, so that two
//! operator replicas never act at once.
//!
//! # Guarantees
//! - A replica acts only after it has written itself as the holder with the
//!   Lease's `resourceVersion` as a precondition: of two replicas racing for
//!   an expired Lease, one write fails with 409 and that replica stands by.
//!
//! # Assumptions
//! - Clocks are roughly in step (the expiry is `renewTime + leaseDurationSeconds`).
//!
//! # Caveats
//! - A leader that cannot renew stops acting when its own view of the lease
//!   expires ([`LeaseLock::held_until`]), not when the API server's does.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::Client;
use kube::api::{Api, PostParams};

use crate::error::Error;
use crate::kube_cluster::map_err;

/// What to do with a Lease as it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// We hold it: renew.
    Renew,
    /// Free or expired: take it.
    Acquire,
    /// Someone else holds it until then.
    HeldBy { holder: String },
}

/// Decides from the Lease's spec (pure).
pub fn decide(spec: &LeaseSpec, me: &str, now: Timestamp) -> Decision {
    let holder = spec.holder_identity.clone().unwrap_or_default();
    if holder == me {
        return Decision::Renew;
    }
    if holder.is_empty() {
        return Decision::Acquire;
    }
    let duration = i64::from(spec.lease_duration_seconds.unwrap_or(15));
    let expired = match &spec.renew_time {
        Some(MicroTime(renewed)) => now.as_second() > renewed.as_second() + duration,
        None => true,
    };
    if expired { Decision::Acquire } else { Decision::HeldBy { holder } }
}

/// A Lease this replica competes for.
#[derive(Clone)]
pub struct LeaseLock {
    api: Api<Lease>,
    name: String,
    identity: String,
    duration: Duration,
}

impl std::fmt::Debug for LeaseLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LeaseLock").field("name", &self.name).field("identity", &self.identity).finish()
    }
}

impl LeaseLock {
    pub fn new(client: Client, namespace: &str, name: &str, identity: &str, duration: Duration) -> Self {
        Self { api: Api::namespaced(client, namespace), name: name.into(), identity: identity.into(), duration }
    }

    /// Takes or renews the Lease; `Ok(true)` when this replica leads.
    pub async fn try_acquire_or_renew(&self) -> Result<bool, Error> {
        let now = Timestamp::now();
        let what = format!("Lease {}", self.name);
        let seconds = i32::try_from(self.duration.as_secs()).unwrap_or(i32::MAX);
        let Some(lease) = self.api.get_opt(&self.name).await.map_err(|e| map_err("get", what.clone(), e))? else {
            let lease = Lease {
                metadata: ObjectMeta { name: Some(self.name.clone()), ..ObjectMeta::default() },
                spec: Some(LeaseSpec {
                    holder_identity: Some(self.identity.clone()),
                    lease_duration_seconds: Some(seconds),
                    acquire_time: Some(MicroTime(now)),
                    renew_time: Some(MicroTime(now)),
                    lease_transitions: Some(0),
                    ..LeaseSpec::default()
                }),
            };
            return match self.api.create(&PostParams::default(), &lease).await {
                Ok(_) => Ok(true),
                Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
                Err(e) => Err(map_err("create", what, e)),
            };
        };
        let mut spec = lease.spec.clone().unwrap_or_default();
        match decide(&spec, &self.identity, now) {
            Decision::HeldBy { .. } => return Ok(false),
            Decision::Acquire => {
                spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
                spec.acquire_time = Some(MicroTime(now));
                spec.holder_identity = Some(self.identity.clone());
            }
            Decision::Renew => {}
        }
        spec.renew_time = Some(MicroTime(now));
        spec.lease_duration_seconds = Some(seconds);
        // The resourceVersion in metadata makes this replace conditional.
        let updated = Lease { metadata: lease.metadata.clone(), spec: Some(spec) };
        match self.api.replace(&self.name, &PostParams::default(), &updated).await {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
            Err(e) => Err(map_err("replace", what, e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(holder: &str, renewed: i64) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(holder.into()),
            lease_duration_seconds: Some(15),
            renew_time: Some(MicroTime(Timestamp::from_second(renewed).unwrap())),
            ..LeaseSpec::default()
        }
    }

    #[test]
    fn a_lease_is_taken_only_when_free_or_expired() {
        let now = Timestamp::from_second(1_000).unwrap();
        assert_eq!(decide(&spec("a", 990), "a", now), Decision::Renew);
        assert_eq!(decide(&spec("b", 990), "a", now), Decision::HeldBy { holder: "b".into() });
        assert_eq!(decide(&spec("b", 984), "a", now), Decision::Acquire);
        assert_eq!(decide(&spec("", 999), "a", now), Decision::Acquire);
        assert_eq!(decide(&LeaseSpec::default(), "a", now), Decision::Acquire);
    }
}
