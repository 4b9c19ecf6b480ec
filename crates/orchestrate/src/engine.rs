//! The runbook engine: runs the steps of a runbook in order through their
//! actuators, with a write-ahead journal in the state store.
//!
//! # Guarantees
//! - Before each attempt of a step its intent (rendered parameters and the
//!   rendered undo call, both redacted by [`runbook::redact`]) is written to
//!   the store; after it, its result. Nothing is stored, put in the timeline,
//!   the audit log or an [`EngineEvent`] before it is redacted: results and
//!   errors go through [`runbook::redact::redact_value`], and every value
//!   the step read from the environment (`url_env`, `headers_env`,
//!   `token_env`, ...), and every value given to [`Engine::with_secrets`],
//!   is replaced by `[redacted]` wherever it appears.
//! - A step recorded `ok` is never run again, also after a crash:
//!   [`Engine::resume`] continues an interrupted run from the first step not
//!   recorded `ok` (steps are idempotent, so one interrupted mid-way may run
//!   again), or rolls it back when its runbook changed meanwhile.
//! - A step that fails for good (after its retries) with `on_failure =
//!   "rollback"` undoes the completed steps in reverse order. A step without
//!   an `undo` has nothing to undo, except `state.switch`, whose undo is a
//!   switch back to the source, and `dns.update`, whose undo restores the
//!   record set it replaced (given to the undo from the update's journaled
//!   result, so that another leader can run it). The undo call that runs is
//!   rendered again from the runbook (the journal keeps it redacted only);
//!   when the runbook changed so that its undo no longer matches the
//!   journal's, the journal's is used if nothing in it was redacted, else
//!   the undo fails (a human must look) rather than send `[redacted]`
//!   somewhere.
//! - Before a rollback undoes anything, the [`RollbackGuard`] is asked about
//!   every backend an undo would switch traffic back onto; when it says no,
//!   nothing is undone and the run ends [`RunOutcome::RollbackHeld`] (the
//!   timeline says why, `rollback.held`) until [`Engine::roll_back_held`]
//!   runs it for the human who approved it. An allowed rollback says why
//!   too (`rollback.allowed`).
//! - Every step, undo and approval goes to the incident's timeline and the
//!   audit log with its actor, parameters (redacted), result and duration.
//!
//! # Assumptions
//! One engine runs at a time per state store (the caller queues runs).
//!
//! # Caveats
//! An undo that fails leaves the run `failed`: a human must look.

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use cutover_core::domain::{RunKind, RunState, StepState, Verdict};
pub use cutover_core::domain::{RunOutcome, StepPhase};
use cutover_store::prelude::*;
use cutover_store::{Fence, NewRun, RunRecord, StepRecord, StepRef, StoreError};
use serde_json::{Value, json};

use crate::actuators::{self, Ctx, EnvLookup, Params, StepError};
use crate::runbook::redact::{self, REDACTED};
use crate::runbook::{self, Call, OnFailure, Runbook, Vars};

mod guard;

pub use guard::{AllowAll, RollbackGuard, RollbackRequest, RollbackVerdict};

/// How far a backend's clock may lag cutover's for the failback's
/// comparison of what changed since the failover.
pub const CLOCK_MARGIN: Duration = Duration::from_secs(300);

/// A boxed future, for the [`Host`] trait.
pub type BoxFut<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The actuators that act on the running controller itself.
pub trait Host: Send + Sync {
    /// `state.switch`: make `to` the active backend (store, gateway).
    fn switch<'a>(&'a self, to: &'a str) -> BoxFut<'a, Result<Value, StepError>>;
    /// `validate`: the smoke-test suite against `backend`.
    fn validate<'a>(&'a self, backend: &'a str) -> BoxFut<'a, Result<Value, StepError>>;
    /// `sync.resync`: copy back what was written during the outage, verified.
    /// `since`: when the incident's failover started (less a margin for the
    /// backends' clocks), so that what changed on the other side since then
    /// is compared too, not only what a gateway journal remembers; `None`
    /// when the incident never failed over.
    fn resync(&self, max_rounds: u32, since: Option<SystemTime>) -> BoxFut<'_, Result<Value, StepError>>;
    /// `kubernetes.patch`: apply a backend to a `StorageBackend` and wait for
    /// the operator ([`actuators::kubernetes`]). The binary provides it, so
    /// this crate needs no Kubernetes client; by default it is refused.
    fn kubernetes_patch<'a>(&'a self, params: &'a Params, timeout: Duration) -> BoxFut<'a, Result<Value, StepError>> {
        let _ = (params, timeout);
        Box::pin(async { Err(StepError::Refused("kubernetes.patch is not available in this process".into())) })
    }
}

