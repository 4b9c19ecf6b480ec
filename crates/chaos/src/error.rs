//! Errors of the chaos proxy.

use std::net::SocketAddr;

/// Why the proxy could not start or could not apply faults.
#[derive(Debug, thiserror::Error)]
pub enum ChaosError {
    /// A listen or control address could not be bound (in use, not local).
    #[error("binding {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    /// The upstream is not `HOST:PORT`, or its host does not resolve.
    #[error("upstream {upstream:?}: {detail}")]
    Upstream { upstream: String, detail: String },
    /// Faults that cannot work; every problem is named.
    #[error("invalid faults: {}", problems.join("; "))]
    InvalidFaults { problems: Vec<String> },
    /// `refuse` was cleared but the listen address could not be bound again
    /// (another process took the port). The proxy keeps trying every 200 ms.
    #[error("reopening the listener on {addr}: {detail} (retrying)")]
    Reopen { addr: SocketAddr, detail: String },
    /// The proxy's own runtime could not start, or stopped answering.
    #[error("proxy runtime: {0}")]
    Runtime(String),
}
