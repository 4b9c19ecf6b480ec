//! `cutover`: one binary that runs the whole recovery playbook for
//! S3-compatible object stores. This crate only wires the stages together.

mod alerting;
mod api;
mod audit_export;
mod cli;
mod client;
mod cmd;
mod console;
mod ha;
mod listen;
mod load;
mod logs;
mod orchestrate;
mod shutdown;
mod stats;
mod warnings;
mod wiring;

use std::process::ExitCode;

use clap::Parser;

use crate::cli::{Cli, Command, ConfigCommand, IncidentsCommand, Output};

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
    let mut cli = Cli::parse();
    if let Err(e) = logs::init(cli.global.log_format) {
        eprintln!("{e}");
        return ExitCode::from(2);
    }
    if cli.global.output == Output::Json {
        json_output(&mut cli.command);
    }
    let result = match cli.command {
        Command::Config { command: ConfigCommand::Check { json } } => cmd::config::check(&cli.global, json),
        Command::Status(args) => cmd::status::run(&cli.global, args),
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
        Command::Ha { command } => cmd::ha::run(&cli.global, command),
        Command::ChaosProxy(args) => cmd::chaos::run(args),
        Command::Bench { command } => cmd::bench::run(command),
        Command::Operator(args) => cmd::operator::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Failed) => ExitCode::from(1),
        Err(Failure::Error(e)) => {
            eprintln!("error: {}", error_chain(&e));
            ExitCode::from(1)
        }
        Err(Failure::Usage(msg)) => {
            eprintln!("{msg}");
            ExitCode::from(2)
        }
    }
}

/// `--output json`: the same as each reporting command's `--json`.
fn json_output(command: &mut Command) {
    use crate::cmd::runbook::RunbookCommand;
    match command {
        Command::Config { command: ConfigCommand::Check { json } }
        | Command::Runbook { command: RunbookCommand::Check { json, .. } }
        | Command::Incidents { command: IncidentsCommand::List { json, .. } | IncidentsCommand::Show { json, .. } } => {
            *json = true
        }
        Command::Status(a) => a.json = true,
        Command::Probe(a) => a.json = true,
        Command::Validate(a) => a.json = true,
        Command::Sync(a) => a.common.json = true,
        Command::Check(a) => a.common.json = true,
        Command::Replicate(a) => a.sync.common.json = true,
        Command::Drill(a) => a.json = true,
        Command::Ha { command: crate::cmd::ha::HaCommand::Status { json } } => *json = true,
        Command::Bench { command: crate::cmd::bench::BenchCommand::Detect(a) } => a.json = true,
        Command::Bench { command: crate::cmd::bench::BenchCommand::Ha(a) } => a.json = true,
        _ => {}
    }
}

/// An error and its causes, each said once: a cause whose text the message
/// already contains (an error that prints its source) is not repeated.
fn error_chain(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if out.contains(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out
}

/// A multi-threaded runtime for commands that do network I/O.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio runtime")
}
