//! The runbook engine of `cutover run`: its store, host, guard, secrets and
//! where its events go.

use std::sync::Arc;

use cutover_core::Config;
use cutover_orchestrate::engine::{Engine, EngineEvent};

use super::guard::ControllerGuard;
use super::host::RunHost;
use super::report::report;
use crate::wiring::Shared;

/// Builds the engine for `shared`; its events go to the log and the metrics.
pub fn engine(shared: &Arc<Shared>) -> Engine {
    let work_dir = shared.config.state.path.parent().unwrap_or(std::path::Path::new(".")).join("cutover-work");
    let store = shared.store.clone();
    let sink = shared.clone();
    Engine::new(
        store,
        Arc::new(RunHost { shared: shared.clone() }),
        work_dir,
        Arc::new(|k| std::env::var(k).ok()),
        Arc::new(move |e: &EngineEvent| report(&sink, e)),
    )
    .with_secrets(held_secrets(&shared.config))
    .with_guard(Arc::new(ControllerGuard { shared: shared.clone() }))
    .with_incident_links(incident_links(&shared.config))
}

/// Where notifications link to an incident: its console page under `[api]
/// public_url`; else the API's `/v1/incidents` on the address this node
/// advertises (`[ha] advertise_api`), else on `http://` + `[api] listen`
/// when that is a specific address; none without an `[api]`.
fn incident_links(config: &Config) -> Option<String> {
    if let Some(url) = config.api.as_ref().and_then(|a| a.public_url.as_ref()) {
        return Some(format!("{}/ui/incidents", url.trim_end_matches('/')));
    }
    let api = if let Some(url) = config.ha.as_ref().and_then(|h| h.advertise_api.as_ref()) {
        url.to_string()
    } else {
        let listen = config.api.as_ref()?.listen;
        if listen.ip().is_unspecified() {
            return None;
        }
        format!("http://{listen}")
    };
    Some(format!("{}/v1/incidents", api.trim_end_matches('/')))
}

/// The credentials cutover holds (backends, gateway clients): no step result
/// may show them, and a `command` step's program inherits the environment
/// they come from.
fn held_secrets(config: &Config) -> Vec<String> {
    let mut out = Vec::new();
    for b in &config.backends {
        if let Ok(c) = cutover_s3::resolve_credentials(b) {
            out.push(c.secret_access_key.expose().to_string());
            out.extend(c.session_token.as_ref().map(|t| t.expose().to_string()));
        }
    }
    for c in config.gateway.iter().flat_map(|g| &g.clients) {
        out.extend(match &c.secret {
            cutover_core::config::SecretRef::Env(var) => std::env::var(var).ok(),
            cutover_core::config::SecretRef::File(path) => {
                std::fs::read_to_string(path).ok().map(|s| s.trim_end_matches(['\r', '\n']).to_string())
            }
        });
    }
    out
}
