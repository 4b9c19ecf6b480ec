//! `cutover runbook check FILE` (no side effects: every problem with its step
//! and field) and `cutover runbook run FILE --dry-run` (the plan, with the
//! templates rendered for an example incident). Both warn (on standard error,
//! exit code unchanged) about `*_env` variables that are not set and values
//! that are still placeholders.

use std::path::PathBuf;

use clap::Subcommand;
use cutover_orchestrate::runbook::{self, Runbook, Vars};
use cutover_orchestrate::{actuators, engine};
use serde_json::json;

use crate::cli::Global;
use crate::warnings::{env_lookup, print_warnings};
use crate::{Failure, load};

#[derive(Debug, Subcommand)]
pub enum RunbookCommand {
    /// Check a runbook without side effects (unknown actuators, missing or
    /// unknown parameters, bad templates, unknown backends).
    Check {
        file: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Print the plan of a runbook. Only --dry-run is supported: runbooks run
    /// for real from `cutover run` (on a decision, an approval or `cutover failover`).
    Run {
        file: PathBuf,
        /// Print the plan; change nothing.
        #[arg(long)]
        dry_run: bool,
        /// The source backend [default: the primary].
        #[arg(long)]
        source: Option<String>,
        /// The target backend [default: the first other backend].
        #[arg(long)]
        target: Option<String>,
        /// failover or fallback (for `{{ kind }}`).
        #[arg(long, default_value = "failover")]
        kind: String,
    },
}

pub fn run(global: &Global, command: RunbookCommand) -> Result<(), Failure> {
    // The configuration, when there is one, names the backends a runbook may use.
    let path = load::config_path(global);
    let config = if global.config.is_some() || std::env::var_os("CUTOVER_CONFIG").is_some() || path.exists() {
        Some(load::config(global)?)
    } else {
        None
    };
    let names: Vec<&str> = config.as_ref().map(|c| c.backend_names()).unwrap_or_default();
    match command {
        RunbookCommand::Check { file, json } => {
            let rb = runbook::load(&file, &names).map_err(|e| {
                if json {
                    let problems: Vec<_> =
                        e.problems.iter().map(|p| json!({"path": p.path, "message": p.message})).collect();
                    println!("{}", json!({"ok": false, "file": e.origin, "problems": problems}));
                }
                Failure::Usage(e.to_string())
            })?;
            let warnings = runbook::warnings(&rb, &env_lookup);
            if json {
                let list: Vec<_> = warnings.iter().map(|p| json!({"path": p.path, "message": p.message})).collect();
                println!(
                    "{}",
                    json!({"ok": true, "file": rb.origin, "steps": rb.steps.len(), "sha256": rb.sha256, "warnings": list})
                );
            } else {
                print_warnings(&rb.origin, &warnings);
                let note = if names.is_empty() { " (no configuration: backend names not checked)" } else { "" };
                let count = match warnings.len() {
                    0 => String::new(),
                    n => format!(", {n} warning(s)"),
                };
                println!("{}: ok, {} steps{note}{count}", rb.origin, rb.steps.len());
            }
            Ok(())
        }
        RunbookCommand::Run { file, dry_run, source, target, kind } => {
            if !dry_run {
                return Err(Failure::Usage(
                    "runbook run: only --dry-run is supported here; runbooks run for real inside `cutover run` \
                     (on a failover decision, an approval, or `cutover failover --target NAME`)"
                        .into(),
                ));
            }
            let rb = runbook::load(&file, &names).map_err(|e| Failure::Usage(e.to_string()))?;
            let primary = config.as_ref().map(|c| c.primary().name.clone());
            let source = source.or(primary).unwrap_or_else(|| "primary".into());
            let target = target
                .or_else(|| {
                    config.as_ref().and_then(|c| c.backends.iter().find(|b| b.name != source).map(|b| b.name.clone()))
                })
                .unwrap_or_else(|| "secondary".into());
            for (flag, name) in [("--source", &source), ("--target", &target)] {
                if !names.is_empty() && !names.contains(&name.as_str()) {
                    return Err(Failure::Usage(format!(
                        "{flag}: unknown backend {name:?} (configured: {})",
                        names.join(", ")
                    )));
                }
            }
            let vars = Vars {
                incident: "inc-dry-run".into(),
                backend: source.clone(),
                source,
                target,
                reason: "dry run".into(),
                kind,
                fencing_token: "0".into(),
            };
            print_warnings(&rb.origin, &runbook::warnings(&rb, &env_lookup));
            print_plan(&rb, &vars)
        }
    }
}

fn print_plan(rb: &Runbook, vars: &Vars) -> Result<(), Failure> {
    for line in plan_lines(rb, vars).map_err(Failure::Usage)? {
        println!("{line}");
    }
    Ok(())
}

/// The plan of `rb` for `vars`, line by line, as `runbook run --dry-run`
/// prints it (the console shows the same lines); secrets redacted. The
/// error names the step whose template does not render.
pub fn plan_lines(rb: &Runbook, vars: &Vars) -> Result<Vec<String>, String> {
    let mut out = vec![format!(
        "plan of {} ({} -> {}, incident {}); nothing is changed:",
        rb.origin, vars.source, vars.target, vars.incident
    )];
    for (i, s) in rb.steps.iter().enumerate() {
        let with = runbook::render_call(&s.call.uses, &s.call.with, vars).map_err(|e| format!("{}: {e}", s.name))?;
        out.push(format!(
            "{:>2}. {} [{}] timeout {:?}, retries {}, on failure {:?}",
            i + 1,
            s.name,
            s.call.uses,
            s.timeout,
            s.retries,
            s.on_failure
        ));
        out.push(format!("      with {}", serde_json::Value::Object(runbook::redact(&with))));
        match actuators::describe(&s.call.uses, &with) {
            Some(Ok(sends)) => out.push(format!("      sends {sends}")),
            Some(Err(e)) => out.push(format!("      cannot send: {e}")),
            None => {}
        }
        let undo = s.undo.clone().or_else(|| engine::default_undo(&s.call));
        if let Some(u) = undo {
            let with = runbook::render_call(&u.uses, &u.with, vars).map_err(|e| format!("{}: undo: {e}", s.name))?;
            out.push(format!("      undo [{}] with {}", u.uses, serde_json::Value::Object(runbook::redact(&with))));
        }
    }
    Ok(out)
}
