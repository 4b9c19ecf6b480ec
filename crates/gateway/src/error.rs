//! Errors of the gateway library. None carries a secret.

use std::net::SocketAddr;

/// Why the gateway could not be built, run, or finish a background task.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// The configuration has no `[gateway]` section or is not usable as given.
    #[error("gateway configuration: {detail}")]
    Config { detail: String },
    /// A client or backend secret could not be read (the error names the
    /// variable or file, never the value).
    #[error("{what}: {detail}")]
    Secret { what: String, detail: String },
    /// The TLS certificate chain or key (`key` is `tls_cert_file` or
    /// `tls_key_file`, `path` the file) is unreadable, not PEM, or not usable.
    /// The detail never quotes the file.
    #[error("gateway.{key}: {path}: {detail}")]
    Tls { key: &'static str, path: String, detail: String },
    /// The listen address could not be bound.
    #[error("binding {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    /// The state database (journal, failback records, active backend) failed.
    #[error("state database {path}: {op}: {source}")]
    State {
        path: String,
        op: &'static str,
        #[source]
        source: rusqlite::Error,
    },
    /// A copy between backends (journal replay or resync) failed.
    #[error("copy {bucket}/{key} from {from} to {to}: {detail}")]
    Copy { bucket: String, key: String, from: String, to: String, detail: String },
    /// A background task ended unexpectedly.
    #[error("background task: {detail}")]
    Task { detail: String },
}
