//! `cutover agent`: the probe cycle from another vantage point, pushed to the
//! controller (`POST /v1/evidence`) with a bearer token.

use cutover_core::Endpoint;
use cutover_s3::ClientOptions;
use cutover_s3::probe::probe_cycle;
use serde_json::json;

use crate::cli::{AgentArgs, Global};
use crate::{Failure, load, runtime};

pub fn run(global: &Global, args: AgentArgs) -> Result<(), Failure> {
    let config = load::config(global)?;
    let token = std::env::var(&args.token_env)
        .ok()
        .filter(|t| !t.is_empty())
        .ok_or_else(|| Failure::Usage(format!("--token-env: environment variable {} is not set", args.token_env)))?;
    let url = args.controller.trim_end_matches('/');
    let endpoint = Endpoint::parse(url).map_err(|e| Failure::Usage(format!("--controller: {e}")))?;
    if args.vantage.is_empty() || args.vantage == "local" {
        return Err(Failure::Usage("--vantage: give this agent's name (not \"local\")".into()));
    }
    let clients = config
        .backends
        .iter()
        .map(|b| load::client(b, ClientOptions::probe(config.probe.timeout)))
        .collect::<Result<Vec<_>, _>>()?;
    println!("cutover agent {}: probing {} backends, reporting to {url}", args.vantage, clients.len());
    runtime().block_on(async {
        let mut ticker = tokio::time::interval(config.probe.interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticker.tick() => {}
                _ = tokio::signal::ctrl_c() => return Ok(()),
            }
            let mut reports = Vec::new();
            let tasks: Vec<_> = clients
                .iter()
                .map(|c| {
                    let (c, prefix, size) = (c.clone(), config.probe.prefix.clone(), config.probe.object_size);
                    tokio::spawn(async move { probe_cycle(&c, &prefix, size).await })
                })
                .collect();
            for t in tasks {
                if let Ok(r) = t.await {
                    reports.push(r);
                }
            }
            let body = json!({"vantage": args.vantage, "reports": reports}).to_string();
            match post(&endpoint, &token, body).await {
                Ok(200) => {}
                Ok(401 | 403) => {
                    return Err(Failure::Usage(format!(
                        "the controller refused this agent's token ({})",
                        args.token_env
                    )));
                }
                Ok(status) => eprintln!("cutover agent: controller answered {status}"),
                Err(e) => eprintln!("cutover agent: cannot reach the controller: {e}"),
            }
        }
    })
}

async fn post(endpoint: &Endpoint, token: &str, body: String) -> Result<u16, crate::client::ClientError> {
    crate::client::post(endpoint, "/v1/evidence", token, body).await.map(|(status, _)| status)
}
