//! What a run reports while it goes: events and progress counters. The
//! caller decides how to print them.

use std::time::SystemTime;

use serde::Serialize;

use super::refusal::DeleteRefusal;
use crate::SyncError;
use crate::diff::Verdict;

/// Progress counters at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Progress {
    /// Objects handled or in flight (copied + skipped + in flight).
    pub listed: u64,
    pub copied: u64,
    pub skipped: u64,
    pub failed: u64,
    pub bytes: u64,
    pub in_flight: u64,
    pub seconds: f64,
    /// Source objects seen in the listing so far (after filters).
    pub source_listed: u64,
    /// Both listings are read to their end: `source_listed` is the total.
    pub listing_done: bool,
    /// The number of source objects, once known: from the count-ahead
    /// listing (`count_ahead`) or when the listings are done.
    pub source_total: Option<u64>,
    /// Objects and bytes found differing so far.
    pub pending_objects: u64,
    pub pending_bytes: u64,
    /// Of those, the ones not brought over yet: the lag right now.
    pub remaining_objects: u64,
    pub remaining_bytes: u64,
    /// Last-modified time of the oldest differing object found so far.
    #[serde(skip)]
    pub oldest_pending: Option<SystemTime>,
    pub retries: u64,
}

/// What a run reports as it goes; the caller decides how to print.
#[derive(Debug)]
pub enum SyncEvent<'a> {
    /// A difference (check mode and dry runs).
    Difference {
        key: &'a str,
        verdict: Verdict,
    },
    /// A dry run would delete this destination object.
    WouldDelete {
        key: &'a str,
    },
    Failed {
        key: &'a str,
        error: &'a SyncError,
    },
    Progress(Progress),
    Resumed {
        after: &'a str,
    },
    AbortedUpload {
        key: &'a str,
    },
    Refused(&'a DeleteRefusal),
}

/// Where a run sends its events.
pub type Reporter<'a> = &'a (dyn Fn(SyncEvent<'_>) + Sync);
