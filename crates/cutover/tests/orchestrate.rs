//! Runbooks end to end: the real `cutover run` process, two real Garage
//! backends, outages by SIGSTOP, approvals and forced failovers through the
//! API and the CLI, rollback on a failed validation, fallback with resync.

mod common;

use std::time::Duration;

use common::run_process::RunProcess;
use common::{Backend, Setup, health, sha256_hex, start_garage, two_garages};
use serde_json::{Value, json};

fn tokens() -> String {
    format!(
        "[[api.tokens]]\nname = \"oncall\"\nrole = \"approver\"\nsha256 = \"{}\"\n\
         [[api.tokens]]\nname = \"watcher\"\nrole = \"viewer\"\nsha256 = \"{}\"\n\
         [[api.tokens]]\nname = \"boss\"\nrole = \"admin\"\nsha256 = \"{}\"\n",
        sha256_hex("approver-token"),
        sha256_hex("viewer-token"),
        sha256_hex("admin-token"),
    )
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

#[test]
fn approval_through_the_api_and_the_cli_with_refusals_for_wrong_tokens() {
    // No failover may happen without a human: the rate limit is zero.
    let extra = format!("[api]\nlisten = \"127.0.0.1:0\"\n{}\n[policy]\nmax_failovers_per_hour = 0\n", tokens());
    let (a, _b, setup) = two_garages(&extra);
    let c = RunProcess::start(&setup);
    both_healthy(&c);
    a.pause().unwrap();
    c.wait_for("awaiting approval", Duration::from_secs(30), |c| {
        c.json("/v1/incidents")[0]["state"] == "awaiting_approval"
    });
    let id = c.json("/v1/incidents")[0]["id"].as_str().unwrap().to_string();
    let path = format!("/v1/incidents/{id}/approve");
    assert_eq!(c.post(&path, None, &json!({"comment": "x"})).0, 401);
    assert_eq!(c.post(&path, Some("wrong-token"), &json!({"comment": "x"})).0, 401);
    assert_eq!(c.post(&path, Some("viewer-token"), &json!({"comment": "x"})).0, 403);
    assert_eq!(c.json("/v1/status")["active"], "primary");
    // The CLI with a viewer token is refused too (exit 1, the API's answer in the message).
    let r = c.cli(
        &["approve", &id, "--comment", "go", "--api", &format!("http://127.0.0.1:{}", c.port())],
        &[("CUTOVER_TOKEN", "viewer-token")],
    );
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains("403"), "{r:?}");
    let r = c.cli(&["approve", &id, "--comment", "primary is gone, go"], &[("CUTOVER_TOKEN", "approver-token")]);
    assert_eq!(r.code, 0, "{r:?}");
    c.wait_for("failed over", Duration::from_secs(30), |c| c.json("/v1/incidents")[0]["state"] == "failed_over");
    assert_eq!(c.json("/v1/status")["active"], "secondary");
    let detail = c.json(&format!("/v1/incidents/{id}"));
    let approval = detail["timeline"].as_array().unwrap().iter().find(|e| e["kind"] == "approval").unwrap().clone();
    assert_eq!(approval["detail"]["by"], "oncall", "{detail}");
    assert_eq!(approval["detail"]["comment"], "primary is gone, go");
    assert_eq!(detail["runs"][0]["actor"], "oncall", "{detail}");
    // The refusals and the approval are in the audit log, with the actor.
    let audit = c.cli(&["audit", "verify"], &[]);
    assert_eq!(audit.code, 0, "{audit:?}");
    let db = rusqlite::Connection::open(setup.dir.path().join("cutover.db")).unwrap();
    let actors: Vec<(String, String)> = db
        .prepare("SELECT actor, action FROM audit")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert!(actors.contains(&("watcher".into(), "api.denied".into())), "{actors:?}");
    assert!(actors.contains(&("anonymous".into(), "api.denied".into())), "{actors:?}");
    assert!(actors.contains(&("oncall".into(), "approve".into())), "{actors:?}");
    assert!(actors.iter().any(|(a, x)| a == "oncall" && x == "step"), "{actors:?}");
    a.resume().unwrap();
}

