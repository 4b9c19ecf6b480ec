//! The controller as a task that owns its state.
//!
//! One thread owns the [`Controller`]: commands (probe results, re-checks,
//! agent evidence, approvals, forced failovers, runbook results, signals,
//! ticks) arrive over a channel, each stamped with the [`Now`] at which it
//! was made; what happened is emitted through the controller's telemetry
//! and goes out as [`Event`]s on another channel (for the runbook queue); a
//! [`Status`] snapshot is published on a `watch` channel that the API, the
//! gateway and the console read without waiting for the controller.
//!
//! # Guarantees
//! - Commands are handled one at a time, in the order they were sent: the
//!   controller is the single writer of incidents and decisions.
//! - The state store's blocking I/O (SQLite with fsync) runs on this thread,
//!   never on an async worker.
//! - The controller reads no clock: its time is the commands' [`Now`].
//! - [`ControllerHandle::lead`] and [`ControllerHandle::stand_by`] take
//!   effect in command order: commands sent after `stand_by` write nothing
//!   shared. A leadership change the controller makes by itself (a fenced
//!   write) goes out as [`Event::LeadershipChanged`] like the others, and
//!   the [`Status`] says `leading`.
//!
//! # Caveats
//! - The thread ends when every [`ControllerHandle`] is dropped; requests
//!   sent after that fail with [`RequestError::Stopped`].
//! - Under tokio's paused time, an await on the controller's thread lets
//!   virtual time jump to the next timer: tests drive time with
//!   [`ControllerHandle::tick`] after each sleep, not with
//!   [`ControllerHandle::tick_every`].

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cutover_core::domain::{RunKind, RunOutcome};
use cutover_store::Fence;
use serde_json::Value;
use tokio::sync::{mpsc, oneshot, watch};

use super::{Controller, ControllerHandle, Event, LOCAL, Leader, Report, RequestError, RunbookDue, Status};
use crate::clock::{Clock, Now};

/// What the controller is asked to do.
pub(super) enum Command {
    /// A probe cycle started; if it is still out after `slow_after` it counts
    /// as a failure (a hung backend must not look healthy by saying nothing).
    ProbeStarted {
        id: u64,
        backend: String,
        at: Instant,
    },
    /// A probe cycle ended.
    ProbeDone {
        id: u64,
        backend: String,
        started: Instant,
        ok: bool,
        outcome: String,
    },
    /// An independent re-check of a backend that is not healthy.
    Verified {
        backend: String,
        started: Instant,
        ok: bool,
        outcome: String,
    },
    /// Probe results from an agent's vantage.
    Evidence {
        vantage: String,
        reports: Vec<Report>,
        reply: oneshot::Sender<()>,
    },
    Approval {
        incident: String,
        approve: bool,
        actor: String,
        comment: String,
        reply: Reply<Option<RunbookDue>>,
    },
    ForceFailover {
        target: String,
        reason: String,
        actor: String,
        reply: Reply<RunbookDue>,
    },
    /// `state.switch`: make a backend the active one.
    SetActive {
        target: String,
        reply: Reply<String>,
    },
    /// A runbook run ended (`reply`: whether its end was recorded).
    RunFinished {
        incident: String,
        kind: RunKind,
        outcome: RunOutcome,
        reply: Option<Reply<()>>,
    },
    /// Become the leader, acting with `fence`.
    Lead {
        fence: Fence,
        reply: Reply<()>,
    },
    /// Stop acting; `leader` leads instead, when known.
    StandBy {
        leader: Option<Leader>,
    },
    Signal {
        name: String,
        value: Value,
    },
    Replication(Value),
    /// Time passed: confirmation, recovery, agent ageing, fallback.
    Tick,
    /// Anything else, run on the controller's thread (reads for tests and
    /// drills).
    Query(Query),
}

/// A function run on the controller's thread.
type Query = Box<dyn FnOnce(&mut Controller, Now) + Send>;

pub(super) type Reply<T> = oneshot::Sender<Result<T, RequestError>>;

/// A command with the time it was made.
pub(super) struct Stamped {
    pub(super) now: Now,
    pub(super) command: Command,
}

impl std::fmt::Debug for Stamped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stamped").field("now", &self.now).finish_non_exhaustive()
    }
}

/// Starts the controller's thread. Returns its handle and the events it
/// reports (for the log, the metrics and the runbook queue). Time only
/// passes for it through [`ControllerHandle::tick_every`], which the caller
/// runs as a task.
pub fn start(
    controller: Controller,
    clock: Clock,
    slow_after: Duration,
) -> (ControllerHandle, mpsc::UnboundedReceiver<Event>) {
    let now = clock.now();
    let (commands, rx) = mpsc::unbounded_channel();
    let (events_tx, events) = mpsc::unbounded_channel();
    let (status_tx, status) = watch::channel(Arc::new(controller.snapshot(now.mono)));
    let spawned = std::thread::Builder::new().name("controller".into()).spawn(move || {
        Owner { controller, events: events_tx, status: status_tx, slow_after, in_flight: HashMap::new() }.run(rx)
    });
    if let Err(e) = spawned {
        // Without its thread the controller answers nothing; say so loudly.
        tracing::error!(error = %e, "could not start the controller's thread");
    }
    (ControllerHandle { commands, status, clock }, events)
}

