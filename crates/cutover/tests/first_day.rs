//! What the first day of real use broke (issue 18), each a regression test
//! against the real binary: a restart that closed incidents, exit codes and
//! messages, `config check` of the policy and of unknown keys, log formats,
//! `cutover status` and the incident filters.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::run_process::{HARNESS_VIEWER_TOKEN, RunProcess};
use common::{Backend, Setup, cutover, health, sha256_hex, start_s3sfs, two_garages};
use serde_json::{Value, json};

fn tokens() -> String {
    format!(
        "[[api.tokens]]\nname = \"oncall\"\nrole = \"approver\"\nsha256 = \"{}\"\n\
         [[api.tokens]]\nname = \"watcher\"\nrole = \"viewer\"\nsha256 = \"{}\"\n",
        sha256_hex("approver-token"),
        sha256_hex("viewer-token"),
    )
}

/// No failover without a human: the default policy asks for approval.
fn approval_only() -> String {
    format!("[api]\nlisten = \"127.0.0.1:0\"\n{}\n[policy]\nmax_failovers_per_hour = 0\n", tokens())
}

fn vantage(status: &Value, backend: &str) -> String {
    status["backends"]
        .as_array()
        .and_then(|l| l.iter().find(|b| b["name"] == backend))
        .map_or(String::new(), |b| b["vantages"]["local"]["health"].as_str().unwrap_or("").to_string())
}

fn kinds(detail: &Value) -> Vec<String> {
    detail["timeline"].as_array().unwrap().iter().map(|e| e["kind"].as_str().unwrap().to_string()).collect()
}

fn both_healthy(c: &RunProcess) {
    c.wait_for("both healthy", Duration::from_secs(20), |c| {
        let s = c.json("/v1/status");
        health(&s, "primary") == "healthy" && health(&s, "secondary") == "healthy"
    });
}

/// Two Garage backends; the controller runs until the paused primary's
/// incident awaits approval, then is killed. Returns the setup, the
/// (still paused) primary, the secondary and the incident id.
fn hung_primary_awaiting_approval() -> (Setup, cutover_lab::garage::Garage, cutover_lab::garage::Garage, String, u16) {
    let (a, b, setup) = two_garages(&approval_only());
    let port = cutover_lab::free_port();
    let mut c = RunProcess::start_on(&setup, port);
    both_healthy(&c);
    a.pause().unwrap();
    c.wait_for("awaiting approval", Duration::from_secs(30), |c| {
        c.json("/v1/incidents")[0]["state"] == "awaiting_approval"
    });
    let id = c.json("/v1/incidents")[0]["id"].as_str().unwrap().to_string();
    c.kill();
    (setup, a, b, id, port)
}

// ---- point 2: a restart keeps what is true --------------------------------

#[test]
fn restart_while_primary_hung_keeps_the_incident_open() {
    let (setup, a, _b, id, port) = hung_primary_awaiting_approval();
    let c = RunProcess::start_on(&setup, port);
    // Long enough for several probe cycles of the still-hung primary and of
    // the healthy secondary after the restart.
    std::thread::sleep(Duration::from_secs(6));
    let incidents = c.json("/v1/incidents");
    let list = incidents.as_array().unwrap();
    assert_eq!(list.len(), 1, "no second incident: {incidents}\n{}", c.log());
    assert_eq!(list[0]["id"], id.as_str());
    assert!(list[0]["closed_at"].is_null(), "still open: {incidents}\n{}", c.log());
    let detail = c.json(&format!("/v1/incidents/{id}"));
    assert!(!kinds(&detail).contains(&"incident.resolved".to_string()), "{detail}");
    assert!(!c.log().contains("resolved"), "{}", c.log());
    // The primary really recovers: the incident resolves by the recovery rules.
    a.resume().unwrap();
    c.wait_for("resolved after recovery", Duration::from_secs(30), |c| {
        !c.json("/v1/incidents")[0]["closed_at"].is_null()
    });
    assert!(c.log().contains("health primary@local: unknown -> "), "{}", c.log());
}

#[test]
fn restart_keeps_a_pending_approval_pending() {
    let (setup, a, _b, id, port) = hung_primary_awaiting_approval();
    let c = RunProcess::start_on(&setup, port);
    std::thread::sleep(Duration::from_secs(5));
    let inc = c.json(&format!("/v1/incidents/{id}"));
    assert_eq!(inc["state"], "awaiting_approval", "{inc}\n{}", c.log());
    // The on-call engineer approves the id they were paged with.
    let r = c.cli(&["approve", &id, "--comment", "paged, go"], &[("CUTOVER_TOKEN", "approver-token")]);
    assert_eq!(r.code, 0, "{r:?}\n{}", c.log());
    c.wait_for("failed over", Duration::from_secs(30), |c| {
        c.json(&format!("/v1/incidents/{id}"))["state"] == "failed_over"
    });
    assert_eq!(c.json("/v1/status")["active"], "secondary");
    a.resume().unwrap();
}

