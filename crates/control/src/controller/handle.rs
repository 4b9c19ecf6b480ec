//! How the rest of the process talks to the controller task: a cheap,
//! clonable [`ControllerHandle`] that stamps each command with its clock's
//! [`Now`] and sends it; requests wait for their answer, notifications do
//! not.
//!
//! # Caveats
//! - A request sent after the task has stopped fails with
//!   [`RequestError::Stopped`]; a notification returns `false`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use cutover_core::domain::{RunKind, RunOutcome};
use cutover_store::Fence;
use serde_json::Value;
use tokio::sync::{mpsc, oneshot, watch};

use super::task::{Command, Reply, Stamped};
use super::{Controller, Leader, RequestError, RunbookDue, Status};
use crate::clock::{Clock, Now};

/// One probe result from a vantage: backend, when the cycle started, whether
/// it succeeded, and its outcome.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    pub backend: String,
    pub started: Instant,
    pub ok: bool,
    pub outcome: String,
}

/// How the rest of the process talks to the controller. Cheap to clone.
#[derive(Debug, Clone)]
pub struct ControllerHandle {
    pub(super) commands: mpsc::UnboundedSender<Stamped>,
    pub(super) status: watch::Receiver<Arc<Status>>,
    pub(super) clock: Clock,
}

impl ControllerHandle {
    /// The latest status; never waits for the controller.
    pub fn status(&self) -> Arc<Status> {
        self.status.borrow().clone()
    }

    /// A receiver that sees every new status (the gateway, the console).
    pub fn subscribe(&self) -> watch::Receiver<Arc<Status>> {
        self.status.clone()
    }

    /// The clock commands are stamped with.
    pub fn clock(&self) -> Clock {
        self.clock
    }

    fn send(&self, command: Command) -> bool {
        self.commands.send(Stamped { now: self.clock.now(), command }).is_ok()
    }

    async fn call<T>(&self, make: impl FnOnce(Reply<T>) -> Command) -> Result<T, RequestError> {
        let (reply, answer) = oneshot::channel();
        if !self.send(make(reply)) {
            return Err(RequestError::Stopped);
        }
        answer.await.unwrap_or(Err(RequestError::Stopped))
    }

    /// A probe cycle of the local vantage started (id unique per cycle).
    pub fn probe_started(&self, id: u64, backend: &str, at: Instant) -> bool {
        self.send(Command::ProbeStarted { id, backend: backend.to_string(), at })
    }

    /// A probe cycle of the local vantage ended.
    pub fn probe_done(&self, id: u64, backend: &str, started: Instant, ok: bool, outcome: String) -> bool {
        self.send(Command::ProbeDone { id, backend: backend.to_string(), started, ok, outcome })
    }

    /// A re-check of a backend ended.
    pub fn verified(&self, backend: &str, started: Instant, ok: bool, outcome: String) -> bool {
        self.send(Command::Verified { backend: backend.to_string(), started, ok, outcome })
    }

    /// Probe results from an agent; returns once they are taken into account.
    pub async fn evidence(&self, vantage: &str, reports: Vec<Report>) -> Result<(), RequestError> {
        let (reply, done) = oneshot::channel();
        if !self.send(Command::Evidence { vantage: vantage.to_string(), reports, reply }) {
            return Err(RequestError::Stopped);
        }
        done.await.map_err(|_| RequestError::Stopped)
    }

    /// `approve`/`reject` of an incident; a failover it starts is also
    /// reported as [`crate::telemetry::Event::RunbookDue`].
    pub async fn approval(
        &self,
        incident: &str,
        approve: bool,
        actor: &str,
        comment: &str,
    ) -> Result<Option<RunbookDue>, RequestError> {
        let (incident, actor, comment) = (incident.to_string(), actor.to_string(), comment.to_string());
        self.call(|reply| Command::Approval { incident, approve, actor, comment, reply }).await
    }

    /// A failover forced by an admin; also reported as [`crate::telemetry::Event::RunbookDue`].
    pub async fn force_failover(&self, target: &str, reason: &str, actor: &str) -> Result<RunbookDue, RequestError> {
        let (target, reason, actor) = (target.to_string(), reason.to_string(), actor.to_string());
        self.call(|reply| Command::ForceFailover { target, reason, actor, reply }).await
    }

    /// `state.switch`: makes `target` the active backend; returns the previous one.
    pub async fn set_active(&self, target: &str) -> Result<String, RequestError> {
        let target = target.to_string();
        self.call(|reply| Command::SetActive { target, reply }).await
    }

    /// A runbook run ended; moves its incident on.
    pub fn run_finished(&self, incident: &str, kind: RunKind, outcome: RunOutcome) -> bool {
        self.send(Command::RunFinished { incident: incident.into(), kind, outcome, reply: None })
    }

    /// [`ControllerHandle::run_finished`], waiting for the answer:
    /// [`RequestError::NotLeader`] on a standby (nothing recorded).
    pub async fn finish_run(&self, incident: &str, kind: RunKind, outcome: RunOutcome) -> Result<(), RequestError> {
        let incident = incident.to_string();
        self.call(|reply| Command::RunFinished { incident, kind, outcome, reply: Some(reply) }).await
    }

    /// Becomes the leader, acting with `fence` (see [`Controller::lead`]);
    /// returns once it leads, or with the store's error (it then stays a
    /// standby). The status says `leading` before this returns.
    pub async fn lead(&self, fence: Fence) -> Result<(), RequestError> {
        self.call(|reply| Command::Lead { fence, reply }).await
    }

    /// Stops acting (see [`Controller::stand_by`]): commands handled after
    /// this one write nothing shared. `leader` is who leads, when known.
    pub fn stand_by(&self, leader: Option<Leader>) -> bool {
        self.send(Command::StandBy { leader })
    }

    /// The latest reading of a signal, for the policy input.
    pub fn set_signal(&self, name: &str, value: Value) -> bool {
        self.send(Command::Signal { name: name.to_string(), value })
    }

    /// Replication lag and journal depth, for the policy input.
    pub fn set_replication(&self, value: Value) -> bool {
        self.send(Command::Replication(value))
    }

    /// Runs `f` on the controller's thread and returns its result.
    pub async fn query<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Controller, Now) -> T + Send + 'static,
    ) -> Result<T, RequestError> {
        let (reply, answer) = oneshot::channel();
        let run = Box::new(move |c: &mut Controller, now: Now| {
            let _ = reply.send(f(c, now));
        });
        if !self.send(Command::Query(run)) {
            return Err(RequestError::Stopped);
        }
        answer.await.map_err(|_| RequestError::Stopped)
    }

    /// Lets time pass for the controller once, and waits until it has.
    pub async fn tick(&self) -> Result<(), RequestError> {
        if !self.send(Command::Tick) {
            return Err(RequestError::Stopped);
        }
        self.query(|_, _| ()).await
    }

    /// Lets time pass for the controller every `period`, until the
    /// controller stops.
    pub async fn tick_every(self, period: Duration) {
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if !self.send(Command::Tick) {
                return;
            }
        }
    }
}
