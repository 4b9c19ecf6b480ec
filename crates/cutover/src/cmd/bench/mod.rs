//! `cutover bench detect` (below) and `cutover bench ha` ([`ha`]).
//!
//! `cutover bench detect`: over repeated trials per fault kind, the time from
//! the onset of an outage of the primary to the controller's confirmed
//! `failover` decision, and the false failovers on short SIGSTOP blips.
//!
//! Everything is real: two single-node Garage processes on loopback (kept for
//! the whole run) and, per trial, a fresh `cutover run` process (this same
//! binary) with a fresh state store and a generated configuration. The onset
//! is the wall-clock time just before the fault is injected (so the figures
//! include the few milliseconds the `kill` or `nft` command takes); the
//! decision time is the first `decision` event with action `failover` in the
//! incident's timeline, read through `GET /v1/incidents/{id}` (recorded with
//! millisecond precision by the controller when the policy decided). Trials
//! where another decision came first (an *interim* `await_approval` while the
//! independent re-check had not failed yet) are counted. Each trial injects
//! its fault at a pseudo-random phase of the probe interval.
//!
//! The onset-to-suspect times and the blips' failing streaks come from the
//! health changes the controller logs (`--log-format json`, one JSON object
//! per line on its stdout).
//!
//! Fault kinds: `sigstop` (the primary hangs), `sigkill` (it crashes; it is
//! restarted afterwards), `nft-drop` (an nftables table `inet cutover_bench`
//! drops TCP to the primary's port on `lo`, a blackhole; needs root and
//! `nft`, skipped with a message otherwise; the table is deleted afterwards).

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Subcommand, ValueEnum};
use cutover_core::config::Config;
use cutover_core::duration::format_duration;
use cutover_lab::garage::{self, Garage};
use serde_json::json;

use crate::Failure;

mod config;
mod error;
mod ha;
mod health_log;
mod lab;
mod nft;
mod phase;
mod process;
mod report;

use lab::DetectLab;
use report::{BlipReport, KindReport, describe, print_table, report_json};

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Time from the onset of an outage to the confirmed failover decision, and false failovers on blips.
    Detect(DetectArgs),
    /// HA on etcd: takeover after kill -9 of the leader, switch propagation to three gateways, double actions.
    Ha(ha::HaArgs),
}

#[derive(Debug, Args)]
pub struct DetectArgs {
    /// Trials per fault kind.
    #[arg(long, default_value_t = 10, value_name = "N")]
    pub trials: usize,
    /// Fault kinds to measure, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "sigstop,sigkill,nft-drop")]
    pub kinds: Vec<FaultKind>,
    /// Short SIGSTOP blips that must not fail over [default: --trials].
    #[arg(long, value_name = "N")]
    pub blips: Option<usize>,
    /// Length of each blip.
    #[arg(long, default_value = "2s", value_parser = cutover_core::parse_duration)]
    pub blip: Duration,
    /// TOML added to the generated configuration, e.g. a [detect] table to compare settings.
    #[arg(long, value_name = "FILE")]
    pub extra: Option<PathBuf>,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

/// How the primary is taken down.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FaultKind {
    /// SIGSTOP: the process hangs; connections are accepted but never answered.
    Sigstop,
    /// SIGKILL: the process is gone; connections are refused.
    Sigkill,
    /// An nftables rule drops TCP to the primary's port on lo: a blackhole.
    NftDrop,
}

impl FaultKind {
    pub fn as_str(self) -> &'static str {
        match self {
            FaultKind::Sigstop => "sigstop",
            FaultKind::Sigkill => "sigkill",
            FaultKind::NftDrop => "nft-drop",
        }
    }
}

pub fn run(command: BenchCommand) -> Result<(), Failure> {
    match command {
        BenchCommand::Detect(args) => detect(args),
        BenchCommand::Ha(args) => ha::run(args),
    }
}

