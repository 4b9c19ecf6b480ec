//! Scheduled drills (`[[drills]]` in `cutover run`): each a child `cutover
//! drill` process on its cron schedule.

use std::sync::Arc;

use cutover_control::telemetry::Event;
use cutover_store::StoreExt;
use serde_json::json;

use super::Shared;

/// `[[drills]]`: runs each drill on its schedule, one at a time, as a child
/// `cutover drill` process against its staging configuration; records the
/// result in the audit log and `cutover_drills_total`.
pub async fn scheduled(shared: Arc<Shared>, drills: Vec<cutover_core::config::DrillConfig>) {
    if drills.is_empty() {
        return;
    }
    let Ok(exe) = std::env::current_exe() else {
        crate::logs::event(
            "error",
            "drill.alert",
            "ALERT scheduled drills: cannot find this executable",
            serde_json::json!({}),
        );
        return;
    };
    let mut next: Vec<Option<std::time::SystemTime>> =
        drills.iter().map(|d| d.cron.next_after(std::time::SystemTime::now())).collect();
    loop {
        let Some((i, at)) = next.iter().enumerate().filter_map(|(i, t)| t.map(|t| (i, t))).min_by_key(|(_, t)| *t)
        else {
            return;
        };
        let wait = at.duration_since(std::time::SystemTime::now()).unwrap_or_default();
        tokio::time::sleep(wait).await;
        let d = &drills[i];
        crate::logs::event(
            "info",
            "drill.started",
            &format!("drill {} ({}): starting against {}", d.scenario, d.cron, d.config.display()),
            serde_json::json!({"scenario": d.scenario, "cron": d.cron.to_string(), "config": d.config.display().to_string()}),
        );
        let mut cmd = tokio::process::Command::new(&exe);
        cmd.arg("--config").arg(&d.config).args(["drill", "--scenario", &d.scenario, "--runs", &d.runs.to_string()]);
        cmd.arg("--report").arg(&d.report);
        for (backend, url) in &d.chaos {
            cmd.arg("--chaos").arg(format!("{backend}={url}"));
        }
        if let Some(a) = &d.agent_endpoint {
            cmd.args(["--agent-endpoint", a]);
        }
        cmd.stdout(std::process::Stdio::null()).stderr(std::process::Stdio::piped()).kill_on_drop(true);
        let (result, detail) = match cmd.output().await {
            Ok(o) if o.status.success() => ("met", String::new()),
            Ok(o) if o.status.code() == Some(1) => ("breached", String::new()),
            Ok(o) => ("error", String::from_utf8_lossy(&o.stderr).chars().take(500).collect()),
            Err(e) => ("error", e.to_string()),
        };
        let report = d.report.join(format!("drill-{}.md", d.scenario));
        shared.telemetry.emit(&Event::DrillFinished {
            scenario: d.scenario.clone(),
            result: result.to_string(),
            report: report.display().to_string(),
            detail: detail.clone(),
        });
        if let Err(e) = shared.store.audit(
            &cutover_store::Fence::local(),
            std::time::SystemTime::now(),
            "scheduler",
            "drill",
            &json!({"scenario": d.scenario, "cron": d.cron.to_string(), "result": result,
                    "report": report.display().to_string(), "detail": detail}),
        ) {
            tracing::error!(error = %e, "writing the audit entry of a scheduled drill");
            shared.telemetry.emit(&Event::StoreFailed { op: "drill.audit".into(), error: None });
        }
        next[i] = d.cron.next_after(std::time::SystemTime::now());
    }
}
