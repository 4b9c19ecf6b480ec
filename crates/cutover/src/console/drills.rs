//! The drills page: the JSON reports that `cutover drill` wrote
//! (`drill-<scenario>.json`) in the report directory of each scheduled
//! drill (`[[drills]] report`), with their objectives, their verdict and
//! two charts drawn on the server: RTO per run against the objective, and
//! acknowledged writes lost per run (the RPO objective allows none).

use std::path::{Path, PathBuf};

use maud::{Markup, PreEscaped, html};
use serde_json::Value;

/// The most report files read from one directory.
const MAX_REPORTS: usize = 50;
/// A report file larger than this is skipped.
const MAX_BYTES: u64 = 4 << 20;

/// One drill report as written by `cutover drill`.
#[derive(Debug, Clone, PartialEq)]
pub struct DrillReport {
    pub path: PathBuf,
    pub doc: Value,
}

/// The reports in `dirs` (each read once), newest file first; unreadable
/// or malformed files are listed with their problem.
pub fn read(dirs: &[PathBuf]) -> Vec<Result<DrillReport, String>> {
    let mut seen = Vec::new();
    let mut files: Vec<(std::time::SystemTime, PathBuf)> = Vec::new();
    for d in dirs {
        if seen.contains(d) {
            continue;
        }
        seen.push(d.clone());
        let Ok(entries) = std::fs::read_dir(d) else { continue };
        for e in entries.flatten().take(1000) {
            let p = e.path();
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if name.starts_with("drill-") && name.ends_with(".json") {
                let modified = e.metadata().and_then(|m| m.modified()).unwrap_or(std::time::UNIX_EPOCH);
                files.push((modified, p));
            }
        }
    }
    files.sort_by_key(|f| std::cmp::Reverse(f.0));
    files.into_iter().take(MAX_REPORTS).map(|(_, p)| read_one(&p)).collect()
}

fn read_one(p: &Path) -> Result<DrillReport, String> {
    let size = std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
    if size > MAX_BYTES {
        return Err(format!("{}: {size} bytes is too large for a drill report", p.display()));
    }
    let text = std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()))?;
    let doc: Value = serde_json::from_str(&text).map_err(|e| format!("{}: not JSON: {e}", p.display()))?;
    if !doc["runs"].is_array() {
        return Err(format!("{}: not a drill report (no runs)", p.display()));
    }
    Ok(DrillReport { path: p.to_path_buf(), doc })
}