fn detect(args: DetectArgs) -> Result<(), Failure> {
    if args.trials == 0 {
        return Err(Failure::Usage("--trials must be at least 1".into()));
    }
    let extra = match &args.extra {
        Some(p) => std::fs::read_to_string(p).map_err(|e| Failure::Usage(format!("{}: {e}", p.display())))?,
        None => String::new(),
    };
    let settings =
        config::settings(&extra).map_err(|e| Failure::Usage(format!("{e}\n(check the file given with --extra)")))?;
    if !garage::available() {
        return Err(Failure::Error(anyhow::anyhow!(
            "garage binary not found (set GARAGE_BIN, or `cargo install garage --locked`)"
        )));
    }
    let exe = std::env::current_exe().map_err(|e| Failure::Error(anyhow::anyhow!("finding this binary: {e}")))?;
    let start = |what| Garage::start("app-data").map_err(|e| Failure::Error(anyhow::anyhow!("starting {what}: {e}")));
    let mut lab =
        DetectLab { exe, extra, primary: start("the primary Garage")?, secondary: start("the secondary Garage")? };
    let blips = args.blips.unwrap_or(args.trials);
    eprintln!(
        "cutover bench detect: {} trials per kind ({}), {blips} blips of {}; {}",
        args.trials,
        args.kinds.iter().map(|k| k.as_str()).collect::<Vec<_>>().join(", "),
        format_duration(args.blip),
        describe(&settings)
    );

    let mut kinds = Vec::new();
    let mut skipped = Vec::new();
    for &kind in dedup(&args.kinds).iter() {
        if kind == FaultKind::NftDrop
            && let Err(why) = nft::nft_usable()
        {
            eprintln!("skipping nft-drop: {why}");
            skipped.push(json!({"kind": kind.as_str(), "reason": why.to_string()}));
            continue;
        }
        kinds.push(measure_kind(&mut lab, kind, args.trials, &settings));
    }
    let blip = measure_blips(&mut lab, blips, args.blip, &settings);

    let report = report_json(&kinds, &skipped, &blip, args.blip, &settings, args.extra.as_deref());
    if args.json {
        println!("{report}");
    } else {
        print_table(&kinds, &skipped, &blip, args.blip, &settings);
    }
    let failed = kinds.iter().any(|k| !k.errors.is_empty()) || blip.false_failovers > 0 || !blip.errors.is_empty();
    if failed { Err(Failure::Failed) } else { Ok(()) }
}

/// `trials` outages of one kind.
fn measure_kind(lab: &mut DetectLab, kind: FaultKind, trials: usize, settings: &Config) -> KindReport {
    let mut r = KindReport { kind, decided: Vec::new(), suspect: Vec::new(), interim: 0, errors: Vec::new() };
    for i in 1..=trials {
        match lab.trial(kind, settings) {
            Ok(t) => {
                let interim = if t.interim.is_empty() {
                    String::new()
                } else {
                    format!(" (after an interim {})", t.interim.join(", "))
                };
                let secs = t.decided.as_secs_f64();
                eprintln!("{} {i}/{trials}: failover decision after {secs:.3} s{interim}", kind.as_str());
                r.decided.push(t.decided);
                r.suspect.extend(t.suspect);
                r.interim += usize::from(!t.interim.is_empty());
            }
            Err(e) => {
                eprintln!("{} {i}/{trials}: {e}", kind.as_str());
                r.errors.push(e.to_string());
            }
        }
    }
    r
}

/// `blips` SIGSTOP blips of `length`, spread over the phases of the probe cycle.
fn measure_blips(lab: &mut DetectLab, blips: usize, length: Duration, settings: &Config) -> BlipReport {
    let mut blip = BlipReport { trials: blips, ..BlipReport::default() };
    for i in 1..=blips {
        match lab.blip(length, (i - 1, blips), settings) {
            Ok(b) => {
                eprintln!(
                    "blip {i}/{blips}: {}{}",
                    if b.failover { "FALSE FAILOVER" } else { "no failover" },
                    b.streak.map(|s| format!(", failing streak {:.2} s", s.as_secs_f64())).unwrap_or_default()
                );
                blip.false_failovers += usize::from(b.failover);
                blip.down += usize::from(b.down);
                blip.suspect += usize::from(b.suspect);
                blip.streaks.extend(b.streak);
            }
            Err(e) => {
                eprintln!("blip {i}/{blips}: {e}");
                blip.errors.push(e.to_string());
            }
        }
    }
    blip
}

fn dedup(kinds: &[FaultKind]) -> Vec<FaultKind> {
    let mut out: Vec<FaultKind> = Vec::new();
    for k in kinds {
        if !out.contains(k) {
            out.push(*k);
        }
    }
    out
}