/// A probe cycle that has not ended yet.
struct InFlight {
    backend: String,
    started: Instant,
    /// Already counted as a failure because it took longer than `slow_after`.
    counted: bool,
}

/// The controller's thread: owns the controller and handles commands.
struct Owner {
    controller: Controller,
    events: mpsc::UnboundedSender<Event>,
    status: watch::Sender<Arc<Status>>,
    slow_after: Duration,
    in_flight: HashMap<u64, InFlight>,
}

impl Owner {
    fn run(mut self, mut rx: mpsc::UnboundedReceiver<Stamped>) {
        while let Some(Stamped { now, command }) = rx.blocking_recv() {
            let mut handled = self.handle(now, command);
            // A fenced write made the controller stand by by itself.
            if let Some(changed) = self.controller.take_role_change() {
                handled.events.push(changed);
                handled.publish = true;
            }
            for e in handled.events {
                let _ = self.events.send(e);
            }
            if handled.publish {
                let status = self.controller.snapshot(now.mono);
                self.controller.telemetry().metrics().set_status(&status);
                self.status.send_replace(Arc::new(status));
            }
            // The answer goes out after the status that reflects it, so a
            // caller that reads the status next sees its own change.
            if let Some(answer) = handled.answer {
                answer();
            }
        }
    }

    /// Handles one command.
    fn handle(&mut self, now: Now, command: Command) -> Handled {
        let c = &mut self.controller;
        match command {
            Command::ProbeStarted { id, backend, at } => {
                self.in_flight.insert(id, InFlight { backend, started: at, counted: false });
                Handled::quiet()
            }
            Command::ProbeDone { id, backend, started, ok, outcome } => {
                let counted = self.in_flight.remove(&id).is_some_and(|f| f.counted);
                if counted && !ok {
                    return Handled::quiet(); // already counted as a failure when it became slow
                }
                Handled::events(c.observe(now, &backend, LOCAL, started, ok, &outcome))
            }
            Command::Verified { backend, started, ok, outcome } => {
                Handled::events(c.verified(now, &backend, started, ok, &outcome))
            }
            Command::Evidence { vantage, reports, reply } => {
                let mut events = Vec::new();
                for r in &reports {
                    events.extend(c.observe(now, &r.backend, &vantage, r.started, r.ok, &r.outcome));
                }
                Handled::events(events).answer(move || {
                    let _ = reply.send(());
                })
            }
            Command::Approval { incident, approve, actor, comment, reply } => {
                let r = c.approval(&incident, approve, &actor, &comment, now);
                let due = r.as_ref().ok().cloned().flatten();
                Handled::events(due.into_iter().map(Event::RunbookDue).collect()).answer(move || drop(reply.send(r)))
            }
            Command::ForceFailover { target, reason, actor, reply } => {
                let r = c.force_failover(&target, &reason, &actor, now);
                let due = r.as_ref().ok().cloned();
                Handled::events(due.into_iter().map(Event::RunbookDue).collect()).answer(move || drop(reply.send(r)))
            }
            Command::SetActive { target, reply } => {
                let r = c.set_active(&target);
                Handled::events(Vec::new()).answer(move || drop(reply.send(r)))
            }
            Command::RunFinished { incident, kind, outcome, reply: None } => {
                c.run_finished(&incident, kind, &outcome, now);
                Handled::events(Vec::new())
            }
            Command::RunFinished { incident, kind, outcome, reply: Some(reply) } => {
                let r = c.try_run_finished(&incident, kind, &outcome, now);
                Handled::events(Vec::new()).answer(move || drop(reply.send(r)))
            }
            Command::Lead { fence, reply } => {
                let r = c.lead(fence);
                let changed = r.as_ref().ok().cloned().flatten();
                Handled::events(changed.into_iter().collect())
                    .answer(move || drop(reply.send(r.map(drop).map_err(RequestError::from))))
            }
            Command::StandBy { leader } => Handled::events(c.stand_by(leader).into_iter().collect()),
            Command::Signal { name, value } => {
                c.set_signal(&name, value);
                Handled::quiet()
            }
            Command::Replication(value) => {
                c.set_replication(value);
                Handled::quiet()
            }
            Command::Tick => {
                let mut events = Vec::new();
                for f in self.in_flight.values_mut() {
                    if !f.counted && now.mono.duration_since(f.started) >= self.slow_after {
                        f.counted = true;
                        events.extend(c.observe(now, &f.backend, LOCAL, f.started, false, "Timeout"));
                    }
                }
                events.extend(c.tick(now));
                Handled::events(events)
            }
            Command::Query(f) => {
                f(c, now);
                Handled::events(Vec::new())
            }
        }
    }
}

/// What handling a command produced.
struct Handled {
    events: Vec<Event>,
    /// The status may have changed.
    publish: bool,
    /// Sends the caller its answer.
    answer: Option<Box<dyn FnOnce()>>,
}

impl Handled {
    fn quiet() -> Self {
        Self { events: Vec::new(), publish: false, answer: None }
    }

    fn events(events: Vec<Event>) -> Self {
        Self { events, publish: true, answer: None }
    }

    fn answer(mut self, f: impl FnOnce() + 'static) -> Self {
        self.answer = Some(Box::new(f));
        self
    }
}

#[cfg(test)]
#[path = "task_tests.rs"]
mod tests;
