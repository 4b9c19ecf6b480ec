//! The end-to-end outage test: two real Garage backends, the real `cutover
//! run` process (controller, runbooks and gateway in dual-write), a boto3
//! writer of at least 2,000 unique keys through the gateway, and an outage
//! of the primary by SIGKILL, SIGSTOP or an nftables drop rule. It asserts
//! the failover, the validation, the fallback with resync, and zero lost
//! acknowledged writes (every acked key read back with its hash through the
//! gateway and directly from the primary), and zero failed client writes
//! (hedged dual-writes).

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::run_process::RunProcess;
use common::{Backend, Setup, health, start_garage};
use serde_json::Value;
use sha2::{Digest, Sha256};

const APP_SECRET: &str = "e2e-app-secret-0123456789";

#[derive(Debug, Clone, Copy, PartialEq)]
enum Fault {
    Kill,
    Stop,
    NftDrop,
}

fn nft(args: &str) -> bool {
    Command::new("nft").args(args.split_whitespace()).stderr(Stdio::null()).status().is_ok_and(|s| s.success())
}

/// A drop rule for TCP to `port` on loopback, in its own table.
struct Blackhole(String);

impl Blackhole {
    fn add(port: u16) -> Option<Self> {
        let t = format!("cutover_e2e_{port}");
        let ok = nft(&format!("add table inet {t}"))
            && nft(&format!("add chain inet {t} out {{ type filter hook output priority 0 ; }}"))
            && nft(&format!("add rule inet {t} out oif lo tcp dport {port} drop"));
        if ok {
            Some(Self(t))
        } else {
            nft(&format!("delete table inet {t}"));
            None
        }
    }
}

impl Drop for Blackhole {
    fn drop(&mut self) {
        nft(&format!("delete table inet {}", self.0));
    }
}

fn writer(gw_port: u16, dir: &Path, count: u32) -> Child {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/gateway/s3ops.py");
    Command::new("python3")
        .arg(script)
        .arg("writer")
        .arg(count.to_string())
        .arg(dir.join("stop"))
        .arg(dir.join("writes.json"))
        .env("GW_ENDPOINT", format!("http://127.0.0.1:{gw_port}"))
        .env("GW_KEY", "APPKEY")
        .env("GW_SECRET", APP_SECRET)
        .stdout(Stdio::null())
        .spawn()
        .unwrap()
}

