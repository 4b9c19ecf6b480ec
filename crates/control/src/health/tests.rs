//! The state machine against scripted sequences and, with proptest, against a
//! simple model on random probe sequences.

use std::time::{Duration, Instant};

use proptest::prelude::*;

use super::*;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Probes every second; each result arrives `latency` after its start.
fn feed(tr: &mut Tracker, t0: Instant, results: &[(u64, bool)]) -> Vec<Health> {
    results
        .iter()
        .map(|&(start_ms, ok)| {
            let started = t0 + ms(start_ms);
            tr.observe(started + ms(10), Observation { started, ok });
            tr.state()
        })
        .collect()
}

#[test]
fn a_hard_outage_is_confirmed_after_confirm_after() {
    let t0 = Instant::now();
    let mut tr = Tracker::new(Thresholds::default());
    feed(&mut tr, t0, &[(0, true), (1000, false), (2000, false)]);
    assert_eq!(tr.state(), Health::Suspect, "1 s of failures is not enough");
    assert_eq!(tr.tick(t0 + ms(3240)), None);
    let t = tr.tick(t0 + ms(3250)).expect("confirmed at streak start + 2.25 s");
    assert_eq!((t.from, t.to), (Health::Suspect, Health::Down));
    assert!(t.reason.contains("2 consecutive failures"));
}

#[test]
fn a_two_second_blip_never_confirms() {
    let t0 = Instant::now();
    let mut tr = Tracker::new(Thresholds::default());
    // Failing from 1000 to 3000 ms; verification re-probes every 250 ms end the streak at 3000.
    let mut seq = vec![(0, true)];
    seq.extend((0..8).map(|i| (1000 + i * 250, false)));
    let states = feed(&mut tr, t0, &seq);
    assert!(!states.contains(&Health::Down), "{states:?}");
    let t = tr.observe(t0 + ms(3010), Observation { started: t0 + ms(3000), ok: true }).expect("healthy again");
    assert_eq!(t.reason, "a probe succeeded again after a failing streak of 2.01s, before the outage was confirmed");
    assert_eq!(tr.state(), Health::Healthy);
    assert_eq!(tr.tick(t0 + ms(10_000)), None);
}

#[test]
fn a_brownout_keeps_the_streak_alive() {
    let t0 = Instant::now();
    let mut tr = Tracker::new(Thresholds { window: 4, ..Thresholds::default() });
    let seq: Vec<(u64, bool)> = (0..12).map(|i| (i * 500, i % 2 == 1)).collect();
    let states = feed(&mut tr, t0, &seq);
    assert!(states.contains(&Health::Down), "alternating failures at 50% confirm an outage: {states:?}");
}

#[test]
fn recovery_needs_consecutive_successes_over_time() {
    let t0 = Instant::now();
    let mut tr = Tracker::new(Thresholds::default());
    feed(&mut tr, t0, &[(0, false), (1000, false), (2000, false), (3000, false)]);
    assert_eq!(tr.state(), Health::Down);
    feed(&mut tr, t0, &[(4000, true)]);
    assert_eq!(tr.state(), Health::Recovering);
    feed(&mut tr, t0, &[(5000, false)]);
    assert_eq!(tr.state(), Health::Down, "a failure while recovering goes back down");
    feed(&mut tr, t0, &[(6000, true), (7000, true), (8000, true)]);
    assert_eq!(tr.state(), Health::Recovering, "3 successes but only 2 s");
    feed(&mut tr, t0, &[(9000, true)]);
    assert_eq!(tr.state(), Health::Healthy);
}

#[test]
fn a_late_success_of_an_old_probe_does_not_end_a_streak() {
    let t0 = Instant::now();
    let mut tr = Tracker::new(Thresholds::default());
    feed(&mut tr, t0, &[(1000, false)]);
    // A probe that started at 500 ms (before the streak) completes OK late.
    tr.observe(t0 + ms(1200), Observation { started: t0 + ms(500), ok: true });
    assert_eq!(tr.state(), Health::Suspect);
}

/// Probes every second, all successful, with these latencies (ms).
fn feed_latencies(tr: &mut Tracker, t0: Instant, first_ms: u64, latencies: &[u64]) -> Vec<Health> {
    latencies
        .iter()
        .enumerate()
        .map(|(i, &lat)| {
            let started = t0 + ms(first_ms + i as u64 * 1000);
            tr.observe(started + ms(lat), Observation { started, ok: true });
            tr.state()
        })
        .collect()
}

