//! `cutover bench detect` end to end (not timed): one SIGKILL trial and one
//! blip against real Garage processes and real `cutover run` processes.

mod common;

use common::cutover;

#[test]
fn bench_detect_runs_one_sigkill_trial_and_one_blip_and_reports_finite_figures() {
    let run = cutover(&["bench", "detect", "--trials", "1", "--kinds", "sigkill", "--json"], &[]);
    assert_eq!(run.code, 0, "{run:?}");
    let report: serde_json::Value = serde_json::from_str(run.stdout.trim()).unwrap_or_else(|e| panic!("{e}: {run:?}"));
    let kinds = report["kinds"].as_array().unwrap();
    assert_eq!(kinds.len(), 1, "{report}");
    assert_eq!(kinds[0]["kind"], "sigkill");
    assert_eq!(kinds[0]["decided"], 1, "{report}");
    let median = kinds[0]["median_ms"].as_f64().unwrap();
    assert!(median.is_finite() && median > 0.0, "{report}");
    assert_eq!(kinds[0]["max_ms"].as_f64(), Some(median));
    assert_eq!(report["blips"]["trials"], 1);
    assert_eq!(report["blips"]["false_failovers"], 0, "{report}");
    assert_eq!(report["settings"]["confirm_after_ms"].as_u64().map(|ms| ms > 0), Some(true));
    assert!(run.stderr.contains("sigkill 1/1: failover decision after"), "{}", run.stderr);
}

#[test]
fn bench_detect_rejects_an_unknown_kind_and_a_bad_extra_file() {
    let run = cutover(&["bench", "detect", "--kinds", "sigterm"], &[]);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(run.stderr.contains("sigterm"), "{}", run.stderr);
    let run = cutover(&["bench", "detect", "--extra", "/nonexistent/extra.toml"], &[]);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(run.stderr.contains("/nonexistent/extra.toml"), "{}", run.stderr);
}
