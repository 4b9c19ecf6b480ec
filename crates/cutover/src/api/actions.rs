//! What each endpoint asks of the running controller: one function per
//! request, taking the checked input and returning a typed result. The
//! handlers do nothing else with the controller, which they reach through
//! its handle only: requests over its channel, the status from its watch
//! (never waiting for it). Reads of the state store run off the async
//! workers.

use cutover_control::controller::{Report, RequestError, RunbookDue};
use cutover_store::Store;
use serde_json::{Value, json};

use super::error::ApiError;
use crate::wiring::Shared;

/// `GET /v1/status`: the controller's latest published status.
pub fn status(shared: &Shared) -> Value {
    json!(*shared.controller.status())
}

/// `GET /v1/incidents`.
pub async fn incidents(shared: &Shared) -> Result<Value, ApiError> {
    let list = read_store(shared, |store| store.incidents()).await??;
    Ok(json!(list))
}

/// `GET /v1/incidents/{id}`.
pub async fn incident(shared: &Shared, id: &str) -> Result<Option<Value>, ApiError> {
    let id = id.to_string();
    read_store(shared, move |store| incident_json(store, &id)).await
}

/// Runs `read` on the state store on a blocking thread.
async fn read_store<T: Send + 'static>(
    shared: &Shared,
    read: impl FnOnce(&dyn Store) -> T + Send + 'static,
) -> Result<T, ApiError> {
    let store = shared.store.clone();
    tokio::task::spawn_blocking(move || read(store.as_ref())).await.map_err(ApiError::StoreRead)
}

/// An incident with its timeline, as `GET /v1/incidents/{id}` and
/// `cutover incidents show` print it.
pub fn incident_json(store: &dyn Store, id: &str) -> Option<Value> {
    let inc = store.incident(id).ok()??;
    let mut v = json!(inc);
    v["timeline"] = json!(store.timeline(id).unwrap_or_default());
    v["runs"] = json!(store.runs_for(id).unwrap_or_default());
    Some(v)
}

/// An approver's verdict on an incident; the controller queues the
/// failover it starts. Returns whether it started one.
pub async fn verdict(
    shared: &Shared,
    id: &str,
    approve: bool,
    actor: &str,
    comment: &str,
) -> Result<bool, RequestError> {
    let due = shared.controller.approval(id, approve, actor, comment).await?;
    Ok(due.is_some())
}

/// An admin's forced failover; the controller queues its runbook.
pub async fn force_failover(
    shared: &Shared,
    target: &str,
    reason: &str,
    actor: &str,
) -> Result<RunbookDue, RequestError> {
    shared.controller.force_failover(target, reason, actor).await
}

/// The configured backends, which evidence may name.
pub fn backend_names(shared: &Shared) -> Vec<String> {
    shared.config.backends.iter().map(|b| b.name.clone()).collect()
}

/// Checked evidence from `vantage`; returns once the controller has taken
/// it into account.
pub async fn observe(shared: &Shared, vantage: &str, reports: Vec<Report>) -> Result<(), RequestError> {
    shared.controller.evidence(vantage, reports).await
}
