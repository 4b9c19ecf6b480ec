//! The health state machine of one (backend, vantage):
//! Healthy → Suspect → Down → Recovering → Healthy.
//!
//! It takes time as an argument (never reads a clock), so tests drive it
//! with exact timestamps.
//!
//! # Guarantees
//! - Down needs `failures` consecutive failed observations *and* a failing
//!   streak of at least `confirm_after`, measured from the start of the first
//!   failed probe. With probes every `interval` and verification re-probes
//!   every `verify_interval` while suspect, a blip of length B produces a
//!   streak of at most about B + verify_interval (a hang: about B, as the
//!   re-probe in flight is answered when the backend is), so `confirm_after`
//!   above that bound never confirms a blip (defaults: 2.25 s against 2 s
//!   blips and 100 ms re-probes; `cutover bench detect` measured streaks of
//!   at most 1.97 s over 20 SIGSTOP blips of 2 s at every phase of the probe
//!   cycle).
//! - A success ends a Suspect streak, unless the backend is *degraded*: the
//!   window is full, its error rate is at or above `error_rate`, and its
//!   failures come in two runs or more (intermittent, as in a brownout; a
//!   single blip is one run). Degraded for `confirm_after` also means Down.
//! - Healthy again after Down needs `recover_successes` consecutive successes
//!   spanning at least `recover_after`.
//! - With `p95_latency` set, a backend whose successful probes are slow is
//!   *slow*: the p95 of the successful probes' latencies in the window (at
//!   least [`MIN_LATENCY_SAMPLES`] of them) is above `p95_latency`. Slow means
//!   Suspect; slow for `confirm_after` means Down (a brownout), with a reason
//!   naming the p95 and the threshold. While slow, a success neither ends a
//!   Suspect episode nor starts a recovery. The p95 uses the lower nearest
//!   rank (index ⌊0.95·(n−1)⌋ of the sorted latencies), so in a window of up
//!   to 20 probes a single slow probe is never a breach.
//! - [`Tracker::latency_only`] is true while Suspect or Down when no probe has
//!   failed since the vantage last was Healthy: the evidence is latency alone.
//!
//! # Caveats
//! - The latency of an observation is its arrival time minus its start, so
//!   it includes the time the result took to reach the controller.
//! - A probe in flight longer than `slow_after` counts as failed (see `cutover
//!   run`), so `p95_latency` only has an effect below `slow_after`.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// The health of a backend as seen from one vantage (a closed set of the
/// domain, stored in the health history).
pub use cutover_core::domain::Health;
use cutover_core::duration::format_duration;

/// The fewest successful probes in the window for a p95 (fewer: no p95).
pub const MIN_LATENCY_SAMPLES: usize = 5;

/// Thresholds of the state machine (`[detect]`).
#[derive(Debug, Clone)]
pub struct Thresholds {
    pub failures: u32,
    pub confirm_after: Duration,
    pub error_rate: f64,
    pub window: usize,
    /// Slow above this p95 of successful probe latencies (`None`: no latency rule).
    pub p95_latency: Option<Duration>,
    pub recover_successes: u32,
    pub recover_after: Duration,
}

impl Default for Thresholds {
    fn default() -> Self {
        Self {
            failures: 2,
            confirm_after: Duration::from_millis(2250),
            error_rate: 0.5,
            window: 10,
            p95_latency: None,
            recover_successes: 3,
            recover_after: Duration::from_secs(3),
        }
    }
}

/// One probe result: when the probe started and whether it succeeded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Observation {
    pub started: Instant,
    pub ok: bool,
}

/// A change of state, with the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    pub from: Health,
    pub to: Health,
    pub reason: String,
}

/// One observation in the window.
#[derive(Debug, Clone, Copy)]
struct Sample {
    ok: bool,
    /// Arrival minus start.
    latency: Duration,
}

/// The state machine of one (backend, vantage).
#[derive(Debug, Clone)]
pub struct Tracker {
    t: Thresholds,
    state: Health,
    /// Start of the first failed probe of the current failing streak.
    streak_start: Option<Instant>,
    failures: u32,
    successes: u32,
    recovering_since: Option<Instant>,
    /// Since when the window has been degraded (see the module guarantees).
    degraded_since: Option<Instant>,
    /// Since when the p95 latency has been above `p95_latency`.
    slow_since: Option<Instant>,
    /// A probe failed since the vantage was last Healthy.
    failed_in_episode: bool,
    /// The vantage resumed during an outage (see [`Tracker::resumed`]): until
    /// it is Healthy again, a success from Unknown or Suspect starts a
    /// recovery (`recover_successes` over `recover_after`) instead of
    /// meaning Healthy.
    resumed: bool,
    window: VecDeque<Sample>,
}