#[test]
fn health_is_unknown_after_restart_until_evidence() {
    let (setup, a, _b, _id, port) = hung_primary_awaiting_approval();
    // Give the hung primary's probe time to hang before it counts as failed,
    // so the window before any evidence is wide enough to look at.
    let text = std::fs::read_to_string(&setup.config).unwrap();
    std::fs::write(
        &setup.config,
        format!("[detect]\nslow_after = \"8s\"\n{}", text.replace("timeout = \"2s\"", "timeout = \"8s\"")),
    )
    .unwrap();
    let c = RunProcess::start_on(&setup, port);
    let s = c.json("/v1/status");
    assert_eq!(health(&s, "primary"), "unknown", "{s}");
    assert_eq!(vantage(&s, "primary"), "unknown", "{s}");
    // Never healthy while hung; the secondary becomes healthy on fresh evidence.
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(4) {
        let s = c.json("/v1/status");
        assert_ne!(health(&s, "primary"), "healthy", "{s}\n{}", c.log());
        std::thread::sleep(Duration::from_millis(200));
    }
    c.wait_for("secondary healthy", Duration::from_secs(10), |c| {
        health(&c.json("/v1/status"), "secondary") == "healthy"
    });
    assert!(c.log().contains("health secondary@local: unknown -> healthy"), "{}", c.log());
    a.resume().unwrap();
}

// ---- point 5: exit codes and messages --------------------------------------

/// A controller on two s3s-fs backends with approver and viewer tokens.
fn s3sfs_controller(extra: &str) -> (cutover_lab::s3sfs::S3sFs, cutover_lab::s3sfs::S3sFs, Setup, RunProcess) {
    let a = start_s3sfs();
    let b = start_s3sfs();
    let setup =
        Setup::new(&[Backend::s3sfs("primary", "primary", &a), Backend::s3sfs("secondary", "secondary", &b)], extra);
    let c = RunProcess::start(&setup);
    (a, b, setup, c)
}

fn api(c: &RunProcess) -> String {
    format!("http://127.0.0.1:{}", c.port())
}

#[test]
fn an_unknown_token_is_exit_1_not_a_usage_error() {
    let (_a, _b, _setup, c) = s3sfs_controller(&approval_only());
    let r = c.cli(&["approve", "inc-x", "--api", &api(&c)], &[("CUTOVER_TOKEN", "wrong-token")]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains("401") && r.stderr.contains("CUTOVER_TOKEN"), "{r:?}");
}

#[test]
fn a_forbidden_approve_is_exit_1_and_names_the_role_needed() {
    let (_a, _b, _setup, c) = s3sfs_controller(&approval_only());
    let r = c.cli(&["approve", "inc-x", "--api", &api(&c)], &[("CUTOVER_TOKEN", "viewer-token")]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains("403") && r.stderr.contains("needs approver"), "{r:?}");
}

#[test]
fn an_empty_token_is_set_but_empty() {
    let r = cutover(&["approve", "inc-x", "--api", "http://127.0.0.1:1"], &[("CUTOVER_TOKEN", "")]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("CUTOVER_TOKEN is set but empty"), "{r:?}");
    let r = cutover(&["approve", "inc-x", "--api", "http://127.0.0.1:1", "--token-env", "NO_SUCH_TOKEN_VAR_X"], &[]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("NO_SUCH_TOKEN_VAR_X is not set"), "{r:?}");
}

#[test]
fn a_repeated_approve_says_it_was_already_decided() {
    let (a, _b, _setup, c) = s3sfs_controller(&approval_only());
    both_healthy(&c);
    a.hang();
    c.wait_for("awaiting approval", Duration::from_secs(30), |c| {
        c.json("/v1/incidents")[0]["state"] == "awaiting_approval"
    });
    let id = c.json("/v1/incidents")[0]["id"].as_str().unwrap().to_string();
    let token = [("CUTOVER_TOKEN", "approver-token")];
    let first = c.cli(&["approve", &id, "--api", &api(&c)], &token);
    assert_eq!(first.code, 0, "{first:?}");
    let again = c.cli(&["approve", &id, "--api", &api(&c)], &token);
    assert_eq!(again.code, 1, "{again:?}");
    assert!(again.stderr.contains("already decided: approved by oncall"), "{again:?}");
    a.resume();
}

