//! `cutover status`: the active backend, health per backend and vantage, and
//! the open incidents. From a running controller's API when one is reachable
//! (`--api`, `$CUTOVER_API`, else `[api] listen`; token in `$CUTOVER_TOKEN`),
//! else from the state store, which has the active backend, the incidents
//! and the last recorded health (not live). The output says which.

use clap::Args;
use cutover_store::SqliteStore;
use cutover_store::prelude::*;
use serde_json::{Map, Value, json};

use crate::cli::Global;
use crate::client::{ApiArgs, api_url, get, refusal};
use crate::{Failure, load, runtime};

#[derive(Debug, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub api: ApiArgs,
    /// Print JSON (the same as `--output json`).
    #[arg(long)]
    pub json: bool,
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
fn from_api(global: &Global, api: &ApiArgs) -> Result<Result<Value, String>, Failure> {
    let explicit = api.api.is_some() || std::env::var("CUTOVER_API").is_ok_and(|u| !u.is_empty());
    let (url, endpoint) = match api_url(global, api) {
        Ok(u) => u,
        Err(Failure::Usage(m)) if !explicit => return Ok(Err(format!("no controller API to ask ({m})"))),
        Err(e) => return Err(e),
    };
    let token = match std::env::var(&api.token_env) {
        Ok(t) if !t.trim().is_empty() => t,
        Ok(_) => return Ok(Err(format!("${} is set but empty, so {url} was not asked", api.token_env))),
        Err(_) => return Ok(Err(format!("${} is not set, so {url} was not asked", api.token_env))),
    };
    let rt = runtime();
    let (code, text) = match rt.block_on(get(&endpoint, "/v1/status", &token)) {
        Ok(r) => r,
        Err(e) => return Ok(Err(format!("no controller reachable at {url} ({e})"))),
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
fn from_store(global: &Global, why: String) -> Result<Value, Failure> {
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
                    let v = json!({"health": "unknown", "last_recorded": {"health": r.health, "at": r.at, "reason": r.reason}});
                    (r.vantage.clone(), v)
                })
                .collect();
            json!({"name": b.name, "role": b.role.as_str(), "health": "unknown", "vantages": vantages})
        })
        .collect();
    let open = store.open_incidents().map_err(|e| Failure::Error(e.into()))?;
    Ok(json!({
        "active": active,
        "backends": backends,
        "open_incidents": open,
        "source": {"kind": "state", "path": path.display().to_string(), "live": false, "why": why},
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