/// The page body.
pub fn page(reports: &[Result<DrillReport, String>], configured: usize) -> Markup {
    html! {
        main {
            h1 { "Drills" }
            p { (configured) " scheduled drill(s) in [[drills]]; the reports their runs wrote:" }
            @if reports.is_empty() { p #no-drills { "No drill reports yet." } }
            @for r in reports {
                @match r {
                    Err(e) => { p.error { (e) } }
                    Ok(r) => { (one(r)) }
                }
            }
            p.cli { "CLI: " code { "cutover drill --scenario NAME --runs 3 --report DIR" } }
        }
    }
}

fn one(r: &DrillReport) -> Markup {
    let d = &r.doc;
    let met = d["met"].as_bool().unwrap_or(false);
    let runs = d["runs"].as_array().cloned().unwrap_or_default();
    let rto_objective = d["objectives"]["rto_s"].as_f64();
    let rtos: Vec<Option<f64>> = runs.iter().map(|x| x["rto_s"].as_f64()).collect();
    let lost: Vec<Option<f64>> = runs.iter().map(|x| x["lost"].as_f64()).collect();
    html! {
        section.drill data-scenario=(d["scenario"].as_str().unwrap_or("?")) {
            h2 { "Scenario " (d["scenario"].as_str().unwrap_or("?")) " · " span class=(if met { "healthy" } else { "down" }) { (if met { "met" } else { "breached" }) } }
            p {
                "RTO median " (secs(d["rto_s"]["median"].as_f64())) ", max " (secs(d["rto_s"]["max"].as_f64()))
                " (objective " (secs(rto_objective)) ") · acknowledged writes lost " (d["lost_acknowledged_writes"].to_string())
                " · false failovers " (d["false_failovers"].to_string())
            }
            @for b in d["breaches"].as_array().into_iter().flatten() { p.error { (b.as_str().unwrap_or("")) } }
            (PreEscaped(bars("RTO per run (s)", &rtos, rto_objective)))
            (PreEscaped(bars("acknowledged writes lost per run (RPO: none allowed)", &lost, Some(0.0))))
            p.cli { "report: " code { (r.path.display().to_string()) } }
        }
    }
}

fn secs(v: Option<f64>) -> String {
    v.map(|s| format!("{s:.1} s")).unwrap_or_else(|| "—".into())
}

/// A bar per run, with a dashed line at `objective`.
pub fn bars(title: &str, values: &[Option<f64>], objective: Option<f64>) -> String {
    let (w, h, left, bottom, top) = (420.0, 160.0, 40.0, 130.0, 25.0);
    let max = values.iter().flatten().copied().chain(objective).fold(1.0f64, f64::max) * 1.1;
    let y = |v: f64| bottom - (bottom - top) * (v / max);
    let slot = (w - left - 10.0) / values.len().max(1) as f64;
    let svg = html! {
        svg.chart xmlns="http://www.w3.org/2000/svg" viewBox=(format!("0 0 {w} {h}")) width=(w) height=(h) role="img" aria-label=(title) {
            title { (title) }
            text x=(left) y="15" font-size="12" { (title) }
            line x1=(left) y1=(bottom) x2=(w - 10.0) y2=(bottom) stroke="#555" {}
            @for (i, v) in values.iter().enumerate() {
                @let x = left + slot * i as f64 + slot * 0.2;
                @match v {
                    Some(v) => {
                        rect class="bar" x=(x) y=(y(*v)) width=(slot * 0.6) height=(bottom - y(*v)) fill="#2563eb" {}
                        text x=(x + slot * 0.3) y=(y(*v) - 3.0) font-size="10" text-anchor="middle" { (format!("{v:.1}")) }
                    }
                    None => { text x=(x + slot * 0.3) y=(bottom - 3.0) font-size="10" text-anchor="middle" { "n/a" } }
                }
                text x=(x + slot * 0.3) y=(bottom + 13.0) font-size="10" text-anchor="middle" { "run " (i + 1) }
            }
            @if let Some(o) = objective {
                line class="objective" x1=(left) y1=(y(o)) x2=(w - 10.0) y2=(y(o)) stroke="#b91c1c" stroke-dasharray="5 3" {}
                text x=(w - 12.0) y=(y(o) - 3.0) font-size="10" text-anchor="end" fill="#b91c1c" { "objective " (format!("{o:.1}")) }
            }
        }
    };
    svg.into_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_are_read_from_the_report_directories_and_drawn_with_their_objectives() {
        let dir = tempfile::tempdir().unwrap();
        let doc = serde_json::json!({
            "scenario": "hang", "met": false, "false_failovers": 0, "lost_acknowledged_writes": 2,
            "rto_s": {"median": 4.2, "max": 7.5},
            "objectives": {"rto_s": 5.0, "rpo_s": 0.0, "max_false_failovers": 0},
            "breaches": ["RTO 7.5 s over 5 s"],
            "runs": [{"run": 1, "rto_s": 4.2, "lost": 0}, {"run": 2, "rto_s": 7.5, "lost": 2}, {"run": 3, "rto_s": null, "lost": 0}],
        });
        std::fs::write(dir.path().join("drill-hang.json"), doc.to_string()).unwrap();
        std::fs::write(dir.path().join("drill-bad.json"), "{").unwrap();
        std::fs::write(dir.path().join("other.json"), "{}").unwrap();
        let dirs = [dir.path().to_path_buf(), dir.path().to_path_buf()];
        let reports = read(&dirs);
        assert_eq!(reports.len(), 2, "each directory once, drill-*.json only: {reports:?}");
        assert!(reports.iter().any(|r| r.as_ref().is_err_and(|e| e.contains("not JSON"))));
        let html = page(&reports, 1).into_string();
        assert!(html.contains("Scenario hang") && html.contains("breached") && html.contains("RTO 7.5 s over 5 s"));
        assert_eq!(
            html.matches("class=\"bar\"").count(),
            5,
            "two RTO bars (one run has none) and three lost-write bars"
        );
        assert_eq!(html.matches("class=\"objective\"").count(), 2);
        assert!(html.contains("n/a"));
        assert!(page(&[], 0).into_string().contains("No drill reports yet."));
    }
}
