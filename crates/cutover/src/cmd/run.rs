//! `cutover run`: the long-running controller. It wires the stages in the
//! order of the playbook: probes (detect) → re-checks and agent evidence
//! (verify) → the policy (decide) → the switch, with the API beside them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use cutover_control::controller::{Controller, Event, LOCAL};
use cutover_control::metrics::{self, Metrics};
use cutover_control::policy::Policy;
use cutover_core::config::BackendConfig;
use cutover_s3::probe::{ProbeReport, probe_cycle};
use cutover_s3::{ClientOptions, S3Client};
use cutover_store::Store;
use tokio::sync::mpsc;

use crate::cli::Global;
use crate::{Failure, api, load, runtime};

/// Shared between the loop and the API.
pub struct Shared {
    pub controller: Mutex<Controller>,
    pub metrics: Mutex<Metrics>,
    pub config: cutover_core::Config,
}

enum Msg {
    Started { id: u64, backend: String, at: Instant },
    Done { id: u64, backend: String, started: Instant, report: ProbeReport },
    Verified { backend: String, started: Instant, ok: bool, outcome: String },
}

pub fn run(global: &Global) -> Result<(), Failure> {
    let config = load::config(global)?;
    let policy = Policy::load(config.policy.path.as_deref()).map_err(|e| {
        Failure::Usage(format!(
            "{}: {e}",
            config.policy.path.as_ref().map(|p| p.display().to_string()).unwrap_or("built-in policy".into())
        ))
    })?;
    let store = Store::open(&config.state.path).context("opening the state store")?;
    let clients: Vec<(BackendConfig, S3Client, S3Client)> = config
        .backends
        .iter()
        .map(|b| {
            let probe = load::client(b, ClientOptions::probe(config.probe.timeout))?;
            let verify = load::client(b, ClientOptions::probe(config.verify.timeout))?;
            Ok((b.clone(), probe, verify))
        })
        .collect::<Result<_, Failure>>()?;
    let controller =
        Controller::new(config.clone(), policy, store, Instant::now()).context("starting the controller")?;
    println!(
        "cutover run: {} backends, active {}, policy {} (sha256 {})",
        clients.len(),
        controller.active(),
        controller.policy().origin,
        &controller.policy().sha256()[..12]
    );
    let shared = Arc::new(Shared {
        controller: Mutex::new(controller),
        metrics: Mutex::new(Metrics::default()),
        config: config.clone(),
    });

    runtime().block_on(async move {
        if let Some(api_cfg) = &config.api {
            let listener = tokio::net::TcpListener::bind(api_cfg.listen)
                .await
                .with_context(|| format!("api.listen {}", api_cfg.listen))?;
            println!("api listening on http://{}", listener.local_addr()?);
            tokio::spawn(api::serve(listener, shared.clone()));
        }
        let (tx, mut rx) = mpsc::unbounded_channel();
        for (b, probe, verify) in clients {
            tokio::spawn(probe_loop(b.name.clone(), probe, config.probe.clone(), tx.clone()));
            tokio::spawn(verify_loop(b.name.clone(), verify, config.probe.prefix.clone(), config.verify.interval, shared.clone(), tx.clone()));
        }
        spawn_signals(&config, shared.clone());
        let mut in_flight: HashMap<u64, (String, Instant, bool)> = HashMap::new();
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        let slow_after = config.detect.slow_after;
        let stop = shutdown_signal();
        tokio::pin!(stop);
        loop {
            let events = tokio::select! {
                _ = &mut stop => break,
                msg = rx.recv() => match msg {
                    None => break,
                    Some(Msg::Started { id, backend, at }) => { in_flight.insert(id, (backend, at, false)); Vec::new() }
                    Some(Msg::Done { id, backend, started, report }) => {
                        let flagged = in_flight.remove(&id).is_some_and(|(_, _, f)| f);
                        record_probe(&shared, &report);
                        if flagged && !report.ok {
                            Vec::new() // already counted as a failure when it became slow
                        } else {
                            shared.controller.lock().unwrap().observe(Instant::now(), &backend, LOCAL, started, report.ok, &report.outcome.to_string())
                        }
                    }
                    Some(Msg::Verified { backend, started, ok, outcome }) => {
                        shared.controller.lock().unwrap().verified(Instant::now(), &backend, started, ok, &outcome)
                    }
                },
                _ = tick.tick() => {
                    let now = Instant::now();
                    let mut c = shared.controller.lock().unwrap();
                    let mut events = Vec::new();
                    for (backend, started, flagged) in in_flight.values_mut() {
                        if !*flagged && now.duration_since(*started) >= slow_after {
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
        println!("cutover run: stopped");
        Ok::<_, anyhow::Error>(())
    })?;
    Ok(())
}

async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending().await } } => {}
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
    let mut m = shared.metrics.lock().unwrap();
    for op in &r.ops {
        let labels = vec![("backend", r.backend.clone()), ("vantage", LOCAL.to_string()), ("op", op.op.to_string())];
        m.observe(metrics::PROBE_DURATION, labels, op.ms / 1000.0);
        m.inc(
            metrics::PROBE_OPS,
            vec![
                ("backend", r.backend.clone()),
                ("vantage", LOCAL.into()),
                ("op", op.op.into()),
                ("outcome", op.outcome.to_string()),
            ],
        );
    }
    m.inc(
        metrics::PROBE_CYCLES,
        vec![("backend", r.backend.clone()), ("vantage", LOCAL.into()), ("outcome", r.outcome.to_string())],
    );
}

/// One place turns events into log lines and metrics.
pub fn report_event(shared: &Shared, e: &Event) {
    let ts = cutover_core::time::rfc3339(std::time::SystemTime::now());
    let mut m = shared.metrics.lock().unwrap();
    match e {
        Event::HealthChanged { backend, vantage, from, to, reason } => {
            m.inc(
                metrics::HEALTH_CHANGES,
                vec![("backend", backend.clone()), ("vantage", vantage.clone()), ("to", to.as_str().into())],
            );
            println!("{ts} health {backend}@{vantage}: {} -> {} ({reason})", from.as_str(), to.as_str());
        }
        Event::IncidentOpened { id, backend } => println!("{ts} incident {id} opened for {backend}"),
        Event::Decided { incident, decision } => {
            m.inc(metrics::DECISIONS, vec![("action", decision.action.as_str().into())]);
            println!(
                "{ts} decision {incident}: {} {} ({})",
                decision.action.as_str(),
                decision.target.as_deref().unwrap_or("-"),
                decision.reason
            );
        }
        Event::PolicyFailed { incident, error } => eprintln!("{ts} ALERT policy error on {incident}, holding: {error}"),
        Event::Switched { incident, from, to } => println!("{ts} switched {incident}: active {from} -> {to}"),
        Event::IncidentResolved { id, backend } => println!("{ts} incident {id} resolved: {backend} healthy again"),
    }
}

/// Signals (Prometheus, status page), each on its own interval: every reading
/// goes into the policy input and the metrics.
fn spawn_signals(config: &cutover_core::Config, shared: Arc<Shared>) {
    cutover_control::signals::spawn(&config.signals, move |s| {
        s.record(&mut shared.metrics.lock().unwrap());
        shared.controller.lock().unwrap().set_signal(s.name(), s.to_json(Instant::now()));
    });
}
