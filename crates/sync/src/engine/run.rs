//! One run from start to end: abort what an interrupted run left, resume,
//! diff the listings while the workers copy, then delete (mirror mode) and
//! sum up.

use std::time::{Instant, SystemTime};

use super::events::{Reporter, SyncEvent};
use super::listing::{Counted, merge_join, start_count_ahead};
use super::options::{Mode, Side, SyncOptions};
use super::outcome::Summary;
use super::watermark::Watermark;
use super::workers::{CopyJob, Wait, Workers};
use super::{job_name, parse_last_modified};
use crate::SyncError;
use crate::copy::Copier;
use crate::diff::{Pair, Verdict};
use crate::retry::Limiter;
use crate::store::Store;

/// The state of one run.
pub(super) struct Run<'a> {
    pub src: &'a Side,
    pub dst: &'a Side,
    pub opts: &'a SyncOptions,
    pub store: Option<&'a Store>,
    pub report: Reporter<'a>,
    pub copier: Copier,
    pub summary: Summary,
    pub mark: Watermark,
    pub in_flight: u64,
    pub src_seen: u64,
    pub listing_done: bool,
    /// Source objects counted ahead of the diff (`count_ahead`).
    pub counted: Option<Counted>,
    /// Last-modified time of the oldest object whose copy failed.
    pub oldest_failed: Option<SystemTime>,
    pub started: Instant,
    pub last_progress: Instant,
    pub last_save: Instant,
    pub job: String,
}

/// What the diff leaves for the delete phase.
struct Diffed {
    /// Destination objects the source does not have (mirror mode).
    deletes: Vec<String>,
    destination_objects: u64,
}

impl<'a> Run<'a> {
    pub fn new(
        src: &'a Side,
        dst: &'a Side,
        opts: &'a SyncOptions,
        store: Option<&'a Store>,
        report: Reporter<'a>,
    ) -> Self {
        let job = job_name(&src.location, &dst.location);
        let store = store.filter(|_| opts.writes());
        let copier = Copier {
            src: src.client.clone(),
            src_get: src.get_client.clone(),
            dst: dst.client.clone(),
            dst_get: dst.get_client.clone(),
            src_prefix: src.location.prefix.clone(),
            dst_prefix: dst.location.prefix.clone(),
            limiter: Limiter::new(opts.concurrency),
            retry: opts.retry,
            multipart_threshold: opts.multipart_threshold,
            part_size: opts.part_size,
            store: store.cloned(),
            job: job.clone(),
        };
        let now = Instant::now();
        Run {
            src,
            dst,
            opts,
            store,
            report,
            copier,
            summary: Summary::empty(opts),
            mark: Watermark::default(),
            in_flight: 0,
            src_seen: 0,
            listing_done: false,
            counted: None,
            oldest_failed: None,
            started: now,
            last_progress: now,
            last_save: now,
            job,
        }
    }

    /// Aborts leftovers, resumes, diffs and copies, deletes (mirror mode,
    /// when the safety rules allow it) and returns the summary.
    pub async fn diff_copy_delete(mut self) -> Result<Summary, SyncError> {
        self.abort_leftovers().await?;
        let start_after = self.resume_point()?;
        let diffed = self.diff_and_copy(start_after.as_deref()).await?;
        if self.opts.mode == Mode::Mirror && !diffed.deletes.is_empty() {
            self.delete(diffed.deletes, self.src_seen, diffed.destination_objects).await;
        }
        self.sum_up()?;
        Ok(self.summary)
    }