fn outage(fault: Fault) {
    if fault == Fault::NftDrop {
        match Blackhole::add(cutover_lab::free_port()) {
            Some(_) => {}
            None => {
                eprintln!(
                    "SKIPPED: nft cannot add rules here (needs nftables and root); the nft-drop fault is not tested"
                );
                return;
            }
        }
    }
    let mut a = start_garage();
    let b = start_garage();
    let gw_port = cutover_lab::free_port();
    let extra = format!(
        "[api]\nlisten = \"127.0.0.1:0\"\n[fallback]\nstable_for = \"2s\"\nmin_dwell = \"1s\"\n\
         [gateway]\nlisten = \"127.0.0.1:{gw_port}\"\n[[gateway.clients]]\naccess_key_id = \"APPKEY\"\n\
         secret_access_key_env = \"GATEWAY_APP_SECRET\"\n[[gateway.buckets]]\nname = \"app\"\nmode = \"dual-write\"\nack = \"active-journal\"\n"
    );
    let primary = Backend::garage("primary", "primary", &a);
    let mut setup = Setup::new(&[primary.clone(), Backend::garage("secondary", "secondary", &b)], &extra);
    setup.env.push(("GATEWAY_APP_SECRET".into(), APP_SECRET.into()));
    let c = RunProcess::start(&setup);
    c.wait_for("both healthy", Duration::from_secs(20), |c| {
        let s = c.json("/v1/status");
        health(&s, "primary") == "healthy" && health(&s, "secondary") == "healthy"
    });
    let mut w = writer(gw_port, setup.dir.path(), 2000);
    std::thread::sleep(Duration::from_secs(2));

    let port: u16 = a.endpoint().rsplit(':').next().unwrap().trim_end_matches('/').parse().unwrap();
    let onset = Instant::now();
    let mut hole = None;
    match fault {
        Fault::Kill => a.kill(),
        Fault::Stop => a.pause().unwrap(),
        Fault::NftDrop => hole = Some(Blackhole::add(port).expect("nft worked a moment ago")),
    }
    c.wait_for("failed over", Duration::from_secs(60), |c| c.json("/v1/incidents")[0]["state"] == "failed_over");
    let rto = onset.elapsed();
    assert_eq!(c.json("/v1/status")["active"], "secondary");
    std::thread::sleep(Duration::from_secs(2));
    match fault {
        Fault::Kill => a.restart().unwrap(),
        Fault::Stop => a.resume().unwrap(),
        Fault::NftDrop => drop(hole.take()),
    }
    let back = Instant::now();
    c.wait_for("fallen back", Duration::from_secs(90), |c| c.json("/v1/incidents")[0]["state"] == "resolved");
    assert_eq!(c.json("/v1/status")["active"], "primary");
    let fallback = back.elapsed();
    std::fs::write(setup.dir.path().join("stop"), b"").unwrap();
    let start = Instant::now();
    while w.try_wait().unwrap().is_none() {
        assert!(start.elapsed() < Duration::from_secs(180), "the writer did not finish");
        std::thread::sleep(Duration::from_millis(100));
    }
    let report: Value = serde_json::from_slice(&std::fs::read(setup.dir.path().join("writes.json")).unwrap()).unwrap();
    let acked = report["acked"].as_object().unwrap();
    let failures = report["failures"].as_array().unwrap();
    assert!(report["tried"].as_u64().unwrap() >= 2000, "{}", report["tried"]);

    let id = c.json("/v1/incidents")[0]["id"].as_str().unwrap().to_string();
    let detail = c.json(&format!("/v1/incidents/{id}"));
    let runs = detail["runs"].as_array().unwrap();
    assert_eq!(
        (runs[0]["kind"].as_str(), runs[0]["state"].as_str()),
        (Some("failover"), Some("completed")),
        "{detail}"
    );
    assert_eq!(
        (runs[1]["kind"].as_str(), runs[1]["state"].as_str()),
        (Some("fallback"), Some("completed")),
        "{detail}"
    );
    let validated = detail["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["detail"]["uses"] == "validate" && e["detail"]["ok"] == true)
        .count();
    assert_eq!(validated, 2, "the secondary after the failover and the primary after the fallback: {detail}");

    // Zero lost acknowledged writes: through the gateway and directly from the primary.
    let gateway = Backend::gateway(gw_port, "APPKEY", APP_SECRET).client();
    let direct = primary.client();
    let secondary = Backend::garage("secondary", "secondary", &b).client();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let mut lost = Vec::new();
    for (key, hash) in acked {
        for (via, client) in [("gateway", &gateway), ("primary", &direct)] {
            let ok = rt
                .block_on(client.get_object(key, &[]))
                .is_ok_and(|r| hex::encode(Sha256::digest(&r.body)) == hash.as_str().unwrap());
            if !ok {
                let what = match rt.block_on(client.get_object(key, &[])) {
                    Ok(r) => format!("{} bytes, sha {}", r.body.len(), hex::encode(Sha256::digest(&r.body))),
                    Err(e) => e.to_string(),
                };
                let on_secondary =
                    rt.block_on(secondary.get_object(key, &[])).map(|r| r.body.len()).map_err(|e| e.to_string());
                lost.push(format!("{key} via {via}: {what} (secondary: {on_secondary:?})"));
            }
        }
    }
    let span = match (failures.first(), failures.last()) {
        (Some(f), Some(l)) => {
            format!("{:.1}s between t={}s and t={}s", l[0].as_f64().unwrap() - f[0].as_f64().unwrap(), f[0], l[0])
        }
        _ => "none".into(),
    };
    println!(
        "{fault:?}: {} PUTs tried, {} acknowledged, {} failed ({span}); failover validated {:.1}s after the onset; \
         fallback {:.1}s after recovery; lost acknowledged writes: {}",
        report["tried"],
        acked.len(),
        failures.len(),
        rto.as_secs_f64(),
        fallback.as_secs_f64(),
        lost.len()
    );
    // With hedged dual-writes (gateway.hedge_after), no client write fails
    // during the outage, even before the failover decision (issue 18: it
    // was 4 to 8 failed PUTs over 2 to 3 s).
    assert!(failures.is_empty(), "{fault:?}: {} client PUTs failed: {failures:?}", failures.len());
    if !lost.is_empty() {
        let key = lost[0].split(' ').next().unwrap().to_string();
        let logs: String = std::fs::read_dir(setup.dir.path())
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.path().extension().is_some_and(|x| x == "err"))
            .map(|e| std::fs::read_to_string(e.path()).unwrap_or_default())
            .collect();
        let related: Vec<&str> = logs.lines().filter(|l| l.contains(&key)).collect();
        let db = rusqlite::Connection::open(setup.dir.path().join("cutover.db")).unwrap();
        let rows: Vec<String> = db
            .prepare("SELECT id, key, op, source, target, attempts, created_ms FROM gateway_journal ORDER BY id")
            .unwrap()
            .query_map([], |r| {
                Ok(format!(
                    "{:?}",
                    (
                        r.get::<_, i64>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, String>(3)?,
                        r.get::<_, String>(4)?
                    )
                ))
            })
            .unwrap()
            .map(Result::unwrap)
            .collect();
        panic!(
            "lost acknowledged writes: {lost:?}\nlog lines about {key}: {related:#?}\njournal rows left: {rows:?}\ncontroller log:\n{}",
            c.log()
        );
    }
}

