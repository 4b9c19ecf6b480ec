//! The command line.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "cutover",
    version,
    about = "Automatic, safe and audited failover between S3-compatible object stores"
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
pub struct Global {
    /// Configuration file [default: $CUTOVER_CONFIG, else ./cutover.toml]
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// How reporting commands print their results (`--json` is the same as `--output json`).
    #[arg(long, global = true, value_enum, value_name = "FORMAT", default_value = "text")]
    pub output: Output,
    /// The format of log lines on stderr: human-readable text (colour only on
    /// a terminal) or one JSON object per line for log collectors
    /// [default: $CUTOVER_LOG_FORMAT, else text].
    #[arg(long, global = true, value_enum, value_name = "FORMAT")]
    pub log_format: Option<LogFormat>,
}

/// `--output`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    Text,
    Json,
}

/// `--log-format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Work with the configuration file.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Run the controller: probe, verify, decide, run runbooks, fall back; serve the API (and the gateway).
    Run(RunArgs),
    /// Check a runbook, or print its plan.
    Runbook {
        #[command(subcommand)]
        command: crate::cmd::runbook::RunbookCommand,
    },
    /// Approve an incident that awaits approval (through the API).
    Approve(crate::cmd::approve::VerdictArgs),
    /// Reject an incident that awaits approval (through the API).
    Reject(crate::cmd::approve::VerdictArgs),
    /// Force a failover to a backend through the failover runbook (through the API; admin).
    Failover(crate::cmd::approve::FailoverArgs),
    /// Run a chaos drill on a staging configuration and report RTO, lost writes and false failovers.
    Drill(crate::cmd::drill::DrillArgs),
    /// Probe from another vantage point and report to a controller.
    Agent(AgentArgs),
    /// Evaluate or test Rego policies.
    Policy {
        #[command(subcommand)]
        command: PolicyCommand,
    },
    /// Show the active backend, health per backend and vantage, and open
    /// incidents (from a running controller's API, else the state store).
    Status(crate::cmd::status::StatusArgs),
    /// Show incidents from the state store.
    Incidents {
        #[command(subcommand)]
        command: IncidentsCommand,
    },
    /// Check the audit log.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Run cutover end to end on embedded backends (needs nothing installed).
    Demo,
    /// Run the synthetic probe cycle (PUT, GET + checksum, HEAD, DELETE) against backends.
    Probe(ProbeArgs),
    /// Run the smoke-test suite against one backend.
    Validate(ValidateArgs),
    /// Copy new and changed objects from SRC to DST (BACKEND[:PREFIX]); --delete mirrors.
    Sync(crate::cmd::sync::SyncArgs),
    /// Compare SRC with DST and list the differences; exit 1 when there are any.
    Check(crate::cmd::sync::CheckArgs),
    /// Sync SRC to DST continuously, printing the replication lag each round.
    Replicate(crate::cmd::sync::ReplicateArgs),
    /// Run the S3 gateway on `[gateway] listen` (follows the active backend in the state file, or in etcd with `[ha]`).
    Gateway(GatewayArgs),
    /// High availability on etcd (`[ha]`): who leads, every node and gateway.
    Ha {
        #[command(subcommand)]
        command: crate::cmd::ha::HaCommand,
    },
    /// Relay TCP to a backend while injecting faults (latency, blackhole, reset, refuse, 503 SlowDown, bandwidth).
    ChaosProxy(crate::cmd::chaos::ChaosProxyArgs),
    /// The Kubernetes operator for the StorageBackend resource; `operator crd` prints the CRD.
    Operator(crate::cmd::operator::OperatorArgs),
    /// Measure cutover against real servers (detection time, false failovers).
    Bench {
        #[command(subcommand)]
        command: crate::cmd::bench::BenchCommand,
    },
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Do not serve the S3 gateway in this process even if `[gateway]` is
    /// configured (run `cutover gateway` separately; it follows the state file).
    #[arg(long)]
    pub no_gateway: bool,
}

#[derive(Debug, Args)]
pub struct GatewayArgs {
    /// Listen here instead of `[gateway] listen`.
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<std::net::SocketAddr>,
    /// Overrides `gateway.backend_first_byte_timeout`: how long a backend may
    /// take to answer before read-through or a retryable 503.
    #[arg(long, value_parser = parse_duration)]
    pub header_timeout: Option<std::time::Duration>,
    /// Do not serve: copy the objects written to a non-primary backend while it
    /// was active back to the primary, verify them, print a JSON report, exit.
    #[arg(long)]
    pub resync: bool,
    /// How often to read `kv.active_backend` from the state file.
    #[arg(long, default_value = "200ms", value_parser = parse_duration)]
    pub poll: std::time::Duration,
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Parse and validate the configuration without network I/O; print every problem.
    Check {
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Args)]
pub struct AgentArgs {
    /// The controller's API, e.g. http://10.0.0.5:8080
    #[arg(long)]
    pub controller: String,
    /// This agent's vantage name (e.g. eu-west).
    #[arg(long)]
    pub vantage: String,
    /// The environment variable holding the agent's bearer token (role agent).
    #[arg(long, value_name = "VAR")]
    pub token_env: String,
}

#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Print the decision of a policy for an input document, as JSON.
    Eval {
        /// The input document (JSON; see docs/policy.md).
        #[arg(long)]
        input: PathBuf,
        /// The policy file [default: the built-in policy].
        #[arg(long)]
        policy: Option<PathBuf>,
    },
    /// Run the `test_` rules of the policies in DIR (default: the built-in policy and its tests).
    Test { dir: Option<PathBuf> },
}

#[derive(Debug, Subcommand)]
pub enum IncidentsCommand {
    /// List incidents, newest first.
    List {
        /// Only open incidents (not resolved).
        #[arg(long)]
        open: bool,
        /// Only incidents in this state (e.g. awaiting_approval, failed_over, resolved).
        #[arg(long, value_name = "STATE")]
        state: Option<String>,
        /// At most N incidents (the newest).
        #[arg(long, value_name = "N")]
        limit: Option<usize>,
        /// Print JSON (the same as `--output json`).
        #[arg(long)]
        json: bool,
    },
    /// Show one incident with its timeline.
    Show {
        id: String,
        #[arg(long)]
        json: bool,
    },
    /// The post-incident report: summary, timeline, evidence, decision and
    /// approvals, steps, chart (HTML: one self-contained file).
    Report {
        id: String,
        /// md or html.
        #[arg(long, value_name = "FORMAT", default_value = "md")]
        format: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Verify the hash chain and, with `[audit] export`, compare the database
    /// with the export; name the first bad entry (exit 1).
    Verify {
        /// Print the report as one JSON document.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Args)]
pub struct ProbeArgs {
    /// Probe only this backend.
    #[arg(long, value_name = "NAME")]
    pub backend: Option<String>,
    /// Run one cycle and exit (the default).
    #[arg(long, conflicts_with = "watch")]
    pub once: bool,
    /// Probe every `probe.interval` until interrupted.
    #[arg(long)]
    pub watch: bool,
    /// Print one JSON object per backend and cycle.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// The backend to validate.
    #[arg(long, value_name = "NAME")]
    pub backend: String,
    /// Deadline of each S3 operation.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub timeout: std::time::Duration,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

fn parse_duration(s: &str) -> Result<std::time::Duration, cutover_core::DurationError> {
    cutover_core::parse_duration(s)
}
