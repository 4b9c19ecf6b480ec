//! Gateway metrics: atomic counters, gauges and histograms that the gateway
//! registers into the process's `prometheus-client` [`Registry`]
//! ([`Metrics::register`]). Nothing on the request path takes a lock other
//! than a family's shared read lock (and the usual label sets not even that:
//! their handles are kept), and nothing allocates once a label set has been
//! seen.
//!
//! Names are constants here. The encoder appends `_total` to counters, so a
//! counter's constant is its exposed name without it (`REQUESTS` is exposed
//! as `cutover_gateway_requests_total`).

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use prometheus_client::encoding::{
    EncodeLabelSet, EncodeLabelValue, EncodeMetric, LabelValueEncoder, MetricEncoder, NoLabelSet,
};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::{MetricType, TypedMetric};
use prometheus_client::registry::Registry;

use crate::route::S3Op;
use crate::server::lane::LaneMetrics;

pub const REQUESTS: &str = "cutover_gateway_requests";
pub const LATENCY: &str = "cutover_gateway_request_duration_seconds";
pub const BYTES_IN: &str = "cutover_gateway_request_bytes";
pub const BYTES_OUT: &str = "cutover_gateway_response_bytes";
pub const JOURNAL_DEPTH: &str = "cutover_gateway_journal_depth";
pub const ACTIVE_AGE: &str = "cutover_gateway_active_age_seconds";
pub const JOURNAL_OLDEST: &str = "cutover_gateway_journal_oldest_age_seconds";
pub const JOURNAL_APPENDED: &str = "cutover_gateway_journal_appended";
pub const JOURNAL_REPLAYED: &str = "cutover_gateway_journal_replayed";
pub const FALLBACKS: &str = "cutover_gateway_read_fallbacks";
pub const TLS_HANDSHAKE_FAILURES: &str = "cutover_gateway_tls_handshake_failures";
pub const CONNECTIONS_REFUSED: &str = "cutover_gateway_connections_refused";
pub const SLOW_CLIENTS: &str = "cutover_gateway_slow_client_bodies";
pub const HEDGED: &str = "cutover_gateway_hedged_writes";
pub const BACKEND_TIMEOUTS: &str = "cutover_gateway_backend_timeouts";
pub const FAST_PATH: &str = "cutover_gateway_fast_path_requests";
pub const LANE_CONNECTIONS: &str = "cutover_gateway_lane_connections";
pub const LANE_BUSY: &str = "cutover_gateway_lane_busy_ratio";
pub const LANE_DEPARTURES: &str = "cutover_gateway_lane_departures";

/// The `backend` label of a request the gateway answered itself.
pub const GATEWAY: &str = "gateway";

/// Upper bounds of the latency histogram buckets, in seconds.
const BUCKETS: [f64; 14] = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// A backend's name as a label value: shared, cloned without allocating.
#[derive(Debug, Clone, Hash, PartialEq, Eq)]
pub struct BackendLabel(Arc<str>);

impl EncodeLabelValue for BackendLabel {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> std::fmt::Result {
        encoder.write_str(&self.0)
    }
}

/// The labels of [`REQUESTS`].
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    operation: &'static str,
    backend: BackendLabel,
    status: u16,
}

/// The labels of [`LATENCY`].
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OperationLabel {
    operation: &'static str,
}

/// A latency histogram of atomic cells (`prometheus-client`'s own takes a
/// mutex per observation). Bucket counts are kept per bucket and summed when
/// encoded; the sum is kept in nanoseconds.
#[derive(Debug, Clone, Default)]
pub struct LatencyHistogram(Arc<Cells>);

#[derive(Debug, Default)]
struct Cells {
    /// Observations per bucket of [`BUCKETS`], then the overflow (`+Inf`).
    buckets: [AtomicU64; BUCKETS.len() + 1],
    sum_nanos: AtomicU64,
}

impl LatencyHistogram {
    pub fn observe(&self, elapsed: Duration) {
        let secs = elapsed.as_secs_f64();
        let i = BUCKETS.iter().position(|le| secs <= *le).unwrap_or(BUCKETS.len());
        self.0.buckets[i].fetch_add(1, Ordering::Relaxed);
        let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        self.0.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
    }
}

impl TypedMetric for LatencyHistogram {
    const TYPE: MetricType = MetricType::Histogram;
}

