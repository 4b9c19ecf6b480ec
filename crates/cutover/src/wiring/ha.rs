//! `cutover run` with `[ha]`: the shared state in etcd, this node's
//! campaign for leadership, and the loop that lets the controller and the
//! runbook queue act only while the campaign says this node leads.
//!
//! Every node probes and evaluates (a hot standby); the leader alone
//! writes, each write fenced on its token (the leader key's create
//! revision). Losing leadership (the renew deadline passed, or the key is
//! gone) stands the controller by at once and drops the runbook term,
//! which cancels the step in flight; the next leader resumes the run from
//! the journal exactly as a restarted process does.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cutover_control::clock::Clock;
use cutover_control::controller::{Controller, Leader, RunbookDue};
use cutover_control::policy::Policy;
use cutover_core::Config;
use cutover_core::Secret;
use cutover_core::config::HaConfig;
use cutover_etcd::{Client, ClientOptions, Election, ElectionConfig, ElectionStatus, EtcdStore, Role};
use cutover_store::{Fence, SqliteStore, Store, StoreError};
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use tokio::sync::{mpsc, watch};

use super::Shared;
use crate::Failure;
use crate::orchestrate::{Runbooks, orchestrate_term};

/// This node in the election, as the API and the switch step see it.
#[derive(Clone)]
pub struct HaNode {
    /// The campaign's status: role, token, lease, renewals.
    pub status: watch::Receiver<ElectionStatus>,
    /// `[ha] node`.
    pub node: String,
    /// How other nodes reach this node's API.
    pub api: String,
    /// The etcd client (the gateway registry, `cutover ha status`).
    pub client: Client,
    /// `[ha] prefix`.
    pub prefix: String,
    /// The election's and the switch's metrics.
    pub metrics: HaMetrics,
}

/// What opening the shared state takes, resolved from the configuration
/// once: the etcd client's options, the audit key, and the state file that
/// keeps the node-local data (health history, probe samples).
struct SharedState {
    options: ClientOptions,
    prefix: String,
    key: Option<Secret>,
    local: SqliteStore,
}

impl SharedState {
    fn resolve(config: &Config, ha: &HaConfig) -> Result<Self, Failure> {
        let options = crate::ha::client_options(ha).map_err(|e| Failure::Usage(e.to_string()))?;
        let key = crate::audit_export::audit_key(config)?;
        let local = SqliteStore::open(&config.state.path).map_err(|e| Failure::Error(e.into()))?;
        Ok(Self { options, prefix: ha.prefix.clone(), key, local })
    }

    /// One attempt at opening it in etcd.
    fn open(&self) -> Result<Arc<dyn Store>, StoreError> {
        let store = EtcdStore::open(&self.options, &self.prefix, self.local.clone())?;
        Ok(Arc::new(store.with_audit_key(self.key.clone())))
    }
}

/// Opens the shared state in etcd, with node-local data (health history)
/// in the state file.
pub fn open_store(config: &Config, ha: &HaConfig) -> Result<Arc<dyn Store>, Failure> {
    SharedState::resolve(config, ha)?.open().map_err(|e| Failure::Error(e.into()))
}

/// How long `cutover run` with `[ha]` waits at start-up for etcd to
/// answer before it gives up (exit 1): a node started together with its
/// etcd cluster (a site restart), or while the cluster elects a leader or
/// is slow, waits for it instead of exiting.
pub const ETCD_START_WAIT: Duration = Duration::from_secs(60);
/// The longest pause between two start-up attempts.
const ETCD_START_PAUSE: Duration = Duration::from_secs(5);

/// Opens the shared state in etcd and builds a standby controller on it
/// (which reads the open incidents and the active backend), trying again
/// for up to [`ETCD_START_WAIT`] while etcd does not answer; each failed
/// attempt is logged. Anything else that fails ends the start-up at once.
pub async fn open_standby(
    config: &Config,
    ha: &HaConfig,
    policy: &Policy,
    clock: Clock,
) -> Result<(Arc<dyn Store>, Controller), Failure> {
    let shared = SharedState::resolve(config, ha)?;
    let start = Instant::now();
    let mut pause = ha.timing.request_timeout;
    loop {
        let opened = shared.open().and_then(|store| {
            let controller =
                Controller::standby(config.clone(), policy.clone(), store.clone(), clock.now().mono, None)?;
            Ok((store, controller))
        });
        match opened {
            Ok(opened) => return Ok(opened),
            Err(e @ StoreError::Remote { .. }) if start.elapsed() + pause < ETCD_START_WAIT => {
                tracing::warn!(error = %e, retry_in = ?pause, "etcd did not answer at start-up; trying again");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(ETCD_START_PAUSE);
            }
            Err(e) => {
                let waited = start.elapsed().as_secs();
                return Err(Failure::Error(anyhow::Error::new(e).context(format!(
                    "opening the shared state in etcd (start-up, after {waited}s of {}s)",
                    ETCD_START_WAIT.as_secs()
                ))));
            }
        }
    }
}