#[test]
fn a_dry_run_with_an_unknown_target_is_a_usage_error() {
    let setup = Setup::new(&[Backend::dummy("primary", "primary"), Backend::dummy("secondary", "secondary")], "");
    let rb = setup.dir.path().join("rb.toml");
    std::fs::write(&rb, "[[steps]]\nname = \"switch\"\nuses = \"state.switch\"\nwith = { to = \"{{ target }}\" }\n")
        .unwrap();
    let r = setup.run(&["runbook", "run", rb.to_str().unwrap(), "--dry-run", "--target", "tertiary"]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("--target: unknown backend \"tertiary\""), "{r:?}");
}

#[test]
fn a_failed_listing_does_not_repeat_its_own_text() {
    let a = start_s3sfs();
    let b = start_s3sfs();
    let mut bad = Backend::s3sfs("alpha", "primary", &a);
    bad.secret = "not-the-secret".into();
    let setup = Setup::new(&[bad, Backend::s3sfs("beta", "secondary", &b)], "");
    let r = setup.run(&["sync", "alpha", "beta"]);
    assert_eq!(r.code, 1, "{r:?}");
    let line = r.stderr.lines().find(|l| l.contains("listing alpha failed")).unwrap_or_else(|| panic!("{r:?}"));
    assert_eq!(line.matches("ListObjectsV2").count(), 1, "{line}");
    r.assert_no_secret("not-the-secret");
}

#[test]
fn validate_lists_the_checks_it_could_not_run_as_not_run() {
    let a = start_s3sfs();
    let mut bad = Backend::s3sfs("primary", "primary", &a);
    bad.secret = "not-the-secret".into();
    let setup = Setup::new(&[bad], "");
    let r = setup.run(&["validate", "--backend", "primary"]);
    assert_eq!(r.code, 1, "{r:?}");
    for check in ["put", "get", "head", "list", "range_get", "multipart", "presigned_get", "presigned_put", "delete"] {
        assert!(r.stdout.lines().any(|l| l.split_whitespace().any(|w| w == check)), "{check} listed: {r:?}");
    }
    for check in ["get", "head", "list", "range_get", "presigned_get"] {
        let line = r
            .stdout
            .lines()
            .find(|l| l.split_whitespace().nth(2) == Some(check) || l.contains(&format!("not run {check} ")));
        assert!(line.is_some_and(|l| l.trim_start().starts_with("not run")), "{check}: {r:?}");
    }
    let j = setup.run(&["validate", "--backend", "primary", "--output", "json"]);
    let report = &j.json_lines()[0];
    let get = report["checks"].as_array().unwrap().iter().find(|c| c["name"] == "get").unwrap().clone();
    assert_eq!(get["not_run"], true, "{report}");
}

