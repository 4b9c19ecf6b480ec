//! `cutover run`: the long-running controller. It wires the stages in the
//! order of the playbook: probes (detect) → re-checks and agent evidence
//! (verify) → the policy (decide) → runbooks (orchestrate, validate, fall
//! back), with the API and, when `[gateway]` is configured, the S3 gateway
//! beside them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use cutover_control::clock::{Clock, Now};
use cutover_control::controller::{Controller, Event, LOCAL, RunbookDue};
use cutover_control::policy::Policy;
use cutover_control::telemetry::Telemetry;
use cutover_core::config::BackendConfig;
use cutover_s3::probe::{ProbeReport, probe_cycle};
use cutover_s3::{ClientOptions, S3Client};
use cutover_store::Fence;
use cutover_store::prelude::*;
use tokio::sync::mpsc;

use crate::cli::{Global, RunArgs};
use crate::cmd::orchestrate::{Runbooks, orchestrate};
use crate::{Failure, api, load, runtime};

/// Shared between the loop and the API.
pub struct Shared {
    pub controller: Mutex<Controller>,
    /// Where what happens is reported: the controller's metrics (in
    /// `registry`) and the event lines.
    pub telemetry: Telemetry,
    pub config: cutover_core::Config,
    /// Runbooks to run, one at a time.
    pub jobs: mpsc::UnboundedSender<RunbookDue>,
    /// The in-process S3 gateway, when `[gateway]` is configured.
    pub gateway: Option<cutover_gateway::Gateway>,
    /// The process's one metrics registry: the controller's families and,
    /// with a gateway, the gateway's.
    pub registry: prometheus_client::registry::Registry,
    /// Refused API requests go to the audit log through this, on its own
    /// connection, never through the controller.
    pub denials: cutover_store::DenialLog,
}

/// At most one `api.denied` entry per (actor, route, status) in this window.
const DENIAL_WINDOW: Duration = Duration::from_secs(60);

enum Msg {
    Started { id: u64, backend: String, at: Instant },
    Done { id: u64, backend: String, started: Instant, report: ProbeReport },
    Verified { backend: String, started: Instant, ok: bool, outcome: String },
}

pub fn run(global: &Global, args: RunArgs) -> Result<(), Failure> {
    let config = load::config(global)?;
    runtime().block_on(async move {
        let running = start(config, !args.no_gateway).await?;
        crate::shutdown::signal().await;
        running.stop().await;
        crate::logs::say("stopped", "cutover run: stopped", serde_json::json!({}));
        Ok(())
    })
}

/// A controller started by [`start`]: its shared state and where it listens.
pub struct Running {
    pub shared: Arc<Shared>,
    pub api: Option<std::net::SocketAddr>,
    pub gateway: Option<std::net::SocketAddr>,
    /// Stops the gateway (also when dropped) and its serving task.
    gateway_stop: Option<(tokio::sync::oneshot::Sender<()>, tokio::task::JoinHandle<()>)>,
    /// Stops the API (also when dropped) and its serving task.
    api_stop: Option<(tokio::sync::oneshot::Sender<()>, tokio::task::JoinHandle<()>)>,
}

impl Running {
    /// Closes the API's and the gateway's listeners and waits for the
    /// requests in progress to finish (at most their drain times).
    pub async fn stop(mut self) {
        let stops = [self.api_stop.take(), self.gateway_stop.take()];
        let mut served = Vec::new();
        for (stop, task) in stops.into_iter().flatten() {
            drop(stop);
            served.push(task);
        }
        for task in served {
            let _ = task.await;
        }
    }

    /// Whether every backend is healthy now.
    pub fn all_healthy(&self) -> bool {
        let c = self.shared.controller.lock().unwrap();
        let now = Instant::now();
        c.backend_names().iter().all(|n| c.health(n, now) == cutover_control::health::Health::Healthy)
    }