/// What to run: a failover or fallback of an incident.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    pub incident: String,
    /// The backend the incident is about.
    pub backend: String,
    pub kind: RunKind,
    pub source: String,
    pub target: String,
    pub reason: String,
    /// Who started it (audit actor): `controller` or a token's name.
    pub actor: String,
}

impl Job {
    fn vars(&self) -> Vars {
        Vars {
            incident: self.incident.clone(),
            backend: self.backend.clone(),
            source: self.source.clone(),
            target: self.target.clone(),
            reason: self.reason.clone(),
            kind: self.kind.to_string(),
            fencing_token: "0".into(),
        }
    }

    fn from_record(r: &RunRecord, backend: &str) -> Self {
        Self {
            incident: r.incident.clone(),
            backend: backend.to_string(),
            kind: r.kind,
            source: r.source.clone(),
            target: r.target.clone(),
            reason: r.reason.clone(),
            actor: r.actor.clone(),
        }
    }
}

/// What the engine reports as it goes (for logs and metrics).
#[derive(Debug, Clone, PartialEq)]
pub enum EngineEvent {
    RunStarted {
        run: i64,
        incident: String,
        kind: RunKind,
        runbook: String,
        resumed: bool,
    },
    StepStarted {
        run: i64,
        incident: String,
        step: String,
        uses: String,
        phase: StepPhase,
        attempt: u32,
    },
    /// A step recorded `ok` before a restart, not run again.
    StepSkipped {
        run: i64,
        incident: String,
        step: String,
    },
    StepFinished {
        run: i64,
        incident: String,
        step: String,
        uses: String,
        phase: StepPhase,
        ok: bool,
        attempts: u32,
        duration: Duration,
        /// The result (JSON) or the error.
        detail: String,
    },
    ApprovalRequested {
        run: i64,
        incident: String,
        step: String,
        message: String,
        timeout: Duration,
    },
    RunFinished {
        run: i64,
        incident: String,
        kind: RunKind,
        outcome: RunOutcome,
        duration: Duration,
    },
    /// A timeline event or an audit entry about a step that already ran
    /// could not be written (logged; counted by the receiver).
    StoreError {
        op: &'static str,
    },
}

/// The engine.
#[derive(Clone)]
pub struct Engine {
    store: Arc<dyn Store>,
    /// What the journal's fenced writes carry ([`Fence::local`] when embedded).
    fence: Fence,
    host: Arc<dyn Host>,
    work_dir: PathBuf,
    env: EnvLookup,
    emit: Arc<dyn Fn(&EngineEvent) + Send + Sync>,
    /// Values that must never be stored (credentials cutover holds).
    secrets: Arc<Vec<String>>,
    /// Asked before a rollback moves traffic back onto a backend.
    guard: Arc<dyn RollbackGuard>,
    /// How often an `approval` step looks for a verdict.
    pub approval_poll: Duration,
    /// Where an incident's page is, without the id (`…/ui/incidents` or
    /// `…/v1/incidents`), for links in notifications.
    incident_links: Option<String>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine").field("work_dir", &self.work_dir).finish_non_exhaustive()
    }
}

/// The per-call timeout of an `approval` step: its own `timeout` (default
/// 15 minutes) plus a margin, when longer than the step's.
const APPROVAL_DEFAULT_TIMEOUT: Duration = Duration::from_secs(15 * 60);

impl Engine {
    /// When the incident's first failover run started, less
    /// [`CLOCK_MARGIN`]: the lower bound of the writes the other side took.
    fn failed_over_since(&self, incident: &str) -> Option<SystemTime> {
        let runs = match self.store.runs_for(incident) {
            Ok(runs) => runs,
            Err(e) => {
                tracing::warn!(incident, error = %e, "resync: the incident's runs could not be read; comparing only journalled writes");
                return None;
            }
        };
        let started = runs.iter().find(|r| r.kind == RunKind::Failover)?;
        let at = cutover_core::time::parse_rfc3339(&started.started_at)?;
        Some(at.checked_sub(CLOCK_MARGIN).unwrap_or(SystemTime::UNIX_EPOCH))
    }

    pub fn new(
        store: Arc<dyn Store>,
        host: Arc<dyn Host>,
        work_dir: PathBuf,
        env: EnvLookup,
        emit: Arc<dyn Fn(&EngineEvent) + Send + Sync>,
    ) -> Self {
        Self {
            store,
            fence: Fence::local(),
            host,
            work_dir,
            env,
            emit,
            secrets: Arc::default(),
            guard: Arc::new(AllowAll),
            approval_poll: Duration::from_millis(200),
            incident_links: None,
        }
    }

