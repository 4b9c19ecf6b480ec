//! The gauges that the alerting rules (`deploy/prometheus/`) read and that
//! no stage exports by itself: how long an incident has awaited a human,
//! whether the audit chain verifies, and the replication lag that
//! `cutover replicate` recorded. [`follow`] refreshes them every [`EVERY`].

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, SystemTime};

use cutover_core::domain::IncidentState;
use cutover_store::Store;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::wiring::Shared;

/// How often the gauges are refreshed.
const EVERY: Duration = Duration::from_secs(5);
/// The audit chain is verified this often (it reads every entry).
const VERIFY_EVERY: Duration = Duration::from_secs(60);

pub const AWAITING: &str = "cutover_incidents_awaiting_approval";
pub const AWAITING_SECONDS: &str = "cutover_incident_awaiting_approval_seconds";
pub const AUDIT_CHAIN_OK: &str = "cutover_audit_chain_ok";
pub const REPLICATION_PENDING_SECONDS: &str = "cutover_replication_pending_seconds";
pub const REPLICATION_PENDING_OBJECTS: &str = "cutover_replication_pending_objects";

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PairLabels {
    src: String,
    dst: String,
}

/// The gauges; cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Gauges {
    awaiting: Gauge,
    awaiting_seconds: Gauge<f64, AtomicU64>,
    audit_ok: Gauge,
    pending_seconds: Family<PairLabels, Gauge<f64, AtomicU64>>,
    pending_objects: Family<PairLabels, Gauge>,
}

impl Gauges {
    pub fn register(&self, registry: &mut Registry) {
        registry.register(AWAITING, "Open incidents awaiting a human's approval", self.awaiting.clone());
        registry.register(
            AWAITING_SECONDS,
            "How long the longest-waiting incident has awaited approval (0 when none)",
            self.awaiting_seconds.clone(),
        );
        registry.register(
            AUDIT_CHAIN_OK,
            "1 when the audit chain verified at the last check (every minute), 0 when not",
            self.audit_ok.clone(),
        );
        registry.register(
            REPLICATION_PENDING_SECONDS,
            "Age of the oldest change not yet replicated, as cutover replicate last measured it",
            self.pending_seconds.clone(),
        );
        registry.register(
            REPLICATION_PENDING_OBJECTS,
            "Objects not yet replicated, as cutover replicate last measured them",
            self.pending_objects.clone(),
        );
    }
}

/// Refreshes the gauges until the task is cancelled.
pub async fn follow(shared: Arc<Shared>, gauges: Gauges) {
    let mut tick = tokio::time::interval(EVERY);
    let mut verified_at: Option<tokio::time::Instant> = None;
    loop {
        tick.tick().await;
        let verify = verified_at.is_none_or(|t| t.elapsed() >= VERIFY_EVERY);
        let store = shared.store.clone();
        let state = shared.config.state.path.clone();
        let read = tokio::task::spawn_blocking(move || read(store.as_ref(), &state, verify)).await;
        let Ok(r) = read else { continue };
        gauges.awaiting.set(r.awaiting.len() as i64);
        let longest = r.awaiting.iter().filter_map(|t| SystemTime::now().duration_since(*t).ok()).max();
        gauges.awaiting_seconds.set(longest.unwrap_or_default().as_secs_f64());
        if let Some(ok) = r.audit_ok {
            gauges.audit_ok.set(i64::from(ok));
            verified_at = Some(tokio::time::Instant::now());
        }
        for l in r.lags {
            let labels = PairLabels { src: l.src, dst: l.dst };
            gauges.pending_seconds.get_or_create(&labels).set(l.oldest_pending_seconds);
            gauges.pending_objects.get_or_create(&labels).set(i64::try_from(l.pending_objects).unwrap_or(i64::MAX));
        }
    }
}

struct Read {
    /// Since when each incident awaiting approval has waited.
    awaiting: Vec<SystemTime>,
    audit_ok: Option<bool>,
    lags: Vec<cutover_sync::LagRecord>,
}

fn read(store: &dyn Store, state: &std::path::Path, verify: bool) -> Read {
    let awaiting = store
        .open_incidents()
        .unwrap_or_default()
        .into_iter()
        .filter(|i| i.state == IncidentState::AwaitingApproval)
        .filter_map(|i| {
            let timeline = store.timeline(&i.id).unwrap_or_default();
            let decided = timeline.iter().rev().find(|e| e.kind == "decision").map(|e| e.at.clone());
            cutover_core::time::parse_rfc3339(decided.as_deref().unwrap_or(&i.opened_at))
        })
        .collect();
    let audit_ok = verify.then(|| matches!(store.verify_audit(), Ok(Ok(_))));
    let lags = cutover_sync::latest_lag(state).unwrap_or_default();
    Read { awaiting, audit_ok, lags }
}
