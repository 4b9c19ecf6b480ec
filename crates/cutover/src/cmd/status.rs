//! `cutover status`: the active backend, health per backend and vantage, and
//! the open incidents. From a running controller's API when one is reachable
//! (`--api`, `$CUTOVER_API`, else `[api] listen`; token in `$CUTOVER_TOKEN`),
//! else from the state store, which has the active backend, the incidents
//! and the last recorded health (not live). The output says which.

use clap::Args;
use cutover_core::domain::Health;
use cutover_store::SqliteStore;
use cutover_store::prelude::*;
use serde_json::{Map, Value, json};

use crate::cli::Global;
use crate::client::{ApiArgs, ClientError, api_url, get, refusal};
use crate::{Failure, load, runtime};

#[derive(Debug, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub api: ApiArgs,
    /// Print JSON (the same as `--output json`).
    #[arg(long)]
    pub json: bool,
}

/// Why no controller was asked (then the state store answers); the output
/// says it.
#[derive(Debug, thiserror::Error)]
enum Unasked {
    /// No API address: neither `--api`, `$CUTOVER_API` nor `[api] listen`.
    #[error("no controller API to ask ({reason})")]
    NoApi { reason: String },
    /// The token's variable is set to nothing but blanks.
    #[error("${var} is set but empty, so {url} was not asked")]
    EmptyToken { var: String, url: String },
    /// The token's variable is not set (or not UTF-8).
    #[error("${var} is not set, so {url} was not asked")]
    NoToken {
        var: String,
        url: String,
        #[source]
        source: std::env::VarError,
    },
    /// The controller did not answer.
    #[error("no controller reachable at {url} ({source})")]
    Unreachable {
        url: String,
        #[source]
        source: ClientError,
    },
}

pub fn run(global: &Global, args: StatusArgs) -> Result<(), Failure> {
    let status = match from_api(global, &args.api)? {
        Ok(status) => status,
        Err(why) => from_store(global, why)?,
    };
    if args.json {
        println!("{status}");
    } else {
        print_human(&status);
    }
    Ok(())
}

/// The status from the controller's API; `Ok(Err(why))` when no controller
/// could be asked (then the state store answers).
fn from_api(global: &Global, api: &ApiArgs) -> Result<Result<Value, Unasked>, Failure> {
    let explicit = api.api.is_some() || std::env::var("CUTOVER_API").is_ok_and(|u| !u.is_empty());
    let (url, endpoint) = match api_url(global, api) {
        Ok(u) => u,
        Err(Failure::Usage(reason)) if !explicit => return Ok(Err(Unasked::NoApi { reason })),
        Err(e) => return Err(e),
    };
    let var = || api.token_env.clone();
    let token = match std::env::var(&api.token_env) {
        Ok(t) if !t.trim().is_empty() => t,
        Ok(_) => return Ok(Err(Unasked::EmptyToken { var: var(), url })),
        Err(source) => return Ok(Err(Unasked::NoToken { var: var(), url, source })),
    };
    let rt = runtime();
    let (code, text) = match rt.block_on(get(&endpoint, "/v1/status", &token)) {
        Ok(r) => r,
        Err(source) => return Ok(Err(Unasked::Unreachable { url, source })),
    };
    if code != 200 {
        return Err(refusal(&url, "/v1/status", code, &text, &api.token_env));
    }
    let mut status: Value =
        serde_json::from_str(&text).map_err(|e| Failure::Error(anyhow::anyhow!("{url}/v1/status: {e}")))?;
    let (code, text) = rt
        .block_on(get(&endpoint, "/v1/incidents", &token))
        .map_err(|e| Failure::Error(anyhow::anyhow!("{url}/v1/incidents: {e}")))?;
    if code != 200 {
        return Err(refusal(&url, "/v1/incidents", code, &text, &api.token_env));
    }
    let incidents: Value =
        serde_json::from_str(&text).map_err(|e| Failure::Error(anyhow::anyhow!("{url}/v1/incidents: {e}")))?;
    let open: Vec<Value> =
        incidents.as_array().into_iter().flatten().filter(|i| i["closed_at"].is_null()).cloned().collect();
    status["open_incidents"] = json!(open);
    status["source"] = json!({"kind": "api", "url": url, "live": true});
    Ok(Ok(status))
}

