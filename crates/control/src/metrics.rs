//! Prometheus metrics of the controller, rendered in the text format.
//! Metric names are constants here, nowhere else.

use std::collections::BTreeMap;
use std::fmt::Write;

pub const PROBE_DURATION: &str = "cutover_probe_duration_seconds";
pub const PROBE_OPS: &str = "cutover_probe_operations_total";
pub const PROBE_CYCLES: &str = "cutover_probe_cycles_total";
pub const BACKEND_HEALTH: &str = "cutover_backend_health";
pub const DECISIONS: &str = "cutover_decisions_total";
pub const OPEN_INCIDENTS: &str = "cutover_open_incidents";
pub const HEALTH_CHANGES: &str = "cutover_health_transitions_total";
pub const STEP_DURATION: &str = "cutover_runbook_step_duration_seconds";
pub const RUNS: &str = "cutover_runbook_runs_total";
pub const FAILOVERS: &str = "cutover_failovers_total";
pub const FALLBACKS: &str = "cutover_fallbacks_total";
pub const ROLLBACKS: &str = "cutover_rollbacks_total";
/// Scheduled drills by scenario and result (`met`, `breached`, `error`).
pub const DRILLS: &str = "cutover_drills_total";
/// From the incident's opening (outage detected) to the validated switch.
pub const DETECT_TO_SWITCH: &str = "cutover_detection_to_validated_switch_seconds";
/// 1 when the latest read of a signal succeeded, else 0 (label `signal`).
pub const SIGNAL_UP: &str = "cutover_signal_up";
/// A signal's value: the Prometheus query's, or the status page indicator as
/// 0 (none) to 3 (critical); NaN while unavailable.
pub const SIGNAL_VALUE: &str = "cutover_signal_value";
/// 1 when a signal is firing, 0 when not, NaN while unavailable.
pub const SIGNAL_FIRING: &str = "cutover_signal_firing";
/// Connections a listener closed at once because it was at its cap
/// (label `listener`).
pub const CONNECTIONS_REFUSED: &str = "cutover_connections_refused_total";
/// State store operations that failed (label `op`: `decision`, `approval`,
/// `incident.open`, `audit.denied`, ...). What such a write was part of is
/// not performed, except records of what already happened.
pub const STORE_ERRORS: &str = "cutover_store_errors_total";
/// Refused API requests that found the audit queue full; they are still
/// counted in the next `api.denied` entry, without actor and path.
pub const AUDIT_DENIALS_QUEUE_FULL: &str = "cutover_audit_denials_queue_full_total";
/// `api.denied` audit entries written (each aggregates one or more refusals).
pub const AUDIT_DENIAL_ENTRIES: &str = "cutover_audit_denial_entries_total";
/// Audit segments uploaded to the export (label `result`: `ok`, `error`).
pub const AUDIT_EXPORT_SEGMENTS: &str = "cutover_audit_export_segments_total";
/// The newest audit entry known to be in the export.
pub const AUDIT_EXPORTED_SEQ: &str = "cutover_audit_exported_seq";

const BUCKETS: [f64; 15] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0];

#[derive(Debug, Default, Clone)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    sum: f64,
    count: u64,
}

