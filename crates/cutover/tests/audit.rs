//! The audit trail against someone with write access to the state database:
//! the real `cutover run` exports the chain to a Garage bucket, and
//! `cutover audit verify` compares the database with it. Plus refused API
//! requests under a flood, and a store that refuses audit entries.

mod common;

use std::time::{Duration, Instant};

use common::run_process::RunProcess;
use common::{Backend, Setup, sha256_hex, start_garage, start_s3sfs};
use cutover_lab::garage::Garage;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

const AUDIT_BUCKET: &str = "audit-log";
const KEY: &str = "an-audit-key-of-some-length";

fn tokens() -> String {
    let t = |name: &str, role: &str| {
        format!("[[api.tokens]]\nname = \"{name}\"\nrole = \"{role}\"\nsha256 = \"{}\"\n", sha256_hex(name))
    };
    format!("[api]\nlisten = \"127.0.0.1:1\"\n{}{}", t("admin", "admin"), t("watcher", "viewer"))
}

/// Two Garage backends; the secondary also has the audit bucket.
fn lab(audit: &str) -> (Garage, Garage, Setup, Backend) {
    let a = start_garage();
    let b = start_garage();
    b.create_bucket(AUDIT_BUCKET).unwrap();
    b.allow(AUDIT_BUCKET, &b.key_id).unwrap();
    let secondary = Backend::garage("secondary", "secondary", &b);
    let mut setup =
        Setup::new(&[Backend::garage("primary", "primary", &a), secondary.clone()], &format!("{}{audit}", tokens()));
    setup.env.push(("CUTOVER_AUDIT_KEY".into(), KEY.into()));
    let export = Backend { bucket: AUDIT_BUCKET.into(), ..secondary };
    (a, b, setup, export)
}

const EXPORT: &str = "[audit]\nexport = { backend = \"secondary\", bucket = \"audit-log\", prefix = \"cutover/\", object_lock = \"governance\", interval = \"1s\" }\n";

/// Refused requests with distinct (actor, route, status): each writes one
/// audit entry at once.
const REFUSALS: [(&str, &str, Option<&str>); 20] = [
    ("GET", "/v1/status", None),
    ("GET", "/v1/incidents", None),
    ("GET", "/v1/incidents/x", None),
    ("GET", "/v1/nothing", None),
    ("POST", "/v1/incidents/x/approve", None),
    ("POST", "/v1/incidents/x/reject", None),
    ("POST", "/v1/failover", None),
    ("POST", "/v1/evidence", None),
    ("GET", "/v1/status", Some("not-a-token")),
    ("GET", "/v1/incidents", Some("not-a-token")),
    ("GET", "/v1/incidents/x", Some("not-a-token")),
    ("GET", "/v1/nothing", Some("not-a-token")),
    ("POST", "/v1/incidents/x/approve", Some("not-a-token")),
    ("POST", "/v1/incidents/x/reject", Some("not-a-token")),
    ("POST", "/v1/failover", Some("not-a-token")),
    ("POST", "/v1/evidence", Some("not-a-token")),
    ("POST", "/v1/incidents/x/approve", Some("watcher")),
    ("POST", "/v1/incidents/x/reject", Some("watcher")),
    ("POST", "/v1/failover", Some("watcher")),
    ("POST", "/v1/evidence", Some("watcher")),
];

fn refusals(c: &RunProcess, n: usize) {
    for (method, path, token) in REFUSALS.iter().take(n) {
        let (status, body) = c.request(method, path, *token, "{}");
        assert!(status == 401 || status == 403, "{method} {path}: {status} {body}");
    }
}

fn db(setup: &Setup) -> rusqlite::Connection {
    rusqlite::Connection::open(setup.dir.path().join("cutover.db")).unwrap()
}

fn db_max(setup: &Setup) -> i64 {
    db(setup).query_row("SELECT COALESCE(MAX(seq), 0) FROM audit", [], |r| r.get(0)).unwrap()
}

/// Segment keys in the export, in order.
fn segments(export: &Backend) -> Vec<String> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let client = export.client();
    let mut keys: Vec<String> = rt
        .block_on(client.list_objects_v2("cutover/audit/", None, 1000))
        .unwrap()
        .objects
        .into_iter()
        .map(|o| o.key)
        .collect();
    keys.sort();
    keys
}

fn exported_through(export: &Backend) -> i64 {
    segments(export).last().and_then(|k| k.trim_end_matches(".json").rsplit('-').next()?.parse().ok()).unwrap_or(0)
}