    /// The newest incident, if any.
    pub fn latest_incident(&self) -> Option<cutover_store::Incident> {
        let c = self.shared.controller.lock().unwrap();
        c.store().incidents().ok()?.into_iter().next()
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

/// Builds the controller from `config` and spawns its stages on the current
/// runtime: the gateway (when configured and `with_gateway`), the runbook
/// queue, the API, the probe and verify loops, and the control loop.
pub async fn start(config: cutover_core::Config, with_gateway: bool) -> Result<Running, Failure> {
    let runbooks = Runbooks::load(&config)?;
    let policy = Policy::load(config.policy.path.as_deref()).map_err(|e| {
        Failure::Usage(format!(
            "{}: {e}",
            config.policy.path.as_ref().map(|p| p.display().to_string()).unwrap_or("built-in policy".into())
        ))
    })?;
    let store = crate::audit_export::open_store(&config)?;
    if let Some(seq) =
        store.mark_keyed(&Fence::local(), std::time::SystemTime::now()).context("keying the audit log")?
    {
        crate::logs::say(
            "audit.keyed",
            &format!("cutover run: audit log keyed with audit.hmac_key_env from entry {seq} on"),
            serde_json::json!({"from_seq": seq}),
        );
    }
    let denials = cutover_store::DenialLog::start(crate::audit_export::open_store(&config)?, DENIAL_WINDOW);
    let audit_export = crate::audit_export::Export::new(&config)?;
    let store: Arc<dyn Store> = Arc::new(store);
    let export_store = store.clone();
    let clients: Vec<(BackendConfig, S3Client, S3Client)> = config
        .backends
        .iter()
        .map(|b| {
            let probe = load::client(b, ClientOptions::probe(config.probe.timeout))?;
            let verify = load::client(b, ClientOptions::probe(config.verify.timeout))?;
            Ok((b.clone(), probe, verify))
        })
        .collect::<Result<_, Failure>>()?;
    let telemetry = Telemetry::default();
    let controller = Controller::new(config.clone(), policy, store, Instant::now())
        .context("starting the controller")?
        .with_telemetry(telemetry.clone());
    let active = controller.active().to_string();
    let gateway = match (&config.gateway, with_gateway) {
        (Some(g), true) => {
            let gw = cutover_gateway::Gateway::build(
                &config,
                cutover_gateway::ActiveBackend::new(active),
                cutover_gateway::GatewayOptions::from_limits(&g.limits),
            )
            .map_err(|e| Failure::Usage(format!("gateway: {e}")))?;
            Some(gw)
        }
        _ => None,
    };
    // Every listener is bound before anything is spawned or announced: a
    // start-up that fails leaves no task behind to log about it, and
    // "listening" is only said once the process knows it can start.
    let gateway_listener = match (&gateway, &config.gateway) {
        (Some(_), Some(gw_cfg)) => Some(
            tokio::net::TcpListener::bind(gw_cfg.listen)
                .await
                .with_context(|| format!("gateway.listen {}", gw_cfg.listen))?,
        ),
        _ => None,
    };
    let api_listener = match &config.api {
        Some(api_cfg) => Some(
            tokio::net::TcpListener::bind(api_cfg.listen)
                .await
                .with_context(|| format!("api.listen {}", api_cfg.listen))?,
        ),
        None => None,
    };
    let gateway_addr = gateway_listener.as_ref().map(|l| l.local_addr()).transpose().context("local address")?;
    let api_addr = api_listener.as_ref().map(|l| l.local_addr()).transpose().context("local address")?;
    crate::logs::say(
        "started",
        &format!(
            "cutover run: {} backends, active {}, policy {} (sha256 {}), runbooks {} / {}",
            clients.len(),
            controller.active(),
            controller.policy().origin,
            &controller.policy().sha256()[..12],
            runbooks.failover.origin,
            runbooks.fallback.origin,
        ),
        serde_json::json!({"backends": clients.len(), "active": controller.active(), "policy_sha256": controller.policy().sha256()}),
    );
    let (jobs, queue) = mpsc::unbounded_channel();
    let mut registry = prometheus_client::registry::Registry::default();
    telemetry.metrics().register(&mut registry);
    if let Some(gw) = &gateway {
        gw.register_metrics(&mut registry);
    }
    let shared = Arc::new(Shared {
        controller: Mutex::new(controller),
        telemetry,
        config: config.clone(),
        jobs,
        gateway: gateway.clone(),
        registry,
        denials,
    });
    let mut gateway_stop = None;
    if let (Some(gw), Some(listener), Some(addr)) = (gateway, gateway_listener, gateway_addr) {
        let scheme = if config.gateway.as_ref().is_some_and(|g| g.tls.is_some()) { "https" } else { "http" };
        crate::logs::say(
            "listening",
            &format!("gateway listening on {scheme}://{addr}"),
            serde_json::json!({"listener": "gateway", "url": format!("{scheme}://{addr}")}),
        );
        let replayer = gw.clone();
        tokio::spawn(async move { replayer.replay_forever().await });
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let served = tokio::spawn(async move {
            if let Err(e) = gw.serve(listener, async move { drop(stopped.await) }).await {
                tracing::error!(error = %e, "the gateway stopped");
            }
        });
        gateway_stop = Some((stop, served));
    }
    tokio::spawn(orchestrate(shared.clone(), runbooks, queue));
    let mut api_stop = None;
    if let (Some(listener), Some(addr)) = (api_listener, api_addr) {
        crate::logs::say(
            "listening",
            &format!("api listening on http://{addr}"),
            serde_json::json!({"listener": "api", "url": format!("http://{addr}")}),
        );
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let served = tokio::spawn(api::serve(listener, shared.clone(), async move { drop(stopped.await) }));
        api_stop = Some((stop, served));
    }
    let (tx, rx) = mpsc::unbounded_channel();
    for (b, probe, verify) in clients {
        tokio::spawn(probe_loop(b.name.clone(), probe, config.probe.clone(), tx.clone()));
        tokio::spawn(verify_loop(
            b.name.clone(),
            verify,
            config.probe.prefix.clone(),
            config.verify.interval,
            shared.clone(),
            tx.clone(),
        ));
    }
    if let Some(export) = audit_export {
        let every = config.audit.export.as_ref().map(|e| e.interval).unwrap_or_default();
        crate::logs::say(
            "audit.export",
            &format!("audit export to {} every {every:?}", export.location()),
            serde_json::json!({"location": export.location(), "interval_ms": every.as_millis() as u64}),
        );
        tokio::spawn(crate::audit_export::run(export, export_store, shared.clone()));
    }
    spawn_signals(&config, shared.clone());
    tokio::spawn(replication_loop(shared.clone()));
    tokio::spawn(control_loop(shared.clone(), rx, config.detect.slow_after));
    tokio::spawn(crate::cmd::drill::scheduled(shared.clone(), config.drills.clone()));
    Ok(Running { shared, api: api_addr, gateway: gateway_addr, gateway_stop, api_stop })
}

/// The control loop: probe results, re-checks and time in; events out.
async fn control_loop(shared: Arc<Shared>, mut rx: mpsc::UnboundedReceiver<Msg>, slow_after: Duration) {
    let mut in_flight: HashMap<u64, (String, Instant, bool)> = HashMap::new();
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    loop {
        let events = tokio::select! {
            msg = rx.recv() => match msg {
                None => break,
                Some(Msg::Started { id, backend, at }) => { in_flight.insert(id, (backend, at, false)); Vec::new() }
                Some(Msg::Done { id, backend, started, report }) => {
                    let flagged = in_flight.remove(&id).is_some_and(|(_, _, f)| f);
                    record_probe(&shared, &report);
                    if flagged && !report.ok {
                        Vec::new() // already counted as a failure when it became slow
                    } else {
                        shared.controller.lock().unwrap().observe(now(), &backend, LOCAL, started, report.ok, &report.outcome.to_string())
                    }
                }
                Some(Msg::Verified { backend, started, ok, outcome }) => {
                    shared.controller.lock().unwrap().verified(now(), &backend, started, ok, &outcome)
                }
            },
            _ = tick.tick() => {
                let now = now();
                let mut c = shared.controller.lock().unwrap();
                let mut events = Vec::new();
                for (backend, started, flagged) in in_flight.values_mut() {
                    if !*flagged && now.mono.duration_since(*started) >= slow_after {
                        *flagged = true;
                        events.extend(c.observe(now, backend, LOCAL, *started, false, "Timeout"));
                    }
                }
                events.extend(c.tick(now));
                events
            }
        };
        for e in events {
            report_event(&shared, &e);
        }
    }
}

/// Starts a probe cycle every interval; cycles may overlap when a backend hangs.
async fn probe_loop(
    backend: String,
    client: S3Client,
    probe: cutover_core::config::ProbeConfig,
    tx: mpsc::UnboundedSender<Msg>,
) {
    let mut ticker = tokio::time::interval(probe.interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut id = 0u64;
    loop {
        ticker.tick().await;
        id += 1;
        let global_id = (fxhash(&backend) << 32) | id;
        let started = Instant::now();
        if tx.send(Msg::Started { id: global_id, backend: backend.clone(), at: started }).is_err() {
            return;
        }
        let (client, tx, backend, prefix) = (client.clone(), tx.clone(), backend.clone(), probe.prefix.clone());
        let size = probe.object_size;
        tokio::spawn(async move {
            let report = probe_cycle(&client, &prefix, size).await;
            let _ = tx.send(Msg::Done { id: global_id, backend, started, report });
        });
    }
}

fn fxhash(s: &str) -> u64 {
    s.bytes().fold(0u64, |h, b| (h.rotate_left(5) ^ b as u64).wrapping_mul(0x517c_c1b7_2722_0a95)) & 0xffff_ffff
}

/// While a backend is not healthy, re-checks it every `interval` through an
/// independent path: a fresh connection reading a known object.
async fn verify_loop(
    backend: String,
    client: S3Client,
    prefix: String,
    interval: Duration,
    shared: Arc<Shared>,
    tx: mpsc::UnboundedSender<Msg>,
) {
    let canary = format!("{prefix}canary");
    let _ = client.put_object(&canary, Bytes::from_static(b"cutover canary"), &[]).await;
    let mut ticker = tokio::time::interval(interval);
    loop {
        ticker.tick().await;
        if !shared.controller.lock().unwrap().needs_verify(&backend) {
            continue;
        }
        let started = Instant::now();
        let r = match client.get_object(&canary, &[]).await {
            Err(e) if e.outcome() == cutover_core::Outcome::NoSuchKey => {
                client.put_object(&canary, Bytes::from_static(b"cutover canary"), &[]).await.map(|_| ())
            }
            other => other.map(|_| ()),
        };
        let (ok, outcome) = match r {
            Ok(()) => (true, "Ok".to_string()),
            Err(e) => (false, e.outcome().to_string()),
        };
        if tx.send(Msg::Verified { backend: backend.clone(), started, ok, outcome }).is_err() {
            return;
        }
    }
}

fn record_probe(shared: &Shared, r: &ProbeReport) {
    shared.telemetry.emit(&Event::ProbeCycle { vantage: LOCAL.to_string(), report: r.clone() });
}

/// The controller's time now (it reads no clock of its own).
fn now() -> Now {
    Clock::system().now()
}

/// The controller has emitted its events (metrics, log lines) already;
/// what is left is to queue the runbooks that are due.
pub fn report_event(shared: &Shared, e: &Event) {
    if let Event::RunbookDue(due) = e {
        let _ = shared.jobs.send(due.clone());
    }
}

/// Signals (Prometheus, status page), each on its own interval: every reading
/// goes into the policy input and the metrics.
fn spawn_signals(config: &cutover_core::Config, shared: Arc<Shared>) {
    cutover_control::signals::spawn(&config.signals, move |s| {
        shared.telemetry.emit(&s.event());
        shared.controller.lock().unwrap().set_signal(s.name(), s.to_json(Instant::now()));
    });
}

/// Every 5 s: the replication lag recorded by `cutover replicate` and the
/// gateway's journal depth, into the policy input (`input.replication`).
async fn replication_loop(shared: Arc<Shared>) {
    let mut tick = tokio::time::interval(Duration::from_secs(5));
    loop {
        tick.tick().await;
        let path = shared.config.state.path.clone();
        let lags = tokio::task::spawn_blocking(move || cutover_sync::latest_lag(&path)).await;
        let lags = match lags {
            Ok(Ok(l)) => serde_json::to_value(l).unwrap_or_default(),
            _ => serde_json::Value::Array(Vec::new()),
        };
        let journal = match &shared.gateway {
            Some(gw) => match gw.state().journal_depth().await {
                Ok((depth, oldest)) => serde_json::json!({
                    "pending": depth,
                    "oldest_age_ms": oldest.map(|ms| (cutover_core::time::unix_ms(std::time::SystemTime::now()) as i64 - ms).max(0)),
                }),
                Err(_) => serde_json::Value::Null,
            },
            None => serde_json::Value::Null,
        };
        shared.controller.lock().unwrap().set_replication(serde_json::json!({"lags": lags, "journal": journal}));
    }
}
