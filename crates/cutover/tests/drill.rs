//! `cutover drill` against two real Garage backends, the primary behind a
//! real `cutover chaos-proxy` process: the report, the objectives, the exit code.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{Backend, Setup, start_garage};
use serde_json::Value;

struct Proxy {
    child: Child,
    listen: u16,
    control: u16,
}

impl Proxy {
    fn start(upstream: &str) -> Self {
        let [listen, control] = cutover_lab::free_ports();
        let upstream = upstream.trim_start_matches("http://").trim_end_matches('/');
        let child = Command::new(env!("CARGO_BIN_EXE_cutover"))
            .args(["chaos-proxy", "--listen", &format!("127.0.0.1:{listen}"), "--upstream", upstream])
            .args(["--control", &format!("127.0.0.1:{control}")])
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let start = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", control)).is_err() {
            assert!(start.elapsed() < Duration::from_secs(20), "chaos-proxy did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        Self { child, listen, control }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn drill(scenario: &str, extra: &str) -> (common::Run, Value) {
    drill_with(scenario, extra, false)
}

fn drill_with(scenario: &str, extra: &str, agent: bool) -> (common::Run, Value) {
    let a = start_garage();
    let b = start_garage();
    let proxy = Proxy::start(&a.endpoint());
    let mut primary = Backend::garage("primary", "primary", &a);
    primary.endpoint = format!("http://127.0.0.1:{}", proxy.listen);
    let setup = Setup::new(&[primary, Backend::garage("secondary", "secondary", &b)], extra);
    let reports = setup.dir.path().join("reports");
    let chaos = format!("primary=http://127.0.0.1:{}", proxy.control);
    let mut args = vec!["drill", "--scenario", scenario, "--chaos", &chaos, "--report", reports.to_str().unwrap()];
    let direct = a.endpoint();
    if agent {
        args.extend(["--agent-endpoint", direct.as_str()]);
    }
    let run = setup.run(&args);
    let json = std::fs::read_to_string(reports.join(format!("drill-{scenario}.json"))).unwrap_or_default();
    let md = std::fs::read_to_string(reports.join(format!("drill-{scenario}.md"))).unwrap_or_default();
    assert!(md.starts_with(&format!("# Drill: {scenario}")), "{md}\n{run:?}");
    (run, serde_json::from_str(&json).unwrap_or(Value::Null))
}

#[test]
fn a_hard_down_drill_fails_over_within_the_objective_and_loses_nothing() {
    let (run, report) = drill("hard-down", "[objectives]\nrto = \"15s\"\nrpo = 0\n");
    assert_eq!(run.code, 0, "{run:?}");
    let r = &report["runs"][0];
    assert_eq!(r["decision"], "failover", "{report}");
    assert!(r["rto_s"].as_f64().unwrap() > 0.0, "{report}");
    assert!(r["acked"].as_u64().unwrap() > 0, "{report}");
    assert_eq!(r["lost"], 0, "{report}");
    assert_eq!(report["false_failovers"], 0);
    assert_eq!(report["met"], true);
    assert!(r["fallback_s"].as_f64().is_some(), "fell back after the drill: {report}");
}

#[test]
fn a_blip_drill_does_not_fail_over_and_an_impossible_rto_is_a_breach() {
    let (run, report) = drill("blip", "");
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(report["runs"][0]["failovers"], 0, "{report}");
    assert_eq!(report["false_failovers"], 0, "{report}");
    let (run, report) = drill("hard-down", "[objectives]\nrto = \"1ms\"\n");
    assert_eq!(run.code, 1, "{run:?}");
    assert!(report["breaches"][0].as_str().unwrap().contains("exceeds the objective"), "{report}");
}

#[test]
fn a_partial_vantage_drill_asks_for_approval_instead_of_failing_over() {
    let (run, report) = drill_with("partial-vantage", "", true);
    assert_eq!(run.code, 0, "{run:?}");
    let r = &report["runs"][0];
    assert_eq!(r["failovers"], 0, "{report}");
    assert_eq!(r["decision"], "await_approval", "{report}\n{}", run.stdout);
}

#[test]
fn drill_usage_errors_name_the_problem() {
    let s = Setup::new(&[Backend::dummy("primary", "primary"), Backend::dummy("secondary", "secondary")], "");
    let r = s.run(&["drill", "--scenario", "hard-down"]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("--chaos primary=URL is required"), "{r:?}");
    let r = s.run(&["drill", "--scenario", "hard-down", "--chaos", "tertiary=http://127.0.0.1:9"]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("no backend named \"tertiary\""), "{r:?}");
    let r = s.run(&["drill", "--scenario", "partial-vantage", "--chaos", "primary=http://127.0.0.1:9"]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("needs --agent-endpoint"), "{r:?}");
    let r = s.run(&["drill", "--scenario", "earthquake"]);
    assert_eq!(r.code, 2, "{r:?}");
}

#[test]
fn the_controller_runs_a_scheduled_drill_and_records_its_result() {
    let a = start_garage();
    let b = start_garage();
    let proxy = Proxy::start(&a.endpoint());
    let mut staging_primary = Backend::garage("primary", "primary", &a);
    staging_primary.endpoint = format!("http://127.0.0.1:{}", proxy.listen);
    let staging =
        Setup::new(&[staging_primary, Backend::garage("secondary", "secondary", &b)], "[objectives]\nrto = \"20s\"\n");
    let reports = staging.dir.path().join("reports");
    let extra = format!(
        "[api]\nlisten = \"127.0.0.1:0\"\n[[drills]]\nscenario = \"hard-down\"\ncron = \"@every 1s\"\nconfig = \"{}\"\n\
         chaos = {{ primary = \"http://127.0.0.1:{}\" }}\nreport = \"{}\"\n",
        staging.config.display(),
        proxy.control,
        reports.display()
    );
    let prod =
        Setup::new(&[Backend::garage("primary", "primary", &a), Backend::garage("secondary", "secondary", &b)], &extra);
    let c = common::run_process::RunProcess::start(&prod);
    c.wait_for("a scheduled drill", Duration::from_secs(120), |c| c.log().contains("drill hard-down: met"));
    assert!(reports.join("drill-hard-down.md").exists());
    let metrics = c.get("/metrics").1;
    assert!(metrics.contains("cutover_drills_total{scenario=\"hard-down\",result=\"met\"}"), "{metrics}");
    // The drill never touched the production controller's state.
    assert_eq!(c.json("/v1/status")["active"], "primary");
    assert_eq!(c.json("/v1/incidents"), serde_json::json!([]));
}
