//! The latest reading of each signal (Prometheus query, status page), as
//! the policy gets it, for the status page.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Instant;

use serde_json::Value;

/// The latest reading per signal name, with when it was recorded.
#[derive(Debug, Default)]
pub struct Signals {
    latest: Mutex<BTreeMap<String, (Instant, Value)>>,
}

impl Signals {
    /// Records a reading (`to_json` of the signal, as the policy sees it).
    pub fn record(&self, name: &str, reading: Value) {
        let mut latest = self.latest.lock().unwrap_or_else(|e| e.into_inner());
        latest.insert(name.to_string(), (Instant::now(), reading));
    }

    /// Every signal's latest reading, its `age_ms` brought up to now.
    pub fn now(&self) -> Vec<(String, Value)> {
        let latest = self.latest.lock().unwrap_or_else(|e| e.into_inner());
        latest
            .iter()
            .map(|(name, (at, v))| {
                let mut v = v.clone();
                if let Some(age) = v["age_ms"].as_u64() {
                    v["age_ms"] = Value::from(age + at.elapsed().as_millis() as u64);
                }
                (name.clone(), v)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_latest_reading_per_signal_is_kept_and_ages() {
        let s = Signals::default();
        s.record("prometheus", serde_json::json!({"status": "unavailable", "age_ms": 5}));
        s.record("prometheus", serde_json::json!({"status": "ok", "firing": false, "age_ms": 0}));
        s.record("statuspage", serde_json::json!({"status": "ok", "indicator": "none", "age_ms": null}));
        let now = s.now();
        assert_eq!(now.len(), 2);
        assert_eq!(now[0].0, "prometheus");
        assert_eq!(now[0].1["status"], "ok");
        assert!(now[1].1["age_ms"].is_null());
    }
}
