//! `[ha]`: several cutover processes on several hosts, coordinated through
//! etcd. Without the table cutover runs embedded on SQLite, as one process.
//!
//! # Guarantees
//! - The four timings always satisfy
//!   `renew_interval + 2 × request_timeout ≤ renew_deadline < lease_ttl`
//!   (validation refuses anything else), so a leader whose renewals fail
//!   stops acting before etcd lets its lease expire and another node leads.
//! - Paths are absolute; the password is known by its environment
//!   variable only, never held here.

use std::path::PathBuf;
use std::time::Duration;

use crate::endpoint::Endpoint;

/// `lease_ttl` when absent.
pub const DEFAULT_LEASE_TTL: Duration = Duration::from_secs(6);

/// `prefix` when absent.
pub const DEFAULT_PREFIX: &str = "/cutover";

/// `[ha]`, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HaConfig {
    /// `etcd`: the cluster's client URLs (at least one).
    pub etcd: Vec<Endpoint>,
    /// `prefix`: every key cutover writes is under it. Starts with `/`, has
    /// no trailing `/` and no `//` (default [`DEFAULT_PREFIX`]).
    pub prefix: String,
    /// `node`: this process's name among the nodes (default: the host name).
    pub node: String,
    /// `advertise_api`: how other nodes and the CLI reach this node's API.
    /// When absent, `http://` + `[api] listen` if that is a specific
    /// address; `None` when there is no such address (no `[api]`, or one
    /// listening on `0.0.0.0`/`::`).
    pub advertise_api: Option<Endpoint>,
    /// The leader's lease, and the timings derived from it.
    pub timing: HaTiming,
    /// `ca_file`: CA certificates trusted for `https` endpoints, in
    /// addition to the public roots.
    pub ca_file: Option<PathBuf>,
    /// `cert_file` and `key_file`: a client certificate for etcd's TLS.
    pub client_cert: Option<HaClientCert>,
    /// `username` and `password_env`: etcd authentication.
    pub auth: Option<HaAuth>,
}

/// How long leadership lasts and how it is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HaTiming {
    /// `lease_ttl` (default 6s, whole seconds: etcd counts leases in seconds).
    pub lease_ttl: Duration,
    /// `renew_interval` (default `lease_ttl / 3`): how often the lease is renewed.
    pub renew_interval: Duration,
    /// `request_timeout` (default `lease_ttl / 6`): the deadline of one etcd request.
    pub request_timeout: Duration,
    /// `renew_deadline` (default `lease_ttl × 2 / 3`): a leader that has not
    /// renewed its lease for this long stops acting.
    pub renew_deadline: Duration,
}

impl HaTiming {
    /// The timings derived from `lease_ttl`: renew every third of it, a
    /// request timeout of a sixth, a renew deadline of two thirds (for the
    /// default 6s: 2s, 1s and 4s; `2s + 2 × 1s ≤ 4s < 6s`).
    pub fn derived(lease_ttl: Duration) -> Self {
        Self {
            lease_ttl,
            renew_interval: lease_ttl / 3,
            request_timeout: lease_ttl / 6,
            renew_deadline: lease_ttl * 2 / 3,
        }
    }

    /// Whether `renew_interval + 2 × request_timeout ≤ renew_deadline < lease_ttl`.
    pub fn is_safe(&self) -> bool {
        let needed = self.renew_interval.saturating_add(self.request_timeout.saturating_mul(2));
        needed <= self.renew_deadline && self.renew_deadline < self.lease_ttl
    }
}

impl Default for HaTiming {
    fn default() -> Self {
        Self::derived(DEFAULT_LEASE_TTL)
    }
}

/// A client certificate and its private key (PEM files, read when the etcd
/// client is built and by `cutover config check`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HaClientCert {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
}

/// etcd's user name and the environment variable that holds the password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HaAuth {
    pub username: String,
    pub password_env: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_derived_timings_satisfy_the_rule() {
        for secs in [1, 2, 3, 6, 10, 15, 30, 60] {
            let t = HaTiming::derived(Duration::from_secs(secs));
            assert!(t.is_safe(), "{t:?}");
        }
        let t = HaTiming::default();
        assert_eq!(
            (t.lease_ttl, t.renew_interval, t.request_timeout, t.renew_deadline),
            (Duration::from_secs(6), Duration::from_secs(2), Duration::from_secs(1), Duration::from_secs(4))
        );
    }
}