    /// The fence the journal's writes carry (a leader's, in HA).
    pub fn with_fence(mut self, fence: Fence) -> Self {
        self.fence = fence;
        self
    }

    /// A job's template variables, `{{ fencing.token }}` being this
    /// engine's fence (0 embedded).
    fn vars(&self, job: &Job) -> Vars {
        Vars { fencing_token: self.fence.revision().unwrap_or(0).to_string(), ..job.vars() }
    }

    /// The guard asked before a rollback moves traffic back onto a backend
    /// (without one, every rollback is allowed).
    pub fn with_guard(mut self, guard: Arc<dyn RollbackGuard>) -> Self {
        self.guard = guard;
        self
    }

    /// Values that must never reach the journal, the timeline, the audit log
    /// or an event, whatever a step prints (for example the backends'
    /// credentials, which a `command` step's program inherits).
    pub fn with_secrets(mut self, values: impl IntoIterator<Item = String>) -> Self {
        self.secrets = Arc::new(values.into_iter().filter(|v| !v.is_empty()).collect());
        self
    }

    /// The URL under which `/{id}` is an incident's page (the console's
    /// `https://cutover.example/ui/incidents`, or the API's
    /// `http://host:port/v1/incidents`): steps get the incident's URL
    /// ([`Ctx::incident_url`]) to link to.
    pub fn with_incident_links(mut self, base: Option<String>) -> Self {
        self.incident_links = base;
        self
    }

    /// Starts and runs `job` with `runbook` to its end.
    pub async fn run(&self, job: &Job, runbook: &Runbook) -> Result<(i64, RunOutcome), StoreError> {
        let started = Instant::now();
        let run = self.store.begin_run(
            &self.fence,
            &NewRun {
                incident: &job.incident,
                kind: job.kind,
                source: &job.source,
                target: &job.target,
                reason: &job.reason,
                actor: &job.actor,
                runbook: &runbook.origin,
                runbook_sha256: &runbook.sha256,
            },
            SystemTime::now(),
        )?;
        let record = self.store.run(run)?.expect("the run just recorded");
        self.timeline(
            job,
            "runbook.started",
            json!({"run": run, "kind": job.kind, "runbook": runbook.origin, "runbook_sha256": runbook.sha256,
                   "source": job.source, "target": job.target}),
        );
        (self.emit)(&EngineEvent::RunStarted {
            run,
            incident: job.incident.clone(),
            kind: job.kind,
            runbook: runbook.origin.clone(),
            resumed: false,
        });
        let outcome = self.drive(&record, job, runbook, &[]).await?;
        self.finish(run, job, &outcome, started)?;
        Ok((run, outcome))
    }

    /// Continues a run that a crash interrupted: from the first step not
    /// recorded `ok` when `runbook` is the same (by SHA-256) as when it
    /// started, else (or when it was rolling back) by rolling it back.
    pub async fn resume(
        &self,
        record: &RunRecord,
        backend: &str,
        runbook: Option<&Runbook>,
    ) -> Result<RunOutcome, StoreError> {
        let started = Instant::now();
        let job = Job::from_record(record, backend);
        let journal = self.store.steps(record.id)?;
        (self.emit)(&EngineEvent::RunStarted {
            run: record.id,
            incident: job.incident.clone(),
            kind: job.kind,
            runbook: record.runbook.clone(),
            resumed: true,
        });
        if record.state == RunState::RollbackHeld {
            // Still waiting for a human: nothing to do until approved.
            return Ok(held_outcome(record));
        }
        let same = runbook.filter(|r| r.sha256 == record.runbook_sha256);
        let outcome = match (record.state, same) {
            (RunState::Running, Some(rb)) => {
                self.timeline(
                    &job,
                    "runbook.resumed",
                    json!({"run": record.id, "done": journal.iter().filter(|s| done_ok(s, StepPhase::Do)).count()}),
                );
                self.drive(record, &job, rb, &journal).await?
            }
            (state, _) => {
                let (step, error) = match state {
                    RunState::RollingBack => (
                        record.detail["step"].as_str().unwrap_or("?").to_string(),
                        record.detail["error"].as_str().unwrap_or("?").to_string(),
                    ),
                    _ => ("(restart)".to_string(), "the runbook changed while this run was interrupted".to_string()),
                };
                // A rollback a human approved before the crash is not asked about again.
                let approved = record.detail["approved_by"].as_str().filter(|_| state == RunState::RollingBack);
                self.rollback(record.id, &job, step, error, runbook, approved).await?
            }
        };
        self.finish(record.id, &job, &outcome, started)?;
        Ok(outcome)
    }

