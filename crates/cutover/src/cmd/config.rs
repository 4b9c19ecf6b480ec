//! `cutover config check`: parse and validate, print every problem, and warn
//! (standard error, exit code unchanged) about what the runbooks name that
//! is not set or still a placeholder.

use cutover_core::Problem;
use cutover_core::config::CredentialsRef;
use serde_json::json;

use crate::Failure;
use crate::cli::Global;
use crate::load;

pub fn check(global: &Global, json: bool) -> Result<(), Failure> {
    let path = load::config_path(global);
    let file = path.display().to_string();
    let problems = match load::load_file(&path) {
        Err(e) => e.problems,
        Ok(config) => {
            // Credentials files are read here (a local file, no network) so
            // that a missing file or profile is found before a failover needs it.
            let mut problems = Vec::new();
            for (i, b) in config.backends.iter().enumerate() {
                if let CredentialsRef::File { .. } = b.credentials
                    && let Err(e) = cutover_s3::resolve_credentials(b)
                {
                    let detail = e.to_string();
                    let detail = detail.strip_prefix(&format!("{}: ", b.name)).unwrap_or(&detail).to_string();
                    problems.push(Problem::new(format!("backends[{i}].credentials.file"), detail));
                }
            }
            // The gateway's certificate and key too: unreadable, not PEM, or not a pair.
            if let Some(tls) = config.gateway.as_ref().and_then(|g| g.tls.as_ref())
                && let Err(e) = cutover_gateway::tls::check(tls)
            {
                problems.push(match e {
                    cutover_gateway::GatewayError::Tls { key, path, detail } => {
                        Problem::new(format!("gateway.{key}"), format!("{path}: {detail}"))
                    }
                    e => Problem::new("gateway", e.to_string()),
                });
            }
            // Runbooks are checked too: a broken runbook must not wait for an outage to show.
            let names = config.backend_names();
            let mut warnings = Vec::new();
            for (key, path) in
                [("runbooks.failover", &config.runbooks.failover), ("runbooks.fallback", &config.runbooks.fallback)]
            {
                let Some(p) = path else { continue };
                match cutover_orchestrate::runbook::load(p, &names) {
                    Err(e) => {
                        for rp in e.problems {
                            problems.push(Problem::new(format!("{key} ({}): {}", p.display(), rp.path), rp.message));
                        }
                    }
                    Ok(rb) => {
                        for w in cutover_orchestrate::runbook::warnings(&rb, &crate::warnings::env_lookup) {
                            warnings.push(Problem::new(format!("{key} ({}): {}", p.display(), w.path), w.message));
                        }
                    }
                }
            }
            let warning_list: Vec<_> = warnings.iter().map(|p| json!({"path": p.path, "message": p.message})).collect();
            if !json {
                for w in &warnings {
                    eprintln!("warning: {file}: {w}");
                }
            }
            // The policy as `run` loads it: it compiles, and its decision on a
            // sample input has the right shape.
            problems.extend(policy_problems(&config));
            if problems.is_empty() {
                if json {
                    println!("{}", json!({"ok": true, "file": file, "problems": [], "warnings": warning_list}));
                } else {
                    let list: Vec<String> = config
                        .backends
                        .iter()
                        .map(|b| format!("{} ({}, {})", b.name, b.role.as_str(), b.endpoint))
                        .collect();
                    let note = match warnings.len() {
                        0 => String::new(),
                        n => format!(" ({n} warning(s))"),
                    };
                    println!("{file}: ok; {} backends: {}{note}", list.len(), list.join(", "));
                }
                return Ok(());
            }
            if json {
                let list: Vec<_> = problems.iter().map(|p| json!({"path": p.path, "message": p.message})).collect();
                println!("{}", json!({"ok": false, "file": file, "problems": list, "warnings": warning_list}));
                return Err(Failure::Usage(format!("{file}: {} problem(s)", problems.len())));
            }
            problems
        }
    };
    if json {
        let list: Vec<_> = problems.iter().map(|p| json!({"path": p.path, "message": p.message})).collect();
        println!("{}", json!({"ok": false, "file": file, "problems": list}));
        return Err(Failure::Usage(format!("{file}: {} problem(s)", problems.len())));
    }
    let text: Vec<String> = problems.iter().map(|p| format!("{file}: {p}")).collect();
    Err(Failure::Usage(text.join("\n")))
}

/// The policy's problems, in its own terms: a compile error with file and
/// line, or a decision of the wrong shape on a sample outage of the primary.
fn policy_problems(config: &cutover_core::Config) -> Vec<Problem> {
    use cutover_control::policy::{Policy, PolicyError};
    let file = config.policy.path.as_ref().map(|p| p.display().to_string()).unwrap_or("built-in policy".into());
    let policy = match Policy::load(config.policy.path.as_deref()) {
        Ok(p) => p,
        Err(e) => return vec![Problem::new("policy.path", format!("{file}: {e}"))],
    };
    match policy.check_sample(config) {
        Ok(_) => Vec::new(),
        Err(PolicyError::BadDecision { message }) => vec![Problem::new("policy.path", format!("{file}: {message}"))],
        Err(e) => vec![Problem::new("policy.path", format!("{file}: on a sample input: {e}"))],
    }
}
