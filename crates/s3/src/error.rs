//! Errors of S3 operations. Each carries the backend and operation; none
//! carries a secret.

use cutover_core::Outcome;

/// Why an S3 operation failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum S3Error {
    /// The backend could not be reached or did not answer in time.
    #[error("{backend}: {op}: {outcome}: {detail}")]
    Transport { backend: String, op: &'static str, outcome: Outcome, detail: String },
    /// The backend answered with an S3 error.
    #[error("{backend}: {op}: HTTP {status}{}: {message}", code.as_deref().map(|c| format!(" {c}")).unwrap_or_default())]
    Response { backend: String, op: &'static str, status: u16, code: Option<String>, message: String },
    /// The answer did not follow the S3 protocol.
    #[error("{backend}: {op}: unexpected answer: {detail}")]
    Protocol { backend: String, op: &'static str, detail: String },
    /// The data read back is not the data written.
    #[error("{backend}: {op} {key}: checksum mismatch (expected {expected}, got {actual})")]
    ChecksumMismatch { backend: String, op: &'static str, key: String, expected: String, actual: String },
    /// The client could not be built (credentials, endpoint).
    #[error("{backend}: {detail}")]
    Setup { backend: String, detail: String },
}

impl S3Error {
    /// The typed outcome for probes and checks.
    pub fn outcome(&self) -> Outcome {
        match self {
            S3Error::Transport { outcome, .. } => outcome.clone(),
            S3Error::Response { status, code, message, .. } => {
                Outcome::from_s3_error(*status, code.as_deref(), message)
            }
            S3Error::Protocol { detail, .. } => Outcome::Protocol(detail.clone()),
            S3Error::ChecksumMismatch { .. } => Outcome::ChecksumMismatch,
            S3Error::Setup { detail, .. } => Outcome::Io(detail.clone()),
        }
    }

    /// The HTTP status of an S3 error answer.
    pub fn status(&self) -> Option<u16> {
        match self {
            S3Error::Response { status, .. } => Some(*status),
            _ => None,
        }
    }
}
