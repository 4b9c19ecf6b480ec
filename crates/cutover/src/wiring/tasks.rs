//! The tasks of one running cutover: every one of them in a [`JoinSet`],
//! stopped by a cancellation token, listeners first.
//!
//! # Guarantees
//! - [`Tasks::shutdown`] first stops the listeners (they close at once and
//!   let the requests in progress finish, within their own drain times),
//!   then cancels every other task and waits for it at most [`STOP_WAIT`];
//!   what is still running then is aborted.
//! - Dropping [`Tasks`] without [`Tasks::shutdown`] aborts every task.
//! - A task that panicked is logged when it is reaped, never silently lost.

use std::future::Future;
use std::time::Duration;

use tokio::task::{JoinError, JoinHandle, JoinSet};
use tokio_util::sync::CancellationToken;

/// How long [`Tasks::shutdown`] waits for the tasks that are not listeners.
const STOP_WAIT: Duration = Duration::from_secs(5);

/// Every task of a running cutover.
#[derive(Debug, Default)]
pub struct Tasks {
    /// The listeners (API, gateway): they drain on `stop_listening`.
    serving: JoinSet<()>,
    /// Everything else: dropped at its next await once `cancel` fires.
    others: JoinSet<()>,
    stop_listening: CancellationToken,
    cancel: CancellationToken,
}

impl Tasks {
    pub fn new() -> Self {
        Self::default()
    }

    /// Runs `task` until it ends or [`Tasks::shutdown`] cancels it.
    pub fn spawn(&mut self, task: impl Future<Output = ()> + Send + 'static) {
        let cancel = self.cancel.clone();
        self.others.spawn(async move {
            tokio::select! {
                _ = cancel.cancelled() => {}
                _ = task => {}
            }
        });
    }

    /// Resolves when the listeners must stop: what a listener takes as its
    /// graceful-shutdown future.
    pub fn listeners_stop(&self) -> impl Future<Output = ()> + Send + 'static {
        self.stop_listening.clone().cancelled_owned()
    }

    /// Runs a listener, which must end on its own after
    /// [`Tasks::listeners_stop`] resolves (closing its socket and draining
    /// its requests); it is not cancelled.
    pub fn spawn_listener(&mut self, serve: impl Future<Output = ()> + Send + 'static) {
        self.serving.spawn(serve);
    }

    /// Tasks already spawned elsewhere (the signal watchers): aborted when
    /// the others are cancelled.
    pub fn adopt(&mut self, handles: Vec<JoinHandle<()>>) {
        if handles.is_empty() {
            return;
        }
        let mut adopted = AbortOnDrop(handles);
        self.spawn(async move {
            for handle in &mut adopted.0 {
                reaped(handle.await);
            }
        });
    }

    /// Stops the listeners and waits for them to drain, then cancels every
    /// other task and waits for it (at most [`STOP_WAIT`]).
    pub async fn shutdown(self) {
        self.shutdown_within(STOP_WAIT).await;
    }

    async fn shutdown_within(mut self, wait: Duration) {
        self.stop_listening.cancel();
        while let Some(r) = self.serving.join_next().await {
            reaped(r);
        }
        self.cancel.cancel();
        let others = &mut self.others;
        let joined = tokio::time::timeout(wait, async {
            while let Some(r) = others.join_next().await {
                reaped(r);
            }
        })
        .await;
        if joined.is_err() {
            tracing::warn!(left = self.others.len(), "tasks still running {wait:?} after the stop; aborting them");
            self.others.abort_all();
        }
    }
}

/// Logs a task that did not end normally (a panic; an abort is expected).
fn reaped(r: Result<(), JoinError>) {
    if let Err(e) = r
        && e.is_panic()
    {
        tracing::error!(error = %e, "a task panicked");
    }
}

/// Aborts the tasks it holds when dropped.
struct AbortOnDrop(Vec<JoinHandle<()>>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        for handle in &self.0 {
            handle.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    #[tokio::test]
    async fn listeners_drain_while_the_other_tasks_still_run() {
        let mut tasks = Tasks::new();
        let other_ran = Arc::new(AtomicBool::new(false));
        let seen = other_ran.clone();
        tasks.spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(5)).await;
                seen.store(true, Ordering::SeqCst);
            }
        });
        let drained = Arc::new(AtomicBool::new(false));
        let (stop, flag, other) = (tasks.listeners_stop(), drained.clone(), other_ran.clone());
        tasks.spawn_listener(async move {
            stop.await;
            other.store(false, Ordering::SeqCst);
            // A request in progress takes a while to finish.
            tokio::time::sleep(Duration::from_millis(200)).await;
            assert!(other.load(Ordering::SeqCst), "the other task ran during the drain");
            flag.store(true, Ordering::SeqCst);
        });
        tasks.shutdown().await;
        assert!(drained.load(Ordering::SeqCst));
    }

    #[tokio::test]
    async fn adopted_tasks_are_aborted_on_shutdown() {
        let mut tasks = Tasks::new();
        let forever = tokio::spawn(std::future::pending::<()>());
        let probe = forever.abort_handle();
        tasks.adopt(vec![forever]);
        tasks.shutdown().await;
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert!(probe.is_finished());
    }

    #[tokio::test]
    async fn a_task_that_does_not_stop_is_aborted_after_the_wait() {
        let mut tasks = Tasks::new();
        let finished = Arc::new(AtomicBool::new(false));
        let flag = finished.clone();
        // Spawned without the cancellation: it does not stop on its own.
        tasks.others.spawn(async move {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            flag.store(true, Ordering::SeqCst);
        });
        let start = std::time::Instant::now();
        tasks.shutdown_within(Duration::from_millis(100)).await;
        assert!(start.elapsed() < Duration::from_secs(5), "{:?}", start.elapsed());
        assert!(!finished.load(Ordering::SeqCst));
    }
}
