//! The orchestration stage of `cutover run`: the queue of runbook runs (one
//! at a time), the runbooks from the configuration (or the built-in ones),
//! and the actuators that act on the running controller and gateway.
//!
//! - this file: the runbooks in use and the queue;
//! - `engine`: the engine with its host, guard and secrets;
//! - `host`: the actuators that act on this process (switch, validate, resync);
//! - `guard`: the rollback guard, asked through the controller task;
//! - `report`: the engine's events as log lines and metrics.

use std::sync::Arc;

use cutover_control::controller::RunbookDue;
use cutover_core::Config;
use cutover_core::domain::{IncidentState, RunKind, RunState};
use cutover_orchestrate::engine::{Engine, Job, RunOutcome};
use cutover_orchestrate::runbook::{self, Runbook};
use cutover_store::{Fence, RunRecord};
use serde_json::json;
use tokio::sync::mpsc;

use crate::Failure;
use crate::logs::event;
use crate::wiring::Shared;

mod engine;
mod guard;
mod host;
mod kubernetes;
mod report;

use engine::engine;

/// The failover and fallback runbooks in use.
#[derive(Debug, Clone)]
pub struct Runbooks {
    pub failover: Runbook,
    pub fallback: Runbook,
}

impl Runbooks {
    /// Loads and checks the runbooks named in `[runbooks]`, else the built-in
    /// ones; warns on standard error about unset `*_env` variables and
    /// placeholders, as `config check` does.
    pub fn load(config: &Config) -> Result<Self, Failure> {
        let names = config.backend_names();
        let one = |path: &Option<std::path::PathBuf>, kind: RunKind| -> Result<Runbook, Failure> {
            match path {
                None => Ok(runbook::built_in(kind)),
                Some(p) => {
                    let rb = runbook::load(p, &names).map_err(|e| Failure::Usage(e.to_string()))?;
                    crate::warnings::print_warnings(&rb.origin, &runbook::warnings(&rb, &crate::warnings::env_lookup));
                    Ok(rb)
                }
            }
        };
        Ok(Self {
            failover: one(&config.runbooks.failover, RunKind::Failover)?,
            fallback: one(&config.runbooks.fallback, RunKind::Fallback)?,
        })
    }

    pub fn for_kind(&self, kind: RunKind) -> &Runbook {
        match kind {
            RunKind::Failover | RunKind::Rollback => &self.failover,
            RunKind::Fallback => &self.fallback,
        }
    }
}

/// Runs queued runbooks one at a time; first resumes those a crash
/// interrupted. Returns when the queue is closed.
pub async fn orchestrate(shared: Arc<Shared>, runbooks: Runbooks, mut queue: mpsc::UnboundedReceiver<RunbookDue>) {
    orchestrate_term(&shared, &runbooks, &mut queue, Fence::local()).await;
}

/// One leadership term of the runbook queue (the whole life of an embedded
/// `cutover run`): resumes the runs a crash — or a deposed leader —
/// interrupted, exactly as a restart does, then runs queued runbooks one at
/// a time, every journal write carrying `fence`. In HA the term ends by
/// dropping this future, which cancels the step in flight.
pub async fn orchestrate_term(
    shared: &Arc<Shared>,
    runbooks: &Runbooks,
    queue: &mut mpsc::UnboundedReceiver<RunbookDue>,
    fence: Fence,
) {
    let shared = shared.clone();
    let engine = engine(&shared).with_fence(fence);
    let store = shared.store.clone();
    for rec in store.unfinished_runs().unwrap_or_default() {
        resume(&shared, &engine, runbooks, rec).await;
    }
    for due in orphaned_decisions(store.as_ref()) {
        event(
            "warn",
            "runbook.requeued",
            &format!(
                "runbook {}: the {} decided before the restart or takeover never started; starting it",
                due.incident, due.kind
            ),
            json!({"incident": due.incident, "kind": due.kind, "target": due.target}),
        );
        start(&shared, &engine, runbooks, due).await;
    }
    while let Some(due) = queue.recv().await {
        start(&shared, &engine, runbooks, due).await;
    }
}

/// Decisions whose runbook never started: the incident is failing over (or
/// falling back) but no run of that kind began at or after the decision —
/// the process, or the leader, died between recording the decision and the
/// run's first journal write. They are due now, as the queue would have had
/// them (the actor is `controller`; the decision's reason is kept).
fn orphaned_decisions(store: &dyn cutover_store::Store) -> Vec<RunbookDue> {
    let Ok(open) = store.open_incidents() else { return Vec::new() };
    let active = store.active_backend().ok().flatten();
    open.into_iter()
        .filter_map(|inc| {
            let (kind, decided_as) = match inc.state {
                IncidentState::FailingOver => (RunKind::Failover, "decision"),
                IncidentState::FallingBack => (RunKind::Fallback, "fallback.decision"),
                _ => return None,
            };
            let timeline = store.timeline(&inc.id).ok()?;
            let decided = timeline.iter().rev().find(|e| e.kind == decided_as)?;
            let runs = store.runs_for(&inc.id).ok()?;
            if runs.iter().any(|r| r.kind == kind && r.started_at >= decided.at) {
                return None;
            }
            let target = decided.detail["target"].as_str()?.to_string();
            let source = active.clone().unwrap_or_else(|| inc.backend.clone());
            Some(RunbookDue {
                incident: inc.id.clone(),
                backend: inc.backend.clone(),
                kind,
                source,
                target,
                reason: decided.detail["reason"].as_str().unwrap_or_default().to_string(),
                actor: "controller".into(),
            })
        })
        .collect()
}

