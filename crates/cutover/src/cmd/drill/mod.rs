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
//!
//! - `lab`: `--lab`, the drill's own Garage backends and chaos proxy;
//!   `setup`: the isolated run's configuration and client; `faults`: the
//!   chaos proxy's control API; `one_run`, `workload`, `vantage`: one run;
//! - `measure`: what the controller recorded; `report`: the reports.
//!
//! Scheduled drills (`[[drills]]` in `cutover run`) run this command as a
//! child process (`crate::wiring`).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, ValueEnum};
use cutover_core::{Config, Endpoint};
use serde::Serialize;

use crate::cli::Global;
use crate::{Failure, load};

mod faults;
mod lab;
mod measure;
mod one_run;
mod report;
mod setup;
mod vantage;
mod workload;

use faults::set_faults;
use lab::DrillLab;
use one_run::one_run;
use report::report;
use setup::drill_config;

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

pub fn run(global: &Global, args: DrillArgs) -> Result<(), Failure> {
    let lab = if args.lab { Some(DrillLab::start()?) } else { None };
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
    let agent = second_vantage_endpoint(args.scenario, agent_endpoint)?;
    let proxy = primary_proxy(&config, &chaos_args)?;
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

/// For partial-vantage: the primary's address that bypasses the chaos
/// proxy (required); `None` for the other scenarios.
fn second_vantage_endpoint(scenario: Scenario, url: Option<String>) -> Result<Option<Endpoint>, Failure> {
    match (scenario, url) {
        (Scenario::PartialVantage, None) => Err(Failure::Usage(
            "drill --scenario partial-vantage needs --agent-endpoint URL: the primary's address that \
             bypasses the chaos proxy, for the drill's second vantage"
                .into(),
        )),
        (Scenario::PartialVantage, Some(url)) => {
            Ok(Some(Endpoint::parse(&url).map_err(|e| Failure::Usage(format!("--agent-endpoint: {e}")))?))
        }
        _ => Ok(None),
    }
}

/// The control API of the chaos proxy in front of the primary, from the
/// `--chaos BACKEND=URL` arguments (each checked).
fn primary_proxy(config: &Config, chaos_args: &[String]) -> Result<Endpoint, Failure> {
    let primary = config.primary().name.clone();
    let mut chaos = BTreeMap::new();
    for c in chaos_args {
        let (name, url) =
            c.split_once('=').ok_or_else(|| Failure::Usage(format!("--chaos {c:?}: write BACKEND=URL")))?;
        if config.backend(name).is_none() {
            return Err(Failure::Usage(format!("--chaos {c:?}: no backend named {name:?}")));
        }
        let ep = Endpoint::parse(url).map_err(|e| Failure::Usage(format!("--chaos {c:?}: {e}")))?;
        chaos.insert(name.to_string(), ep);
    }
    chaos.remove(&primary).ok_or_else(|| {
        Failure::Usage(format!(
            "--chaos {primary}=URL is required: the drill injects faults through the chaos proxy in front of the primary"
        ))
    })
}

fn secs(v: Option<f64>) -> String {
    v.map(|s| format!("{s:.2}s")).unwrap_or_else(|| "-".into())
}