/// Starts the controller, writes `n` (at most 20) more audit entries, waits
/// until the export holds all of them, and stops it. The newest seq.
fn run_and_export(setup: &Setup, export: &Backend, n: usize) -> i64 {
    let c = RunProcess::start(setup);
    let before = db_max(setup);
    refusals(&c, n);
    let start = Instant::now();
    loop {
        let max = db_max(setup);
        if max >= before + n as i64 && exported_through(export) == max {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(60), "never exported; log:\n{}", c.log());
        std::thread::sleep(Duration::from_millis(200));
    }
    drop(c);
    db_max(setup)
}

fn verify(setup: &Setup) -> (common::Run, Value) {
    let text = setup.run(&["audit", "verify"]);
    let json = setup.run(&["audit", "verify", "--json"]);
    let v: Value = serde_json::from_str(json.stdout.trim()).unwrap_or_else(|e| panic!("{e}: {json:?}"));
    assert_eq!(json.code, text.code, "{json:?} {text:?}");
    (text, v)
}

/// The chain hash as cutover computes it without a key (what someone who
/// can write the database but lacks the HMAC key can compute).
fn plain_hash(prev: &str, seq: i64, at: &str, actor: &str, action: &str, detail: &str) -> String {
    let mut h = Sha256::new();
    for part in [prev, &seq.to_string(), at, actor, action, detail] {
        h.update(part.as_bytes());
        h.update(b"\n");
    }
    hex::encode(h.finalize())
}

