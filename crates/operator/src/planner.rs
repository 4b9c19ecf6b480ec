//! The planner: given a `StorageBackend`, the selected Deployments with their
//! status, the validation Jobs, the applications' current data and the
//! snapshot, what should happen next. Pure: no I/O, no clock (the time is an
//! input).
//!
//! # Guarantees
//! - At most one batch is in flight: a plan rolls Deployments of one batch
//!   only, and batch N+1 only once every Deployment of batch N is complete by
//!   `kubectl rollout status` rules (and, after batch 1, the canary
//!   validation succeeded).
//! - A Deployment whose pod template already carries the hash is never
//!   rolled again, so replaying a plan after a crash restarts nothing twice.
//! - A rollback restores exactly the snapshot: the applications' Secrets,
//!   ConfigMaps and StorageClasses, and every Deployment's annotation. It is
//!   `Progressing`/`RollingBack` until the restored Deployments are rolled out
//!   by the same rules as a batch, then `Degraded`/`RolledBack` (or
//!   `Degraded`/`RollbackFailed` on `ProgressDeadlineExceeded` or after
//!   `batchTimeout`).
//! - The decision to roll back is saved in the snapshot Secret before any
//!   Deployment or data is restored; a pass replayed after a crash continues
//!   the rollback, so after a rollback began no Deployment gets the new
//!   data's hash again in this attempt.
//! - Every status carries the current generation (`observedGeneration` and
//!   each condition's).
//! - `spec` is never written; after a failure nothing is retried until the
//!   generation or the `cutover.dev/retry` annotation changes.
//!
//! # Assumptions
//! - The reconciler executes the actions in order and writes the status last,
//!   so a crash replays the whole plan; every action is idempotent.
//!
//! # Caveats
//! - A Deployment that starts matching the selector after a rollout completed
//!   is rolled with the next change of the provider data, not before.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::jiff::Timestamp;
use sha2::{Digest, Sha256};

use crate::conditions::{self, DEGRADED, PROGRESSING, READY};
use crate::crd::{Phase, RolloutStatus, StorageBackendSpec, StorageBackendStatus, ValidationStatus};
use crate::render::Rendered;
use crate::view::{AppData, DeploymentView, FailureCause, JobState, JobView, RollbackIntent, RolloutState, Snapshot};

/// How soon to look again while something is in flight.
pub const POLL: Duration = Duration::from_secs(5);

/// Everything the planner looks at.
#[derive(Debug, Clone, Copy)]
pub struct Input<'a> {
    /// The `StorageBackend`'s name.
    pub name: &'a str,
    pub generation: i64,
    /// The `cutover.dev/retry` annotation.
    pub retry: Option<&'a str>,
    pub spec: &'a StorageBackendSpec,
    pub status: &'a StorageBackendStatus,
    /// What the applications should see.
    pub desired: &'a Rendered,
    /// What they see now.
    pub current: &'a AppData,
    pub snapshot: Option<&'a Snapshot>,
    pub deployments: &'a [DeploymentView],
    pub jobs: &'a [JobView],
    pub now: Timestamp,
}

/// Which validation run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// After the first batch.
    Canary,
    /// After the last batch.
    Final,
}

impl Stage {
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Canary => "Canary",
            Stage::Final => "Final",
        }
    }
}

/// One thing to do, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Write the snapshot Secret.
    SaveSnapshot(Snapshot),
    ApplySecret {
        name: String,
        data: BTreeMap<String, String>,
    },
    DeleteSecret {
        name: String,
    },
    ApplyConfigMap {
        name: String,
        data: BTreeMap<String, String>,
    },
    DeleteConfigMap {
        name: String,
    },
    /// Create or update; parameters that differ mean delete and recreate.
    ApplyStorageClass {
        name: String,
        provisioner: String,
        parameters: BTreeMap<String, String>,
    },
    DeleteStorageClass {
        name: String,
    },
    /// Set the pod-template annotation of these Deployments (`None` removes
    /// it). `batch` is `None` for a rollback.
    Roll {
        batch: Option<u32>,
        deployments: Vec<(String, Option<String>)>,
    },
    /// Create the validation Job `job`.
    RunValidation {
        job: String,
        stage: Stage,
    },
    /// Record a Kubernetes Event.
    Event {
        warning: bool,
        reason: &'static str,
        message: String,
    },
}

