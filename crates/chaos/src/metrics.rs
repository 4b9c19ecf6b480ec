//! The proxy's counters, and their Prometheus text exposition (`GET
//! /metrics` of the control API). Metric names are constants here.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;

use crate::faults::{FaultKind, Faults};

pub const CONNECTIONS: &str = "cutover_chaos_connections_total";
pub const ACTIVE: &str = "cutover_chaos_active_connections";
pub const REQUESTS: &str = "cutover_chaos_requests_total";
pub const FAULTED: &str = "cutover_chaos_faulted_total";
pub const UPSTREAM_ERRORS: &str = "cutover_chaos_upstream_errors_total";
pub const BYTES: &str = "cutover_chaos_bytes_total";
pub const FAULT_ACTIVE: &str = "cutover_chaos_fault_active";

/// A snapshot of the counters.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Counters {
    /// Connections accepted.
    pub connections: u64,
    /// Connections open now.
    pub active_connections: u64,
    /// HTTP requests framed (connections relayed as plain bytes have none).
    pub requests: u64,
    /// Faults injected, by kind: requests (or, for connection-level faults
    /// and plain-byte connections, connections) that a fault acted on; for
    /// `refuse`, the times the listener was closed.
    pub faulted: BTreeMap<FaultKind, u64>,
    /// Connections to the upstream that could not be opened.
    pub upstream_errors: u64,
    /// Bytes forwarded to the upstream and sent back to clients.
    pub bytes_upstream: u64,
    pub bytes_downstream: u64,
}

impl Counters {
    /// How often a kind of fault acted.
    pub fn faulted(&self, kind: FaultKind) -> u64 {
        self.faulted.get(&kind).copied().unwrap_or(0)
    }
}

#[derive(Debug, Default)]
pub(crate) struct Metrics {
    pub connections: AtomicU64,
    pub active: AtomicU64,
    pub requests: AtomicU64,
    faulted: [AtomicU64; FaultKind::ALL.len()],
    pub upstream_errors: AtomicU64,
    pub bytes_upstream: AtomicU64,
    pub bytes_downstream: AtomicU64,
}

/// Counts an open connection until dropped.
#[derive(Debug)]
pub(crate) struct ActiveGuard<'a>(&'a Metrics);

impl Drop for ActiveGuard<'_> {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Metrics {
    pub fn connection(&self) -> ActiveGuard<'_> {
        self.connections.fetch_add(1, Ordering::Relaxed);
        self.active.fetch_add(1, Ordering::Relaxed);
        ActiveGuard(self)
    }

    pub fn fault(&self, kind: FaultKind) {
        self.faulted[kind.index()].fetch_add(1, Ordering::Relaxed);
        tracing::debug!(%kind, "fault injected");
    }

    pub fn add(counter: &AtomicU64, n: usize) {
        counter.fetch_add(n as u64, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> Counters {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        Counters {
            connections: get(&self.connections),
            active_connections: get(&self.active),
            requests: get(&self.requests),
            faulted: FaultKind::ALL.iter().map(|k| (*k, get(&self.faulted[k.index()]))).collect(),
            upstream_errors: get(&self.upstream_errors),
            bytes_upstream: get(&self.bytes_upstream),
            bytes_downstream: get(&self.bytes_downstream),
        }
    }
}

/// The Prometheus text exposition of the counters and the faults in force.
pub fn render(c: &Counters, faults: &Faults) -> String {
    let mut out = String::new();
    let simple = [
        (CONNECTIONS, "counter", "Client connections accepted.", c.connections),
        (ACTIVE, "gauge", "Client connections open now.", c.active_connections),
        (REQUESTS, "counter", "HTTP requests seen from clients.", c.requests),
        (UPSTREAM_ERRORS, "counter", "Connections to the upstream that could not be opened.", c.upstream_errors),
    ];
    for (name, kind, help, v) in simple {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}");
    }
    let _ = writeln!(
        out,
        "# HELP {FAULTED} Requests (or connections) a fault acted on, by kind; refuse counts listener closings.\n\
         # TYPE {FAULTED} counter"
    );
    for kind in FaultKind::ALL {
        let _ = writeln!(out, "{FAULTED}{{kind=\"{kind}\"}} {}", c.faulted(kind));
    }
    let _ = writeln!(out, "# HELP {BYTES} Bytes relayed, by direction.\n# TYPE {BYTES} counter");
    let _ = writeln!(out, "{BYTES}{{direction=\"upstream\"}} {}", c.bytes_upstream);
    let _ = writeln!(out, "{BYTES}{{direction=\"downstream\"}} {}", c.bytes_downstream);
    let _ = writeln!(out, "# HELP {FAULT_ACTIVE} 1 when a kind of fault is switched on.\n# TYPE {FAULT_ACTIVE} gauge");
    for kind in FaultKind::ALL {
        let _ = writeln!(out, "{FAULT_ACTIVE}{{kind=\"{kind}\"}} {}", u8::from(faults.is_on(kind)));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_by_kind_and_the_faults_in_force() {
        let m = Metrics::default();
        let guard = m.connection();
        m.fault(FaultKind::Slowdown);
        m.fault(FaultKind::Slowdown);
        Metrics::add(&m.bytes_upstream, 10);
        let faults = Faults { slowdown_rate: 0.3, ..Faults::none() };
        let text = render(&m.snapshot(), &faults);
        assert!(text.contains("cutover_chaos_connections_total 1\n"), "{text}");
        assert!(text.contains("cutover_chaos_active_connections 1\n"), "{text}");
        assert!(text.contains("cutover_chaos_faulted_total{kind=\"slowdown\"} 2\n"), "{text}");
        assert!(text.contains("cutover_chaos_faulted_total{kind=\"reset\"} 0\n"), "{text}");
        assert!(text.contains("cutover_chaos_bytes_total{direction=\"upstream\"} 10\n"), "{text}");
        assert!(text.contains("cutover_chaos_fault_active{kind=\"slowdown\"} 1\n"), "{text}");
        drop(guard);
        assert_eq!(m.snapshot().active_connections, 0);
    }
}
