//! Bulk copy and replication between S3 backends (`cutover sync`, `check`,
//! `replicate`).
//!
//! - [`diff`]: both listings streamed page by page and merge-joined, so
//!   memory does not grow with the number of objects.
//! - [`copy`]: verified streaming GET → PUT, multipart with parallel parts
//!   above a threshold.
//! - [`retry`]: backoff with jitter; concurrency that halves on SlowDown.
//! - [`store`]: checkpoints, open uploads and the latest replication lag in SQLite.
//! - [`engine`]: one run, with the safety rules for deletes.
//! - [`metrics`]: replication lag in the Prometheus text format.

pub mod copy;
pub mod diff;
pub mod engine;
pub mod error;
pub mod location;
pub mod metrics;
pub mod retry;
pub mod store;

pub use engine::{DeleteRefusal, Lag, Mode, Progress, Side, Summary, SyncEvent, SyncOptions, SyncOutcome, lag, run};
pub use error::SyncError;
pub use location::{Filter, Location, LocationError};
pub use metrics::ReplicationMetrics;
pub use retry::RetryStats;
pub use store::{LagRecord, Store, latest_lag};
