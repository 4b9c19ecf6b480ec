//! The controller's state: one health tracker per (backend, vantage), the
//! latest verification per backend, and the incident logic that turns
//! evidence into a recorded, reasoned decision.
//!
//! It does no network I/O and reads no clock: the runner feeds it probe
//! results, verification results and agent evidence with the
//! [`crate::clock::Now`] of the command that brought them, and calls
//! [`Controller::tick`]. Every record it writes (timeline, audit, health
//! history, policy input) takes that `Now`. What happens is emitted through [`Telemetry::emit`] (metric and
//! log line) once it is recorded, and returned as [`Event`]s for the runner
//! (runbooks to queue).
//!
//! One concern per file: this one holds the state and what every part
//! shares; `evidence` feeds the health trackers and reads health back
//! (quorum, aggregate, status); `incident` opens, decides and resolves
//! incidents; `policy_input` builds the policy's input document; `runs`
//! takes `state.switch` and the ends of runbook runs; `fallback` decides
//! fallbacks; `approval` takes human verdicts, `rollback` those on a held
//! rollback; `forced` takes forced failovers; `leadership` says whether the
//! controller acts (HA); `task` runs it as a task that owns it, `handle` is
//! how the rest of the process talks to that task, and `status` what the
//! task publishes.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use cutover_core::Config;
use cutover_core::config::Role;
use cutover_core::domain::RunKind;
use cutover_store::prelude::*;
use cutover_store::{Fence, StoreError};
use serde_json::{Value, json};

use crate::health::{Thresholds, Tracker};
use crate::policy::Policy;
use crate::telemetry::Telemetry;

mod approval;
mod evidence;
mod fallback;
mod forced;
mod handle;
mod incident;
mod leadership;
mod policy_input;
mod rollback;
mod runs;
mod status;
mod task;

/// What the controller reports: the one event type of [`crate::telemetry`].
pub use crate::telemetry::Event;
pub use evidence::Quorum;
pub use handle::{ControllerHandle, Report};
pub use leadership::{Leader, Leadership};
pub use rollback::RollbackQuestion;
pub use status::{BackendStatus, Status, VantageStatus};
pub use task::start;

/// A runbook to run, with what its templates need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunbookDue {
    pub incident: String,
    /// The backend the incident is about.
    pub backend: String,
    /// `failover`, `fallback`, or [`RunKind::Rollback`] (the approved
    /// rollback of a held run; `source` is where traffic is, `target` where
    /// the rollback moves it back to).
    pub kind: RunKind,
    pub source: String,
    pub target: String,
    pub reason: String,
    /// `controller`, or the token name of who approved or forced it.
    pub actor: String,
}

/// Why an approval, rejection or forced failover was refused.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    /// No such incident or backend.
    #[error("{0}")]
    NotFound(String),
    /// The request does not fit the current state (nothing awaits approval,
    /// a runbook is running, the target is already active).
    #[error("{0}")]
    Conflict(String),
    /// The state store failed.
    #[error("state store: {0}")]
    Store(#[from] StoreError),
    /// The controller has stopped (the process is shutting down).
    #[error("the controller has stopped")]
    Stopped,
    /// This controller stands by (HA): only the leader acts. `leader` is who
    /// leads, when known (the API answers 503 naming it).
    #[error("this node is a standby: {}", match leader {
        Some(l) => format!("the leader is {} ({})", l.node, l.api),
        None => "no leader is known".to_string(),
    })]
    NotLeader { leader: Option<Leader> },
}

/// The controller's own vantage point.
pub const LOCAL: &str = "local";

#[derive(Debug, Clone)]
struct Vantage {
    tracker: Tracker,
    last_seen: Instant,
    last_outcome: String,
}

#[derive(Debug, Clone)]
struct Verification {
    ok: bool,
    outcome: String,
}

#[derive(Debug, Clone)]
struct Backend {
    name: String,
    role: Role,
    residency: Option<String>,
    vantages: BTreeMap<String, Vantage>,
    verify: Option<Verification>,
    /// The evidence the current decision was made on: (down, met, verify failed).
    decided_on: Option<(usize, bool, bool)>,
    /// An incident was open for this backend when the controller started:
    /// its vantages start Unknown and must recover by the recovery rules
    /// before the incident can resolve (see [`Tracker::resumed`]).
    resumed: bool,
}

impl Backend {
    /// A tracker for a vantage of this backend with no evidence yet.
    fn new_tracker(&self, t: &Thresholds) -> Tracker {
        if self.resumed { Tracker::resumed(t.clone()) } else { Tracker::unknown(t.clone()) }
    }
}

/// The controller.
#[derive(Debug)]
pub struct Controller {
    config: Config,
    policy: Policy,
    store: Arc<dyn Store>,
    /// Leading (with the fence its writes carry: [`Fence::local`] when
    /// embedded) or standing by.
    role: Leadership,
    /// A leadership change the controller made by itself (a fenced write),
    /// until the task takes it.
    role_change: Option<Event>,
    /// The active backend as the store publishes it (a standby follows it).
    active_watch: tokio::sync::watch::Receiver<Option<String>>,
    thresholds: Thresholds,
    backends: Vec<Backend>,
    active: String,
    /// When each incident was opened (for the detection-to-switch time).
    opened: BTreeMap<String, Instant>,
    /// When each failed-over incident's failover completed (for `min_dwell`).
    failed_over_at: BTreeMap<String, Instant>,
    /// Since when each backend has been healthy without a break.
    healthy_since: BTreeMap<String, Instant>,
    /// When the fallback of an incident was last considered.
    fallback_checked: BTreeMap<String, Instant>,
    signals: serde_json::Map<String, Value>,
    /// `input.replication`: lag of `cutover replicate` and the gateway's journal.
    replication: Value,
    /// State store writes that failed, by operation (`cutover_store_errors_total`).
    store_errors: BTreeMap<&'static str, u64>,
    /// Where what happens is reported (metrics and log).
    telemetry: Telemetry,
}