    /// Runs the rollback of a run that ended [`RunOutcome::RollbackHeld`],
    /// approved by `actor` (recorded as the actor of every undo): undoes its
    /// completed steps in reverse order, without asking the guard again.
    pub async fn roll_back_held(
        &self,
        record: &RunRecord,
        backend: &str,
        runbook: Option<&Runbook>,
        actor: &str,
    ) -> Result<RunOutcome, StoreError> {
        let started = Instant::now();
        let job = Job { actor: actor.to_string(), ..Job::from_record(record, backend) };
        (self.emit)(&EngineEvent::RunStarted {
            run: record.id,
            incident: job.incident.clone(),
            kind: job.kind,
            runbook: record.runbook.clone(),
            resumed: true,
        });
        let (step, error, _) = held_detail(record);
        let outcome = self.rollback(record.id, &job, step, error, runbook, Some(actor)).await?;
        self.finish(record.id, &job, &outcome, started)?;
        Ok(outcome)
    }

    fn finish(&self, run: i64, job: &Job, outcome: &RunOutcome, started: Instant) -> Result<(), StoreError> {
        let detail = match outcome {
            RunOutcome::Completed => json!({}),
            RunOutcome::RolledBack { step, error } | RunOutcome::Failed { step, error } => {
                json!({"step": step, "error": error})
            }
            RunOutcome::RollbackHeld { step, error, reason } => json!({"step": step, "error": error, "reason": reason}),
        };
        // A held rollback is not over: it waits for a human's verdict.
        let ended = (!matches!(outcome, RunOutcome::RollbackHeld { .. })).then(SystemTime::now);
        self.store.set_run_state(&self.fence, run, outcome.state(), Some(&detail), ended)?;
        let duration = started.elapsed();
        let mut d = json!({"run": run, "kind": job.kind, "outcome": outcome.as_str(), "duration_ms": duration.as_millis() as u64});
        if let Value::Object(m) = &detail {
            d.as_object_mut().expect("object").extend(m.clone());
        }
        self.timeline(job, &format!("runbook.{}", outcome.as_str()), d.clone());
        self.audit(&job.actor, &format!("runbook.{}", outcome.as_str()), json!({"incident": job.incident, "run": d}));
        (self.emit)(&EngineEvent::RunFinished {
            run,
            incident: job.incident.clone(),
            kind: job.kind,
            outcome: outcome.clone(),
            duration,
        });
        Ok(())
    }

    /// Runs the steps not yet recorded `ok` in `journal`.
    async fn drive(
        &self,
        record: &RunRecord,
        job: &Job,
        runbook: &Runbook,
        journal: &[StepRecord],
    ) -> Result<RunOutcome, StoreError> {
        let vars = self.vars(job);
        for (idx, step) in runbook.steps.iter().enumerate() {
            let done = journal.iter().any(|s| s.idx == idx as i64 && done_ok(s, StepPhase::Do));
            if done {
                (self.emit)(&EngineEvent::StepSkipped {
                    run: record.id,
                    incident: job.incident.clone(),
                    step: step.name.clone(),
                });
                continue;
            }
            let undo = step.undo.clone().or_else(|| default_undo(&step.call));
            let rendered = runbook::render_call(&step.call.uses, &step.call.with, &vars).and_then(|p| {
                let u = match &undo {
                    Some(u) => {
                        Some(Call { uses: u.uses.clone(), with: runbook::render_call(&u.uses, &u.with, &vars)? })
                    }
                    None => None,
                };
                Ok((p, u))
            });
            let result = match rendered {
                Ok((params, undo)) => {
                    let intent = json!({
                        "uses": step.call.uses,
                        "with": runbook::redact(&params),
                        "undo": undo.as_ref().map(|u| json!({"uses": u.uses, "with": runbook::redact(&u.with)})),
                        "timeout_ms": step.timeout.as_millis() as u64,
                        "retries": step.retries,
                    });
                    let s = Attempt {
                        run: record,
                        idx,
                        phase: StepPhase::Do,
                        name: &step.name,
                        uses: &step.call.uses,
                        params: &params,
                        intent: &intent,
                        timeout: step.timeout,
                        retries: step.retries,
                    };
                    self.attempts(&s, job).await?
                }
                Err(e) => {
                    let e = clean_error(
                        StepError::Param { field: "(template)".into(), problem: e.to_string() },
                        &self.needles(&[]),
                    );
                    let at = StepRef { run: record.id, idx, phase: StepPhase::Do };
                    self.store.step_intent(
                        &self.fence,
                        at,
                        &step.name,
                        &step.call.uses,
                        &json!({"uses": step.call.uses}),
                        SystemTime::now(),
                    )?;
                    self.store.step_result(
                        &self.fence,
                        at,
                        StepState::Failed,
                        &json!({"error": e.to_string()}),
                        SystemTime::now(),
                    )?;
                    Err(e)
                }
            };
            if let Err(e) = result {
                if step.on_failure == OnFailure::Continue {
                    continue;
                }
                return self.rollback(record.id, job, step.name.clone(), e.to_string(), Some(runbook), None).await;
            }
        }
        Ok(RunOutcome::Completed)
    }

