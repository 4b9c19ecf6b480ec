//! `cutover policy eval` and `cutover policy test`.

use std::path::Path;

use cutover_control::policy::{DEFAULT_POLICY, DEFAULT_POLICY_TESTS, Policy, rego_files, run_tests};

use crate::Failure;
use crate::cli::PolicyCommand;

pub fn run(command: PolicyCommand) -> Result<(), Failure> {
    match command {
        PolicyCommand::Eval { input, policy } => {
            let text = std::fs::read_to_string(&input)
                .map_err(|e| Failure::Usage(format!("--input {}: {e}", input.display())))?;
            let doc: serde_json::Value = serde_json::from_str(&text)
                .map_err(|e| Failure::Usage(format!("--input {}: not JSON: {e}", input.display())))?;
            let p = Policy::load(policy.as_deref()).map_err(|e| Failure::Usage(e.to_string()))?;
            let d = p.decide(&doc).map_err(|e| Failure::Error(e.into()))?;
            println!("{}", serde_json::to_string(&d).expect("serializes"));
            Ok(())
        }
        PolicyCommand::Test { dir } => {
            let sources = match dir {
                None => vec![
                    ("built-in:failover.rego".to_string(), DEFAULT_POLICY.to_string()),
                    ("built-in:failover_test.rego".to_string(), DEFAULT_POLICY_TESTS.to_string()),
                ],
                Some(dir) => read_sources(&dir)?,
            };
            let results = run_tests(&sources).map_err(|e| Failure::Usage(e.to_string()))?;
            if results.is_empty() {
                return Err(Failure::Usage("no test_ rules found".into()));
            }
            let failed = results.iter().filter(|r| !r.ok).count();
            for r in &results {
                match &r.error {
                    None => println!("PASS {}", r.name),
                    Some(e) => println!("FAIL {}: {e}", r.name),
                }
            }
            println!("{} passed, {failed} failed", results.len() - failed);
            if failed > 0 { Err(Failure::Failed) } else { Ok(()) }
        }
    }
}

fn read_sources(dir: &Path) -> Result<Vec<(String, String)>, Failure> {
    let files = rego_files(dir).map_err(|e| Failure::Usage(e.to_string()))?;
    if files.is_empty() {
        return Err(Failure::Usage(format!("{}: no .rego files", dir.display())));
    }
    files
        .into_iter()
        .map(|f| {
            std::fs::read_to_string(&f)
                .map(|t| (f.display().to_string(), t))
                .map_err(|e| Failure::Usage(format!("{}: {e}", f.display())))
        })
        .collect()
}
