//! The drill's report: per run and over all runs, against the
//! `[objectives]`, as `DIR/drill-<scenario>.{md,json}`.

use anyhow::Context;
use cutover_core::Config;
use cutover_core::config::ObjectivesConfig as Objectives;
use serde::Serialize;
use serde_json::{Value, json};

use super::{DrillArgs, Scenario, secs};
use crate::Failure;
use crate::stats::Stats;

/// One run's measurements.
#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    pub run: u32,
    pub detect_s: Option<f64>,
    pub decision: Option<String>,
    pub rto_s: Option<f64>,
    pub fallback_s: Option<f64>,
    pub failovers: u32,
    pub false_failovers: u32,
    pub client_ok: u64,
    pub client_failed: u64,
    pub acked: usize,
    pub lost: usize,
}

/// The runs summed up against the objectives.
struct Assessment {
    /// Median and maximum RTO of the runs that failed over, in seconds.
    median: Option<f64>,
    max: Option<f64>,
    false_failovers: u32,
    lost: usize,
    breaches: Vec<String>,
}

fn assess(scenario: Scenario, o: &Objectives, runs: &[RunReport]) -> Assessment {
    let rtos: Vec<f64> = runs.iter().filter_map(|r| r.rto_s).collect();
    let rto = Stats::of(&rtos);
    let (median, max) = (rto.map(|s| s.median), rto.map(|s| s.max));
    let false_failovers: u32 = runs.iter().map(|r| r.false_failovers).sum();
    let lost: usize = runs.iter().map(|r| r.lost).sum();
    let missing = scenario.expects_failover() && rtos.len() < runs.len();
    let mut breaches = Vec::new();
    if missing {
        breaches.push(format!("{} of {} runs did not fail over", runs.len() - rtos.len(), runs.len()));
    }
    if let Some(m) = max.filter(|m| scenario.expects_failover() && *m > o.rto.as_secs_f64()) {
        breaches.push(format!("RTO {m:.2}s exceeds the objective of {:?}", o.rto));
    }
    if lost > 0 {
        breaches.push(format!("{lost} acknowledged writes lost (rpo {:?})", o.rpo));
    }
    if false_failovers > o.max_false_failovers {
        breaches.push(format!("{false_failovers} false failovers (allowed {})", o.max_false_failovers));
    }
    Assessment { median, max, false_failovers, lost, breaches }
}

fn json_report(scenario: Scenario, o: &Objectives, runs: &[RunReport], v: &Assessment) -> Value {
    json!({
        "scenario": scenario,
        "runs": runs,
        "rto_s": {"median": v.median, "max": v.max},
        "false_failovers": v.false_failovers,
        "lost_acknowledged_writes": v.lost,
        "objectives": {"rto_s": o.rto.as_secs_f64(), "rpo_s": o.rpo.as_secs_f64(), "max_false_failovers": o.max_false_failovers},
        "met": v.breaches.is_empty(),
        "breaches": v.breaches,
    })
}

fn markdown_report(name: &str, o: &Objectives, runs: &[RunReport], v: &Assessment) -> String {
    let mut md = format!(
        "# Drill: {name}\n\n{} runs · RTO median {} max {} (objective {:?}) · false failovers {} · \
         lost acknowledged writes {}\n\n| run | detect | decision | RTO | fallback | client ok | client failed | acked | lost | false failovers |\n\
         |---|---|---|---|---|---|---|---|---|---|\n",
        runs.len(),
        secs(v.median),
        secs(v.max),
        o.rto,
        v.false_failovers,
        v.lost,
    );
    for r in runs {
        md.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
            r.run,
            secs(r.detect_s),
            r.decision.as_deref().unwrap_or("none"),
            secs(r.rto_s),
            secs(r.fallback_s),
            r.client_ok,
            r.client_failed,
            r.acked,
            r.lost,
            r.false_failovers
        ));
    }
    md.push_str(&if v.breaches.is_empty() {
        "\nObjectives met.\n".to_string()
    } else {
        format!("\nObjectives BREACHED:\n{}\n", v.breaches.iter().map(|b| format!("- {b}\n")).collect::<String>())
    });
    md
}

/// Writes both reports, prints one, and fails when an objective is breached.
pub fn report(config: &Config, args: &DrillArgs, runs: &[RunReport]) -> Result<(), Failure> {
    let o = &config.objectives;
    let v = assess(args.scenario, o, runs);
    let doc = json_report(args.scenario, o, runs, &v);
    let name = args.scenario.name();
    let json_path = args.report.join(format!("drill-{name}.json"));
    std::fs::write(&json_path, serde_json::to_string_pretty(&doc).expect("json")).context("writing the report")?;
    let md = markdown_report(name, o, runs, &v);
    let md_path = args.report.join(format!("drill-{name}.md"));
    std::fs::write(&md_path, &md).context("writing the report")?;
    if args.json {
        println!("{doc}");
    } else {
        print!("{md}");
    }
    println!("[drill] reports: {} and {}", md_path.display(), json_path.display());
    if v.breaches.is_empty() { Ok(()) } else { Err(Failure::Failed) }
}

#[cfg(test)]
#[path = "report_tests.rs"]
mod tests;
