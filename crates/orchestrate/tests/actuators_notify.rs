//! `notify` against a local receiver, and with the receiver down.

mod actuators_support;

use std::time::Duration;

use actuators_support::{Server, closed_port, ctx, params};
use cutover_orchestrate::actuators::run_external;
use serde_json::{Value, json};

#[tokio::test]
async fn posts_the_default_message_built_from_the_incident() {
    let server = Server::start(|_| (200, "ok".into())).await;
    let work = tempfile::tempdir().unwrap();
    let with = params(json!({"url": server.url("/services/T0/B0/x"), "channel": "#oncall"}));

    let result = run_external("notify", &with, &ctx(work.path(), &[])).await.unwrap().unwrap();

    assert_eq!(result, json!({"delivered": true, "to": "webhook", "status": 200}));
    let req = &server.requests()[0];
    assert_eq!((req.method.as_str(), req.path.as_str()), ("POST", "/services/T0/B0/x"));
    assert_eq!(req.header("content-type"), Some("application/json"));
    assert_eq!(
        req.json(),
        json!({
            "text": ":rotating_light: cutover failover inc-42: primary \u{2192} standby. primary unreachable from 3 vantages\n\
                     http://127.0.0.1:8080/v1/incidents/inc-42",
            "channel": "#oncall"
        })
    );
}

#[tokio::test]
async fn the_default_message_links_to_the_incidents_console_page_when_a_public_url_is_set() {
    let server = Server::start(|_| (200, "ok".into())).await;
    let work = tempfile::tempdir().unwrap();
    let with = params(json!({"url": server.url("/hook")}));
    let mut c = ctx(work.path(), &[]);
    c.incident_url = Some("https://cutover.example/ui/incidents/inc-42".into());

    run_external("notify", &with, &c).await.unwrap().unwrap();

    let text = server.requests()[0].json()["text"].as_str().unwrap_or_default().to_string();
    let expected = ":rotating_light: cutover failover inc-42: primary \u{2192} standby. primary unreachable from 3 vantages\n\
                    https://cutover.example/ui/incidents/inc-42";
    assert_eq!(text, expected);
}

#[tokio::test]
async fn a_receiver_that_is_down_does_not_fail_the_step() {
    let port = closed_port().await;
    let work = tempfile::tempdir().unwrap();
    let with = params(json!({"url": format!("http://127.0.0.1:{port}/hook"), "text": "hello"}));

    let result = run_external("notify", &with, &ctx(work.path(), &[])).await.unwrap().unwrap();

    assert_eq!(result["delivered"], json!(false));
    assert!(result["error"].as_str().unwrap().to_lowercase().contains("refused"), "{result}");
}

#[tokio::test]
async fn a_receiver_that_never_answers_is_given_up_before_the_step_times_out() {
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", silent.local_addr().unwrap());
    let holder = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = silent.accept().await {
            held.push(socket);
        }
    });
    let work = tempfile::tempdir().unwrap();
    let mut ctx = ctx(work.path(), &[]);
    ctx.timeout = Duration::from_millis(400);

    let step = tokio::time::timeout(ctx.timeout, run_external("notify", &params(json!({"url": url})), &ctx)).await;

    let result = step.expect("within the step's timeout").unwrap().unwrap();
    assert_eq!(result["delivered"], json!(false));
    assert!(result["error"].as_str().unwrap().contains("no answer within 300ms"), "{result}");
    holder.abort();
}

#[tokio::test]
async fn a_webhook_url_from_the_environment_never_shows() {
    let secret_path = "/services/T000/B000/XXXXsecretXXXX";
    let work = tempfile::tempdir().unwrap();

    let server = Server::start(|_| (404, "no_service".into())).await;
    let url = server.url(secret_path);
    let ctx = ctx(work.path(), &[("SLACK_WEBHOOK_URL", &url)]);
    let with = params(json!({"url_env": "SLACK_WEBHOOK_URL", "text": "hi"}));
    let result = run_external("notify", &with, &ctx).await.unwrap().unwrap();
    assert_eq!(result["delivered"], json!(false));
    assert!(result["error"].as_str().unwrap().contains("404: no_service"), "{result}");
    assert_eq!(server.requests()[0].path, secret_path);
    let port = server.addr.port();
    drop(server);

    let down = run_external("notify", &with, &ctx).await.unwrap().unwrap();
    assert_eq!(down["delivered"], json!(false));
    for shown in [result.to_string(), down.to_string()] {
        assert!(!shown.contains("XXXXsecretXXXX"), "{shown}");
        assert!(!shown.contains("127.0.0.1"), "{shown}");
        assert!(!shown.contains(&port.to_string()), "{shown}");
    }
    assert!(down.to_string().contains("$SLACK_WEBHOOK_URL"), "{down}");
}

/// Regression: with the shipped runbook and `SLACK_WEBHOOK_URL` unset, the
/// notify step failed and the whole failover was undone onto the backend
/// that was down. A destination that cannot be used is a failed delivery.
#[tokio::test]
async fn a_notify_step_with_an_unset_url_env_succeeds_undelivered_and_never_fails_the_run() {
    let work = tempfile::tempdir().unwrap();
    let ctx = ctx(work.path(), &[("BAD_URL", "hooks.example.com/secret")]);
    let undelivered = |v: &Value| v["delivered"] == json!(false) && v["to"] == json!("webhook");
    let missing = run_external("notify", &params(json!({"url_env": "MISSING"})), &ctx).await.unwrap().unwrap();
    assert!(undelivered(&missing), "{missing}");
    assert_eq!(missing["error"], "with.url_env: environment variable MISSING is not set");
    let bad = run_external("notify", &params(json!({"url_env": "BAD_URL"})), &ctx).await.unwrap().unwrap();
    assert!(undelivered(&bad), "{bad}");
    assert!(!bad.to_string().contains("secret"), "{bad}");
    let both = params(json!({"url": "-", "url_env": "BAD_URL"}));
    let both = run_external("notify", &both, &ctx).await.unwrap().unwrap();
    assert!(undelivered(&both), "{both}");
}

#[tokio::test]
async fn a_dash_or_no_url_prints_on_stdout() {
    let work = tempfile::tempdir().unwrap();
    for with in [json!({"url": "-"}), json!({})] {
        let result = run_external("notify", &params(with), &ctx(work.path(), &[])).await.unwrap().unwrap();
        assert_eq!(result, json!({"delivered": true, "to": "stdout"}));
    }
}
