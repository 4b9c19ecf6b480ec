//! `cutover approve ID`, `cutover reject ID` and `cutover failover --target`:
//! thin clients of the controller's API (the verdict is recorded and audited
//! under the token's name there).

use clap::Args;
use cutover_core::Endpoint;
use serde_json::{Value, json};

use crate::cli::Global;
use crate::client::{ApiArgs, api_url, post, refusal, token};
use crate::{Failure, runtime};

#[derive(Debug, Args)]
pub struct VerdictArgs {
    /// The incident id (see `cutover incidents list`).
    pub id: String,
    /// Why; recorded in the timeline and the audit log.
    #[arg(long, default_value = "")]
    pub comment: String,
    #[command(flatten)]
    pub api: ApiArgs,
}

#[derive(Debug, Args)]
pub struct FailoverArgs {
    /// The backend to fail over to.
    #[arg(long)]
    pub target: String,
    /// Why; recorded in the decision, the timeline and the audit log.
    #[arg(long)]
    pub reason: String,
    #[command(flatten)]
    pub api: ApiArgs,
}

pub fn verdict(global: &Global, args: VerdictArgs, approve: bool) -> Result<(), Failure> {
    let verb = if approve { "approve" } else { "reject" };
    let path = format!("/v1/incidents/{}/{verb}", args.id);
    call(global, &args.api, &path, json!({"comment": args.comment}))
}

pub fn failover(global: &Global, args: FailoverArgs) -> Result<(), Failure> {
    call(global, &args.api, "/v1/failover", json!({"target": args.target, "reason": args.reason}))
}

fn call(global: &Global, api: &ApiArgs, path: &str, body: Value) -> Result<(), Failure> {
    let (url, endpoint) = api_url(global, api)?;
    let token = token(api)?;
    let send = |endpoint: &Endpoint, url: &str| {
        runtime()
            .block_on(post(endpoint, path, &token, body.to_string()))
            .map_err(|e| Failure::Error(anyhow::anyhow!("{url}{path}: {e}")))
    };
    let (mut url, (mut status, mut text)) = (url.clone(), send(&endpoint, &url)?);
    // With [ha], a standby answers 503 naming the leader: follow it once.
    if status == 503
        && let Some(leader) = leader_api(&text).filter(|l| *l != url)
    {
        let to = Endpoint::parse(&leader)
            .map_err(|e| Failure::Error(anyhow::anyhow!("{url}{path}: the standby names leader {leader:?}: {e}")))?;
        eprintln!("{url} is a standby; sending to the leader at {leader}");
        (status, text) = send(&to, &leader)?;
        url = leader;
    }
    match status {
        200..=299 => {
            println!("{text}");
            Ok(())
        }
        _ => Err(refusal(&url, path, status, &text, &api.token_env)),
    }
}

/// The leader's API from a standby's 503 body (`{"leader": {"api"}}`).
fn leader_api(body: &str) -> Option<String> {
    let v: Value = serde_json::from_str(body).ok()?;
    let api = v["leader"]["api"].as_str()?.trim_end_matches('/');
    (!api.is_empty()).then(|| api.to_string())
}
