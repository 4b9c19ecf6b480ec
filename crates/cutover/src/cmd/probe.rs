//! `cutover probe`: one probe cycle per backend, once or continuously.

use cutover_s3::probe::{ProbeReport, probe_cycle};
use cutover_s3::{ClientOptions, S3Client};

use crate::Failure;
use crate::cli::{Global, ProbeArgs};
use crate::{load, runtime};

pub fn run(global: &Global, args: ProbeArgs) -> Result<(), Failure> {
    let config = load::config(global)?;
    let backends = load::select(&config, args.backend.as_deref())?;
    let opts = ClientOptions::probe(config.probe.timeout);
    let clients = backends.iter().map(|b| load::client(b, opts)).collect::<Result<Vec<_>, _>>()?;
    let probe = &config.probe;
    runtime().block_on(async {
        let mut ticker = tokio::time::interval(probe.interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticker.tick().await;
        loop {
            let reports = cycle(&clients, &probe.prefix, probe.object_size).await;
            let all_ok = reports.iter().all(|r| r.ok);
            for r in &reports {
                print_report(r, args.json);
            }
            if !args.watch {
                return if all_ok { Ok(()) } else { Err(Failure::Failed) };
            }
            tokio::select! {
                _ = ticker.tick() => {}
                _ = tokio::signal::ctrl_c() => return if all_ok { Ok(()) } else { Err(Failure::Failed) },
            }
        }
    })
}

/// Probes every client concurrently; reports in configuration order.
async fn cycle(clients: &[S3Client], prefix: &str, size: usize) -> Vec<ProbeReport> {
    let tasks: Vec<_> = clients
        .iter()
        .map(|c| {
            let (c, prefix) = (c.clone(), prefix.to_string());
            tokio::spawn(async move { probe_cycle(&c, &prefix, size).await })
        })
        .collect();
    let mut out = Vec::with_capacity(tasks.len());
    for t in tasks {
        out.push(t.await.expect("probe task"));
    }
    out
}

fn print_report(r: &ProbeReport, json: bool) {
    if json {
        println!("{}", serde_json::to_string(r).expect("report serializes"));
        return;
    }
    let ops: Vec<String> =
        r.ops.iter().map(|o| format!("{} {:.1}ms{}", o.op, o.ms, if o.ok { "" } else { " FAILED" })).collect();
    let status = if r.ok { "ok".to_string() } else { format!("FAIL {}", r.outcome) };
    println!("{:<16} {:<28} {}", r.backend, status, ops.join("  "));
    if let Some(d) = &r.detail {
        println!("{:<16} {d}", "");
    }
}
