//! `terraform_cloud.run`: start a run in a Terraform Cloud (HCP Terraform)
//! or Terraform Enterprise workspace and wait for it to finish.
//!
//! Parameters:
//! - `workspace_id` (required): `ws-...`.
//! - `token_env`: the environment variable holding the API token (default
//!   `TFC_TOKEN`).
//! - `address`: default `https://app.terraform.io`.
//! - `message`: the run's message; default `cutover: {kind} to {target} ({incident})`.
//! - `auto_apply`: sent as the run's `auto-apply` when given (otherwise the
//!   workspace's setting applies).
//! - `poll_interval`: default `5s`.
//! - `ca_file`: a PEM file of CA certificates trusted in addition to the
//!   public roots (Terraform Enterprise behind a private CA).
//!
//! The API calls, as documented by HashiCorp (Runs API):
//! `POST {address}/api/v2/runs` with `Authorization: Bearer <token>`,
//! `Content-Type: application/vnd.api+json` and the body
//! `{"data": {"type": "runs", "attributes": {"message", "auto-apply"?},
//! "relationships": {"workspace": {"data": {"type": "workspaces", "id"}}}}}`,
//! answered `201` with the run in `data`; then
//! `GET {address}/api/v2/runs/{run-id}` every `poll_interval` until
//! `data.attributes.status` is final. `GET {address}/api/v2/workspaces/{id}`
//! (best effort) gives the organization and workspace names for the run's
//! web page.
//!
//! Result: `{"run_id": "run-...", "status": "applied", "url":
//! "{address}/app/{org}/workspaces/{name}/runs/{run-id}"}` (`url` is null
//! when the workspace could not be read).
//!
//! Success: `applied`, or `planned_and_finished` (nothing to apply).
//! Failure: `errored`, `discarded`, `canceled`, `force_canceled`,
//! `policy_soft_failed`, and `planned_and_saved` (a saved plan is never
//! applied by itself).
//!
//! # Guarantees
//! - The token is only ever put in the `Authorization` header (marked
//!   sensitive); it is in no result, error or log line. A missing variable
//!   is a parameter error naming it.
//! - Up to two failed polls in a row are tolerated (logged); the third, or an
//!   answer meaning the run is gone or the token is refused, fails the step.
//! - Stops polling before the step's timeout and fails with the run id and
//!   its last status, so that the timeline says where the run was.
//!
//! # Caveats
//! - Not idempotent by itself: every attempt creates a new run. Terraform
//!   runs are convergent (a second run with nothing to change ends
//!   `planned_and_finished`), but set `retries = 0` when runs are expensive.
//! - A step that times out or fails while polling leaves the run going in
//!   Terraform Cloud; cutover does not cancel it.
//! - Without auto-apply (the parameter or the workspace setting), the run
//!   waits for someone to confirm it in Terraform Cloud, and the step waits
//!   until its timeout.

use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{AUTHORIZATION, CONTENT_TYPE};
use http::{HeaderMap, HeaderValue, Method, StatusCode};
use serde_json::{Value, json};

use super::http_client::{self, Target};
use super::param::{self, error};
use super::text::truncate_lossy;
use super::{Ctx, Kind, ParamSpec, Params, StepError};

pub const PARAMS: &[ParamSpec] = &[
    ParamSpec::required("workspace_id", Kind::String, "the workspace to run in (ws-...)"),
    ParamSpec::optional("token_env", Kind::String, "the environment variable with the API token (default TFC_TOKEN)"),
    ParamSpec::optional("address", Kind::String, "the API address (default https://app.terraform.io)"),
    ParamSpec::optional("message", Kind::String, "the run's message"),
    ParamSpec::optional("auto_apply", Kind::Bool, "apply after a successful plan (default: the workspace's setting)"),
    ParamSpec::optional("poll_interval", Kind::Duration, "how often to read the run's status (default 5s)"),
    http_client::CA_FILE,
];

const DEFAULT_ADDRESS: &str = "https://app.terraform.io";
const DEFAULT_TOKEN_ENV: &str = "TFC_TOKEN";
const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(5);
const JSON_API: &str = "application/vnd.api+json";
/// Failed polls in a row that end the step.
const MAX_POLL_ERRORS: u32 = 3;

/// Where a run is, from its `status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Still going (or waiting for a confirmation).
    Running,
    /// Applied, or planned with nothing to apply.
    Succeeded,
    /// Ended without applying.
    Failed,
}