    /// Undoes, in reverse order, the steps recorded `ok` whose undo is not.
    /// `runbook` (the one that ran, or the current one after a restart)
    /// gives the undo calls' parameters, which the journal keeps redacted.
    /// Unless a human approved it (`approved_by`), the guard is asked first
    /// about every backend an undo would switch traffic back onto.
    async fn rollback(
        &self,
        run: i64,
        job: &Job,
        step: String,
        error: String,
        runbook: Option<&Runbook>,
        approved_by: Option<&str>,
    ) -> Result<RunOutcome, StoreError> {
        let journal = self.store.steps(run)?;
        if approved_by.is_none()
            && let Some(reason) = self.ask_guard(run, job, &step, &error, &journal, runbook).await
        {
            return Ok(RunOutcome::RollbackHeld { step, error, reason });
        }
        let detail = json!({"step": step, "error": error, "approved_by": approved_by});
        self.store.set_run_state(&self.fence, run, RunState::RollingBack, Some(&detail), None)?;
        self.timeline(
            job,
            "runbook.rolling_back",
            json!({"run": run, "failed_step": step, "error": error, "approved_by": approved_by}),
        );
        let record = self.store.run(run)?.expect("the run exists");
        let mut undo_failed = false;
        for (s, undo) in pending_undos(&journal) {
            let uses = undo["uses"].as_str().unwrap_or_default().to_string();
            let stored: Params = undo["with"].as_object().cloned().unwrap_or_default();
            let mut params = undo_params(s, &uses, &stored, runbook, &self.vars(job));
            // dns.update's undo takes the record set to put back from the
            // update's journaled result, which any leader can read.
            if let (Ok(p), "dns.update") = (params.as_mut(), uses.as_str()) {
                actuators::dns::undo_from_result(p, &s.result);
            }
            let journaled = params.as_ref().map(runbook::redact).unwrap_or_else(|_| stored.clone());
            let intent = json!({"uses": uses, "with": journaled, "undo_of": s.name});
            let timeout = Duration::from_millis(s.intent["timeout_ms"].as_u64().unwrap_or(60_000));
            let retries = s.intent["retries"].as_u64().unwrap_or(0) as u32;
            let params = match params {
                Ok(p) => p,
                Err(e) => {
                    let at = StepRef { run, idx: s.idx as usize, phase: StepPhase::Undo };
                    let (fence, now) = (&self.fence, SystemTime::now());
                    self.store.step_intent(fence, at, &s.name, &uses, &intent, now)?;
                    self.store.step_result(fence, at, StepState::Failed, &json!({"error": e.to_string()}), now)?;
                    let entry = json!({"run": run, "step": s.name, "uses": uses, "phase": StepPhase::Undo, "ok": false,
                                       "attempts": 0, "with": stored, "result": {"error": e.to_string()}});
                    self.timeline(job, "step", entry.clone());
                    self.audit(&job.actor, "step", json!({"incident": job.incident, "step": entry}));
                    undo_failed = true;
                    continue;
                }
            };
            let a = Attempt {
                run: &record,
                idx: s.idx as usize,
                phase: StepPhase::Undo,
                name: &s.name,
                uses: &uses,
                params: &params,
                intent: &intent,
                timeout,
                retries,
            };
            if self.attempts(&a, job).await?.is_err() {
                undo_failed = true;
            }
        }
        Ok(if undo_failed { RunOutcome::Failed { step, error } } else { RunOutcome::RolledBack { step, error } })
    }

