//! `cutover drill --scenario NAME`: proves the failover path on a staging
//! configuration whose backends sit behind chaos proxies, and measures it.
//!
//! Each run starts an isolated controller and gateway in this process (a copy
//! of the configuration with its own state file, loopback listeners and a
//! short `[fallback]`), writes through the gateway, injects the scenario
//! through the chaos proxy's control API, and measures the time to detect,
//! the decision, the time to the validated switch (RTO), the client's
//! errors, the acknowledged writes lost (every acked key read back through
//! the gateway and directly from the primary) and false failovers. The report
//! goes to `DIR/drill-<scenario>.{md,json}`; the exit code is 1 when the
//! `[objectives]` are breached.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use clap::{Args, ValueEnum};
use cutover_core::Config;
use cutover_core::config::{Ack, BucketMode, GatewayBucket, GatewayClient, GatewayConfig, SecretRef};
use cutover_core::domain::{IncidentState, RunKind, RunState};
use cutover_s3::{ClientOptions, Credentials, S3Client};
use serde::Serialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::cli::Global;
use crate::cmd::run::{Running, start};
use crate::{Failure, load};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Scenario {
    /// The primary stops answering (blackhole) until the failover is done.
    HardDown,
    /// A 2-second blackhole: must not fail over.
    Blip,
    /// Added latency (600 ms ± 200 ms) for 12 s: no automatic failover.
    Brownout,
    /// Five cycles of 3 s down, 3 s up: at most one failover.
    Flapping,
    /// Only this controller's path to the primary is blackholed; a second
    /// vantage (probing the primary directly, `--agent-endpoint`) sees it
    /// healthy. With quorum 2: no automatic failover.
    PartialVantage,
    /// Every request answered 503 SlowDown until the failover is done.
    Slowdown,
}

impl Scenario {
    fn expects_failover(self) -> bool {
        matches!(self, Scenario::HardDown | Scenario::Slowdown)
    }
    /// Failovers a run may have before the extra ones count as false:
    /// flapping may fail over once (a 3 s outage is real), never again.
    fn allowed_failovers(self) -> u32 {
        match self {
            Scenario::HardDown | Scenario::Slowdown | Scenario::Flapping => 1,
            _ => 0,
        }
    }
    fn name(self) -> &'static str {
        match self {
            Scenario::HardDown => "hard-down",
            Scenario::Blip => "blip",
            Scenario::Brownout => "brownout",
            Scenario::Flapping => "flapping",
            Scenario::PartialVantage => "partial-vantage",
            Scenario::Slowdown => "slowdown",
        }
    }
}

#[derive(Debug, Args)]
pub struct DrillArgs {
    #[arg(long, value_enum)]
    pub scenario: Scenario,
    /// How many runs (the report gives median and max).
    #[arg(long, default_value_t = 1)]
    pub runs: u32,
    /// The control API of the chaos proxy in front of a backend, e.g.
    /// `primary=http://127.0.0.1:7101` (see `cutover chaos-proxy --control`).
    #[arg(long = "chaos", value_name = "BACKEND=URL")]
    pub chaos: Vec<String>,
    /// Where the Markdown and JSON reports go.
    #[arg(long, default_value = "drill-reports", value_name = "DIR")]
    pub report: PathBuf,
    /// `[fallback] stable_for` of the drill's controller.
    #[arg(long, default_value = "3s", value_parser = cutover_core::parse_duration)]
    pub stable_for: Duration,
    /// Print the JSON report on stdout.
    #[arg(long)]
    pub json: bool,
    /// Instead of --config: start two local Garage backends (needs `garage`
    /// in ~/.cargo/bin or PATH) with an in-process chaos proxy in front of
    /// the primary. For benchmarks and trying drills out.
    #[arg(long, conflicts_with = "chaos")]
    pub lab: bool,
    /// For partial-vantage: the primary's address that bypasses the chaos
    /// proxy, probed by the drill's second vantage (`--lab` knows it).
    #[arg(long, value_name = "URL")]
    pub agent_endpoint: Option<String>,
    /// Use this failover runbook instead of the configured one.
    #[arg(long, value_name = "FILE")]
    pub failover_runbook: Option<PathBuf>,
}

