//! The in-process gateway's answers per second to the node-local store
//! ([`cutover_store::HealthHistory::record_client_counts`]), for the client
//! impact of an incident in `cutover incidents report`. Once a second the
//! task reads the gateway's answer counters (two atomics, nothing on the
//! request path) and writes the second's figures off the async workers;
//! a second without answers writes nothing.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use cutover_gateway::Gateway;
use cutover_store::{ClientCount, Store};

/// How often the counters are read.
const EVERY: Duration = Duration::from_secs(1);

/// Runs until cancelled.
pub async fn run(gateway: Gateway, store: Arc<dyn Store>) {
    let mut tick = tokio::time::interval(EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last = gateway.answers();
    loop {
        tick.tick().await;
        let now = gateway.answers();
        let count = ClientCount {
            at: SystemTime::now(),
            answered: now.0.saturating_sub(last.0),
            failed: now.1.saturating_sub(last.1),
        };
        last = now;
        if count.answered == 0 {
            continue;
        }
        let store = store.clone();
        match tokio::task::spawn_blocking(move || store.record_client_counts(&[count])).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "storing the gateway's answers per second failed"),
            Err(e) => tracing::warn!(error = %e, "the writer of the gateway's answers per second failed"),
        }
    }
}
