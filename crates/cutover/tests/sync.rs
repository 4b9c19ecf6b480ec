//! `cutover sync`, `check` and `replicate` between real servers (two Garage
//! nodes; Garage and s3s-fs), checked independently with `rclone check`.

mod common;
mod sync_support;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Backend, Setup, start_garage, start_s3sfs};
use serde_json::Value;
use sync_support::{assert_rclone_identical, client, content, http_get, list, put_all, rt};

fn summary(run: &common::Run) -> Value {
    run.json_lines().pop().unwrap_or_else(|| panic!("no JSON summary: {run:?}"))
}

fn seed(b: &Backend, prefix: &str, n: usize) {
    let objects = (0..n)
        .map(|i| {
            let key = format!("{prefix}dir{}/obj-{i:05}", i % 7);
            let body = content(&key, 0, 100 + (i * 37) % 5000);
            (key, body)
        })
        .collect();
    put_all(&client(b), objects);
}

#[test]
fn sync_between_two_garages_copies_then_skips_unchanged_and_recopies_changed() {
    let (ga, gb) = (start_garage(), start_garage());
    let (a, b) = (Backend::garage("a", "primary", &ga), Backend::garage("b", "secondary", &gb));
    let setup = Setup::new(&[a.clone(), b.clone()], "");
    seed(&a, "", 300);
    let ca = client(&a);
    let meta = [
        ("content-type", "text/plain; charset=utf-8".to_string()),
        ("cache-control", "max-age=60".to_string()),
        ("x-amz-meta-owner", "team-storage".to_string()),
    ];
    rt().block_on(ca.put_object("meta/with-headers.txt", "hello".into(), &meta)).unwrap();
    rt().block_on(ca.put_object("meta/empty", bytes::Bytes::new(), &[])).unwrap();

    let run = setup.run(&["sync", "a", "b", "--json"]);
    assert_eq!(run.code, 0, "{run:?}");
    let s = summary(&run);
    assert_eq!((s["copied"].as_u64(), s["failed"].as_u64(), s["skipped"].as_u64()), (Some(302), Some(0), Some(0)));
    run.assert_no_secret(&a.secret);
    run.assert_no_secret(&b.secret);
    assert_rclone_identical(&a, "", &b, "", &[]);
    let head = rt().block_on(client(&b).head_object("meta/with-headers.txt")).unwrap();
    assert_eq!(head.header("content-type"), Some("text/plain; charset=utf-8"));
    assert_eq!(head.header("cache-control"), Some("max-age=60"));
    assert_eq!(head.header("x-amz-meta-owner"), Some("team-storage"));

    // A second run finds nothing to do: ETag and size from the listings suffice.
    let run = setup.run(&["sync", "a", "b", "--json"]);
    assert_eq!(run.code, 0, "{run:?}");
    let s = summary(&run);
    assert_eq!((s["copied"].as_u64(), s["skipped"].as_u64()), (Some(0), Some(302)), "{run:?}");

    // Same size, new content; and a new size.
    let k1 = "dir1/obj-00001".to_string();
    let k2 = "dir2/obj-00002".to_string();
    let old = list(&ca, &k1)[0].1 as usize;
    put_all(&ca, vec![(k1.clone(), content(&k1, 1, old)), (k2.clone(), content(&k2, 1, 77))]);
    let run = setup.run(&["check", "a", "b"]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(run.stdout.contains(&format!("changed {k1}")) && run.stdout.contains(&format!("changed {k2}")), "{run:?}");
    let run = setup.run(&["sync", "a", "b", "--json"]);
    assert_eq!(run.code, 0, "{run:?}");
    let s = summary(&run);
    assert_eq!((s["copied"].as_u64(), s["skipped"].as_u64()), (Some(2), Some(300)), "{run:?}");
    assert_rclone_identical(&a, "", &b, "", &[]);
    assert_eq!(setup.run(&["check", "a", "b"]).code, 0);
}

#[test]
fn sync_from_garage_to_s3s_fs_mirrors_with_prefixes_and_filters() {
    let g = start_garage();
    let fs = start_s3sfs();
    let (a, b) = (Backend::garage("garage", "primary", &g), Backend::s3sfs("fs", "secondary", &fs));
    let setup = Setup::new(&[a.clone(), b.clone()], "");
    seed(&a, "data/", 120);
    put_all(&client(&a), vec![("data/skip.tmp".into(), "x".into()), ("other/x".into(), "y".into())]);
    // Two stale objects on the destination: all of it, so more than 10 % (--force).
    put_all(&client(&b), vec![("stale-1".into(), "s".into()), ("stale-2".into(), "s".into())]);

    let run = setup.run(&["sync", "garage:data/", "fs", "--delete", "--force", "--exclude", "*.tmp", "--json"]);
    assert_eq!(run.code, 0, "{run:?}");
    let s = summary(&run);
    assert_eq!((s["copied"].as_u64(), s["deleted"].as_u64()), (Some(120), Some(2)), "{run:?}");
    // rclone is pointed at s3s-fs's bucket root: s3s-fs answers 500 to rclone's HEAD of a
    // prefix (a directory on its disk), which rclone retries for a minute and a half.
    assert_rclone_identical(&a, "data", &b, "", &["--exclude", "*.tmp"]);
    let keys: Vec<String> = list(&client(&b), "").into_iter().map(|o| o.0).collect();
    assert!(!keys.iter().any(|k| k.ends_with(".tmp") || k.contains("stale") || k.contains("other")), "{keys:?}");

    // And back again, s3s-fs to Garage, into an empty prefix.
    let run = setup.run(&["sync", "fs", "garage:back/", "--json"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(summary(&run)["copied"], 120);
    assert_rclone_identical(&b, "", &a, "back", &[]);
}

#[test]
fn delete_safety_rules_refuse_until_overridden() {
    let (ga, gb) = (start_garage(), start_garage());
    let (a, b) = (Backend::garage("a", "primary", &ga), Backend::garage("b", "secondary", &gb));
    let setup = Setup::new(&[a.clone(), b.clone()], "");
    seed(&b, "", 20);
    let cb = client(&b);
    let dst_count = || list(&cb, "").len();

    // An empty source never empties the destination by default.
    let run = setup.run(&["sync", "a", "b", "--delete", "--force"]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(run.stderr.contains("source listing is empty"), "{run:?}");
    assert_eq!(dst_count(), 20);

    // The source has 2 of the 20: 18 deletes are more than 10 %.
    let keep: Vec<(String, bytes::Bytes)> = list(&cb, "")
        .into_iter()
        .take(2)
        .map(|(k, size, _)| {
            let body = rt().block_on(cb.get_object(&k, &[])).unwrap().body;
            assert_eq!(body.len() as u64, size);
            (k, body)
        })
        .collect();
    put_all(&client(&a), keep);
    let run = setup.run(&["sync", "a", "b", "--delete"]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(run.stderr.contains("refusing to delete 18 of 20"), "{run:?}");
    assert_eq!(dst_count(), 20);

    let run = setup.run(&["sync", "a", "b", "--delete", "--force", "--max-delete", "5"]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(run.stderr.contains("more than --max-delete 5"), "{run:?}");
    assert_eq!(dst_count(), 20);

    let run = setup.run(&["sync", "a", "b", "--delete", "--force", "--dry-run"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(run.stdout.matches("would delete ").count(), 18, "{run:?}");
    assert_eq!(dst_count(), 20);

    let run = setup.run(&["sync", "a", "b", "--delete", "--force", "--json"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(summary(&run)["deleted"], 18);
    assert_rclone_identical(&a, "", &b, "", &[]);

    // With --allow-empty-source an explicit mirror of nothing is allowed.
    let run = setup.run(&["sync", "a:none/", "b", "--delete", "--force", "--allow-empty-source", "--json"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(dst_count(), 0);
}

#[test]
fn unknown_backends_and_bad_locations_are_usage_errors() {
    let g = start_garage();
    let a = Backend::garage("a", "primary", &g);
    let setup = Setup::new(&[a], "");
    let run = setup.run(&["sync", "a", "nope:x/"]);
    assert_eq!(run.code, 2, "{run:?}");
    assert_eq!(run.stderr.trim().lines().count(), 1, "{run:?}");
    assert!(run.stderr.contains("unknown backend \"nope\""), "{run:?}");
    let run = setup.run(&["check", ":x", "a"]);
    assert_eq!(run.code, 2, "{run:?}");
    let run = setup.run(&["sync", "a", "a:copy/", "--part-size", "1MiB"]);
    assert_eq!(run.code, 2, "{run:?}");
}

#[test]
fn a_sync_killed_with_sigkill_resumes_without_partial_objects() {
    let (ga, gb) = (start_garage(), start_garage());
    let (a, b) = (Backend::garage("a", "primary", &ga), Backend::garage("b", "secondary", &gb));
    let setup = Setup::new(&[a.clone(), b.clone()], "");
    let ca = client(&a);
    let big = content("big", 0, 24 << 20);
    rt().block_on(ca.put_object("0-big", big, &[])).unwrap();
    seed(&a, "", 1500);

    let mut cmd = Command::new(env!("CARGO_BIN_EXE_cutover"));
    cmd.arg("--config").arg(&setup.config);
    cmd.args(["sync", "a", "b", "--concurrency", "2", "--multipart-threshold", "6MiB", "--part-size", "5MiB"]);
    for (k, v) in &setup.env {
        cmd.env(k, v);
    }
    let mut child = cmd.stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    let cb = client(&b);
    let db = setup.dir.path().join("cutover.db");
    let checkpointed = || {
        let conn = rusqlite::Connection::open(&db).ok()?;
        conn.query_row("SELECT last_key FROM sync_checkpoints", [], |r| r.get::<_, Option<String>>(0)).ok()?
    };
    let start = Instant::now();
    while checkpointed().is_none() && start.elapsed() < Duration::from_secs(120) {
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();

    // Whatever is visible is whole: same size and ETag as the source.
    let src: std::collections::HashMap<String, (u64, Option<String>)> =
        list(&ca, "").into_iter().map(|(k, s, e)| (k, (s, e))).collect();
    let copied = list(&cb, "");
    assert!(copied.len() < src.len(), "the sync finished before it was killed");
    for (k, size, etag) in &copied {
        let (s, e) = &src[k];
        assert_eq!(size, s, "{k}");
        if !etag.as_deref().unwrap_or("").contains('-') {
            assert_eq!(etag, e, "{k}");
        }
    }

    let run = setup.run(&["sync", "a", "b", "--resume", "--json"]);
    assert_eq!(run.code, 0, "{run:?}");
    let s = summary(&run);
    assert!(s["resumed_after"].is_string(), "{run:?}");
    assert_rclone_identical(&a, "", &b, "", &[]);
    let conn = rusqlite::Connection::open(&db).unwrap();
    let open: i64 = conn.query_row("SELECT count(*) FROM sync_uploads", [], |r| r.get(0)).unwrap();
    assert_eq!(open, 0, "multipart uploads left recorded");
    // A fresh run afterwards has nothing to do.
    let s = summary(&setup.run(&["sync", "a", "b", "--json"]));
    assert_eq!(s["copied"], 0);
    assert_eq!(s["aborted_uploads"], 0);
}

#[test]
fn a_multipart_object_of_100_mib_is_copied_and_verified() {
    let (ga, gb) = (start_garage(), start_garage());
    let (a, b) = (Backend::garage("a", "primary", &ga), Backend::garage("b", "secondary", &gb));
    let setup = Setup::new(&[a.clone(), b.clone()], "");
    let ca = client(&a);
    let body = content("large", 0, 100 << 20);
    rt().block_on(ca.put_object("large.bin", body, &[("content-type", "application/x-test".into())])).unwrap();
    drop(ca);

    let run = setup.run(&["sync", "a", "b", "--json", "--concurrency", "4"]);
    assert_eq!(run.code, 0, "{run:?}");
    let s = summary(&run);
    assert_eq!((s["copied"].as_u64(), s["bytes"].as_u64()), (Some(1), Some(100 << 20)), "{run:?}");
    let head = rt().block_on(client(&b).head_object("large.bin")).unwrap();
    assert_eq!(head.etag().unwrap().rsplit('-').next(), Some("7"), "16 MiB parts");
    assert_eq!(head.header("content-type"), Some("application/x-test"));
    assert_rclone_identical(&a, "", &b, "", &["--download"]);
    // The multipart ETag cannot be compared with the source's MD5: the
    // resync skips by size, and --checksum streams both to confirm.
    let run = setup.run(&["check", "a", "b", "--checksum", "--json"]);
    assert_eq!(run.code, 0, "{run:?}");
}

#[test]
fn replicate_reports_lag_each_round() {
    let (ga, gb) = (start_garage(), start_garage());
    let (a, b) = (Backend::garage("a", "primary", &ga), Backend::garage("b", "secondary", &gb));
    let setup = Setup::new(&[a.clone(), b.clone()], "");
    seed(&a, "", 10);
    let run = setup.run(&["replicate", "a", "b", "--interval", "100ms", "--rounds", "2"]);
    assert_eq!(run.code, 0, "{run:?}");
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{run:?}");
    assert!(lines[0].starts_with("round 1: lag 10 objects"), "{run:?}");
    assert!(lines[1].starts_with("round 2: lag 0 objects"), "{run:?}");
}

#[test]
fn checksum_compares_objects_whose_multipart_etags_cannot_decide() {
    let (ga, gb) = (start_garage(), start_garage());
    let (a, b) = (Backend::garage("a", "primary", &ga), Backend::garage("b", "secondary", &gb));
    let setup = Setup::new(&[a.clone(), b.clone()], "");
    let part = 5 << 20;
    let upload = |c: &cutover_s3::S3Client, v: u32| {
        rt().block_on(async {
            let id = c.create_multipart("mp", &[]).await.unwrap();
            let mut parts = Vec::new();
            for n in 1..=2u32 {
                let etag = c.upload_part("mp", &id, n, content("mp", v * 10 + n, part)).await.unwrap();
                parts.push((n, format!("\"{etag}\"")));
            }
            c.complete_multipart("mp", &id, &parts).await.unwrap();
        })
    };
    upload(&client(&a), 1);
    upload(&client(&b), 2);

    // Same size, multipart ETags on both sides: equal by default...
    let run = setup.run(&["check", "a", "b"]);
    assert_eq!(run.code, 0, "{run:?}");
    // ...and different once both bodies are hashed.
    let run = setup.run(&["check", "a", "b", "--checksum"]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(run.stdout.contains("changed mp"), "{run:?}");
    let run = setup.run(&["sync", "a", "b", "--checksum", "--json"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(summary(&run)["copied"], 1);
    assert_eq!(setup.run(&["check", "a", "b", "--checksum"]).code, 0);
    assert_rclone_identical(&a, "", &b, "", &["--download"]);
}

#[test]
fn replicate_serves_lag_metrics_and_records_the_lag_in_the_state_store() {
    let (ga, gb) = (start_garage(), start_garage());
    let (a, b) = (Backend::garage("a", "primary", &ga), Backend::garage("b", "secondary", &gb));
    let setup = Setup::new(&[a.clone(), b.clone()], "");
    seed(&a, "", 30);
    let metrics = std::net::SocketAddr::from(([127, 0, 0, 1], cutover_lab::free_port()));
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_cutover"));
    cmd.arg("--config").arg(&setup.config);
    cmd.args(["replicate", "a", "b", "--interval", "1h", "--metrics-listen", &metrics.to_string()]);
    for (k, v) in &setup.env {
        cmd.env(k, v);
    }
    let child = cmd.stdout(Stdio::piped()).stderr(Stdio::null()).spawn().unwrap();
    let mut child = KillOnDrop(child);
    let started = std::time::SystemTime::now();
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(child.0.stdout.take().unwrap()));
    // The round's line is printed after its metrics and its lag record are updated.
    let first = lines.next().unwrap().unwrap();
    assert!(first.starts_with("round 1: lag 30 objects"), "{first}");

    let (status, text) = http_get(metrics, "/metrics");
    assert_eq!(status, 200, "{text}");
    let value = |name: &str| -> f64 {
        let prefix = format!("{name}{{src=\"a\",dst=\"b\"}} ");
        let line = text.lines().find(|l| l.starts_with(&prefix)).unwrap_or_else(|| panic!("no {prefix}in\n{text}"));
        line[prefix.len()..].parse().unwrap()
    };
    assert_eq!(value("cutover_replication_last_round_found_objects"), 30.0);
    assert_eq!(value("cutover_replication_pending_objects"), 0.0, "{text}");
    assert_eq!(value("cutover_replication_pending_bytes"), 0.0);
    assert_eq!(value("cutover_replication_oldest_pending_seconds"), 0.0);
    let last_success = value("cutover_replication_last_success_timestamp_seconds");
    let t0 = started.duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64();
    assert!(last_success >= t0.floor(), "{last_success} < {t0}");
    assert!(text.contains("cutover_replication_rounds_total{src=\"a\",dst=\"b\",outcome=\"ok\"} 1\n"), "{text}");
    assert!(text.contains("# TYPE cutover_replication_pending_objects gauge"), "{text}");
    drop(child);

    let records = cutover_sync::latest_lag(&setup.dir.path().join("cutover.db")).unwrap();
    assert_eq!(records.len(), 1, "{records:?}");
    let r = &records[0];
    assert_eq!((r.src.as_str(), r.dst.as_str(), r.pending_objects, r.pending_bytes), ("a", "b", 0, 0), "{r:?}");
    assert_eq!(r.oldest_pending_seconds, 0.0);
    assert!(r.at >= started && r.last_success.is_some(), "{r:?}");
}

/// The sync at the heart of an outage drill: the destination answers 30 %
/// of requests with 503 SlowDown (a chaos proxy in front of it). This test
/// found that six SlowDowns in a row failed a copy (see
/// `regression_a_slowdown_storm_used_up_the_six_attempts_of_a_copy` in
/// crates/sync/src/retry.rs).
#[test]
fn a_sync_through_a_slowdown_storm_copies_everything_and_reports_retries() {
    let (ga, gb) = (start_garage(), start_garage());
    let upstream = format!("127.0.0.1:{}", gb.s3_port);
    let proxy = cutover_chaos::Proxy::start(std::net::SocketAddr::from(([127, 0, 0, 1], 0)), &upstream).unwrap();
    let (a, b) = (Backend::garage("a", "primary", &ga), Backend::garage("b", "secondary", &gb));
    let mut b_throttled = b.clone();
    b_throttled.endpoint = format!("http://{}", proxy.addr());
    let setup = Setup::new(&[a.clone(), b_throttled], "");
    seed(&a, "", 200);
    proxy.set(cutover_chaos::Faults { slowdown_rate: 0.3, ..cutover_chaos::Faults::none() }).unwrap();

    let run = setup.run(&["sync", "a", "b", "--json", "--concurrency", "8"]);
    assert_eq!(run.code, 0, "{run:?}");
    let s = summary(&run);
    assert_eq!((s["copied"].as_u64(), s["failed"].as_u64()), (Some(200), Some(0)), "{run:?}");
    let slowed = proxy.counters().faulted(cutover_chaos::FaultKind::Slowdown);
    tracing::info!(slowed, retries = %s["retries"], "SlowDown answers from the proxy");
    assert!(slowed > 0);
    // Every SlowDown the proxy sent was seen, counted and retried.
    assert_eq!(s["throttled"].as_u64(), Some(slowed), "{run:?}");
    assert!(s["retries"].as_u64() >= Some(slowed), "{run:?}");
    assert_eq!(s["remaining_objects"], 0);
    drop(proxy);

    // Checked behind the proxy's back: same keys, sizes and ETags, same bytes.
    let (ca, cb) = (client(&a), client(&b));
    let (src, dst) = (list(&ca, ""), list(&cb, ""));
    assert_eq!(src.len(), 200);
    assert_eq!(src, dst);
    rt().block_on(async {
        for (key, _, _) in &src {
            let (x, y) = tokio::join!(ca.get_object(key, &[]), cb.get_object(key, &[]));
            assert_eq!(x.unwrap().body, y.unwrap().body, "{key}");
        }
    });
}

/// A child process, killed when the test ends (also when it fails).
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
