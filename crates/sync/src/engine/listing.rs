//! The listings a run reads: both sides merge-joined, and optionally the
//! source once more, ahead, only to count its objects.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use tokio::sync::mpsc;
use tokio::task::AbortHandle;

use super::options::{Side, SyncOptions};
use crate::SyncError;
use crate::diff::{Cursor, Listing, MergeJoin, spawn_lister};
use crate::location::Filter;
use crate::retry::RetryStats;

/// Source objects counted ahead of the diff; the count is final when the
/// flag is set.
pub(super) type Counted = Arc<(AtomicU64, AtomicBool)>;

/// The listing of one side, after the key `start_after` (relative to the
/// side's prefix) when resuming.
fn listing(side: &Side, start_after: Option<&str>, opts: &SyncOptions, stats: &RetryStats) -> Listing {
    // Listings use fresh connections too: Garage's list answers stall ~40 ms
    // on a reused connection (delayed ACK, see BASELINES.md).
    Listing {
        client: side.get_client.clone(),
        side: side.location.to_string(),
        prefix: side.location.prefix.clone(),
        start_after: start_after.map(|k| format!("{}{k}", side.location.prefix)),
        page_size: opts.page_size,
        retry: opts.retry,
        stats: stats.clone(),
    }
}

/// Starts both listings and merge-joins them.
pub(super) fn merge_join(
    src: &Side,
    dst: &Side,
    start_after: Option<&str>,
    opts: &SyncOptions,
    stats: &RetryStats,
) -> MergeJoin {
    let src_rx = spawn_lister(listing(src, start_after, opts, stats));
    let dst_rx = spawn_lister(listing(dst, start_after, opts, stats));
    let (s, d) = (&src.location, &dst.location);
    MergeJoin {
        src: Cursor::new(s.to_string(), src_rx, &s.prefix, opts.filter.clone()),
        dst: Cursor::new(d.to_string(), dst_rx, &d.prefix, opts.filter.clone()),
    }
}

/// With `count_ahead`: starts one more listing of the source that only
/// counts its selected objects into the returned counter.
pub(super) fn start_count_ahead(
    src: &Side,
    start_after: Option<&str>,
    opts: &SyncOptions,
    stats: &RetryStats,
) -> (Counted, AbortHandle) {
    let counted: Counted = Arc::new((AtomicU64::new(0), AtomicBool::new(false)));
    let rx = spawn_lister(listing(src, start_after, opts, stats));
    let task = tokio::spawn(count_ahead(rx, src.location.prefix.len(), opts.filter.clone(), counted.clone()));
    (counted, task.abort_handle())
}

/// The count so far, once it is final.
pub(super) fn counted_total(counted: &Counted) -> Option<u64> {
    counted.1.load(Ordering::Relaxed).then(|| counted.0.load(Ordering::Relaxed))
}

/// Counts the selected objects of a listing (`count_ahead`); gives up
/// quietly on an error (the diff's own listing reports it).
async fn count_ahead(
    mut rx: mpsc::Receiver<Result<Vec<cutover_s3::client::ListedObject>, SyncError>>,
    prefix_len: usize,
    filter: Filter,
    counted: Counted,
) {
    while let Some(page) = rx.recv().await {
        let Ok(page) = page else { return };
        let n = page.iter().filter(|o| o.key.get(prefix_len..).is_some_and(|rel| filter.selects(rel))).count();
        counted.0.fetch_add(n as u64, Ordering::Relaxed);
    }
    counted.1.store(true, Ordering::Relaxed);
}