#[test]
fn a_rejection_holds_and_an_admin_can_force_a_failover() {
    let extra = format!("[api]\nlisten = \"127.0.0.1:0\"\n{}\n[policy]\nmax_failovers_per_hour = 0\n", tokens());
    let (a, _b, setup) = two_garages(&extra);
    let c = RunProcess::start(&setup);
    both_healthy(&c);
    a.pause().unwrap();
    c.wait_for("awaiting approval", Duration::from_secs(30), |c| {
        c.json("/v1/incidents")[0]["state"] == "awaiting_approval"
    });
    let id = c.json("/v1/incidents")[0]["id"].as_str().unwrap().to_string();
    let (status, body) =
        c.post(&format!("/v1/incidents/{id}/reject"), Some("approver-token"), &json!({"comment": "wait"}));
    assert_eq!(status, 200, "{body}");
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(c.json("/v1/incidents")[0]["state"], "rejected");
    assert_eq!(c.json("/v1/status")["active"], "primary");
    // A second verdict on a rejected incident is a conflict.
    assert_eq!(c.post(&format!("/v1/incidents/{id}/approve"), Some("approver-token"), &json!({})).0, 409);
    // Forcing needs the admin role.
    let force = json!({"target": "secondary", "reason": "vendor confirmed the outage"});
    assert_eq!(c.post("/v1/failover", Some("approver-token"), &force).0, 403);
    assert_eq!(c.post("/v1/failover", Some("admin-token"), &json!({"target": "nowhere", "reason": "x"})).0, 404);
    let r = c.cli(
        &["failover", "--target", "secondary", "--reason", "vendor confirmed the outage"],
        &[("CUTOVER_TOKEN", "admin-token")],
    );
    assert_eq!(r.code, 0, "{r:?}");
    c.wait_for("failed over", Duration::from_secs(30), |c| c.json("/v1/incidents")[0]["state"] == "failed_over");
    assert_eq!(c.json("/v1/status")["active"], "secondary");
    let detail = c.json(&format!("/v1/incidents/{id}"));
    assert_eq!(detail["decision"]["reason"], "forced by boss: vendor confirmed the outage", "{detail}");
    a.resume().unwrap();
}

/// Gives the secondary wrong credentials (its validation must fail), starts
/// the controller, forces a failover to it and waits for the rollback:
/// (controller, incident id).
fn force_failover_until_rolled_back(setup: &mut Setup) -> (RunProcess, String) {
    for (k, v) in setup.env.iter_mut() {
        if k == "SECONDARY_SECRET" {
            *v = "0".repeat(64);
        }
    }
    let c = RunProcess::start(setup);
    c.wait_for("primary healthy", Duration::from_secs(20), |c| health(&c.json("/v1/status"), "primary") == "healthy");
    let (status, body) =
        c.post("/v1/failover", Some("admin-token"), &json!({"target": "secondary", "reason": "drill"}));
    assert_eq!(status, 202, "{body}");
    let id = body["incident"].as_str().unwrap().to_string();
    c.wait_for("rolled back", Duration::from_secs(60), |c| {
        c.json(&format!("/v1/incidents/{id}"))["runs"][0]["state"] == "rolled_back"
    });
    (c, id)
}

#[test]
fn a_failed_validation_rolls_back_and_the_primary_stays_active() {
    let extra = format!("[api]\nlisten = \"127.0.0.1:0\"\n{}\n", tokens());
    let (_a, _b, mut setup) = two_garages(&extra);
    let (c, id) = force_failover_until_rolled_back(&mut setup);
    assert_eq!(c.json("/v1/status")["active"], "primary");
    let detail = c.json(&format!("/v1/incidents/{id}"));
    let k = kinds(&detail);
    assert_eq!(k.iter().filter(|k| *k == "step").count(), 3, "switch, validate, undo of the switch: {detail}");
    assert!(k.contains(&"runbook.rolled_back".to_string()), "{detail}");
    let steps: Vec<&Value> = detail["timeline"].as_array().unwrap().iter().filter(|e| e["kind"] == "step").collect();
    assert_eq!(steps[1]["detail"]["uses"], "validate");
    assert_eq!(steps[1]["detail"]["ok"], false);
    let err = steps[1]["detail"]["result"]["error"].as_str().unwrap();
    assert!(
        err.contains("SignatureDoesNotMatch") || err.contains("AccessDenied") || err.contains("Forbidden"),
        "{err}"
    );
    assert_eq!(
        (steps[2]["detail"]["phase"].as_str(), steps[2]["detail"]["result"]["to"].as_str()),
        (Some("undo"), Some("primary"))
    );
    assert_eq!(detail["runs"][0]["state"], "rolled_back");
    assert!(!c.log().contains(&"0".repeat(64)), "the secret leaked into the log");
}