fn slow_thresholds() -> Thresholds {
    Thresholds { p95_latency: Some(ms(500)), ..Thresholds::default() }
}

#[test]
fn p95_uses_the_lower_nearest_rank_of_successful_probes() {
    let t0 = Instant::now();
    let mut tr = Tracker::new(Thresholds::default());
    feed_latencies(&mut tr, t0, 0, &[10, 20, 30, 40]);
    assert_eq!(tr.p95(), None, "fewer than {MIN_LATENCY_SAMPLES} samples");
    feed_latencies(&mut tr, t0, 4000, &[50]);
    assert_eq!(tr.p95(), Some(ms(40)), "index ⌊0.95·4⌋ = 3 of 5");
    feed_latencies(&mut tr, t0, 5000, &[900, 60, 70, 80, 90]);
    assert_eq!(tr.p95(), Some(ms(90)), "one outlier in 10 is not the p95");
    tr.observe(t0 + ms(12_000), Observation { started: t0 + ms(10_000), ok: false });
    assert_eq!(tr.p95(), Some(ms(90)), "failures have no latency");
}

#[test]
fn a_sustained_p95_breach_is_a_brownout_confirmed_after_confirm_after() {
    let t0 = Instant::now();
    let mut tr = Tracker::new(slow_thresholds());
    feed_latencies(&mut tr, t0, 0, &[20; 10]);
    assert_eq!(tr.state(), Health::Healthy);
    let t = tr.observe(t0 + ms(10_600), Observation { started: t0 + ms(10_000), ok: true });
    assert_eq!(t, None, "one slow probe is not a breach");
    let t = tr.observe(t0 + ms(11_600), Observation { started: t0 + ms(11_000), ok: true }).expect("suspect");
    assert_eq!((t.from, t.to), (Health::Healthy, Health::Suspect));
    assert_eq!(t.reason, "p95 latency 600ms over the last 10 successful probes is above detect.p95_latency 500ms");
    assert!(tr.latency_only());
    assert_eq!(tr.tick(t0 + ms(13_800)), None, "breached for 2.2 s");
    let t = tr.tick(t0 + ms(13_900)).expect("down after 2.25 s of breach");
    assert_eq!((t.from, t.to), (Health::Suspect, Health::Down));
    assert!(t.reason.starts_with("p95 latency 600ms") && t.reason.ends_with("for 2.3s"), "{}", t.reason);
    assert!(tr.latency_only());
    assert_eq!(tr.failures(), 0);
}

#[test]
fn a_single_slow_probe_never_makes_a_vantage_suspect() {
    let t0 = Instant::now();
    let mut tr = Tracker::new(slow_thresholds());
    let mut lat = vec![20; 10];
    lat.push(1500);
    lat.extend([20; 10]);
    let states = feed_latencies(&mut tr, t0, 0, &lat);
    assert!(states.iter().all(|s| *s == Health::Healthy), "{states:?}");
}

#[test]
fn a_short_breach_ends_the_episode_when_the_p95_drops() {
    let t0 = Instant::now();
    let mut tr = Tracker::new(Thresholds { window: 5, ..slow_thresholds() });
    feed_latencies(&mut tr, t0, 0, &[20; 5]);
    let states = feed_latencies(&mut tr, t0, 5000, &[800, 800, 20, 20, 20, 20]);
    use Health::{Healthy, Suspect};
    assert_eq!(states, [Healthy, Suspect, Suspect, Suspect, Suspect, Healthy], "2 slow of 5 are a breach, 1 is not");
    assert!(!tr.latency_only());
}

#[test]
fn a_failure_makes_the_evidence_more_than_latency() {
    let t0 = Instant::now();
    let mut tr = Tracker::new(slow_thresholds());
    feed_latencies(&mut tr, t0, 0, &[20; 8]);
    feed_latencies(&mut tr, t0, 8000, &[700, 700]);
    assert!(tr.state() == Health::Suspect && tr.latency_only());
    tr.observe(t0 + ms(10_010), Observation { started: t0 + ms(10_000), ok: false });
    assert_eq!(tr.state(), Health::Suspect);
    assert!(!tr.latency_only(), "a probe failed in this episode");
    tr.observe(t0 + ms(11_700), Observation { started: t0 + ms(11_000), ok: true });
    assert_eq!(tr.state(), Health::Suspect, "still slow");
    assert_eq!(tr.failures(), 0, "a success ends the failing streak");
    assert!(!tr.latency_only());
}

