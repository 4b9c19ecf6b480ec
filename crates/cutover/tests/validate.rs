//! `cutover validate` (the smoke suite) against real Garage and s3s-fs servers.

mod common;

use common::{Backend, Setup, start_garage, start_s3sfs};
use serde_json::Value;

const CHECKS: [&str; 12] = [
    "put",
    "get",
    "head",
    "list",
    "range_get",
    "multipart",
    "presigned_get",
    "presigned_put",
    "sse",
    "delete",
    "permissions",
    "latency",
];

fn validate(setup: &Setup, backend: &str) -> (i32, Value, common::Run) {
    let run = setup.run(&["validate", "--backend", backend, "--json"]);
    let lines = run.json_lines();
    assert_eq!(lines.len(), 1, "{run:?}");
    (run.code, lines[0].clone(), run)
}

fn check<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no {name}: {report}"))
}

/// Lists every key left in the backend's bucket, with a client of our own.
fn leftover_keys(b: &Backend) -> Vec<String> {
    let client = b.client();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let page = rt.block_on(client.list_objects_v2("", None, 1000)).unwrap();
    page.objects.into_iter().map(|o| o.key).collect()
}

fn assert_passes(b: Backend) {
    let setup = Setup::new(std::slice::from_ref(&b), "");
    let (code, report, run) = validate(&setup, &b.name);
    assert_eq!(code, 0, "{run:?}");
    assert_eq!(report["ok"], true, "{report}");
    let names: Vec<&str> = report["checks"].as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert_eq!(names, CHECKS);
    assert_eq!(check(&report, "sse")["skipped"], true, "no SSE configured: {report}");
    assert!(report["latency"]["ops"].as_u64().unwrap() >= 15, "{report}");
    assert_eq!(leftover_keys(&b), Vec::<String>::new(), "the suite removes what it created");
    run.assert_no_secret(&b.secret);
}

#[test]
fn the_suite_passes_against_garage_and_cleans_up() {
    let g = start_garage();
    assert_passes(Backend::garage("primary", "primary", &g));
}

#[test]
fn the_suite_passes_against_s3s_fs_and_cleans_up() {
    let s = start_s3sfs();
    assert_passes(Backend::s3sfs("primary", "primary", &s));
}

#[test]
fn sse_c_round_trips_on_garage_when_configured() {
    let g = start_garage();
    let mut b = Backend::garage("primary", "primary", &g);
    b.extra = "validate = { sse = \"SSE-C\" }".into();
    let (code, report, run) = validate(&Setup::new(std::slice::from_ref(&b), ""), "primary");
    assert_eq!(code, 0, "{run:?}");
    let sse = check(&report, "sse");
    assert_eq!(sse["ok"], true, "{report}");
    assert!(sse["detail"].as_str().unwrap().contains("unreadable without the key"), "{sse}");
    assert_eq!(leftover_keys(&b), Vec::<String>::new());
}

#[test]
fn garage_credentials_that_can_list_buckets_are_warned_about() {
    let g = start_garage();
    let (_, report, _) = validate(&Setup::new(&[Backend::garage("primary", "primary", &g)], ""), "primary");
    let warnings = report["warnings"].as_array().unwrap();
    assert!(warnings.iter().any(|w| w.as_str().unwrap().contains("can list buckets")), "{report}");
    assert!(!warnings.iter().any(|w| w.as_str().unwrap().contains("create buckets")), "{report}");
}

#[test]
fn a_paused_backend_fails_fast_with_typed_outcomes() {
    let g = start_garage();
    let setup = Setup::new(&[Backend::garage("primary", "primary", &g)], "");
    g.pause().unwrap();
    let run = setup.run(&["validate", "--backend", "primary", "--json", "--timeout", "2s"]);
    g.resume().unwrap();
    assert_eq!(run.code, 1, "{run:?}");
    let report = &run.json_lines()[0];
    assert_eq!(report["ok"], false);
    let put = check(report, "put");
    assert!(put["detail"].as_str().unwrap().starts_with("Timeout"), "{put}");
    assert!(check(report, "get")["detail"].as_str().unwrap().contains("not run: the backend is unreachable (Timeout)"));
}

#[test]
fn a_failed_check_still_cleans_up() {
    // A max_latency no backend can meet fails the latency check after every
    // object was created; the suite must still remove them.
    let s = start_s3sfs();
    let mut b = Backend::s3sfs("primary", "primary", &s);
    b.extra = "validate = { max_latency = \"1ms\" }".into();
    let (code, report, _) = validate(&Setup::new(std::slice::from_ref(&b), ""), "primary");
    assert_eq!(code, 1, "{report}");
    assert_eq!(check(&report, "latency")["ok"], false);
    assert_eq!(check(&report, "delete")["ok"], true);
    assert_eq!(leftover_keys(&b), Vec::<String>::new());
}

#[test]
fn human_output_names_every_check() {
    let s = start_s3sfs();
    let run = Setup::new(&[Backend::s3sfs("primary", "primary", &s)], "").run(&["validate", "--backend", "primary"]);
    assert_eq!(run.code, 0, "{run:?}");
    for name in CHECKS {
        assert!(run.stdout.contains(name), "{name} missing from {}", run.stdout);
    }
}