/// Starts the runbook `due` names, unless its incident moved on.
async fn start(shared: &Arc<Shared>, engine: &Engine, runbooks: &Runbooks, due: RunbookDue) {
    let store = &shared.store;
    let expected = match due.kind {
        RunKind::Failover => IncidentState::FailingOver,
        RunKind::Fallback => IncidentState::FallingBack,
        RunKind::Rollback => IncidentState::RollingBack,
    };
    let state = store.incident(&due.incident).ok().flatten().map(|i| i.state);
    if state != Some(expected) {
        event(
            "warn",
            "runbook.skipped",
            &format!("runbook {}: {} not started: the incident is {state:?} now", due.incident, due.kind),
            json!({"incident": due.incident, "kind": due.kind, "state": state}),
        );
        return;
    }
    if due.kind == RunKind::Rollback {
        roll_back_held(shared, engine, runbooks, due).await;
        return;
    }
    let job = Job {
        incident: due.incident.clone(),
        backend: due.backend,
        kind: due.kind,
        source: due.source,
        target: due.target,
        reason: due.reason,
        actor: due.actor,
    };
    match engine.run(&job, runbooks.for_kind(job.kind)).await {
        Ok((_, outcome)) => finished(shared, &job.incident, job.kind, &outcome).await,
        Err(e) => event(
            "error",
            "runbook.alert",
            &format!("ALERT runbook {} could not be journaled: {e}", job.incident),
            json!({"incident": job.incident, "error": e.to_string()}),
        ),
    }
}

/// Resumes a run a crash or a stop interrupted; a held rollback that was
/// approved just before the restart runs now, one still awaiting a verdict
/// waits.
async fn resume(shared: &Shared, engine: &Engine, runbooks: &Runbooks, rec: RunRecord) {
    let store = &shared.store;
    let incident = store.incident(&rec.incident).ok().flatten();
    let backend = incident.as_ref().map(|i| i.backend.clone()).unwrap_or_default();
    let resumed = if rec.state == RunState::RollbackHeld {
        if incident.is_none_or(|i| i.state != IncidentState::RollingBack) {
            return; // the held rollback still awaits a human's verdict
        }
        // Approved just before a restart, not started yet.
        let actor = last_approver(store.as_ref(), &rec.incident, rec.approval_base);
        engine.roll_back_held(&rec, &backend, Some(runbooks.for_kind(rec.kind)), &actor).await
    } else {
        engine.resume(&rec, &backend, Some(runbooks.for_kind(rec.kind))).await
    };
    match resumed {
        Ok(outcome) => finished(shared, &rec.incident, rec.kind, &outcome).await,
        Err(e) => event(
            "error",
            "runbook.alert",
            &format!("ALERT resuming run {} of {}: {e}", rec.id, rec.incident),
            json!({"incident": rec.incident, "run": rec.id, "error": e.to_string()}),
        ),
    }
}

/// Runs the approved rollback of the held run of `due.incident`.
async fn roll_back_held(shared: &Shared, engine: &Engine, runbooks: &Runbooks, due: RunbookDue) {
    let id = due.incident.clone();
    let held = shared.controller.query(move |c, _| c.held_rollback(&id)).await;
    let rec = match held {
        Ok(Ok(Some(rec))) => rec,
        other => {
            let why = match other {
                Ok(Err(e)) => e.to_string(),
                Err(e) => e.to_string(),
                Ok(Ok(_)) => "no held rollback".to_string(),
            };
            event(
                "error",
                "runbook.alert",
                &format!("ALERT rollback of {} not started: {why}", due.incident),
                json!({"incident": due.incident, "error": why}),
            );
            return;
        }
    };
    match engine.roll_back_held(&rec, &due.backend, Some(runbooks.for_kind(rec.kind)), &due.actor).await {
        Ok(outcome) => finished(shared, &due.incident, rec.kind, &outcome).await,
        Err(e) => event(
            "error",
            "runbook.alert",
            &format!("ALERT rollback of {} could not be journaled: {e}", due.incident),
            json!({"incident": due.incident, "run": rec.id, "error": e.to_string()}),
        ),
    }
}

/// Who gave the latest verdict on `incident` after approval `base`
/// (the approver of a held rollback).
fn last_approver(store: &dyn cutover_store::Store, incident: &str, base: i64) -> String {
    let (mut after, mut actor) = (base, "controller".to_string());
    while let Ok(Some(a)) = store.approval_after(incident, after) {
        after = a.id;
        actor = a.actor;
    }
    actor
}

/// A run ended: the controller moves its incident on (and has, when this
/// returns: the next queued run sees the incident's new state) and emits
/// how the run settled (failovers, fallbacks, rollbacks, the
/// detection-to-switch time).
async fn finished(shared: &Shared, incident: &str, kind: RunKind, outcome: &RunOutcome) {
    shared.controller.run_finished(incident, kind, outcome.clone());
    // Answered after the run's end was taken in (commands are handled in order).
    let _ = shared.controller.query(|_, _| ()).await;
}
