//! Refused API requests in the audit log, without the controller: a writer
//! thread with its own SQLite connection and a bounded queue, aggregating per
//! (actor, route, status). The first refusal of a key is written at once;
//! after that at most one entry per window carries the `count` of refusals
//! since the last one. A full queue never blocks the caller: the refusal is
//! counted and folded into the next entry. So a flood of refusals costs a
//! few rows and never holds a lock the probes or the controller need.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::time::{Duration, Instant, SystemTime};

use serde_json::json;

use crate::{Fence, SqliteStore, StoreExt};

/// Refusals waiting for the writer; more are counted as dropped.
const QUEUE: usize = 1024;
/// Distinct (actor, route, status) keys kept; refusals beyond fold into one
/// key per status.
const MAX_KEYS: usize = 512;

/// One refused request. `route` must be bounded (a route template such as
/// `/v1/incidents/{id}`, never the raw path) and `actor` a configured token
/// name or a fixed word, so that the number of keys stays small.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denial {
    pub actor: String,
    pub route: String,
    pub method: String,
    pub status: u16,
    pub why: String,
}

/// Counters of the writer, for metrics.
#[derive(Debug, Default)]
pub struct DenialStats {
    /// Refusals that found the queue full (still counted in the log).
    pub dropped: AtomicU64,
    /// Audit entries written.
    pub written: AtomicU64,
    /// Audit entries that could not be written (logged).
    pub failed: AtomicU64,
}

/// The handle the API records refusals with. Cloning shares the writer.
#[derive(Debug, Clone)]
pub struct DenialLog {
    tx: SyncSender<Denial>,
    stats: Arc<DenialStats>,
    /// Dropped refusals not yet folded into the log, by status (401, 403, other).
    pending_drops: Arc<[AtomicU64; 3]>,
}

type Key = (String, String, u16);

#[derive(Debug)]
struct Slot {
    method: String,
    why: String,
    last_write: Instant,
    /// Refusals since the last entry.
    pending: u64,
    since: Option<SystemTime>,
}

/// An entry to write: the key, what to say, and how many refusals it covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Flush {
    pub key: Key,
    pub method: String,
    pub why: String,
    pub count: u64,
    pub since: SystemTime,
}

/// The aggregation, without threads or clocks of its own.
#[derive(Debug)]
pub(crate) struct Aggregator {
    window: Duration,
    slots: HashMap<Key, Slot>,
}

impl Aggregator {
    pub(crate) fn new(window: Duration) -> Self {
        Self { window, slots: HashMap::new() }
    }

    /// Records `count` refusals of `d` at `now`; returns an entry to write
    /// when the key is new or its window has passed.
    pub(crate) fn record(&mut self, d: Denial, count: u64, now: Instant, at: SystemTime) -> Option<Flush> {
        let mut key = (d.actor, d.route, d.status);
        if !self.slots.contains_key(&key) && self.slots.len() >= MAX_KEYS {
            key = ("(many)".into(), "(many)".into(), d.status);
        }
        match self.slots.get_mut(&key) {
            None => {
                let slot =
                    Slot { method: d.method.clone(), why: d.why.clone(), last_write: now, pending: 0, since: None };
                self.slots.insert(key.clone(), slot);
                Some(Flush { key, method: d.method, why: d.why, count, since: at })
            }
            Some(slot) => {
                slot.pending += count;
                slot.since.get_or_insert(at);
                slot.method = d.method;
                slot.why = d.why;
                if now.saturating_duration_since(slot.last_write) >= self.window {
                    Some(take(&key, slot, now))
                } else {
                    None
                }
            }
        }
    }

    /// Entries whose window has passed with refusals pending.
    pub(crate) fn due(&mut self, now: Instant) -> Vec<Flush> {
        let window = self.window;
        self.slots
            .iter_mut()
            .filter(|(_, s)| s.pending > 0 && now.saturating_duration_since(s.last_write) >= window)
            .map(|(k, s)| take(k, s, now))
            .collect()
    }

    /// Every pending count, whatever the window (at shutdown).
    pub(crate) fn drain(&mut self, now: Instant) -> Vec<Flush> {
        self.slots.iter_mut().filter(|(_, s)| s.pending > 0).map(|(k, s)| take(k, s, now)).collect()
    }
}

fn take(key: &Key, slot: &mut Slot, now: Instant) -> Flush {
    let f = Flush {
        key: key.clone(),
        method: slot.method.clone(),
        why: slot.why.clone(),
        count: slot.pending,
        since: slot.since.take().unwrap_or_else(SystemTime::now),
    };
    slot.pending = 0;
    slot.last_write = now;
    f
}