#[test]
fn recovery_from_a_brownout_waits_for_the_p95_to_drop() {
    let t0 = Instant::now();
    let mut tr = Tracker::new(slow_thresholds());
    feed_latencies(&mut tr, t0, 0, &[20; 10]);
    feed_latencies(&mut tr, t0, 10_000, &[700; 5]);
    assert_eq!(tr.state(), Health::Down);
    feed_latencies(&mut tr, t0, 15_000, &[700; 5]);
    assert_eq!(tr.state(), Health::Down, "slow successes do not start a recovery");
    let states = feed_latencies(&mut tr, t0, 20_000, &[20; 13]);
    let first_recovering = states.iter().position(|s| *s == Health::Recovering).expect("recovering");
    assert_eq!(first_recovering, 8, "once at most one slow probe is left in the window: {states:?}");
    assert_eq!(tr.state(), Health::Healthy, "{states:?}");
}

#[test]
fn latency_only_over_vantages_needs_every_troubled_one_to_be_latency_only() {
    let t0 = Instant::now();
    let healthy = Tracker::new(slow_thresholds());
    let mut slow = Tracker::new(slow_thresholds());
    feed_latencies(&mut slow, t0, 0, &[20, 20, 20, 700, 700]);
    let mut failing = Tracker::new(slow_thresholds());
    failing.observe(t0 + ms(10), Observation { started: t0, ok: false });
    assert!(!latency_only([&healthy]), "nothing troubled");
    assert!(latency_only([&healthy, &slow]));
    assert!(!latency_only([&slow, &failing]));
}

/// The model: Down iff some run of consecutive failures (ignoring nothing)
/// reached `failures` and spanned `confirm_after` before a success ended it,
/// with no later recovery; never Down without such a run.
fn model_ever_down(seq: &[(u64, bool)], t: &Thresholds) -> bool {
    let mut run_start: Option<u64> = None;
    let mut run_len = 0u32;
    for &(start, ok) in seq {
        if ok {
            run_start = None;
            run_len = 0;
        } else {
            run_start.get_or_insert(start);
            run_len += 1;
            // The tracker checks at arrival time (start + 10 ms).
            if run_len >= t.failures && start + 10 - run_start.unwrap() >= t.confirm_after.as_millis() as u64 {
                return true;
            }
        }
    }
    false
}

/// The latency model, for all-successful probes arriving in order: slow when
/// the lower-rank p95 of the last `window` latencies (at least
/// `MIN_LATENCY_SAMPLES` of them) is above the threshold; Down iff a slow run
/// lasts `confirm_after` from its first observation.
fn model_latency_down(seq: &[(u64, u64)], t: &Thresholds) -> bool {
    let max = t.p95_latency.unwrap().as_millis() as u64;
    let mut window: std::collections::VecDeque<u64> = Default::default();
    let mut slow_since = None;
    for &(arrival, latency) in seq {
        window.push_back(latency);
        if window.len() > t.window {
            window.pop_front();
        }
        let mut sorted: Vec<u64> = window.iter().copied().collect();
        sorted.sort();
        let slow = sorted.len() >= MIN_LATENCY_SAMPLES.min(t.window) && sorted[(sorted.len() - 1) * 95 / 100] > max;
        if !slow {
            slow_since = None;
            continue;
        }
        let since = *slow_since.get_or_insert(arrival);
        if arrival - since >= t.confirm_after.as_millis() as u64 {
            return true;
        }
    }
    false
}

