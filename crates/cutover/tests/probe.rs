//! `cutover probe` against real Garage and s3s-fs servers, healthy and broken.

mod common;

use common::{Backend, Setup, start_garage, start_s3sfs};
use serde_json::Value;

fn probe_one(setup: &Setup) -> (i32, Value, common::Run) {
    let run = setup.run(&["probe", "--once", "--json"]);
    let lines = run.json_lines();
    assert_eq!(lines.len(), 1, "{run:?}");
    (run.code, lines[0].clone(), run)
}

fn assert_healthy(setup: &Setup) {
    let (code, report, run) = probe_one(setup);
    assert_eq!(code, 0, "{run:?}");
    assert_eq!(report["ok"], true);
    assert_eq!(report["outcome"], "Ok");
    let ops: Vec<&str> = report["ops"].as_array().unwrap().iter().map(|o| o["op"].as_str().unwrap()).collect();
    assert_eq!(ops, ["put", "get", "head", "delete"]);
    for op in report["ops"].as_array().unwrap() {
        assert_eq!(op["ok"], true, "{op}");
        assert!(op["ms"].as_f64().unwrap() >= 0.0);
    }
}

#[test]
fn a_healthy_garage_passes_every_probe_operation() {
    let g = start_garage();
    assert_healthy(&Setup::new(&[Backend::garage("primary", "primary", &g)], ""));
}

#[test]
fn a_healthy_s3s_fs_passes_every_probe_operation() {
    let s = start_s3sfs();
    assert_healthy(&Setup::new(&[Backend::s3sfs("primary", "primary", &s)], ""));
}

#[test]
fn a_paused_garage_is_a_timeout() {
    let g = start_garage();
    let setup = Setup::new(&[Backend::garage("primary", "primary", &g)], "");
    g.pause().unwrap();
    let (code, report, run) = probe_one(&setup);
    g.resume().unwrap();
    assert_eq!(code, 1, "{run:?}");
    assert_eq!(report["ok"], false);
    assert_eq!(report["outcome"], "Timeout", "{report}");
}

#[test]
fn a_killed_garage_is_connect_refused() {
    let mut g = start_garage();
    let setup = Setup::new(&[Backend::garage("primary", "primary", &g)], "");
    g.kill();
    let (code, report, run) = probe_one(&setup);
    assert_eq!(code, 1, "{run:?}");
    assert_eq!(report["outcome"], "ConnectRefused", "{report}");
    // Never "not found": a transport failure stays a transport failure.
    assert_eq!(report["ops"][0]["outcome"], "ConnectRefused");
}

#[test]
fn a_garage_restarted_after_a_kill_is_healthy_again() {
    let mut g = start_garage();
    let setup = Setup::new(&[Backend::garage("primary", "primary", &g)], "");
    g.kill();
    assert_eq!(probe_one(&setup).0, 1);
    g.restart().unwrap();
    assert_healthy(&setup);
}

#[test]
fn a_wrong_secret_is_reported_by_type_and_never_printed() {
    let g = start_garage();
    let mut b = Backend::garage("primary", "primary", &g);
    b.secret = "0000000000000000000000000000000000000000000000000000000000000bad".into();
    let setup = Setup::new(&[b.clone()], "");
    let (code, report, run) = probe_one(&setup);
    assert_eq!(code, 1, "{run:?}");
    assert_eq!(report["outcome"], "SignatureDoesNotMatch", "{report}");
    run.assert_no_secret(&b.secret);
    run.assert_no_secret(&g.secret);
    let human = setup.run(&["probe"]);
    assert_eq!(human.code, 1);
    human.assert_no_secret(&b.secret);
}

#[test]
fn an_unknown_access_key_is_invalid_access_key_id() {
    let s = start_s3sfs();
    let mut b = Backend::s3sfs("primary", "primary", &s);
    b.key_id = "GK000000000000000000000000".into();
    let setup = Setup::new(&[b.clone()], "");
    let (code, report, run) = probe_one(&setup);
    assert_eq!(code, 1, "{run:?}");
    assert_eq!(report["outcome"], "InvalidAccessKeyId", "{report}");
    run.assert_no_secret(&b.secret);
}

#[test]
fn an_unknown_access_key_on_garage_is_invalid_access_key_id() {
    let g = start_garage();
    let mut b = Backend::garage("primary", "primary", &g);
    b.key_id = "GK000000000000000000000000".into();
    let (code, report, run) = probe_one(&Setup::new(&[b], ""));
    assert_eq!(code, 1, "{run:?}");
    assert_eq!(report["outcome"], "InvalidAccessKeyId", "{report}");
    run.assert_no_secret(&g.secret);
}

#[test]
fn a_wrong_secret_on_s3s_fs_is_signature_does_not_match() {
    let s = start_s3sfs();
    let mut b = Backend::s3sfs("primary", "primary", &s);
    b.secret = "wrong-secret-value-for-the-test".into();
    let setup = Setup::new(&[b.clone()], "");
    let (code, report, run) = probe_one(&setup);
    assert_eq!(code, 1, "{run:?}");
    assert_eq!(report["outcome"], "SignatureDoesNotMatch", "{report}");
    run.assert_no_secret(&b.secret);
}

/// Garage only: s3s-fs 0.14 creates a missing bucket's directory on PUT, so
/// a probe there succeeds (and creates the bucket).
#[test]
fn a_missing_bucket_is_no_such_bucket() {
    let g = start_garage();
    let mut b = Backend::garage("primary", "primary", &g);
    b.bucket = "not-there".into();
    let (code, report, run) = probe_one(&Setup::new(&[b], ""));
    assert_eq!(code, 1, "{run:?}");
    assert_eq!(report["outcome"], "NoSuchBucket", "{report}");
    assert_eq!(report["ops"].as_array().unwrap().len(), 1, "nothing after a failed PUT: {report}");
}

#[test]
fn a_hung_s3s_fs_is_a_timeout_and_one_backend_can_be_probed_alone() {
    let g = start_garage();
    let s = start_s3sfs();
    let setup =
        Setup::new(&[Backend::garage("primary", "primary", &g), Backend::s3sfs("secondary", "secondary", &s)], "");
    s.hang();
    let run = setup.run(&["probe", "--json"]);
    assert_eq!(run.code, 1, "{run:?}");
    let reports = run.json_lines();
    assert_eq!(reports[0]["outcome"], "Ok");
    assert_eq!(reports[1]["outcome"], "Timeout");
    let only = setup.run(&["probe", "--backend", "primary", "--json"]);
    assert_eq!(only.code, 0, "{only:?}");
    assert_eq!(only.json_lines().len(), 1);
    s.resume();
}

#[test]
fn an_unknown_backend_name_is_a_usage_error() {
    let s = start_s3sfs();
    let setup = Setup::new(&[Backend::s3sfs("primary", "primary", &s)], "");
    let run = setup.run(&["probe", "--backend", "nope"]);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(run.stderr.contains("unknown backend \"nope\"") && run.stderr.contains("primary"), "{run:?}");
}
