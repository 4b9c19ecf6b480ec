//! The drill's second vantage (partial-vantage): probes every backend like
//! an agent in another place would.

use std::sync::Arc;
use std::time::Instant;

use cutover_control::controller::Report;
use cutover_core::Config;
use cutover_s3::ClientOptions;

use crate::load;
use crate::wiring::Shared;

/// The drill's second vantage: probes every backend like an agent in another
/// place would, the primary at `direct` (not through the chaos proxy).
pub async fn second_vantage(shared: Arc<Shared>, config: Config, direct: cutover_core::Endpoint) {
    let mut clients = Vec::new();
    for b in &config.backends {
        let mut b = b.clone();
        if b.role == cutover_core::config::Role::Primary {
            b.endpoint = direct.clone();
        }
        if let Ok(c) = load::client(&b, ClientOptions::probe(config.probe.timeout)) {
            clients.push(c);
        }
    }
    let mut tick = tokio::time::interval(config.probe.interval);
    loop {
        tick.tick().await;
        for c in &clients {
            let started = Instant::now();
            let r = cutover_s3::probe::probe_cycle(c, &config.probe.prefix, config.probe.object_size).await;
            let report = Report { backend: r.backend.clone(), started, ok: r.ok, outcome: r.outcome.to_string() };
            if shared.controller.evidence("drill-agent", vec![report]).await.is_err() {
                return; // the controller has stopped
            }
        }
    }
}
