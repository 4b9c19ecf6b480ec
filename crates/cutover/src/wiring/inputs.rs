//! The policy's other inputs: signals (Prometheus, status page) and
//! replication (lag and the gateway's journal), handed to the controller
//! task as they are read.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::task::JoinHandle;

use super::Shared;

/// How often the replication input is read.
const REPLICATION_EVERY: Duration = Duration::from_secs(5);

/// Starts one watcher per configured signal, each on its own interval:
/// every reading goes into the policy input and the metrics.
pub fn watch_signals(shared: Arc<Shared>) -> Vec<JoinHandle<()>> {
    let config = shared.config.signals.clone();
    cutover_control::signals::spawn(&config, move |s| {
        shared.telemetry.emit(&s.event());
        let reading = s.to_json(Instant::now());
        shared.console.signals.record(s.name(), reading.clone());
        shared.controller.set_signal(s.name(), reading);
    })
}

/// Every 5 s: the replication lag recorded by `cutover replicate` and the
/// gateway's journal depth, into the policy input (`input.replication`).
/// Returns when the controller has stopped.
pub async fn replication_loop(shared: Arc<Shared>) {
    let mut tick = tokio::time::interval(REPLICATION_EVERY);
    loop {
        tick.tick().await;
        let path = shared.config.state.path.clone();
        let lags = tokio::task::spawn_blocking(move || cutover_sync::latest_lag(&path)).await;
        let lags = match lags {
            Ok(Ok(l)) => serde_json::to_value(l).unwrap_or_default(),
            _ => Value::Array(Vec::new()),
        };
        let journal = match &shared.gateway {
            Some(gw) => match gw.state().journal_depth().await {
                Ok((depth, oldest)) => json!({
                    "pending": depth,
                    "oldest_age_ms": oldest.map(|ms| (cutover_core::time::unix_ms(std::time::SystemTime::now()) as i64 - ms).max(0)),
                }),
                Err(_) => Value::Null,
            },
            None => Value::Null,
        };
        if !shared.controller.set_replication(json!({"lags": lags, "journal": journal})) {
            return;
        }
    }
}
