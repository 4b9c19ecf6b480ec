//! Rolling back onto a backend that is down is never done silently (issue
//! 18, point 1): the real `cutover run`, two real Garage backends, the
//! primary SIGSTOPped, a failover runbook whose last step fails. The
//! rollback is held until a human approves (rolled back onto the primary)
//! or rejects it (the failover stays, and falls back later as usual).

mod common;

use std::time::Duration;

use common::run_process::RunProcess;
use common::{Backend, Setup, sha256_hex, start_garage};
use serde_json::Value;

/// Switch the gateway, then call a hook on a closed port: the hook fails,
/// and its `on_failure = "rollback"` would switch back onto the primary.
fn failing_runbook(closed: u16) -> String {
    format!(
        r#"
[[steps]]
name = "switch the gateway"
uses = "state.switch"
with = {{ to = "{{{{ target }}}}" }}
undo = {{ uses = "state.switch", with = {{ to = "{{{{ source }}}}" }} }}

[[steps]]
name = "tell argo"
uses = "http"
with = {{ method = "POST", url = "http://127.0.0.1:{closed}/hook", expect_status = 200 }}
timeout = "5s"
on_failure = "rollback"
"#
    )
}

/// The fallback without a gateway to resync: switch back, validate.
const FALLBACK: &str = r#"
[[steps]]
name = "switch back"
uses = "state.switch"
with = { to = "{{ target }}" }
[[steps]]
name = "smoke test"
uses = "validate"
with = { backend = "{{ target }}" }
"#;

fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

fn health(status: &Value, backend: &str) -> String {
    status["backends"].as_array().unwrap().iter().find(|b| b["name"] == backend).unwrap()["health"]
        .as_str()
        .unwrap()
        .to_string()
}

fn event(detail: &Value, kind: &str) -> Option<Value> {
    detail["timeline"].as_array().unwrap().iter().find(|e| e["kind"] == kind).map(|e| e["detail"].clone())
}

/// Two Garages, the primary paused until the failover's rollback is held:
/// (primary, secondary, setup, controller, incident id).
fn held_rollback() -> (cutover_lab::garage::Garage, cutover_lab::garage::Garage, Setup, RunProcess, String) {
    let a = start_garage();
    let b = start_garage();
    let extra = format!(
        "[api]\nlisten = \"127.0.0.1:0\"\n[[api.tokens]]\nname = \"oncall\"\nrole = \"approver\"\nsha256 = \"{}\"\n\
         [runbooks]\nfailover = \"failover.toml\"\nfallback = \"fallback.toml\"\n\
         [fallback]\nstable_for = \"2s\"\nmin_dwell = \"1s\"\n",
        sha256_hex("approver-token")
    );
    let setup =
        Setup::new(&[Backend::garage("primary", "primary", &a), Backend::garage("secondary", "secondary", &b)], &extra);
    std::fs::write(setup.dir.path().join("failover.toml"), failing_runbook(closed_port())).unwrap();
    std::fs::write(setup.dir.path().join("fallback.toml"), FALLBACK).unwrap();
    let c = RunProcess::start(&setup);
    c.wait_for("both healthy", Duration::from_secs(20), |c| {
        let s = c.json("/v1/status");
        health(&s, "primary") == "healthy" && health(&s, "secondary") == "healthy"
    });
    a.pause().unwrap();
    c.wait_for("the rollback held", Duration::from_secs(60), |c| {
        let list = c.json("/v1/incidents");
        list[0]["state"] == "awaiting_approval"
            && list[0]["id"]
                .as_str()
                .is_some_and(|id| event(&c.json(&format!("/v1/incidents/{id}")), "rollback.held").is_some())
    });
    let id = c.json("/v1/incidents")[0]["id"].as_str().unwrap().to_string();
    (a, b, setup, c, id)
}

