//! `dns.update` end to end: the real `cutover run` process, two real Garage
//! backends and a real BIND 9 holding the name applications use. A failover
//! moves the CNAME to the secondary (and `dig` sees it); a failed validation
//! rolls back and puts the record set back exactly, TTL included.

mod common;

use std::time::Duration;

use common::run_process::RunProcess;
use common::{Setup, health, sha256_hex, two_garages};
use cutover_lab::bind::{self, Bind, KEY_NAME};
use serde_json::{Value, json};

const ZONE: &str = "example.test";

fn runbook(bind: &Bind, receiver: u16) -> String {
    format!(
        r#"
[[steps]]
name = "switch the gateway"
uses = "state.switch"
with = {{ to = "{{{{ target }}}}" }}

[[steps]]
name = "move the DNS name"
uses = "dns.update"
with = {{ server = "{server}", zone = "{ZONE}", name = "s3.{ZONE}", type = "CNAME", value = "{{{{ target }}}}.storage.{ZONE}.", ttl = 30, tsig_key = "{KEY_NAME}", tsig_algorithm = "hmac-sha256", tsig_secret_env = "TSIG_SECRET" }}
timeout = "20s"
retries = 1

[[steps]]
name = "tell the team"
uses = "notify"
with = {{ kind = "slack", url = "http://127.0.0.1:{receiver}/slack" }}

[[steps]]
name = "smoke test"
uses = "validate"
with = {{ backend = "{{{{ target }}}}" }}
"#,
        server = bind.addr()
    )
}

/// BIND and two Garages, or `None` (with a note) when one is not installed.
fn lab(
    extra: &str,
) -> Option<(Bind, cutover_lab::garage::Garage, cutover_lab::garage::Garage, Setup, common::receiver::Receiver)> {
    if !bind::available() || !cutover_lab::garage::available() {
        eprintln!("skipped: needs named, dig (bind9, bind9-dnsutils) and garage");
        return None;
    }
    let bind = Bind::start(ZONE, &["s3 300 IN CNAME primary.storage"], "hmac-sha256").expect("named starts");
    let receiver = common::receiver::Receiver::start();
    let (a, b, mut setup) = two_garages(&format!("{extra}[runbooks]\nfailover = \"failover.toml\"\n"));
    setup.env.push(("TSIG_SECRET".into(), bind.secret().to_string()));
    std::fs::write(setup.dir.path().join("failover.toml"), runbook(&bind, receiver.port)).unwrap();
    Some((bind, a, b, setup, receiver))
}

#[test]
fn a_paused_primary_moves_the_dns_name_to_the_secondary() {
    let Some((bind, a, _b, setup, receiver)) = lab("[api]\nlisten = \"127.0.0.1:0\"\n") else { return };
    let serial = bind.serial().unwrap();
    let c = RunProcess::start(&setup);
    c.wait_for("both healthy", Duration::from_secs(20), |c| {
        let s = c.json("/v1/status");
        health(&s, "primary") == "healthy" && health(&s, "secondary") == "healthy"
    });
    a.pause().unwrap();
    c.wait_for("failed over", Duration::from_secs(60), |c| c.json("/v1/incidents")[0]["state"] == "failed_over");
    a.resume().unwrap();
    let id = c.json("/v1/incidents")[0]["id"].as_str().unwrap().to_string();

    assert_eq!(
        bind.dig("s3.example.test", "CNAME").unwrap(),
        ["s3.example.test. 30 IN CNAME secondary.storage.example.test."]
    );
    assert!(bind.serial().unwrap() > serial);
    let detail = c.json(&format!("/v1/incidents/{id}"));
    let step =
        detail["timeline"].as_array().unwrap().iter().find(|e| e["detail"]["step"] == "move the DNS name").cloned();
    let step = step.unwrap_or_else(|| panic!("no dns step in {detail}"));
    assert_eq!(step["detail"]["ok"], true, "{step}");
    assert!(!detail.to_string().contains(bind.secret()), "the TSIG secret is in the incident: {detail}");
    // The Slack message links to the incident in the API.
    let got = receiver.received();
    let chat: Value =
        serde_json::from_str(&got.iter().find(|r| r.path == "/slack").expect("slack was told").body).unwrap();
    let url = chat["blocks"].as_array().unwrap().last().unwrap()["elements"][0]["url"].as_str().unwrap().to_string();
    assert_eq!(url, format!("http://127.0.0.1:{}/v1/incidents/{id}", c.port()));
}

#[test]
fn a_failed_validation_puts_the_dns_record_set_back_exactly() {
    let tokens = format!(
        "[api]\nlisten = \"127.0.0.1:0\"\n[[api.tokens]]\nname = \"boss\"\nrole = \"admin\"\nsha256 = \"{}\"\n",
        sha256_hex("admin-token")
    );
    let Some((bind, _a, _b, mut setup, _receiver)) = lab(&tokens) else { return };
    let before = bind.dig("s3.example.test", "CNAME").unwrap();
    let serial = bind.serial().unwrap();
    // The secondary's key is wrong: the smoke test fails after the DNS moved.
    for (k, v) in setup.env.iter_mut() {
        if k == "SECONDARY_SECRET" {
            *v = "0".repeat(64);
        }
    }
    let c = RunProcess::start(&setup);
    c.wait_for("primary healthy", Duration::from_secs(20), |c| health(&c.json("/v1/status"), "primary") == "healthy");
    let (status, body) =
        c.post("/v1/failover", Some("admin-token"), &json!({"target": "secondary", "reason": "drill"}));
    assert_eq!(status, 202, "{body}");
    let id = body["incident"].as_str().unwrap().to_string();
    c.wait_for("rolled back", Duration::from_secs(60), |c| {
        c.json(&format!("/v1/incidents/{id}"))["runs"][0]["state"] == "rolled_back"
    });

    assert_eq!(bind.dig("s3.example.test", "CNAME").unwrap(), before, "300 s TTL and the primary's name again");
    assert!(bind.serial().unwrap() >= serial + 2, "the record was moved, then moved back");
    let detail = c.json(&format!("/v1/incidents/{id}"));
    let undone: Vec<&str> = detail["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "step" && e["detail"]["phase"] == "undo")
        .map(|e| e["detail"]["step"].as_str().unwrap())
        .collect();
    assert_eq!(undone, ["move the DNS name", "switch the gateway"], "{detail}");
}