/// Rewrites the chain from `from` on with plain hashes.
fn rewrite_from(setup: &Setup, from: i64) {
    let db = db(setup);
    let mut prev: String = db.query_row("SELECT prev_hash FROM audit WHERE seq = ?1", [from], |r| r.get(0)).unwrap();
    let rows: Vec<(i64, String, String, String, String)> = db
        .prepare("SELECT seq, at, actor, action, detail FROM audit WHERE seq >= ?1 ORDER BY seq")
        .unwrap()
        .query_map([from], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    for (seq, at, actor, action, detail) in rows {
        let h = plain_hash(&prev, seq, &at, &actor, &action, &detail);
        db.execute(
            "UPDATE audit SET prev_hash = ?1, hash = ?2, alg = 'sha256' WHERE seq = ?3",
            rusqlite::params![prev, h, seq],
        )
        .unwrap();
        prev = h;
    }
}

#[test]
fn audit_verify_detects_removed_trailing_entries() {
    let (_a, _b, setup, export) = lab(EXPORT);
    let max = run_and_export(&setup, &export, 8);
    let (ok, v) = verify(&setup);
    assert_eq!(ok.code, 0, "{ok:?}");
    assert!(ok.stdout.contains("every exported entry present and unchanged"), "{ok:?}");
    assert_eq!((v["ok"].clone(), v["exported_through"].clone()), (json!(true), json!(max)), "{v}");

    // Removing the newest entries keeps the local chain intact...
    db(&setup).execute("DELETE FROM audit WHERE seq > ?1", [max - 3]).unwrap();
    // ...but the export still has them.
    let (bad, v) = verify(&setup);
    assert_eq!(bad.code, 1, "{bad:?}");
    assert!(bad.stdout.contains(&format!("audit entry {}: removed", max - 2)), "{bad:?}");
    assert_eq!(v["first_bad"]["seq"], json!(max - 2), "{v}");
    assert_eq!(v["first_bad"]["kind"], "removed", "{v}");
}

#[test]
fn audit_verify_detects_a_rewritten_chain() {
    let (_a, _b, setup, export) = lab(&format!("{EXPORT}hmac_key_env = \"CUTOVER_AUDIT_KEY\"\n"));
    let max = run_and_export(&setup, &export, 6);
    assert!(max >= 6);
    let (ok, _) = verify(&setup);
    assert_eq!(ok.code, 0, "{ok:?}");
    assert!(ok.stdout.contains("HMAC-keyed"), "{ok:?}");

    // Edit entry 3 and recompute every hash after it, as someone with write
    // access to the database but not the key can.
    db(&setup).execute("UPDATE audit SET actor = 'mallory' WHERE seq = 3", []).unwrap();
    rewrite_from(&setup, 3);
    let (bad, v) = verify(&setup);
    assert_eq!(bad.code, 1, "{bad:?}");
    assert!(bad.stdout.contains("audit entry 3:"), "{bad:?}");
    assert_eq!(v["first_bad"]["seq"], 3, "{v}");
    assert_eq!(v["first_bad"]["kind"], "rewritten", "{v}");
    bad.assert_no_secret(KEY);

    // With the key, the rewrite is caught without the export too.
    let text = std::fs::read_to_string(&setup.config).unwrap();
    let no_export: String = text.lines().filter(|l| !l.starts_with("export = ")).map(|l| format!("{l}\n")).collect();
    std::fs::write(&setup.config, no_export).unwrap();
    let (bad, v) = verify(&setup);
    assert_eq!(bad.code, 1, "{bad:?}");
    assert_eq!(v["first_bad"]["seq"], 3, "{v}");
    assert!(bad.stdout.contains("HMAC key"), "{bad:?}");

    // Without the key, a rewrite that also recomputes the hashes of a keyless
    // chain is caught by the export's head hashes.
    let (_a2, _b2, setup, export) = lab(EXPORT);
    run_and_export(&setup, &export, 6);
    db(&setup).execute("UPDATE audit SET detail = '{\"forged\":true}' WHERE seq = 4", []).unwrap();
    rewrite_from(&setup, 4);
    let (bad, v) = verify(&setup);
    assert_eq!(bad.code, 1, "{bad:?}");
    assert_eq!((v["first_bad"]["seq"].clone(), v["first_bad"]["kind"].clone()), (json!(4), json!("rewritten")), "{v}");
    assert!(bad.stdout.contains("audit entry 4: rewritten"), "{bad:?}");
}

#[test]
fn audit_verify_detects_an_edited_row() {
    let (_a, _b, setup, export) = lab(EXPORT);
    run_and_export(&setup, &export, 5);
    db(&setup).execute("UPDATE audit SET detail = '{\"forged\":true}' WHERE seq = 2", []).unwrap();
    let (bad, v) = verify(&setup);
    assert_eq!(bad.code, 1, "{bad:?}");
    assert!(bad.stdout.contains("audit entry 2: edited"), "{bad:?}");
    assert_eq!((v["first_bad"]["seq"].clone(), v["first_bad"]["kind"].clone()), (json!(2), json!("edited")), "{v}");
    assert!(v["findings"].as_array().unwrap().iter().any(|f| f["problem"].as_str().unwrap().contains("detail")), "{v}");
}

#[test]
fn audit_export_survives_restart_without_duplicates() {
    let (_a, _b, setup, export) = lab(EXPORT);
    let first = run_and_export(&setup, &export, 4);
    let before = segments(&export);
    let second = run_and_export(&setup, &export, 6);
    assert!(second > first);
    let keys = segments(&export);
    assert!(keys.len() > before.len() && keys.starts_with(&before), "{before:?} {keys:?}");
    // Contiguous ranges from 1, none repeated.
    let mut next = 1;
    for k in &keys {
        let name = k.trim_start_matches("cutover/audit/").trim_end_matches(".json");
        let (a, b) = name.split_once('-').unwrap();
        let (a, b): (i64, i64) = (a.parse().unwrap(), b.parse().unwrap());
        assert_eq!(a, next, "{keys:?}");
        next = b + 1;
    }
    assert_eq!(next - 1, second);
    let (ok, v) = verify(&setup);
    assert_eq!(ok.code, 0, "{ok:?}");
    assert_eq!(v["segments"], json!(keys.len()), "{v}");
}

#[test]
fn a_garage_export_without_object_lock_falls_back_to_plain_puts_with_one_warning() {
    let (_a, _b, setup, export) = lab(EXPORT);
    let c = RunProcess::start(&setup);
    refusals(&c, 12);
    let err = || -> String {
        std::fs::read_dir(setup.dir.path())
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().ends_with(".err"))
            .map(|e| std::fs::read_to_string(e.path()).unwrap_or_default())
            .collect()
    };
    // The warning may reach the log a moment after the export it is about.
    c.wait_for("export and its warning", Duration::from_secs(60), |_| {
        let max = db_max(&setup);
        max >= 12 && exported_through(&export) == max && err().contains("Object Lock is not available")
    });
    let err = err();
    assert_eq!(err.matches("Object Lock is not available").count(), 1, "{err}\n{}", c.log());
}