impl Tracker {
    pub fn new(t: Thresholds) -> Self {
        Self {
            t,
            state: Health::Healthy,
            streak_start: None,
            failures: 0,
            successes: 0,
            recovering_since: None,
            degraded_since: None,
            slow_since: None,
            failed_in_episode: false,
            resumed: false,
            window: VecDeque::new(),
        }
    }

    /// A tracker with no evidence yet: Unknown until the first observation
    /// (a success means Healthy, a failure Suspect).
    pub fn unknown(t: Thresholds) -> Self {
        Self { state: Health::Unknown, ..Self::new(t) }
    }

    /// A tracker for a backend that had an open incident when the process
    /// started: Unknown until fresh evidence, and Healthy only by the
    /// recovery rule (`recover_successes` consecutive successes spanning
    /// `recover_after`), as after Down; a failure means Suspect, and Down
    /// needs the usual confirmation.
    pub fn resumed(t: Thresholds) -> Self {
        Self { resumed: true, ..Self::unknown(t) }
    }

    pub fn state(&self) -> Health {
        self.state
    }

    /// Consecutive failed observations in the current streak.
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// How long the current failing streak has lasted at `now`.
    pub fn streak(&self, now: Instant) -> Option<Duration> {
        self.streak_start.map(|s| now.saturating_duration_since(s))
    }

    /// Error rate over the window.
    pub fn error_rate(&self) -> f64 {
        if self.window.is_empty() {
            return 0.0;
        }
        self.window.iter().filter(|s| !s.ok).count() as f64 / self.window.len() as f64
    }

    /// The p95 of the latencies of the successful probes in the window (lower
    /// nearest rank); `None` with fewer than [`MIN_LATENCY_SAMPLES`] of them
    /// (or fewer than the window size, when the window is smaller).
    pub fn p95(&self) -> Option<Duration> {
        let mut ok: Vec<Duration> = self.window.iter().filter(|s| s.ok).map(|s| s.latency).collect();
        if ok.is_empty() || ok.len() < MIN_LATENCY_SAMPLES.min(self.t.window.max(1)) {
            return None;
        }
        ok.sort_unstable();
        Some(ok[(ok.len() - 1) * 95 / 100])
    }

    /// True while Suspect or Down on latency alone: no probe has failed since
    /// the vantage was last Healthy.
    pub fn latency_only(&self) -> bool {
        matches!(self.state, Health::Suspect | Health::Down) && !self.failed_in_episode
    }

    /// Intermittent failures at a high rate over a full window.
    fn degraded(&self) -> bool {
        let full = self.window.len() >= self.t.window.max(1);
        let runs = self.window.iter().zip(self.window.iter().skip(1)).filter(|(a, b)| a.ok && !b.ok).count()
            + usize::from(self.window.front().is_some_and(|s| !s.ok));
        full && runs >= 2 && self.error_rate() >= self.t.error_rate
    }

    /// The p95 is above `p95_latency`.
    fn slow(&self) -> bool {
        self.t.p95_latency.is_some_and(|max| self.p95().is_some_and(|p| p > max))
    }

    /// Why the vantage is slow, in words.
    fn slow_reason(&self) -> String {
        format!(
            "p95 latency {} over the last {} successful probes is above detect.p95_latency {}",
            format_duration(self.p95().unwrap_or_default()),
            self.window.iter().filter(|s| s.ok).count(),
            format_duration(self.t.p95_latency.unwrap_or_default()),
        )
    }

    fn transition_to(&mut self, to: Health, reason: String) -> Option<Transition> {
        let from = self.state;
        self.state = to;
        if to == Health::Healthy {
            self.failed_in_episode = false;
            self.resumed = false;
        }
        (from != to).then_some(Transition { from, to, reason })
    }

    /// A first success after an outage: Recovering, which needs
    /// `recover_successes` consecutive successes over `recover_after`.
    fn start_recovery(&mut self, now: Instant, reason: &str) -> Option<Transition> {
        self.successes = 1;
        self.recovering_since = Some(now);
        self.transition_to(Health::Recovering, reason.into())
    }

    /// Feeds one observation; `now` is when it arrived.
    pub fn observe(&mut self, now: Instant, obs: Observation) -> Option<Transition> {
        self.window.push_back(Sample { ok: obs.ok, latency: now.saturating_duration_since(obs.started) });
        while self.window.len() > self.t.window.max(1) {
            self.window.pop_front();
        }
        self.degraded_since = if self.degraded() { self.degraded_since.or(Some(now)) } else { None };
        self.slow_since = if self.slow() { self.slow_since.or(Some(now)) } else { None };
        self.failed_in_episode |= !obs.ok;
        let changed = if obs.ok { self.on_success(now, obs) } else { self.on_failure(obs) };
        changed.or_else(|| self.tick(now))
    }

