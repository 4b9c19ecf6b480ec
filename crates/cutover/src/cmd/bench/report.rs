//! What `bench detect` measured: per fault kind and for the blips, as JSON
//! (`--json`) or a table.

use std::path::Path;
use std::time::Duration;

use cutover_core::config::Config;
use cutover_core::duration::format_duration;
use serde_json::{Value, json};

use super::FaultKind;
use crate::stats::Stats;

/// The measured outcome of one fault kind.
#[derive(Debug)]
pub struct KindReport {
    pub kind: FaultKind,
    /// Onset to decision, per decided trial.
    pub decided: Vec<Duration>,
    /// Onset to the first `healthy -> suspect` of the primary, per trial where the log shows it.
    pub suspect: Vec<Duration>,
    /// Trials where another decision came before the failover.
    pub interim: usize,
    pub errors: Vec<String>,
}

/// The outcome of the blips.
#[derive(Debug, Default)]
pub struct BlipReport {
    pub trials: usize,
    pub false_failovers: usize,
    pub down: usize,
    pub suspect: usize,
    /// The failing streaks the blips caused, as the controller measured them.
    pub streaks: Vec<Duration>,
    pub errors: Vec<String>,
}

/// What one outage trial measured.
#[derive(Debug)]
pub struct TrialOutcome {
    /// Onset to the first `failover` decision.
    pub decided: Duration,
    /// Onset to the first `healthy -> suspect` of the primary.
    pub suspect: Option<Duration>,
    /// The actions of the decisions recorded before it (e.g. `await_approval`
    /// while the independent re-check had not failed yet).
    pub interim: Vec<String>,
}

/// What one blip did.
#[derive(Debug)]
pub struct BlipOutcome {
    pub failover: bool,
    pub down: bool,
    pub suspect: bool,
    /// The longest failing streak of the primary that ended in a success.
    pub streak: Option<Duration>,
}

/// The detection settings, in one line.
pub fn describe(c: &Config) -> String {
    format!(
        "probe.interval {}, detect.failures {}, detect.confirm_after {}, detect.slow_after {}, verify.interval {}, verify.timeout {}",
        format_duration(c.probe.interval),
        c.detect.failures,
        format_duration(c.detect.confirm_after),
        format_duration(c.detect.slow_after),
        format_duration(c.verify.interval),
        format_duration(c.verify.timeout),
    )
}

/// Milliseconds to one decimal.
fn round(ms: f64) -> f64 {
    (ms * 10.0).round() / 10.0
}

fn ms(d: &Duration) -> f64 {
    round(d.as_secs_f64() * 1000.0)
}

fn kind_json(k: &KindReport) -> Value {
    let s = Stats::of_millis(&k.decided);
    json!({
        "kind": k.kind.as_str(),
        "trials": k.decided.len() + k.errors.len(),
        "decided": k.decided.len(),
        "decision_ms": k.decided.iter().map(ms).collect::<Vec<_>>(),
        "median_ms": s.map(|s| round(s.median)),
        "p90_ms": s.map(|s| round(s.p90)),
        "min_ms": s.map(|s| round(s.min)),
        "max_ms": s.map(|s| round(s.max)),
        "suspect_median_ms": Stats::of_millis(&k.suspect).map(|s| round(s.median)),
        "interim_decisions": k.interim,
        "errors": k.errors,
    })
}

/// The `--json` report.
pub fn report_json(
    kinds: &[KindReport],
    skipped: &[Value],
    blip: &BlipReport,
    length: Duration,
    c: &Config,
    extra: Option<&Path>,
) -> Value {
    let kinds: Vec<Value> = kinds.iter().map(kind_json).collect();
    json!({
        "settings": {
            "probe_interval_ms": c.probe.interval.as_millis() as u64,
            "probe_timeout_ms": c.probe.timeout.as_millis() as u64,
            "failures": c.detect.failures,
            "confirm_after_ms": c.detect.confirm_after.as_millis() as u64,
            "slow_after_ms": c.detect.slow_after.as_millis() as u64,
            "verify_interval_ms": c.verify.interval.as_millis() as u64,
            "verify_timeout_ms": c.verify.timeout.as_millis() as u64,
            "extra": extra.map(|p| p.display().to_string()),
        },
        "kinds": kinds,
        "skipped": skipped,
        "blips": {
            "trials": blip.trials,
            "length_ms": length.as_millis() as u64,
            "false_failovers": blip.false_failovers,
            "down": blip.down,
            "suspect": blip.suspect,
            "streak_ms": blip.streaks.iter().map(ms).collect::<Vec<_>>(),
            "longest_streak_ms": blip.streaks.iter().max().map(ms),
            "errors": blip.errors,
        },
    })
}

/// The report as a table on stdout.
pub fn print_table(kinds: &[KindReport], skipped: &[Value], blip: &BlipReport, length: Duration, c: &Config) {
    println!("onset of the outage -> confirmed failover decision ({})", describe(c));
    println!(
        "{:<10} {:>6} {:>8} {:>9} {:>9} {:>9} {:>9} {:>14} {:>8}",
        "kind", "trials", "decided", "median", "p90", "min", "max", "suspect (med)", "interim"
    );
    let secs = |ms: f64| format!("{:.2} s", ms / 1000.0);
    for k in kinds {
        let (median, p90, min, max) = match Stats::of_millis(&k.decided) {
            Some(s) => (secs(s.median), secs(s.p90), secs(s.min), secs(s.max)),
            None => ("-".into(), "-".into(), "-".into(), "-".into()),
        };
        let suspect = Stats::of_millis(&k.suspect).map_or("-".into(), |s| secs(s.median));
        println!(
            "{:<10} {:>6} {:>8} {median:>9} {p90:>9} {min:>9} {max:>9} {suspect:>14} {:>8}",
            k.kind.as_str(),
            k.decided.len() + k.errors.len(),
            k.decided.len(),
            k.interim,
        );
        for e in &k.errors {
            println!("  error: {}", e.lines().next().unwrap_or(""));
        }
    }
    for s in skipped {
        println!("{:<10} skipped: {}", s["kind"].as_str().unwrap_or(""), s["reason"].as_str().unwrap_or(""));
    }
    println!(
        "blips: {} SIGSTOP blips of {}: {} false failovers (suspect {}, down {}; longest failing streak {}, detect.confirm_after {})",
        blip.trials,
        format_duration(length),
        blip.false_failovers,
        blip.suspect,
        blip.down,
        blip.streaks.iter().max().map_or("-".into(), |d| format!("{:.2} s", d.as_secs_f64())),
        format_duration(c.detect.confirm_after),
    );
    for e in &blip.errors {
        println!("  error: {}", e.lines().next().unwrap_or(""));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kind_reports_its_statistics_in_milliseconds() {
        let k = KindReport {
            kind: FaultKind::Sigkill,
            decided: [4000, 1000, 3000, 2000].map(Duration::from_millis).to_vec(),
            suspect: vec![Duration::from_micros(1250)],
            interim: 1,
            errors: vec!["boom".into()],
        };
        let j = kind_json(&k);
        assert_eq!(j["kind"], "sigkill");
        assert_eq!(j["trials"], 5);
        assert_eq!(j["decided"], 4);
        assert_eq!(j["median_ms"], 2500.0);
        assert_eq!(j["p90_ms"], 4000.0);
        assert_eq!(j["min_ms"], 1000.0);
        assert_eq!(j["max_ms"], 4000.0);
        assert_eq!(j["suspect_median_ms"], 1.3);
        assert_eq!(j["interim_decisions"], 1);
    }
}
