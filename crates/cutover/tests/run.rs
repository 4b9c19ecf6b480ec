//! `cutover run` end to end: the real binary as a separate process, two real
//! Garage backends, outages by SIGSTOP, and the API read over HTTP.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::run_process::RunProcess;
use common::{Backend, Setup, sha256_hex, start_garage};
use serde_json::{Value, json};

fn two_garages(extra: &str) -> (cutover_lab::garage::Garage, cutover_lab::garage::Garage, Setup) {
    let a = start_garage();
    let b = start_garage();
    let setup =
        Setup::new(&[Backend::garage("primary", "primary", &a), Backend::garage("secondary", "secondary", &b)], extra);
    (a, b, setup)
}

fn health(status: &Value, backend: &str) -> String {
    status["backends"].as_array().unwrap().iter().find(|b| b["name"] == backend).unwrap()["health"]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn a_paused_primary_opens_an_incident_decided_failover_and_switches() {
    let (a, _b, setup) = two_garages("");
    let c = RunProcess::start(&setup);
    c.wait_for("both healthy", Duration::from_secs(15), |c| {
        let s = c.json("/v1/status");
        s["active"] == "primary" && health(&s, "primary") == "healthy" && health(&s, "secondary") == "healthy"
    });
    a.pause().unwrap();
    c.wait_for("failover", Duration::from_secs(30), |c| c.json("/v1/status")["active"] == "secondary");
    c.wait_for("validated", Duration::from_secs(30), |c| c.json("/v1/incidents")[0]["state"] == "failed_over");
    a.resume().unwrap();
    let incidents = c.json("/v1/incidents");
    let inc = &incidents.as_array().unwrap()[0];
    assert_eq!(inc["backend"], "primary");
    assert_eq!(inc["decision"]["action"], "failover", "{inc}");
    assert_eq!(inc["decision"]["target"], "secondary");
    let detail = c.json(&format!("/v1/incidents/{}", inc["id"].as_str().unwrap()));
    let kinds: Vec<&str> = detail["timeline"].as_array().unwrap().iter().map(|e| e["kind"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        ["incident.opened", "decision", "runbook.started", "step", "step", "runbook.completed"],
        "{detail}"
    );
    assert_eq!(detail["runs"][0]["state"], "completed", "{detail}");
    let metrics = c.get("/metrics").1;
    assert!(metrics.contains("cutover_decisions_total{action=\"failover\"} 1"), "{metrics}");
    assert!(metrics.contains("cutover_probe_duration_seconds_bucket{backend=\"primary\",vantage=\"local\",op=\"put\""));
    assert!(c.log().contains("health primary@local: suspect -> down"), "{}", c.log());
}

#[test]
fn a_two_second_blip_does_not_fail_over() {
    let (a, _b, setup) = two_garages("");
    let c = RunProcess::start(&setup);
    c.wait_for("healthy", Duration::from_secs(15), |c| health(&c.json("/v1/status"), "primary") == "healthy");
    a.pause().unwrap();
    std::thread::sleep(Duration::from_secs(2));
    a.resume().unwrap();
    // Long enough for any confirmation to have happened, and for recovery.
    std::thread::sleep(Duration::from_secs(5));
    let s = c.json("/v1/status");
    assert_eq!(s["active"], "primary", "{s}\n{}", c.log());
    assert_eq!(health(&s, "primary"), "healthy", "{s}");
    let incidents = c.json("/v1/incidents");
    assert!(incidents.as_array().unwrap().iter().all(|i| i["decision"]["action"] != "failover"), "{incidents}");
    assert!(!c.log().contains("-> down"), "{}", c.log());
}

#[test]
fn one_vantage_out_of_three_asks_for_approval_and_silent_agents_do_not_vote() {
    let tokens = format!(
        "[[api.tokens]]\nname = \"eu-agent\"\nrole = \"agent\"\nvantage = \"eu\"\nsha256 = \"{}\"\n\
         [[api.tokens]]\nname = \"us-agent\"\nrole = \"agent\"\nvantage = \"us\"\nsha256 = \"{}\"\n\
         [[api.tokens]]\nname = \"viewer\"\nrole = \"viewer\"\nsha256 = \"{}\"\n",
        sha256_hex("agent-token"),
        sha256_hex("us-agent-token"),
        sha256_hex("viewer-token")
    );
    let (a, _b, setup) = two_garages(&format!(
        "[verify]\nquorum = 2\nagent_timeout = \"3s\"\n\n[api]\nlisten = \"127.0.0.1:1\"\n{tokens}"
    ));
    let c = RunProcess::start(&setup);
    let ok_report = |backend: &str| json!({"backend": backend, "ok": true, "outcome": "Ok", "ops": [{"op": "put", "ok": true, "ms": 2.0, "outcome": "Ok"}]});
    let post = |vantage: &str, token: Option<&str>| {
        let body = json!({"vantage": vantage, "reports": [ok_report("primary"), ok_report("secondary")]}).to_string();
        c.request("POST", "/v1/evidence", token, &body)
    };
    // Refusals are 401/403 and audited.
    assert_eq!(post("eu", None).0, 401);
    assert_eq!(post("eu", Some("wrong")).0, 401);
    assert_eq!(post("eu", Some("viewer-token")).0, 403);
    assert_eq!(post("eu", Some("agent-token")).0, 200);
    // An agent token speaks for its own vantage only.
    assert_eq!(post("us", Some("agent-token")).0, 403);
    c.wait_for("healthy", Duration::from_secs(15), |c| health(&c.json("/v1/status"), "primary") == "healthy");
    // Two agents keep saying the primary is fine while the local vantage sees it hang.
    a.pause().unwrap();
    let start = Instant::now();
    let mut decided = Value::Null;
    while start.elapsed() < Duration::from_secs(20) {
        post("eu", Some("agent-token"));
        post("us", Some("us-agent-token"));
        let inc = c.json("/v1/incidents");
        if let Some(d) = inc.as_array().and_then(|l| l.first()).map(|i| i["decision"].clone())
            && !d.is_null()
        {
            decided = d;
            break;
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    assert_eq!(decided["action"], "await_approval", "{decided}\n{}", c.log());
    assert_eq!(c.json("/v1/status")["active"], "primary");
    // The agents go silent: they age out to unknown and never count as down.
    std::thread::sleep(Duration::from_secs(4));
    let s = c.json("/v1/status");
    let primary = s["backends"].as_array().unwrap().iter().find(|b| b["name"] == "primary").unwrap().clone();
    assert_eq!(primary["vantages"]["eu"]["health"], "unknown", "{primary}");
    assert_eq!(s["active"], "primary", "a local-only view never meets a quorum of 2: {s}");
    a.resume().unwrap();
    drop(c);
    let audit = setup.run(&["audit", "verify"]);
    assert_eq!(audit.code, 0, "{audit:?}");
}

#[test]
fn a_restart_keeps_incidents_and_the_active_backend_and_tampering_is_detected() {
    let (a, _b, setup) = two_garages("");
    let mut c = RunProcess::start(&setup);
    c.wait_for("healthy", Duration::from_secs(15), |c| health(&c.json("/v1/status"), "primary") == "healthy");
    a.pause().unwrap();
    c.wait_for("failover", Duration::from_secs(30), |c| c.json("/v1/status")["active"] == "secondary");
    let before = c.json("/v1/incidents");
    c.kill();
    a.resume().unwrap();
    let c = RunProcess::start(&setup);
    assert_eq!(c.json("/v1/status")["active"], "secondary");
    assert_eq!(c.json("/v1/incidents")[0]["id"], before[0]["id"]);
    drop(c);

    let list = setup.run(&["incidents", "list"]);
    assert_eq!(list.code, 0, "{list:?}");
    assert!(list.stdout.contains(before[0]["id"].as_str().unwrap()) && list.stdout.contains("failover"), "{list:?}");
    let show = setup.run(&["incidents", "show", before[0]["id"].as_str().unwrap()]);
    assert!(show.stdout.contains("decision") && show.stdout.contains("state.switch"), "{show:?}");
    assert_eq!(setup.run(&["incidents", "show", "inc-nope"]).code, 2);

    let ok = setup.run(&["audit", "verify"]);
    assert_eq!(ok.code, 0, "{ok:?}");
    let db = rusqlite::Connection::open(setup.dir.path().join("cutover.db")).unwrap();
    db.execute("UPDATE audit SET detail = '{\"forged\":true}' WHERE seq = 2", []).unwrap();
    let bad = setup.run(&["audit", "verify"]);
    assert_eq!(bad.code, 1, "{bad:?}");
    assert!(bad.stdout.contains("audit entry 2"), "{bad:?}");
}

#[test]
fn a_policy_that_does_not_compile_stops_run_at_start_naming_the_file() {
    let (_a, _b, setup) = two_garages("[policy]\npath = \"broken.rego\"\n");
    std::fs::write(setup.dir.path().join("broken.rego"), "package cutover\n\ndecision := {\n").unwrap();
    let run = setup.run(&["run"]);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(run.stderr.contains("broken.rego"), "{run:?}");
}

/// The hex SHA-256 of a token, computed by coreutils, independently of cutover.

#[test]
fn a_real_agent_reports_its_vantage_and_a_killed_agent_ages_out() {
    let tokens = format!(
        "[[api.tokens]]\nname = \"eu-agent\"\nrole = \"agent\"\nvantage = \"eu-west\"\nsha256 = \"{}\"\n",
        sha256_hex("agent-token")
    );
    let (_a, _b, setup) =
        two_garages(&format!("[verify]\nagent_timeout = \"3s\"\n\n[api]\nlisten = \"127.0.0.1:1\"\n{tokens}"));
    let c = RunProcess::start(&setup);
    let mut agent = Command::new(env!("CARGO_BIN_EXE_cutover"));
    agent
        .args([
            "--config",
            setup.config.to_str().unwrap(),
            "agent",
            "--vantage",
            "eu-west",
            "--token-env",
            "AGENT_TOKEN",
        ])
        .arg("--controller")
        .arg(format!("http://127.0.0.1:{}", c.port()))
        .env("AGENT_TOKEN", "agent-token")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    for (k, v) in &setup.env {
        agent.env(k, v);
    }
    let mut agent = agent.spawn().unwrap();
    let vantage = |c: &RunProcess| {
        let s = c.json("/v1/status");
        s["backends"][0]["vantages"]["eu-west"]["health"].as_str().unwrap_or("").to_string()
    };
    c.wait_for("the agent's vantage", Duration::from_secs(20), |c| vantage(c) == "healthy");
    let _ = agent.kill();
    let _ = agent.wait();
    c.wait_for("the silent agent to age out", Duration::from_secs(20), |c| vantage(c) == "unknown");
    assert_eq!(c.json("/v1/status")["active"], "primary");
}

#[test]
fn an_agent_with_a_bad_controller_url_or_token_is_a_usage_error() {
    let (_a, _b, setup) = two_garages("");
    let run = setup.run(&["agent", "--controller", "localhost:1", "--vantage", "x", "--token-env", "NOPE_TOKEN_VAR"]);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(run.stderr.contains("NOPE_TOKEN_VAR"), "{run:?}");
}

/// Regression (found by `cutover bench ha`): a process, or an HA leader,
/// that died between recording a failover decision and the run's first
/// journal write left the incident `failing_over` with no run for good. A
/// starting controller (or a new leader) now starts such a decision's run.
#[test]
fn a_failover_decided_but_never_started_runs_after_a_restart() {
    use cutover_core::domain::IncidentState;
    use cutover_store::prelude::*;
    use cutover_store::{Fence, SqliteStore};
    let setup = Setup::new(
        &[Backend::dummy("primary", "primary"), Backend::dummy("secondary", "secondary")],
        "[runbooks]\nfailover = \"failover.toml\"\n",
    );
    let runbook = "[[steps]]\nname = \"switch\"\nuses = \"state.switch\"\nwith = { to = \"{{ target }}\" }\n";
    std::fs::write(setup.dir.path().join("failover.toml"), runbook).unwrap();
    // What the dead process left: the decision recorded, no run.
    let state = setup.dir.path().join("cutover.db");
    let id = {
        let store = SqliteStore::open(&state).unwrap();
        let (fence, now) = (Fence::local(), std::time::SystemTime::now());
        let id = store.open_incident(&fence, "primary", now).unwrap();
        let decision = json!({"action": "failover", "target": "secondary", "reason": "primary down"});
        store.add_event(&fence, &id, now, "decision", &decision).unwrap();
        store.set_incident_state(&fence, &id, IncidentState::FailingOver, None).unwrap();
        id
    };
    let c = RunProcess::start(&setup);
    c.wait_for("the decided failover ran", Duration::from_secs(20), |c| {
        c.json(&format!("/v1/incidents/{id}"))["state"] == "failed_over"
    });
    assert_eq!(c.json("/v1/status")["active"], "secondary");
    let runs = c.json(&format!("/v1/incidents/{id}"))["runs"].clone();
    assert_eq!((runs.as_array().map(Vec::len), runs[0]["state"].as_str()), (Some(1), Some("completed")), "{runs}");
    assert!(c.log().contains("never started"), "{}", c.log());
}
