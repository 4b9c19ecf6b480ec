//! Secrets in step parameters, undo calls, results and errors never reach the
//! state database (journal, timeline, audit log), which the API serves: runs
//! against real local HTTP receivers and real processes, then every row of
//! the database is read back.

mod actuators_support;
mod engine_support;

use actuators_support::{Server, closed_port};
use cutover_orchestrate::engine::RunOutcome;
use engine_support::bench;

/// The secret part of a Slack incoming-webhook path (24 characters, as Slack's).
const SLACK_TOKEN: &str = "xoXo1234abcdEFGH5678ijkl";

/// Regression: the webhook URL of an `http` step (Slack's secret is its path)
/// and a `?token=` were stored whole in the journal, the timeline and the audit log.
#[tokio::test]
async fn slack_webhook_path_is_not_in_the_timeline() {
    let server = Server::start(|_| (200, "ok".into())).await;
    let from_env = server.url("/services/T0ENV0000/B0ENV0000/EnvSlackS3cretPathValue99");
    let b = bench(&[("SLACK_WEBHOOK_URL", &from_env)]);
    let job = b.job("secondary", "primary down");
    let text = format!(
        r#"
[[steps]]
name = "slack by url"
uses = "http"
with = {{ url = "{}", body = {{ text = "failing over" }} }}
[[steps]]
name = "hook with a token"
uses = "http"
with = {{ url = "{}" }}
[[steps]]
name = "slack by url_env"
uses = "http"
with = {{ url_env = "SLACK_WEBHOOK_URL" }}
[[steps]]
name = "notify"
uses = "notify"
with = {{ url_env = "SLACK_WEBHOOK_URL" }}
"#,
        server.url(&format!("/services/T0123ABCD/B0456EFGH/{SLACK_TOKEN}")),
        server.url("/hook-endpoint?token=QueryT0kenValue&sync=1"),
    );

    let outcome = b.run(&job, &text).await;

    assert_eq!(outcome, RunOutcome::Completed);
    let paths: Vec<String> = server.requests().into_iter().map(|r| r.path).collect();
    assert_eq!(paths.len(), 4, "{paths:?}");
    assert!(paths[0].ends_with(SLACK_TOKEN) && paths[1].contains("token=QueryT0kenValue"), "{paths:?}");
    b.assert_stored_without(&[SLACK_TOKEN, "QueryT0kenValue", "EnvSlackS3cretPathValue99"]);
    let dump = b.dump();
    assert!(dump.contains("/services/T0123ABCD/B0456EFGH/[redacted]"), "{dump}");
    assert!(dump.contains("token=[redacted]&sync=1") && dump.contains("SLACK_WEBHOOK_URL"), "{dump}");
}

/// Regression: header names such as `X-Api-Key`, `DD-API-KEY`, `PRIVATE-TOKEN`
/// and a PagerDuty `routing_key` in a body were not recognised as secrets.
#[tokio::test]
async fn api_key_headers_and_routing_keys_are_redacted() {
    let server = Server::start(|_| (202, "{\"status\":\"success\"}".into())).await;
    let b = bench(&[]);
    let job = b.job("secondary", "primary down");
    let text = format!(
        r#"
[[steps]]
name = "datadog and pagerduty"
uses = "http"
with = {{ url = "{}", headers = {{ X-Api-Key = "XApiKeyValue1", DD-API-KEY = "DdApiKeyValue2", PRIVATE-TOKEN = "GitlabTokenValue3" }}, body = '{{"routing_key": "R0utingKeyValue4", "event_action": "trigger"}}' }}
"#,
        server.url("/v2/enqueue"),
    );

    assert_eq!(b.run(&job, &text).await, RunOutcome::Completed);

    let req = &server.requests()[0];
    assert_eq!(req.header("x-api-key"), Some("XApiKeyValue1"));
    assert_eq!(req.json()["routing_key"], "R0utingKeyValue4");
    b.assert_stored_without(&["XApiKeyValue1", "DdApiKeyValue2", "GitlabTokenValue3", "R0utingKeyValue4"]);
    assert!(b.dump().contains("event_action"), "the rest of the body is kept");
}

