//! The active backend: one value that every new request reads, changed
//! atomically by the controller (in process) or by following the state file.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::error::GatewayError;
use crate::state::State;

/// A cheap, cloneable handle to the name of the active backend.
///
/// # Guarantees
/// A request reads the active backend once, when it is routed; a switch
/// applies to every request routed after [`ActiveBackend::set`] returns, and
/// never to one in flight.
#[derive(Debug, Clone)]
pub struct ActiveBackend {
    tx: Arc<watch::Sender<String>>,
    /// When a follower last confirmed the value with its source.
    confirmed: Arc<Mutex<Option<Confirmed>>>,
}

#[derive(Debug, Clone, Copy)]
struct Confirmed {
    at: Instant,
    stale_after: Duration,
}

/// How fresh the served value is.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Freshness {
    /// Since a follower last confirmed the value with its source (etcd or
    /// the state file); `None` when no follower runs (the controller in
    /// this process sets it) or none confirmed it yet.
    pub age: Option<Duration>,
    /// The age is past what the follower allows: the source is away and
    /// the last known value is being served.
    pub stale: bool,
}

impl ActiveBackend {
    pub fn new(initial: impl Into<String>) -> Self {
        Self { tx: Arc::new(watch::Sender::new(initial.into())), confirmed: Arc::default() }
    }

    /// A follower confirmed the value with its source at `at`; past
    /// `stale_after` without another confirmation the value is stale.
    pub fn confirm(&self, at: Instant, stale_after: Duration) {
        *self.confirmed.lock().unwrap_or_else(|e| e.into_inner()) = Some(Confirmed { at, stale_after });
    }

    /// How fresh the value is now.
    pub fn freshness(&self) -> Freshness {
        let confirmed = *self.confirmed.lock().unwrap_or_else(|e| e.into_inner());
        match confirmed {
            None => Freshness { age: None, stale: false },
            Some(c) => {
                let age = c.at.elapsed();
                Freshness { age: Some(age), stale: age > c.stale_after }
            }
        }
    }

    /// The active backend now.
    pub fn get(&self) -> String {
        self.tx.borrow().clone()
    }

    /// Runs `f` with the active backend's name, without copying it (the
    /// name cannot change meanwhile: keep `f` short).
    pub fn with<R>(&self, f: impl FnOnce(&str) -> R) -> R {
        f(&self.tx.borrow())
    }

    /// Makes `name` the active backend; returns whether it changed.
    pub fn set(&self, name: &str) -> bool {
        self.tx.send_if_modified(|cur| {
            if cur == name {
                false
            } else {
                *cur = name.to_string();
                true
            }
        })
    }

    /// A receiver that sees every switch.
    pub fn subscribe(&self) -> watch::Receiver<String> {
        self.tx.subscribe()
    }
}

/// Follows `kv.active_backend` in the state file: every `interval`, reads it
/// (absent → `primary`) and applies it if it names one of `known`. Starts
/// the reads at once; the future returned runs until it is dropped, and the
/// reads stop with it.
///
/// The reads run on a thread of their own that sleeps between them: one
/// timer wake-up per read. Run from the runtime (a blocking-pool task per
/// read, a worker woken for its answer) a read cost 140 µs of CPU on this
/// kind of machine, 0.7 ms a second at the default 200 ms: the whole idle
/// gateway's CPU twice over (docs/bench-gateway.md, "An idle gateway that
/// reads less").
///
/// # Errors
/// [`GatewayError::Task`] when the thread cannot be started.
///
/// # Caveats
/// A value naming no configured backend is ignored (logged once per value).
/// The thread ends within one read of the future being dropped.
pub fn follow_state(
    active: ActiveBackend,
    state: State,
    primary: String,
    known: Vec<String>,
    interval: Duration,
) -> Result<impl std::future::Future<Output = ()> + Send + 'static, GatewayError> {
    let mut follower = Follower { active, primary, known, interval, ignored: None };
    // Dropped with the future: the thread's wait ends at once.
    let (stop, stopped) = std::sync::mpsc::channel::<()>();
    let (done, ended) = tokio::sync::oneshot::channel::<()>();
    std::thread::Builder::new()
        .name("cutover-state-follow".into())
        .spawn(move || {
            loop {
                follower.apply(state.read_active_blocking());
                match stopped.recv_timeout(follower.interval) {
                    Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
                    _ => break,
                }
            }
            let _ = done.send(());
        })
        .map_err(|e| GatewayError::Task { detail: format!("starting the state file's follower thread: {e}") })?;
    Ok(async move {
        let _stop = stop;
        // The thread ends only when told to (or if a read panicked).
        let _ = ended.await;
    })
}

/// Applies what a read of the state file found.
struct Follower {
    active: ActiveBackend,
    primary: String,
    known: Vec<String>,
    interval: Duration,
    /// The last value ignored (naming no configured backend), logged once.
    ignored: Option<String>,
}

impl Follower {
    fn apply(&mut self, read: Result<Option<String>, GatewayError>) {
        match read {
            Ok(v) => {
                self.active.confirm(Instant::now(), self.interval * 3);
                let name = v.unwrap_or_else(|| self.primary.clone());
                if self.known.contains(&name) {
                    if self.active.set(&name) {
                        tracing::info!(active = %name, "active backend switched");
                    }
                } else if self.ignored.as_deref() != Some(name.as_str()) {
                    tracing::warn!(value = %name, "kv.active_backend names no configured backend; ignored");
                    self.ignored = Some(name);
                }
            }
            Err(e) => tracing::warn!(error = %e, "reading the active backend from the state file"),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::{ActiveBackend, follow_state};
    use crate::state::State;
    use crate::testing::until;

    /// Threads of this process named as the follower's (the kernel keeps 15 bytes of a name).
    fn follower_threads() -> usize {
        let tasks = std::fs::read_dir("/proc/self/task").unwrap();
        tasks
            .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
            .filter(|name| name.trim_end() == "cutover-state-f")
            .count()
    }

    #[tokio::test]
    async fn the_follower_applies_the_state_file_on_its_thread_and_ends_it_when_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let state = State::open(&dir.path().join("state.db")).unwrap();
        let active = ActiveBackend::new("primary");
        let known = vec!["primary".to_string(), "secondary".to_string()];
        let following =
            follow_state(active.clone(), state.clone(), "primary".into(), known, Duration::from_millis(10)).unwrap();
        let task = tokio::spawn(following);
        assert!(until(follower_threads, |n| *n == 1).await.is_some(), "the follower's thread did not start");
        assert!(until(|| active.freshness().age, Option::is_some).await.is_some(), "the value was not confirmed");
        assert!(!active.freshness().stale);
        state.write_active("secondary").await.unwrap();
        assert!(until(|| active.get(), |a| a == "secondary").await.is_some(), "not switched to the file's value");
        // A name no backend has is ignored; the last good value is served.
        state.write_active("nowhere").await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(active.get(), "secondary");
        state.write_active("primary").await.unwrap();
        assert!(until(|| active.get(), |a| a == "primary").await.is_some(), "not switched back");
        task.abort();
        let _ = task.await;
        assert!(until(follower_threads, |n| *n == 0).await.is_some(), "the follower's thread did not end");
    }
}
