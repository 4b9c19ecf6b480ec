//! What `bench ha` measured, against its goals, as JSON (`--json`); the
//! table is in [`super::table`].

use std::time::Duration;

use serde_json::{Value, json};

use super::propagation::{GATEWAYS, PropagationReport};
use super::rto::RtoReport;
use super::takeover::{NODES, TakeoverReport};
use crate::stats::{Stats, percentile_millis};

/// The propagation goal: p99 of the switch's acknowledgement by every gateway.
pub const PROPAGATION_GOAL: Duration = Duration::from_millis(100);

/// Kubernetes' leader election (client-go) defaults: the lease and the retry period.
pub(super) const KUBERNETES_LEASE: Duration = Duration::from_secs(15);
pub(super) const KUBERNETES_RETRY: Duration = Duration::from_secs(2);
/// Patroni's defaults: the leader key's TTL and the HA loop's period.
pub(super) const PATRONI_TTL: Duration = Duration::from_secs(30);
pub(super) const PATRONI_LOOP_WAIT: Duration = Duration::from_secs(10);

/// Everything `bench ha` measured.
#[derive(Debug)]
pub struct HaReport {
    pub lease_ttl: Duration,
    pub takeover: TakeoverReport,
    pub propagation: PropagationReport,
    pub rto: RtoReport,
}

impl HaReport {
    /// The takeover goal: `lease_ttl` + 1 s.
    pub fn takeover_goal(&self) -> Duration {
        self.lease_ttl + Duration::from_secs(1)
    }

    /// Every trial took over within the goal (and there was at least one).
    pub fn takeover_met(&self) -> bool {
        let t = &self.takeover;
        t.errors.is_empty() && !t.took.is_empty() && t.took.iter().all(|d| *d <= self.takeover_goal())
    }

    pub fn propagation_met(&self) -> bool {
        let p = &self.propagation;
        p.errors.is_empty() && percentile_millis(&p.took, 99).is_some_and(|ms| ms <= ms_of(PROPAGATION_GOAL))
    }

    /// No two leaders with different tokens at once, no token after a newer one.
    pub fn doubles_met(&self) -> bool {
        self.takeover.double_actions.is_empty() && !self.takeover.token_went_back
    }

    /// Every outage ended with the secondary active.
    pub fn rto_met(&self) -> bool {
        self.rto.errors.is_empty() && self.rto.not_recovered.is_empty()
    }

    pub fn all_met(&self) -> bool {
        self.takeover_met() && self.propagation_met() && self.doubles_met() && self.rto_met()
    }