/// Refused requests are audited without the controller's lock and
/// aggregated: a flood of 10,000 from several clients adds a handful of
/// rows, while `/v1/status` keeps answering and probes keep being evaluated.
#[test]
fn a_flood_of_refused_requests_neither_grows_the_audit_log_nor_stalls_the_probes() {
    let (a, b) = (start_s3sfs(), start_s3sfs());
    let setup = Setup::new(
        &[Backend::s3sfs("primary", "primary", &a), Backend::s3sfs("secondary", "secondary", &b)],
        &tokens(),
    );
    let c = RunProcess::start(&setup);
    c.wait_for("healthy", Duration::from_secs(20), |c| {
        c.json("/v1/status")["backends"].as_array().is_some_and(|l| l.iter().all(|b| b["health"] == "healthy"))
    });
    let cycles = |c: &RunProcess| -> u64 {
        let (_, text) = c.get("/metrics");
        text.lines()
            .filter(|l| l.starts_with("cutover_probe_cycles_total{"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
            .sum()
    };
    let rows_before: i64 =
        db(&setup).query_row("SELECT COUNT(*) FROM audit WHERE action = 'api.denied'", [], |r| r.get(0)).unwrap();
    let cycles_before = cycles(&c);
    let port = c.port();
    let flooders: Vec<_> = (0..8)
        .map(|t| {
            std::thread::spawn(move || {
                let mut refused = 0;
                for i in 0..1250 {
                    let (method, path, auth) = match (t + i) % 4 {
                        0 => ("GET", format!("/v1/incidents/{i}"), None),
                        1 => ("GET", "/v1/status".to_string(), Some("wrong-token")),
                        2 => ("POST", "/v1/failover".to_string(), Some("watcher")),
                        _ => ("GET", format!("/v1/made-up/{t}/{i}"), None),
                    };
                    let status = raw(port, method, &path, auth);
                    refused += u32::from(status == 401 || status == 403);
                }
                refused
            })
        })
        .collect();
    // While the flood runs, the status answers and the probes go on.
    let mut answered = 0;
    while !flooders.iter().all(|f| f.is_finished()) {
        let (status, _) = c.get("/v1/status");
        assert_eq!(status, 200);
        answered += 1;
        std::thread::sleep(Duration::from_millis(100));
    }
    let refused: u32 = flooders.into_iter().map(|f| f.join().unwrap()).sum();
    assert_eq!(refused, 10_000);
    assert!(answered > 0);
    c.wait_for("probes evaluated after the flood", Duration::from_secs(20), |c| cycles(c) > cycles_before + 2);
    let s = c.json("/v1/status");
    assert!(s["backends"].as_array().unwrap().iter().all(|b| b["health"] == "healthy"), "{s}");

    std::thread::sleep(Duration::from_secs(1)); // the writer's queue drains
    let rows: i64 =
        db(&setup).query_row("SELECT COUNT(*) FROM audit WHERE action = 'api.denied'", [], |r| r.get(0)).unwrap();
    assert!(rows - rows_before <= 12, "{} api.denied rows for 10,000 refusals", rows - rows_before);
    // The counts are kept: the entries' counts plus what is still pending
    // cover at least the first refusal of every key.
    let (_, metrics) = c.get("/metrics");
    assert!(metrics.contains("cutover_audit_denial_entries_total"), "{metrics}");
    drop(c);
    let ok = setup.run(&["audit", "verify"]);
    assert_eq!(ok.code, 0, "{ok:?}");
}

/// One request on its own connection; the status code.
fn raw(port: u16, method: &str, path: &str, token: Option<&str>) -> u16 {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else { return 0 };
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let auth = token.map(|t| format!("Authorization: Bearer {t}\r\n")).unwrap_or_default();
    let body = "{\"target\":\"secondary\",\"reason\":\"x\"}";
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{auth}Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    if s.write_all(req.as_bytes()).is_err() {
        return 0;
    }
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0)
}

/// A forced failover whose audit entry cannot be written is refused (500),
/// does not happen, and is counted in `cutover_store_errors_total`.
#[test]
fn a_forced_failover_that_cannot_be_audited_is_refused_and_counted() {
    let (a, b) = (start_s3sfs(), start_s3sfs());
    let setup = Setup::new(
        &[Backend::s3sfs("primary", "primary", &a), Backend::s3sfs("secondary", "secondary", &b)],
        &tokens(),
    );
    let c = RunProcess::start(&setup);
    db(&setup)
        .execute_batch(
            "CREATE TRIGGER refuse_audit BEFORE INSERT ON audit WHEN NEW.action = 'failover.forced' \
             BEGIN SELECT RAISE(ABORT, 'audit refused'); END;",
        )
        .unwrap();
    let (status, body) = c.post("/v1/failover", Some("admin"), &json!({"target": "secondary", "reason": "drill"}));
    assert_eq!(status, 500, "{body}");
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(c.json("/v1/status")["active"], "primary");
    assert_eq!(c.json("/v1/incidents"), json!([]), "an incident was opened without its audit entry");
    let (_, metrics) = c.get("/metrics");
    assert!(metrics.contains("cutover_store_errors_total{op=\"failover.forced\"} 1"), "{metrics}");
}
