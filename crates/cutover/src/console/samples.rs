//! Recent probe results per backend, kept in memory for the incident
//! chart: the local probe loop records each cycle.
//!
//! The probe results are also stored (node-local, see `probe_log`): the
//! charts read them from the store ([`series`]) and add from memory only
//! the newest not yet written ([`Samples::merged_with`]). Health changes
//! are read from the store alone ([`health_changes`]): the controller
//! records each one there as it happens.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::SystemTime;

use cutover_control::controller::LOCAL;
use cutover_control::health::Health;
use cutover_core::time::parse_rfc3339;
use cutover_store::{HealthRecord, ProbeOutcome, ProbeSample};

/// Probe cycles kept per backend (an hour at the default 1 s interval).
const PER_BACKEND: usize = 3600;

/// One local probe cycle.
#[derive(Debug, Clone, PartialEq)]
pub struct Probe {
    pub at: SystemTime,
    pub ok: bool,
    /// The cycle's total latency (its operations added up).
    pub ms: f64,
}

/// One health change of a backend at a vantage.
#[derive(Debug, Clone, PartialEq)]
pub struct HealthChange {
    pub at: SystemTime,
    pub backend: String,
    pub vantage: String,
    pub to: Health,
}

/// The recent samples.
#[derive(Debug, Default)]
pub struct Samples {
    probes: Mutex<HashMap<String, VecDeque<Probe>>>,
}

impl Samples {
    /// Records a probe cycle of `backend`.
    pub fn probe(&self, backend: &str, p: Probe) {
        let mut all = self.probes.lock().unwrap_or_else(|e| e.into_inner());
        let ring = all.entry(backend.to_string()).or_default();
        if ring.len() >= PER_BACKEND {
            ring.pop_front();
        }
        ring.push_back(p);
    }

    /// The probes of every backend between `from` and `to`, by backend.
    pub fn probes_between(&self, from: SystemTime, to: SystemTime) -> Vec<(String, Vec<Probe>)> {
        let all = self.probes.lock().unwrap_or_else(|e| e.into_inner());
        let mut out: Vec<(String, Vec<Probe>)> = all
            .iter()
            .map(|(b, ring)| (b.clone(), ring.iter().filter(|p| p.at >= from && p.at <= to).cloned().collect()))
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    /// `stored` (by backend, from the store) with, for each backend, the
    /// probes in memory between `from` and `to` newer than its last stored.
    pub fn merged_with(
        &self,
        mut stored: Vec<(String, Vec<Probe>)>,
        from: SystemTime,
        to: SystemTime,
    ) -> Vec<(String, Vec<Probe>)> {
        for (backend, recent) in self.probes_between(from, to) {
            let i = match stored.iter().position(|(b, _)| *b == backend) {
                Some(i) => i,
                None => {
                    stored.push((backend, Vec::new()));
                    stored.len() - 1
                }
            };
            let last = stored[i].1.last().map(|p| p.at);
            stored[i].1.extend(recent.into_iter().filter(|p| last.is_none_or(|l| p.at > l)));
        }
        stored.sort_by(|a, b| a.0.cmp(&b.0));
        stored
    }
}

/// Stored health changes as the chart reads them (a row whose time does
/// not parse is left out).
pub fn health_changes(stored: Vec<HealthRecord>) -> Vec<HealthChange> {
    stored
        .into_iter()
        .filter_map(|r| {
            Some(HealthChange { at: parse_rfc3339(&r.at)?, backend: r.backend, vantage: r.vantage, to: r.health })
        })
        .collect()
}

/// The local vantage's stored samples as the chart's series, by backend.
pub fn series(stored: Vec<ProbeSample>) -> Vec<(String, Vec<Probe>)> {
    let mut out: Vec<(String, Vec<Probe>)> = Vec::new();
    for s in stored.into_iter().filter(|s| s.vantage == LOCAL) {
        let p = Probe { at: s.at, ok: s.outcome == ProbeOutcome::Ok, ms: s.latency_ms };
        match out.iter_mut().find(|(b, _)| *b == s.backend) {
            Some((_, v)) => v.push(p),
            None => out.push((s.backend, vec![p])),
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// A probe cycle of `backend` as the store keeps it (local vantage).
pub fn stored(backend: &str, p: &Probe) -> ProbeSample {
    let outcome = if p.ok { ProbeOutcome::Ok } else { ProbeOutcome::Failed };
    ProbeSample { backend: backend.to_string(), vantage: LOCAL.to_string(), at: p.at, latency_ms: p.ms, outcome }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn rings_keep_the_newest_and_filter_by_time() {
        let s = Samples::default();
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        for i in 0..(PER_BACKEND + 10) {
            s.probe("a", Probe { at: t0 + Duration::from_secs(i as u64), ok: i % 2 == 0, ms: i as f64 });
        }
        let all = s.probes_between(t0, t0 + Duration::from_secs(100_000));
        assert_eq!(all[0].1.len(), PER_BACKEND);
        assert_eq!(all[0].1[0].ms, 10.0, "the oldest ten went first");
        let some = s.probes_between(t0 + Duration::from_secs(20), t0 + Duration::from_secs(29));
        assert_eq!(some[0].1.len(), 10);
    }

    #[test]
    fn stored_samples_are_completed_by_the_newer_ones_in_memory() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let at = |s: u64| t0 + Duration::from_secs(s);
        let p = |s: u64, ok: bool| Probe { at: at(s), ok, ms: s as f64 };
        let mut rows: Vec<ProbeSample> = (0..5).map(|i| stored("b", &p(i, i != 2))).collect();
        rows.push(ProbeSample { vantage: "agent-1".into(), ..stored("b", &p(1, true)) });
        let from_store = series(rows);
        assert_eq!(from_store.len(), 1, "only the local vantage: {from_store:?}");
        assert_eq!(from_store[0].1, (0..5).map(|i| p(i, i != 2)).collect::<Vec<_>>());
        let mem = Samples::default();
        for i in 3..8 {
            mem.probe("b", p(i, true));
        }
        mem.probe("a", p(6, false));
        let merged = mem.merged_with(from_store, at(0), at(100));
        assert_eq!(merged[0], ("a".to_string(), vec![p(6, false)]));
        let b: Vec<u64> = merged[1].1.iter().map(|p| p.ms as u64).collect();
        assert_eq!(b, vec![0, 1, 2, 3, 4, 5, 6, 7], "no sample twice");
    }
}
