//! What the controller task reports, in one loop. The controller has
//! emitted each event's log line and metric already (`Telemetry::emit`);
//! what is left here is to queue the runbooks that are due.

use std::sync::Arc;

use cutover_control::controller::Event;
use tokio::sync::mpsc;

use super::Shared;

/// Queues the runbooks the controller task asks for until it stops.
pub async fn report_events(shared: Arc<Shared>, mut events: mpsc::UnboundedReceiver<Event>) {
    while let Some(e) = events.recv().await {
        if let Event::RunbookDue(due) = e
            && shared.jobs.send(due.clone()).is_err()
        {
            tracing::error!(incident = %due.incident, kind = %due.kind, "the runbook queue has stopped; not queued");
        }
    }
}