    pub fn json(&self) -> Value {
        let (t, p) = (&self.takeover, &self.propagation);
        let ts = Stats::of_millis(&t.took);
        json!({
            "settings": {
                "lease_ttl_ms": self.lease_ttl.as_millis() as u64,
                "renew_interval_ms": (self.lease_ttl / 3).as_millis() as u64,
                "renew_deadline_ms": (self.lease_ttl * 2 / 3).as_millis() as u64,
                "nodes": NODES,
                "gateways": GATEWAYS,
                "etcd_members": cutover_lab::etcd::MEMBERS,
            },
            "takeover": {
                "trials": t.took.len() + t.errors.len(),
                "taken_over": t.took.len(),
                "takeover_ms": t.took.iter().map(ms).collect::<Vec<_>>(),
                "median_ms": ts.map(|s| round(s.median)),
                "max_ms": ts.map(|s| round(s.max)),
                "goal_ms": self.takeover_goal().as_millis() as u64,
                "met": self.takeover_met(),
                "errors": t.errors,
            },
            "double_actions": {
                "count": t.double_actions.len(),
                "rounds": t.double_actions,
                "token_went_back": t.token_went_back,
                "poll_rounds": t.rounds,
                "leaderships": t.leaderships,
                "unprovoked_leadership_changes": t.unprovoked,
                "met": self.doubles_met(),
            },
            "propagation": {
                "switches": p.took.len() + p.errors.len(),
                "acknowledged": p.took.len(),
                "propagation_ms": p.took.iter().map(ms).collect::<Vec<_>>(),
                "p50_ms": percentile_millis(&p.took, 50).map(round),
                "p99_ms": percentile_millis(&p.took, 99).map(round),
                "max_ms": Stats::of_millis(&p.took).map(|s| round(s.max)),
                "goal_p99_ms": PROPAGATION_GOAL.as_millis() as u64,
                "met": self.propagation_met(),
                "errors": p.errors,
            },
            "rto": {
                "trials": self.rto.rto.len() + self.rto.not_recovered.len() + self.rto.errors.len(),
                "recovered": self.rto.rto.len(),
                "not_recovered": self.rto.not_recovered,
                "rto_ms": self.rto.rto.iter().map(ms).collect::<Vec<_>>(),
                "median_ms": Stats::of_millis(&self.rto.rto).map(|s| round(s.median)),
                "max_ms": Stats::of_millis(&self.rto.rto).map(|s| round(s.max)),
                "decision_ms": self.rto.decided.iter().map(ms).collect::<Vec<_>>(),
                "takeover_ms": self.rto.takeover.iter().map(ms).collect::<Vec<_>>(),
                "switched_before_kill": self.rto.switched_before_kill,
                "met": self.rto_met(),
                "errors": self.rto.errors,
            },
            "comparison": {
                "kubernetes_lease_ms": KUBERNETES_LEASE.as_millis() as u64,
                "kubernetes_retry_period_ms": KUBERNETES_RETRY.as_millis() as u64,
                "patroni_ttl_ms": PATRONI_TTL.as_millis() as u64,
                "patroni_loop_wait_ms": PATRONI_LOOP_WAIT.as_millis() as u64,
            },
            "goals_met": self.all_met(),
        })
    }
}

/// Milliseconds to one decimal.
pub(super) fn round(ms: f64) -> f64 {
    (ms * 10.0).round() / 10.0
}

fn ms_of(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn ms(d: &Duration) -> f64 {
    round(ms_of(*d))
}

pub(super) fn secs(ms: f64) -> String {
    format!("{:.2} s", ms / 1000.0)
}

pub(super) fn millis(ms: f64) -> String {
    format!("{ms:.1} ms")
}

pub(super) fn yes(met: bool) -> &'static str {
    if met { "yes" } else { "NO" }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(took: &[u64], acks: &[u64], doubles: usize) -> HaReport {
        HaReport {
            lease_ttl: Duration::from_secs(3),
            takeover: TakeoverReport {
                took: took.iter().map(|m| Duration::from_millis(*m)).collect(),
                double_actions: vec!["at 1.000 s: ctl-0=5, ctl-1=9".into(); doubles],
                rounds: 100,
                leaderships: took.len() + 1,
                ..TakeoverReport::default()
            },
            propagation: PropagationReport {
                took: acks.iter().map(|m| Duration::from_millis(*m)).collect(),
                errors: vec![],
            },
            rto: RtoReport::default(),
        }
    }

    #[test]
    fn goals_are_takeover_within_ttl_plus_one_second_p99_within_100_ms_and_no_double_action() {
        let good = report(&[2500, 3900, 3100], &[5, 7, 9, 60], 0);
        assert!(good.all_met());
        let j = good.json();
        assert_eq!(j["takeover"]["median_ms"], 3100.0);
        assert_eq!(j["takeover"]["max_ms"], 3900.0);
        assert_eq!(j["takeover"]["goal_ms"], 4000);
        assert_eq!(j["propagation"]["p50_ms"], 7.0);
        assert_eq!(j["propagation"]["p99_ms"], 60.0);
        assert_eq!(j["double_actions"]["count"], 0);
        assert_eq!(j["goals_met"], true);

        assert!(!report(&[2500, 4100], &[5], 0).takeover_met(), "one takeover past lease_ttl + 1 s");
        assert!(!report(&[2500], &[5, 150], 0).propagation_met(), "p99 of two is the slower");
        assert!(!report(&[2500], &[5], 1).doubles_met());
        assert!(!report(&[], &[5], 0).takeover_met(), "no takeover measured");
    }
}
