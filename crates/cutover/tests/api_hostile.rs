//! The API against hostile and broken clients: the real `cutover run` with
//! two in-process s3s-fs backends. No body, however bad, takes the
//! controller down, and the roles hold.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::run_process::RunProcess;
use common::{Backend, Setup, sha256_hex, start_s3sfs};
use serde_json::{Value, json};

fn tokens() -> String {
    let t = |name: &str, role: &str, extra: &str| {
        format!("[[api.tokens]]\nname = \"{name}\"\nrole = \"{role}\"\n{extra}sha256 = \"{}\"\n", sha256_hex(name))
    };
    format!(
        "[api]\nlisten = \"127.0.0.1:1\"\n{}{}{}",
        t("eu-agent", "agent", "vantage = \"eu\"\n"),
        t("admin", "admin", ""),
        t("approver", "approver", "")
    )
}

fn health(c: &RunProcess, backend: &str) -> String {
    let s = c.json("/v1/status");
    let b = s["backends"].as_array().and_then(|l| l.iter().find(|b| b["name"] == backend).cloned());
    b.and_then(|b| b["health"].as_str().map(String::from)).unwrap_or_default()
}

/// Regression: `POST /v1/evidence` with `"ms": -1` panicked inside
/// `Duration::from_secs_f64` while holding the controller's mutex; the
/// poisoned mutex then stopped detection and failover silently.
#[test]
fn hostile_bodies_on_every_endpoint_are_refused_and_detection_still_works() {
    let (a, b) = (start_s3sfs(), start_s3sfs());
    let setup = Setup::new(
        &[Backend::s3sfs("primary", "primary", &a), Backend::s3sfs("secondary", "secondary", &b)],
        &tokens(),
    );
    let c = RunProcess::start(&setup);
    c.wait_for("healthy", Duration::from_secs(20), |c| health(c, "primary") == "healthy");

    let report = |ms: Value| json!({"backend": "primary", "ok": true, "outcome": "Ok", "ops": [{"ms": ms}]});
    // Under the body limits (1 MiB for evidence, 64 KiB for the others), so
    // that the field checks, not the limit, refuse them.
    let huge = "x".repeat(1 << 19);
    let big = "x".repeat(1 << 15);
    let evidence_bodies = [
        json!({"vantage": "eu", "reports": [report(json!(-1))]}).to_string(),
        json!({"vantage": "eu", "reports": [report(json!(-1e300))]}).to_string(),
        json!({"vantage": "eu", "reports": [report(json!(1e300))]}).to_string(),
        r#"{"vantage": "eu", "reports": [{"backend": "primary", "ok": true, "ops": [{"ms": 1e999}]}]}"#.to_string(),
        r#"{"vantage": "eu", "reports": [{"backend": "primary", "ok": true, "ops": [{"ms": NaN}]}]}"#.to_string(),
        json!({"vantage": "eu", "reports": [report(json!("fast"))]}).to_string(),
        json!({"vantage": "eu", "reports": "primary"}).to_string(),
        json!({"vantage": 7, "reports": []}).to_string(),
        json!({"vantage": "eu", "reports": [{"backend": "nope", "ok": true}]}).to_string(),
        json!({"vantage": "eu", "reports": [{"backend": "primary", "ok": "yes"}]}).to_string(),
        json!({"vantage": "eu", "reports": [{"backend": "primary", "ok": true, "outcome": huge}]}).to_string(),
        json!({"vantage": "eu", "reports": [{"backend": huge, "ok": true}]}).to_string(),
        json!({"vantage": huge, "reports": []}).to_string(),
        json!({"vantage": "local", "reports": []}).to_string(),
        "[1, 2".to_string(),
        String::new(),
    ];
    for body in &evidence_bodies {
        let (status, answer) = c.request("POST", "/v1/evidence", Some("eu-agent"), body);
        assert_eq!(status, 400, "{}: {answer}", &body[..body.len().min(120)]);
        assert!(answer.len() < 4096, "the error does not echo the body: {} bytes", answer.len());
    }
    // The admin may not invent vantages either.
    let admin_new = json!({"vantage": "mars", "reports": [report(json!(1))]}).to_string();
    assert_eq!(c.request("POST", "/v1/evidence", Some("admin"), &admin_new).0, 403);

    let decision_bodies = [
        json!({"comment": 5}).to_string(),
        json!({"comment": ["a"]}).to_string(),
        json!({"comment": big}).to_string(),
        json!({"comment": "a\u{0000}b"}).to_string(),
        "{".to_string(),
        "null".to_string(),
    ];
    for verb in ["approve", "reject"] {
        for body in &decision_bodies {
            let (status, answer) = c.request("POST", &format!("/v1/incidents/inc-x/{verb}"), Some("approver"), body);
            assert_eq!(status, 400, "{verb} {}: {answer}", &body[..body.len().min(80)]);
        }
    }
    let failover_bodies = [
        json!({"target": 1, "reason": "x"}).to_string(),
        json!({"target": "secondary"}).to_string(),
        json!({"target": "secondary", "reason": big}).to_string(),
        json!({"target": big, "reason": "x"}).to_string(),
        "{}".to_string(),
        "\"secondary\"".to_string(),
    ];
    for body in &failover_bodies {
        let (status, answer) = c.request("POST", "/v1/failover", Some("admin"), body);
        assert_eq!(status, 400, "{}: {answer}", &body[..body.len().min(80)]);
    }
    // The controller still answers and still detects.
    assert_eq!(c.json("/v1/status")["active"], "primary");
    a.hang();
    c.wait_for("the hung primary to be failed over", Duration::from_secs(30), |c| {
        c.json("/v1/status")["active"] == "secondary"
    });
    a.resume();
}