    /// Asks the guard about every backend the pending undos would switch
    /// traffic back onto. Records why in the timeline (`rollback.allowed`,
    /// or `rollback.held` with an audit entry); returns the reason when the
    /// rollback is held.
    async fn ask_guard(
        &self,
        run: i64,
        job: &Job,
        step: &str,
        error: &str,
        journal: &[StepRecord],
        runbook: Option<&Runbook>,
    ) -> Option<String> {
        let mut onto: Vec<String> = Vec::new();
        for (s, undo) in pending_undos(journal) {
            if undo["uses"] != "state.switch" {
                continue;
            }
            let stored: Params = undo["with"].as_object().cloned().unwrap_or_default();
            // An undo whose parameters cannot be had fails on its own, moving nothing.
            let Ok(params) = undo_params(s, "state.switch", &stored, runbook, &self.vars(job)) else { continue };
            if let Some(to) = params.get("to").and_then(Value::as_str)
                && !onto.iter().any(|o| o == to)
            {
                onto.push(to.to_string());
            }
        }
        if onto.is_empty() {
            let reason = "no undo moves traffic onto a backend";
            self.timeline(
                job,
                "rollback.allowed",
                json!({"run": run, "failed_step": step, "onto": null, "reason": reason}),
            );
            return None;
        }
        for backend in &onto {
            let request = RollbackRequest {
                run,
                incident: &job.incident,
                kind: job.kind,
                failed_step: step,
                error,
                onto: backend,
            };
            let v = self.guard.may_roll_back_onto(&request).await;
            let detail = json!({"run": run, "kind": job.kind, "failed_step": step, "error": error, "onto": backend,
                                "onto_health": v.health, "reason": v.reason});
            if v.allow {
                self.timeline(job, "rollback.allowed", detail);
                continue;
            }
            self.timeline(job, "rollback.held", detail.clone());
            self.audit(&job.actor, "rollback.held", json!({"incident": job.incident, "rollback": detail}));
            return Some(v.reason);
        }
        None
    }

    /// Runs one step (or undo) with its retries, journaling each attempt.
    async fn attempts(&self, a: &Attempt<'_>, job: &Job) -> Result<Result<Value, StepError>, StoreError> {
        let started = Instant::now();
        let mut attempt = 0u32;
        // Every value the step reads from the environment, to scrub from what it returns.
        let read: Arc<Mutex<Vec<String>>> = Arc::default();
        let env: EnvLookup = {
            let (inner, read) = (self.env.clone(), read.clone());
            Arc::new(move |name: &str| {
                let value = inner(name);
                if let Some(v) = &value {
                    read.lock().unwrap_or_else(|e| e.into_inner()).push(v.clone());
                }
                value
            })
        };
        let needles = || self.needles(&read.lock().unwrap_or_else(|e| e.into_inner()));
        let result = loop {
            attempt += 1;
            self.store.step_intent(
                &self.fence,
                StepRef { run: a.run.id, idx: a.idx, phase: a.phase },
                a.name,
                a.uses,
                a.intent,
                SystemTime::now(),
            )?;
            (self.emit)(&EngineEvent::StepStarted {
                run: a.run.id,
                incident: job.incident.clone(),
                step: a.name.to_string(),
                uses: a.uses.to_string(),
                phase: a.phase,
                attempt,
            });
            let r = self.call(a, job, env.clone()).await.map_err(|e| clean_error(e, &needles()));
            match r {
                Err(e) if e.retryable() && attempt <= a.retries => {
                    let backoff = Duration::from_millis(500 * (1 << (attempt - 1).min(3)));
                    tracing::warn!(step = a.name, attempt, error = %e, "step failed; retrying in {backoff:?}");
                    tokio::time::sleep(backoff).await;
                }
                other => break other,
            }
        };
        let duration = started.elapsed();
        let result = result.map(|v| redact::redact_value(&redact::scrub(&v, &needles())));
        let (state, detail) = match &result {
            Ok(v) => (StepState::Ok, v.clone()),
            Err(e) => (StepState::Failed, json!({"error": e.to_string()})),
        };
        self.store.step_result(
            &self.fence,
            StepRef { run: a.run.id, idx: a.idx, phase: a.phase },
            state,
            &detail,
            SystemTime::now(),
        )?;
        let entry = json!({
            "run": a.run.id, "step": a.name, "uses": a.uses, "phase": a.phase, "ok": result.is_ok(),
            "attempts": attempt, "duration_ms": duration.as_millis() as u64,
            "with": a.intent["with"], "result": detail,
        });
        self.timeline(job, "step", entry.clone());
        self.audit(&job.actor, "step", json!({"incident": job.incident, "step": entry}));
        (self.emit)(&EngineEvent::StepFinished {
            run: a.run.id,
            incident: job.incident.clone(),
            step: a.name.to_string(),
            uses: a.uses.to_string(),
            phase: a.phase,
            ok: result.is_ok(),
            attempts: attempt,
            duration,
            detail: match &result {
                Ok(v) => v.to_string(),
                Err(e) => e.to_string(),
            },
        });
        Ok(result)
    }

