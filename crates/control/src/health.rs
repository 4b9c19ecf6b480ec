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
//!   streak of at most about B + verify_interval, so `confirm_after` above
//!   that bound never confirms a blip (defaults: 2.5 s against 2 s blips and
//!   250 ms re-probes).
//! - A success ends a Suspect streak, unless the backend is *degraded*: the
//!   window is full, its error rate is at or above `error_rate`, and its
//!   failures come in two runs or more (intermittent, as in a brownout; a
//!   single blip is one run). Degraded for `confirm_after` also means Down.
//! - Healthy again after Down needs `recover_successes` consecutive successes
//!   spanning at least `recover_after`.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use serde::Serialize;

/// The health of a backend as seen from one vantage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Health {
    Healthy,
    Suspect,
    Down,
    Recovering,
    /// No recent evidence (an agent that stopped reporting).
    Unknown,
}

impl Health {
    pub fn as_str(self) -> &'static str {
        match self {
            Health::Healthy => "healthy",
            Health::Suspect => "suspect",
            Health::Down => "down",
            Health::Recovering => "recovering",
            Health::Unknown => "unknown",
        }
    }
}

/// Thresholds of the state machine (`[detect]`).
#[derive(Debug, Clone)]
pub struct Thresholds {
    pub failures: u32,
    pub confirm_after: Duration,
    pub error_rate: f64,
    pub window: usize,
    pub recover_successes: u32,
    pub recover_after: Duration,
}

impl Default for Thresholds {
    fn default() -> Self {
        Self {
            failures: 2,
            confirm_after: Duration::from_millis(2500),
            error_rate: 0.5,
            window: 10,
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
    window: VecDeque<bool>,
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
            window: VecDeque::new(),
        }
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
        self.window.iter().filter(|ok| !**ok).count() as f64 / self.window.len() as f64
    }

    /// Intermittent failures at a high rate over a full window.
    fn degraded(&self) -> bool {
        let full = self.window.len() >= self.t.window.max(1);
        let runs = self.window.iter().zip(self.window.iter().skip(1)).filter(|(a, b)| **a && !**b).count()
            + usize::from(self.window.front() == Some(&false));
        full && runs >= 2 && self.error_rate() >= self.t.error_rate
    }

    fn go(&mut self, to: Health, reason: String) -> Option<Transition> {
        let from = self.state;
        self.state = to;
        (from != to).then_some(Transition { from, to, reason })
    }

    /// Feeds one observation; `now` is when it arrived.
    pub fn observe(&mut self, now: Instant, obs: Observation) -> Option<Transition> {
        self.window.push_back(obs.ok);
        while self.window.len() > self.t.window.max(1) {
            self.window.pop_front();
        }
        self.degraded_since = if self.degraded() { self.degraded_since.or(Some(now)) } else { None };
        let changed = if obs.ok { self.on_success(now, obs) } else { self.on_failure(obs) };
        changed.or_else(|| self.tick(now))
    }

    fn on_failure(&mut self, obs: Observation) -> Option<Transition> {
        self.successes = 0;
        match self.state {
            Health::Healthy | Health::Unknown => {
                self.streak_start = Some(obs.started);
                self.failures = 1;
                self.go(Health::Suspect, "a probe failed".into())
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
                self.go(Health::Down, "a probe failed while recovering".into())
            }
        }
    }

    fn on_success(&mut self, now: Instant, obs: Observation) -> Option<Transition> {
        match self.state {
            Health::Healthy => {
                self.failures = 0;
                None
            }
            Health::Unknown => {
                self.failures = 0;
                self.go(Health::Healthy, "a probe succeeded".into())
            }
            Health::Suspect => {
                // A probe that started before the streak says nothing about it.
                if self.streak_start.is_some_and(|s| obs.started < s) {
                    return None;
                }
                if self.degraded_since.is_some() {
                    return None;
                }
                self.streak_start = None;
                self.failures = 0;
                self.go(Health::Healthy, "a probe succeeded again before the outage was confirmed".into())
            }
            Health::Down => {
                self.successes = 1;
                self.recovering_since = Some(now);
                self.go(Health::Recovering, "a probe succeeded".into())
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
                    return self.go(Health::Down, reason);
                }
                let streak = self.streak(now)?;
                if self.failures >= self.t.failures && streak >= self.t.confirm_after {
                    let reason = format!("{} consecutive failures over {:.1}s", self.failures, streak.as_secs_f64());
                    return self.go(Health::Down, reason);
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
                    return self.go(Health::Healthy, reason);
                }
                None
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests;
