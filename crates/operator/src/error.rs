//! The operator's errors.

/// What went wrong talking to the cluster or reading a resource. Messages
/// never contain credentials.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The API server answered with an error status.
    #[error("{verb} {what}: the API server answered {code} {reason}: {message}")]
    Api { verb: &'static str, what: String, code: u16, reason: String, message: String },
    /// Server-side apply found a field owned by another manager (409).
    #[error("{what}: conflict: {message}")]
    Conflict { what: String, message: String },
    /// The request did not reach the API server or its answer was unreadable.
    #[error("{verb} {what}: {source}")]
    Transport {
        verb: &'static str,
        what: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The credentials Secret is missing or lacks a key.
    #[error("spec.credentialsSecret: {0}")]
    Credentials(String),
    /// The snapshot Secret holds something unreadable.
    #[error("snapshot Secret {name}: {problem}")]
    Snapshot { name: String, problem: String },
    /// A YAML document could not be written.
    #[error("YAML: {0}")]
    Yaml(String),
    /// The in-memory cluster was told to fail this call (tests).
    #[error("injected failure: {0}")]
    Injected(String),
}

impl Error {
    /// Whether looking again soon may succeed (conflicts and transport errors).
    pub fn retryable(&self) -> bool {
        match self {
            Error::Api { code, .. } => *code == 409 || *code == 429 || *code >= 500,
            Error::Conflict { .. } | Error::Transport { .. } | Error::Injected(_) => true,
            Error::Credentials(_) | Error::Snapshot { .. } | Error::Yaml(_) => false,
        }
    }
}