proptest! {
    /// All probes succeed with random latencies: the tracker reaches Down
    /// exactly when the latency model does, and every Suspect or Down on the
    /// way is latency only.
    #[test]
    fn the_latency_rule_goes_down_exactly_when_the_model_does(
        gaps in proptest::collection::vec(100u64..1500, 1..80),
        latencies in proptest::collection::vec(prop_oneof![3 => 1u64..400, 1 => 400u64..900], 80),
        window in 3usize..25,
    ) {
        let t = Thresholds { window, p95_latency: Some(ms(500)), ..Thresholds::default() };
        let mut at = 1000;
        let seq: Vec<(u64, u64)> = gaps.iter().zip(&latencies).map(|(g, l)| { at += g; (at, *l) }).collect();
        let t0 = Instant::now();
        let mut tr = Tracker::new(t.clone());
        let mut ever_down = false;
        for &(arrival, latency) in &seq {
            let started = t0 + ms(arrival - latency);
            tr.observe(t0 + ms(arrival), Observation { started, ok: true });
            if matches!(tr.state(), Health::Suspect | Health::Down) {
                prop_assert!(tr.latency_only());
            }
            ever_down |= tr.state() == Health::Down;
        }
        prop_assert_eq!(ever_down, model_latency_down(&seq, &t));
    }

    /// Mixed failures and latencies: latency only is claimed only when no
    /// probe failed since the vantage was last healthy.
    #[test]
    fn latency_only_is_never_claimed_after_a_failure(
        probes in proptest::collection::vec((any::<bool>(), prop_oneof![1u64..400, 400u64..900]), 1..80),
    ) {
        let t0 = Instant::now();
        let mut tr = Tracker::new(Thresholds { window: 6, p95_latency: Some(ms(500)), ..Thresholds::default() });
        let mut failed_since_healthy = false;
        for (i, (ok, latency)) in probes.iter().enumerate() {
            let started = t0 + ms(i as u64 * 700);
            tr.observe(started + ms(*latency), Observation { started, ok: *ok });
            failed_since_healthy = if tr.state() == Health::Healthy { false } else { failed_since_healthy || !ok };
            if tr.latency_only() {
                prop_assert!(!failed_since_healthy);
                prop_assert!(matches!(tr.state(), Health::Suspect | Health::Down));
            }
        }
    }

    /// With a window too large to reach the error-rate rule, the tracker
    /// reaches Down exactly when the model says a confirming run happened.
    #[test]
    fn the_tracker_goes_down_exactly_when_the_model_does(
        gaps in proptest::collection::vec(50u64..1500, 1..60),
        oks in proptest::collection::vec(any::<bool>(), 60),
    ) {
        let t = Thresholds { window: 1000, ..Thresholds::default() };
        let mut at = 0;
        let seq: Vec<(u64, bool)> = gaps.iter().zip(&oks).map(|(g, ok)| { at += g; (at, *ok) }).collect();
        let t0 = Instant::now();
        let mut tr = Tracker::new(t.clone());
        let mut ever_down = false;
        for &(start, ok) in &seq {
            let started = t0 + ms(start);
            tr.observe(started + ms(10), Observation { started, ok });
            ever_down |= tr.state() == Health::Down;
        }
        prop_assert_eq!(ever_down, model_ever_down(&seq, &t));
    }

    /// Whatever the sequence, a state change always has a reason and the
    /// machine never jumps from Healthy straight to Down or Recovering.
    #[test]
    fn transitions_follow_the_diagram(
        oks in proptest::collection::vec(any::<bool>(), 1..80),
        latencies in proptest::collection::vec(1u64..900, 80),
        p95_latency in proptest::option::of(100u64..700),
    ) {
        let t0 = Instant::now();
        let mut tr = Tracker::new(Thresholds { window: 5, p95_latency: p95_latency.map(ms), ..Thresholds::default() });
        for (i, (ok, latency)) in oks.iter().zip(&latencies).enumerate() {
            let started = t0 + ms(i as u64 * 700);
            if let Some(tr_) = tr.observe(started + ms(*latency), Observation { started, ok: *ok }) {
                prop_assert!(!tr_.reason.is_empty());
                let allowed = matches!(
                    (tr_.from, tr_.to),
                    (Health::Healthy, Health::Suspect)
                        | (Health::Suspect, Health::Healthy)
                        | (Health::Suspect, Health::Down)
                        | (Health::Down, Health::Recovering)
                        | (Health::Recovering, Health::Down)
                        | (Health::Recovering, Health::Healthy)
                );
                prop_assert!(allowed, "{:?}", tr_);
            }
        }
    }
}