impl EncodeMetric for LatencyHistogram {
    fn encode(&self, mut encoder: MetricEncoder) -> std::fmt::Result {
        let mut buckets = [(0.0, 0); BUCKETS.len() + 1];
        let mut count = 0;
        for (i, cell) in self.0.buckets.iter().enumerate() {
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

/// Statuses whose request counters are kept as handles ([`Hot`]).
const HOT_STATUSES: [u16; 5] = [200, 204, 206, 304, 404];

/// Handles onto the [`REQUESTS`] counters of (operation, known backend,
/// usual status) and the [`LATENCY`] histograms per operation, each looked
/// up in its family the first time it counts: the same cells the families
/// export, reached without the family's lock and label hashing.
#[derive(Debug)]
struct Hot {
    /// Indexed by operation, then backend, then [`HOT_STATUSES`].
    requests: Box<[OnceLock<Counter>]>,
    backends: usize,
    /// Indexed by operation.
    latency: Box<[OnceLock<LatencyHistogram>]>,
}

impl Hot {
    fn new(backends: usize) -> Self {
        Hot { requests: cells(S3Op::COUNT * backends * HOT_STATUSES.len()), backends, latency: cells(S3Op::COUNT) }
    }

    /// The cell of a label set, when it is one kept here.
    fn requests(&self, op: S3Op, backend: usize, status: u16) -> Option<&OnceLock<Counter>> {
        let s = HOT_STATUSES.iter().position(|h| *h == status)?;
        self.requests.get(((op as usize) * self.backends + backend) * HOT_STATUSES.len() + s)
    }
}

fn cells<T>(n: usize) -> Box<[OnceLock<T>]> {
    (0..n).map(|_| OnceLock::new()).collect()
}

/// Counters, gauges and histograms of one gateway. Every field is a handle
/// onto shared atomics: clones count into the same cells.
#[derive(Debug, Clone)]
pub struct Metrics {
    requests: Family<RequestLabels, Counter>,
    latency: Family<OperationLabel, LatencyHistogram>,
    /// The `backend` label values known in advance: the configured backends
    /// and [`GATEWAY`].
    backends: Arc<[BackendLabel]>,
    /// Handles of the commonest label sets, looked up once.
    hot: Arc<Hot>,
    pub(crate) bytes_in: Counter,
    pub(crate) bytes_out: Counter,
    pub(crate) journal_appended: Counter,
    pub(crate) journal_replayed: Counter,
    pub(crate) fallbacks: Counter,
    pub(crate) tls_handshake_failures: Counter,
    pub(crate) connections_refused: Counter,
    pub(crate) slow_clients: Counter,
    pub(crate) hedged: Counter,
    pub(crate) backend_timeouts: Counter,
    pub(crate) fast_path: Counter,
    pub(crate) lane: LaneMetrics,
    journal_depth: Gauge,
    journal_oldest: Gauge<f64, AtomicU64>,
    active_age: Gauge<f64, AtomicU64>,
    /// Every answer, and the 5xx among them (not exported: the per-second
    /// figures of [`Metrics::answers`] go to the store for incident reports).
    answered: Counter,
    failed: Counter,
}

impl Metrics {
    /// Metrics for a gateway in front of `backends` (the `backend` label
    /// values resolved in advance).
    pub fn new<'a>(backends: impl IntoIterator<Item = &'a str>) -> Self {
        let backends: Arc<[BackendLabel]> =
            backends.into_iter().chain([GATEWAY]).map(|b| BackendLabel(Arc::from(b))).collect();
        Self {
            requests: Family::default(),
            latency: Family::default(),
            hot: Arc::new(Hot::new(backends.len())),
            backends,
            bytes_in: Counter::default(),
            bytes_out: Counter::default(),
            journal_appended: Counter::default(),
            journal_replayed: Counter::default(),
            fallbacks: Counter::default(),
            tls_handshake_failures: Counter::default(),
            connections_refused: Counter::default(),
            slow_clients: Counter::default(),
            hedged: Counter::default(),
            backend_timeouts: Counter::default(),
            fast_path: Counter::default(),
            lane: LaneMetrics::default(),
            journal_depth: Gauge::default(),
            journal_oldest: Gauge::default(),
            active_age: Gauge::default(),
            answered: Counter::default(),
            failed: Counter::default(),
        }
    }

    /// Registers every family into `registry` (the process has one).
    pub fn register(&self, registry: &mut Registry) {
        registry.register(REQUESTS, "Requests by S3 operation, backend and HTTP status", self.requests.clone());
        registry.register(LATENCY, "Time from request to answer headers", self.latency.clone());
        let counters = [
            (BYTES_IN, "Request body bytes received from clients", &self.bytes_in),
            (BYTES_OUT, "Response body bytes sent to clients", &self.bytes_out),
            (JOURNAL_APPENDED, "Journal entries written", &self.journal_appended),
            (JOURNAL_REPLAYED, "Journal entries replayed successfully", &self.journal_replayed),
            (FALLBACKS, "Reads served by the other backend (read-through)", &self.fallbacks),
            (
                TLS_HANDSHAKE_FAILURES,
                "Client connections whose TLS handshake failed or timed out",
                &self.tls_handshake_failures,
            ),
            (
                CONNECTIONS_REFUSED,
                "Client connections closed at once because max_connections were open",
                &self.connections_refused,
            ),
            (
                SLOW_CLIENTS,
                "Request bodies refused because the client sent them slower than client_min_body_rate",
                &self.slow_clients,
            ),
            (
                HEDGED,
                "Dual-writes acknowledged from the other backend because the active one did not answer in time (journaled for it)",
                &self.hedged,
            ),
            (BACKEND_TIMEOUTS, "Backend requests that missed a deadline (first byte or idle)", &self.backend_timeouts),
            (
                FAST_PATH,
                "Requests answered on the fast path (small PUT, DELETE and HEAD read whole, without hyper)",
                &self.fast_path,
            ),
            (
                LANE_DEPARTURES,
                "Client connections sent from the fast lane back to the runtime's workers because the lane was busy",
                &self.lane.departures,
            ),
        ];
        for (name, help, counter) in counters {
            registry.register(name, help, counter.clone());
        }
        registry.register(
            LANE_CONNECTIONS,
            "Plain client connections on the fast lane (the gateway's single-threaded event loop) now",
            self.lane.visitors.clone(),
        );
        registry.register(LANE_BUSY, "Share of the last 50 ms the fast lane was busy (0 to 1)", self.lane.busy.clone());
        registry.register(JOURNAL_DEPTH, "Journal entries waiting for replay", self.journal_depth.clone());
        registry.register(
            JOURNAL_OLDEST,
            "Age of the oldest pending journal entry (0 when empty)",
            self.journal_oldest.clone(),
        );
        registry.register(
            ACTIVE_AGE,
            "Seconds since the active backend's value was confirmed with its source (etcd or the state file; 0 when the controller in this process sets it)",
            self.active_age.clone(),
        );
    }

    /// (answers, of them 5xx) since the gateway started.
    pub fn answers(&self) -> (u64, u64) {
        (self.answered.get(), self.failed.get())
    }

    /// Sets the age of the served active backend's value.
    pub fn set_active_age(&self, age: Option<Duration>) {
        self.active_age.set(age.map(|d| d.as_secs_f64()).unwrap_or(0.0));
    }

    /// Counts one request of `op` answered by `backend` (or [`GATEWAY`]) with
    /// `status`; `elapsed` is the time to the answer's headers.
    ///
    /// A known backend with a usual status counts through handles looked up
    /// once ([`Hot`]): no lock, no hashing of labels.
    pub fn request(&self, op: S3Op, backend: &str, status: u16, elapsed: Duration) {
        let at = self.backends.iter().position(|b| &*b.0 == backend);
        let hot = at.and_then(|b| self.hot.requests(op, b, status));
        match hot {
            Some(cell) => cell.get_or_init(|| self.requests_family(op, at, backend, status)).inc(),
            None => self.requests_family(op, at, backend, status).inc(),
        };
        self.answered.inc();
        if status >= 500 {
            self.failed.inc();
        }
        let latency = |op: S3Op| self.latency.get_or_create(&OperationLabel { operation: op.name() }).clone();
        match self.hot.latency.get(op as usize) {
            Some(cell) => cell.get_or_init(|| latency(op)).observe(elapsed),
            None => latency(op).observe(elapsed),
        }
    }

    /// The counter of one label set, from its family (`at`: the backend's
    /// index in `backends`, when it is a known one).
    fn requests_family(&self, op: S3Op, at: Option<usize>, backend: &str, status: u16) -> Counter {
        let backend = match at {
            Some(i) => self.backends[i].clone(),
            None => BackendLabel(Arc::from(backend)),
        };
        self.requests.get_or_create(&RequestLabels { operation: op.name(), backend, status }).clone()
    }

    /// Sets the journal gauges (their figures live in the state file).
    pub fn set_journal(&self, depth: u64, oldest_age: Option<Duration>) {
        self.journal_depth.set(i64::try_from(depth).unwrap_or(i64::MAX));
        self.journal_oldest.set(oldest_age.map(|d| d.as_secs_f64()).unwrap_or(0.0));
    }

    /// The Prometheus text exposition (format 0.0.4) of these metrics alone,
    /// with the journal figures passed in.
    pub fn render(&self, journal_depth: u64, oldest_age: Option<Duration>) -> String {
        self.set_journal(journal_depth, oldest_age);
        let mut registry = Registry::default();
        self.register(&mut registry);
        let mut out = String::new();
        if let Err(e) = prometheus_client::encoding::prometheus_text::encode(&mut out, &registry) {
            // Writing into a String cannot fail; an encoder error is a bug.
            tracing::error!(error = %e, "encoding the gateway metrics failed");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_histograms_and_journal_gauges() {
        let m = Metrics::new(["primary"]);
        m.request(S3Op::GetObject, "primary", 200, Duration::from_millis(2));
        m.request(S3Op::GetObject, "primary", 200, Duration::from_millis(20));
        let text = m.render(3, Some(Duration::from_secs(7)));
        assert!(
            text.contains(
                "cutover_gateway_requests_total{operation=\"GetObject\",backend=\"primary\",status=\"200\"} 2"
            ),
            "{text}"
        );
        assert!(
            text.contains("cutover_gateway_request_duration_seconds_bucket{operation=\"GetObject\",le=\"0.0025\"} 1"),
            "{text}"
        );
        assert!(text.contains("cutover_gateway_request_duration_seconds_count{operation=\"GetObject\"} 2"), "{text}");
        assert!(text.contains("cutover_gateway_journal_depth 3"), "{text}");
        assert!(text.contains("cutover_gateway_journal_oldest_age_seconds 7"), "{text}");
    }

    #[test]
    fn names_help_and_types_are_those_exposed_before_prometheus_client() {
        let m = Metrics::new(["primary"]);
        m.request(S3Op::PutObject, "elsewhere", 503, Duration::from_secs(20));
        m.bytes_in.inc_by(5);
        let text = m.render(0, None);
        for line in [
            "# HELP cutover_gateway_requests_total Requests by S3 operation, backend and HTTP status.",
            "# TYPE cutover_gateway_requests_total counter",
            "cutover_gateway_requests_total{operation=\"PutObject\",backend=\"elsewhere\",status=\"503\"} 1",
            "# TYPE cutover_gateway_request_duration_seconds histogram",
            "cutover_gateway_request_duration_seconds_bucket{operation=\"PutObject\",le=\"10\"} 0",
            "cutover_gateway_request_duration_seconds_bucket{operation=\"PutObject\",le=\"+Inf\"} 1",
            "cutover_gateway_request_duration_seconds_sum{operation=\"PutObject\"} 20",
            "cutover_gateway_request_bytes_total 5",
            "cutover_gateway_response_bytes_total 0",
            "# TYPE cutover_gateway_journal_depth gauge",
            "cutover_gateway_journal_oldest_age_seconds 0",
            "cutover_gateway_backend_timeouts_total 0",
        ] {
            assert!(text.lines().any(|l| l == line || l.starts_with(&format!("{line}."))), "{line}\n{text}");
        }
        assert!(!text.contains("# EOF"), "{text}");
    }

    #[test]
    fn requests_count_into_the_exported_cells_with_handles_or_without() {
        // Handles for (PutObject, primary, 200) and (HeadObject, gateway,
        // 404); a 500 and an unknown backend through the family; a clone
        // of the metrics counts into the same cells.
        let m = Metrics::new(["primary", "secondary"]);
        let clone = m.clone();
        for _ in 0..3 {
            m.request(S3Op::PutObject, "primary", 200, Duration::from_millis(1));
        }
        clone.request(S3Op::PutObject, "primary", 200, Duration::from_millis(1));
        m.request(S3Op::PutObject, "primary", 500, Duration::from_millis(1));
        m.request(S3Op::HeadObject, GATEWAY, 404, Duration::from_millis(1));
        clone.request(S3Op::HeadObject, GATEWAY, 404, Duration::from_millis(1));
        m.request(S3Op::PutObject, "elsewhere", 200, Duration::from_millis(1));
        m.request(S3Op::Unsupported, "secondary", 204, Duration::from_millis(1));
        let text = clone.render(0, None);
        for line in [
            "cutover_gateway_requests_total{operation=\"PutObject\",backend=\"primary\",status=\"200\"} 4",
            "cutover_gateway_requests_total{operation=\"PutObject\",backend=\"primary\",status=\"500\"} 1",
            "cutover_gateway_requests_total{operation=\"HeadObject\",backend=\"gateway\",status=\"404\"} 2",
            "cutover_gateway_requests_total{operation=\"PutObject\",backend=\"elsewhere\",status=\"200\"} 1",
            "cutover_gateway_requests_total{operation=\"Unsupported\",backend=\"secondary\",status=\"204\"} 1",
            "cutover_gateway_request_duration_seconds_count{operation=\"PutObject\"} 6",
            "cutover_gateway_request_duration_seconds_count{operation=\"HeadObject\"} 2",
            "cutover_gateway_request_duration_seconds_count{operation=\"Unsupported\"} 1",
        ] {
            assert!(text.lines().any(|l| l == line), "{line}\n{text}");
        }
        assert_eq!(m.answers(), (9, 1));
    }
}
