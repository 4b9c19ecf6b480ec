//! How a run ended: its outcome, the summary it returns and the lag it
//! found and left.

use std::time::{Duration, SystemTime};

use serde::Serialize;

use super::options::{Mode, SyncOptions};
use super::refusal::DeleteRefusal;

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SyncOutcome {
    /// Everything done (or, for a check, no differences).
    Ok,
    /// A check found differences.
    Differences,
    /// Some objects failed to copy, compare or delete.
    Failed,
    /// Deletes were refused by a safety rule.
    Refused,
}

/// The result of a run.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub outcome: SyncOutcome,
    pub mode: Mode,
    pub dry_run: bool,
    pub copied: u64,
    pub skipped: u64,
    pub deleted: u64,
    pub failed: u64,
    pub bytes: u64,
    /// Differences found: only on the source, changed, only on the destination.
    pub new: u64,
    pub changed: u64,
    pub extra: u64,
    /// Objects and bytes that differed at the start of the run (the lag).
    pub pending_objects: u64,
    pub pending_bytes: u64,
    /// Last-modified time of the oldest differing source object.
    #[serde(skip)]
    pub oldest_pending: Option<SystemTime>,
    /// Of those, the objects and bytes still differing when the run ended
    /// (failed copies; everything in a check or dry run): the lag left.
    pub remaining_objects: u64,
    pub remaining_bytes: u64,
    /// Last-modified time of the oldest object still differing.
    #[serde(skip)]
    pub oldest_remaining: Option<SystemTime>,
    /// Requests sent again after a retryable failure, and how many of
    /// those failures were throttling (SlowDown, 503, 429).
    pub retries: u64,
    pub throttled: u64,
    pub listed_source: u64,
    pub listed_destination: u64,
    pub aborted_uploads: u64,
    pub resumed_after: Option<String>,
    pub refusal: Option<DeleteRefusal>,
    pub seconds: f64,
}

/// Replication lag: what the destination is missing right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Lag {
    pub objects: u64,
    pub bytes: u64,
    /// Age of the oldest unsynced change (its source last-modified time).
    pub oldest_age: Option<Duration>,
}

impl Summary {
    /// The summary of a run that has not done anything yet.
    pub(super) fn empty(opts: &SyncOptions) -> Self {
        Summary {
            outcome: SyncOutcome::Ok,
            mode: opts.mode,
            dry_run: opts.dry_run,
            copied: 0,
            skipped: 0,
            deleted: 0,
            failed: 0,
            bytes: 0,
            new: 0,
            changed: 0,
            extra: 0,
            pending_objects: 0,
            pending_bytes: 0,
            oldest_pending: None,
            remaining_objects: 0,
            remaining_bytes: 0,
            oldest_remaining: None,
            retries: 0,
            throttled: 0,
            listed_source: 0,
            listed_destination: 0,
            aborted_uploads: 0,
            resumed_after: None,
            refusal: None,
            seconds: 0.0,
        }
    }

    /// The outcome the counters add up to: failures first, then a refusal,
    /// then (checks only) differences.
    pub(super) fn decide_outcome(&self) -> SyncOutcome {
        if self.failed > 0 {
            SyncOutcome::Failed
        } else if self.refusal.is_some() {
            SyncOutcome::Refused
        } else if self.mode == Mode::Check && self.pending_objects + self.extra > 0 {
            SyncOutcome::Differences
        } else {
            SyncOutcome::Ok
        }
    }

    pub fn objects_per_second(&self) -> f64 {
        (self.copied + self.skipped + self.deleted) as f64 / self.seconds.max(1e-9)
    }

    pub fn megabytes_per_second(&self) -> f64 {
        self.bytes as f64 / 1e6 / self.seconds.max(1e-9)
    }

    /// The lag at the start of this run.
    pub fn lag(&self) -> Lag {
        Lag {
            objects: self.pending_objects,
            bytes: self.pending_bytes,
            oldest_age: self.oldest_pending.and_then(|t| SystemTime::now().duration_since(t).ok()),
        }
    }

    /// The lag this run left: what it found differing and did not bring
    /// over (0 after a clean copy).
    pub fn remaining(&self) -> Lag {
        Lag {
            objects: self.remaining_objects,
            bytes: self.remaining_bytes,
            oldest_age: self.oldest_remaining.and_then(|t| SystemTime::now().duration_since(t).ok()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_outrank_refusals_and_differences() {
        let opts = SyncOptions { mode: Mode::Check, ..SyncOptions::default() };
        let mut s = Summary::empty(&opts);
        assert_eq!(s.decide_outcome(), SyncOutcome::Ok);
        s.extra = 1;
        assert_eq!(s.decide_outcome(), SyncOutcome::Differences);
        s.refusal = Some(DeleteRefusal::CopiesFailed { failed: 1 });
        assert_eq!(s.decide_outcome(), SyncOutcome::Refused);
        s.failed = 1;
        assert_eq!(s.decide_outcome(), SyncOutcome::Failed);
        let copy = Summary { extra: 1, ..Summary::empty(&SyncOptions::default()) };
        assert_eq!(copy.decide_outcome(), SyncOutcome::Ok);
    }
}
