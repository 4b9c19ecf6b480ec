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
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Work with the configuration file.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Run the synthetic probe cycle (PUT, GET + checksum, HEAD, DELETE) against backends.
    Probe(ProbeArgs),
    /// Run the smoke-test suite against one backend.
    Validate(ValidateArgs),
    /// Run the S3 gateway on `[gateway] listen` (follows the active backend in the state file).
    Gateway(GatewayArgs),
}

#[derive(Debug, Args)]
pub struct GatewayArgs {
    /// Listen here instead of `[gateway] listen`.
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<std::net::SocketAddr>,
    /// Wait for a backend's answer headers (reads, deletes) before read-through or 503.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub header_timeout: std::time::Duration,
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

fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    cutover_core::parse_duration(s)
}
