//! Gateway metrics in the Prometheus text format. Names are constants here;
//! [`Metrics::render`] writes them all.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

pub const REQUESTS: &str = "cutover_gateway_requests_total";
pub const LATENCY: &str = "cutover_gateway_request_duration_seconds";
pub const BYTES_IN: &str = "cutover_gateway_request_bytes_total";
pub const BYTES_OUT: &str = "cutover_gateway_response_bytes_total";
pub const JOURNAL_DEPTH: &str = "cutover_gateway_journal_depth";
pub const JOURNAL_OLDEST: &str = "cutover_gateway_journal_oldest_age_seconds";
pub const JOURNAL_APPENDED: &str = "cutover_gateway_journal_appended_total";
pub const JOURNAL_REPLAYED: &str = "cutover_gateway_journal_replayed_total";
pub const FALLBACKS: &str = "cutover_gateway_read_fallbacks_total";
pub const TLS_HANDSHAKE_FAILURES: &str = "cutover_gateway_tls_handshake_failures_total";
pub const CONNECTIONS_REFUSED: &str = "cutover_gateway_connections_refused_total";
pub const SLOW_CLIENTS: &str = "cutover_gateway_slow_client_bodies_total";
pub const HEDGED: &str = "cutover_gateway_hedged_writes_total";
pub const BACKEND_TIMEOUTS: &str = "cutover_gateway_backend_timeouts_total";

/// Upper bounds of the latency histogram buckets, in seconds.
const BUCKETS: [f64; 14] = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

#[derive(Debug, Default, Clone)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

/// Request counts by operation, backend and status, and the latency
/// histogram by operation: one lock, no allocation once a combination has
/// been seen.
#[derive(Debug, Default)]
struct Requests {
    counts: BTreeMap<&'static str, BTreeMap<String, BTreeMap<u16, u64>>>,
    latency: BTreeMap<&'static str, Histogram>,
}

/// Counters and histograms of one gateway (cheap to share).
#[derive(Debug, Default)]
pub struct Metrics {
    requests: Mutex<Requests>,
    pub(crate) bytes_in: Arc<AtomicU64>,
    pub(crate) bytes_out: Arc<AtomicU64>,
    pub(crate) journal_appended: AtomicU64,
    pub(crate) journal_replayed: AtomicU64,
    pub(crate) fallbacks: AtomicU64,
    pub(crate) tls_handshake_failures: AtomicU64,
    pub(crate) connections_refused: AtomicU64,
    pub(crate) slow_clients: Arc<AtomicU64>,
    pub(crate) hedged: AtomicU64,
    pub(crate) backend_timeouts: AtomicU64,
}

impl Metrics {
    /// Counts one request of `op` answered by `backend` (or `gateway`) with
    /// `status`; `elapsed` is the time to the answer's headers.
    pub fn request(&self, op: &'static str, backend: &str, status: u16, elapsed: Duration) {
        let secs = elapsed.as_secs_f64();
        let mut guard = self.requests.lock().expect("metrics lock");
        let r = &mut *guard;
        let by_backend = r.counts.entry(op).or_default();
        let by_status = match by_backend.get_mut(backend) {
            Some(m) => m,
            None => by_backend.entry(backend.to_string()).or_default(),
        };
        *by_status.entry(status).or_default() += 1;
        let h = r.latency.entry(op).or_default();
        for (i, le) in BUCKETS.iter().enumerate() {
            if secs <= *le {
                h.counts[i] += 1;
            }
        }
        h.count += 1;
        h.sum += secs;
    }

