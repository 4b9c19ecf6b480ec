//! Signals in `cutover run`, end to end: the real binary, two real Garage
//! backends and a real Prometheus (Debian's package) scraping the
//! controller's own `/metrics`. A Prometheus signal that says all is well
//! turns a paused primary into `await_approval`; signals that cannot be read
//! are `unavailable` and never block a failover.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{Backend, Setup, start_garage};
use cutover_lab::prometheus::{self, Prometheus};
use serde_json::Value;

const VIEWER_TOKEN: &str = "signals-viewer-token";

/// `cutover run` on a chosen API port, its stdout in a file.
struct Run {
    child: Child,
    port: u16,
    log: std::path::PathBuf,
}

impl Run {
    fn start(setup: &Setup, port: u16) -> Self {
        let log = setup.dir.path().join("run.log");
        // Every GET /v1/* needs a token: this harness reads with a viewer's.
        let mut text = std::fs::read_to_string(&setup.config).unwrap();
        text.push_str(&format!(
            "\n[[api.tokens]]\nname = \"signals-viewer\"\nrole = \"viewer\"\nsha256 = \"{}\"\n",
            common::sha256_hex(VIEWER_TOKEN)
        ));
        std::fs::write(&setup.config, text).unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_cutover"));
        cmd.arg("--config")
            .arg(&setup.config)
            .arg("run")
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(Stdio::null());
        for (k, v) in &setup.env {
            cmd.env(k, v);
        }
        let r = Self { child: cmd.spawn().unwrap(), port, log };
        r.wait_for("api up", |r| r.get("/healthz").0 == 200);
        r
    }

    fn get(&self, path: &str) -> (u16, String) {
        let Ok(mut s) = TcpStream::connect(("127.0.0.1", self.port)) else { return (0, String::new()) };
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let req = format!(
            "GET {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {VIEWER_TOKEN}\r\nConnection: close\r\n\r\n"
        );
        if s.write_all(req.as_bytes()).is_err() {
            return (0, String::new());
        }
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        let status = out.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
        (status, out.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default())
    }

    fn json(&self, path: &str) -> Value {
        serde_json::from_str(&self.get(path).1).unwrap_or(Value::Null)
    }

    fn wait_for(&self, what: &str, f: impl Fn(&Self) -> bool) {
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(60) {
            if f(self) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("no {what}; controller log:\n{}", std::fs::read_to_string(&self.log).unwrap_or_default());
    }
}

impl Drop for Run {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn primary_healthy(r: &Run) -> bool {
    let s = r.json("/v1/status");
    s["backends"].as_array().is_some_and(|b| b.iter().all(|b| b["health"] == "healthy"))
}

fn first_decision(r: &Run) -> Option<Value> {
    let incidents = r.json("/v1/incidents");
    let d = incidents.as_array()?.first()?["decision"].clone();
    d["action"].is_string().then_some(d)
}

#[test]
fn a_prometheus_signal_that_disagrees_turns_a_failover_into_an_approval() {
    if prometheus::binary().is_none() {
        println!("SKIPPED: no prometheus binary (/usr/bin/prometheus); `apt-get install prometheus` to run this test");
        return;
    }
    let (a, b) = (start_garage(), start_garage());
    let [port, statuspage] = cutover_lab::free_ports();
    let prom = Prometheus::start(&[format!("127.0.0.1:{port}")], Duration::from_millis(500)).unwrap();
    let signals = format!(
        "[api]\nlisten = \"127.0.0.1:{port}\"\n\n[signals.prometheus]\nurl = \"{}\"\n\
         query = 'max(cutover_backend_health{{backend=\"primary\",state=\"down\"}})'\nthreshold = 0.5\ninterval = \"1s\"\n\n\
         [signals.statuspage]\nurl = \"http://127.0.0.1:{}/api/v2/status.json\"\ninterval = \"1s\"\ntimeout = \"500ms\"\n",
        prom.url(),
        statuspage
    );
    let setup = Setup::new(
        &[Backend::garage("primary", "primary", &a), Backend::garage("secondary", "secondary", &b)],
        &signals,
    );
    let r = Run::start(&setup, port);
    r.wait_for("healthy backends", primary_healthy);
    // Prometheus has scraped the controller and the signal has read it: up, 0, not firing.
    r.wait_for("the Prometheus signal", |r| {
        r.get("/metrics").1.contains("cutover_signal_value{signal=\"prometheus\"} 0\n")
    });
    let metrics = r.get("/metrics").1;
    for line in [
        "cutover_signal_up{signal=\"prometheus\"} 1",
        "cutover_signal_firing{signal=\"prometheus\"} 0",
        "cutover_signal_up{signal=\"statuspage\"} 0",
    ] {
        assert!(metrics.contains(line), "{line} not in\n{metrics}");
    }
    a.pause().unwrap();
    r.wait_for("a decision", |r| first_decision(r).is_some());
    a.resume().unwrap();
    let d = first_decision(&r).unwrap();
    assert_eq!(d["action"], "await_approval", "{d}");
    assert!(d["reason"].as_str().unwrap().contains("the Prometheus signal disagrees"), "{d}");
    assert_eq!(r.json("/v1/status")["active"], "primary");
}

#[test]
fn signals_that_cannot_be_read_never_block_a_failover() {
    let (a, b) = (start_garage(), start_garage());
    let [port, prometheus, statuspage] = cutover_lab::free_ports();
    let signals = format!(
        "[api]\nlisten = \"127.0.0.1:{port}\"\n\n[signals.prometheus]\nurl = \"http://127.0.0.1:{}\"\nquery = 'up'\n\
         threshold = 0.5\ninterval = \"1s\"\ntimeout = \"500ms\"\n\n\
         [signals.statuspage]\nurl = \"http://127.0.0.1:{}/api/v2/status.json\"\ninterval = \"1s\"\ntimeout = \"500ms\"\n",
        prometheus, statuspage
    );
    let setup = Setup::new(
        &[Backend::garage("primary", "primary", &a), Backend::garage("secondary", "secondary", &b)],
        &signals,
    );
    let r = Run::start(&setup, port);
    r.wait_for("healthy backends", primary_healthy);
    r.wait_for("both signals unavailable", |r| {
        let m = r.get("/metrics").1;
        m.contains("cutover_signal_up{signal=\"prometheus\"} 0")
            && m.contains("cutover_signal_up{signal=\"statuspage\"} 0")
    });
    a.pause().unwrap();
    r.wait_for("the failover", |r| r.json("/v1/status")["active"] == "secondary");
    a.resume().unwrap();
    assert_eq!(first_decision(&r).unwrap()["action"], "failover");
}
