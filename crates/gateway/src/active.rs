//! The active backend: one value that every new request reads, changed
//! atomically by the controller (in process) or by following the state file.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::watch;

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
/// (absent → `primary`) and applies it if it names one of `known`. Runs until
/// the task is dropped.
///
/// # Caveats
/// A value naming no configured backend is ignored (logged once per value).
pub async fn follow_state(
    active: ActiveBackend,
    state: State,
    primary: String,
    known: Vec<String>,
    interval: Duration,
) {
    let mut ignored: Option<String> = None;
    loop {
        match state.read_active().await {
            Ok(v) => {
                active.confirm(Instant::now(), interval * 3);
                let name = v.unwrap_or_else(|| primary.clone());
                if known.contains(&name) {
                    if active.set(&name) {
                        tracing::info!(active = %name, "active backend switched");
                    }
                } else if ignored.as_deref() != Some(name.as_str()) {
                    tracing::warn!(value = %name, "kv.active_backend names no configured backend; ignored");
                    ignored = Some(name);
                }
            }
            Err(e) => tracing::warn!(error = %e, "reading the active backend from the state file"),
        }
        tokio::time::sleep(interval).await;
    }
}