/// The status from the state store: the active backend and the incidents as
/// recorded; health is unknown (not live), with the last recorded change.
fn from_store(global: &Global, why: Unasked) -> Result<Value, Failure> {
    let config = load::config(global)?;
    let path = &config.state.path;
    if !path.exists() {
        return Err(Failure::Usage(format!(
            "{why}, and the state store {} does not exist yet (run `cutover run` first, or check [state] path)",
            path.display()
        )));
    }
    let store = SqliteStore::open(path).map_err(|e| Failure::Error(e.into()))?;
    let active = store.active_backend().map_err(|e| Failure::Error(e.into()))?;
    let active = active.unwrap_or_else(|| config.primary().name.clone());
    let recorded = store.last_health().map_err(|e| Failure::Error(e.into()))?;
    let backends: Vec<Value> = config
        .backends
        .iter()
        .map(|b| {
            let vantages: Map<String, Value> = recorded
                .iter()
                .filter(|r| r.backend == b.name)
                .map(|r| {
                    let last = json!({"health": r.health, "at": r.at, "reason": r.reason});
                    let v = json!({"health": Health::Unknown, "last_recorded": last});
                    (r.vantage.clone(), v)
                })
                .collect();
            json!({"name": b.name, "role": b.role.as_str(), "health": Health::Unknown, "vantages": vantages})
        })
        .collect();
    let open = store.open_incidents().map_err(|e| Failure::Error(e.into()))?;
    Ok(json!({
        "active": active,
        "backends": backends,
        "open_incidents": open,
        "source": {"kind": "state", "path": path.display().to_string(), "live": false, "why": why.to_string()},
    }))
}

fn print_human(s: &Value) {
    let src = &s["source"];
    if src["kind"] == "api" {
        println!("from the controller at {} (live)", src["url"].as_str().unwrap_or(""));
    } else {
        println!(
            "from the state store {} (not live: {}); health is the last recorded change",
            src["path"].as_str().unwrap_or(""),
            src["why"].as_str().unwrap_or("")
        );
    }
    println!("active backend: {}", s["active"].as_str().unwrap_or("?"));
    println!("backends:");
    for b in s["backends"].as_array().into_iter().flatten() {
        let vantages: Vec<String> = b["vantages"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(name, v)| match v["last_recorded"].as_object() {
                Some(r) => format!(
                    "{name} last {} at {}",
                    r["health"].as_str().unwrap_or("?"),
                    r["at"].as_str().unwrap_or("?")
                ),
                None => format!("{name} {}", v["health"].as_str().unwrap_or("?")),
            })
            .collect();
        println!(
            "  {:<12} {:<10} {:<11} {}",
            b["name"].as_str().unwrap_or(""),
            b["role"].as_str().unwrap_or(""),
            b["health"].as_str().unwrap_or(""),
            vantages.join(", ")
        );
    }
    let open = s["open_incidents"].as_array().cloned().unwrap_or_default();
    println!("open incidents: {}", open.len());
    for i in &open {
        let d = &i["decision"];
        println!(
            "  {}  {:<10} {:<18} opened {}  decision: {} {}",
            i["id"].as_str().unwrap_or(""),
            i["backend"].as_str().unwrap_or(""),
            i["state"].as_str().unwrap_or(""),
            i["opened_at"].as_str().unwrap_or(""),
            d["action"].as_str().unwrap_or("-"),
            d["target"].as_str().unwrap_or("")
        );
    }
}

#[cfg(test)]
mod tests {
    use std::error::Error;

    use super::*;

    #[test]
    fn why_no_controller_was_asked_names_the_variable_and_the_address() {
        let url = "http://127.0.0.1:8080".to_string();
        let var = "CUTOVER_TOKEN".to_string();
        let unset = Unasked::NoToken { var: var.clone(), url: url.clone(), source: std::env::VarError::NotPresent };
        assert_eq!(unset.to_string(), "$CUTOVER_TOKEN is not set, so http://127.0.0.1:8080 was not asked");
        assert!(unset.source().is_some(), "the environment's error is kept");
        let empty = Unasked::EmptyToken { var, url };
        assert_eq!(empty.to_string(), "$CUTOVER_TOKEN is set but empty, so http://127.0.0.1:8080 was not asked");
        let none = Unasked::NoApi { reason: "no [api] in the configuration; give --api URL".into() };
        assert_eq!(none.to_string(), "no controller API to ask (no [api] in the configuration; give --api URL)");
    }
}
