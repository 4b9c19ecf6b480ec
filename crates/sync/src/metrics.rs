//! Replication lag of `cutover replicate` in the Prometheus text format.
//! Metric names are constants here; [`ReplicationMetrics::render`] writes
//! them all, labelled with the source and destination.
//!
//! # Guarantees
//! - After a round, `pending` is exactly what that round found differing and
//!   could not copy (0 after a clean round).
//! - During a round it never drops below the last round's figure: it is the
//!   larger of that and what this round has found and not copied yet. So a
//!   long first sync shows its backlog, and a new round does not flash 0
//!   before it has looked (it may overstate while a round fixes earlier
//!   failures: the safe side for a failover decision).
//! - Before the first measurement the lag gauges are absent, never 0.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::engine::{Progress, Summary, SyncOutcome};
use crate::location::Location;
use crate::store::LagRecord;

pub const PENDING_OBJECTS: &str = "cutover_replication_pending_objects";
pub const PENDING_BYTES: &str = "cutover_replication_pending_bytes";
pub const OLDEST_PENDING: &str = "cutover_replication_oldest_pending_seconds";
pub const LAST_SUCCESS: &str = "cutover_replication_last_success_timestamp_seconds";
pub const ROUNDS: &str = "cutover_replication_rounds_total";
pub const FOUND_OBJECTS: &str = "cutover_replication_last_round_found_objects";
pub const FOUND_BYTES: &str = "cutover_replication_last_round_found_bytes";
pub const RETRIES: &str = "cutover_replication_retries_total";

/// How a replication round ended, as the `outcome` label says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum RoundOutcome {
    Ok,
    Differences,
    Failed,
    Refused,
    /// The round stopped with an error (a listing or the store failed).
    Error,
}

impl RoundOutcome {
    pub const ALL: [RoundOutcome; 5] =
        [RoundOutcome::Ok, RoundOutcome::Differences, RoundOutcome::Failed, RoundOutcome::Refused, RoundOutcome::Error];

    pub fn as_str(self) -> &'static str {
        match self {
            RoundOutcome::Ok => "ok",
            RoundOutcome::Differences => "differences",
            RoundOutcome::Failed => "failed",
            RoundOutcome::Refused => "refused",
            RoundOutcome::Error => "error",
        }
    }
}

impl From<SyncOutcome> for RoundOutcome {
    fn from(o: SyncOutcome) -> Self {
        match o {
            SyncOutcome::Ok => RoundOutcome::Ok,
            SyncOutcome::Differences => RoundOutcome::Differences,
            SyncOutcome::Failed => RoundOutcome::Failed,
            SyncOutcome::Refused => RoundOutcome::Refused,
        }
    }
}

/// Objects, bytes and the oldest last-modified time not yet on the destination.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct Pending {
    objects: u64,
    bytes: u64,
    oldest: Option<SystemTime>,
}

#[derive(Debug, Default)]
struct State {
    /// `None` until the first measurement.
    pending: Option<Pending>,
    /// What the last finished round left.
    last_round: Pending,
    last_success: Option<SystemTime>,
    rounds: BTreeMap<RoundOutcome, u64>,
    found: Option<(u64, u64)>,
    retries: u64,
    throttled: u64,
}

/// The lag gauges and round counters of one replication pair.
#[derive(Debug)]
pub struct ReplicationMetrics {
    src: String,
    dst: String,
    state: Mutex<State>,
}

fn min_time(a: Option<SystemTime>, b: Option<SystemTime>) -> Option<SystemTime> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

fn age(oldest: Option<SystemTime>, now: SystemTime) -> f64 {
    oldest.and_then(|t| now.duration_since(t).ok()).map(|d| d.as_secs_f64()).unwrap_or(0.0)
}

fn unix(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs_f64()
}