/// Regression: every agent token could post evidence for every vantage, and
/// reads needed no token at all.
#[test]
fn an_agent_speaks_for_its_own_vantage_only_and_reads_need_a_token() {
    let (a, b) = (start_s3sfs(), start_s3sfs());
    let setup = Setup::new(
        &[Backend::s3sfs("primary", "primary", &a), Backend::s3sfs("secondary", "secondary", &b)],
        &tokens(),
    );
    let c = RunProcess::start(&setup);
    let report = json!({"backend": "primary", "ok": true, "outcome": "Ok", "ops": [{"op": "put", "ms": 1.0}]});
    let post = |vantage: &str| {
        let body = json!({"vantage": vantage, "reports": [report.clone()]}).to_string();
        c.request("POST", "/v1/evidence", Some("eu-agent"), &body)
    };
    assert_eq!(post("eu").0, 200);
    let (status, answer) = post("us");
    assert_eq!(status, 403, "{answer}");
    let error: Value = serde_json::from_str(&answer).unwrap();
    assert!(error["error"].as_str().unwrap().contains("vantage \"eu\" only"), "{answer}");

    for path in ["/v1/status", "/v1/incidents", "/v1/incidents/inc-x"] {
        assert_eq!(c.request("GET", path, None, "").0, 401, "{path}");
        assert_eq!(c.request("GET", path, Some("wrong"), "").0, 401, "{path}");
    }
    assert_eq!(c.request("GET", "/v1/status", Some("eu-agent"), "").0, 200);
    assert_eq!(c.request("GET", "/healthz", None, "").0, 200);
    assert_eq!(c.request("GET", "/metrics", None, "").0, 200);
    // A 403 names the role needed.
    let (status, answer) = c.request("POST", "/v1/failover", Some("approver"), "{}");
    assert_eq!(status, 403);
    assert!(answer.contains("admin"), "{answer}");
    drop(c);
    let audit = setup.run(&["audit", "verify"]);
    assert_eq!(audit.code, 0, "{audit:?}");
}

