//! Recent probe results per backend and health changes per (backend,
//! vantage), kept in memory for the incident chart: the local probe loop
//! records each cycle, the live watcher each health change.
//!
//! # Caveats
//! - Memory only: a restarted controller draws its older incidents' charts
//!   with their markers but without probe lines.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::SystemTime;

use cutover_control::health::Health;

/// Probe cycles kept per backend (an hour at the default 1 s interval).
const PER_BACKEND: usize = 3600;
/// Health changes kept in all.
const HEALTH_CHANGES: usize = 1024;

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
    health: Mutex<VecDeque<HealthChange>>,
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

    /// Records a health change.
    pub fn health(&self, c: HealthChange) {
        let mut ring = self.health.lock().unwrap_or_else(|e| e.into_inner());
        if ring.len() >= HEALTH_CHANGES {
            ring.pop_front();
        }
        ring.push_back(c);
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

    /// The health changes between `from` and `to`, oldest first.
    pub fn health_between(&self, from: SystemTime, to: SystemTime) -> Vec<HealthChange> {
        let ring = self.health.lock().unwrap_or_else(|e| e.into_inner());
        ring.iter().filter(|c| c.at >= from && c.at <= to).cloned().collect()
    }
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
}