    /// Reads both listings and hands what differs to the workers; returns
    /// once every copy has finished. A listing error is returned after the
    /// copies in flight finished (and were checkpointed).
    async fn diff_and_copy(&mut self, start_after: Option<&str>) -> Result<Diffed, SyncError> {
        let stats = self.copier.limiter.stats().clone();
        let mut join = merge_join(self.src, self.dst, start_after, self.opts, &stats);
        let counter = self.opts.count_ahead.then(|| {
            let (counted, task) = start_count_ahead(self.src, start_after, self.opts, &stats);
            self.counted = Some(counted);
            task
        });
        let mut workers = Workers::new(self.copier.clone(), self.opts.concurrency);
        let mut deletes: Vec<String> = Vec::new();

        let listing = loop {
            while let Some(done) = workers.try_finished() {
                self.finish_task(done);
            }
            self.tick()?;
            let pair = match join.next().await {
                Ok(Some(p)) => p,
                Ok(None) => break Ok(()),
                Err(e) => break Err(e),
            };
            self.dispatch(pair, &mut workers, &mut deletes).await;
        };
        self.summary.listed_source = join.src.listed;
        self.summary.listed_destination = join.dst.listed;
        self.listing_done = listing.is_ok();
        workers.close();
        // Let copies in flight finish (and be checkpointed) even when a listing failed.
        loop {
            match workers.next_finished().await {
                Wait::Finished(done) => self.finish_task(done),
                Wait::AllDone => break,
                Wait::TimedOut => {}
            }
            self.tick()?;
        }
        workers.join().await;
        if let Some(c) = counter {
            c.abort();
        }
        listing?;
        Ok(Diffed { deletes, destination_objects: join.dst.listed })
    }

    /// Decides what one step of the merge-join needs: nothing, a report, a
    /// delete later, or a copy (or compare) by a worker.
    async fn dispatch(&mut self, pair: Pair, workers: &mut Workers, deletes: &mut Vec<String>) {
        if pair.src.is_some() {
            self.src_seen += 1;
        }
        let pending = self.count_difference(&pair);
        let Pair { src, dst, verdict } = pair;
        match (verdict, src) {
            (Verdict::Extra, _) => {
                let rel = dst.expect("extra has a destination").rel;
                if self.opts.mode == Mode::Check || self.opts.dry_run {
                    (self.report)(SyncEvent::Difference { key: &rel, verdict });
                }
                if self.opts.mode == Mode::Mirror {
                    deletes.push(rel);
                }
            }
            (Verdict::Same, Some(s)) => {
                self.summary.skipped += 1;
                self.mark.pass(&s.rel);
            }
            (Verdict::Changed | Verdict::Undecided, Some(s))
                if self.opts.keeps_destination(
                    s.last_modified.as_deref().and_then(parse_last_modified),
                    dst.as_ref().and_then(|d| d.last_modified.as_deref()).and_then(parse_last_modified),
                ) =>
            {
                self.summary.skipped += 1;
                self.mark.pass(&s.rel);
            }
            (Verdict::New, Some(s))
                if self.opts.skips_missing(s.last_modified.as_deref().and_then(parse_last_modified)) =>
            {
                self.summary.skipped += 1;
                self.mark.pass(&s.rel);
            }
            (Verdict::Undecided, Some(s)) if !self.opts.checksum => {
                self.summary.skipped += 1;
                self.mark.pass(&s.rel);
            }
            (Verdict::New | Verdict::Changed, Some(s)) if !self.opts.writes() => {
                (self.report)(SyncEvent::Difference { key: &s.rel, verdict });
                self.mark.pass(&s.rel);
            }
            (Verdict::New | Verdict::Changed | Verdict::Undecided, Some(s)) => {
                let seq = self.mark.start(&s.rel);
                let last_modified = s.last_modified.as_deref().and_then(parse_last_modified);
                let job = CopyJob {
                    seq,
                    rel: s.rel,
                    size: s.size,
                    last_modified,
                    pending,
                    compare: verdict == Verdict::Undecided,
                    copy: self.opts.writes(),
                };
                workers.spawn(job).await;
                self.in_flight += 1;
            }
            (_, None) => {}
        }
    }

    /// Final counters, the outcome and the last checkpoint.
    fn sum_up(&mut self) -> Result<(), SyncError> {
        self.summary.seconds = self.started.elapsed().as_secs_f64();
        let stats = self.copier.limiter.stats();
        (self.summary.retries, self.summary.throttled) = (stats.retries(), stats.throttled());
        self.summary.oldest_remaining = match self.summary.remaining_objects {
            0 => None,
            _ if self.opts.writes() => self.oldest_failed,
            _ => self.summary.oldest_pending,
        };
        self.summary.outcome = self.summary.decide_outcome();
        self.save(self.summary.failed == 0)
    }
}
