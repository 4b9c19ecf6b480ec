//! The run's counters as objects are diffed and copies finish, the
//! progress events and the checkpoints.

use std::time::{Duration, Instant, SystemTime};

use super::events::{Progress, SyncEvent};
use super::listing::counted_total;
use super::parse_last_modified;
use super::run::Run;
use super::workers::{TaskDone, TaskOutcome};
use crate::SyncError;
use crate::diff::{Pair, Verdict};
use crate::store::Checkpoint;

impl Run<'_> {
    /// Counts a difference; true when it is a source object now pending.
    pub(super) fn count_difference(&mut self, pair: &Pair) -> bool {
        match pair.verdict {
            Verdict::New => self.summary.new += 1,
            Verdict::Changed => self.summary.changed += 1,
            Verdict::Extra => self.summary.extra += 1,
            Verdict::Same | Verdict::Undecided => return false,
        }
        let Some(s) = &pair.src else { return false };
        self.add_pending(s.size, s.last_modified.as_deref().and_then(parse_last_modified));
        true
    }

    fn add_pending(&mut self, size: u64, last_modified: Option<SystemTime>) {
        self.summary.pending_objects += 1;
        self.summary.pending_bytes += size;
        self.summary.remaining_objects += 1;
        self.summary.remaining_bytes += size;
        if let Some(t) = last_modified {
            self.summary.oldest_pending = Some(self.summary.oldest_pending.map_or(t, |o| o.min(t)));
        }
    }

    /// A pending object was brought over (or vanished from the source).
    fn resolve_pending(&mut self, done: &TaskDone) {
        if done.job.pending {
            self.summary.remaining_objects -= 1;
            self.summary.remaining_bytes -= done.job.size;
        }
    }

    /// Counts a finished copy or compare, and moves the watermark past it
    /// unless it failed.
    pub(super) fn finish_task(&mut self, done: TaskDone) {
        self.in_flight -= 1;
        let seq = done.job.seq;
        match &done.outcome {
            TaskOutcome::Copied(bytes) => {
                self.summary.copied += 1;
                self.summary.bytes += bytes;
                self.resolve_pending(&done);
                self.mark.finish(seq);
            }
            TaskOutcome::Same => {
                self.summary.skipped += 1;
                self.mark.finish(seq);
            }
            TaskOutcome::Differs => {
                self.summary.changed += 1;
                self.add_pending(done.job.size, done.job.last_modified);
                (self.report)(SyncEvent::Difference { key: &done.job.rel, verdict: Verdict::Changed });
                self.mark.finish(seq);
            }
            TaskOutcome::Vanished => {
                tracing::info!(key = %done.job.rel, "source object deleted after listing; skipped");
                self.summary.skipped += 1;
                self.resolve_pending(&done);
                self.mark.finish(seq);
            }
            TaskOutcome::Failed(e) => {
                // Stays pending: the checkpoint never moves past a failure.
                self.summary.failed += 1;
                if done.job.pending
                    && let Some(t) = done.job.last_modified
                {
                    self.oldest_failed = Some(self.oldest_failed.map_or(t, |o| o.min(t)));
                }
                (self.report)(SyncEvent::Failed { key: &done.job.rel, error: e });
            }
        }
    }

    /// Progress events and checkpoints, when they are due.
    pub(super) fn tick(&mut self) -> Result<(), SyncError> {
        if let Some(every) = self.opts.progress_every
            && self.last_progress.elapsed() >= every
        {
            self.progress();
        }
        if self.last_save.elapsed() >= Duration::from_secs(1) {
            self.last_save = Instant::now();
            self.save(false)?;
        }
        Ok(())
    }

    fn progress(&mut self) {
        self.last_progress = Instant::now();
        let s = &self.summary;
        (self.report)(SyncEvent::Progress(Progress {
            listed: s.skipped + s.copied + self.in_flight,
            copied: s.copied,
            skipped: s.skipped,
            failed: s.failed,
            bytes: s.bytes,
            in_flight: self.in_flight,
            seconds: self.started.elapsed().as_secs_f64(),
            source_listed: self.src_seen,
            listing_done: self.listing_done,
            source_total: match &self.counted {
                _ if self.listing_done => Some(self.src_seen),
                Some(c) => counted_total(c),
                None => None,
            },
            pending_objects: s.pending_objects,
            pending_bytes: s.pending_bytes,
            remaining_objects: s.remaining_objects,
            remaining_bytes: s.remaining_bytes,
            oldest_pending: s.oldest_pending,
            retries: self.copier.limiter.stats().retries(),
        }));
    }

    /// Writes the checkpoint (runs that write only).
    pub(super) fn save(&self, complete: bool) -> Result<(), SyncError> {
        let Some(store) = self.store else { return Ok(()) };
        let cp = Checkpoint {
            last_key: self.mark.key(),
            copied: self.summary.copied,
            skipped: self.summary.skipped,
            deleted: self.summary.deleted,
            failed: self.summary.failed,
            bytes: self.summary.bytes,
            complete,
        };
        store.save(&self.job, &cp)
    }
}
