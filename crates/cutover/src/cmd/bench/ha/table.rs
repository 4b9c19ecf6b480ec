//! `bench ha`'s report as a table on stdout, with the takeover compared to
//! the defaults of Kubernetes' leader election and Patroni.

use cutover_core::duration::format_duration;

use super::propagation::GATEWAYS;
use super::report::{
    HaReport, KUBERNETES_LEASE, KUBERNETES_RETRY, PATRONI_LOOP_WAIT, PATRONI_TTL, PROPAGATION_GOAL, millis, secs, yes,
};
use super::takeover::NODES;
use crate::stats::{Stats, percentile_millis};

impl HaReport {
    /// The report as a table on stdout.
    pub fn print_table(&self) {
        let (t, p) = (&self.takeover, &self.propagation);
        let ttl = self.lease_ttl;
        println!(
            "cutover bench ha: {NODES} controllers, {GATEWAYS} gateways, a {}-member etcd cluster on loopback; \
             lease_ttl {} (renew every {}, renew deadline {})",
            cutover_lab::etcd::MEMBERS,
            format_duration(ttl),
            format_duration(ttl / 3),
            format_duration(ttl * 2 / 3)
        );
        row(["measure", "n", "median", "p99", "max", "goal", "met"].map(String::from));
        let ts = Stats::of_millis(&t.took);
        row([
            "takeover after kill -9 of the leader".to_string(),
            t.took.len().to_string(),
            ts.map_or("-".into(), |s| secs(s.median)),
            String::new(),
            ts.map_or("-".into(), |s| secs(s.max)),
            format!("every one <= {}", format_duration(self.takeover_goal())),
            yes(self.takeover_met()).to_string(),
        ]);
        row([
            format!("switch acknowledged by {GATEWAYS} gateways"),
            p.took.len().to_string(),
            percentile_millis(&p.took, 50).map_or("-".into(), millis),
            percentile_millis(&p.took, 99).map_or("-".into(), millis),
            Stats::of_millis(&p.took).map_or("-".into(), |s| millis(s.max)),
            format!("p99 <= {}", format_duration(PROPAGATION_GOAL)),
            yes(self.propagation_met()).to_string(),
        ]);
        row([
            "double actions (two leaders, two tokens)".to_string(),
            t.double_actions.len().to_string(),
            String::new(),
            String::new(),
            String::new(),
            "0".to_string(),
            yes(self.doubles_met()).to_string(),
        ]);
        println!(
            "  (double actions: from {} poll rounds of every node's /v1/status, {} leaderships, {} changes without a kill{})",
            t.rounds,
            t.leaderships,
            t.unprovoked,
            if t.token_went_back { "; a deposed leader said it leads after its successor" } else { "" }
        );
        for d in &t.double_actions {
            println!("  double action {d}");
        }
        let rs = Stats::of_millis(&self.rto.rto);
        let outages = self.rto.rto.len() + self.rto.not_recovered.len();
        if outages > 0 || !self.rto.errors.is_empty() {
            row([
                "RTO, leader killed at the decision".to_string(),
                format!("{}/{outages}", self.rto.rto.len()),
                rs.map_or("-".into(), |s| secs(s.median)),
                String::new(),
                rs.map_or("-".into(), |s| secs(s.max)),
                "every outage recovers".to_string(),
                yes(self.rto_met()).to_string(),
            ]);
            println!(
                "  (onset to decision: median {}; kill to the new leader: median {}; the leader switched before the kill in {} of {})",
                Stats::of_millis(&self.rto.decided).map_or("-".into(), |s| secs(s.median)),
                Stats::of_millis(&self.rto.takeover).map_or("-".into(), |s| secs(s.median)),
                self.rto.switched_before_kill,
                outages
            );
        }
        for e in &self.rto.not_recovered {
            println!("  not recovered: {e}");
        }
        for e in t.errors.iter().chain(&p.errors).chain(&self.rto.errors) {
            println!("  error: {}", e.lines().next().unwrap_or(""));
        }
        println!("{}", self.comparison());
    }

    /// The takeover next to Kubernetes' and Patroni's defaults.
    fn comparison(&self) -> String {
        let measured = match Stats::of_millis(&self.takeover.took) {
            Some(s) => format!("median {}, max {}", secs(s.median), secs(s.max)),
            None => "nothing".into(),
        };
        format!(
            "takeover compared (by their default timings, not measured here): Kubernetes leader election \
             (lease {}, retry every {}) takes over up to about {} after the leader dies; Patroni (ttl {}, \
             loop_wait {}) {}-{}; cutover with lease_ttl {}: {measured}",
            format_duration(KUBERNETES_LEASE),
            format_duration(KUBERNETES_RETRY),
            format_duration(KUBERNETES_LEASE + KUBERNETES_RETRY),
            format_duration(PATRONI_TTL),
            format_duration(PATRONI_LOOP_WAIT),
            format_duration(PATRONI_TTL - PATRONI_LOOP_WAIT),
            format_duration(PATRONI_TTL),
            format_duration(self.lease_ttl),
        )
    }
}

/// One row of the table: the measure, n, median, p99, max, goal, met.
fn row(cells: [String; 7]) {
    let [measure, n, median, p99, max, goal, met] = cells;
    println!("{measure:<42} {n:>5} {median:>10} {p99:>10} {max:>10}  {goal:<22} {met}");
}