#[test]
fn fallback_after_the_primary_is_stable_copies_back_the_outage_writes_through_the_gateway() {
    let a = start_garage();
    let b = start_garage();
    let gw_port = cutover_lab::free_port();
    let extra = format!(
        "[api]\nlisten = \"127.0.0.1:0\"\n[fallback]\nstable_for = \"2s\"\nmin_dwell = \"1s\"\n\
         [gateway]\nlisten = \"127.0.0.1:{gw_port}\"\n[[gateway.clients]]\naccess_key_id = \"APPKEY\"\n\
         secret_access_key_env = \"GATEWAY_APP_SECRET\"\n[[gateway.buckets]]\nname = \"app\"\nmode = \"active-passive\"\n"
    );
    let primary = Backend::garage("primary", "primary", &a);
    let mut setup = Setup::new(&[primary.clone(), Backend::garage("secondary", "secondary", &b)], &extra);
    setup.env.push(("GATEWAY_APP_SECRET".into(), "app-secret-0123456789".into()));
    let c = RunProcess::start(&setup);
    both_healthy(&c);
    let app = Backend::gateway(gw_port, "APPKEY", "app-secret-0123456789").client();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(app.put_object("before", bytes::Bytes::from_static(b"written before the outage"), &[])).unwrap();
    a.pause().unwrap();
    c.wait_for("failed over", Duration::from_secs(30), |c| c.json("/v1/incidents")[0]["state"] == "failed_over");
    for i in 0..20 {
        let body = format!("outage write {i}");
        rt.block_on(app.put_object(&format!("during/{i}"), bytes::Bytes::from(body), &[])).unwrap();
    }
    a.resume().unwrap();
    c.wait_for("fallen back", Duration::from_secs(60), |c| c.json("/v1/incidents")[0]["state"] == "resolved");
    assert_eq!(c.json("/v1/status")["active"], "primary");
    let id = c.json("/v1/incidents")[0]["id"].as_str().unwrap().to_string();
    let detail = c.json(&format!("/v1/incidents/{id}"));
    let k = kinds(&detail);
    assert!(k.contains(&"fallback.decision".to_string()), "{detail}");
    let resync = detail["timeline"].as_array().unwrap().iter().find(|e| e["detail"]["uses"] == "sync.resync").unwrap();
    assert_eq!(resync["detail"]["result"]["copied"], 20, "{resync}");
    assert_eq!(detail["runs"][1]["kind"], "fallback");
    assert_eq!(detail["runs"][1]["state"], "completed");
    // Every outage write is on the primary, read directly.
    let direct = primary.client();
    for i in 0..20 {
        let got = rt.block_on(direct.get_object(&format!("during/{i}"), &[])).unwrap();
        assert_eq!(got.body, format!("outage write {i}").as_bytes());
    }
    let metrics = c.get("/metrics").1;
    assert!(metrics.contains("cutover_fallbacks_total 1"), "{metrics}");
    assert!(metrics.contains("cutover_detection_to_validated_switch_seconds_count 1"), "{metrics}");
    // The client impact: the gateway's answers during the incident (the 20
    // outage writes, all acknowledged), from its answers per second in the store.
    let report = setup.run(&["incidents", "report", &id]);
    assert_eq!(report.code, 0, "{report:?}");
    let line = report.stdout.lines().find(|l| l.contains("client impact")).unwrap_or_default().to_string();
    let impact = line.split_once("client requests failed").map(|(before, _)| before).unwrap_or_default();
    let figures: Vec<u64> = impact.split(|ch: char| !ch.is_ascii_digit()).filter_map(|n| n.parse().ok()).collect();
    assert!(matches!(figures[..], [0, answered] if answered >= 20), "failed, answered: {figures:?} in {line:?}");
}