    /// One attempt, bounded by the step's timeout.
    async fn call(&self, a: &Attempt<'_>, job: &Job, env: EnvLookup) -> Result<Value, StepError> {
        let mut timeout = a.timeout;
        if a.uses == "approval" {
            timeout = timeout.max(approval_timeout(a.params) + Duration::from_secs(1));
        }
        let fut = async {
            match a.uses {
                "state.switch" => {
                    let to = str_param(a.params, "to")?;
                    self.host.switch(to).await
                }
                "validate" => {
                    let backend = str_param(a.params, "backend")?;
                    self.host.validate(backend).await
                }
                "sync.resync" => {
                    let rounds = a.params.get("max_rounds").and_then(Value::as_u64).unwrap_or(5).max(1) as u32;
                    self.host.resync(rounds, self.failed_over_since(&job.incident)).await
                }
                "approval" => self.approval(a, job).await,
                "kubernetes.patch" => self.host.kubernetes_patch(a.params, a.timeout).await,
                other => {
                    let ctx = Ctx {
                        incident: job.incident.clone(),
                        source: job.source.clone(),
                        target: job.target.clone(),
                        reason: job.reason.clone(),
                        kind: job.kind.to_string(),
                        step: a.name.to_string(),
                        timeout: a.timeout,
                        work_dir: self.work_dir.clone(),
                        env,
                        fencing_token: self.fence.revision(),
                        incident_url: self
                            .incident_links
                            .as_ref()
                            .map(|base| format!("{}/{}", base.trim_end_matches('/'), job.incident)),
                    };
                    match actuators::run_external(other, a.params, &ctx).await {
                        Some(r) => r,
                        None => Err(StepError::Refused(format!("unknown actuator {other:?}"))),
                    }
                }
            }
        };
        match tokio::time::timeout(timeout, fut).await {
            Ok(r) => r,
            Err(_) => Err(StepError::Timeout(timeout)),
        }
    }

    /// `approval`: waits for `cutover approve`/`reject` (or the API) on the
    /// incident, recorded after the run started; on expiry, the default.
    async fn approval(&self, a: &Attempt<'_>, job: &Job) -> Result<Value, StepError> {
        let timeout = approval_timeout(a.params);
        // The runbook's word, echoed as given; anything but `approve` rejects.
        let default = a.params.get("default").and_then(Value::as_str).unwrap_or("reject");
        let default_verdict = default.parse().unwrap_or(Verdict::Reject);
        let message = a.params.get("message").and_then(Value::as_str).unwrap_or("approve this runbook to go on");
        self.timeline(
            job,
            "approval.requested",
            json!({"step": a.name, "message": redact::redact_text(message), "timeout_ms": timeout.as_millis() as u64,
                   "default": default}),
        );
        (self.emit)(&EngineEvent::ApprovalRequested {
            run: a.run.id,
            incident: job.incident.clone(),
            step: a.name.to_string(),
            message: message.to_string(),
            timeout,
        });
        let deadline = Instant::now() + timeout;
        loop {
            let verdict = self
                .store
                .approval_after(&job.incident, a.run.approval_base)
                .map_err(|e| StepError::Failed(format!("reading approvals: {e}")))?;
            if let Some(v) = verdict {
                let detail = json!({"verdict": v.verdict, "by": v.actor, "comment": v.comment});
                return if v.verdict == Verdict::Approve {
                    Ok(detail)
                } else {
                    Err(StepError::Refused(format!("rejected by {}: {}", v.actor, v.comment)))
                };
            }
            if Instant::now() >= deadline {
                let detail =
                    json!({"verdict": default, "by": "timeout", "comment": format!("no verdict within {timeout:?}")});
                return if default_verdict == Verdict::Approve {
                    Ok(detail)
                } else {
                    Err(StepError::Refused(format!("no verdict within {timeout:?}; the default is to reject")))
                };
            }
            tokio::time::sleep(self.approval_poll).await;
        }
    }

    /// What to scrub from a step's result: the values it read from the
    /// environment, and [`Engine::with_secrets`].
    fn needles(&self, read: &[String]) -> Vec<String> {
        redact::secret_needles(read.iter().chain(self.secrets.iter()).map(String::as_str))
    }

    fn timeline(&self, job: &Job, kind: &str, detail: Value) {
        if let Err(e) = self.store.add_event(&self.fence, &job.incident, SystemTime::now(), kind, &detail) {
            tracing::error!(error = %e, "recording a timeline event");
            (self.emit)(&EngineEvent::StoreError { op: "runbook.timeline" });
        }
    }

    fn audit(&self, actor: &str, action: &str, detail: Value) {
        if let Err(e) = self.store.audit(&self.fence, SystemTime::now(), actor, action, &detail) {
            tracing::error!(error = %e, "writing the audit log");
            (self.emit)(&EngineEvent::StoreError { op: "runbook.audit" });
        }
    }
}

