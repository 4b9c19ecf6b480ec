//! The one place that composes cutover's stages, in the order of the
//! playbook: probes (detect) → re-checks and agent evidence (verify) → the
//! controller task with the policy (decide) → the runbook queue
//! (orchestrate, validate, fall back) → the S3 gateway → the API. `run`,
//! `demo` and `drill` start the whole of it with [`start`]; `gateway`
//! starts the gateway stage alone ([`gateway::start_alone`]).
//!
//! Every task is owned by one [`Tasks`] (a `JoinSet` and a cancellation
//! token): [`Running::shutdown`] closes the listeners and drains their
//! requests, then cancels the rest and waits for it.
//!
//! - [`shared`]: what the stages share (the controller's handle, the store);
//! - `detect`: probe cycles and re-checks; `inputs`: signals and replication;
//! - `events`: the controller's events to the log, the metrics and the queue;
//! - [`gateway`]: the data plane; `drills`: scheduled drills;
//! - `tasks`: the `JoinSet` and its orderly stop.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use cutover_control::clock::Clock;
use cutover_control::controller::{self, Controller};
use cutover_control::health::Health;
use cutover_control::policy::Policy;
use cutover_control::telemetry::Telemetry;
use cutover_core::Config;
use cutover_core::config::BackendConfig;
use cutover_s3::{ClientOptions, S3Client};
use cutover_store::prelude::*;
use cutover_store::{Fence, Store};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

use crate::orchestrate::{Runbooks, orchestrate};
use crate::{Failure, api, load};

mod detect;
mod drills;
mod events;
pub mod gateway;
pub mod ha;
mod inputs;
mod shared;
mod tasks;

pub use shared::Shared;
use tasks::Tasks;

/// At most one `api.denied` entry per (actor, route, status) in this window.
const DENIAL_WINDOW: Duration = Duration::from_secs(60);
/// How often time passes for the controller (confirmation, recovery, slow probes).
const TICK: Duration = Duration::from_millis(100);

/// cutover running in this process: its shared state, where it listens,
/// and its tasks.
pub struct Running {
    pub shared: Arc<Shared>,
    pub api: Option<SocketAddr>,
    pub gateway: Option<SocketAddr>,
    tasks: Tasks,
    /// HA: this node's campaign, resigned at shutdown.
    election: Option<cutover_etcd::Election>,
}

/// What is read and checked before anything starts: a start-up that fails
/// here leaves no task behind.
struct Prepared {
    runbooks: Runbooks,
    controller: Controller,
    telemetry: Telemetry,
    store: Arc<dyn Store>,
    denials: cutover_store::DenialLog,
    audit_export: Option<crate::audit_export::Export>,
    /// One probe client and one re-check client per backend.
    clients: Vec<(BackendConfig, S3Client, S3Client)>,
    /// HA: the node's own audit log, for a standby's console.
    standby_audit: Option<cutover_store::SqliteStore>,
}

