//! `terraform_cloud.run` against a local stub of the Runs API that checks the
//! documented request shapes exactly.

mod actuators_support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use actuators_support::{Recorded, Server, ctx, params};
use cutover_orchestrate::actuators::{StepError, run_external};
use serde_json::{Value, json};

const TOKEN: &str = "tfc-s3cr3t-token.atlasv1.abc";

/// The stub: creates `run-xyz789` in `ws-abc123` (organization `acme`,
/// workspace `storage-prod`), then reports `statuses` one poll after the
/// other. A request of the wrong shape gets a 400 that names the problem.
fn stub(statuses: &'static [&'static str], expect_auto_apply: Option<bool>) -> impl Fn(&Recorded) -> (u16, String) {
    let polls = Arc::new(AtomicUsize::new(0));
    move |req| {
        let problem = |what: String| (400, json!({"errors": [{"status": "400", "title": what}]}).to_string());
        if req.header("authorization") != Some(&format!("Bearer {TOKEN}")) {
            return problem("bad Authorization header".into());
        }
        if req.header("content-type") != Some("application/vnd.api+json") {
            return problem(format!("bad content-type {:?}", req.header("content-type")));
        }
        match (req.method.as_str(), req.path.as_str()) {
            ("POST", "/api/v2/runs") => {
                let mut attributes = json!({"message": "cutover: failover to standby (inc-42)"});
                if let Some(auto_apply) = expect_auto_apply {
                    attributes["auto-apply"] = json!(auto_apply);
                }
                let expected = json!({"data": {
                    "type": "runs",
                    "attributes": attributes,
                    "relationships": {"workspace": {"data": {"type": "workspaces", "id": "ws-abc123"}}}
                }});
                let body: Value = serde_json::from_slice(&req.body).unwrap_or_default();
                if body != expected {
                    return problem(format!("unexpected body {body}"));
                }
                let run = json!({"data": {"id": "run-xyz789", "type": "runs", "attributes": {"status": "pending"}}});
                (201, run.to_string())
            }
            ("GET", "/api/v2/workspaces/ws-abc123") if req.body.is_empty() => {
                let ws = json!({"data": {
                    "id": "ws-abc123",
                    "type": "workspaces",
                    "attributes": {"name": "storage-prod"},
                    "relationships": {"organization": {"data": {"id": "acme", "type": "organizations"}}}
                }});
                (200, ws.to_string())
            }
            ("GET", "/api/v2/runs/run-xyz789") if req.body.is_empty() => {
                let n = polls.fetch_add(1, Ordering::SeqCst).min(statuses.len() - 1);
                let run = json!({"data": {"id": "run-xyz789", "type": "runs", "attributes": {"status": statuses[n]}}});
                (200, run.to_string())
            }
            _ => (404, json!({"errors": [{"status": "404", "title": "not found"}]}).to_string()),
        }
    }
}

fn with(server: &Server) -> Value {
    json!({"workspace_id": "ws-abc123", "address": server.url(""), "poll_interval": "10ms"})
}

#[tokio::test]
async fn creates_a_run_and_polls_it_until_applied() {
    let server = Server::start(stub(&["planning", "applying", "applied"], Some(true))).await;
    let work = tempfile::tempdir().unwrap();
    let mut with = with(&server);
    with["auto_apply"] = json!(true);

    let result = run_external("terraform_cloud.run", &params(with), &ctx(work.path(), &[("TFC_TOKEN", TOKEN)]))
        .await
        .unwrap()
        .unwrap();

    assert_eq!(
        result,
        json!({
            "run_id": "run-xyz789",
            "status": "applied",
            "url": format!("{}/app/acme/workspaces/storage-prod/runs/run-xyz789", server.url("")),
        })
    );
    let requests = server.requests();
    let calls: Vec<(&str, &str)> = requests.iter().map(|r| (r.method.as_str(), r.path.as_str())).collect();
    assert_eq!(
        calls,
        [
            ("POST", "/api/v2/runs"),
            ("GET", "/api/v2/workspaces/ws-abc123"),
            ("GET", "/api/v2/runs/run-xyz789"),
            ("GET", "/api/v2/runs/run-xyz789"),
            ("GET", "/api/v2/runs/run-xyz789"),
        ]
    );
    assert!(!result.to_string().contains(TOKEN));
}

#[tokio::test]
async fn a_run_that_errors_fails_the_step_without_showing_the_token() {
    let server = Server::start(stub(&["planning", "errored"], None)).await;
    let work = tempfile::tempdir().unwrap();
    let ctx = ctx(work.path(), &[("TF_API", TOKEN)]);
    let mut with = with(&server);
    with["token_env"] = json!("TF_API");

    let err = run_external("terraform_cloud.run", &params(with), &ctx).await.unwrap().unwrap_err();

    let StepError::Failed(message) = &err else { panic!("{err:?}") };
    assert!(message.contains("run-xyz789") && message.ends_with("ended errored"), "{message}");
    assert!(!message.contains(TOKEN), "{message}");
}

#[tokio::test]
async fn a_refused_creation_fails_with_the_api_errors() {
    let server = Server::start(stub(&["applied"], None)).await;
    let work = tempfile::tempdir().unwrap();
    let mut with = with(&server);
    with["workspace_id"] = json!("ws-other");

    let err = run_external("terraform_cloud.run", &params(with), &ctx(work.path(), &[("TFC_TOKEN", TOKEN)]))
        .await
        .unwrap()
        .unwrap_err();

    let message = err.to_string();
    assert!(message.contains("creating a run in ws-other") && message.contains("answered 400"), "{message}");
    assert!(message.contains("unexpected body"), "{message}");
    assert!(!message.contains(TOKEN), "{message}");
}

#[tokio::test]
async fn a_missing_token_is_a_parameter_error_naming_the_variable() {
    let work = tempfile::tempdir().unwrap();
    let with = params(json!({"workspace_id": "ws-abc123", "address": "http://127.0.0.1:9"}));

    let err = run_external("terraform_cloud.run", &with, &ctx(work.path(), &[])).await.unwrap().unwrap_err();

    assert_eq!(err.to_string(), "with.token_env: environment variable TFC_TOKEN is not set");
    let bad = params(json!({"workspace_id": "storage-prod"}));
    let err = run_external("terraform_cloud.run", &bad, &ctx(work.path(), &[])).await.unwrap().unwrap_err();
    assert!(matches!(err, StepError::Param { field, .. } if field == "workspace_id"));
}
