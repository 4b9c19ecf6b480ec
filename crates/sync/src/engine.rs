//! One sync, check or dry run: diff the listings, copy what differs with
//! bounded, adaptive concurrency, checkpoint progress, then (mirror mode
//! only, and only when every safety rule allows it) delete.
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

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use cutover_s3::{S3Client, S3Error};
use serde::Serialize;
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinSet;

use crate::SyncError;
use crate::copy::Copier;
use crate::diff::{Cursor, Listing, MergeJoin, Pair, Verdict, spawn_lister};
use crate::location::{Filter, Location};
use crate::retry::{Limiter, RetryPolicy, with_retries};
use crate::store::{Checkpoint, Store};

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
    /// How often to emit [`Event::Progress`].
    pub progress_every: Option<Duration>,
    /// Also list the source once more, ahead of the diff, only to count its
    /// objects, so that [`Progress::source_total`] is known early (for a
    /// progress bar; costs one more listing of the source).
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
}

/// Why deletes were not done.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum Refusal {
    /// The source listing is empty (use `--allow-empty-source`).
    EmptySource { would_delete: u64 },
    /// More deletes than `--max-delete`.
    MaxDelete { would_delete: u64, max: u64 },
    /// More than 10 % of the destination (use `--force`).
    TooManyDeletes { would_delete: u64, destination_objects: u64 },
    /// Some copies failed; deletes wait for a clean run.
    CopiesFailed { failed: u64 },
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::EmptySource { would_delete } => write!(
                f,
                "refusing to delete {would_delete} objects: the source listing is empty (use --allow-empty-source)"
            ),
            Refusal::MaxDelete { would_delete, max } => {
                write!(f, "refusing to delete {would_delete} objects: more than --max-delete {max}")
            }
            Refusal::TooManyDeletes { would_delete, destination_objects } => write!(
                f,
                "refusing to delete {would_delete} of {destination_objects} destination objects (more than 10%; use --force)"
            ),
            Refusal::CopiesFailed { failed } => write!(f, "not deleting anything: {failed} copies failed"),
        }
    }
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RunOutcome {
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
    pub outcome: RunOutcome,
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
    pub refusal: Option<Refusal>,
    pub seconds: f64,
}

impl Summary {
    pub fn objects_per_second(&self) -> f64 {
        (self.copied + self.skipped + self.deleted) as f64 / self.seconds.max(1e-9)
    }

    pub fn megabytes_per_second(&self) -> f64 {
        self.bytes as f64 / 1e6 / self.seconds.max(1e-9)
    }
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
pub enum Event<'a> {
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
    Refused(&'a Refusal),
}

/// How one copy or compare task ended.
#[derive(Debug)]
enum TaskOutcome {
    Copied(u64),
    /// A checksum comparison found the objects equal.
    Same,
    /// A checksum comparison found them different (not copied: check or dry run).
    Differs,
    /// The source object was deleted after it was listed: nothing to copy.
    Vanished,
    Failed(SyncError),
}

#[derive(Debug)]
struct TaskDone {
    seq: u64,
    rel: String,
    outcome: TaskOutcome,
    /// The object's size and last-modified time.
    size: u64,
    last_modified: Option<SystemTime>,
    /// The object was counted as pending (new or changed) when listed.
    pending: bool,
}

/// The lowest key up to which everything is done, with copies in flight.
#[derive(Debug, Default)]
struct Watermark {
    /// In-flight (or failed) items: sequence → the source key before them.
    pending: BTreeMap<u64, Option<String>>,
    last_src: Option<String>,
    seq: u64,
}

impl Watermark {
    fn start(&mut self, rel: &str) -> u64 {
        self.seq += 1;
        self.pending.insert(self.seq, self.last_src.clone());
        self.last_src = Some(rel.to_string());
        self.seq
    }

    fn pass(&mut self, rel: &str) {
        self.last_src = Some(rel.to_string());
    }

    fn finish(&mut self, seq: u64) {
        self.pending.remove(&seq);
    }