/// Builds every stage from `config` and starts them on the current runtime,
/// in the order of the playbook. Every listener is bound before anything is
/// spawned or announced: a start-up that fails leaves no task behind to log
/// about it, and "listening" is only said once the process knows it can
/// start.
pub async fn start(config: Config, with_gateway: bool) -> Result<Running, Failure> {
    let clock = Clock::system();
    let p = prepare(&config, clock).await?;
    let active = p.controller.active().to_string();
    let gateway = gateway::bind_for_run(&config, &active, with_gateway).await?;
    let api_listener = match &config.api {
        Some(a) => Some(TcpListener::bind(a.listen).await.with_context(|| format!("api.listen {}", a.listen))?),
        None => None,
    };
    let api_addr = api_listener.as_ref().map(|l| l.local_addr()).transpose().context("local address")?;
    announce(&config, &p);

    let mut tasks = Tasks::new();
    // decide: the controller task, which owns incidents and decisions.
    let (handle, events) = controller::start(p.controller, clock, config.detect.slow_after);
    tasks.spawn(handle.clone().tick_every(TICK));
    let (jobs, queue) = mpsc::unbounded_channel();
    let mut registry = prometheus_client::registry::Registry::default();
    p.telemetry.metrics().register(&mut registry);
    if let Some(g) = &gateway {
        g.gateway.register_metrics(&mut registry);
    }
    // HA: campaign for leadership (the controller stands by until then).
    let campaign = match &config.ha {
        Some(h) => Some(ha::campaign(h, api_addr)?),
        None => None,
    };
    if let Some((_, node)) = &campaign {
        node.metrics.register(&mut registry);
        tasks.spawn(node.metrics.clone().follow(node.status.clone()));
    }
    let alert_gauges = crate::alerting::Gauges::default();
    alert_gauges.register(&mut registry);
    let shared = Arc::new(Shared {
        controller: handle,
        store: p.store.clone(),
        telemetry: p.telemetry.clone(),
        config: config.clone(),
        jobs,
        gateway: gateway.as_ref().map(|g| g.gateway.clone()),
        registry,
        denials: p.denials,
        ha: campaign.as_ref().map(|(_, node)| node.clone()),
        console: crate::console::ConsoleState::new(p.store.clone(), p.standby_audit),
    });
    tasks.spawn(events::report_events(shared.clone(), events));
    tasks.spawn(crate::console::watch(shared.clone()));
    tasks.spawn(crate::alerting::follow(shared.clone(), alert_gauges));

    // detect → verify: probe cycles and re-checks feed the controller, and
    // so do the policy's other inputs.
    for (b, probe, verify) in p.clients {
        tasks.spawn(detect::probe_loop(b.name.clone(), probe, config.probe.clone(), shared.clone()));
        let (prefix, every) = (config.probe.prefix.clone(), config.verify.interval);
        tasks.spawn(detect::verify_loop(b.name.clone(), verify, prefix, every, shared.clone()));
    }
    tasks.adopt(inputs::watch_signals(shared.clone()));
    tasks.spawn(inputs::replication_loop(shared.clone()));

    // orchestrate: runbooks one at a time (validate and fall back are steps).
    match &campaign {
        // HA: runbooks run only while this node leads.
        Some((_, node)) => tasks.spawn(ha::lead_loop(shared.clone(), p.runbooks, queue, node.status.clone())),
        None => tasks.spawn(orchestrate(shared.clone(), p.runbooks, queue)),
    }

    // The gateway: the data plane follows the switch.
    let gateway_addr = gateway.as_ref().map(|g| g.addr);
    if let Some(g) = gateway {
        // Its answers per second, for the client impact of incidents.
        tasks.spawn(crate::console::client_log::run(g.gateway.clone(), shared.store.clone()));
        let url = format!("{}://{}", g.scheme, g.addr);
        crate::logs::say(
            "listening",
            &format!("gateway listening on {url}"),
            serde_json::json!({"listener": "gateway", "url": url}),
        );
        if let Some(ha) = &config.ha {
            // Every node's gateway follows the active backend in etcd (the
            // leader's switch sets it there) and acknowledges what it serves.
            let known = config.backend_names().iter().map(|s| s.to_string()).collect();
            let follow = gateway::follow_etcd(g.gateway.active().clone(), ha, config.primary().name.clone(), known)?;
            tasks.spawn(follow);
        }
        g.serve(&mut tasks);
    }

    // observe: the API, the audit export and scheduled drills.
    if let (Some(listener), Some(addr)) = (api_listener, api_addr) {
        crate::logs::say(
            "listening",
            &format!("api listening on http://{addr}"),
            serde_json::json!({"listener": "api", "url": format!("http://{addr}")}),
        );
        tasks.spawn_listener(api::serve(listener, shared.clone(), tasks.listeners_stop()));
    }
    if let Some(export) = p.audit_export {
        let every = config.audit.export.as_ref().map(|e| e.interval).unwrap_or_default();
        crate::logs::say(
            "audit.export",
            &format!("audit export to {} every {every:?}", export.location()),
            serde_json::json!({"location": export.location(), "interval_ms": every.as_millis() as u64}),
        );
        tasks.spawn(crate::audit_export::run(export, p.store, shared.clone()));
    }
    tasks.spawn(drills::scheduled(shared.clone(), config.drills.clone()));
    let election = campaign.map(|(e, _)| e);
    Ok(Running { shared, api: api_addr, gateway: gateway_addr, tasks, election })
}

