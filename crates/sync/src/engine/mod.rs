//! One sync, check or dry run: diff the listings, copy what differs with
//! bounded, adaptive concurrency, checkpoint progress, then (mirror mode
//! only, and only when every safety rule allows it) delete.
//!
//! - [`options`]: the sides, the mode and the options of a run.
//! - `run`: one run from start to end; `listing`: the listings it reads;
//!   `workers`: the copy tasks; `progress`: counters, progress events and
//!   checkpoints; `resume`: picking up an interrupted run; `delete`: the
//!   delete phase, under the rules of [`refusal`].
//! - [`events`]: what a run reports as it goes; [`outcome`]: how it ended.
//!
//! # Guarantees
//! - Nothing is deleted when the source listing failed or was cut short (the
//!   run ends with an error first), when any copy failed, when the source
//!   is empty (unless `allow_empty_source`), above `max_delete`, or above
//!   10 % of the destination's objects (unless `force`).
//! - Deletes start only after every copy finished and succeeded.
//! - Memory is bounded by the concurrency, two listing pages per side, and
//!   the list of keys to delete.
//!
//! # Assumptions
//! Both listings are sorted by key (S3 guarantees it; checked as we go).

use std::time::SystemTime;

use crate::SyncError;
use crate::location::{Filter, Location};
use crate::store::Store;

mod delete;
pub mod events;
mod listing;
pub mod options;
pub mod outcome;
mod progress;
pub mod refusal;
mod resume;
mod run;
mod watermark;
mod workers;

pub use events::{Progress, Reporter, SyncEvent};
pub use options::{Mode, Side, SyncOptions};
pub use outcome::{Lag, Summary, SyncOutcome};
pub use refusal::DeleteRefusal;

/// The checkpoint job name of a source and destination pair.
pub fn job_name(src: &Location, dst: &Location) -> String {
    format!("{src} -> {dst}")
}

/// Parses an S3 `LastModified` (`2024-05-01T12:00:00.000Z`).
pub fn parse_last_modified(s: &str) -> Option<SystemTime> {
    let compact: String = s.split('.').next()?.chars().filter(|c| *c != '-' && *c != ':').collect();
    let compact = if compact.ends_with('Z') { compact } else { format!("{compact}Z") };
    cutover_s3::sigv4::AmzDate::parse(&compact)
}

/// Runs one sync, check or dry run. `store` holds checkpoints and open
/// uploads (none for checks). Returns an error when a listing failed (then
/// nothing was deleted) or the store failed.
pub async fn run(
    src: &Side,
    dst: &Side,
    opts: &SyncOptions,
    store: Option<&Store>,
    report: Reporter<'_>,
) -> Result<Summary, SyncError> {
    opts.validate()?;
    run::Run::new(src, dst, opts, store, report).diff_copy_delete().await
}

/// The current replication lag from `src` to `dst` (a check without output).
pub async fn lag(src: &Side, dst: &Side, filter: Filter) -> Result<Lag, SyncError> {
    let opts = SyncOptions { mode: Mode::Check, filter, ..SyncOptions::default() };
    Ok(run(src, dst, &opts, None, &|_| {}).await?.lag())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn parses_last_modified() {
        let t = parse_last_modified("2024-05-01T12:00:00.000Z").unwrap();
        let t2 = parse_last_modified("2024-05-01T12:00:01Z").unwrap();
        assert_eq!(t2.duration_since(t).unwrap(), Duration::from_secs(1));
        assert!(parse_last_modified("yesterday").is_none());
    }
}
