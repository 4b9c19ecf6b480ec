//! `cutover`: one binary that runs the whole recovery playbook for
//! S3-compatible object stores. This crate only wires the stages together.

mod api;
mod audit_export;
mod cli;
mod cmd;
mod listen;
mod load;

use std::process::ExitCode;

use clap::Parser;

use crate::cli::{Cli, Command, ConfigCommand};

/// How a command ends. Exit codes: 0 ok, 1 a check or operation failed,
/// 2 usage or configuration error.
#[derive(Debug)]
pub enum Failure {
    /// Bad usage or configuration (exit 2). The message names the problem
    /// and where it is.
    Usage(String),
    /// A check or operation failed (exit 1); the details were printed.
    Failed,
    /// An operation failed with this error (exit 1).
    Error(anyhow::Error),
}

impl From<anyhow::Error> for Failure {
    fn from(e: anyhow::Error) -> Self {
        Failure::Error(e)
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing();
    let result = match cli.command {
        Command::Config { command: ConfigCommand::Check { json } } => cmd::config::check(&cli.global, json),
        Command::Demo => cmd::demo::run(),
        Command::Run(args) => cmd::run::run(&cli.global, args),
        Command::Runbook { command } => cmd::runbook::run(&cli.global, command),
        Command::Approve(args) => cmd::approve::verdict(&cli.global, args, true),
        Command::Reject(args) => cmd::approve::verdict(&cli.global, args, false),
        Command::Failover(args) => cmd::approve::failover(&cli.global, args),
        Command::Drill(args) => cmd::drill::run(&cli.global, args),
        Command::Agent(args) => cmd::agent::run(&cli.global, args),
        Command::Policy { command } => cmd::policy::run(command),
        Command::Incidents { command } => cmd::state::incidents(&cli.global, command),
        Command::Audit { command } => cmd::state::audit(&cli.global, command),
        Command::Probe(args) => cmd::probe::run(&cli.global, args),
        Command::Validate(args) => cmd::validate::run(&cli.global, args),
        Command::Sync(args) => cmd::sync::sync(&cli.global, args),
        Command::Check(args) => cmd::sync::check(&cli.global, args),
        Command::Replicate(args) => cmd::sync::replicate(&cli.global, args),
        Command::Gateway(args) => cmd::gateway::run(&cli.global, args),
        Command::ChaosProxy(args) => cmd::chaos::run(args),
        Command::Bench { command } => cmd::bench::run(command),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Failed) => ExitCode::from(1),
        Err(Failure::Error(e)) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
        Err(Failure::Usage(msg)) => {
            eprintln!("{msg}");
            ExitCode::from(2)
        }
    }
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("CUTOVER_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
}

/// A multi-threaded runtime for commands that do network I/O.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio runtime")
}
