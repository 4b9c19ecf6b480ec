//! What a run is asked to do: the two sides, the mode and the options.

use std::time::Duration;

use cutover_s3::S3Client;
use serde::Serialize;

use crate::SyncError;
use crate::location::{Filter, Location};
use crate::retry::RetryPolicy;

/// One end of a sync: where, and the clients to reach it.
#[derive(Debug, Clone)]
pub struct Side {
    pub location: Location,
    /// Pooled connections: HEAD, PUT, multipart, DELETE.
    pub client: S3Client,
    /// A fresh connection per request: listings and streamed GETs.
    pub get_client: S3Client,
}

/// What a run does with differences.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Copy new and changed objects.
    Copy,
    /// Copy, then delete destination objects that the source does not have.
    Mirror,
    /// Only compare and report differences.
    Check,
}

/// Options of a run.
#[derive(Debug, Clone)]
pub struct SyncOptions {
    pub mode: Mode,
    pub dry_run: bool,
    /// Compare undecidable objects (multipart/SSE ETags) by streaming both.
    pub checksum: bool,
    pub filter: Filter,
    pub concurrency: usize,
    pub multipart_threshold: u64,
    pub part_size: u64,
    pub max_delete: Option<u64>,
    pub force: bool,
    pub allow_empty_source: bool,
    pub resume: bool,
    /// How often to emit [`SyncEvent::Progress`](crate::SyncEvent::Progress).
    pub progress_every: Option<Duration>,
    /// Also list the source once more, ahead of the diff, only to count its
    /// objects, so that [`Progress::source_total`](crate::Progress::source_total)
    /// is known early (for a progress bar; costs one more listing of the source).
    pub count_ahead: bool,
    pub page_size: u32,
    pub retry: RetryPolicy,
    /// Copy only objects the destination does not have; never overwrite one
    /// that differs (the failback reconciliation: which side is newer is
    /// unknown there).
    pub missing_only: bool,
}

impl Default for SyncOptions {
    fn default() -> Self {
        Self {
            mode: Mode::Copy,
            dry_run: false,
            checksum: false,
            filter: Filter::default(),
            concurrency: 32,
            multipart_threshold: 64 << 20,
            part_size: 16 << 20,
            max_delete: None,
            force: false,
            allow_empty_source: false,
            resume: false,
            progress_every: None,
            count_ahead: false,
            page_size: 1000,
            retry: RetryPolicy::default(),
            missing_only: false,
        }
    }
}

impl SyncOptions {
    /// Checks option combinations without I/O.
    pub fn validate(&self) -> Result<(), SyncError> {
        if self.part_size < 5 << 20 {
            return Err(SyncError::Options("part size must be at least 5 MiB".into()));
        }
        if self.concurrency == 0 {
            return Err(SyncError::Options("concurrency must be at least 1".into()));
        }
        Ok(())
    }

    /// True when the run writes to the destination (not a check, not a dry run).
    pub fn writes(&self) -> bool {
        self.mode != Mode::Check && !self.dry_run
    }
}