#[test]
fn sigkill_of_the_primary_fails_over_falls_back_and_loses_no_acknowledged_write() {
    outage(Fault::Kill);
}

#[test]
fn sigstop_of_the_primary_fails_over_falls_back_and_loses_no_acknowledged_write() {
    outage(Fault::Stop);
}

#[test]
fn an_nftables_blackhole_of_the_primary_fails_over_falls_back_and_loses_no_acknowledged_write() {
    outage(Fault::NftDrop);
}

/// Issue 14 point 5: a write acknowledged by a gateway whose journal is then
/// lost (its host died with it) is still copied back by the fallback,
/// because the resync compares what changed on the secondary since the
/// failover, not only the journal. Regression: the fallback copied back only
/// journalled writes, and on active-passive buckets nothing else.
#[test]
fn the_fallback_copies_back_writes_whose_gateway_journal_is_lost() {
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
    setup.env.push(("GATEWAY_APP_SECRET".into(), APP_SECRET.into()));
    let c = RunProcess::start(&setup);
    c.wait_for("both healthy", Duration::from_secs(20), |c| {
        let s = c.json("/v1/status");
        health(&s, "primary") == "healthy" && health(&s, "secondary") == "healthy"
    });
    a.pause().unwrap();
    c.wait_for("failed over", Duration::from_secs(60), |c| c.json("/v1/incidents")[0]["state"] == "failed_over");

    // Writes acknowledged by the secondary while failed over, then the
    // gateway's record of them is gone.
    let mut w = writer(gw_port, setup.dir.path(), 100);
    std::fs::write(setup.dir.path().join("stop"), b"").unwrap();
    let start = Instant::now();
    while w.try_wait().unwrap().is_none() {
        assert!(start.elapsed() < Duration::from_secs(120), "the writer did not finish");
        std::thread::sleep(Duration::from_millis(100));
    }
    let report: Value = serde_json::from_slice(&std::fs::read(setup.dir.path().join("writes.json")).unwrap()).unwrap();
    let acked = report["acked"].as_object().unwrap();
    assert!(acked.len() >= 90, "the secondary took the writes: {report}");
    let db = rusqlite::Connection::open(setup.dir.path().join("cutover.db")).unwrap();
    db.busy_timeout(Duration::from_secs(10)).unwrap();
    let forgotten = db.execute("DELETE FROM gateway_failback", []).unwrap();
    assert!(forgotten > 0, "the gateway had journalled the writes to copy back");

    a.resume().unwrap();
    c.wait_for("fallen back", Duration::from_secs(90), |c| c.json("/v1/incidents")[0]["state"] == "resolved");
    assert_eq!(c.json("/v1/status")["active"], "primary");

    let direct = primary.client();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let lost: Vec<&String> = acked
        .iter()
        .filter(|(key, hash)| {
            !rt.block_on(direct.get_object(key, &[]))
                .is_ok_and(|r| hex::encode(Sha256::digest(&r.body)) == hash.as_str().unwrap())
        })
        .map(|(key, _)| key)
        .collect();
    assert!(
        lost.is_empty(),
        "{} of {} acknowledged writes are not on the primary: {lost:?}\n{}",
        lost.len(),
        acked.len(),
        c.log()
    );
}
