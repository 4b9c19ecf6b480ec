//! The drill's second vantage (partial-vantage): probes every backend like
//! an agent in another place would.

use std::sync::Arc;
use std::time::Instant;

use cutover_core::Config;
use cutover_s3::ClientOptions;

use crate::load;

/// The drill's second vantage: probes every backend like an agent in another
/// place would, the primary at `direct` (not through the chaos proxy).
pub async fn second_vantage(shared: Arc<crate::cmd::run::Shared>, config: Config, direct: cutover_core::Endpoint) {
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
            let events = shared.controller.lock().unwrap().observe(
                cutover_control::clock::Clock::system().now(),
                &r.backend,
                "drill-agent",
                started,
                r.ok,
                &r.outcome.to_string(),
            );
            for e in &events {
                crate::cmd::run::report_event(&shared, e);
            }
        }
    }
}