fn git(dir: &std::path::Path, args: &[&str]) -> String {
    let out = std::process::Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["-c", "user.name=t", "-c", "user.email=t@t"])
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A bare repository with `infra/vars.json` = `{"active_provider": "primary"}` on main.
fn infra_repo(dir: &std::path::Path) -> std::path::PathBuf {
    let bare = dir.join("infra.git");
    let seed = dir.join("seed");
    std::fs::create_dir_all(&seed).unwrap();
    git(dir, &["init", "-q", "--bare", "-b", "main", bare.to_str().unwrap()]);
    git(&seed, &["init", "-q", "-b", "main"]);
    std::fs::create_dir_all(seed.join("infra")).unwrap();
    std::fs::write(seed.join("infra/vars.json"), "{\n  \"active_provider\": \"primary\"\n}\n").unwrap();
    git(&seed, &["add", "."]);
    git(&seed, &["commit", "-q", "-m", "initial"]);
    git(&seed, &["push", "-q", bare.to_str().unwrap(), "main"]);
    bare
}

fn full_runbook(bare: &std::path::Path, receiver: u16) -> String {
    let repo = bare.display();
    format!(
        r#"
[[steps]]
name = "switch the gateway"
uses = "state.switch"
with = {{ to = "{{{{ target }}}}" }}
timeout = "10s"
undo = {{ uses = "state.switch", with = {{ to = "{{{{ source }}}}" }} }}

[[steps]]
name = "terraform vars"
uses = "git.set"
with = {{ repo = "{repo}", file = "infra/vars.json", key = "active_provider", value = "{{{{ target }}}}", branch = "main", message = "cutover: fail over to {{{{ target }}}} ({{{{ incident.id }}}})", push = true }}
undo = {{ uses = "git.set", with = {{ repo = "{repo}", file = "infra/vars.json", key = "active_provider", value = "{{{{ source }}}}", branch = "main", message = "cutover: undo ({{{{ incident.id }}}})", push = true }} }}

[[steps]]
name = "tell argo"
uses = "http"
with = {{ method = "POST", url = "http://127.0.0.1:{receiver}/hook", body = '{{"incident": "{{{{ incident.id }}}}", "target": "{{{{ target }}}}"}}', expect_status = 200 }}

[[steps]]
name = "tell the team"
uses = "notify"
with = {{ url = "http://127.0.0.1:{receiver}/slack" }}

[[steps]]
name = "smoke test"
uses = "validate"
with = {{ backend = "{{{{ target }}}}" }}
"#
    )
}