impl Phase {
    /// Classifies a run status of the Runs API.
    pub fn of(status: &str) -> Self {
        match status {
            "applied" | "planned_and_finished" => Phase::Succeeded,
            "errored" | "discarded" | "canceled" | "force_canceled" | "policy_soft_failed" | "planned_and_saved" => {
                Phase::Failed
            }
            _ => Phase::Running,
        }
    }
}

/// The API at one address, with the token.
struct Api {
    /// `scheme://host[:port][/prefix]`, checked, without a trailing `/`.
    address: String,
    auth: HeaderValue,
    connect_timeout: Duration,
    ca_file: Option<std::path::PathBuf>,
}

impl Api {
    async fn call(&self, method: Method, path: &str, body: Option<&Value>) -> Result<(StatusCode, Value), StepError> {
        let mut headers = HeaderMap::new();
        headers.insert(AUTHORIZATION, self.auth.clone());
        headers.insert(CONTENT_TYPE, HeaderValue::from_static(JSON_API));
        let body = body.map_or_else(Bytes::new, |b| Bytes::from(b.to_string()));
        let target = Target::parse(&format!("{}{path}", self.address))
            .map_err(|e| StepError::Failed(e.to_string()))?
            .with_ca_file(self.ca_file.clone());
        let (status, _, answer) = http_client::request(method, &target, headers, body, self.connect_timeout).await?;
        let json = serde_json::from_slice(&answer).unwrap_or_else(|_| Value::String(truncate_lossy(&answer, 512)));
        Ok((status, json))
    }

    /// The run's web page, from the workspace's organization and name.
    async fn run_url(&self, workspace_id: &str, run_id: &str) -> Option<String> {
        let (status, ws) = self.call(Method::GET, &format!("/api/v2/workspaces/{workspace_id}"), None).await.ok()?;
        if !status.is_success() {
            tracing::debug!(status = status.as_u16(), "could not read the workspace for the run's URL");
            return None;
        }
        let name = ws.pointer("/data/attributes/name")?.as_str()?;
        let org = ws.pointer("/data/relationships/organization/data/id")?.as_str()?;
        Some(format!("{}/app/{org}/workspaces/{name}/runs/{run_id}", self.address))
    }
}

