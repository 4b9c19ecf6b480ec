//! The orchestration stage of `cutover run`: the queue of runbook runs (one
//! at a time), the runbooks from the configuration (or the built-in ones),
//! and the actuators that act on the running controller and gateway.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use cutover_control::clock::Clock;
use cutover_control::controller::{RollbackQuestion, RunbookDue};
use cutover_control::telemetry::Event;
use cutover_core::Config;
use cutover_core::domain::{IncidentState, RunKind, RunState};
use cutover_orchestrate::actuators::StepError;
use cutover_orchestrate::engine::{
    BoxFut, Engine, EngineEvent, Host, Job, RollbackGuard, RollbackRequest, RollbackVerdict, RunOutcome,
};
use cutover_orchestrate::runbook::{self, Runbook};
use cutover_s3::ClientOptions;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::cmd::run::Shared;
use crate::{Failure, load};

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

/// The actuators that act on this process: the switch, validation, resync.
struct RunHost {
    shared: Arc<Shared>,
}

impl Host for RunHost {
    fn switch<'a>(&'a self, to: &'a str) -> BoxFut<'a, Result<Value, StepError>> {
        Box::pin(async move {
            let from =
                self.shared.controller.lock().unwrap().set_active(to).map_err(|e| StepError::Failed(e.to_string()))?;
            if let Some(gw) = &self.shared.gateway {
                gw.active().set(to);
            }
            Ok(json!({"from": from, "to": to}))
        })
    }

    fn validate<'a>(&'a self, backend: &'a str) -> BoxFut<'a, Result<Value, StepError>> {
        Box::pin(async move {
            let config = &self.shared.config;
            let b = config.backend(backend).ok_or_else(|| StepError::Param {
                field: "backend".into(),
                problem: format!("no backend named {backend:?}"),
            })?;
            let opts =
                ClientOptions { timeout: Duration::from_secs(10), connect_timeout: config.probe.timeout, pooled: true };
            let client = load::client(b, opts).map_err(|e| {
                StepError::Failed(match e {
                    Failure::Usage(m) => m,
                    other => format!("{other:?}"),
                })
            })?;
            let report = cutover_s3::validate::run(&client, &b.validate, &config.probe.prefix).await;
            let failed: Vec<String> =
                report.checks.iter().filter(|c| !c.ok).map(|c| format!("{}: {}", c.name, c.detail)).collect();
            if report.ok {
                Ok(json!({"backend": backend, "checks": report.checks.len(), "p95_ms": report.latency.p95_ms}))
            } else {
                Err(StepError::Failed(format!("validation of {backend} failed: {}", failed.join("; "))))
            }
        })
    }

    fn resync(&self, max_rounds: u32, since: Option<SystemTime>) -> BoxFut<'_, Result<Value, StepError>> {
        Box::pin(async move {
            let config = &self.shared.config;
            if config.gateway.is_none() {
                return Err(StepError::Refused(
                    "no [gateway] is configured, so cutover has no journal of the writes made during the outage; \
                     copy them back with `cutover sync` and force the fallback with POST /v1/failover"
                        .into(),
                ));
            }
            let (mut copied, mut deleted) = (0, 0);
            let mut round = 0;
            loop {
                round += 1;
                let report = match &self.shared.gateway {
                    Some(gw) => gw.resync().await,
                    None => cutover_gateway::resync(config).await,
                }
                .map_err(|e| StepError::Failed(format!("resync: {e}")))?;
                copied += report.copied;
                deleted += report.deleted;
                if report.remaining == 0 && report.failed == 0 {
                    break;
                }
                if round >= max_rounds {
                    return Err(StepError::Failed(format!(
                        "{} writes are still not copied back after {round} rounds: {}",
                        report.remaining,
                        report.errors.iter().take(5).cloned().collect::<Vec<_>>().join("; ")
                    )));
                }
            }
            let restored = self.reconcile(since).await?;
            Ok(
                json!({"copied": copied, "deleted": deleted, "rounds": round, "remaining": 0, "restored_missing": restored}),
            )
        })
    }
}

