//! The controller's Prometheus metrics: atomic families that the binary
//! registers into the process's one `prometheus-client` [`Registry`]
//! ([`Metrics::register`]). Only [`crate::telemetry`] updates them (from
//! typed events), apart from the values kept elsewhere that are copied in
//! when scraped ([`Metrics::set_status`], [`Metrics::set_denials`]).
//!
//! Names are constants here, nowhere else. The encoder appends `_total` to
//! counters, so a counter's constant is its exposed name without it
//! (`DECISIONS` is exposed as `cutover_decisions_total`).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use prometheus_client::encoding::{EncodeLabelSet, EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::{MetricType, TypedMetric};
use prometheus_client::registry::Registry;

use crate::controller::Status;
use crate::health::Health;

pub const PROBE_DURATION: &str = "cutover_probe_duration_seconds";
pub const PROBE_OPS: &str = "cutover_probe_operations";
pub const PROBE_CYCLES: &str = "cutover_probe_cycles";
pub const BACKEND_HEALTH: &str = "cutover_backend_health";
pub const DECISIONS: &str = "cutover_decisions";
pub const OPEN_INCIDENTS: &str = "cutover_open_incidents";
pub const HEALTH_CHANGES: &str = "cutover_health_transitions";
pub const STEP_DURATION: &str = "cutover_runbook_step_duration_seconds";
pub const RUNS: &str = "cutover_runbook_runs";
pub const FAILOVERS: &str = "cutover_failovers";
pub const FALLBACKS: &str = "cutover_fallbacks";
pub const ROLLBACKS: &str = "cutover_rollbacks";
/// Scheduled drills by scenario and result (`met`, `breached`, `error`).
pub const DRILLS: &str = "cutover_drills";
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
pub const CONNECTIONS_REFUSED: &str = "cutover_connections_refused";
/// State store operations that failed (label `op`: `decision`, `approval`,
/// `incident.open`, `audit.denied`, ...). What such a write was part of is
/// not performed, except records of what already happened.
pub const STORE_ERRORS: &str = "cutover_store_errors";
/// Refused API requests that found the audit queue full; they are still
/// counted in the next `api.denied` entry, without actor and path.
pub const AUDIT_DENIALS_QUEUE_FULL: &str = "cutover_audit_denials_queue_full";
/// `api.denied` audit entries written (each aggregates one or more refusals).
pub const AUDIT_DENIAL_ENTRIES: &str = "cutover_audit_denial_entries";
/// Audit segments uploaded to the export (label `result`: `ok`, `error`).
pub const AUDIT_EXPORT_SEGMENTS: &str = "cutover_audit_export_segments";
/// The newest audit entry known to be in the export.
pub const AUDIT_EXPORTED_SEQ: &str = "cutover_audit_exported_seq";
/// 1 while this controller leads (HA), else 0.
pub const HA_LEADER: &str = "cutover_ha_leader";
/// Times this controller started or stopped leading (or led with a new token).
pub const HA_LEADERSHIP_CHANGES: &str = "cutover_ha_leadership_changes";
/// Writes the store refused because their fence no longer held.
pub const HA_FENCED_WRITES: &str = "cutover_ha_fenced_writes";

/// Upper bounds of the histogram buckets, in seconds.
const BUCKETS: [f64; 15] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0];

/// The health states exposed by [`BACKEND_HEALTH`], one series each.
const HEALTH_STATES: [Health; 5] =
    [Health::Healthy, Health::Suspect, Health::Down, Health::Recovering, Health::Unknown];

/// A histogram of atomic cells over `BUCKETS` (`prometheus-client`'s own
/// takes a mutex per observation). The sum is kept in nanoseconds.
#[derive(Debug, Clone, Default)]
pub struct Histogram(Arc<Cells>);

#[derive(Debug, Default)]
struct Cells {
    /// Observations per bucket of [`BUCKETS`], then the overflow (`+Inf`).
    buckets: [AtomicU64; BUCKETS.len() + 1],
    sum_nanos: AtomicU64,
}

impl Histogram {
    pub fn observe(&self, elapsed: Duration) {
        let secs = elapsed.as_secs_f64();
        let i = BUCKETS.iter().position(|le| secs <= *le).unwrap_or(BUCKETS.len());
        self.0.buckets[i].fetch_add(1, Ordering::Relaxed);
        let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        self.0.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
    }
}

impl TypedMetric for Histogram {
    const TYPE: MetricType = MetricType::Histogram;
}

