//! The harness of `bench detect`: the Garage pair, a fresh `cutover run`
//! per trial, and the faults injected into the primary.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use cutover_core::config::Config;
use cutover_core::domain::Health;
use cutover_core::time::parse_rfc3339;
use cutover_lab::garage::Garage;
use serde::Deserialize;
use serde_json::Value;

use super::FaultKind;
use super::config::config_text;
use super::error::{BenchError, io};
use super::health_log::{first_suspect, longest_streak, primary_changes};
use super::nft::{nft_delete, nft_drop};
use super::phase::{phase, stratified_phase};
use super::process::TrialProcess;
use super::report::{BlipOutcome, TrialOutcome};

/// How long after a blip ends a failover would still be a consequence of it.
const BLIP_AFTERMATH: Duration = Duration::from_secs(6);

/// The Garage pair and what each trial needs to start a controller.
pub struct DetectLab {
    pub exe: PathBuf,
    pub extra: String,
    pub primary: Garage,
    pub secondary: Garage,
}

impl DetectLab {
    fn config_text(&self, port: u16) -> String {
        let (p, s) = (self.primary.endpoint(), self.secondary.endpoint());
        config_text(port, &self.extra, (&p, &self.primary.bucket), (&s, &self.secondary.bucket))
    }

    fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("BENCH_PRIMARY_KEY_ID", self.primary.key_id.clone()),
            ("BENCH_PRIMARY_SECRET", self.primary.secret.clone()),
            ("BENCH_SECONDARY_KEY_ID", self.secondary.key_id.clone()),
            ("BENCH_SECONDARY_SECRET", self.secondary.secret.clone()),
        ]
    }

    /// Starts a fresh controller (JSON event lines on its stdout) and waits
    /// until both backends are healthy.
    fn start_run(&self) -> Result<TrialProcess, BenchError> {
        let dir = tempfile::tempdir().map_err(io("temporary directory"))?;
        let port = cutover_lab::free_port();
        let config = dir.path().join("cutover.toml");
        std::fs::write(&config, self.config_text(port)).map_err(io("writing the configuration"))?;
        let log = dir.path().join("run.log");
        let stdout = std::fs::File::create(&log).map_err(io("run.log"))?;
        let stderr = std::fs::File::create(dir.path().join("run.err")).map_err(io("run.err"))?;
        let child = Command::new(&self.exe)
            .arg("--config")
            .arg(&config)
            .args(["--log-format", "json", "run"])
            .envs(self.env())
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .spawn()
            .map_err(io("starting `cutover run`"))?;
        let c = TrialProcess { child, port, log, _dir: dir };
        c.wait("both backends healthy", |c| {
            let s = c.json("/v1/status");
            s["active"] == "primary"
                && s["backends"].as_array().is_some_and(|b| b.iter().all(|b| health(b) == Some(Health::Healthy)))
        })?;
        Ok(c)
    }

    /// One outage: the onset-to-decision time, and the onset-to-suspect time when the log shows it.
    pub fn trial(&mut self, kind: FaultKind, settings: &Config) -> Result<TrialOutcome, BenchError> {
        let c = self.start_run()?;
        std::thread::sleep(phase(settings.probe.interval));
        let onset = SystemTime::now();
        let injected = self.inject(kind);
        let outcome = injected.and_then(|()| {
            let (decision, interim) = c.wait_value("a failover decision", first_failover_decision)?;
            let at = decision["at"].as_str().and_then(parse_rfc3339).ok_or(BenchError::DecisionWithoutTime)?;
            let decided = at.duration_since(onset).map_err(|_| BenchError::DecisionBeforeOnset)?;
            Ok(TrialOutcome { decided, suspect: first_suspect(&c.health_changes(), onset), interim })
        });
        drop(c);
        self.restore(kind)?;
        outcome
    }

    /// Blip `i` of `n`: whether it led to a failover decision, a down state,
    /// a suspect state. Blip `i` starts in the `i`-th `n`-th of the probe
    /// interval, so that the blips cover every phase of the probe cycle,
    /// including the worst (just before or just after a probe starts).
    pub fn blip(
        &mut self,
        length: Duration,
        (i, n): (usize, usize),
        settings: &Config,
    ) -> Result<BlipOutcome, BenchError> {
        let c = self.start_run()?;
        std::thread::sleep(stratified_phase(settings.probe.interval, i, n));
        let paused = self.primary.pause().map_err(BenchError::Lab);
        std::thread::sleep(length);
        self.primary.resume().map_err(BenchError::Lab)?;
        paused?;
        let resumed = Instant::now();
        c.wait("the primary healthy again", |c| {
            resumed.elapsed() >= BLIP_AFTERMATH
                && c.json("/v1/status")["backends"]
                    .as_array()
                    .is_some_and(|b| b.iter().any(|b| b["name"] == "primary" && health(b) == Some(Health::Healthy)))
        })?;
        let incidents = c.json("/v1/incidents");
        let failover = incidents.as_array().is_some_and(|a| a.iter().any(|i| i["decision"]["action"] == "failover"));
        let changes = c.health_changes();
        Ok(BlipOutcome {
            failover,
            down: primary_changes(&changes, Health::Suspect, Health::Down).next().is_some(),
            suspect: primary_changes(&changes, Health::Healthy, Health::Suspect).next().is_some(),
            streak: longest_streak(&changes),
        })
    }

    fn inject(&mut self, kind: FaultKind) -> Result<(), BenchError> {
        match kind {
            FaultKind::Sigstop => self.primary.pause().map_err(BenchError::Lab),
            FaultKind::Sigkill => {
                self.primary.kill();
                Ok(())
            }
            FaultKind::NftDrop => nft_drop(self.primary.s3_port),
        }
    }

    fn restore(&mut self, kind: FaultKind) -> Result<(), BenchError> {
        match kind {
            FaultKind::Sigstop => self.primary.resume().map_err(BenchError::Lab),
            FaultKind::Sigkill => self.primary.restart().map_err(BenchError::Restart),
            FaultKind::NftDrop => nft_delete(),
        }
    }
}

/// The primary's incident's first `failover` decision in its timeline, and
/// the actions of the decisions before it.
fn first_failover_decision(c: &TrialProcess) -> Option<(Value, Vec<String>)> {
    let incidents = c.json("/v1/incidents");
    let inc = incidents.as_array()?.iter().find(|i| i["backend"] == "primary")?;
    let detail = c.json(&format!("/v1/incidents/{}", inc["id"].as_str()?));
    let decisions: Vec<&Value> = detail["timeline"].as_array()?.iter().filter(|e| e["kind"] == "decision").collect();
    let first = decisions.iter().position(|d| d["detail"]["action"] == "failover")?;
    let interim = decisions[..first].iter().map(|d| d["detail"]["action"].to_string()).collect();
    Some((decisions[first].clone(), interim))
}

/// The `health` of a backend in `/v1/status`, when it names one.
fn health(backend: &Value) -> Option<Health> {
    Health::deserialize(&backend["health"]).ok()
}
