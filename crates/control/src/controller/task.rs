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

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cutover_core::domain::{RunKind, RunOutcome};
use serde::Serialize;
use serde_json::Value;
use tokio::sync::{mpsc, oneshot, watch};

use cutover_store::Fence;

use super::{Controller, Event, LOCAL, Leader, RequestError, RunbookDue};
use crate::clock::{Clock, Now};
use crate::health::Health;

/// What the controller is asked to do.
enum Command {
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

type Reply<T> = oneshot::Sender<Result<T, RequestError>>;

/// One probe result from a vantage: backend, when the cycle started, whether
/// it succeeded, and its outcome.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    pub backend: String,
    pub started: Instant,
    pub ok: bool,
    pub outcome: String,
}

struct Stamped {
    now: Now,
    command: Command,
}

/// What `/v1/status` shows, published after every change.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Status {
    pub active: String,
    pub backends: Vec<BackendStatus>,
    pub open_incidents: usize,
    /// State store operations that failed since the start, by operation.
    #[serde(skip)]
    pub store_errors: BTreeMap<&'static str, u64>,
    /// This controller acts (embedded: always). Not serialized: with `[ha]`
    /// the API adds `role` and `leader` from the election.
    #[serde(skip)]
    pub leading: bool,
    /// The fencing token while leading in HA.
    #[serde(skip)]
    pub token: Option<i64>,
}

/// One backend in [`Status`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BackendStatus {
    pub name: String,
    pub role: &'static str,
    pub health: Health,
    pub vantages: BTreeMap<String, VantageStatus>,
    /// Any vantage is neither healthy nor unknown: re-checks run.
    #[serde(skip)]
    pub needs_verify: bool,
}

/// One vantage of a backend in [`Status`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VantageStatus {
    pub health: Health,
    pub last_outcome: String,
    pub age_ms: u64,
}

impl Status {
    pub fn backend(&self, name: &str) -> Option<&BackendStatus> {
        self.backends.iter().find(|b| b.name == name)
    }

    /// Health of a backend; unknown for a name that is not configured.
    pub fn health(&self, name: &str) -> Health {
        self.backend(name).map(|b| b.health).unwrap_or(Health::Unknown)
    }
}

/// How the rest of the process talks to the controller. Cheap to clone.
#[derive(Debug, Clone)]
pub struct ControllerHandle {
    commands: mpsc::UnboundedSender<Stamped>,
    status: watch::Receiver<Arc<Status>>,
    clock: Clock,
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
    /// reported as [`Event::RunbookDue`].
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

    /// A failover forced by an admin; also reported as [`Event::RunbookDue`].
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

impl Controller {
    /// What `/v1/status` shows at `now`.
    pub fn snapshot(&self, now: Instant) -> Status {
        let open_incidents = match self.store.open_incidents() {
            Ok(v) => v.len(),
            Err(e) => {
                tracing::warn!(error = %e, "reading open incidents for the status");
                0
            }
        };
        Status {
            active: self.active.clone(),
            backends: self
                .backends
                .iter()
                .map(|b| BackendStatus {
                    name: b.name.clone(),
                    role: b.role.as_str(),
                    health: self.health(&b.name, now),
                    vantages: b
                        .vantages
                        .iter()
                        .map(|(n, v)| {
                            let status = VantageStatus {
                                health: self.vantage_health(v, n, now),
                                last_outcome: v.last_outcome.clone(),
                                age_ms: now.saturating_duration_since(v.last_seen).as_millis() as u64,
                            };
                            (n.clone(), status)
                        })
                        .collect(),
                    needs_verify: self.needs_verify(&b.name),
                })
                .collect(),
            open_incidents,
            store_errors: self.store_errors.clone(),
            leading: self.is_leading(),
            token: self.leadership().token(),
        }
    }
}

#[cfg(test)]
#[path = "task_tests.rs"]
mod tests;