/// Loads the runbooks and the policy, builds the probe clients, opens the
/// store (with `[ha]`, waiting for etcd at start-up) and builds the
/// controller.
async fn prepare(config: &Config, clock: Clock) -> Result<Prepared, Failure> {
    let runbooks = Runbooks::load(config)?;
    let policy = Policy::load(config.policy.path.as_deref()).map_err(|e| {
        Failure::Usage(format!(
            "{}: {e}",
            config.policy.path.as_ref().map(|p| p.display().to_string()).unwrap_or("built-in policy".into())
        ))
    })?;
    // The node's own audit log: refused API requests, and under HA a
    // standby's console entries (one connection, so one writer of its chain).
    let local_audit = crate::audit_export::open_store(config)?;
    let denials = cutover_store::DenialLog::start(local_audit.clone(), DENIAL_WINDOW);
    let standby_audit = config.ha.is_some().then_some(local_audit);
    let audit_export = crate::audit_export::Export::new(config)?;
    let clients = config
        .backends
        .iter()
        .map(|b| {
            let probe = load::client(b, ClientOptions::probe(config.probe.timeout))?;
            let verify = load::client(b, ClientOptions::probe(config.verify.timeout))?;
            Ok((b.clone(), probe, verify))
        })
        .collect::<Result<_, Failure>>()?;
    let telemetry = Telemetry::default();
    let (store, controller) = match &config.ha {
        // HA: the shared state in etcd (node-local health history in the
        // state file); keying the chain is the leader's business. A hot
        // standby until the election says otherwise.
        Some(ha) => ha::open_standby(config, ha, &policy, clock).await?,
        None => {
            let store = crate::audit_export::open_store(config)?;
            if let Some(seq) =
                store.mark_keyed(&Fence::local(), std::time::SystemTime::now()).context("keying the audit log")?
            {
                crate::logs::say(
                    "audit.keyed",
                    &format!("cutover run: audit log keyed with audit.hmac_key_env from entry {seq} on"),
                    serde_json::json!({"from_seq": seq}),
                );
            }
            let store: Arc<dyn Store> = Arc::new(store);
            let controller = Controller::new(config.clone(), policy, store.clone(), clock.now().mono)
                .context("starting the controller")?;
            (store, controller)
        }
    };
    let controller = controller.with_telemetry(telemetry.clone());
    Ok(Prepared { runbooks, controller, telemetry, store, denials, audit_export, clients, standby_audit })
}

/// The start-up line: backends, the active one, the policy and the runbooks.
fn announce(config: &Config, p: &Prepared) {
    let (c, rb) = (&p.controller, &p.runbooks);
    crate::logs::say(
        "started",
        &format!(
            "cutover run: {} backends, active {}, policy {} (sha256 {}), runbooks {} / {}",
            config.backends.len(),
            c.active(),
            c.policy().origin,
            &c.policy().sha256()[..12],
            rb.failover.origin,
            rb.fallback.origin,
        ),
        serde_json::json!({"backends": config.backends.len(), "active": c.active(), "policy_sha256": c.policy().sha256()}),
    );
}

impl Running {
    /// Stops everything: the listeners first (they close at once and the
    /// requests in progress finish, within their drain times), then every
    /// other task, waited for at most a few seconds.
    pub async fn shutdown(self) {
        // SIGTERM resigns at once: a standby leads without waiting for the lease.
        if let Some(e) = self.election
            && let Err(err) = e.resign().await
        {
            tracing::warn!(error = %err, "resigning leadership failed; the lease will expire");
        }
        self.tasks.shutdown().await;
    }

    /// Runs `task` with the others: it is cancelled by [`Running::shutdown`].
    pub fn spawn(&mut self, task: impl std::future::Future<Output = ()> + Send + 'static) {
        self.tasks.spawn(task);
    }

    /// Whether every backend is healthy now (the controller's status).
    pub fn all_healthy(&self) -> bool {
        self.shared.controller.status().backends.iter().all(|b| b.health == Health::Healthy)
    }

    /// The newest incident, if any.
    pub fn latest_incident(&self) -> Option<cutover_store::Incident> {
        self.shared.store.incidents().ok()?.into_iter().next()
    }

    /// Polls `f` every 50 ms until it holds; prints and fails after `limit`.
    pub async fn wait_for(&self, what: &str, limit: Duration, f: impl Fn(&Self) -> bool) -> Result<(), Failure> {
        let start = Instant::now();
        while !f(self) {
            if start.elapsed() > limit {
                println!("no {what} within {limit:?}");
                return Err(Failure::Failed);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(())
    }
}