/// Regression: the undo call was journaled with its parameters rendered and
/// not redacted. It is stored redacted, and the undo that runs still gets
/// the real values (rendered again from the runbook).
#[tokio::test]
async fn undo_parameters_are_stored_redacted() {
    let server = Server::start(|_| (200, "ok".into())).await;
    let b = bench(&[]);
    let job = b.job("broken", "primary down");
    let text = format!(
        r#"
[[steps]]
name = "tell the router"
uses = "http"
with = {{ url = "{url}?api_key=DoApiKey111", headers = {{ Authorization = "Bearer DoBearer222" }}, body = {{ to = "{{{{ target }}}}" }} }}
undo = {{ uses = "http", with = {{ url = "{url}?api_key=UndoApiKey333", headers = {{ Authorization = "Bearer UndoBearer444" }}, body = {{ to = "{{{{ source }}}}", password = "UndoPassword555" }} }} }}
[[steps]]
name = "validate"
uses = "validate"
with = {{ backend = "{{{{ target }}}}" }}
"#,
        url = server.url("/route"),
    );

    let outcome = b.run(&job, &text).await;

    assert!(matches!(&outcome, RunOutcome::RolledBack { step, .. } if step == "validate"), "{outcome:?}");
    let requests = server.requests();
    assert_eq!(requests.len(), 2, "the step and its undo");
    let undo = &requests[1];
    assert_eq!(undo.path, "/route?api_key=UndoApiKey333");
    assert_eq!(undo.header("authorization"), Some("Bearer UndoBearer444"));
    assert_eq!(undo.json()["password"], "UndoPassword555");
    assert_eq!(undo.json()["to"], "primary");
    b.assert_stored_without(&["DoApiKey111", "DoBearer222", "UndoApiKey333", "UndoBearer444", "UndoPassword555"]);
}

/// Regression: `args` of a `command` step and what the program printed were
/// stored as they were.
#[tokio::test]
async fn command_args_token_is_redacted() {
    let b = bench(&[]);
    let job = b.job("secondary", "primary down");
    let text = r#"
[[steps]]
name = "deploy"
uses = "command"
with = { program = "sh", args = ["-c", "echo \"token=$2\"; echo \"password: ${3#--password=}\"; echo \"API_TOKEN=$API_TOKEN\"; echo 'Authorization: Bearer PrintedBearer888'", "sh", "--token", "ArgValue222", "--password=ArgInline333"], env = { API_TOKEN = "EnvTableToken444" } }
"#;

    assert_eq!(b.run(&job, text).await, RunOutcome::Completed);

    b.assert_stored_without(&["ArgValue222", "ArgInline333", "EnvTableToken444", "PrintedBearer888"]);
    let dump = b.dump();
    assert!(dump.contains("--password=[redacted]") && dump.contains("password: [redacted]"), "{dump}");
    assert!(dump.contains(r#"token=[redacted]\n"#), "what the program printed is kept, redacted: {dump}");
}

/// The value of a variable a step read (`headers_env`), echoed back by the
/// receiver without any name next to it, is not stored; with `url_env`, a
/// failure names the variable, not the URL.
#[tokio::test]
async fn values_read_from_the_environment_are_never_stored() {
    let server = Server::start(|r| (200, format!("you sent {}", r.header("x-signature").unwrap_or("-")))).await;
    let port = closed_port().await;
    let b = bench(&[
        ("HOOK_SIG", "EchoedSignatureValue777"),
        ("DEAD_HOOK", &format!("http://127.0.0.1:{port}/private/path/DeadHookS3cret")),
    ]);
    let job = b.job("secondary", "primary down");
    let text = format!(
        r#"
[[steps]]
name = "echo"
uses = "http"
with = {{ url = "{}", headers_env = {{ X-Signature = "HOOK_SIG" }} }}
[[steps]]
name = "dead"
uses = "http"
with = {{ url_env = "DEAD_HOOK" }}
on_failure = "continue"
"#,
        server.url("/echo"),
    );

    assert_eq!(b.run(&job, &text).await, RunOutcome::Completed);

    assert_eq!(server.requests()[0].header("x-signature"), Some("EchoedSignatureValue777"));
    b.assert_stored_without(&["EchoedSignatureValue777", "DeadHookS3cret", &format!(":{port}")]);
    let dump = b.dump();
    assert!(dump.contains("you sent [redacted]"), "{dump}");
    assert!(dump.contains("POST $DEAD_HOOK: connection refused"), "{dump}");
}

/// A `command` step's program inherits cutover's environment, credentials
/// included: values given to `Engine::with_secrets` are scrubbed from what it
/// prints, even bare.
#[tokio::test]
async fn a_credential_cutover_holds_is_scrubbed_from_command_output() {
    let mut b = bench(&[]);
    b.engine = b.engine.clone().with_secrets(["HeldBackendSecret999".to_string()]);
    let job = b.job("secondary", "primary down");
    let text = r#"
[[steps]]
name = "print the environment"
uses = "command"
with = { program = "sh", args = ["-c", "echo \"$BACKEND_SECRET\"; echo \"$BACKEND_SECRET\" >&2; exit 3"], env = { BACKEND_SECRET = "HeldBackendSecret999" } }
on_failure = "continue"
"#;

    assert_eq!(b.run(&job, text).await, RunOutcome::Completed);

    b.assert_stored_without(&["HeldBackendSecret999"]);
    assert!(b.dump().contains("exited with code 3: [redacted]"), "{}", b.dump());
}