/// What should happen next: the actions, then the status, then look again
/// after `requeue` (`None`: only on a change).
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub actions: Vec<Action>,
    pub status: StorageBackendStatus,
    pub requeue: Option<Duration>,
}

/// The batch size for `count` Deployments at `percent`%: `max(1, ceil(percent% × count))`.
pub fn batch_size(count: usize, percent: u32) -> usize {
    let percent = percent.clamp(1, 100) as usize;
    (count * percent).div_ceil(100).max(1)
}

/// The Deployments in rollout order (by name), cut into batches.
pub fn batches(deployments: &[DeploymentView], percent: u32) -> Vec<Vec<&DeploymentView>> {
    let mut sorted: Vec<&DeploymentView> = deployments.iter().collect();
    sorted.sort_by(|a, b| a.name.cmp(&b.name));
    let size = batch_size(sorted.len(), percent);
    sorted.chunks(size).map(|c| c.to_vec()).collect()
}

/// The validation Job's name for this rollout attempt and stage (unique per
/// hash, generation, retry and stage; at most 63 characters).
pub fn job_name(input: &Input<'_>, stage: Stage) -> String {
    let mut h = Sha256::new();
    h.update(input.desired.hash.as_bytes());
    h.update(input.generation.to_be_bytes());
    h.update(input.retry.unwrap_or("").as_bytes());
    let id = &hex::encode(h.finalize())[..10];
    let base: String = input.name.chars().take(36).collect();
    let base = base.trim_end_matches('-');
    format!("{base}-validate-{}-{id}", stage.as_str().to_ascii_lowercase())
}

/// Plans the next step.
pub fn plan(input: &Input<'_>) -> Plan {
    Planner { input, actions: Vec::new(), status: input.status.clone() }.run()
}

struct Planner<'a, 'b> {
    input: &'b Input<'a>,
    actions: Vec<Action>,
    status: StorageBackendStatus,
}

