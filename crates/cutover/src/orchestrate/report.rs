//! Each engine event as a telemetry event: its log line (text or
//! `--log-format json`) and its metric come from `Telemetry::emit`.

use cutover_control::telemetry::Event;
use cutover_orchestrate::engine::EngineEvent;

use crate::wiring::Shared;

/// Emits the telemetry event of one engine event.
pub fn report(shared: &Shared, e: &EngineEvent) {
    let event = match e.clone() {
        EngineEvent::RunStarted { run, incident, kind, runbook, resumed } => {
            Event::RunStarted { run, incident, kind, runbook, resumed }
        }
        EngineEvent::StepStarted { run, incident, step, uses, phase, attempt } => {
            Event::StepStarted { run, incident, step, uses, phase, attempt }
        }
        EngineEvent::StepSkipped { run, incident, step } => Event::StepSkipped { run, incident, step },
        EngineEvent::StepFinished { run, incident, step, uses, phase, ok, attempts, duration, detail } => {
            Event::StepFinished { run, incident, step, uses, phase, ok, attempts, duration, detail }
        }
        EngineEvent::ApprovalRequested { run, incident, step, message, timeout } => {
            Event::ApprovalRequested { run, incident, step, message, timeout }
        }
        EngineEvent::RunFinished { run, incident, kind, outcome, duration } => {
            Event::RunFinished { run, incident, kind, outcome, duration }
        }
        EngineEvent::StoreError { op } => Event::StoreFailed { op: op.to_string(), error: None },
    };
    shared.telemetry.emit(&event);
}
