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
    /// With [`SyncOptions::missing_only`]: an object that differs is still
    /// copied when the source's copy was modified at or after this time and
    /// later than the destination's (the failback after a failover at this
    /// time: what changed on the secondary since is newer than the primary's,
    /// even when no gateway journal remembers the write).
    pub newer_since: Option<std::time::SystemTime>,
    /// With [`SyncOptions::missing_only`]: an object the destination does not
    /// have is copied only when the source's copy was modified at or after
    /// this time (older ones may be deletions the source never saw). `None`:
    /// every missing object is copied.
    pub missing_since: Option<std::time::SystemTime>,
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
            newer_since: None,
            missing_since: None,
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

    /// Whether an object that differs is left alone: with
    /// [`SyncOptions::missing_only`], unless the source's copy is one
    /// [`SyncOptions::newer_since`] asks for. An unknown modification time
    /// never overwrites.
    pub fn keeps_destination(&self, src: Option<std::time::SystemTime>, dst: Option<std::time::SystemTime>) -> bool {
        if !self.missing_only {
            return false;
        }
        match (self.newer_since, src) {
            (Some(since), Some(src)) => src < since || dst.is_none_or(|dst| src <= dst),
            _ => true,
        }
    }

    /// Whether an object only the source has is left alone: with
    /// [`SyncOptions::missing_only`] and [`SyncOptions::missing_since`], when
    /// the source's copy is older than that time or its time is unknown.
    pub fn skips_missing(&self, src: Option<std::time::SystemTime>) -> bool {
        match (self.missing_only, self.missing_since) {
            (true, Some(since)) => src.is_none_or(|src| src < since),
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use super::SyncOptions;

    #[test]
    fn missing_only_overwrites_only_what_changed_on_the_source_since_and_is_newer() {
        let since = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000);
        let at = |s| Some(SystemTime::UNIX_EPOCH + Duration::from_secs(s));
        let plain = SyncOptions::default();
        assert!(!plain.keeps_destination(at(2_000), at(1)), "a plain copy overwrites");
        let missing = SyncOptions { missing_only: true, ..SyncOptions::default() };
        assert!(missing.keeps_destination(at(2_000), at(1)), "missing_only alone never overwrites");
        let failback = SyncOptions { missing_only: true, newer_since: Some(since), ..SyncOptions::default() };
        assert!(!failback.keeps_destination(at(1_500), at(900)), "written on the source after the failover");
        assert!(failback.keeps_destination(at(900), at(800)), "older than the failover: not ours to decide");
        assert!(failback.keeps_destination(at(1_500), at(1_600)), "the destination's copy is newer");
        assert!(failback.keeps_destination(None, at(800)), "unknown source time never overwrites");
        assert!(failback.keeps_destination(at(1_500), None), "unknown destination time never overwrites");
        assert!(!failback.skips_missing(at(1)), "without missing_since every missing object is copied");
        let since_only = SyncOptions { missing_since: Some(since), ..failback };
        assert!(!since_only.skips_missing(at(1_000)), "created on the source since the failover");
        assert!(since_only.skips_missing(at(999)), "older: perhaps deleted on the destination");
        assert!(since_only.skips_missing(None), "unknown time: left alone");
    }
}
