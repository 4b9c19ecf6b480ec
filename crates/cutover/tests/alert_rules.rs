//! The Prometheus alerting rules under `deploy/prometheus/`: `promtool
//! check rules` and `promtool test rules` (Debian's `prometheus` package
//! ships promtool) pass, and every metric they read is one that cutover
//! exports (its name is in the code that registers it).

use std::path::{Path, PathBuf};
use std::process::Command;

fn deploy() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/prometheus")
}

fn promtool() -> String {
    ["/usr/bin/promtool", "promtool"]
        .into_iter()
        .find(|p| Command::new(p).arg("--version").output().is_ok_and(|o| o.status.success()))
        .expect("promtool is installed (Debian package prometheus; .ci/run installs it)")
        .to_string()
}

#[test]
fn the_alerting_rules_pass_their_promtool_tests() {
    let dir = deploy();
    for args in [["check", "rules", "cutover.rules.yml"], ["test", "rules", "cutover.rules.test.yml"]] {
        let out = Command::new(promtool()).args(args).current_dir(&dir).output().unwrap();
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(out.status.success(), "promtool {}: {text}", args.join(" "));
        assert!(text.contains("SUCCESS"), "{text}");
    }
}

#[test]
fn every_metric_the_rules_read_is_exported_by_cutover() {
    let rules = std::fs::read_to_string(deploy().join("cutover.rules.yml")).unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let sources: String = [
        "crates/control/src/metrics.rs",
        "crates/gateway/src/metrics.rs",
        "crates/cutover/src/alerting.rs",
        "crates/cutover/src/wiring/ha.rs",
    ]
    .iter()
    .map(|p| std::fs::read_to_string(root.join(p)).unwrap())
    .collect();
    let mut names: Vec<&str> = rules
        .lines()
        .filter(|l| l.trim_start().starts_with("expr:"))
        .flat_map(|l| l.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')))
        .filter(|w| w.starts_with("cutover_"))
        .collect();
    names.sort();
    names.dedup();
    assert!(names.len() >= 8, "{names:?}");
    for name in names {
        let registered = name.strip_suffix("_total").unwrap_or(name);
        assert!(sources.contains(&format!("\"{registered}\"")), "{name} is not a metric cutover exports");
    }
}