#[test]
fn sync_dry_run_says_would_copy_n() {
    let a = start_s3sfs();
    let b = start_s3sfs();
    let src = Backend::s3sfs("alpha", "primary", &a);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let client = src.client();
    rt.block_on(async {
        for i in 0..3 {
            client.put_object(&format!("k{i}"), bytes::Bytes::from_static(b"hello"), &[]).await.unwrap();
        }
    });
    let setup = Setup::new(&[src, Backend::s3sfs("beta", "secondary", &b)], "");
    let r = setup.run(&["sync", "alpha", "beta", "--dry-run"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("dry run: would copy 3 (3 new, 0 changed"), "{r:?}");
    assert!(!r.stdout.contains("copied 0"), "{r:?}");
}

// ---- point 4: config check checks what run checks --------------------------

fn with_policy(policy: &str) -> Setup {
    let setup = Setup::new(
        &[Backend::dummy("primary", "primary"), Backend::dummy("secondary", "secondary")],
        "[policy]\npath = \"p.rego\"\n",
    );
    std::fs::write(setup.dir.path().join("p.rego"), policy).unwrap();
    setup
}

#[test]
fn config_check_refuses_a_policy_that_does_not_compile() {
    let setup = with_policy("package cutover\n\ndecision := {\n");
    let r = setup.run(&["config", "check"]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("p.rego:"), "file and line: {r:?}");
}

#[test]
fn config_check_reports_a_bad_decision_in_the_policy_terms() {
    let setup = with_policy("package cutover\nimport rego.v1\ndecision := {\"target\": \"secondary\"}\n");
    let r = setup.run(&["config", "check"]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("p.rego: data.cutover.decision.action is missing (the rule produced {"), "{r:?}");
    let setup = with_policy(
        "package cutover\nimport rego.v1\ndecision := {\"action\": \"failover\", \"target\": \"nowhere\"}\n",
    );
    let r = setup.run(&["config", "check"]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("data.cutover.decision.target is \"nowhere\", not a configured backend"), "{r:?}");
    let ok = with_policy("package cutover\nimport rego.v1\ndecision := {\"action\": \"hold\", \"reason\": \"x\"}\n");
    assert_eq!(ok.run(&["config", "check"]).code, 0);
}

#[test]
fn an_unknown_key_gets_a_did_you_mean_and_its_line() {
    let setup = Setup::new(&[Backend::dummy("primary", "primary")], "[detect]\nconfirm_afer = \"3s\"\n");
    let r = setup.run(&["config", "check"]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("detect.confirm_afer: unknown key at line 6 (did you mean \"confirm_after\"?)"), "{r:?}");
}

// ---- point 6: logs ----------------------------------------------------------

/// Runs `cutover run` for `secs` with `args` before `run`; returns stdout, stderr.
fn run_for(setup: &Setup, args: &[&str], secs: u64) -> (String, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_cutover"));
    cmd.arg("--config").arg(&setup.config).args(args).arg("run");
    cmd.envs(setup.env.iter().map(|(k, v)| (k.as_str(), v.as_str()))).env("CUTOVER_LOG", "debug");
    let child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    std::thread::sleep(Duration::from_secs(secs));
    let _ = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status();
    let out = child.wait_with_output().unwrap();
    (String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn logs_have_no_colour_codes_when_stderr_is_not_a_terminal() {
    let setup = Setup::new(&[Backend::dummy("primary", "primary"), Backend::dummy("secondary", "secondary")], "");
    let (out, err) = run_for(&setup, &[], 4);
    assert!(!err.contains('\u{1b}') && !out.contains('\u{1b}'), "{err}");
    assert!(out.contains("health primary@local: unknown -> suspect"), "{out}");
}

/// A POST to the API on `port` with a bearer token; the status code.
fn post(port: u16, path: &str, token: &str, body: &Value) -> u16 {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else { return 0 };
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let body = body.to_string();
    let req = format!(
        "POST {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    if s.write_all(req.as_bytes()).is_err() {
        return 0;
    }
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0)
}

#[test]
fn an_unknown_log_format_in_the_environment_is_a_usage_error_naming_it() {
    let config = ["config", "check", "--config", "/nonexistent/cutover.toml"];
    let run = cutover(&config, &[("CUTOVER_LOG_FORMAT", "xml")]);
    assert_eq!(run.code, 2, "{run:?}");
    assert_eq!(run.stderr.trim(), r#"CUTOVER_LOG_FORMAT: "xml" is not text or json"#, "{run:?}");
}

#[test]
fn log_format_json_prints_one_json_object_per_line() {
    // With a forced failover through a one-step runbook, so that the runbook's lines are there too.
    let port = cutover_lab::free_port();
    let extra = format!(
        "[api]\nlisten = \"127.0.0.1:{port}\"\n[[api.tokens]]\nname = \"boss\"\nrole = \"admin\"\nsha256 = \"{}\"\n\
         [runbooks]\nfailover = \"failover.toml\"\n",
        sha256_hex("admin-token")
    );
    let setup = Setup::new(&[Backend::dummy("primary", "primary"), Backend::dummy("secondary", "secondary")], &extra);
    let runbook =
        "[[steps]]\nname = \"switch the gateway\"\nuses = \"state.switch\"\nwith = { to = \"{{ target }}\" }\n";
    std::fs::write(setup.dir.path().join("failover.toml"), runbook).unwrap();
    let forced = std::thread::spawn(move || {
        let body = json!({"target": "secondary", "reason": "log format test"});
        let deadline = Instant::now() + Duration::from_secs(3);
        loop {
            let status = post(port, "/v1/failover", "admin-token", &body);
            if status != 0 || Instant::now() > deadline {
                return status;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    });
    let (out, err) = run_for(&setup, &["--log-format", "json"], 5);
    assert_eq!(forced.join().unwrap(), 202, "{out}{err}");
    let events: Vec<Value> =
        out.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l}: {e}"))).collect();
    assert!(events.iter().any(|e| e["event"] == "started"), "{out}");
    assert!(events.iter().any(|e| e["event"] == "health" && e["backend"] == "primary"), "{out}");
    // The runbook's lines: the run, each step with its name and outcome, the end.
    let step = events.iter().find(|e| e["event"] == "step").unwrap_or_else(|| panic!("no step line: {out}"));
    assert_eq!((step["step"].as_str(), step["outcome"].as_str()), (Some("switch the gateway"), Some("ok")), "{step}");
    assert!(step["incident"].is_string() && step["ts"].is_string() && step["message"].is_string(), "{step}");
    assert!(events.iter().any(|e| e["event"] == "runbook.started" && e["kind"] == "failover"), "{out}");
    assert!(events.iter().any(|e| e["event"] == "runbook.finished" && e["outcome"] == "completed"), "{out}");
    for l in err.lines().filter(|l| !l.trim().is_empty()) {
        let v: Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l}: {e}"));
        assert!(v["level"].is_string() && v["ts"].is_string(), "{v}");
    }
}

#[test]
fn a_failed_start_up_says_why_once_and_never_listening() {
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = busy.local_addr().unwrap().port();
    let setup = Setup::new(
        &[Backend::dummy("primary", "primary"), Backend::dummy("secondary", "secondary")],
        &format!("[api]\nlisten = \"127.0.0.1:{port}\"\n"),
    );
    let r = setup.run(&["run"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(!r.stdout.contains("listening"), "{r:?}");
    let lines: Vec<&str> = r.stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "one line saying why: {r:?}");
    assert!(lines[0].contains(&format!("api.listen 127.0.0.1:{port}")), "{r:?}");
}

// ---- point 7: status, incident filters, --output json ----------------------

#[test]
fn status_reads_a_running_controller_then_the_state_store() {
    let (_a, _b, setup, mut c) = s3sfs_controller("");
    both_healthy(&c);
    let token = [("CUTOVER_TOKEN", HARNESS_VIEWER_TOKEN)];
    let r = c.cli(&["status", "--api", &api(&c)], &token);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("from the controller at") && r.stdout.contains("active backend: primary"), "{r:?}");
    assert!(r.stdout.contains("primary") && r.stdout.contains("healthy") && r.stdout.contains("open incidents: 0"));
    let j = c.cli(&["status", "--api", &api(&c), "--output", "json"], &token);
    let doc = &j.json_lines()[0];
    assert_eq!(doc["source"]["kind"], "api", "{doc}");
    assert_eq!(vantage(doc, "secondary"), "healthy", "{doc}");
    c.kill();
    let r = setup.run(&["status", "--api", &api(&c)]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("from the state store") && r.stdout.contains("not live"), "{r:?}");
    assert!(r.stdout.contains("active backend: primary"), "{r:?}");
    let j = setup.run(&["status", "--json"]);
    assert_eq!(j.json_lines()[0]["source"]["kind"], "state", "{j:?}");
}

#[test]
fn incidents_list_filters_by_open_state_and_limit() {
    let setup = Setup::new(&[Backend::dummy("primary", "primary"), Backend::dummy("secondary", "secondary")], "");
    use cutover_store::{Fence, prelude::*};
    let store = cutover_store::SqliteStore::open(&setup.dir.path().join("cutover.db")).unwrap();
    let t = std::time::SystemTime::now();
    let one = store.open_incident(&Fence::local(), "primary", t - Duration::from_secs(30)).unwrap();
    let two = store.open_incident(&Fence::local(), "primary", t - Duration::from_secs(20)).unwrap();
    let three = store.open_incident(&Fence::local(), "secondary", t - Duration::from_secs(10)).unwrap();
    store
        .set_incident_state(
            &cutover_store::Fence::local(),
            &one,
            cutover_core::domain::IncidentState::Resolved,
            Some(t),
        )
        .unwrap();
    store
        .set_incident_state(
            &cutover_store::Fence::local(),
            &two,
            cutover_core::domain::IncidentState::AwaitingApproval,
            None,
        )
        .unwrap();
    drop(store);
    let ids = |args: &[&str]| -> Vec<String> {
        let mut full = vec!["incidents", "list", "--output", "json"];
        full.extend_from_slice(args);
        let r = setup.run(&full);
        assert_eq!(r.code, 0, "{r:?}");
        r.json_lines()[0].as_array().unwrap().iter().map(|i| i["id"].as_str().unwrap().to_string()).collect()
    };
    assert_eq!(ids(&[]), [three.clone(), two.clone(), one.clone()]);
    assert_eq!(ids(&["--open"]), [three.clone(), two.clone()]);
    assert_eq!(ids(&["--state", "awaiting_approval"]), vec![two]);
    assert_eq!(ids(&["--limit", "1"]), vec![three]);
    let legacy = setup.run(&["incidents", "list", "--json", "--state", "resolved"]);
    assert_eq!(legacy.json_lines()[0][0]["id"], json!(one));
    let bad = setup.run(&["incidents", "list", "--state", "awaiting"]);
    assert_eq!(bad.code, 2, "{bad:?}");
}