/// `--lab`: two Garage backends, a chaos proxy in front of the first.
struct Lab {
    _a: cutover_lab::garage::Garage,
    _b: cutover_lab::garage::Garage,
    _proxy: cutover_chaos::Proxy,
    _dir: tempfile::TempDir,
    config: Config,
    control: std::net::SocketAddr,
    /// The primary without the proxy.
    direct: String,
}

impl Lab {
    fn start() -> Result<Self, Failure> {
        let lab = |e: cutover_lab::LabError| Failure::Error(anyhow::anyhow!("--lab: {e}"));
        let a = cutover_lab::garage::Garage::start("drill-a").map_err(lab)?;
        let b = cutover_lab::garage::Garage::start("drill-b").map_err(lab)?;
        let upstream = a.endpoint().trim_start_matches("http://").trim_end_matches('/').to_string();
        let proxy = cutover_chaos::Proxy::start("127.0.0.1:0".parse().expect("address"), &upstream)
            .map_err(|e| Failure::Error(anyhow::anyhow!("--lab: chaos proxy: {e}")))?;
        let control = proxy
            .serve_control("127.0.0.1:0".parse().expect("address"))
            .map_err(|e| Failure::Error(anyhow::anyhow!("--lab: chaos control: {e}")))?;
        let dir = tempfile::tempdir().context("temporary directory")?;
        std::fs::write(
            dir.path().join("credentials"),
            format!(
                "[a]\naws_access_key_id = {}\naws_secret_access_key = {}\n[b]\naws_access_key_id = {}\naws_secret_access_key = {}\n",
                a.key_id, a.secret, b.key_id, b.secret
            ),
        )
        .context("credentials")?;
        let text = format!(
            "[[backends]]\nname = \"primary\"\nendpoint = \"http://{}\"\nregion = \"garage\"\nbucket = \"{}\"\nrole = \"primary\"\n\
             credentials = {{ file = \"credentials\", profile = \"a\" }}\n\
             [[backends]]\nname = \"secondary\"\nendpoint = \"{}\"\nregion = \"garage\"\nbucket = \"{}\"\nrole = \"secondary\"\n\
             credentials = {{ file = \"credentials\", profile = \"b\" }}\n",
            proxy.addr(),
            a.bucket,
            b.endpoint(),
            b.bucket
        );
        let config = cutover_core::config::load_str(&text, "--lab", dir.path(), &|_| None)
            .map_err(|e| Failure::Usage(e.to_string()))?;
        let direct = a.endpoint();
        Ok(Self { _a: a, _b: b, _proxy: proxy, _dir: dir, config, control, direct })
    }
}

/// One run's measurements.
#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    pub run: u32,
    pub detect_s: Option<f64>,
    pub decision: Option<String>,
    pub rto_s: Option<f64>,
    pub fallback_s: Option<f64>,
    pub failovers: u32,
    pub false_failovers: u32,
    pub client_ok: u64,
    pub client_failed: u64,
    pub acked: usize,
    pub lost: usize,
}

#[derive(Default)]
struct ClientView {
    ok: AtomicU64,
    failed: AtomicU64,
    /// key → (SHA-256, when it was acknowledged)
    acked: Mutex<BTreeMap<String, (String, Instant)>>,
}