    fn key(&self) -> Option<String> {
        match self.pending.first_key_value() {
            Some((_, before)) => before.clone(),
            None => self.last_src.clone(),
        }
    }
}

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

struct Run<'a> {
    src: &'a Side,
    dst: &'a Side,
    opts: &'a SyncOptions,
    store: Option<&'a Store>,
    report: &'a (dyn Fn(Event<'_>) + Sync),
    copier: Copier,
    summary: Summary,
    mark: Watermark,
    in_flight: u64,
    src_seen: u64,
    listing_done: bool,
    /// Source objects counted ahead of the diff; the count is final when
    /// the flag is set.
    counted: Option<Arc<(AtomicU64, AtomicBool)>>,
    /// Last-modified time of the oldest object whose copy failed.
    oldest_failed: Option<SystemTime>,
    started: Instant,
    last_progress: Instant,
    last_save: Instant,
    job: String,
}

/// Runs one sync, check or dry run. `store` holds checkpoints and open
/// uploads (none for checks). Returns an error when a listing failed (then
/// nothing was deleted) or the store failed.
pub async fn run(
    src: &Side,
    dst: &Side,
    opts: &SyncOptions,
    store: Option<&Store>,
    report: &(dyn Fn(Event<'_>) + Sync),
) -> Result<Summary, SyncError> {
    opts.validate()?;
    let job = job_name(&src.location, &dst.location);
    let writes = opts.mode != Mode::Check && !opts.dry_run;
    let store = store.filter(|_| writes);
    let limiter = Limiter::new(opts.concurrency);
    let copier = Copier {
        src: src.client.clone(),
        src_get: src.get_client.clone(),
        dst: dst.client.clone(),
        dst_get: dst.get_client.clone(),
        src_prefix: src.location.prefix.clone(),
        dst_prefix: dst.location.prefix.clone(),
        limiter,
        retry: opts.retry,
        multipart_threshold: opts.multipart_threshold,
        part_size: opts.part_size,
        store: store.cloned(),
        job: job.clone(),
    };
    let now = Instant::now();
    let run = Run {
        src,
        dst,
        opts,
        store,
        report,
        copier,
        summary: Summary {
            outcome: RunOutcome::Ok,
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
        },
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
    };
    run.go().await
}

impl Run<'_> {
    async fn go(mut self) -> Result<Summary, SyncError> {
        self.abort_leftovers().await?;
        let start_after = self.resume_point()?;
        let src = &self.src.location;
        let dst = &self.dst.location;
        let full = |prefix: &str| start_after.as_ref().map(|k| format!("{prefix}{k}"));
        // Listings use fresh connections too: Garage's list answers stall ~40 ms
        // on a reused connection (delayed ACK, see BASELINES.md).
        let lister = |side: &Side| Listing {
            client: side.get_client.clone(),
            side: side.location.to_string(),
            prefix: side.location.prefix.clone(),
            start_after: full(&side.location.prefix),
            page_size: self.opts.page_size,
            retry: self.opts.retry,
            stats: self.copier.limiter.stats().clone(),
        };
        let src_rx = spawn_lister(lister(self.src));
        let dst_rx = spawn_lister(lister(self.dst));
        let counter = self.opts.count_ahead.then(|| {
            let counted = Arc::new((AtomicU64::new(0), AtomicBool::new(false)));
            self.counted = Some(counted.clone());
            let rx = spawn_lister(lister(self.src));
            tokio::spawn(count_ahead(rx, src.prefix.len(), self.opts.filter.clone(), counted)).abort_handle()
        });
        let mut join = MergeJoin {
            src: Cursor::new(src.to_string(), src_rx, &src.prefix, self.opts.filter.clone()),
            dst: Cursor::new(dst.to_string(), dst_rx, &dst.prefix, self.opts.filter.clone()),
        };
        let (done_tx, mut done_rx) = mpsc::unbounded_channel::<TaskDone>();
        let mut tasks = JoinSet::new();
        // Large objects in flight; their parts share the limiter's permits.
        let big = Arc::new(Semaphore::new((self.opts.concurrency / 4).max(2)));
        let mut deletes: Vec<String> = Vec::new();

        let listing = loop {
            while let Ok(done) = done_rx.try_recv() {
                self.finish_task(done);
            }
            // Reap finished tasks: a finished task's memory lives until joined.
            while tasks.try_join_next().is_some() {}
            self.tick()?;
            let pair = match join.next().await {
                Ok(Some(p)) => p,
                Ok(None) => break Ok(()),
                Err(e) => break Err(e),
            };
            if pair.src.is_some() {
                self.src_seen += 1;
            }
            let pending = self.count_difference(&pair);
            let Pair { src, dst, verdict } = pair;
            match (verdict, src) {
                (Verdict::Extra, _) => {
                    let rel = dst.expect("extra has a destination").rel;
                    if self.opts.mode == Mode::Check || self.opts.dry_run {
                        (self.report)(Event::Difference { key: &rel, verdict });
                    }
                    if self.opts.mode == Mode::Mirror {
                        deletes.push(rel);
                    }
                }
                (Verdict::Same, Some(s)) => {
                    self.summary.skipped += 1;
                    self.mark.pass(&s.rel);
                }
                (Verdict::Changed | Verdict::Undecided, Some(s)) if self.opts.missing_only => {
                    self.summary.skipped += 1;
                    self.mark.pass(&s.rel);
                }
                (Verdict::Undecided, Some(s)) if !self.opts.checksum => {
                    self.summary.skipped += 1;
                    self.mark.pass(&s.rel);
                }
                (Verdict::New | Verdict::Changed, Some(s)) if !self.writes() => {
                    (self.report)(Event::Difference { key: &s.rel, verdict });
                    self.mark.pass(&s.rel);
                }
                (Verdict::New | Verdict::Changed | Verdict::Undecided, Some(s)) => {
                    let seq = self.mark.start(&s.rel);
                    let last_modified = s.last_modified.as_deref().and_then(parse_last_modified);
                    let copier = self.copier.clone();
                    let tx = done_tx.clone();
                    let compare = verdict == Verdict::Undecided;
                    let copy = self.writes();
                    let big_permit = if copier.is_multipart(s.size) && copy {
                        Some(big.clone().acquire_owned().await.expect("never closed"))
                    } else {
                        None
                    };
                    let permit = if big_permit.is_none() { Some(copier.limiter.acquire().await) } else { None };
                    self.in_flight += 1;
                    tasks.spawn(async move {
                        let outcome = copy_or_compare(&copier, &s.rel, s.size, compare, copy).await;
                        drop((permit, big_permit));
                        let done = TaskDone { seq, rel: s.rel, outcome, size: s.size, last_modified, pending };
                        let _ = tx.send(done);
                    });
                }
                (_, None) => {}
            }
        };
        self.summary.listed_source = join.src.listed;
        self.summary.listed_destination = join.dst.listed;
        self.listing_done = listing.is_ok();
        drop(done_tx);
        // Let copies in flight finish (and be checkpointed) even when a listing failed.
        loop {
            match tokio::time::timeout(Duration::from_millis(250), done_rx.recv()).await {
                Ok(Some(done)) => self.finish_task(done),
                Ok(None) => break,
                Err(_) => {}
            }
            self.tick()?;
        }
        while tasks.join_next().await.is_some() {}
        if let Some(c) = counter {
            c.abort();
        }
        listing?;

        if self.opts.mode == Mode::Mirror && !deletes.is_empty() {
            self.delete(deletes, self.src_seen, join.dst.listed).await;
        }
        self.summary.seconds = self.started.elapsed().as_secs_f64();
        let stats = self.copier.limiter.stats();
        (self.summary.retries, self.summary.throttled) = (stats.retries(), stats.throttled());
        self.summary.oldest_remaining = match self.summary.remaining_objects {
            0 => None,
            _ if self.writes() => self.oldest_failed,
            _ => self.summary.oldest_pending,
        };
        self.summary.outcome = if self.summary.failed > 0 {
            RunOutcome::Failed
        } else if self.summary.refusal.is_some() {
            RunOutcome::Refused
        } else if self.opts.mode == Mode::Check && self.summary.pending_objects + self.summary.extra > 0 {
            RunOutcome::Differences
        } else {
            RunOutcome::Ok
        };
        self.save(self.summary.failed == 0)?;
        Ok(self.summary)
    }

    fn writes(&self) -> bool {
        self.opts.mode != Mode::Check && !self.opts.dry_run
    }

    /// Aborts the multipart uploads an interrupted run of this job left open.
    async fn abort_leftovers(&mut self) -> Result<(), SyncError> {
        let Some(store) = self.store else { return Ok(()) };
        for up in store.open_uploads(&self.job)? {
            match self.dst.client.abort_multipart(&up.key, &up.upload_id).await {
                Ok(()) => {}
                // Already completed or aborted.
                Err(e) if e.status() == Some(404) => {}
                Err(e) => {
                    tracing::warn!(key = %up.key, error = %e, "could not abort a leftover multipart upload");
                    continue;
                }
            }
            store.forget_upload(&self.job, &up.upload_id)?;
            self.summary.aborted_uploads += 1;
            (self.report)(Event::AbortedUpload { key: &up.key });
        }
        Ok(())
    }

    /// With `resume`: the key after which to continue, and the counters so far.
    fn resume_point(&mut self) -> Result<Option<String>, SyncError> {
        let Some(store) = self.store.filter(|_| self.opts.resume) else { return Ok(None) };
        let Some(cp) = store.load(&self.job)?.filter(|c| !c.complete) else { return Ok(None) };
        self.summary.copied = cp.copied;
        self.summary.skipped = cp.skipped;
        self.summary.bytes = cp.bytes;
        let Some(after) = cp.last_key else { return Ok(None) };
        (self.report)(Event::Resumed { after: &after });
        self.summary.resumed_after = Some(after.clone());
        self.mark.last_src = Some(after.clone());
        // A mirror lists everything again: deletes need the whole picture;
        // what was copied already compares equal and is skipped.
        Ok((self.opts.mode != Mode::Mirror).then_some(after))
    }

    /// Counts a difference; true when it is a source object now pending.
    fn count_difference(&mut self, pair: &Pair) -> bool {
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
        if done.pending {
            self.summary.remaining_objects -= 1;
            self.summary.remaining_bytes -= done.size;
        }
    }

    fn finish_task(&mut self, done: TaskDone) {
        self.in_flight -= 1;
        match &done.outcome {
            TaskOutcome::Copied(bytes) => {
                self.summary.copied += 1;
                self.summary.bytes += bytes;
                self.resolve_pending(&done);
                self.mark.finish(done.seq);
            }
            TaskOutcome::Same => {
                self.summary.skipped += 1;
                self.mark.finish(done.seq);
            }
            TaskOutcome::Differs => {
                self.summary.changed += 1;
                self.add_pending(done.size, done.last_modified);
                (self.report)(Event::Difference { key: &done.rel, verdict: Verdict::Changed });
                self.mark.finish(done.seq);
            }
            TaskOutcome::Vanished => {
                tracing::info!(key = %done.rel, "source object deleted after listing; skipped");
                self.summary.skipped += 1;
                self.resolve_pending(&done);
                self.mark.finish(done.seq);
            }
            TaskOutcome::Failed(e) => {
                // Stays pending: the checkpoint never moves past a failure.
                self.summary.failed += 1;
                if done.pending
                    && let Some(t) = done.last_modified
                {
                    self.oldest_failed = Some(self.oldest_failed.map_or(t, |o| o.min(t)));
                }
                (self.report)(Event::Failed { key: &done.rel, error: e });
            }
        }
    }

    /// Progress lines and checkpoints, when they are due.
    fn tick(&mut self) -> Result<(), SyncError> {
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
        (self.report)(Event::Progress(Progress {
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
                Some(c) if c.1.load(Ordering::Relaxed) => Some(c.0.load(Ordering::Relaxed)),
                _ => None,
            },
            pending_objects: s.pending_objects,
            pending_bytes: s.pending_bytes,
            remaining_objects: s.remaining_objects,
            remaining_bytes: s.remaining_bytes,
            oldest_pending: s.oldest_pending,
            retries: self.copier.limiter.stats().retries(),
        }));
    }

    fn save(&self, complete: bool) -> Result<(), SyncError> {
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

    /// Applies the safety rules, then deletes (or, dry run, reports).
    async fn delete(&mut self, keys: Vec<String>, src_objects: u64, dst_objects: u64) {
        let n = keys.len() as u64;
        let refusal = if self.summary.failed > 0 {
            Some(Refusal::CopiesFailed { failed: self.summary.failed })
        } else if src_objects == 0 && !self.opts.allow_empty_source {
            Some(Refusal::EmptySource { would_delete: n })
        } else if let Some(max) = self.opts.max_delete.filter(|m| n > *m) {
            Some(Refusal::MaxDelete { would_delete: n, max })
        } else if !self.opts.force && n * 10 > dst_objects {
            Some(Refusal::TooManyDeletes { would_delete: n, destination_objects: dst_objects })
        } else {
            None
        };
        if let Some(r) = refusal {
            (self.report)(Event::Refused(&r));
            self.summary.refusal = Some(r);
            return;
        }
        if self.opts.dry_run {
            for k in &keys {
                (self.report)(Event::WouldDelete { key: k });
            }
            return;
        }
        let mut tasks = JoinSet::new();
        for rel in keys {
            let permit = self.copier.limiter.acquire().await;
            let (client, key, limiter, retry) = (
                self.dst.client.clone(),
                format!("{}{rel}", self.dst.location.prefix),
                self.copier.limiter.clone(),
                self.opts.retry,
            );
            tasks.spawn(async move {
                let _permit = permit;
                let r = with_retries(retry, &limiter, || async {
                    client
                        .delete_object(&key)
                        .await
                        .map(|_| ())
                        .map_err(|source| SyncError::Delete { key: key.clone(), source: Box::new(source) })
                })
                .await;
                (rel, r)
            });
        }
        while let Some(done) = tasks.join_next().await {
            match done.expect("delete task does not panic") {
                (_, Ok(())) => self.summary.deleted += 1,
                (rel, Err(e)) => {
                    self.summary.failed += 1;
                    (self.report)(Event::Failed { key: &rel, error: &e });
                }
            }
        }
    }
}

/// Counts the selected objects of a listing (`count_ahead`); gives up
/// quietly on an error (the diff's own listing reports it).
async fn count_ahead(
    mut rx: mpsc::Receiver<Result<Vec<cutover_s3::client::ListedObject>, SyncError>>,
    prefix_len: usize,
    filter: Filter,
    counted: Arc<(AtomicU64, AtomicBool)>,
) {
    while let Some(page) = rx.recv().await {
        let Ok(page) = page else { return };
        let n = page.iter().filter(|o| o.key.get(prefix_len..).is_some_and(|rel| filter.selects(rel))).count();
        counted.0.fetch_add(n as u64, Ordering::Relaxed);
    }
    counted.1.store(true, Ordering::Relaxed);
}

async fn copy_or_compare(copier: &Copier, rel: &str, size: u64, compare: bool, copy: bool) -> TaskOutcome {
    if compare {
        let src_key = format!("{}{rel}", copier.src_prefix);
        let dst_key = format!("{}{rel}", copier.dst_prefix);
        let (a, b) = tokio::join!(copier.hash(&copier.src_get, &src_key), copier.hash(&copier.dst_get, &dst_key));
        match (a, b) {
            (Ok(a), Ok(b)) if a == b => return TaskOutcome::Same,
            (Ok(_), Ok(_)) if !copy => return TaskOutcome::Differs,
            (Ok(_), Ok(_)) => {}
            (Err(e), _) | (_, Err(e)) => return TaskOutcome::Failed(e),
        }
    }
    match copier.copy(rel, size).await {
        Ok(bytes) => TaskOutcome::Copied(bytes),
        Err(SyncError::Copy { source, .. })
            if matches!(*source, S3Error::Response { status: 404, op: "GetObject" | "HeadObject", .. }) =>
        {
            TaskOutcome::Vanished
        }
        Err(e) => TaskOutcome::Failed(e),
    }
}

/// The current replication lag from `src` to `dst` (a check without output).
pub async fn lag(src: &Side, dst: &Side, filter: Filter) -> Result<Lag, SyncError> {
    let opts = SyncOptions { mode: Mode::Check, filter, ..SyncOptions::default() };
    Ok(run(src, dst, &opts, None, &|_| {}).await?.lag())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_watermark_never_passes_an_unfinished_copy() {
        let mut m = Watermark::default();
        m.pass("a");
        let b = m.start("b");
        m.pass("c");
        let d = m.start("d");
        assert_eq!(m.key().as_deref(), Some("a"));
        m.finish(d);
        assert_eq!(m.key().as_deref(), Some("a"));
        m.finish(b);
        assert_eq!(m.key().as_deref(), Some("d"));
    }

    #[test]
    fn parses_last_modified() {
        let t = parse_last_modified("2024-05-01T12:00:00.000Z").unwrap();
        let t2 = parse_last_modified("2024-05-01T12:00:01Z").unwrap();
        assert_eq!(t2.duration_since(t).unwrap(), Duration::from_secs(1));
        assert!(parse_last_modified("yesterday").is_none());
    }
}