impl EncodeMetric for Histogram {
    fn encode(&self, mut encoder: MetricEncoder) -> std::fmt::Result {
        let mut buckets = [(0.0, 0); BUCKETS.len() + 1];
        let mut count = 0;
        for (i, cell) in self.0.buckets.iter().enumerate() {
            // Per bucket: the text encoder makes them cumulative.
            let n = cell.load(Ordering::Relaxed);
            count += n;
            buckets[i] = (BUCKETS.get(i).copied().unwrap_or(f64::INFINITY), n);
        }
        let sum = Duration::from_nanos(self.0.sum_nanos.load(Ordering::Relaxed)).as_secs_f64();
        encoder.encode_histogram::<NoLabelSet>(sum, count, &buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        Self::TYPE
    }
}

/// A gauge of any `f64` (NaN included) that shows whole numbers without a
/// fraction (`2`, not `2.0`), as the controller always has.
#[derive(Debug, Clone, Default)]
pub struct F64Gauge(Arc<AtomicU64>);

impl F64Gauge {
    pub fn set(&self, v: f64) {
        self.0.store(v.to_bits(), Ordering::Relaxed);
    }

    pub fn get(&self) -> f64 {
        f64::from_bits(self.0.load(Ordering::Relaxed))
    }
}

impl TypedMetric for F64Gauge {
    const TYPE: MetricType = MetricType::Gauge;
}

impl EncodeMetric for F64Gauge {
    fn encode(&self, mut encoder: MetricEncoder) -> std::fmt::Result {
        let v = self.get();
        // Exactly representable whole numbers as integers; the rest (NaN,
        // fractions, huge values) as floats.
        if v.is_finite() && v.fract() == 0.0 && v.abs() < 9_007_199_254_740_992.0 {
            encoder.encode_gauge(&(v as i64))
        } else {
            encoder.encode_gauge(&v)
        }
    }

