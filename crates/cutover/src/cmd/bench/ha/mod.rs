//! `cutover bench ha` (issue 14's benchmark), on a three-member etcd
//! cluster it starts on loopback and two s3s-fs backends in this process:
//!
//! 1. the takeover after `kill -9` of the leader among three `cutover run`
//!    nodes (this same binary), median and max over `--trials`, and the
//!    double actions in the recorded leadership history ([`takeover`]);
//! 2. the propagation of a fenced switch of the active backend to three
//!    `cutover gateway` processes, p50 and p99 over `--switches`
//!    ([`propagation`]);
//! 3. the RTO of a hard-down outage of the primary when the leader is
//!    killed at the moment of its failover decision, over `--rto-trials`
//!    ([`rto`]).
//!
//! Goals: every takeover within `lease_ttl` + 1 s, propagation p99 ≤
//! 100 ms, no double action, every outage recovered; exit 1 when one is
//! missed.

use std::time::Duration;

use clap::Args;

use crate::Failure;

mod config;
mod history;
mod lab;
mod process;
mod propagation;
mod report;
mod rto;
mod table;
mod takeover;
mod watch;

use lab::HaLab;
use report::HaReport;

#[derive(Debug, Args)]
pub struct HaArgs {
    /// Takeovers after kill -9 of the leader.
    #[arg(long, default_value_t = 10, value_name = "N")]
    pub trials: usize,
    /// Fenced switches of the active backend followed by three gateways.
    #[arg(long, default_value_t = 50, value_name = "N")]
    pub switches: usize,
    /// The `[ha] lease_ttl` of every node and gateway (whole seconds).
    #[arg(long, default_value = "3s", value_parser = cutover_core::parse_duration)]
    pub lease_ttl: Duration,
    /// Hard-down outages of the primary with the leader killed at the moment of the decision (0: none).
    #[arg(long, default_value_t = 3, value_name = "N")]
    pub rto_trials: usize,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: HaArgs) -> Result<(), Failure> {
    if args.trials == 0 || args.switches == 0 {
        return Err(Failure::Usage("--trials and --switches must be at least 1".into()));
    }
    if args.lease_ttl < Duration::from_secs(1) || args.lease_ttl.subsec_nanos() != 0 {
        return Err(Failure::Usage("--lease-ttl must be a whole number of seconds, at least 1s".into()));
    }
    if !cutover_lab::etcd::available() {
        return Err(Failure::Error(anyhow::anyhow!(
            "etcd binary not found (set ETCD_BIN, or install Debian's etcd-server)"
        )));
    }
    let exe = std::env::current_exe().map_err(|e| Failure::Error(anyhow::anyhow!("finding this binary: {e}")))?;
    eprintln!(
        "cutover bench ha: {} takeovers, {} switches, {} outages, lease_ttl {}; starting a {}-member etcd cluster",
        args.trials,
        args.switches,
        args.rto_trials,
        cutover_core::duration::format_duration(args.lease_ttl),
        cutover_lab::etcd::MEMBERS
    );
    let lab = HaLab::start(exe, args.lease_ttl).map_err(|e| Failure::Error(anyhow::anyhow!("{e}")))?;

    let takeover = takeover::measure(&lab, args.trials);
    let propagation = propagation::measure(&lab, args.switches);
    let rto = rto::measure(&lab, args.rto_trials);

    let report = HaReport { lease_ttl: args.lease_ttl, takeover, propagation, rto };
    if args.json {
        println!("{}", report.json());
    } else {
        report.print_table();
    }
    if report.all_met() { Ok(()) } else { Err(Failure::Failed) }
}