/// Label values in a fixed order per metric.
type Labels = Vec<(&'static str, String)>;
/// A metric name with its labels: one series.
type Series = (&'static str, Labels);

/// Counters, histograms and set gauges; more gauges can be passed in at
/// render time.
#[derive(Debug, Default)]
pub struct Metrics {
    histograms: BTreeMap<Series, Histogram>,
    counters: BTreeMap<Series, u64>,
    gauges: BTreeMap<Series, f64>,
}

impl Metrics {
    pub fn observe(&mut self, name: &'static str, labels: Labels, seconds: f64) {
        let h = self.histograms.entry((name, labels)).or_default();
        for (i, b) in BUCKETS.iter().enumerate() {
            if seconds <= *b {
                h.counts[i] += 1;
            }
        }
        h.sum += seconds;
        h.count += 1;
    }

    pub fn inc(&mut self, name: &'static str, labels: Labels) {
        *self.counters.entry((name, labels)).or_default() += 1;
    }

    /// Sets a counter kept elsewhere (monotonic at its source) to `value`.
    pub fn set_counter(&mut self, name: &'static str, labels: Labels, value: u64) {
        self.counters.insert((name, labels), value);
    }

    /// Sets a gauge that is rendered until it is set again.
    pub fn set_gauge(&mut self, name: &'static str, labels: Labels, value: f64) {
        self.gauges.insert((name, labels), value);
    }

    /// The text exposition, with the set gauges and `gauges` (name, labels, value) appended.
    pub fn render(&self, gauges: &[(&'static str, Labels, f64)]) -> String {
        let mut out = String::new();
        let mut last = "";
        for ((name, labels), h) in &self.histograms {
            if *name != last {
                let _ = writeln!(out, "# TYPE {name} histogram");
                last = name;
            }
            let le = |b: &str| {
                let mut l = labels.clone();
                l.push(("le", b.to_string()));
                fmt_labels(&l)
            };
            for (i, b) in BUCKETS.iter().enumerate() {
                let _ = writeln!(out, "{name}_bucket{} {}", le(&b.to_string()), h.counts[i]);
            }
            let _ = writeln!(out, "{name}_bucket{} {}", le("+Inf"), h.count);
            let _ = writeln!(out, "{name}_sum{} {}", fmt_labels(labels), h.sum);
            let _ = writeln!(out, "{name}_count{} {}", fmt_labels(labels), h.count);
        }
        for ((name, labels), v) in &self.counters {
            if *name != last {
                let _ = writeln!(out, "# TYPE {name} counter");
                last = name;
            }
            let _ = writeln!(out, "{name}{} {v}", fmt_labels(labels));
        }
        let set = self.gauges.iter().map(|((name, labels), v)| (name, labels, v));
        for (name, labels, v) in set.chain(gauges.iter().map(|(n, l, v)| (n, l, v))) {
            if *name != last {
                let _ = writeln!(out, "# TYPE {name} gauge");
                last = name;
            }
            let _ = writeln!(out, "{name}{} {v}", fmt_labels(labels));
        }
        out
    }
}

/// `{k="v",...}`, or nothing for a series without labels.
fn fmt_labels(labels: &[(&'static str, String)]) -> String {
    if labels.is_empty() {
        return String::new();
    }
    let inner = labels
        .iter()
        .map(|(k, v)| format!("{k}=\"{}\"", v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")))
        .collect::<Vec<_>>()
        .join(",");
    format!("{{{inner}}}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_histograms_counters_and_gauges() {
        let mut m = Metrics::default();
        m.observe(PROBE_DURATION, vec![("backend", "a".into()), ("op", "put".into())], 0.003);
        m.inc(DECISIONS, vec![("action", "failover".into())]);
        let text = m.render(&[(OPEN_INCIDENTS, vec![], 1.0)]);
        assert!(
            text.contains("cutover_probe_duration_seconds_bucket{backend=\"a\",op=\"put\",le=\"0.005\"} 1"),
            "{text}"
        );
        assert!(text.contains("cutover_probe_duration_seconds_bucket{backend=\"a\",op=\"put\",le=\"0.0025\"} 0"));
        assert!(text.contains("cutover_decisions_total{action=\"failover\"} 1"));
        assert!(text.contains("# TYPE cutover_open_incidents gauge\ncutover_open_incidents 1"), "{text}");
        m.observe(DETECT_TO_SWITCH, vec![], 2.0);
        let text = m.render(&[]);
        assert!(text.contains("cutover_detection_to_validated_switch_seconds_bucket{le=\"2.5\"} 1"), "{text}");
        assert!(text.contains("cutover_detection_to_validated_switch_seconds_count 1"), "{text}");
    }

    #[test]
    fn set_gauges_stay_until_set_again() {
        let mut m = Metrics::default();
        m.set_gauge(SIGNAL_UP, vec![("signal", "prometheus".into())], 1.0);
        m.set_gauge(SIGNAL_VALUE, vec![("signal", "prometheus".into())], f64::NAN);
        m.set_gauge(SIGNAL_UP, vec![("signal", "prometheus".into())], 0.0);
        let text = m.render(&[(OPEN_INCIDENTS, vec![], 0.0)]);
        assert!(
            text.contains("# TYPE cutover_signal_up gauge\ncutover_signal_up{signal=\"prometheus\"} 0\n"),
            "{text}"
        );
        assert!(text.contains("cutover_signal_value{signal=\"prometheus\"} NaN\n"), "{text}");
        assert!(text.contains("# TYPE cutover_open_incidents gauge\ncutover_open_incidents 0"), "{text}");
    }
}