/// One step or undo to run.
struct Attempt<'a> {
    run: &'a RunRecord,
    idx: usize,
    phase: StepPhase,
    name: &'a str,
    uses: &'a str,
    params: &'a Params,
    intent: &'a Value,
    timeout: Duration,
    retries: u32,
}

/// A journal row of `phase` recorded `ok`.
fn done_ok(s: &StepRecord, phase: StepPhase) -> bool {
    s.phase == phase && s.state == StepState::Ok
}

fn str_param<'a>(p: &'a Params, name: &str) -> Result<&'a str, StepError> {
    p.get(name)
        .and_then(Value::as_str)
        .ok_or_else(|| StepError::Param { field: name.into(), problem: "missing".into() })
}

fn approval_timeout(p: &Params) -> Duration {
    p.get("timeout")
        .and_then(Value::as_str)
        .and_then(|s| cutover_core::parse_duration(s).ok())
        .unwrap_or(APPROVAL_DEFAULT_TIMEOUT)
}

/// An error with its messages redacted and the `needles` scrubbed.
fn clean_error(e: StepError, needles: &[String]) -> StepError {
    let clean = |s: String| redact::redact_text(&redact::scrub_text(&s, needles));
    match e {
        StepError::Param { field, problem } => StepError::Param { field, problem: clean(problem) },
        StepError::Failed(s) => StepError::Failed(clean(s)),
        StepError::Refused(s) => StepError::Refused(clean(s)),
        StepError::Timeout(d) => StepError::Timeout(d),
    }
}

/// The parameters of the undo of step `s`, whose journal holds `stored`
/// (redacted): rendered again from `runbook` when its undo for that step
/// redacts to the same; else `stored` when nothing in it was redacted (a
/// journal from before redaction, or an undo without secrets); else an
/// error, rather than sending `[redacted]` somewhere.
fn undo_params(
    s: &StepRecord,
    uses: &str,
    stored: &Params,
    runbook: Option<&Runbook>,
    vars: &Vars,
) -> Result<Params, StepError> {
    let again = runbook
        .and_then(|rb| rb.steps.get(s.idx as usize))
        .filter(|step| step.name == s.name)
        .and_then(|step| step.undo.clone().or_else(|| default_undo(&step.call)))
        .filter(|u| u.uses == uses)
        .and_then(|u| runbook::render_call(&u.uses, &u.with, vars).ok())
        .filter(|with| runbook::redact(with) == *stored);
    if let Some(with) = again {
        return Ok(with);
    }
    if !Value::Object(stored.clone()).to_string().contains(REDACTED) {
        return Ok(stored.clone());
    }
    Err(StepError::Refused(format!(
        "the undo of {:?} has parameters that the journal keeps redacted, and the runbook's undo for this step \
         changed since it ran; undo it by hand ({uses} with {})",
        s.name,
        Value::Object(stored.clone())
    )))
}

/// The steps recorded `ok` whose undo is not, latest first, with their
/// journaled undo call.
fn pending_undos(journal: &[StepRecord]) -> Vec<(&StepRecord, &Value)> {
    journal
        .iter()
        .rev()
        .filter(|s| done_ok(s, StepPhase::Do))
        .filter(|s| !journal.iter().any(|u| u.idx == s.idx && done_ok(u, StepPhase::Undo)))
        .filter_map(|s| s.intent.get("undo").filter(|u| !u.is_null()).map(|u| (s, u)))
        .collect()
}

/// The failed step, its error and the reason recorded for a held rollback.
fn held_detail(record: &RunRecord) -> (String, String, String) {
    let field = |k: &str| record.detail[k].as_str().unwrap_or("?").to_string();
    (field("step"), field("error"), field("reason"))
}

/// The outcome recorded for a run whose rollback is held.
fn held_outcome(record: &RunRecord) -> RunOutcome {
    let (step, error, reason) = held_detail(record);
    RunOutcome::RollbackHeld { step, error, reason }
}

/// The undo of a step that gives none: `state.switch` switches back to the
/// source; `dns.update` puts back the record set it saved (the same call
/// with `restore = true` instead of `value` and `ttl`).
pub fn default_undo(call: &Call) -> Option<Call> {
    match call.uses.as_str() {
        "state.switch" => Some(Call {
            uses: "state.switch".into(),
            with: Params::from_iter([("to".to_string(), Value::String("{{ source }}".into()))]),
        }),
        "dns.update"
            if call.with.get("restore").is_none_or(|r| r.as_bool() != Some(true) && r.as_str() != Some("true")) =>
        {
            let mut with = call.with.clone();
            with.remove("value");
            with.remove("ttl");
            with.insert("restore".into(), Value::Bool(true));
            Some(Call { uses: "dns.update".into(), with })
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests;
