//! What each endpoint asks of the running controller: one function per
//! request, taking the checked input and returning a typed result. The
//! handlers do nothing else with the controller.

use std::time::Instant;

use cutover_control::clock::Clock;
use cutover_control::controller::{Event, RequestError, RunbookDue};
use cutover_store::StoreError;
use serde_json::{Value, json};

use super::evidence::Report;
use crate::cmd::run::{Shared, report_event};

/// `GET /v1/status`.
pub fn status(shared: &Shared) -> Value {
    shared.controller.lock().unwrap().status(Instant::now())
}

/// `GET /v1/incidents`.
pub fn incidents(shared: &Shared) -> Result<Value, StoreError> {
    let list = shared.controller.lock().unwrap().store().incidents()?;
    Ok(json!(list))
}

/// `GET /v1/incidents/{id}`.
pub fn incident(shared: &Shared, id: &str) -> Option<Value> {
    incident_json(shared.controller.lock().unwrap().store().as_ref(), id)
}

/// An incident with its timeline, as `GET /v1/incidents/{id}` and
/// `cutover incidents show` print it.
pub fn incident_json(store: &dyn cutover_store::Store, id: &str) -> Option<Value> {
    let inc = store.incident(id).ok()??;
    let mut v = json!(inc);
    v["timeline"] = json!(store.timeline(id).unwrap_or_default());
    v["runs"] = json!(store.runs_for(id).unwrap_or_default());
    Some(v)
}

/// An approver's verdict on an incident; queues the failover it starts.
/// Returns whether it started one.
pub fn verdict(shared: &Shared, id: &str, approve: bool, actor: &str, comment: &str) -> Result<bool, RequestError> {
    let due = shared.controller.lock().unwrap().approval(id, approve, actor, comment, Clock::system().now())?;
    let started = due.is_some();
    if let Some(due) = due {
        report_event(shared, &Event::RunbookDue(due));
    }
    Ok(started)
}

/// An admin's forced failover; queues its runbook.
pub fn force_failover(shared: &Shared, target: &str, reason: &str, actor: &str) -> Result<RunbookDue, RequestError> {
    let due = shared.controller.lock().unwrap().force_failover(target, reason, actor, Clock::system().now())?;
    report_event(shared, &Event::RunbookDue(due.clone()));
    Ok(due)
}

/// The configured backends, which evidence may name.
pub fn backend_names(shared: &Shared) -> Vec<String> {
    shared.controller.lock().unwrap().backend_names()
}

/// Checked evidence from `vantage`, observed at `now`.
pub fn observe(shared: &Shared, now: Instant, vantage: &str, reports: &[Report]) {
    let now = Clock::system().at(now);
    let mut events: Vec<Event> = Vec::new();
    {
        let mut c = shared.controller.lock().unwrap();
        for r in reports {
            events.extend(c.observe(now, &r.backend, vantage, r.started, r.ok, &r.outcome));
        }
    }
    for e in &events {
        report_event(shared, e);
    }
}