pub fn run(global: &Global, args: DrillArgs) -> Result<(), Failure> {
    let lab = if args.lab { Some(Lab::start()?) } else { None };
    let mut config = match &lab {
        Some(l) => l.config.clone(),
        None => load::config(global)?,
    };
    if let Some(rb) = &args.failover_runbook {
        config.runbooks.failover = Some(std::path::absolute(rb).context("--failover-runbook")?);
    }
    let mut chaos_args = args.chaos.clone();
    if let Some(l) = &lab {
        chaos_args.push(format!("primary=http://{}", l.control));
    }
    let agent_endpoint = args.agent_endpoint.clone().or_else(|| lab.as_ref().map(|l| l.direct.clone()));
    let agent = match (args.scenario, agent_endpoint) {
        (Scenario::PartialVantage, None) => {
            return Err(Failure::Usage(
                "drill --scenario partial-vantage needs --agent-endpoint URL: the primary's address that \
                 bypasses the chaos proxy, for the drill's second vantage"
                    .into(),
            ));
        }
        (Scenario::PartialVantage, Some(url)) => {
            Some(cutover_core::Endpoint::parse(&url).map_err(|e| Failure::Usage(format!("--agent-endpoint: {e}")))?)
        }
        _ => None,
    };
    let primary = config.primary().name.clone();
    let mut chaos = BTreeMap::new();
    for c in &chaos_args {
        let (name, url) =
            c.split_once('=').ok_or_else(|| Failure::Usage(format!("--chaos {c:?}: write BACKEND=URL")))?;
        if config.backend(name).is_none() {
            return Err(Failure::Usage(format!("--chaos {c:?}: no backend named {name:?}")));
        }
        let ep = cutover_core::Endpoint::parse(url).map_err(|e| Failure::Usage(format!("--chaos {c:?}: {e}")))?;
        chaos.insert(name.to_string(), ep);
    }
    let Some(proxy) = chaos.get(&primary).cloned() else {
        return Err(Failure::Usage(format!(
            "--chaos {primary}=URL is required: the drill injects faults through the chaos proxy in front of the primary"
        )));
    };
    if args.runs == 0 {
        return Err(Failure::Usage("--runs must be at least 1".into()));
    }
    std::fs::create_dir_all(&args.report).with_context(|| format!("creating {}", args.report.display()))?;
    let mut runs = Vec::new();
    for n in 1..=args.runs {
        let dir = tempfile::tempdir().context("temporary directory")?;
        let cfg = drill_config(&config, dir.path(), args.stable_for)?;
        println!("[drill] {} run {n}/{}", args.scenario.name(), args.runs);
        let rt = crate::runtime();
        let r = rt.block_on(one_run(cfg, &proxy, args.scenario, n, agent.clone()));
        rt.block_on(set_faults(&proxy, None)).ok();
        drop(rt);
        let r = r?;
        println!(
            "[drill] run {n}: detect {} · decision {} · RTO {} · client {} ok / {} failed · acked {} lost {} · false failovers {}",
            secs(r.detect_s),
            r.decision.as_deref().unwrap_or("none"),
            secs(r.rto_s),
            r.client_ok,
            r.client_failed,
            r.acked,
            r.lost,
            r.false_failovers
        );
        runs.push(r);
    }
    report(&config, &args, &runs)
}

fn secs(v: Option<f64>) -> String {
    v.map(|s| format!("{s:.2}s")).unwrap_or_else(|| "-".into())
}

/// A copy of the configuration for one isolated run.
fn drill_config(config: &Config, dir: &Path, stable_for: Duration) -> Result<Config, Failure> {
    let mut c = config.clone();
    c.state.path = dir.join("drill.db");
    if let Some(api) = &mut c.api {
        api.listen = "127.0.0.1:0".parse().expect("address");
    }
    c.fallback.stable_for = stable_for;
    c.fallback.min_dwell = stable_for.min(Duration::from_secs(2));
    let secret = dir.join("drill.secret");
    std::fs::write(&secret, format!("drill-{}\n", hex::encode(fastrand_bytes()))).context("drill secret")?;
    c.gateway = Some(GatewayConfig {
        listen: "127.0.0.1:0".parse().expect("address"),
        region: "us-east-1".into(),
        tls: None,
        clients: vec![GatewayClient { access_key_id: "CUTOVERDRILL".into(), secret: SecretRef::File(secret) }],
        buckets: vec![GatewayBucket {
            name: "drill".into(),
            mode: BucketMode::DualWrite,
            ack: Ack::ActiveJournal,
            backends: config.backends.iter().map(|b| b.name.clone()).collect(),
        }],
        limits: Default::default(),
    });
    Ok(c)
}

fn fastrand_bytes() -> [u8; 16] {
    let mut b = [0u8; 16];
    let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos();
    let h = Sha256::digest(format!("{t}-{}", std::process::id()));
    b.copy_from_slice(&h[..16]);
    b
}

