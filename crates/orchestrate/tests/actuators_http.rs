//! `http` against a local server that records the requests.

mod actuators_support;

use actuators_support::{Server, closed_port, ctx, params};
use cutover_orchestrate::actuators::{StepError, run_external};
use serde_json::json;

#[tokio::test]
async fn sends_method_path_headers_and_a_json_body() {
    let server = Server::start(|_| (200, "{\"ok\": true}".into())).await;
    let work = tempfile::tempdir().unwrap();
    let ctx = ctx(work.path(), &[("HOOK_TOKEN", "s3cr3t-token")]);
    let with = params(json!({
        "url": server.url("/hooks/argo?sync=1"),
        "method": "put",
        "headers": {"X-Team": "storage"},
        "headers_env": {"Authorization": "HOOK_TOKEN"},
        "body": {"incident": ctx.incident, "target": ctx.target},
    }));

    let result = run_external("http", &with, &ctx).await.unwrap().unwrap();

    assert_eq!(result, json!({"status": 200, "body": "{\"ok\": true}"}));
    let requests = server.requests();
    assert_eq!(requests.len(), 1);
    let req = &requests[0];
    assert_eq!((req.method.as_str(), req.path.as_str()), ("PUT", "/hooks/argo?sync=1"));
    assert_eq!(req.header("x-team"), Some("storage"));
    assert_eq!(req.header("authorization"), Some("s3cr3t-token"));
    assert_eq!(req.header("content-type"), Some("application/json"));
    assert_eq!(req.json(), json!({"incident": "inc-42", "target": "standby"}));
    assert!(!result.to_string().contains("s3cr3t"));
}

#[tokio::test]
async fn sends_a_string_body_as_it_is() {
    let server = Server::start(|_| (204, String::new())).await;
    let work = tempfile::tempdir().unwrap();
    let body = "{\"incident\": \"inc-42\", \"target\": \"standby\"}";
    let with = params(json!({"url": server.url("/hook"), "body": body}));

    let result = run_external("http", &with, &ctx(work.path(), &[])).await.unwrap().unwrap();

    assert_eq!(result, json!({"status": 204, "body": ""}));
    let req = &server.requests()[0];
    assert_eq!(req.method, "POST");
    assert_eq!(req.body, body.as_bytes());
    assert_eq!(req.header("content-type"), Some("application/json"));
}

#[tokio::test]
async fn an_unexpected_status_fails_the_step_with_the_answer() {
    let server = Server::start(|_| (202, "queued".into())).await;
    let work = tempfile::tempdir().unwrap();
    let with = params(json!({"url": server.url("/secret-path"), "expect_status": 200}));

    let err = run_external("http", &with, &ctx(work.path(), &[])).await.unwrap().unwrap_err();

    let StepError::Failed(message) = &err else { panic!("{err:?}") };
    assert!(message.contains("answered 202 (expected 200): queued"), "{message}");
    assert!(!message.contains("secret-path"), "{message}");
}

#[tokio::test]
async fn a_refused_connection_is_a_retryable_failure_naming_the_origin() {
    let port = closed_port().await;
    let work = tempfile::tempdir().unwrap();
    let with = params(json!({"url": format!("http://127.0.0.1:{port}/hook?token=abc")}));

    let err = run_external("http", &with, &ctx(work.path(), &[])).await.unwrap().unwrap_err();

    assert!(err.retryable());
    let message = err.to_string();
    assert!(message.starts_with(&format!("POST http://127.0.0.1:{port}: connecting to")), "{message}");
    assert!(message.to_lowercase().contains("refused"), "{message}");
    assert!(!message.contains("token=abc"), "{message}");
}

#[tokio::test]
async fn a_missing_header_variable_is_a_parameter_error_naming_it() {
    let work = tempfile::tempdir().unwrap();
    let with = params(json!({"url": "http://127.0.0.1:9/x", "headers_env": {"Authorization": "NOT_SET_ANYWHERE"}}));

    let err = run_external("http", &with, &ctx(work.path(), &[])).await.unwrap().unwrap_err();

    assert_eq!(
        err,
        StepError::Param {
            field: "headers_env.Authorization".into(),
            problem: "environment variable NOT_SET_ANYWHERE is not set".into()
        }
    );
}