    /// The Prometheus text exposition; journal figures are passed in (they
    /// live in the state file).
    pub fn render(&self, journal_depth: u64, oldest_age: Option<Duration>) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "# HELP {REQUESTS} Requests by S3 operation, backend and HTTP status.");
        let _ = writeln!(out, "# TYPE {REQUESTS} counter");
        let r = self.requests.lock().expect("metrics lock");
        for (op, by_backend) in &r.counts {
            for (backend, by_status) in by_backend {
                for (status, n) in by_status {
                    let _ =
                        writeln!(out, "{REQUESTS}{{operation=\"{op}\",backend=\"{backend}\",status=\"{status}\"}} {n}");
                }
            }
        }
        let _ = writeln!(out, "# HELP {LATENCY} Time from request to answer headers.");
        let _ = writeln!(out, "# TYPE {LATENCY} histogram");
        for (op, h) in &r.latency {
            for (i, le) in BUCKETS.iter().enumerate() {
                let _ = writeln!(out, "{LATENCY}_bucket{{operation=\"{op}\",le=\"{le}\"}} {}", h.counts[i]);
            }
            let _ = writeln!(out, "{LATENCY}_bucket{{operation=\"{op}\",le=\"+Inf\"}} {}", h.count);
            let _ = writeln!(out, "{LATENCY}_sum{{operation=\"{op}\"}} {}", h.sum);
            let _ = writeln!(out, "{LATENCY}_count{{operation=\"{op}\"}} {}", h.count);
        }
        drop(r);
        let counters = [
            (BYTES_IN, "Request body bytes received from clients.", self.bytes_in.load(Ordering::Relaxed)),
            (BYTES_OUT, "Response body bytes sent to clients.", self.bytes_out.load(Ordering::Relaxed)),
            (JOURNAL_APPENDED, "Journal entries written.", self.journal_appended.load(Ordering::Relaxed)),
            (JOURNAL_REPLAYED, "Journal entries replayed successfully.", self.journal_replayed.load(Ordering::Relaxed)),
            (FALLBACKS, "Reads served by the other backend (read-through).", self.fallbacks.load(Ordering::Relaxed)),
            (
                TLS_HANDSHAKE_FAILURES,
                "Client connections whose TLS handshake failed or timed out.",
                self.tls_handshake_failures.load(Ordering::Relaxed),
            ),
            (
                CONNECTIONS_REFUSED,
                "Client connections closed at once because max_connections were open.",
                self.connections_refused.load(Ordering::Relaxed),
            ),
            (
                SLOW_CLIENTS,
                "Request bodies refused because the client sent them slower than client_min_body_rate.",
                self.slow_clients.load(Ordering::Relaxed),
            ),
            (
                HEDGED,
                "Dual-writes acknowledged from the other backend because the active one did not answer in time (journaled for it).",
                self.hedged.load(Ordering::Relaxed),
            ),
            (
                BACKEND_TIMEOUTS,
                "Backend requests that missed a deadline (first byte or idle).",
                self.backend_timeouts.load(Ordering::Relaxed),
            ),
        ];
        for (name, help, v) in counters {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}");
        }
        let _ =
            writeln!(out, "# HELP {JOURNAL_DEPTH} Journal entries waiting for replay.\n# TYPE {JOURNAL_DEPTH} gauge");
        let _ = writeln!(out, "{JOURNAL_DEPTH} {journal_depth}");
        let _ = writeln!(
            out,
            "# HELP {JOURNAL_OLDEST} Age of the oldest pending journal entry (0 when empty).\n# TYPE {JOURNAL_OLDEST} gauge"
        );
        let _ = writeln!(out, "{JOURNAL_OLDEST} {}", oldest_age.map(|d| d.as_secs_f64()).unwrap_or(0.0));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_histograms_and_journal_gauges() {
        let m = Metrics::default();
        m.request("GetObject", "primary", 200, Duration::from_millis(2));
        m.request("GetObject", "primary", 200, Duration::from_millis(20));
        let text = m.render(3, Some(Duration::from_secs(7)));
        assert!(
            text.contains(
                "cutover_gateway_requests_total{operation=\"GetObject\",backend=\"primary\",status=\"200\"} 2"
            )
        );
        assert!(
            text.contains("cutover_gateway_request_duration_seconds_bucket{operation=\"GetObject\",le=\"0.0025\"} 1")
        );
        assert!(text.contains("cutover_gateway_request_duration_seconds_count{operation=\"GetObject\"} 2"));
        assert!(text.contains("cutover_gateway_journal_depth 3"));
        assert!(text.contains("cutover_gateway_journal_oldest_age_seconds 7"));
    }
}
