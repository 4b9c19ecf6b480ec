//! The copy workers: one task per object to copy or compare, bounded by the
//! limiter's permits (and, for multipart objects, by a smaller semaphore),
//! each reporting how it ended over a channel.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use cutover_s3::S3Error;
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinSet;

use crate::SyncError;
use crate::copy::Copier;

/// How one copy or compare task ended.
#[derive(Debug)]
pub(super) enum TaskOutcome {
    Copied(u64),
    /// A checksum comparison found the objects equal.
    Same,
    /// A checksum comparison found them different (not copied: check or dry run).
    Differs,
    /// The source object was deleted after it was listed: nothing to copy.
    Vanished,
    Failed(SyncError),
}

/// One object handed to a worker.
#[derive(Debug)]
pub(super) struct CopyJob {
    /// The watermark's sequence number of the object.
    pub seq: u64,
    pub rel: String,
    /// The object's size and last-modified time.
    pub size: u64,
    pub last_modified: Option<SystemTime>,
    /// The object was counted as pending (new or changed) when listed.
    pub pending: bool,
    /// Compare by checksum first (the ETags could not decide).
    pub compare: bool,
    /// Copy when it differs (false: check or dry run).
    pub copy: bool,
}

/// A finished job.
#[derive(Debug)]
pub(super) struct TaskDone {
    pub job: CopyJob,
    pub outcome: TaskOutcome,
}

/// What waiting for the next finished job gave.
pub(super) enum Wait {
    Finished(TaskDone),
    /// Nothing finished within 250 ms.
    TimedOut,
    /// Every job has reported (after [`Workers::close`]).
    AllDone,
}

/// The running copy tasks and the channel they report on.
pub(super) struct Workers {
    copier: Copier,
    tasks: JoinSet<()>,
    done_tx: Option<mpsc::UnboundedSender<TaskDone>>,
    done_rx: mpsc::UnboundedReceiver<TaskDone>,
    /// Large objects in flight; their parts share the limiter's permits.
    big: Arc<Semaphore>,
}

impl Workers {
    pub fn new(copier: Copier, concurrency: usize) -> Self {
        let (done_tx, done_rx) = mpsc::unbounded_channel();
        Workers {
            copier,
            tasks: JoinSet::new(),
            done_tx: Some(done_tx),
            done_rx,
            big: Arc::new(Semaphore::new((concurrency / 4).max(2))),
        }
    }

    /// Waits for a permit, then starts `job`.
    pub async fn spawn(&mut self, job: CopyJob) {
        let Some(tx) = self.done_tx.clone() else { return };
        let copier = self.copier.clone();
        let big_permit = if copier.is_multipart(job.size) && job.copy {
            Some(self.big.clone().acquire_owned().await.expect("never closed"))
        } else {
            None
        };
        let permit = if big_permit.is_none() { Some(copier.limiter.acquire().await) } else { None };
        self.tasks.spawn(async move {
            let outcome = copy_or_compare(&copier, &job.rel, job.size, job.compare, job.copy).await;
            drop((permit, big_permit));
            // The receiver lives until every task is joined.
            let _ = tx.send(TaskDone { job, outcome });
        });
    }

    /// A job that finished already, without waiting; also reaps finished
    /// tasks (a finished task's memory lives until joined).
    pub fn try_finished(&mut self) -> Option<TaskDone> {
        let done = self.done_rx.try_recv().ok();
        if done.is_none() {
            while self.tasks.try_join_next().is_some() {}
        }
        done
    }

    /// No more jobs: from now on, [`Workers::next_finished`] ends once every
    /// job has reported.
    pub fn close(&mut self) {
        self.done_tx = None;
    }

    /// The next finished job, waiting at most 250 ms.
    pub async fn next_finished(&mut self) -> Wait {
        match tokio::time::timeout(Duration::from_millis(250), self.done_rx.recv()).await {
            Ok(Some(done)) => Wait::Finished(done),
            Ok(None) => Wait::AllDone,
            Err(_) => Wait::TimedOut,
        }
    }

    /// Waits until every task has ended.
    pub async fn join(&mut self) {
        while self.tasks.join_next().await.is_some() {}
    }
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
