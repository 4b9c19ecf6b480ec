//! One isolated drill run: a controller and gateway in this process, the
//! workload through the gateway, the scenario's faults, then what it cost.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use cutover_core::Config;
use cutover_s3::{ClientOptions, S3Client};
use serde_json::json;
use sha2::{Digest, Sha256};

use super::Scenario;
use super::faults::set_faults;
use super::measure::{failovers, timeline_measures};
use super::report::RunReport;
use super::setup::{client_for, config_secret};
use super::vantage::second_vantage;
use super::workload::{ClientView, workload};
use crate::wiring::{Running, start};
use crate::{Failure, load};

pub async fn one_run(
    mut config: Config,
    proxy: &cutover_core::Endpoint,
    scenario: Scenario,
    n: u32,
    agent: Option<cutover_core::Endpoint>,
) -> Result<RunReport, Failure> {
    set_faults(proxy, None).await?;
    if agent.is_some() {
        config.verify.quorum = 2;
    }
    let mut running = start(config.clone(), true).await?;
    if let Some(direct) = agent {
        running.spawn(second_vantage(running.shared.clone(), config.clone(), direct));
    }
    running.wait_for("every backend healthy", Duration::from_secs(30), Running::all_healthy).await?;
    let gw = running.gateway.context("the drill gateway")?;
    let app = client_for(&config, &format!("http://{gw}"), "drill", "CUTOVERDRILL", &config_secret(&config)?)?;
    let view = Arc::new(ClientView::default());
    let stop = Arc::new(AtomicBool::new(false));
    let workload = tokio::spawn(workload(app.clone(), view.clone(), stop.clone(), n));
    tokio::time::sleep(Duration::from_secs(2)).await;

    let onset = Instant::now();
    play(scenario, proxy, &running).await?;
    set_faults(proxy, None).await?;
    let recovered = Instant::now();
    let (detect_s, decision, rto_s) = timeline_measures(&running, onset);
    let mut fallback_s = None;
    if failovers(&running) > 0 {
        let limit = config.fallback.stable_for + Duration::from_secs(60);
        let resolved =
            |r: &Running| r.latest_incident().is_some_and(|i| i.state == cutover_core::domain::IncidentState::Resolved);
        if running.wait_for("fallback", limit, resolved).await.is_ok() {
            fallback_s = Some(recovered.elapsed().as_secs_f64());
        }
    } else {
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    stop.store(true, Ordering::SeqCst);
    // The workload only ends; it cannot fail.
    let _ = workload.await;
    drain_journal(&running).await;
    let direct = load::client(config.primary(), ClientOptions::probe(Duration::from_secs(10)))?;
    let acked = view.acked.lock().unwrap().clone();
    let lost = count_lost(&acked, [&app, &direct], onset, config.objectives.rpo).await;
    for key in acked.keys() {
        // Clean-up only: a key left behind does not change the result.
        let _ = app.delete_object(key).await;
    }
    let n_failovers = failovers(&running);
    running.shutdown().await;
    Ok(RunReport {
        run: n,
        detect_s,
        decision,
        rto_s,
        fallback_s,
        failovers: n_failovers,
        false_failovers: n_failovers.saturating_sub(scenario.allowed_failovers()),
        client_ok: view.ok.load(Ordering::SeqCst),
        client_failed: view.failed.load(Ordering::SeqCst),
        acked: acked.len(),
        lost,
    })
}

/// Injects the scenario's faults through the chaos proxy and lets them last.
async fn play(scenario: Scenario, proxy: &cutover_core::Endpoint, running: &Running) -> Result<(), Failure> {
    let blackhole = json!({"blackhole": true});
    match scenario {
        Scenario::HardDown | Scenario::Slowdown => {
            let f = if scenario == Scenario::HardDown { blackhole } else { json!({"slowdown_rate": 1.0}) };
            set_faults(proxy, Some(f)).await?;
            // Without a failover the run reports none; the wait's error adds nothing.
            let _ = running.wait_for("failover", Duration::from_secs(30), |r| failovers(r) > 0).await;
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        Scenario::Blip => {
            set_faults(proxy, Some(blackhole)).await?;
            tokio::time::sleep(Duration::from_secs(2)).await;
            set_faults(proxy, None).await?;
            tokio::time::sleep(Duration::from_secs(8)).await;
        }
        Scenario::Brownout => {
            set_faults(proxy, Some(json!({"latency_ms": 600, "jitter_ms": 200}))).await?;
            tokio::time::sleep(Duration::from_secs(12)).await;
        }
        Scenario::Flapping => {
            for _ in 0..5 {
                set_faults(proxy, Some(blackhole.clone())).await?;
                tokio::time::sleep(Duration::from_secs(3)).await;
                set_faults(proxy, None).await?;
                tokio::time::sleep(Duration::from_secs(3)).await;
            }
        }
        Scenario::PartialVantage => {
            set_faults(proxy, Some(blackhole)).await?;
            tokio::time::sleep(Duration::from_secs(12)).await;
        }
    }
    Ok(())
}

/// Writes acknowledged from the other backend while the primary was
/// unreachable (hedged dual-writes) reach it through the journal: lets it
/// drain (for at most 60 s) before the primary is read.
async fn drain_journal(running: &Running) {
    if let Some(gw) = &running.shared.gateway {
        // A replay that cannot start now is retried by the gateway itself.
        let _ = gw.replay_soon().await;
        let until = Instant::now() + Duration::from_secs(60);
        while gw.state().journal_depth().await.map(|(n, _)| n).unwrap_or(0) > 0 && Instant::now() < until {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// Acknowledged writes that `clients` (the gateway, the primary directly)
/// do not read back intact; with `rpo` > 0, those acknowledged within `rpo`
/// of the onset are tolerated (and counted in a line of their own).
async fn count_lost(
    acked: &std::collections::BTreeMap<String, (String, Instant)>,
    clients: [&S3Client; 2],
    onset: Instant,
    rpo: Duration,
) -> usize {
    let (mut lost, mut tolerated) = (0, 0);
    for (key, (hash, at)) in acked {
        let mut gone = false;
        for c in clients {
            if !c.get_object(key, &[]).await.is_ok_and(|r| hex::encode(Sha256::digest(&r.body)) == *hash) {
                gone = true;
                println!("[drill] LOST {key} via {}", c.name());
            }
        }
        // With rpo > 0, a write acknowledged within rpo of the onset may be lost.
        let near = if *at >= onset { *at - onset <= rpo } else { onset - *at <= rpo };
        match (gone, !rpo.is_zero() && near) {
            (true, true) => tolerated += 1,
            (true, false) => lost += 1,
            _ => {}
        }
    }
    if tolerated > 0 {
        println!("[drill] {tolerated} lost writes acknowledged within the rpo of the onset (tolerated)");
    }
    lost
}
