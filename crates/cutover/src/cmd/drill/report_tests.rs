use std::time::Duration;

use super::*;

fn run(n: u32, rto_s: Option<f64>, false_failovers: u32, lost: usize) -> RunReport {
    RunReport {
        run: n,
        detect_s: Some(1.0),
        decision: Some("failover".into()),
        rto_s,
        fallback_s: None,
        failovers: u32::from(rto_s.is_some()),
        false_failovers,
        client_ok: 10,
        client_failed: 0,
        acked: 10,
        lost,
    }
}

fn objectives() -> Objectives {
    Objectives { rto: Duration::from_secs(5), rpo: Duration::ZERO, max_false_failovers: 0 }
}

#[test]
fn the_rto_median_and_max_come_from_the_shared_statistics() {
    let runs = [run(1, Some(3.0), 0, 0), run(2, Some(4.0), 0, 0)];
    let a = assess(Scenario::HardDown, &objectives(), &runs);
    assert_eq!((a.median, a.max), (Some(3.5), Some(4.0)));
    assert!(a.breaches.is_empty(), "{:?}", a.breaches);
    let doc = json_report(Scenario::HardDown, &objectives(), &runs, &a);
    assert_eq!(doc["rto_s"]["median"], 3.5);
    assert_eq!(doc["scenario"], "hard-down");
    assert_eq!(doc["met"], true);
}

#[test]
fn every_breach_is_named() {
    let runs = [run(1, Some(6.0), 0, 2), run(2, None, 1, 0)];
    let a = assess(Scenario::HardDown, &objectives(), &runs);
    assert_eq!(
        a.breaches,
        [
            "1 of 2 runs did not fail over",
            "RTO 6.00s exceeds the objective of 5s",
            "2 acknowledged writes lost (rpo 0ns)",
            "1 false failovers (allowed 0)",
        ]
    );
    let md = markdown_report("hard-down", &objectives(), &runs, &a);
    assert!(md.starts_with("# Drill: hard-down\n\n2 runs · RTO median 6.00s max 6.00s"), "{md}");
    assert!(md.contains("\nObjectives BREACHED:\n- 1 of 2 runs did not fail over\n"), "{md}");
}

#[test]
fn a_scenario_without_failover_has_no_rto_to_breach() {
    let runs = [run(1, None, 0, 0)];
    let a = assess(Scenario::Blip, &objectives(), &runs);
    assert_eq!((a.median, a.max), (None, None));
    assert!(a.breaches.is_empty());
    assert!(markdown_report("blip", &objectives(), &runs, &a).ends_with("\nObjectives met.\n"));
}