/// Sets (or, with `None`, clears) the faults of a chaos proxy.
async fn set_faults(proxy: &cutover_core::Endpoint, faults: Option<Value>) -> Result<(), Failure> {
    let (method, body) = match faults {
        Some(f) => ("PUT", f.to_string()),
        None => ("DELETE", String::new()),
    };
    let connector = cutover_s3::http::Connector::new(proxy.clone(), Duration::from_secs(2), false);
    let mut sender = connector
        .checkout(&proxy.host)
        .await
        .map_err(|e| Failure::Error(anyhow::anyhow!("chaos proxy {}: {}", proxy.authority(), e.detail)))?;
    let req = http::Request::builder()
        .method(method)
        .uri("/faults")
        .header("host", proxy.authority())
        .header("content-type", "application/json")
        .header("content-length", body.len())
        .body(cutover_s3::http::full(Bytes::from(body)))
        .map_err(|e| Failure::Error(e.into()))?;
    let resp = sender.send_request(req).await.map_err(|e| Failure::Error(e.into()))?;
    if !resp.status().is_success() {
        return Err(Failure::Error(anyhow::anyhow!(
            "chaos proxy {}: {method} /faults: {}",
            proxy.authority(),
            resp.status()
        )));
    }
    Ok(())
}

async fn one_run(
    mut config: Config,
    proxy: &cutover_core::Endpoint,
    scenario: Scenario,
    n: u32,
    agent: Option<cutover_core::Endpoint>,
) -> Result<RunReport, Failure> {
    set_faults(proxy, None).await?;
    if agent.is_some() {
        config.verify.quorum = 2;
    }
    let running = start(config.clone(), true).await?;
    if let Some(direct) = agent {
        tokio::spawn(second_vantage(running.shared.clone(), config.clone(), direct));
    }
    running.wait_for("every backend healthy", Duration::from_secs(30), Running::all_healthy).await?;
    let gw = running.gateway.context("the drill gateway")?;
    let app = client_for(&config, &format!("http://{gw}"), "drill", "CUTOVERDRILL", &config_secret(&config)?)?;
    let view = Arc::new(ClientView::default());
    let stop = Arc::new(AtomicBool::new(false));
    let workload = tokio::spawn(workload(app.clone(), view.clone(), stop.clone(), n));
    tokio::time::sleep(Duration::from_secs(2)).await;

    let onset = Instant::now();
    let blackhole = json!({"blackhole": true});
    match scenario {
        Scenario::HardDown | Scenario::Slowdown => {
            let f = if scenario == Scenario::HardDown { blackhole } else { json!({"slowdown_rate": 1.0}) };
            set_faults(proxy, Some(f)).await?;
            let _ = running.wait_for("failover", Duration::from_secs(30), |r| failovers(r) > 0).await;
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        Scenario::Blip => {
            set_faults(proxy, Some(blackhole)).await?;
            tokio::time::sleep(Duration::from_secs(2)).await;
            set_faults(proxy, None).await?;
            tokio::time::sleep(Duration::from_secs(8)).await;
        }
        Scenario::Brownout => {
            set_faults(proxy, Some(json!({"latency_ms": 600, "jitter_ms": 200}))).await?;
            tokio::time::sleep(Duration::from_secs(12)).await;
        }
        Scenario::Flapping => {
            for _ in 0..5 {
                set_faults(proxy, Some(blackhole.clone())).await?;
                tokio::time::sleep(Duration::from_secs(3)).await;
                set_faults(proxy, None).await?;
                tokio::time::sleep(Duration::from_secs(3)).await;
            }
        }
        Scenario::PartialVantage => {
            set_faults(proxy, Some(blackhole)).await?;
            tokio::time::sleep(Duration::from_secs(12)).await;
        }
    }
    set_faults(proxy, None).await?;
    let recovered = Instant::now();
    let (detect_s, decision, rto_s) = timeline_measures(&running, onset);
    let mut fallback_s = None;
    if failovers(&running) > 0 {
        let limit = config.fallback.stable_for + Duration::from_secs(60);
        let resolved = |r: &Running| r.latest_incident().is_some_and(|i| i.state == IncidentState::Resolved);
        if running.wait_for("fallback", limit, resolved).await.is_ok() {
            fallback_s = Some(recovered.elapsed().as_secs_f64());
        }
    } else {
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    stop.store(true, Ordering::SeqCst);
    let _ = workload.await;
    // Writes acknowledged from the other backend while the primary was
    // unreachable (hedged dual-writes) reach it through the journal: let it
    // drain before the primary is read.
    if let Some(gw) = &running.shared.gateway {
        let _ = gw.replay_soon().await;
        let until = Instant::now() + Duration::from_secs(60);
        while gw.state().journal_depth().await.map(|(n, _)| n).unwrap_or(0) > 0 && Instant::now() < until {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let primary = config.primary();
    let direct = load::client(primary, ClientOptions::probe(Duration::from_secs(10)))?;
    let acked = view.acked.lock().unwrap().clone();
    let (mut lost, mut tolerated) = (0, 0);
    let rpo = config.objectives.rpo;
    for (key, (hash, at)) in &acked {
        let mut gone = false;
        for c in [&app, &direct] {
            if !c.get_object(key, &[]).await.is_ok_and(|r| hex::encode(Sha256::digest(&r.body)) == *hash) {
                gone = true;
                println!("[drill] LOST {key} via {}", c.name());
            }
        }
        // With rpo > 0, a write acknowledged within rpo of the onset may be lost.
        let near = if *at >= onset { *at - onset <= rpo } else { onset - *at <= rpo };
        match (gone, !rpo.is_zero() && near) {
            (true, true) => tolerated += 1,
            (true, false) => lost += 1,
            _ => {}
        }
    }
    if tolerated > 0 {
        println!("[drill] {tolerated} lost writes acknowledged within the rpo of the onset (tolerated)");
    }
    for key in acked.keys() {
        let _ = app.delete_object(key).await;
    }
    let n_failovers = failovers(&running);
    Ok(RunReport {
        run: n,
        detect_s,
        decision,
        rto_s,
        fallback_s,
        failovers: n_failovers,
        false_failovers: n_failovers.saturating_sub(scenario.allowed_failovers()),
        client_ok: view.ok.load(Ordering::SeqCst),
        client_failed: view.failed.load(Ordering::SeqCst),
        acked: acked.len(),
        lost,
    })
}

fn config_secret(config: &Config) -> Result<String, Failure> {
    let gw = config.gateway.as_ref().expect("the drill gateway");
    match &gw.clients[0].secret {
        SecretRef::File(p) => Ok(std::fs::read_to_string(p).context("drill secret")?.trim().to_string()),
        SecretRef::Env(_) => unreachable!("the drill writes a file"),
    }
}

fn client_for(config: &Config, endpoint: &str, bucket: &str, key: &str, secret: &str) -> Result<S3Client, Failure> {
    let mut b = config.primary().clone();
    b.name = "gateway".into();
    b.bucket = bucket.into();
    // Clients sign for the gateway's region (another is refused, as S3 does).
    b.region = config.gateway.as_ref().map(|g| g.region.clone()).unwrap_or_else(|| "us-east-1".into());
    b.path_style = true;
    b.endpoint = cutover_core::Endpoint::parse(endpoint).map_err(Failure::Usage)?;
    let creds = Credentials {
        access_key_id: key.into(),
        secret_access_key: cutover_core::Secret::new(secret.to_string()),
        session_token: None,
    };
    Ok(S3Client::new(&b, creds, ClientOptions::probe(Duration::from_secs(2))))
}

async fn workload(client: S3Client, view: Arc<ClientView>, stop: Arc<AtomicBool>, run: u32) {
    let mut i = 0u64;
    while !stop.load(Ordering::SeqCst) {
        let key = format!("cutover-drill/{run}/{i:06}");
        let body = Bytes::from(format!("drill write {run}/{i}"));
        let hash = hex::encode(Sha256::digest(&body));
        match client.put_object(&key, body, &[]).await {
            Ok(_) => {
                view.acked.lock().unwrap().insert(key, (hash, Instant::now()));
                view.ok.fetch_add(1, Ordering::SeqCst);
            }
            Err(_) => {
                view.failed.fetch_add(1, Ordering::SeqCst);
            }
        }
        i += 1;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The drill's second vantage: probes every backend like an agent in another
/// place would, the primary at `direct` (not through the chaos proxy).
async fn second_vantage(shared: Arc<crate::cmd::run::Shared>, config: Config, direct: cutover_core::Endpoint) {
    let mut clients = Vec::new();
    for b in &config.backends {
        let mut b = b.clone();
        if b.role == cutover_core::config::Role::Primary {
            b.endpoint = direct.clone();
        }
        if let Ok(c) = load::client(&b, ClientOptions::probe(config.probe.timeout)) {
            clients.push(c);
        }
    }
    let mut tick = tokio::time::interval(config.probe.interval);
    loop {
        tick.tick().await;
        for c in &clients {
            let started = Instant::now();
            let r = cutover_s3::probe::probe_cycle(c, &config.probe.prefix, config.probe.object_size).await;
            let events = shared.controller.lock().unwrap().observe(
                Instant::now(),
                &r.backend,
                "drill-agent",
                started,
                r.ok,
                &r.outcome.to_string(),
            );
            for e in &events {
                crate::cmd::run::report_event(&shared, e);
            }
        }
    }
}

/// Completed failover runs.
fn failovers(r: &Running) -> u32 {
    let c = r.shared.controller.lock().unwrap();
    let store = c.store();
    let incidents = store.incidents().unwrap_or_default();
    incidents
        .iter()
        .flat_map(|i| store.runs_for(&i.id).unwrap_or_default())
        .filter(|run| run.kind == RunKind::Failover && run.state == RunState::Completed)
        .count() as u32
}

/// Detection, first decision and validated switch, from the first
/// incident's timeline, in seconds after `onset`.
fn timeline_measures(r: &Running, onset: Instant) -> (Option<f64>, Option<String>, Option<f64>) {
    let c = r.shared.controller.lock().unwrap();
    let Some(inc) = c.store().incidents().ok().and_then(|v| v.into_iter().last()) else { return (None, None, None) };
    let since = |at: &str| -> Option<f64> {
        let t = cutover_core::time::parse_rfc3339(at)?;
        let now = std::time::SystemTime::now();
        let age = now.duration_since(t).ok()?;
        let at_instant = Instant::now().checked_sub(age)?;
        Some(at_instant.saturating_duration_since(onset).as_secs_f64())
    };
    let timeline = c.store().timeline(&inc.id).unwrap_or_default();
    let detect = timeline.iter().find(|e| e.kind == "incident.opened").and_then(|e| since(&e.at));
    let decision =
        timeline.iter().find(|e| e.kind == "decision").and_then(|e| e.detail["action"].as_str().map(String::from));
    let rto = timeline
        .iter()
        .find(|e| e.kind == "runbook.completed" && e.detail["kind"] == RunKind::Failover.as_str())
        .and_then(|e| since(&e.at));
    (detect, decision, rto)
}

fn stats(v: &[f64]) -> (Option<f64>, Option<f64>) {
    if v.is_empty() {
        return (None, None);
    }
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    (Some(s[s.len() / 2]), s.last().copied())
}

fn report(config: &Config, args: &DrillArgs, runs: &[RunReport]) -> Result<(), Failure> {
    let o = &config.objectives;
    let rtos: Vec<f64> = runs.iter().filter_map(|r| r.rto_s).collect();
    let (median, max) = stats(&rtos);
    let false_failovers: u32 = runs.iter().map(|r| r.false_failovers).sum();
    let lost: usize = runs.iter().map(|r| r.lost).sum();
    let missing = args.scenario.expects_failover() && rtos.len() < runs.len();
    let mut breaches = Vec::new();
    if missing {
        breaches.push(format!("{} of {} runs did not fail over", runs.len() - rtos.len(), runs.len()));
    }
    if let Some(m) = max.filter(|m| args.scenario.expects_failover() && *m > o.rto.as_secs_f64()) {
        breaches.push(format!("RTO {m:.2}s exceeds the objective of {:?}", o.rto));
    }
    if lost > 0 {
        breaches.push(format!("{lost} acknowledged writes lost (rpo {:?})", o.rpo));
    }
    if false_failovers > o.max_false_failovers {
        breaches.push(format!("{false_failovers} false failovers (allowed {})", o.max_false_failovers));
    }
    let doc = json!({
        "scenario": args.scenario,
        "runs": runs,
        "rto_s": {"median": median, "max": max},
        "false_failovers": false_failovers,
        "lost_acknowledged_writes": lost,
        "objectives": {"rto_s": o.rto.as_secs_f64(), "rpo_s": o.rpo.as_secs_f64(), "max_false_failovers": o.max_false_failovers},
        "met": breaches.is_empty(),
        "breaches": breaches,
    });
    let name = args.scenario.name();
    let json_path = args.report.join(format!("drill-{name}.json"));
    std::fs::write(&json_path, serde_json::to_string_pretty(&doc).expect("json")).context("writing the report")?;
    let mut md = format!(
        "# Drill: {name}\n\n{} runs · RTO median {} max {} (objective {:?}) · false failovers {false_failovers} · \
         lost acknowledged writes {lost}\n\n| run | detect | decision | RTO | fallback | client ok | client failed | acked | lost | false failovers |\n\
         |---|---|---|---|---|---|---|---|---|---|\n",
        runs.len(),
        secs(median),
        secs(max),
        o.rto
    );
    for r in runs {
        md.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
            r.run,
            secs(r.detect_s),
            r.decision.as_deref().unwrap_or("none"),
            secs(r.rto_s),
            secs(r.fallback_s),
            r.client_ok,
            r.client_failed,
            r.acked,
            r.lost,
            r.false_failovers
        ));
    }
    md.push_str(&if breaches.is_empty() {
        "\nObjectives met.\n".to_string()
    } else {
        format!("\nObjectives BREACHED:\n{}\n", breaches.iter().map(|b| format!("- {b}\n")).collect::<String>())
    });
    let md_path = args.report.join(format!("drill-{name}.md"));
    std::fs::write(&md_path, &md).context("writing the report")?;
    if args.json {
        println!("{doc}");
    } else {
        print!("{md}");
    }
    println!("[drill] reports: {} and {}", md_path.display(), json_path.display());
    if breaches.is_empty() { Ok(()) } else { Err(Failure::Failed) }
}

/// `[[drills]]`: runs each drill on its schedule, one at a time, as a child
/// `cutover drill` process against its staging configuration; records the
/// result in the audit log and `cutover_drills_total`.
pub async fn scheduled(shared: Arc<crate::cmd::run::Shared>, drills: Vec<cutover_core::config::DrillConfig>) {
    if drills.is_empty() {
        return;
    }
    let Ok(exe) = std::env::current_exe() else {
        eprintln!("ALERT scheduled drills: cannot find this executable");
        return;
    };
    let mut next: Vec<Option<std::time::SystemTime>> =
        drills.iter().map(|d| d.cron.next_after(std::time::SystemTime::now())).collect();
    loop {
        let Some((i, at)) = next.iter().enumerate().filter_map(|(i, t)| t.map(|t| (i, t))).min_by_key(|(_, t)| *t)
        else {
            return;
        };
        let wait = at.duration_since(std::time::SystemTime::now()).unwrap_or_default();
        tokio::time::sleep(wait).await;
        let d = &drills[i];
        println!("drill {} ({}): starting against {}", d.scenario, d.cron, d.config.display());
        let mut cmd = tokio::process::Command::new(&exe);
        cmd.arg("--config").arg(&d.config).args(["drill", "--scenario", &d.scenario, "--runs", &d.runs.to_string()]);
        cmd.arg("--report").arg(&d.report);
        for (backend, url) in &d.chaos {
            cmd.arg("--chaos").arg(format!("{backend}={url}"));
        }
        if let Some(a) = &d.agent_endpoint {
            cmd.args(["--agent-endpoint", a]);
        }
        cmd.stdout(std::process::Stdio::null()).stderr(std::process::Stdio::piped()).kill_on_drop(true);
        let (result, detail) = match cmd.output().await {
            Ok(o) if o.status.success() => ("met", String::new()),
            Ok(o) if o.status.code() == Some(1) => ("breached", String::new()),
            Ok(o) => ("error", String::from_utf8_lossy(&o.stderr).chars().take(500).collect()),
            Err(e) => ("error", e.to_string()),
        };
        let report = d.report.join(format!("drill-{}.md", d.scenario));
        println!("drill {}: {result}; report {} {detail}", d.scenario, report.display());
        shared
            .metrics
            .lock()
            .unwrap()
            .inc(cutover_control::metrics::DRILLS, vec![("scenario", d.scenario.clone()), ("result", result.into())]);
        let store = shared.controller.lock().unwrap().store().clone();
        if let Err(e) = store.audit(
            &cutover_store::Fence::local(),
            std::time::SystemTime::now(),
            "scheduler",
            "drill",
            &json!({"scenario": d.scenario, "cron": d.cron.to_string(), "result": result,
                    "report": report.display().to_string(), "detail": detail}),
        ) {
            tracing::error!(error = %e, "writing the audit entry of a scheduled drill");
            shared
                .metrics
                .lock()
                .unwrap()
                .inc(cutover_control::metrics::STORE_ERRORS, vec![("op", "drill.audit".into())]);
        }
        next[i] = d.cron.next_after(std::time::SystemTime::now());
    }
}
