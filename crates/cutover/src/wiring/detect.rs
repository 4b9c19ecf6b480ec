//! detect and verify: the local probe cycles and the independent re-checks
//! of a backend that is not healthy, fed to the controller task.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use cutover_control::controller::LOCAL;
use cutover_control::telemetry::Event;
use cutover_core::config::ProbeConfig;
use cutover_s3::S3Client;
use cutover_s3::probe::{ProbeReport, probe_cycle};
use tokio::task::JoinSet;

use super::Shared;

/// Starts a probe cycle every interval; cycles may overlap when a backend
/// hangs (the controller counts one that is out longer than `slow_after`
/// as a failure). The cycles in flight end with this task. Returns when
/// the controller has stopped.
pub async fn probe_loop(backend: String, client: S3Client, probe: ProbeConfig, shared: Arc<Shared>) {
    let mut ticker = tokio::time::interval(probe.interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut cycles = JoinSet::new();
    let mut id = 0u64;
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            Some(done) = cycles.join_next() => {
                if let Err(e) = done {
                    tracing::error!(backend, error = %e, "a probe cycle panicked");
                }
                continue;
            }
        }
        id += 1;
        let global_id = (fxhash(&backend) << 32) | id;
        let started = Instant::now();
        if !shared.controller.probe_started(global_id, &backend, started) {
            return;
        }
        let (client, shared, backend, prefix) = (client.clone(), shared.clone(), backend.clone(), probe.prefix.clone());
        let size = probe.object_size;
        cycles.spawn(async move {
            let report = probe_cycle(&client, &prefix, size).await;
            record_probe(&shared, &report, started);
            shared.controller.probe_done(global_id, &backend, started, report.ok, report.outcome.to_string());
        });
    }
}

fn fxhash(s: &str) -> u64 {
    s.bytes().fold(0u64, |h, b| (h.rotate_left(5) ^ b as u64).wrapping_mul(0x517c_c1b7_2722_0a95)) & 0xffff_ffff
}

/// While a backend is not healthy (as the controller's status says),
/// re-checks it every `interval` through an independent path: a fresh
/// connection reading a known object. Returns when the controller has
/// stopped.
pub async fn verify_loop(backend: String, client: S3Client, prefix: String, interval: Duration, shared: Arc<Shared>) {
    let canary = format!("{prefix}canary");
    if let Err(e) = client.put_object(&canary, Bytes::from_static(b"cutover canary"), &[]).await {
        tracing::debug!(backend, error = %e, "writing the re-check canary failed; written again when needed");
    }
    let mut ticker = tokio::time::interval(interval);
    loop {
        ticker.tick().await;
        if !shared.controller.status().backend(&backend).is_some_and(|b| b.needs_verify) {
            continue;
        }
        let started = Instant::now();
        let r = match client.get_object(&canary, &[]).await {
            Err(e) if e.outcome() == cutover_core::Outcome::NoSuchKey => {
                client.put_object(&canary, Bytes::from_static(b"cutover canary"), &[]).await.map(|_| ())
            }
            other => other.map(|_| ()),
        };
        let (ok, outcome) = match r {
            Ok(()) => (true, "Ok".to_string()),
            Err(e) => (false, e.outcome().to_string()),
        };
        if !shared.controller.verified(&backend, started, ok, outcome) {
            return;
        }
    }
}

fn record_probe(shared: &Shared, r: &ProbeReport, started: Instant) {
    let ms = r.ops.iter().map(|o| o.ms).sum();
    // A sample is placed at its cycle's start: a hung probe fails when it times out.
    let at = std::time::SystemTime::now() - started.elapsed();
    let sample = crate::console::samples::Probe { at, ok: r.ok, ms };
    shared.console.probe_log.record(crate::console::samples::stored(&r.backend, &sample));
    shared.console.samples.probe(&r.backend, sample);
    shared.telemetry.emit(&Event::ProbeCycle { vantage: LOCAL.to_string(), report: r.clone() });
}