    fn metric_type(&self) -> MetricType {
        Self::TYPE
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct ProbeOpLabels {
    pub backend: String,
    pub vantage: String,
    pub op: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct ProbeOutcomeLabels {
    pub backend: String,
    pub vantage: String,
    pub op: String,
    pub outcome: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct CycleLabels {
    pub backend: String,
    pub vantage: String,
    pub outcome: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct HealthLabels {
    pub backend: String,
    pub state: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct TransitionLabels {
    pub backend: String,
    pub vantage: String,
    pub to: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct ActionLabel {
    pub action: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct StepLabels {
    pub uses: String,
    pub phase: &'static str,
    pub ok: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct RunLabels {
    pub kind: String,
    pub outcome: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct KindLabel {
    pub kind: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct DrillLabels {
    pub scenario: String,
    pub result: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct SignalLabel {
    pub signal: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct ListenerLabel {
    pub listener: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct OpLabel {
    pub op: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct ResultLabel {
    pub result: &'static str,
}

/// The controller's families. Every field is a handle onto shared atomics:
/// clones count into the same cells, so the controller, the runbook queue
/// and the API each hold one.
#[derive(Debug, Clone, Default)]
pub struct Metrics {
    pub(crate) probe_duration: Family<ProbeOpLabels, Histogram>,
    pub(crate) probe_ops: Family<ProbeOutcomeLabels, Counter>,
    pub(crate) probe_cycles: Family<CycleLabels, Counter>,
    backend_health: Family<HealthLabels, Gauge>,
    pub(crate) decisions: Family<ActionLabel, Counter>,
    open_incidents: Gauge,
    pub(crate) health_changes: Family<TransitionLabels, Counter>,
    pub(crate) step_duration: Family<StepLabels, Histogram>,
    pub(crate) runs: Family<RunLabels, Counter>,
    pub(crate) failovers: Counter,
    pub(crate) fallbacks: Counter,
    pub(crate) rollbacks: Family<KindLabel, Counter>,
    pub(crate) drills: Family<DrillLabels, Counter>,
    pub(crate) detect_to_switch: Histogram,
    pub(crate) signal_up: Family<SignalLabel, Gauge>,
    pub(crate) signal_value: Family<SignalLabel, F64Gauge>,
    pub(crate) signal_firing: Family<SignalLabel, F64Gauge>,
    pub(crate) connections_refused: Family<ListenerLabel, Counter>,
    pub(crate) store_errors: Family<OpLabel, Counter>,
    audit_denials_queue_full: Counter,
    audit_denial_entries: Counter,
    pub(crate) audit_export_segments: Family<ResultLabel, Counter>,
    pub(crate) audit_exported_seq: Gauge,
    pub(crate) ha_leader: Gauge,
    pub(crate) ha_leadership_changes: Counter,
    pub(crate) ha_fenced_writes: Counter,
}

impl Metrics {
    /// Registers every family into `registry` (the process has one).
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            PROBE_DURATION,
            "Probe operation latency by backend, vantage and operation",
            self.probe_duration.clone(),
        );
        registry.register(
            PROBE_OPS,
            "Probe operations by backend, vantage, operation and outcome",
            self.probe_ops.clone(),
        );
        registry.register(PROBE_CYCLES, "Probe cycles by backend, vantage and outcome", self.probe_cycles.clone());
        registry.register(
            BACKEND_HEALTH,
            "1 for the backend's current health state, else 0",
            self.backend_health.clone(),
        );
        registry.register(DECISIONS, "Decisions of the policy by action", self.decisions.clone());
        registry.register(OPEN_INCIDENTS, "Incidents not closed", self.open_incidents.clone());
        registry.register(
            HEALTH_CHANGES,
            "Health transitions by backend, vantage and new state",
            self.health_changes.clone(),
        );
        registry.register(
            STEP_DURATION,
            "Runbook step durations by actuator, phase and result",
            self.step_duration.clone(),
        );
        registry.register(RUNS, "Runbook runs by kind and outcome", self.runs.clone());
        registry.register(FAILOVERS, "Failovers completed", self.failovers.clone());
        registry.register(FALLBACKS, "Fallbacks completed", self.fallbacks.clone());
        registry.register(ROLLBACKS, "Runs rolled back or failed, by kind", self.rollbacks.clone());
        registry.register(DRILLS, "Scheduled drills by scenario and result", self.drills.clone());
        registry.register(
            DETECT_TO_SWITCH,
            "Time from the incident's opening (outage detected) to the validated switch",
            self.detect_to_switch.clone(),
        );
        registry.register(SIGNAL_UP, "1 when the latest read of the signal succeeded, else 0", self.signal_up.clone());
        registry.register(
            SIGNAL_VALUE,
            "The signal's value (status page indicator 0 to 3); NaN while unavailable",
            self.signal_value.clone(),
        );
        registry.register(
            SIGNAL_FIRING,
            "1 when the signal is firing, 0 when not, NaN while unavailable",
            self.signal_firing.clone(),
        );
        registry.register(
            CONNECTIONS_REFUSED,
            "Connections a listener closed at once because it was at its cap",
            self.connections_refused.clone(),
        );
        registry.register(STORE_ERRORS, "State store operations that failed, by operation", self.store_errors.clone());
        registry.register(
            AUDIT_DENIALS_QUEUE_FULL,
            "Refused API requests that found the audit queue full",
            self.audit_denials_queue_full.clone(),
        );
        registry.register(AUDIT_DENIAL_ENTRIES, "api.denied audit entries written", self.audit_denial_entries.clone());
        registry.register(
            AUDIT_EXPORT_SEGMENTS,
            "Audit segments uploaded to the export, by result",
            self.audit_export_segments.clone(),
        );
        registry.register(
            AUDIT_EXPORTED_SEQ,
            "The newest audit entry known to be in the export",
            self.audit_exported_seq.clone(),
        );
        registry.register(HA_LEADER, "1 while this controller leads, else 0", self.ha_leader.clone());
        registry.register(
            HA_LEADERSHIP_CHANGES,
            "Times this controller started or stopped leading",
            self.ha_leadership_changes.clone(),
        );
        registry.register(
            HA_FENCED_WRITES,
            "Writes the store refused because their fence no longer held",
            self.ha_fenced_writes.clone(),
        );
    }

    /// Copies what the controller's status says (health per backend, open
    /// incidents) into the gauges.
    pub fn set_status(&self, status: &Status) {
        for b in &status.backends {
            for state in HEALTH_STATES {
                let labels = HealthLabels { backend: b.name.clone(), state: state.as_str() };
                self.backend_health.get_or_create(&labels).set(i64::from(b.health == state));
            }
        }
        self.open_incidents.set(i64::try_from(status.open_incidents).unwrap_or(i64::MAX));
    }

    /// Copies the refused-request audit counts (kept by the denial log,
    /// monotonic there) into their counters: failed writes, refusals that
    /// found the queue full, entries written.
    pub fn set_denials(&self, failed: u64, dropped: u64, written: u64) {
        let op = OpLabel { op: "audit.denied".into() };
        self.store_errors.get_or_create(&op).inner().store(failed, Ordering::Relaxed);
        self.audit_denials_queue_full.inner().store(dropped, Ordering::Relaxed);
        self.audit_denial_entries.inner().store(written, Ordering::Relaxed);
    }
}

/// A duration from seconds that may be negative, NaN or huge (0 then).
pub(crate) fn seconds(s: f64) -> Duration {
    Duration::try_from_secs_f64(s).unwrap_or_default()
}

#[cfg(test)]
#[path = "metrics/tests.rs"]
mod tests;