#[test]
fn a_paused_primary_runs_the_full_runbook_git_webhook_notify_validate() {
    let receiver = common::receiver::Receiver::start();
    let setup0 = tempfile::tempdir().unwrap();
    let bare = infra_repo(setup0.path());
    let extra = "[api]\nlisten = \"127.0.0.1:0\"\n[runbooks]\nfailover = \"failover.toml\"\n";
    let (a, _b, setup) = two_garages(extra);
    std::fs::write(setup.dir.path().join("failover.toml"), full_runbook(&bare, receiver.port)).unwrap();
    let c = RunProcess::start(&setup);
    both_healthy(&c);
    a.pause().unwrap();
    c.wait_for("failed over", Duration::from_secs(60), |c| c.json("/v1/incidents")[0]["state"] == "failed_over");
    a.resume().unwrap();
    let id = c.json("/v1/incidents")[0]["id"].as_str().unwrap().to_string();
    assert_eq!(c.json("/v1/status")["active"], "secondary");
    // Exactly one new commit, naming the incident, with the secondary active.
    assert_eq!(git(&bare, &["rev-list", "--count", "main"]), "2");
    assert!(git(&bare, &["log", "-1", "--format=%s", "main"]).contains(&id));
    let vars: Value = serde_json::from_str(&git(&bare, &["show", "main:infra/vars.json"])).unwrap();
    assert_eq!(vars["active_provider"], "secondary");
    // The webhook and the chat message carry the incident.
    let got = receiver.received();
    let hook = got.iter().find(|r| r.path == "/hook").expect("the webhook was called");
    let body: Value = serde_json::from_str(&hook.body).unwrap();
    assert_eq!((body["incident"].as_str(), body["target"].as_str()), (Some(id.as_str()), Some("secondary")));
    let chat = got.iter().find(|r| r.path == "/slack").expect("the notification was sent");
    assert!(chat.body.contains(&id), "{}", chat.body);
    let detail = c.json(&format!("/v1/incidents/{id}"));
    let steps: Vec<&str> = detail["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "step")
        .map(|e| e["detail"]["step"].as_str().unwrap())
        .collect();
    assert_eq!(steps, ["switch the gateway", "terraform vars", "tell argo", "tell the team", "smoke test"], "{detail}");
}

#[test]
fn a_failed_validation_undoes_the_git_change_and_the_switch() {
    let receiver = common::receiver::Receiver::start();
    let repo_dir = tempfile::tempdir().unwrap();
    let bare = infra_repo(repo_dir.path());
    let extra = format!("[api]\nlisten = \"127.0.0.1:0\"\n{}[runbooks]\nfailover = \"failover.toml\"\n", tokens());
    let (_a, _b, mut setup) = two_garages(&extra);
    std::fs::write(setup.dir.path().join("failover.toml"), full_runbook(&bare, receiver.port)).unwrap();
    let (c, id) = force_failover_until_rolled_back(&mut setup);
    assert_eq!(c.json("/v1/status")["active"], "primary");
    assert_eq!(git(&bare, &["rev-list", "--count", "main"]), "3", "the change and its undo");
    assert!(git(&bare, &["log", "-1", "--format=%s", "main"]).contains(&format!("undo ({id})")));
    let vars: Value = serde_json::from_str(&git(&bare, &["show", "main:infra/vars.json"])).unwrap();
    assert_eq!(vars["active_provider"], "primary");
    let detail = c.json(&format!("/v1/incidents/{id}"));
    let undone: Vec<&str> = detail["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "step" && e["detail"]["phase"] == "undo")
        .map(|e| e["detail"]["step"].as_str().unwrap())
        .collect();
    assert_eq!(undone, ["terraform vars", "switch the gateway"], "in reverse order: {detail}");
    assert!(
        detail["runs"][0]["detail"]["error"].as_str().unwrap().contains("validation of secondary failed"),
        "{detail}"
    );
}

#[test]
fn kill_9_during_a_slow_step_resumes_without_running_completed_steps_again() {
    let extra = format!("[api]\nlisten = \"127.0.0.1:0\"\n{}[runbooks]\nfailover = \"failover.toml\"\n", tokens());
    let (_a, _b, setup) = two_garages(&extra);
    let d = setup.dir.path().display();
    let runbook = format!(
        r#"
[[steps]]
name = "count"
uses = "command"
with = {{ program = "sh", args = ["-c", "echo once >> {d}/first"] }}

[[steps]]
name = "slow"
uses = "command"
with = {{ program = "sh", args = ["-c", "echo started >> {d}/slow; sleep 3; echo done >> {d}/slow"] }}
timeout = "30s"

[[steps]]
name = "switch"
uses = "state.switch"
with = {{ to = "{{{{ target }}}}" }}
"#
    );
    std::fs::write(setup.dir.path().join("failover.toml"), runbook).unwrap();
    let mut c = RunProcess::start(&setup);
    c.wait_for("primary healthy", Duration::from_secs(20), |c| health(&c.json("/v1/status"), "primary") == "healthy");
    let (status, body) =
        c.post("/v1/failover", Some("admin-token"), &json!({"target": "secondary", "reason": "drill"}));
    assert_eq!(status, 202, "{body}");
    let id = body["incident"].as_str().unwrap().to_string();
    let slow = setup.dir.path().join("slow");
    c.wait_for("the slow step", Duration::from_secs(30), |_| {
        std::fs::read_to_string(&slow).is_ok_and(|s| s.contains("started"))
    });
    c.kill(); // SIGKILL: no chance to clean up
    assert_eq!(c.json("/v1/status"), Value::Null, "the controller is gone");
    let c = RunProcess::start(&setup);
    c.wait_for("resumed and finished", Duration::from_secs(60), |c| {
        c.json(&format!("/v1/incidents/{id}"))["state"] == "failed_over"
    });
    assert_eq!(c.json("/v1/status")["active"], "secondary");
    assert_eq!(
        std::fs::read_to_string(setup.dir.path().join("first")).unwrap(),
        "once\n",
        "the completed step ran once"
    );
    assert_eq!(std::fs::read_to_string(&slow).unwrap().matches("started").count(), 2, "the interrupted step ran again");
    assert!(c.log().contains("\"count\" already done before the restart; not run again"), "{}", c.log());
    let detail = c.json(&format!("/v1/incidents/{id}"));
    assert_eq!(detail["runs"].as_array().unwrap().len(), 1, "one run, resumed: {detail}");
    assert_eq!(detail["runs"][0]["state"], "completed");
}

/// Found by the e2e SIGKILL test: Garage acknowledged a PUT, was killed, and
/// came back without the object; the fallback must restore it from the
/// dual-write secondary (and never overwrite what the primary has).
#[test]
fn regression_an_acknowledged_write_the_primary_lost_in_its_crash_is_restored_at_fallback() {
    let gw_port = cutover_lab::free_port();
    let extra = format!(
        "[api]\nlisten = \"127.0.0.1:0\"\n[fallback]\nstable_for = \"2s\"\nmin_dwell = \"1s\"\n\
         [gateway]\nlisten = \"127.0.0.1:{gw_port}\"\n[[gateway.clients]]\naccess_key_id = \"APPKEY\"\n\
         secret_access_key_env = \"GATEWAY_APP_SECRET\"\n[[gateway.buckets]]\nname = \"app\"\nmode = \"dual-write\"\nack = \"active-journal\"\n"
    );
    let (a, _b, mut setup) = two_garages(&extra);
    setup.env.push(("GATEWAY_APP_SECRET".into(), "app-secret-0123456789".into()));
    let c = RunProcess::start(&setup);
    both_healthy(&c);
    let app = Backend::gateway(gw_port, "APPKEY", "app-secret-0123456789").client();
    let direct = Backend::garage("primary", "primary", &a).client();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(app.put_object(
        "acked/lost",
        bytes::Bytes::from_static(b"acknowledged, then lost by the primary"),
        &[],
    ))
    .unwrap();
    rt.block_on(app.put_object("acked/kept", bytes::Bytes::from_static(b"v1"), &[])).unwrap();
    // The primary loses one acknowledged write, and holds a newer version of another.
    rt.block_on(direct.delete_object("acked/lost")).unwrap();
    rt.block_on(direct.put_object("acked/kept", bytes::Bytes::from_static(b"v2 on the primary only"), &[])).unwrap();
    a.pause().unwrap();
    c.wait_for("failed over", Duration::from_secs(30), |c| c.json("/v1/incidents")[0]["state"] == "failed_over");
    a.resume().unwrap();
    c.wait_for("fallen back", Duration::from_secs(60), |c| c.json("/v1/incidents")[0]["state"] == "resolved");
    let got = rt.block_on(direct.get_object("acked/lost", &[])).expect("restored on the primary");
    assert_eq!(got.body, &b"acknowledged, then lost by the primary"[..]);
    let kept = rt.block_on(direct.get_object("acked/kept", &[])).unwrap();
    assert_eq!(kept.body, &b"v2 on the primary only"[..], "reconciliation never overwrites");
    let id = c.json("/v1/incidents")[0]["id"].as_str().unwrap().to_string();
    let detail = c.json(&format!("/v1/incidents/{id}"));
    let resync = detail["timeline"].as_array().unwrap().iter().find(|e| e["detail"]["uses"] == "sync.resync").unwrap();
    assert_eq!(resync["detail"]["result"]["restored_missing"], 1, "{resync}");
}