/// A Prometheus label value: backslash, double quote and newline escaped.
fn label(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

impl ReplicationMetrics {
    pub fn new(src: &Location, dst: &Location) -> Self {
        Self { src: src.to_string(), dst: dst.to_string(), state: Mutex::new(State::default()) }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().expect("metrics lock")
    }

    /// Progress within a round (see the guarantees above).
    pub fn progress(&self, p: &Progress) {
        let mut st = self.state();
        let now = Pending {
            objects: p.remaining_objects,
            bytes: p.remaining_bytes,
            oldest: p.oldest_pending.filter(|_| p.remaining_objects > 0),
        };
        let last = st.last_round;
        st.pending = Some(Pending {
            objects: now.objects.max(last.objects),
            bytes: now.bytes.max(last.bytes),
            oldest: min_time(now.oldest, last.oldest),
        });
    }

    /// A finished round; `now` is its end.
    pub fn round(&self, s: &Summary, now: SystemTime) {
        let mut st = self.state();
        let left = Pending { objects: s.remaining_objects, bytes: s.remaining_bytes, oldest: s.oldest_remaining };
        st.pending = Some(left);
        st.last_round = left;
        st.found = Some((s.pending_objects, s.pending_bytes));
        st.retries += s.retries;
        st.throttled += s.throttled;
        *st.rounds.entry(s.outcome.into()).or_default() += 1;
        if s.outcome == SyncOutcome::Ok && s.remaining_objects == 0 {
            st.last_success = Some(now);
        }
    }

    /// A round that ended with an error: the lag stays as last measured.
    pub fn round_error(&self) {
        *self.state().rounds.entry(RoundOutcome::Error).or_default() += 1;
    }

    /// The lag as the state store keeps it; `None` before the first measurement.
    pub fn record(&self, now: SystemTime) -> Option<LagRecord> {
        let st = self.state();
        let p = st.pending?;
        Some(LagRecord {
            src: self.src.clone(),
            dst: self.dst.clone(),
            pending_objects: p.objects,
            pending_bytes: p.bytes,
            oldest_pending_seconds: age(p.oldest, now),
            at: now,
            last_success: st.last_success,
        })
    }

    /// The Prometheus text exposition at `now`.
    pub fn render(&self, now: SystemTime) -> String {
        let st = self.state();
        let labels = format!("src=\"{}\",dst=\"{}\"", label(&self.src), label(&self.dst));
        let mut out = String::new();
        let mut gauge = |name: &str, help: &str, value: Option<String>| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
            if let Some(v) = value {
                let _ = writeln!(out, "{name}{{{labels}}} {v}");
            }
        };
        let p = st.pending;
        gauge(
            PENDING_OBJECTS,
            "Objects on the source not yet copied to the destination.",
            p.map(|p| p.objects.to_string()),
        );
        gauge(PENDING_BYTES, "Bytes of those objects.", p.map(|p| p.bytes.to_string()));
        gauge(
            OLDEST_PENDING,
            "Age of the oldest change not yet copied (0 when none).",
            p.map(|p| age(p.oldest, now).to_string()),
        );
        gauge(
            LAST_SUCCESS,
            "Unix time of the end of the last round that left nothing pending.",
            st.last_success.map(|t| unix(t).to_string()),
        );
        gauge(FOUND_OBJECTS, "Objects the last round found new or changed.", st.found.map(|f| f.0.to_string()));
        gauge(FOUND_BYTES, "Bytes of those objects.", st.found.map(|f| f.1.to_string()));
        let _ = writeln!(out, "# HELP {ROUNDS} Replication rounds by outcome.\n# TYPE {ROUNDS} counter");
        for o in RoundOutcome::ALL {
            let n = st.rounds.get(&o).copied().unwrap_or(0);
            let _ = writeln!(out, "{ROUNDS}{{{labels},outcome=\"{}\"}} {n}", o.as_str());
        }
        let _ = writeln!(out, "# HELP {RETRIES} Requests retried, by reason.\n# TYPE {RETRIES} counter");
        let _ = writeln!(out, "{RETRIES}{{{labels},reason=\"throttled\"}} {}", st.throttled);
        let _ = writeln!(out, "{RETRIES}{{{labels},reason=\"other\"}} {}", st.retries - st.throttled);
        out
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn summary(outcome: SyncOutcome, found: u64, left: u64, oldest: Option<SystemTime>) -> Summary {
        Summary {
            outcome,
            mode: crate::Mode::Copy,
            dry_run: false,
            copied: found - left,
            skipped: 0,
            deleted: 0,
            failed: left,
            bytes: 0,
            new: found,
            changed: 0,
            extra: 0,
            pending_objects: found,
            pending_bytes: found * 10,
            oldest_pending: oldest,
            remaining_objects: left,
            remaining_bytes: left * 10,
            oldest_remaining: oldest.filter(|_| left > 0),
            retries: 3,
            throttled: 2,
            listed_source: found,
            listed_destination: 0,
            aborted_uploads: 0,
            resumed_after: None,
            refusal: None,
            seconds: 1.0,
        }
    }

    fn progress(remaining: u64, oldest: Option<SystemTime>) -> Progress {
        Progress {
            listed: 0,
            copied: 0,
            skipped: 0,
            failed: 0,
            bytes: 0,
            in_flight: 0,
            seconds: 0.0,
            source_listed: 0,
            listing_done: false,
            source_total: None,
            pending_objects: remaining,
            pending_bytes: remaining * 10,
            remaining_objects: remaining,
            remaining_bytes: remaining * 10,
            oldest_pending: oldest,
            retries: 0,
        }
    }

    #[test]
    fn lag_gauges_are_absent_until_measured_then_exact_after_each_round() {
        let m = ReplicationMetrics::new(&Location::parse("a").unwrap(), &Location::parse("b:x\"y/").unwrap());
        let t0 = UNIX_EPOCH + Duration::from_secs(1_000_000);
        let text = m.render(t0);
        assert!(!text.contains("cutover_replication_pending_objects{"), "{text}");
        assert!(text.contains("cutover_replication_rounds_total{src=\"a\",dst=\"b:x\\\"y/\",outcome=\"ok\"} 0\n"));
        assert!(m.record(t0).is_none());

        m.progress(&progress(7, Some(t0)));
        let text = m.render(t0 + Duration::from_secs(5));
        assert!(text.contains("cutover_replication_pending_objects{src=\"a\",dst=\"b:x\\\"y/\"} 7\n"), "{text}");
        assert!(text.contains("cutover_replication_oldest_pending_seconds{src=\"a\",dst=\"b:x\\\"y/\"} 5\n"));

        // A round that could not copy 2 of 9 objects.
        m.round(&summary(SyncOutcome::Failed, 9, 2, Some(t0)), t0 + Duration::from_secs(10));
        let r = m.record(t0 + Duration::from_secs(10)).unwrap();
        assert_eq!((r.pending_objects, r.pending_bytes, r.oldest_pending_seconds), (2, 20, 10.0));
        assert_eq!(r.last_success, None);
        // The next round does not drop below that until it has finished.
        m.progress(&progress(0, None));
        assert_eq!(m.record(t0).unwrap().pending_objects, 2);
        let end = t0 + Duration::from_secs(20);
        m.round(&summary(SyncOutcome::Ok, 2, 0, Some(t0)), end);
        let text = m.render(end);
        assert!(text.contains("cutover_replication_pending_objects{src=\"a\",dst=\"b:x\\\"y/\"} 0\n"), "{text}");
        assert!(text.contains("cutover_replication_oldest_pending_seconds{src=\"a\",dst=\"b:x\\\"y/\"} 0\n"));
        assert!(
            text.contains("cutover_replication_last_success_timestamp_seconds{src=\"a\",dst=\"b:x\\\"y/\"} 1000020\n")
        );
        assert!(text.contains("cutover_replication_last_round_found_objects{src=\"a\",dst=\"b:x\\\"y/\"} 2\n"));
        assert!(text.contains("outcome=\"failed\"} 1\n") && text.contains("outcome=\"ok\"} 1\n"), "{text}");
        assert!(
            text.contains("cutover_replication_retries_total{src=\"a\",dst=\"b:x\\\"y/\",reason=\"throttled\"} 4\n")
        );
        m.round_error();
        assert!(m.render(end).contains("outcome=\"error\"} 1\n"));
        assert_eq!(m.record(end).unwrap().last_success, Some(end));
    }
}