impl DenialLog {
    /// Starts the writer thread on `store` (open a store of its own on the
    /// same file for it, so that it has its own connection), writing at most
    /// one entry per `window` per key.
    pub fn start(store: SqliteStore, window: Duration) -> Self {
        let (tx, rx) = std::sync::mpsc::sync_channel(QUEUE);
        let stats = Arc::new(DenialStats::default());
        let pending_drops: Arc<[AtomicU64; 3]> = Arc::new(Default::default());
        let (s, d) = (stats.clone(), pending_drops.clone());
        std::thread::Builder::new()
            .name("cutover-denials".into())
            .spawn(move || writer(store, rx, window, &s, &d))
            .expect("spawning the audit writer thread");
        Self { tx, stats, pending_drops }
    }

    /// Queues a refusal; never blocks. A full queue counts it instead.
    pub fn record(&self, d: Denial) {
        let status = d.status;
        match self.tx.try_send(d) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                self.stats.dropped.fetch_add(1, Ordering::Relaxed);
                self.pending_drops[drop_slot(status)].fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    pub fn stats(&self) -> &DenialStats {
        &self.stats
    }
}

fn drop_slot(status: u16) -> usize {
    match status {
        401 => 0,
        403 => 1,
        _ => 2,
    }
}

fn writer(store: SqliteStore, rx: Receiver<Denial>, window: Duration, stats: &DenialStats, drops: &[AtomicU64; 3]) {
    let mut agg = Aggregator::new(window);
    let write = |f: Flush| {
        let (actor, route, status) = &f.key;
        let mut detail = json!({
            "path": route, "method": f.method, "status": status, "why": f.why, "count": f.count,
        });
        if f.count > 1 {
            detail["since"] = json!(cutover_core::time::rfc3339(f.since));
        }
        match store.audit(&Fence::local(), SystemTime::now(), actor, "api.denied", &detail) {
            Ok(_) => stats.written.fetch_add(1, Ordering::Relaxed),
            Err(e) => {
                tracing::error!(error = %e, actor = %actor, path = %route, "could not audit refused API requests");
                stats.failed.fetch_add(1, Ordering::Relaxed)
            }
        };
    };
    let mut last_due = Instant::now();
    loop {
        let msg = rx.recv_timeout(Duration::from_millis(250));
        let now = Instant::now();
        match msg {
            Ok(d) => {
                if let Some(f) = agg.record(d, 1, now, SystemTime::now()) {
                    write(f);
                }
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => {
                fold_drops(&mut agg, drops, now).into_iter().for_each(write);
                agg.drain(now).into_iter().for_each(write);
                return;
            }
        }
        if now.duration_since(last_due) >= Duration::from_millis(250) {
            last_due = now;
            fold_drops(&mut agg, drops, now).into_iter().for_each(write);
            agg.due(now).into_iter().for_each(write);
        }
    }
}

/// Refusals that found the queue full join the aggregate as their own key;
/// returns the entries due at once.
fn fold_drops(agg: &mut Aggregator, drops: &[AtomicU64; 3], now: Instant) -> Vec<Flush> {
    let mut out = Vec::new();
    for (i, status) in [401u16, 403, 0].into_iter().enumerate() {
        let n = drops[i].swap(0, Ordering::Relaxed);
        if n > 0 {
            let d = Denial {
                actor: "(queue full)".into(),
                route: "(any)".into(),
                method: "(any)".into(),
                status,
                why: "refused while the audit queue was full; actor and path not recorded".into(),
            };
            out.extend(agg.record(d, n, now, SystemTime::now()));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn denial(actor: &str) -> Denial {
        Denial { actor: actor.into(), route: "/v1/status".into(), method: "GET".into(), status: 401, why: "no".into() }
    }

    #[test]
    fn the_first_refusal_is_written_at_once_then_one_entry_per_window() {
        let t0 = Instant::now();
        let at = SystemTime::now();
        let mut a = Aggregator::new(Duration::from_secs(60));
        let first = a.record(denial("anonymous"), 1, t0, at).expect("written at once");
        assert_eq!(first.count, 1);
        for i in 1..=9_999u64 {
            assert_eq!(a.record(denial("anonymous"), 1, t0 + Duration::from_millis(i), at), None);
        }
        assert!(a.due(t0 + Duration::from_secs(30)).is_empty());
        let later = a.due(t0 + Duration::from_secs(60));
        assert_eq!(later.len(), 1);
        assert_eq!(later[0].count, 9_999);
        assert!(a.due(t0 + Duration::from_secs(200)).is_empty(), "nothing pending");
        // Another actor is another key, written at once.
        assert_eq!(a.record(denial("viewer"), 1, t0, at).map(|f| f.count), Some(1));
    }

    #[test]
    fn keys_are_bounded() {
        let t0 = Instant::now();
        let mut a = Aggregator::new(Duration::from_secs(60));
        let mut written = 0;
        for i in 0..10_000 {
            let d = Denial { route: format!("/v1/x{i}"), ..denial("anonymous") };
            written += a.record(d, 1, t0, SystemTime::now()).is_some() as usize;
        }
        assert_eq!(written, MAX_KEYS + 1);
        assert!(a.slots.len() <= MAX_KEYS + 1);
    }
}