/// What the user saw: a failing `http` step after the failover switched
/// the gateway back onto the primary that was down, silently.
#[test]
fn failed_step_after_failover_does_not_switch_back_onto_down_primary() {
    let (a, _b, _setup, c, id) = held_rollback();
    // Held for a second: nothing moves while a human decides.
    std::thread::sleep(Duration::from_secs(1));
    let status = c.json("/v1/status");
    assert_eq!(status["active"], "secondary", "{status}");
    let detail = c.json(&format!("/v1/incidents/{id}"));
    assert_eq!(detail["state"], "awaiting_approval", "{detail}");
    assert_eq!(detail["runs"][0]["state"], "rollback_held", "{detail}");
    let held = event(&detail, "rollback.held").unwrap();
    assert_eq!((held["onto"].as_str(), held["failed_step"].as_str()), (Some("primary"), Some("tell argo")), "{held}");
    assert_eq!(held["onto_health"], "down", "{held}");
    assert!(held["error"].as_str().unwrap().contains("127.0.0.1"), "{held}");
    assert_eq!(
        held["reason"],
        "not rolling back onto primary: it is down; approve to roll back anyway, reject to stay on secondary"
    );
    let undos = detail["timeline"].as_array().unwrap().iter().filter(|e| e["detail"]["phase"] == "undo").count();
    assert_eq!(undos, 0, "no step is undone while the rollback is held: {detail}");
    assert!(c.log().contains("ROLLBACK HELD"), "{}", c.log());

    let r = c.cli(&["approve", &id, "--comment", "roll back anyway"], &[("CUTOVER_TOKEN", "approver-token")]);
    assert_eq!(r.code, 0, "{r:?}");
    c.wait_for("rolled back", Duration::from_secs(30), |c| {
        c.json(&format!("/v1/incidents/{id}"))["state"] == "rolled_back"
    });
    assert_eq!(c.json("/v1/status")["active"], "primary");
    let detail = c.json(&format!("/v1/incidents/{id}"));
    let approved = event(&detail, "rollback.approved").expect("rollback.approved");
    assert_eq!((approved["by"].as_str(), approved["onto"].as_str()), (Some("oncall"), Some("primary")));
    assert!(event(&detail, "runbook.rolled_back").is_some(), "{detail}");
    assert_eq!(detail["runs"][0]["state"], "rolled_back", "{detail}");
    let undo = detail["timeline"].as_array().unwrap().iter().find(|e| e["detail"]["phase"] == "undo").unwrap().clone();
    assert_eq!(undo["detail"]["result"]["to"], "primary", "{undo}");
    let audit = c.cli(&["audit", "verify"], &[]);
    assert_eq!(audit.code, 0, "{audit:?}");
    a.resume().unwrap();
}

#[test]
fn failed_step_after_failover_rejected_rollback_stays_failed_over_and_falls_back_later() {
    let (a, _b, _setup, c, id) = held_rollback();
    let r = c.cli(&["reject", &id, "--comment", "stay on secondary"], &[("CUTOVER_TOKEN", "approver-token")]);
    assert_eq!(r.code, 0, "{r:?}");
    c.wait_for("failed over", Duration::from_secs(10), |c| {
        c.json(&format!("/v1/incidents/{id}"))["state"] == "failed_over"
    });
    assert_eq!(c.json("/v1/status")["active"], "secondary");
    let detail = c.json(&format!("/v1/incidents/{id}"));
    let rejected = event(&detail, "rollback.rejected").expect("rollback.rejected");
    assert_eq!((rejected["by"].as_str(), rejected["failed_step"].as_str()), (Some("oncall"), Some("tell argo")));
    assert_eq!(detail["runs"][0]["state"], "rollback_rejected", "{detail}");
    // Once the primary is back and stable, the fallback runs as usual.
    a.resume().unwrap();
    c.wait_for("fallen back", Duration::from_secs(60), |c| {
        c.json(&format!("/v1/incidents/{id}"))["state"] == "resolved"
    });
    assert_eq!(c.json("/v1/status")["active"], "primary");
}