/// On SIGTERM the API stops accepting at once and finishes the request in
/// progress (here one whose body is still arriving) before the process exits.
#[test]
fn sigterm_stops_accepting_and_finishes_the_request_in_progress() {
    let (a, b) = (start_s3sfs(), start_s3sfs());
    let setup = Setup::new(
        &[Backend::s3sfs("primary", "primary", &a), Backend::s3sfs("secondary", "secondary", &b)],
        &tokens(),
    );
    let mut c = RunProcess::start(&setup);
    let body = json!({"target": "nowhere", "reason": "stopping"}).to_string();
    let mut conn = TcpStream::connect(("127.0.0.1", c.port())).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let head = format!(
        "POST /v1/failover HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Bearer admin\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    conn.write_all(head.as_bytes()).unwrap();
    conn.write_all(&body.as_bytes()[..10]).unwrap();
    std::thread::sleep(Duration::from_millis(300));

    c.terminate();
    let start = Instant::now();
    while TcpStream::connect(("127.0.0.1", c.port())).is_ok() {
        assert!(start.elapsed() < Duration::from_secs(10), "the API still accepts after SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(c.try_wait().is_none(), "the controller exited with a request in progress: {}", c.log());

    conn.write_all(&body.as_bytes()[10..]).unwrap();
    let mut answer = String::new();
    conn.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 404"), "{answer}");
    assert!(answer.contains("no backend named \\\"nowhere\\\""), "{answer}");
    let start = Instant::now();
    let status = loop {
        if let Some(s) = c.try_wait() {
            break s;
        }
        assert!(start.elapsed() < Duration::from_secs(20), "the controller did not exit: {}", c.log());
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "exit status {status:?}: {}", c.log());
}

/// The routing the API has always had, pinned across its move to axum:
/// trailing and doubled slashes are ignored, unknown paths are 404 naming
/// the path, other methods (HEAD too) are 405, and every answer is JSON
/// `{"error"}` but `/healthz` and `/metrics`.
#[test]
fn paths_methods_and_unknown_endpoints_answer_as_before() {
    let (a, b) = (start_s3sfs(), start_s3sfs());
    let setup = Setup::new(
        &[Backend::s3sfs("primary", "primary", &a), Backend::s3sfs("secondary", "secondary", &b)],
        &tokens(),
    );
    let c = RunProcess::start(&setup);
    let error = |(status, text): (u16, String)| {
        let v: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{status} {text}: {e}"));
        (status, v["error"].as_str().unwrap_or_default().to_string())
    };
    let viewer = Some(common::run_process::HARNESS_VIEWER_TOKEN);
    assert_eq!(c.request("GET", "/v1/status/", viewer, "").0, 200);
    assert_eq!(c.request("GET", "//v1//incidents//", viewer, "").0, 200);
    assert_eq!(c.request("GET", "/healthz/", None, "").1, "ok\n");
    assert_eq!(error(c.request("GET", "/nope/", None, "")), (404, "no such endpoint: /nope".into()));
    assert_eq!(error(c.request("POST", "/v1/nothing", None, "")), (404, "no such endpoint: /v1/nothing".into()));
    assert_eq!(error(c.request("GET", "/v1/nothing", viewer, "")), (404, "no such endpoint: /v1/nothing".into()));
    assert_eq!(error(c.request("GET", "/v1/incidents/inc-x", viewer, "")), (404, "no incident \"inc-x\"".into()));
    for (method, path) in
        [("PUT", "/v1/status"), ("POST", "/healthz"), ("DELETE", "/v1/failover"), ("POST", "/v1/incidents/x")]
    {
        assert_eq!(error(c.request(method, path, None, "")), (405, "method not allowed".into()), "{method} {path}");
    }
    // A GET of a POST endpoint is a read: the token first, then 405.
    assert_eq!(c.request("GET", "/v1/failover", None, "").0, 401);
    assert_eq!(error(c.request("GET", "/v1/failover", viewer, "")), (405, "method not allowed".into()));
    assert_eq!(c.request("HEAD", "/healthz", None, "").0, 405);
    let (status, answer) = c.request("POST", "/v1/incidents/inc-x/approve", Some("approver"), "");
    assert_eq!(error((status, answer)), (404, "no incident \"inc-x\"".into()));
}
