//! Errors of the sync engine. None carries a secret: S3 errors name the
//! backend and operation only.

use cutover_s3::S3Error;

/// Why a sync, a check or one object copy failed.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// A listing of `side` failed: the diff stops, nothing is deleted.
    #[error("listing {side} failed: {source}")]
    Listing {
        side: String,
        #[source]
        source: Box<S3Error>,
    },
    /// A listing came back out of order, so a merge-join is not safe.
    #[error("listing {side} is not sorted: {key:?} after {previous:?}")]
    Unsorted { side: String, previous: String, key: String },
    /// Copying one object failed after every retry.
    #[error("copying {key}: {source}")]
    Copy {
        key: String,
        #[source]
        source: Box<S3Error>,
    },
    /// A copied object failed verification (size, MD5/ETag).
    #[error("verifying {key}: {detail}")]
    Verify { key: String, detail: String },
    /// Deleting one object on the destination failed.
    #[error("deleting {key}: {source}")]
    Delete {
        key: String,
        #[source]
        source: Box<S3Error>,
    },
    /// The checkpoint store (SQLite) failed.
    #[error("state store {path}: {source}")]
    Store {
        path: String,
        #[source]
        source: Box<rusqlite::Error>,
    },
    /// The options cannot work together (e.g. a part size under 5 MiB).
    #[error("invalid sync options: {0}")]
    Options(String),
}

impl SyncError {
    /// True when retrying the same operation may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            SyncError::Copy { source, .. } | SyncError::Delete { source, .. } | SyncError::Listing { source, .. } => {
                crate::retry::retryable(source)
            }
            SyncError::Verify { .. } => true,
            _ => false,
        }
    }

    /// True when the backend asked us to slow down.
    pub fn is_throttle(&self) -> bool {
        match self {
            SyncError::Copy { source, .. } | SyncError::Delete { source, .. } | SyncError::Listing { source, .. } => {
                crate::retry::throttled(source)
            }
            _ => false,
        }
    }
}
