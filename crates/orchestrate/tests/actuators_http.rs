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
async fn sends_the_leaders_fencing_token_in_ha_and_no_such_header_embedded() {
    let server = Server::start(|_| (200, String::new())).await;
    let work = tempfile::tempdir().unwrap();
    let with = params(json!({"url": server.url("/hook")}));
    let mut leader = ctx(work.path(), &[]);
    leader.fencing_token = Some(4711);

    run_external("http", &with, &leader).await.unwrap().unwrap();
    run_external("http", &with, &ctx(work.path(), &[])).await.unwrap().unwrap();

    let requests = server.requests();
    assert_eq!(requests[0].header("x-cutover-fencing-token"), Some("4711"));
    assert_eq!(requests[1].header("x-cutover-fencing-token"), None);
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

/// `url_env`: the URL comes from the environment; errors name the variable,
/// never the URL (not even its host and port).
#[tokio::test]
async fn url_env_is_read_from_the_environment_and_never_shown() {
    let server = Server::start(|_| (500, "nope".into())).await;
    let port = closed_port().await;
    let work = tempfile::tempdir().unwrap();
    let hook = server.url("/services/T0/B0/UrlEnvS3cret");
    let dead = format!("http://127.0.0.1:{port}/x/DeadS3cret");
    let ctx = ctx(work.path(), &[("HOOK_URL", hook.as_str()), ("DEAD_URL", dead.as_str())]);

    let err = run_external("http", &params(json!({"url_env": "HOOK_URL"})), &ctx).await.unwrap().unwrap_err();

    assert_eq!(server.requests()[0].path, "/services/T0/B0/UrlEnvS3cret");
    assert_eq!(err.to_string(), "POST $HOOK_URL answered 500 (expected 2xx): nope");
    let err = run_external("http", &params(json!({"url_env": "DEAD_URL"})), &ctx).await.unwrap().unwrap_err();
    assert_eq!(err.to_string(), "POST $DEAD_URL: connection refused");
    let err = run_external("http", &params(json!({"url_env": "UNSET_URL"})), &ctx).await.unwrap().unwrap_err();
    assert_eq!(err.to_string(), "with.url_env: environment variable UNSET_URL is not set");
    let both = params(json!({"url_env": "HOOK_URL", "url": "http://127.0.0.1:9/"}));
    let err = run_external("http", &both, &ctx).await.unwrap().unwrap_err();
    assert_eq!(err.to_string(), "with.url: give url or url_env, not both");
}