/// Starts this node's campaign (with the timings of `[ha]`); the node's
/// API is `advertise_api`, else the address the API listens on.
pub fn campaign(ha: &HaConfig, api_addr: Option<SocketAddr>) -> Result<(Election, HaNode), Failure> {
    let options = crate::ha::client_options(ha).map_err(|e| Failure::Usage(e.to_string()))?;
    let client = Client::new(&options).map_err(|e| Failure::Usage(format!("[ha] etcd: {e}")))?;
    let api = match (&ha.advertise_api, api_addr) {
        (Some(a), _) => a.to_string(),
        (None, Some(addr)) => format!("http://{addr}"),
        (None, None) => String::new(),
    };
    let mut cfg = ElectionConfig::new(&ha.prefix, &ha.node, &api, ha.timing.lease_ttl);
    cfg.renew_interval = ha.timing.renew_interval;
    cfg.request_timeout = ha.timing.request_timeout;
    cfg.renew_deadline = ha.timing.renew_deadline;
    let election = Election::start(client.clone(), cfg);
    let node = HaNode {
        status: election.status(),
        node: ha.node.clone(),
        api,
        client,
        prefix: ha.prefix.clone(),
        metrics: HaMetrics::default(),
    };
    Ok((election, node))
}

/// The runbook queue in HA: waits to lead, makes the controller lead with
/// the token, runs the queue (resuming interrupted runs first) until
/// leadership is lost, then stands the controller by and waits again.
/// Returns when the queue is closed or the campaign has stopped.
pub async fn lead_loop(
    shared: Arc<Shared>,
    runbooks: Runbooks,
    mut queue: mpsc::UnboundedReceiver<RunbookDue>,
    mut status: watch::Receiver<ElectionStatus>,
) {
    loop {
        // Stand by until this node leads, telling the controller who does.
        let token = loop {
            let role = status.borrow_and_update().role.clone();
            match role {
                Role::Leader { token } => break token,
                Role::Standby { leader } => {
                    shared.controller.stand_by(leader.map(|l| Leader { node: l.node, api: l.api }));
                }
            }
            // Runbooks queued while standing by are the leader's business.
            while queue.try_recv().is_ok() {}
            if status.changed().await.is_err() {
                return;
            }
        };
        let fence = Fence::leader(token);
        if let Err(e) = shared.controller.lead(fence.clone()).await {
            tracing::warn!(error = %e, token, "could not take over as leader; standing by");
            shared.controller.stand_by(None);
            if status.changed().await.is_err() {
                return;
            }
            continue;
        }
        tracing::info!(token, "leading");
        let term = orchestrate_term(&shared, &runbooks, &mut queue, fence);
        let lost = async {
            loop {
                if status.changed().await.is_err() {
                    return;
                }
                if status.borrow().role != (Role::Leader { token }) {
                    return;
                }
            }
        };
        tokio::select! {
            _ = term => return, // the queue closed: shutting down
            _ = lost => {
                tracing::warn!(token, "leadership lost: standing by (the step in flight is cancelled)");
                shared.controller.stand_by(None);
            }
        }
    }
}

/// The election's own metrics (the leader gauge, the leadership changes
/// and the fenced writes are the controller's).
#[derive(Clone)]
pub struct HaMetrics {
    renew_latency: Gauge<f64, std::sync::atomic::AtomicU64>,
    etcd_up: Gauge,
    ack_seconds: Histogram,
    lagging: Gauge,
}

impl Default for HaMetrics {
    fn default() -> Self {
        Self {
            renew_latency: Gauge::default(),
            etcd_up: Gauge::default(),
            ack_seconds: Histogram::new([0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 3.0]),
            lagging: Gauge::default(),
        }
    }
}

impl HaMetrics {
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "cutover_ha_renew_latency_seconds",
            "How long this node's last successful lease renewal took",
            self.renew_latency.clone(),
        );
        registry.register(
            "cutover_ha_switch_ack_seconds",
            "Time from a switch to the acknowledgement of every registered gateway (the wait's bound when some lag)",
            self.ack_seconds.clone(),
        );
        registry.register(
            "cutover_ha_gateways_lagging",
            "Gateways that had not acknowledged the last switch when state.switch stopped waiting",
            self.lagging.clone(),
        );
        registry.register(
            "cutover_ha_etcd_up",
            "Whether this node's last request to etcd got an answer (1) or not (0)",
            self.etcd_up.clone(),
        );
    }

    /// A switch was acknowledged by every gateway after `took`, or `lagging`
    /// gateways had not when the wait ended.
    pub fn switched(&self, took: std::time::Duration, lagging: usize) {
        self.ack_seconds.observe(took.as_secs_f64());
        self.lagging.set(i64::try_from(lagging).unwrap_or(i64::MAX));
    }

    /// Follows the campaign's status until it stops.
    pub async fn follow(self, mut status: watch::Receiver<ElectionStatus>) {
        loop {
            {
                let s = status.borrow_and_update();
                if let Some(l) = s.renew_latency {
                    self.renew_latency.set(l.as_secs_f64());
                }
                self.etcd_up.set(i64::from(s.etcd_reachable));
            }
            if status.changed().await.is_err() {
                return;
            }
        }
    }
}
