//! The rollback guard of `cutover run`, asked through the controller task.

use std::sync::Arc;

use cutover_control::controller::RollbackQuestion;
use cutover_orchestrate::engine::{BoxFut, RollbackGuard, RollbackRequest, RollbackVerdict};

use crate::wiring::Shared;

/// The rollback guard of `cutover run`: the controller's health of the
/// backend a rollback would switch traffic back onto, and the policy's
/// `rollback` rule ([`cutover_control::controller::Controller::rollback_verdict`]),
/// evaluated on the controller task. A controller that has stopped holds
/// the rollback.
pub struct ControllerGuard {
    pub shared: Arc<Shared>,
}

impl RollbackGuard for ControllerGuard {
    fn may_roll_back_onto<'a>(&'a self, r: &'a RollbackRequest<'a>) -> BoxFut<'a, RollbackVerdict> {
        let (run, kind) = (r.run, r.kind);
        let (incident, failed_step, error, onto) =
            (r.incident.to_string(), r.failed_step.to_string(), r.error.to_string(), r.onto.to_string());
        Box::pin(async move {
            let held_onto = onto.clone();
            let asked = self.shared.controller.query(move |c, now| {
                let q = RollbackQuestion {
                    run,
                    incident: &incident,
                    kind,
                    failed_step: &failed_step,
                    error: &error,
                    onto: &onto,
                };
                c.rollback_verdict(&q, now)
            });
            match asked.await {
                Ok((allow, reason, health)) => {
                    RollbackVerdict { allow, reason, health: Some(health.as_str().to_string()) }
                }
                Err(e) => RollbackVerdict {
                    allow: false,
                    reason: format!("not rolling back onto {held_onto}: {e}"),
                    health: None,
                },
            }
        })
    }
}