impl Controller {
    /// Builds the controller, leading with [`Fence::local`] (embedded); the
    /// active backend comes from the store (a restart keeps it), else the
    /// primary.
    pub fn new(config: Config, policy: Policy, store: Arc<dyn Store>, now: Instant) -> Result<Self, StoreError> {
        Self::build(config, policy, store, now, Leadership::Leading(Fence::local()))
    }

    fn build(
        config: Config,
        policy: Policy,
        store: Arc<dyn Store>,
        now: Instant,
        role: Leadership,
    ) -> Result<Self, StoreError> {
        let d = &config.detect;
        let thresholds = Thresholds {
            failures: d.failures,
            confirm_after: d.confirm_after,
            error_rate: d.error_rate,
            window: d.window,
            p95_latency: d.p95_latency,
            recover_successes: d.recover_successes,
            recover_after: d.recover_after,
        };
        let backends = config
            .backends
            .iter()
            .map(|b| Backend {
                name: b.name.clone(),
                role: b.role,
                residency: b.residency.clone(),
                vantages: BTreeMap::new(),
                verify: None,
                decided_on: None,
                resumed: false,
            })
            .collect();
        let active_watch = store.watch_active_backend();
        let active = config.primary().name.clone();
        let mut controller = Self {
            config,
            policy,
            store,
            role,
            role_change: None,
            active_watch,
            thresholds,
            backends,
            active,
            opened: BTreeMap::new(),
            failed_over_at: BTreeMap::new(),
            healthy_since: BTreeMap::new(),
            fallback_checked: BTreeMap::new(),
            signals: serde_json::Map::new(),
            replication: json!({"lags": [], "journal": null}),
            store_errors: BTreeMap::new(),
            telemetry: Telemetry::default(),
        };
        controller.reload()?;
        for b in &mut controller.backends {
            let tracker = b.new_tracker(&controller.thresholds);
            b.vantages.insert(LOCAL.to_string(), Vantage { tracker, last_seen: now, last_outcome: "none".into() });
        }
        Ok(controller)
    }

    /// Reads from the store what a starting controller (or one that starts
    /// to lead) must know: the open incidents (their backends must recover
    /// by the recovery rules before they resolve, and are decided on afresh
    /// from the incident's stored state) and the active backend (the
    /// primary when none was ever set, which a leader records).
    fn reload(&mut self) -> Result<(), StoreError> {
        // A restart keeps what is true: health is unknown until fresh
        // evidence, and a backend with an open incident must recover by the
        // recovery rules before that incident resolves.
        let open: Vec<String> = self.store.open_incidents()?.into_iter().map(|i| i.backend).collect();
        for b in &mut self.backends {
            b.resumed = open.contains(&b.name);
            b.decided_on = None;
        }
        self.fallback_checked.clear();
        self.active = match self.store.active_backend()? {
            Some(a) if self.config.backend(&a).is_some() => a,
            _ => {
                let p = self.config.primary().name.clone();
                if let Some(fence) = self.role.fence() {
                    self.store.set_active_backend(fence, &p)?;
                }
                p
            }
        };
        self.active_watch.mark_unchanged();
        Ok(())
    }

    /// Reports into `telemetry` (the process's registered metrics) instead
    /// of metrics of its own.
    pub fn with_telemetry(mut self, telemetry: Telemetry) -> Self {
        self.telemetry = telemetry;
        self
    }

    /// Emits `event` (metric and log line) and returns it for the runner.
    fn emit(&self, event: Event) -> Event {
        self.telemetry.emit(&event);
        event
    }

    /// Where the controller reports what happens.
    pub fn telemetry(&self) -> &Telemetry {
        &self.telemetry
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// State store operations that failed since the start, by operation.
    pub fn store_errors(&self) -> &BTreeMap<&'static str, u64> {
        &self.store_errors
    }

    /// Logs and counts a failed store operation. What it was part of is not
    /// performed (a mutation that cannot be recorded and audited does not
    /// happen), except records of what already happened (health history,
    /// timeline notes, a runbook's end), which are only lost.
    /// A write refused with [`StoreError::Fenced`] is not a failure of the
    /// store: the controller stands by instead ([`Controller::fenced_out`]).
    fn store_failed(&mut self, op: &'static str, e: &StoreError) {
        if let StoreError::Fenced { revision, .. } = e {
            self.fenced_out(op, *revision);
            return;
        }
        self.telemetry.emit(&Event::StoreFailed { op: op.to_string(), error: Some(e.to_string()) });
        *self.store_errors.entry(op).or_default() += 1;
    }

    pub fn active(&self) -> &str {
        &self.active
    }

    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    fn index(&self, backend: &str) -> Option<usize> {
        self.backends.iter().position(|b| b.name == backend)
    }

    /// The names of the configured backends.
    pub fn backend_names(&self) -> Vec<String> {
        self.backends.iter().map(|b| b.name.clone()).collect()
    }
}

/// Writes `event`'s timeline entry, if it has one, in the transaction that
/// records what it reports.
fn record_timeline(tx: &dyn Tx, at: SystemTime, event: &Event) -> Result<(), StoreError> {
    match event.timeline() {
        Some(t) => tx.add_event(&t.incident, at, t.kind, &t.detail),
        None => Ok(()),
    }
}