    fn on_failure(&mut self, obs: Observation) -> Option<Transition> {
        self.successes = 0;
        match self.state {
            Health::Healthy | Health::Unknown => {
                self.streak_start = Some(obs.started);
                self.failures = 1;
                self.transition_to(Health::Suspect, "a probe failed".into())
            }
            Health::Suspect => {
                self.failures += 1;
                if self.streak_start.is_none_or(|s| obs.started < s) {
                    self.streak_start = Some(obs.started);
                }
                None
            }
            Health::Down => {
                self.failures += 1;
                None
            }
            Health::Recovering => {
                self.failures = 1;
                self.recovering_since = None;
                self.transition_to(Health::Down, "a probe failed while recovering".into())
            }
        }
    }

    fn on_success(&mut self, now: Instant, obs: Observation) -> Option<Transition> {
        match self.state {
            Health::Healthy => {
                self.failures = 0;
                if self.slow_since.is_some() {
                    let reason = self.slow_reason();
                    return self.transition_to(Health::Suspect, reason);
                }
                None
            }
            Health::Unknown if self.resumed => {
                self.failures = 0;
                self.start_recovery(now, "a probe succeeded; an incident was open at start-up, so it must recover")
            }
            Health::Unknown => {
                self.failures = 0;
                self.transition_to(Health::Healthy, "a probe succeeded".into())
            }
            Health::Suspect => {
                // A probe that started before the streak says nothing about it.
                if self.streak_start.is_some_and(|s| obs.started < s) {
                    return None;
                }
                if self.degraded_since.is_some() {
                    return None;
                }
                let streak = self.streak(now);
                self.streak_start = None;
                self.failures = 0;
                if self.slow_since.is_some() {
                    return None;
                }
                if self.resumed {
                    return self.start_recovery(
                        now,
                        "a probe succeeded; an incident was open at start-up, so it must recover",
                    );
                }
                let reason = match streak {
                    Some(d) => format!(
                        "a probe succeeded again after a failing streak of {:.2}s, before the outage was confirmed",
                        d.as_secs_f64()
                    ),
                    None => "a probe succeeded again before the outage was confirmed".into(),
                };
                self.transition_to(Health::Healthy, reason)
            }
            Health::Down if self.slow_since.is_some() => None,
            Health::Down => {
                self.successes = 1;
                self.recovering_since = Some(now);
                self.transition_to(Health::Recovering, "a probe succeeded".into())
            }
            Health::Recovering if self.slow_since.is_some() => {
                self.successes = 0;
                self.recovering_since = None;
                let reason = format!("{} while recovering", self.slow_reason());
                self.transition_to(Health::Down, reason)
            }
            Health::Recovering => {
                self.successes += 1;
                None
            }
        }
    }

    /// Applies the time-based rules at `now`.
    pub fn tick(&mut self, now: Instant) -> Option<Transition> {
        match self.state {
            Health::Suspect => {
                if let Some(since) = self.degraded_since
                    && now.saturating_duration_since(since) >= self.t.confirm_after
                {
                    let reason = format!(
                        "error rate {:.0}% over the last {} probes",
                        self.error_rate() * 100.0,
                        self.window.len()
                    );
                    return self.transition_to(Health::Down, reason);
                }
                if let Some(since) = self.slow_since
                    && now.saturating_duration_since(since) >= self.t.confirm_after
                {
                    let reason = format!(
                        "{} for {:.1}s",
                        self.slow_reason(),
                        now.saturating_duration_since(since).as_secs_f64()
                    );
                    return self.transition_to(Health::Down, reason);
                }
                let streak = self.streak(now)?;
                if self.failures >= self.t.failures && streak >= self.t.confirm_after {
                    let reason = format!("{} consecutive failures over {:.1}s", self.failures, streak.as_secs_f64());
                    return self.transition_to(Health::Down, reason);
                }
                None
            }
            Health::Recovering => {
                let since = self.recovering_since?;
                if self.successes >= self.t.recover_successes
                    && now.saturating_duration_since(since) >= self.t.recover_after
                {
                    self.streak_start = None;
                    self.failures = 0;
                    self.recovering_since = None;
                    let reason = format!("{} consecutive successes", self.successes);
                    return self.transition_to(Health::Healthy, reason);
                }
                None
            }
            _ => None,
        }
    }
}

/// The evidence of several vantages is latency alone: at least one is
/// Suspect or Down, and every one that is, is so on latency alone.
pub fn latency_only<'a>(trackers: impl IntoIterator<Item = &'a Tracker>) -> bool {
    let mut troubled = trackers.into_iter().filter(|t| matches!(t.state(), Health::Suspect | Health::Down)).peekable();
    troubled.peek().is_some() && troubled.all(Tracker::latency_only)
}

#[cfg(test)]
mod tests;
