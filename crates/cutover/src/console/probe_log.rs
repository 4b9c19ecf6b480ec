//! Probe samples to the node-local store, off the async workers: the
//! probe loops hand each cycle to a writer thread over a bounded queue; the
//! thread writes what arrived within a second in one transaction
//! ([`cutover_store::HealthHistory::record_probe_samples`], which also prunes). A full
//! queue never blocks a probe: the sample is dropped (logged at debug; the
//! in-memory copy still has it).

use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::time::{Duration, Instant};

use cutover_store::{ProbeSample, Store};

/// Samples waiting for the writer.
const QUEUE: usize = 4096;
/// How long the writer gathers a batch after its first sample.
const BATCH_WINDOW: Duration = Duration::from_secs(1);

/// The handle the probe loops record with.
#[derive(Debug)]
pub struct ProbeLog {
    tx: SyncSender<ProbeSample>,
}

impl ProbeLog {
    /// Starts the writer thread on `store`; it ends when the log is dropped.
    pub fn start(store: Arc<dyn Store>) -> Self {
        let (tx, rx) = std::sync::mpsc::sync_channel(QUEUE);
        let spawned =
            std::thread::Builder::new().name("probe-log".into()).spawn(move || write_loop(store.as_ref(), rx));
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "the probe sample writer did not start; samples stay in memory only");
        }
        Self { tx }
    }

    /// Queues one sample for the store.
    pub fn record(&self, s: ProbeSample) {
        match self.tx.try_send(s) {
            Ok(()) | Err(TrySendError::Disconnected(_)) => {}
            Err(TrySendError::Full(_)) => tracing::debug!("probe sample queue full; a sample is not stored"),
        }
    }
}

fn write_loop(store: &dyn Store, rx: Receiver<ProbeSample>) {
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        let deadline = Instant::now() + BATCH_WINDOW;
        let mut open = true;
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match rx.recv_timeout(left) {
                Ok(s) => batch.push(s),
                Err(RecvTimeoutError::Timeout) => break,
                Err(RecvTimeoutError::Disconnected) => {
                    open = false;
                    break;
                }
            }
        }
        if let Err(e) = store.record_probe_samples(&batch) {
            tracing::warn!(error = %e, samples = batch.len(), "storing probe samples failed");
        }
        if !open {
            return;
        }
    }
}
