//! Templates cannot inject: values rendered into URLs, JSON bodies, headers
//! and command arguments, through the engine, to real local receivers and
//! real processes.

mod actuators_support;
mod engine_support;

use actuators_support::Server;
use cutover_orchestrate::engine::RunOutcome;
use cutover_orchestrate::runbook;
use engine_support::bench;
use serde_json::json;

/// An approver's comment as it may reach `{{ reason }}`.
const COMMENT: &str = "approved by \"ops\": it's {{ target }} }} {\\ ok\r\nX-Injected: yes\n\t{\"a\": 1}";

/// Regression: `{{ reason }}` with a quote in a JSON body made the body
/// invalid JSON (or let the comment add fields).
#[tokio::test]
async fn reason_with_quotes_keeps_the_json_body_valid() {
    let server = Server::start(|_| (200, "ok".into())).await;
    let b = bench(&[]);
    let job = b.job("secondary", COMMENT);
    let text = format!(
        r#"
[[steps]]
name = "tell argo"
uses = "http"
with = {{ url = "{}", body = '{{"incident": "{{{{ incident.id }}}}", "reason": "{{{{ reason }}}}", "nested": {{"target": "{{{{ target }}}}"}}}}' }}
"#,
        server.url("/hook"),
    );

    assert_eq!(b.run(&job, &text).await, RunOutcome::Completed);

    let req = &server.requests()[0];
    assert_eq!(req.header("content-type"), Some("application/json"));
    assert_eq!(req.json(), json!({"incident": job.incident, "reason": COMMENT, "nested": {"target": "secondary"}}));
}

/// Regression: a CR/LF in `{{ reason }}` rendered into a header value could
/// end the header and add another one.
#[tokio::test]
async fn reason_cannot_inject_a_header() {
    let server = Server::start(|_| (200, "ok".into())).await;
    let b = bench(&[]);
    let job = b.job("secondary", COMMENT);
    let text = format!(
        r#"
[[steps]]
name = "hook"
uses = "http"
with = {{ url = "{}", headers = {{ X-Cutover-Reason = "{{{{ reason }}}}" }} }}
"#,
        server.url("/hook"),
    );

    assert_eq!(b.run(&job, &text).await, RunOutcome::Completed, "a comment never fails the step");

    let req = &server.requests()[0];
    assert!(req.header("x-injected").is_none(), "{:?}", req.headers);
    let sent = req.header("x-cutover-reason").unwrap();
    assert!(sent.starts_with("approved by \"ops\"") && sent.contains("X-Injected: yes"), "{sent:?}");
    assert!(!sent.contains(['\r', '\n']), "{sent:?}");
}

/// Regression: a value rendered into a URL was inserted raw, so `/`, `?`,
/// `&` or `#` in it changed the path or added query parameters.
#[tokio::test]
async fn target_in_url_is_percent_encoded() {
    let server = Server::start(|_| (200, "ok".into())).await;
    let b = bench(&[]);
    let job = b.job("a b/../admin?x=1", "down & out=1#frag");
    let text = format!(
        r#"
[[steps]]
name = "hook"
uses = "http"
with = {{ url = "{}", method = "GET" }}
"#,
        server.url("/t/{{ target }}/go?reason={{ reason }}&k=v"),
    );

    assert_eq!(b.run(&job, &text).await, RunOutcome::Completed);

    assert_eq!(server.requests()[0].path, "/t/a%20b%2F..%2Fadmin%3Fx%3D1/go?reason=down%20%26%20out%3D1%23frag&k=v");
}

/// A literal `{{` is written `{{ '{{' }}`: `runbook check` accepts it and the
/// receiver gets the braces.
#[tokio::test]
async fn literal_double_brace_can_be_written() {
    let server = Server::start(|_| (200, "ok".into())).await;
    let b = bench(&[]);
    let job = b.job("secondary", "down");
    let text = format!(
        r#"
[[steps]]
name = "hook"
uses = "http"
with = {{ url = "{}", body = '{{"text": "write {{{{ "{{{{" }}}} target }}}} for {{{{ target }}}}"}}' }}
"#,
        server.url("/hook"),
    );
    runbook::parse(&text, "rb.toml", &[]).unwrap_or_else(|e| panic!("runbook check refuses it: {e}"));

    assert_eq!(b.run(&job, &text).await, RunOutcome::Completed);

    assert_eq!(server.requests()[0].json(), json!({"text": "write {{ target }} for secondary"}));
}

/// A value in a JSON body outside a string would be raw JSON: `runbook check`
/// refuses it, naming the step and field.
#[test]
fn a_template_outside_a_json_string_is_refused_by_runbook_check() {
    let text = r#"
[[steps]]
name = "hook"
uses = "http"
with = { url = "http://127.0.0.1:9/h", body = '{"to": {{ target }}}' }
"#;
    let e = runbook::parse(text, "rb.toml", &[]).unwrap_err().to_string();
    assert!(e.contains(r#"steps[0] "hook".with.body: {{ target }} in a JSON body must be inside a string"#), "{e}");
}

/// Command arguments are separate argv entries, never a shell line.
#[tokio::test]
async fn reason_in_command_args_stays_one_argument() {
    let b = bench(&[]);
    let out = b.dir.path().join("argv.txt");
    let job = b.job("secondary", "x\"; touch /tmp/cutover-injected-$$; echo \"");
    let text = format!(
        r#"
[[steps]]
name = "record"
uses = "command"
with = {{ program = "sh", args = ["-c", "printf '%s\n' \"$@\" > {}", "sh", "{{{{ reason }}}}", "{{{{ target }}}}"] }}
"#,
        out.display()
    );

    assert_eq!(b.run(&job, &text).await, RunOutcome::Completed);

    let argv = std::fs::read_to_string(&out).unwrap();
    assert_eq!(argv, format!("{}\nsecondary\n", job.reason));
}
