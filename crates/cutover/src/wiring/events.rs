//! What the controller task reports, in one loop: each event becomes a log
//! line (text or `--log-format json`) and a metric, and a due runbook goes
//! to the runbook queue.

use std::sync::Arc;

use cutover_control::controller::Event;
use cutover_control::metrics;
use tokio::sync::mpsc;

use super::Shared;

/// Reports every event of the controller task until it stops.
pub async fn report_events(shared: Arc<Shared>, mut events: mpsc::UnboundedReceiver<Event>) {
    while let Some(e) = events.recv().await {
        report_event(&shared, &e);
    }
}

/// One place turns the controller's events into log lines and metrics, and
/// queues the runbooks it asks for.
fn report_event(shared: &Shared, e: &Event) {
    use crate::logs::event;
    use serde_json::json;
    let mut m = shared.metrics.lock().unwrap();
    match e {
        Event::HealthChanged { backend, vantage, from, to, reason } => {
            m.inc(
                metrics::HEALTH_CHANGES,
                vec![("backend", backend.clone()), ("vantage", vantage.clone()), ("to", to.as_str().into())],
            );
            event(
                "info",
                "health",
                &format!("health {backend}@{vantage}: {} -> {} ({reason})", from.as_str(), to.as_str()),
                json!({"backend": backend, "vantage": vantage, "from": from, "to": to, "reason": reason}),
            );
        }
        Event::IncidentOpened { id, backend } => event(
            "info",
            "incident.opened",
            &format!("incident {id} opened for {backend}"),
            json!({"incident": id, "backend": backend}),
        ),
        Event::Decided { incident, decision } => {
            m.inc(metrics::DECISIONS, vec![("action", decision.action.as_str().into())]);
            event(
                "info",
                "decision",
                &format!(
                    "decision {incident}: {} {} ({})",
                    decision.action.as_str(),
                    decision.target.as_deref().unwrap_or("-"),
                    decision.reason
                ),
                json!({"incident": incident, "action": decision.action.as_str(), "target": decision.target, "reason": decision.reason}),
            );
        }
        Event::PolicyFailed { incident, error } => event(
            "error",
            "policy.error",
            &format!("ALERT policy error on {incident}, holding: {error}"),
            json!({"incident": incident, "error": error}),
        ),
        Event::RunbookDue(due) => {
            event(
                "info",
                "runbook.queued",
                &format!(
                    "runbook {}: {} {} -> {} queued (by {})",
                    due.incident, due.kind, due.source, due.target, due.actor
                ),
                json!({"incident": due.incident, "kind": due.kind, "source": due.source, "target": due.target, "actor": due.actor}),
            );
            if shared.jobs.send(due.clone()).is_err() {
                tracing::error!(incident = %due.incident, kind = %due.kind, "the runbook queue has stopped; not queued");
            }
        }
        Event::IncidentResolved { id, backend } => event(
            "info",
            "incident.resolved",
            &format!("incident {id} resolved: {backend} healthy again"),
            json!({"incident": id, "backend": backend}),
        ),
    }
}
