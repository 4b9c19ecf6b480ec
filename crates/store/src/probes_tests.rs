use std::time::{Duration, SystemTime};

use super::*;
use crate::HealthHistory;

fn sample(backend: &str, at: SystemTime, ms: f64, outcome: ProbeOutcome) -> ProbeSample {
    ProbeSample { backend: backend.into(), vantage: "local".into(), at, latency_ms: ms, outcome }
}

fn open() -> (tempfile::TempDir, SqliteStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("state.db")).unwrap();
    (dir, store)
}

#[test]
fn samples_round_trip_within_their_window() {
    let (dir, store) = open();
    let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let batch: Vec<ProbeSample> = (0..10)
        .flat_map(|i| {
            let at = t0 + Duration::from_secs(i);
            let outcome = if i % 3 == 0 { ProbeOutcome::Failed } else { ProbeOutcome::Ok };
            [sample("primary", at, 10.0 + i as f64, outcome), sample("secondary", at, 2.5, ProbeOutcome::Ok)]
        })
        .collect();
    store.record_probe_samples(&batch).unwrap();
    // Another handle on the same file (another process) reads them back.
    let other = SqliteStore::open(&dir.path().join("state.db")).unwrap();
    let all = other.probe_samples(t0, t0 + Duration::from_secs(60)).unwrap();
    assert_eq!(all, batch, "every field comes back, oldest first");
    let window = other.probe_samples(t0 + Duration::from_secs(3), t0 + Duration::from_secs(5)).unwrap();
    assert_eq!(window.len(), 6, "both ends are inclusive: {window:?}");
    assert!(window.iter().all(|s| s.at >= t0 + Duration::from_secs(3) && s.at <= t0 + Duration::from_secs(5)));
    assert_eq!(window.iter().filter(|s| s.outcome == ProbeOutcome::Failed).count(), 1);
    assert!(other.probe_samples(t0 + Duration::from_secs(100), t0 + Duration::from_secs(200)).unwrap().is_empty());
    store.record_probe_samples(&[]).unwrap();
}

#[test]
fn samples_past_the_retention_are_pruned_on_write() {
    let (_dir, store) = open();
    let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let old = sample("primary", t0, 1.0, ProbeOutcome::Ok);
    let kept = sample("primary", t0 + PROBE_RETENTION - Duration::from_secs(1), 2.0, ProbeOutcome::Ok);
    store.record_probe_samples(std::slice::from_ref(&old)).unwrap();
    store.record_probe_samples(std::slice::from_ref(&kept)).unwrap();
    let far = SystemTime::UNIX_EPOCH;
    let end = t0 + PROBE_RETENTION * 2;
    assert_eq!(store.probe_samples(far, end).unwrap().len(), 2, "within the retention of the newest");
    let newest = sample("primary", t0 + PROBE_RETENTION + Duration::from_secs(1), 3.0, ProbeOutcome::Failed);
    store.record_probe_samples(std::slice::from_ref(&newest)).unwrap();
    assert_eq!(store.probe_samples(far, end).unwrap(), vec![kept, newest], "the oldest went");
}

#[test]
fn samples_beyond_the_row_cap_are_pruned_oldest_first() {
    let (_dir, store) = open();
    let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let at = |i: u64| t0 + Duration::from_secs(i);
    let batch: Vec<ProbeSample> = (0..8).map(|i| sample("primary", at(i), i as f64, ProbeOutcome::Ok)).collect();
    store.insert_probe_samples_capped(&batch[..5], 6).unwrap();
    store.insert_probe_samples_capped(&batch[5..], 6).unwrap();
    let kept = store.probe_samples(t0, at(100)).unwrap();
    assert_eq!(kept, batch[2..].to_vec(), "the newest six");
}