impl<'a> Planner<'a, '_> {
    fn run(mut self) -> Plan {
        let input = self.input;
        let requeue = match parse_timeout(input.spec) {
            Err(problem) => {
                self.conditions("InvalidSpec", Some(("InvalidSpec", problem.clone())), None);
                self.event(true, "InvalidSpec", problem);
                None
            }
            Ok(timeout) => self.step(timeout),
        };
        self.status.observed_generation = Some(input.generation);
        for c in &mut self.status.conditions {
            c.observed_generation = input.generation;
        }
        Plan { actions: self.actions, status: self.status, requeue }
    }

    fn step(&mut self, timeout: Duration) -> Option<Duration> {
        let input = self.input;
        let Some(rollout) = input.status.rollout.clone() else {
            return self.start();
        };
        let same_attempt = rollout.hash == input.desired.hash
            && rollout.generation == input.generation
            && rollout.retry.as_deref() == input.retry;
        // A rollback was decided (and saved in the snapshot) but its status
        // never written: continue it, never roll forward.
        let resume = input
            .snapshot
            .and_then(|s| s.rollback.as_ref())
            .filter(|i| i.hash == rollout.hash && i.generation == rollout.generation && i.retry == rollout.retry)
            .filter(|_| rollout.hash == input.desired.hash)
            .filter(|_| matches!(rollout.phase, Phase::RollingBatch | Phase::Validating));
        if let Some(intent) = resume.cloned() {
            return self.fail(rollout, intent.cause, intent.message);
        }
        match rollout.phase {
            _ if rollout.hash != input.desired.hash => self.start(),
            Phase::Complete => {
                // Nothing to do; keep the status stamped with this generation.
                self.set_rollout(RolloutStatus { generation: input.generation, ..rollout });
                self.conditions_complete();
                None
            }
            Phase::RolledBack | Phase::Failed if same_attempt => {
                let reason = match rollout.phase {
                    Phase::RolledBack => "RolledBack".to_string(),
                    _ => conditions::get(&input.status.conditions, DEGRADED)
                        .map_or_else(|| "RolloutFailed".to_string(), |c| c.reason.clone()),
                };
                let failure = rollout.failure.clone().unwrap_or_default();
                self.conditions(&reason, Some((&reason, failure)), None);
                None
            }
            Phase::RollingBack => self.rolling_back(rollout, timeout),
            Phase::RolledBack | Phase::Failed => self.start(),
            Phase::RollingBatch => self.rolling(rollout, timeout),
            Phase::Validating => self.validating(rollout),
        }
    }

    /// Starts (or restarts) a rollout to the desired data: snapshot, write
    /// the data, roll batch 1.
    fn start(&mut self) -> Option<Duration> {
        let input = self.input;
        let in_flight = input
            .status
            .rollout
            .as_ref()
            .is_some_and(|r| matches!(r.phase, Phase::RollingBatch | Phase::Validating | Phase::RollingBack));
        match input.snapshot {
            Some(s) if s.for_hash == input.desired.hash => {
                if s.rollback.is_some() {
                    // A new attempt: the last one's rollback is over (and
                    // must not match this attempt, say once the retry
                    // annotation is removed again).
                    self.actions.push(Action::SaveSnapshot(Snapshot { rollback: None, ..s.clone() }));
                }
            }
            Some(s) if in_flight => {
                // An interrupted rollout: the snapshot still describes the
                // last settled state.
                self.actions.push(Action::SaveSnapshot(Snapshot {
                    for_hash: input.desired.hash.clone(),
                    rollback: None,
                    ..s.clone()
                }));
            }
            _ => {
                let deployments = input.deployments.iter().map(|d| (d.name.clone(), d.hash.clone())).collect();
                self.actions.push(Action::SaveSnapshot(Snapshot {
                    for_hash: input.desired.hash.clone(),
                    provider: input.status.active_provider.clone(),
                    data: input.current.clone(),
                    deployments,
                    rollback: None,
                }));
            }
        }
        let d = input.desired;
        if let Some((name, data)) = &d.secret {
            self.actions.push(Action::ApplySecret { name: name.clone(), data: data.clone() });
        }
        for (name, data) in &d.config_maps {
            self.actions.push(Action::ApplyConfigMap { name: name.clone(), data: data.clone() });
        }
        if let Some((name, provisioner, parameters)) = &d.storage_class {
            self.actions.push(Action::ApplyStorageClass {
                name: name.clone(),
                provisioner: provisioner.clone(),
                parameters: parameters.clone(),
            });
        }
        let batches = self.batches();
        self.event(
            false,
            "RolloutStarted",
            format!(
                "rolling {} Deployment(s) to provider {} in {} batch(es)",
                input.deployments.len(),
                d.provider,
                batches.len()
            ),
        );
        let rollout = RolloutStatus {
            provider: d.provider.clone(),
            hash: d.hash.clone(),
            phase: Phase::RollingBatch,
            batch: 0,
            batches: batches.len() as u32,
            total: input.deployments.len() as u32,
            updated: self.updated(),
            batch_started_at: None,
            validation_job: None,
            retry: input.retry.map(str::to_string),
            generation: input.generation,
            failure: None,
            restoring: Vec::new(),
        };
        self.after_batch(rollout, 0)
    }

    /// Batch `done` (0: none yet) is complete and validated where needed:
    /// roll the next one or finish.
    fn after_batch(&mut self, rollout: RolloutStatus, done: u32) -> Option<Duration> {
        let batches = self.batches();
        let next = done + 1;
        match batches.get(done as usize) {
            Some(members) => {
                let to_roll: Vec<(String, Option<String>)> = members
                    .iter()
                    .filter(|m| m.hash.as_deref() != Some(&self.input.desired.hash))
                    .map(|m| (m.name.clone(), Some(self.input.desired.hash.clone())))
                    .collect();
                let names: Vec<&str> = members.iter().map(|m| m.name.as_str()).collect();
                self.event(false, "BatchStarted", format!("batch {next}/{}: {}", batches.len(), names.join(", ")));
                if !to_roll.is_empty() {
                    self.actions.push(Action::Roll { batch: Some(next), deployments: to_roll });
                }
                let now = self.input.now.to_string();
                let rollout = RolloutStatus {
                    phase: Phase::RollingBatch,
                    batch: next,
                    batches: batches.len() as u32,
                    batch_started_at: Some(now),
                    validation_job: None,
                    ..rollout
                };
                let message = format!("rolling batch {next}/{}", batches.len());
                self.set_rollout(rollout);
                self.conditions("RollingBatch", None, Some(message));
                Some(POLL)
            }
            None if done == 0 && self.input.spec.validation.is_some() => self.validate(rollout, 0, Stage::Final),
            None => self.complete(rollout),
        }
    }

    fn rolling(&mut self, rollout: RolloutStatus, timeout: Duration) -> Option<Duration> {
        let input = self.input;
        let batches = self.batches();
        let k = rollout.batch.max(1);
        let Some(members) = batches.get(k as usize - 1) else {
            // Fewer Deployments than when the batch started: the rest is done.
            let last = batches.len() as u32;
            return self.batch_done(rollout, last);
        };
        // Failures first. (A pass replayed after a crash in the middle of a
        // rollback never gets here: `step` resumes it from the snapshot.)
        let mut waiting = Vec::new();
        for m in members.iter().filter(|m| m.hash.as_deref() == Some(&input.desired.hash)) {
            match m.rollout_state() {
                RolloutState::Complete => {}
                RolloutState::Failed => {
                    return self.fail(
                        rollout,
                        FailureCause::RolloutFailed,
                        format!("batch {k}: Deployment {} exceeded its progress deadline", m.name),
                    );
                }
                RolloutState::Waiting(why) => waiting.push(format!("{} ({why})", m.name)),
            }
        }
        let started = rollout.batch_started_at.as_deref().and_then(|t| t.parse::<Timestamp>().ok());
        let elapsed = started.and_then(|s| input.now.duration_since(s).try_into().ok()).unwrap_or(Duration::ZERO);
        if elapsed > timeout {
            let late: Vec<String> =
                if waiting.is_empty() { members.iter().map(|m| m.name.clone()).collect() } else { waiting };
            let message = format!(
                "batch {k}: not ready within {}: {}",
                input.spec.rollout.as_ref().map(|r| r.batch_timeout.as_str()).unwrap_or("10m"),
                late.join(", ")
            );
            return self.fail(rollout, FailureCause::RolloutFailed, message);
        }
        let to_roll: Vec<(String, Option<String>)> = members
            .iter()
            .filter(|m| m.hash.as_deref() != Some(&input.desired.hash))
            .map(|m| (m.name.clone(), Some(input.desired.hash.clone())))
            .collect();
        if !to_roll.is_empty() {
            // Resumed after a crash between the roll and the status write, or
            // the batch's membership changed.
            self.actions.push(Action::Roll { batch: Some(k), deployments: to_roll });
            let rollout = RolloutStatus { updated: self.updated(), ..rollout };
            self.set_rollout(rollout);
            return Some(POLL);
        }
        if waiting.is_empty() {
            self.event(false, "BatchComplete", format!("batch {k}/{} is rolled out", batches.len()));
            return self.batch_done(rollout, k);
        }
        let message = format!("rolling batch {k}/{}: waiting for {}", batches.len(), waiting.join(", "));
        let rollout = RolloutStatus { updated: self.updated(), ..rollout };
        self.set_rollout(rollout);
        self.conditions("RollingBatch", None, Some(message));
        Some(POLL.min(timeout.saturating_sub(elapsed)).max(Duration::from_secs(1)))
    }

    /// Batch `k` is rolled out: validate (after the first and the last) or go on.
    fn batch_done(&mut self, rollout: RolloutStatus, k: u32) -> Option<Duration> {
        let total = self.batches().len() as u32;
        if self.input.spec.validation.is_some() {
            if k >= total {
                return self.validate(rollout, k, Stage::Final);
            }
            if k == 1 {
                return self.validate(rollout, k, Stage::Canary);
            }
        }
        if k >= total { self.complete(rollout) } else { self.after_batch(rollout, k) }
    }

    fn validate(&mut self, rollout: RolloutStatus, k: u32, stage: Stage) -> Option<Duration> {
        let job = job_name(self.input, stage);
        self.actions.push(Action::RunValidation { job: job.clone(), stage });
        self.event(false, "ValidationStarted", format!("{} validation Job {job} after batch {k}", stage.as_str()));
        let message = format!("{} validation Job {job}", stage.as_str());
        let rollout = RolloutStatus {
            phase: Phase::Validating,
            batch: k,
            validation_job: Some(job),
            updated: self.updated(),
            ..rollout
        };
        self.set_rollout(rollout);
        self.conditions("Validating", None, Some(message));
        Some(POLL)
    }

    fn validating(&mut self, rollout: RolloutStatus) -> Option<Duration> {
        let input = self.input;
        let k = rollout.batch;
        let total = self.batches().len() as u32;
        let stage = if k >= total { Stage::Final } else { Stage::Canary };
        let job = rollout.validation_job.clone().unwrap_or_else(|| job_name(input, stage));
        match input.jobs.iter().find(|j| j.name == job).map(|j| j.state) {
            None => {
                // Created in a plan whose status write never happened, or
                // not yet visible: create it (idempotent).
                self.actions.push(Action::RunValidation { job, stage });
                Some(POLL)
            }
            Some(JobState::Running) => {
                self.conditions("Validating", None, Some(format!("{} validation Job {job}", stage.as_str())));
                Some(POLL)
            }
            Some(JobState::Succeeded) => {
                self.finished_validation(&job, stage, "Succeeded");
                self.event(false, "ValidationSucceeded", format!("validation Job {job} succeeded"));
                let rollout = RolloutStatus { validation_job: None, ..rollout };
                if k >= total { self.complete(rollout) } else { self.after_batch(rollout, k) }
            }
            Some(JobState::Failed) => {
                self.finished_validation(&job, stage, "Failed");
                self.fail(
                    rollout,
                    FailureCause::ValidationFailed,
                    format!("{} validation Job {job} failed", stage.as_str()),
                )
            }
        }
    }

    fn finished_validation(&mut self, job: &str, stage: Stage, result: &str) {
        self.status.last_validation = Some(ValidationStatus {
            job: job.to_string(),
            stage: stage.as_str().to_string(),
            result: result.to_string(),
            finished_at: self.input.now.to_string(),
        });
    }

    fn complete(&mut self, rollout: RolloutStatus) -> Option<Duration> {
        let input = self.input;
        if self.status.active_provider.as_deref() != Some(&input.desired.provider) {
            self.status.previous_provider = self.status.active_provider.take();
            self.status.active_provider = Some(input.desired.provider.clone());
        }
        self.event(false, "RolloutComplete", format!("every Deployment uses provider {}", input.desired.provider));
        let rollout = RolloutStatus {
            phase: Phase::Complete,
            updated: self.updated(),
            batch_started_at: None,
            validation_job: None,
            ..rollout
        };
        self.set_rollout(rollout);
        self.conditions_complete();
        None
    }

    /// A batch or a validation failed: save the decision in the snapshot,
    /// then restore the snapshot.
    fn fail(&mut self, rollout: RolloutStatus, cause: FailureCause, message: String) -> Option<Duration> {
        let input = self.input;
        if let Some(snapshot) = input.snapshot {
            let intent = RollbackIntent {
                hash: rollout.hash.clone(),
                generation: rollout.generation,
                retry: rollout.retry.clone(),
                cause,
                message: message.clone(),
            };
            if snapshot.rollback.as_ref() != Some(&intent) {
                // First, before anything is restored: a crash from here on
                // resumes the rollback (see `step`).
                self.actions.push(Action::SaveSnapshot(Snapshot { rollback: Some(intent), ..snapshot.clone() }));
            }
        }
        let cause = cause.as_str();
        self.event(true, cause, message.clone());
        let Some(snapshot) = input.snapshot else {
            let rollout = RolloutStatus { phase: Phase::Failed, failure: Some(message.clone()), ..rollout };
            self.set_rollout(rollout);
            self.conditions(cause, Some((cause, message)), None);
            return None;
        };
        for (name, data) in &snapshot.data.secrets {
            self.actions.push(match data {
                Some(data) => Action::ApplySecret { name: name.clone(), data: data.clone() },
                None => Action::DeleteSecret { name: name.clone() },
            });
        }
        for (name, data) in &snapshot.data.config_maps {
            self.actions.push(match data {
                Some(data) => Action::ApplyConfigMap { name: name.clone(), data: data.clone() },
                None => Action::DeleteConfigMap { name: name.clone() },
            });
        }
        for (name, sc) in &snapshot.data.storage_classes {
            self.actions.push(match sc {
                Some((provisioner, parameters)) => Action::ApplyStorageClass {
                    name: name.clone(),
                    provisioner: provisioner.clone(),
                    parameters: parameters.clone(),
                },
                None => Action::DeleteStorageClass { name: name.clone() },
            });
        }
        let restore: Vec<(String, Option<String>)> = input
            .deployments
            .iter()
            .filter_map(|d| {
                let before = snapshot.deployments.get(&d.name)?;
                (d.hash != *before).then(|| (d.name.clone(), before.clone()))
            })
            .collect();
        // Wait for what is re-rolled now and for every member of the batches
        // this rollout reached: a pass replayed after a crash mid-rollback
        // finds them already re-rolled, but not necessarily rolled out.
        let reached = rollout.batch as usize;
        let mut restoring: Vec<String> = self
            .batches()
            .iter()
            .take(reached)
            .flatten()
            .filter(|d| snapshot.deployments.contains_key(&d.name))
            .map(|d| d.name.clone())
            .chain(restore.iter().map(|(name, _)| name.clone()))
            .collect();
        restoring.sort();
        restoring.dedup();
        if !restore.is_empty() {
            self.actions.push(Action::Roll { batch: None, deployments: restore });
        }
        let back_to = snapshot.provider.clone().unwrap_or_else(|| "the previous data".into());
        self.event(
            true,
            "RollingBack",
            format!("{message}; rolling back to {back_to} ({} Deployment(s) to re-roll)", restoring.len()),
        );
        let rollout = RolloutStatus {
            phase: Phase::RollingBack,
            failure: Some(message),
            batch_started_at: Some(input.now.to_string()),
            validation_job: None,
            restoring,
            ..rollout
        };
        if rollout.restoring.is_empty() {
            return self.rolled_back(rollout);
        }
        self.waiting_for_rollback(rollout)
    }

    /// The data is restored; the re-rolled Deployments roll out by the same
    /// rules as a batch, within the batch timeout.
    fn rolling_back(&mut self, rollout: RolloutStatus, timeout: Duration) -> Option<Duration> {
        let input = self.input;
        let mut waiting = Vec::new();
        for d in input.deployments.iter().filter(|d| rollout.restoring.contains(&d.name)) {
            match d.rollout_state() {
                RolloutState::Complete => {}
                RolloutState::Failed => {
                    let why = format!("Deployment {} exceeded its progress deadline", d.name);
                    return self.rollback_failed(rollout, why);
                }
                RolloutState::Waiting(why) => waiting.push(format!("{} ({why})", d.name)),
            }
        }
        if waiting.is_empty() {
            return self.rolled_back(rollout);
        }
        let started = rollout.batch_started_at.as_deref().and_then(|t| t.parse::<Timestamp>().ok());
        let elapsed = started.and_then(|s| input.now.duration_since(s).try_into().ok()).unwrap_or(Duration::ZERO);
        if elapsed > timeout {
            let limit = input.spec.rollout.as_ref().map_or("10m", |r| r.batch_timeout.as_str());
            return self.rollback_failed(rollout, format!("not ready within {limit}: {}", waiting.join(", ")));
        }
        self.waiting_for_rollback(rollout)
            .map(|poll| poll.min(timeout.saturating_sub(elapsed)).max(Duration::from_secs(1)))
    }

    fn waiting_for_rollback(&mut self, rollout: RolloutStatus) -> Option<Duration> {
        let failure = rollout.failure.clone().unwrap_or_default();
        let message = format!("{failure}; rolling back {} Deployment(s)", rollout.restoring.len());
        let rollout = RolloutStatus { updated: self.updated(), ..rollout };
        self.set_rollout(rollout);
        self.conditions("RollingBack", None, Some(message));
        Some(POLL)
    }

    /// Every re-rolled Deployment is back: `Degraded`/`RolledBack`.
    fn rolled_back(&mut self, rollout: RolloutStatus) -> Option<Duration> {
        let provider = self.input.snapshot.and_then(|s| s.provider.clone());
        let back_to = provider.clone().unwrap_or_else(|| "the previous data".into());
        let failure = rollout.failure.clone().unwrap_or_default();
        let message =
            format!("{failure}; rolled back to {back_to} ({} Deployment(s) re-rolled)", rollout.restoring.len());
        self.event(true, "RolledBack", message.clone());
        let rollout = RolloutStatus {
            phase: Phase::RolledBack,
            failure: Some(message.clone()),
            batch_started_at: None,
            updated: self.updated(),
            ..rollout
        };
        self.set_rollout(rollout);
        self.status.active_provider = provider;
        self.conditions("RolledBack", Some(("RolledBack", message)), None);
        None
    }

    /// The rollback itself did not complete: `Degraded`/`RollbackFailed`.
    fn rollback_failed(&mut self, rollout: RolloutStatus, why: String) -> Option<Duration> {
        let failure = rollout.failure.clone().unwrap_or_default();
        let message = format!("{failure}; the rollback did not complete: {why}");
        self.event(true, "RollbackFailed", message.clone());
        let rollout = RolloutStatus {
            phase: Phase::Failed,
            failure: Some(message.clone()),
            batch_started_at: None,
            updated: self.updated(),
            ..rollout
        };
        self.set_rollout(rollout);
        self.status.active_provider = self.input.snapshot.and_then(|s| s.provider.clone());
        self.conditions("RollbackFailed", Some(("RollbackFailed", message)), None);
        None
    }

    fn batches(&self) -> Vec<Vec<&'a DeploymentView>> {
        let percent = self.input.spec.rollout.as_ref().map_or(100, |r| r.batch_percent);
        batches(self.input.deployments, percent)
    }

    fn updated(&self) -> u32 {
        let hash = &self.input.desired.hash;
        self.input.deployments.iter().filter(|d| d.hash.as_deref() == Some(hash)).count() as u32
    }

    fn set_rollout(&mut self, rollout: RolloutStatus) {
        self.status.rollout = Some(rollout);
    }

    fn event(&mut self, warning: bool, reason: &'static str, message: String) {
        self.actions.push(Action::Event { warning, reason, message });
    }

    fn conditions_complete(&mut self) {
        let provider = &self.input.desired.provider;
        let (g, now) = (self.input.generation, self.input.now.to_string());
        let c = &mut self.status.conditions;
        conditions::set(
            c,
            READY,
            true,
            "RolloutComplete",
            format!("every Deployment uses provider {provider}"),
            g,
            &now,
        );
        conditions::set(c, PROGRESSING, false, "RolloutComplete", String::new(), g, &now);
        conditions::set(c, DEGRADED, false, "RolloutComplete", String::new(), g, &now);
    }

    /// Ready=False (reason `RollingOut` while progressing, else `reason`);
    /// Degraded when `degraded` is given; Progressing (with `reason`) when
    /// `progressing` is given.
    fn conditions(&mut self, reason: &str, degraded: Option<(&str, String)>, progressing: Option<String>) {
        let (g, now) = (self.input.generation, self.input.now.to_string());
        let c = &mut self.status.conditions;
        let ready_reason = match &progressing {
            Some(_) if reason == "RollingBack" => "RollingBack",
            Some(_) => "RollingOut",
            None => reason,
        };
        conditions::set(c, READY, false, ready_reason, progressing.clone().unwrap_or_default(), g, &now);
        match progressing {
            Some(message) => conditions::set(c, PROGRESSING, true, reason, message, g, &now),
            None => conditions::set(c, PROGRESSING, false, reason, String::new(), g, &now),
        }
        match degraded {
            Some((r, message)) => conditions::set(c, DEGRADED, true, r, message, g, &now),
            None => conditions::set(c, DEGRADED, false, "AsExpected", String::new(), g, &now),
        }
    }
}

fn parse_timeout(spec: &StorageBackendSpec) -> Result<Duration, String> {
    let text = spec.rollout.as_ref().map_or("10m", |r| r.batch_timeout.as_str());
    cutover_core::duration::parse_duration(text).map_err(|e| format!("spec.rollout.batchTimeout: {e}"))
}

#[cfg(test)]
#[path = "planner_tests.rs"]
mod tests;