pub async fn run(params: &Params, ctx: &Ctx) -> Result<Value, StepError> {
    let workspace_id = param::req_str(params, "workspace_id")?;
    let valid_id = workspace_id.strip_prefix("ws-").is_some_and(|rest| {
        !rest.is_empty() && rest.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    });
    if !valid_id {
        return Err(error("workspace_id", "must be a workspace id such as ws-AbCdEf123 (not the workspace's name)"));
    }
    let token_env = param::opt_str(params, "token_env")?.unwrap_or(DEFAULT_TOKEN_ENV);
    let token = param::secret_from_env(ctx, "token_env", token_env)?;
    let mut auth = HeaderValue::from_str(&format!("Bearer {token}"))
        .map_err(|_| error("token_env", format!("the value of {token_env} is not a valid token")))?;
    auth.set_sensitive(true);
    let address = param::opt_str(params, "address")?.unwrap_or(DEFAULT_ADDRESS).trim_end_matches('/').to_string();
    Target::parse(&address).map_err(|e| error("address", e.to_string()))?;
    let message = match param::opt_str(params, "message")? {
        Some(m) => m.to_string(),
        None => format!("cutover: {} to {} ({})", ctx.kind, ctx.target, ctx.incident),
    };
    let auto_apply = param::opt_bool(params, "auto_apply")?;
    let poll_interval = param::opt_duration(params, "poll_interval")?.unwrap_or(DEFAULT_POLL_INTERVAL);
    if poll_interval.is_zero() {
        return Err(error("poll_interval", "must be more than 0s"));
    }
    let ca_file = http_client::ca_file(params)?;
    let api = Api { address, auth, connect_timeout: http_client::connect_timeout(ctx.timeout), ca_file };
    let started = Instant::now();

    let mut attributes = json!({ "message": message });
    if let Some(auto_apply) = auto_apply {
        attributes["auto-apply"] = json!(auto_apply);
    }
    let request = json!({
        "data": {
            "type": "runs",
            "attributes": attributes,
            "relationships": { "workspace": { "data": { "type": "workspaces", "id": workspace_id } } }
        }
    });
    let (status, created) = api.call(Method::POST, "/api/v2/runs", Some(&request)).await?;
    if status != StatusCode::CREATED {
        return Err(StepError::Failed(format!(
            "creating a run in {workspace_id}: {} answered {}: {}",
            api.address,
            status.as_u16(),
            api_errors(&created)
        )));
    }
    let run_id = created
        .pointer("/data/id")
        .and_then(Value::as_str)
        .ok_or_else(|| StepError::Failed(format!("creating a run in {workspace_id}: the answer has no data.id")))?
        .to_string();
    tracing::info!(step = %ctx.step, %workspace_id, %run_id, "Terraform Cloud run created");
    let url = api.run_url(workspace_id, &run_id).await;
    let shown = url.clone().unwrap_or_else(|| run_id.clone());
    let mut status = run_status(&created).unwrap_or("pending").to_string();
    let mut poll_errors = 0;

    loop {
        match Phase::of(&status) {
            Phase::Succeeded => return Ok(json!({ "run_id": run_id, "status": status, "url": url })),
            Phase::Failed => {
                return Err(StepError::Failed(format!("Terraform Cloud run {shown} ended {status}")));
            }
            Phase::Running => {}
        }
        if !ctx.timeout.is_zero() && started.elapsed() + poll_interval >= ctx.timeout {
            return Err(StepError::Failed(format!(
                "Terraform Cloud run {shown} is still {status} after {:?}; it goes on in Terraform Cloud",
                started.elapsed()
            )));
        }
        tokio::time::sleep(poll_interval).await;
        let polled = api.call(Method::GET, &format!("/api/v2/runs/{run_id}"), None).await;
        let problem = match polled {
            Ok((code, run)) if code.is_success() => match run_status(&run) {
                Some(s) => {
                    if s != status {
                        tracing::info!(step = %ctx.step, %run_id, status = s, "Terraform Cloud run status");
                    }
                    status = s.to_string();
                    poll_errors = 0;
                    continue;
                }
                None => "the answer has no data.attributes.status".to_string(),
            },
            Ok((code, run)) => {
                let problem = format!("answered {}: {}", code.as_u16(), api_errors(&run));
                if matches!(code.as_u16(), 401 | 403 | 404) {
                    return Err(StepError::Failed(format!("reading Terraform Cloud run {shown}: {problem}")));
                }
                problem
            }
            Err(e) => e.to_string(),
        };
        poll_errors += 1;
        tracing::warn!(step = %ctx.step, %run_id, %problem, poll_errors, "reading the Terraform Cloud run failed");
        if poll_errors >= MAX_POLL_ERRORS {
            return Err(StepError::Failed(format!(
                "reading Terraform Cloud run {shown} failed {poll_errors} times in a row (last status {status}): {problem}"
            )));
        }
    }
}

fn run_status(run: &Value) -> Option<&str> {
    run.pointer("/data/attributes/status").and_then(Value::as_str)
}

/// The JSON:API `errors` of an answer as one line, or the answer's start.
fn api_errors(answer: &Value) -> String {
    let Some(errors) = answer.get("errors").and_then(Value::as_array) else {
        return truncate_lossy(answer.to_string().as_bytes(), 512);
    };
    let lines: Vec<String> = errors
        .iter()
        .map(|e| {
            let field = |k: &str| e.get(k).and_then(Value::as_str).unwrap_or("");
            match (field("title"), field("detail")) {
                (t, "") => t.to_string(),
                ("", d) => d.to_string(),
                (t, d) => format!("{t}: {d}"),
            }
        })
        .collect();
    truncate_lossy(lines.join("; ").as_bytes(), 512)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_run_statuses() {
        for s in ["applied", "planned_and_finished"] {
            assert_eq!(Phase::of(s), Phase::Succeeded, "{s}");
        }
        for s in ["errored", "discarded", "canceled", "force_canceled", "policy_soft_failed", "planned_and_saved"] {
            assert_eq!(Phase::of(s), Phase::Failed, "{s}");
        }
        for s in ["pending", "planning", "planned", "policy_override", "confirmed", "applying", "apply_queued"] {
            assert_eq!(Phase::of(s), Phase::Running, "{s}");
        }
    }

    #[test]
    fn summarizes_json_api_errors() {
        let answer = json!({"errors": [{"status": "404", "title": "not found"}, {"detail": "workspace locked"}]});
        assert_eq!(api_errors(&answer), "not found; workspace locked");
    }
}
