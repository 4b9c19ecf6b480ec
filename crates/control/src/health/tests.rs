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
    assert_eq!(tr.tick(t0 + ms(3400)), None);
    let t = tr.tick(t0 + ms(3500)).expect("confirmed at streak start + 2.5 s");
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
    seq.push((3000, true));
    let states = feed(&mut tr, t0, &seq);
    assert!(!states.contains(&Health::Down), "{states:?}");
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

proptest! {
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
    fn transitions_follow_the_diagram(oks in proptest::collection::vec(any::<bool>(), 1..80)) {
        let t0 = Instant::now();
        let mut tr = Tracker::new(Thresholds { window: 5, ..Thresholds::default() });
        for (i, ok) in oks.iter().enumerate() {
            let started = t0 + ms(i as u64 * 700);
            if let Some(tr_) = tr.observe(started + ms(10), Observation { started, ok: *ok }) {
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
