//! The faults a proxy injects, as the control API reads and writes them.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::ChaosError;

/// Longest latency plus jitter accepted: one hour.
const MAX_DELAY_MS: u64 = 3_600_000;

/// The faults in force. Every field's default is "off", so `Faults::default()`
/// (or the JSON `{}`) is a plain pass-through. Several faults combine; see
/// the crate documentation for their precedence.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Faults {
    /// Fixed delay added to everything the upstream sends back (ms).
    pub latency_ms: u64,
    /// Uniform random extra delay, `0..=jitter_ms`, on top of `latency_ms`.
    pub jitter_ms: u64,
    /// Accept connections and read requests, never answer.
    pub blackhole: bool,
    /// Close connections with a TCP RST.
    pub reset: bool,
    /// Close the listener, so that connects are refused.
    pub refuse: bool,
    /// Probability (0 to 1) that a request is answered `503 SlowDown` by
    /// the proxy instead of being forwarded.
    pub slowdown_rate: f64,
    /// Bytes per second in each direction, shared by all connections.
    pub bandwidth_bps: Option<u64>,
}

/// One kind of fault, as counters and gauges label it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultKind {
    Latency,
    Blackhole,
    Reset,
    Refuse,
    Slowdown,
    Bandwidth,
}

impl FaultKind {
    pub const ALL: [FaultKind; 6] = [
        FaultKind::Latency,
        FaultKind::Blackhole,
        FaultKind::Reset,
        FaultKind::Refuse,
        FaultKind::Slowdown,
        FaultKind::Bandwidth,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            FaultKind::Latency => "latency",
            FaultKind::Blackhole => "blackhole",
            FaultKind::Reset => "reset",
            FaultKind::Refuse => "refuse",
            FaultKind::Slowdown => "slowdown",
            FaultKind::Bandwidth => "bandwidth",
        }
    }

    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for FaultKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Faults {
    /// No fault at all (the `none` of the command line and `DELETE /faults`).
    pub fn none() -> Self {
        Self::default()
    }

    /// Parses the JSON of `PUT /faults`; unknown keys are errors, so that a
    /// typo in a drill script does not silently inject nothing.
    pub fn from_json(text: &str) -> Result<Self, ChaosError> {
        let f: Faults =
            serde_json::from_str(text).map_err(|e| ChaosError::InvalidFaults { problems: vec![e.to_string()] })?;
        f.validate()?;
        Ok(f)
    }

    /// Checks the values without I/O and names every problem at once.
    pub fn validate(&self) -> Result<(), ChaosError> {
        let mut problems = Vec::new();
        if !(0.0..=1.0).contains(&self.slowdown_rate) {
            problems.push(format!("slowdown_rate: {} is not between 0 and 1", self.slowdown_rate));
        }
        if self.bandwidth_bps == Some(0) {
            problems.push("bandwidth_bps: 0 would stall every transfer (use blackhole, or null for no cap)".into());
        }
        if self.latency_ms.saturating_add(self.jitter_ms) > MAX_DELAY_MS {
            problems.push(format!("latency_ms + jitter_ms: more than {MAX_DELAY_MS} ms"));
        }
        if problems.is_empty() { Ok(()) } else { Err(ChaosError::InvalidFaults { problems }) }
    }

    /// True when a kind of fault is switched on.
    pub fn is_on(&self, kind: FaultKind) -> bool {
        match kind {
            FaultKind::Latency => self.latency_ms > 0 || self.jitter_ms > 0,
            FaultKind::Blackhole => self.blackhole,
            FaultKind::Reset => self.reset,
            FaultKind::Refuse => self.refuse,
            FaultKind::Slowdown => self.slowdown_rate > 0.0,
            FaultKind::Bandwidth => self.bandwidth_bps.is_some(),
        }
    }

    /// True when nothing is injected.
    pub fn is_none(&self) -> bool {
        FaultKind::ALL.iter().all(|k| !self.is_on(*k))
    }

    /// The delay of one piece of the response direction: latency plus a
    /// uniform sample of the jitter.
    pub(crate) fn delay(&self) -> std::time::Duration {
        let jitter = if self.jitter_ms > 0 { fastrand::u64(0..=self.jitter_ms) } else { 0 };
        std::time::Duration::from_millis(self.latency_ms + jitter)
    }

    /// Draws whether this request gets a 503 SlowDown.
    pub(crate) fn draw_slowdown(&self) -> bool {
        self.slowdown_rate > 0.0 && fastrand::f64() < self.slowdown_rate
    }

    /// These faults with the keys of a JSON object laid over them (`PATCH /faults`).
    pub fn merged(&self, patch: &serde_json::Value) -> Result<Self, ChaosError> {
        let invalid = |m: String| ChaosError::InvalidFaults { problems: vec![m] };
        let serde_json::Value::Object(patch) = patch else { return Err(invalid("expected a JSON object".into())) };
        let mut base = serde_json::to_value(self).map_err(|e| invalid(e.to_string()))?;
        for (k, v) in patch {
            base[k] = v.clone();
        }
        let f: Faults = serde_json::from_value(base).map_err(|e| invalid(e.to_string()))?;
        f.validate()?;
        Ok(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absent_keys_are_off_and_unknown_keys_are_errors() {
        assert!(Faults::from_json("{}").unwrap().is_none());
        let f = Faults::from_json(r#"{"latency_ms": 200, "jitter_ms": 50, "bandwidth_bps": 1000000}"#).unwrap();
        assert!(f.is_on(FaultKind::Latency) && f.is_on(FaultKind::Bandwidth) && !f.is_on(FaultKind::Slowdown));
        let err = Faults::from_json(r#"{"latency": 200}"#).unwrap_err().to_string();
        assert!(err.contains("unknown field `latency`"), "{err}");
    }

    #[test]
    fn every_problem_is_named_at_once() {
        let f = Faults { slowdown_rate: 1.5, bandwidth_bps: Some(0), latency_ms: u64::MAX, ..Faults::none() };
        let ChaosError::InvalidFaults { problems } = f.validate().unwrap_err() else { panic!("wrong error") };
        assert_eq!(problems.len(), 3, "{problems:?}");
        assert!(problems[0].starts_with("slowdown_rate"));
    }

    #[test]
    fn a_patch_changes_only_its_keys() {
        let f = Faults { latency_ms: 100, ..Faults::none() };
        let g = f.merged(&serde_json::json!({"slowdown_rate": 0.5})).unwrap();
        assert_eq!((g.latency_ms, g.slowdown_rate), (100, 0.5));
        assert!(f.merged(&serde_json::json!({"slowdown_rate": 2})).is_err());
        assert!(f.merged(&serde_json::json!([1])).is_err());
    }

    #[test]
    fn delay_stays_within_latency_plus_jitter() {
        let f = Faults { latency_ms: 10, jitter_ms: 5, ..Faults::none() };
        for _ in 0..200 {
            let d = f.delay().as_millis();
            assert!((10..=15).contains(&d), "{d}");
        }
    }
}
