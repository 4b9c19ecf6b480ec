//! The whole `/metrics` body of `cutover run` (one registry: the
//! controller's families and the gateway's) after the gateway served
//! requests: valid for Prometheus, as `promtool check metrics` says, with
//! a HELP line for every family.

mod common;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::run_process::RunProcess;
use common::{Backend, Setup, start_garage};

const KEY: &str = "APPKEY";
const SECRET: &str = "app-secret-for-the-metrics-test";

/// Runs a scenario of s3ops.py against the gateway at `endpoint`.
fn py(endpoint: &str, args: &[&str]) -> String {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/gateway/s3ops.py");
    let out = Command::new("python3")
        .arg(script)
        .args(args)
        .env("GW_ENDPOINT", endpoint)
        .env("GW_KEY", KEY)
        .env("GW_SECRET", SECRET)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "s3ops.py {args:?} failed:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    stdout
}

fn promtool() -> String {
    ["/usr/bin/promtool", "promtool"]
        .into_iter()
        .find(|p| Command::new(p).arg("--version").output().is_ok_and(|o| o.status.success()))
        .expect("promtool is installed (Debian package prometheus)")
        .to_string()
}

#[test]
fn the_metrics_body_of_a_gateway_that_served_requests_passes_promtool() {
    let g = start_garage();
    let port = cutover_lab::free_port();
    let toml = format!(
        "[gateway]\nlisten = \"127.0.0.1:{port}\"\n[[gateway.clients]]\naccess_key_id = \"{KEY}\"\n\
         secret_access_key_env = \"GATEWAY_APP_SECRET\"\n[[gateway.buckets]]\nname = \"app\"\n\n"
    );
    let mut setup = Setup::new(&[Backend::garage("primary", "primary", &g)], &toml);
    setup.env.push(("GATEWAY_APP_SECRET".into(), SECRET.into()));
    let c = RunProcess::start(&setup);
    let start = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(start.elapsed() < Duration::from_secs(30), "the gateway did not start: {}", c.log());
        std::thread::sleep(Duration::from_millis(50));
    }
    let endpoint = format!("http://127.0.0.1:{port}");
    py(&endpoint, &["put", "m/one", "hello"]);
    py(&endpoint, &["get", "m/one"]);
    py(&endpoint, &["get", "m/missing"]);
    py(&endpoint, &["auth"]);

    let (status, body) = c.get("/metrics");
    assert_eq!(status, 200, "{body}");
    for line in [
        "# HELP cutover_probe_cycles_total Probe cycles by backend, vantage and outcome.",
        "# TYPE cutover_probe_duration_seconds histogram",
        "cutover_gateway_requests_total{operation=\"PutObject\",backend=\"primary\",status=\"200\"} 1",
        "cutover_gateway_requests_total{operation=\"GetObject\",backend=\"primary\",status=\"404\"} 1",
        "# TYPE cutover_gateway_request_duration_seconds histogram",
        "# TYPE cutover_gateway_requests_total counter",
    ] {
        assert!(body.lines().any(|l| l == line), "no {line:?} in:\n{body}");
    }
    assert!(body.contains("backend=\"gateway\",status=\"403\""), "{body}");
    // One format for the whole body (Prometheus text 0.0.4): no OpenMetrics
    // end marker in the middle or at the end.
    assert!(!body.contains("# EOF"), "{body}");

    let mut child = Command::new(promtool())
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(body.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    // The body parses (a parse error is "error while linting: text format
    // parsing error ..."), and every family passes every lint: no complaint
    // at all, about HELP ("no help text") or anything else.
    assert!(
        !said.contains("error while linting") && !said.contains("parsing error"),
        "promtool check metrics:\n{said}\nbody:\n{body}"
    );
    assert!(!said.contains("no help text"), "promtool check metrics:\n{said}\nbody:\n{body}");
    let problems: Vec<&str> = said.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(problems.is_empty(), "promtool check metrics:\n{said}\nbody:\n{body}");
    if said.trim().is_empty() {
        assert!(out.status.success(), "promtool check metrics failed without a word");
    }
}