impl RunHost {
    /// For dual-write buckets: copies back to the primary every object a
    /// secondary has and the primary does not (an acknowledged write the
    /// primary lost in its crash), verified; never overwrites an object the
    /// primary has. Runs only once the dual-write journal is drained, so that
    /// a delete not yet replayed cannot resurrect an object.
    /// Copies back what the primary lacks after the journals are replayed:
    /// on dual-write buckets every object it does not have; and, on every
    /// bucket, what changed on the other backend since the failover
    /// (`since`) and is newer there — the writes of a gateway whose journal
    /// is gone with its host.
    async fn reconcile(&self, since: Option<SystemTime>) -> Result<u64, StepError> {
        let config = &self.shared.config;
        let Some(gw_cfg) = &config.gateway else { return Ok(0) };
        let in_dual = |name: &str| {
            gw_cfg
                .buckets
                .iter()
                .any(|b| b.mode == cutover_core::config::BucketMode::DualWrite && b.backends.iter().any(|n| n == name))
        };
        if since.is_none() && !gw_cfg.buckets.iter().any(|b| b.mode == cutover_core::config::BucketMode::DualWrite) {
            return Ok(0);
        }
        if let Some(gw) = &self.shared.gateway {
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                let (depth, _) = gw.state().journal_depth().await.map_err(|e| StepError::Failed(e.to_string()))?;
                if depth == 0 {
                    break;
                }
                if Instant::now() > deadline {
                    return Err(StepError::Failed(format!(
                        "{depth} dual-write journal entries are still not replayed; not reconciling yet"
                    )));
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
        let primary = config.primary();
        let mut restored = 0;
        let mut others: Vec<&str> = gw_cfg.buckets.iter().flat_map(|b| b.backends.iter().map(String::as_str)).collect();
        others.sort_unstable();
        others.dedup();
        for name in others.into_iter().filter(|n| *n != primary.name) {
            let dual = in_dual(name);
            if !dual && since.is_none() {
                continue;
            }
            let side = |b: &cutover_core::config::BackendConfig| -> Result<cutover_sync::Side, StepError> {
                let opts = |pooled| ClientOptions {
                    timeout: Duration::from_secs(60),
                    connect_timeout: Duration::from_secs(5),
                    pooled,
                };
                let mk = |pooled| {
                    load::client(b, opts(pooled)).map_err(|_| StepError::Failed(format!("{}: credentials", b.name)))
                };
                Ok(cutover_sync::Side {
                    location: cutover_sync::Location { backend: b.name.clone(), prefix: String::new() },
                    client: mk(true)?,
                    get_client: mk(false)?,
                })
            };
            let Some(src_cfg) = config.backend(name) else { continue };
            let (src, dst) = (side(src_cfg)?, side(primary)?);
            let opts = cutover_sync::SyncOptions {
                missing_only: true,
                newer_since: since,
                missing_since: if dual { None } else { since },
                filter: cutover_sync::Filter::new(Vec::new(), vec![format!("{}*", config.probe.prefix)]),
                ..cutover_sync::SyncOptions::default()
            };
            let summary = cutover_sync::run(&src, &dst, &opts, None, &|_| {})
                .await
                .map_err(|e| StepError::Failed(format!("reconciling {name} -> {}: {e}", primary.name)))?;
            if summary.failed > 0 {
                return Err(StepError::Failed(format!(
                    "reconciling {name} -> {}: {} objects missing on the primary could not be copied",
                    primary.name, summary.failed
                )));
            }
            restored += summary.copied;
        }
        Ok(restored)
    }
}

/// The rollback guard of `cutover run`: the controller's health of the
/// backend a rollback would switch traffic back onto, and the policy's
/// `rollback` rule ([`cutover_control::controller::Controller::rollback_verdict`]).
struct ControllerGuard {
    shared: Arc<Shared>,
}

impl RollbackGuard for ControllerGuard {
    fn may_roll_back_onto(&self, r: &RollbackRequest<'_>) -> RollbackVerdict {
        let q = RollbackQuestion {
            run: r.run,
            incident: r.incident,
            kind: r.kind,
            failed_step: r.failed_step,
            error: r.error,
            onto: r.onto,
        };
        let (allow, reason, health) =
            self.shared.controller.lock().unwrap().rollback_verdict(&q, Clock::system().now());
        RollbackVerdict { allow, reason, health: Some(health.as_str().to_string()) }
    }
}

/// Builds the engine for `shared`; its events go to the log and the metrics.
pub fn engine(shared: &Arc<Shared>) -> Engine {
    let work_dir = shared.config.state.path.parent().unwrap_or(std::path::Path::new(".")).join("cutover-work");
    let store = shared.controller.lock().unwrap().store().clone();
    let sink = shared.clone();
    Engine::new(
        store,
        Arc::new(RunHost { shared: shared.clone() }),
        work_dir,
        Arc::new(|k| std::env::var(k).ok()),
        Arc::new(move |e: &EngineEvent| report(&sink, e)),
    )
    .with_secrets(held_secrets(&shared.config))
    .with_guard(Arc::new(ControllerGuard { shared: shared.clone() }))
}

/// The credentials cutover holds (backends, gateway clients): no step result
/// may show them, and a `command` step's program inherits the environment
/// they come from.
fn held_secrets(config: &Config) -> Vec<String> {
    let mut out = Vec::new();
    for b in &config.backends {
        if let Ok(c) = cutover_s3::resolve_credentials(b) {
            out.push(c.secret_access_key.expose().to_string());
            out.extend(c.session_token.as_ref().map(|t| t.expose().to_string()));
        }
    }
    for c in config.gateway.iter().flat_map(|g| &g.clients) {
        out.extend(match &c.secret {
            cutover_core::config::SecretRef::Env(var) => std::env::var(var).ok(),
            cutover_core::config::SecretRef::File(path) => {
                std::fs::read_to_string(path).ok().map(|s| s.trim_end_matches(['\r', '\n']).to_string())
            }
        });
    }
    out
}

/// Each engine event as a telemetry event (its log line and metric).
fn report(shared: &Shared, e: &EngineEvent) {
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

/// Runs queued runbooks one at a time; first resumes those a crash interrupted.
pub async fn orchestrate(shared: Arc<Shared>, runbooks: Runbooks, mut queue: mpsc::UnboundedReceiver<RunbookDue>) {
    use crate::logs::event;
    let engine = engine(&shared);
    let store = shared.controller.lock().unwrap().store().clone();
    for rec in store.unfinished_runs().unwrap_or_default() {
        let incident = store.incident(&rec.incident).ok().flatten();
        let backend = incident.as_ref().map(|i| i.backend.clone()).unwrap_or_default();
        let resumed = if rec.state == RunState::RollbackHeld {
            if incident.is_none_or(|i| i.state != IncidentState::RollingBack) {
                continue; // the held rollback still awaits a human's verdict
            }
            // Approved just before a restart, not started yet.
            let actor = last_approver(store.as_ref(), &rec.incident, rec.approval_base);
            engine.roll_back_held(&rec, &backend, Some(runbooks.for_kind(rec.kind)), &actor).await
        } else {
            engine.resume(&rec, &backend, Some(runbooks.for_kind(rec.kind))).await
        };
        match resumed {
            Ok(outcome) => finished(&shared, &rec.incident, rec.kind, &outcome),
            Err(e) => event(
                "error",
                "runbook.alert",
                &format!("ALERT resuming run {} of {}: {e}", rec.id, rec.incident),
                json!({"incident": rec.incident, "run": rec.id, "error": e.to_string()}),
            ),
        }
    }
    while let Some(due) = queue.recv().await {
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
            continue;
        }
        if due.kind == RunKind::Rollback {
            let held = shared.controller.lock().unwrap().held_rollback(&due.incident);
            let rec = match held {
                Ok(Some(rec)) => rec,
                other => {
                    let why = other.err().map_or("no held rollback".to_string(), |e| e.to_string());
                    event(
                        "error",
                        "runbook.alert",
                        &format!("ALERT rollback of {} not started: {why}", due.incident),
                        json!({"incident": due.incident, "error": why}),
                    );
                    continue;
                }
            };
            match engine.roll_back_held(&rec, &due.backend, Some(runbooks.for_kind(rec.kind)), &due.actor).await {
                Ok(outcome) => finished(&shared, &due.incident, rec.kind, &outcome),
                Err(e) => event(
                    "error",
                    "runbook.alert",
                    &format!("ALERT rollback of {} could not be journaled: {e}", due.incident),
                    json!({"incident": due.incident, "run": rec.id, "error": e.to_string()}),
                ),
            }
            continue;
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
            Ok((_, outcome)) => finished(&shared, &job.incident, job.kind, &outcome),
            Err(e) => event(
                "error",
                "runbook.alert",
                &format!("ALERT runbook {} could not be journaled: {e}", job.incident),
                json!({"incident": job.incident, "error": e.to_string()}),
            ),
        }
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

/// Moves the incident on; the controller emits how the run settled
/// (failovers, fallbacks, rollbacks, the detection-to-switch time).
fn finished(shared: &Shared, incident: &str, kind: RunKind, outcome: &RunOutcome) {
    shared.controller.lock().unwrap().run_finished(incident, kind, outcome, Clock::system().now());
}
