//! What the planner sees of the cluster: Deployments with their rollout
//! status, validation Jobs, the applications' current data and the snapshot.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// One selected Deployment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeploymentView {
    pub name: String,
    /// The pod-template annotation `cutover.dev/provider-hash`.
    pub hash: Option<String>,
    pub generation: i64,
    pub observed_generation: i64,
    /// `spec.replicas` (1 when unset).
    pub replicas: i32,
    /// `status.replicas`.
    pub status_replicas: i32,
    pub updated_replicas: i32,
    pub ready_replicas: i32,
    pub available_replicas: i32,
    /// The `Progressing` condition has reason `ProgressDeadlineExceeded`.
    pub progress_deadline_exceeded: bool,
}

/// A Deployment's rollout, by the rules of `kubectl rollout status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RolloutState {
    Complete,
    /// Still rolling, with what it waits for.
    Waiting(String),
    /// `ProgressDeadlineExceeded`.
    Failed,
}

impl DeploymentView {
    /// The rollout state, as `kubectl rollout status` decides it.
    pub fn rollout_state(&self) -> RolloutState {
        if self.generation > self.observed_generation {
            return RolloutState::Waiting("the controller has not observed the new generation".into());
        }
        if self.progress_deadline_exceeded {
            return RolloutState::Failed;
        }
        if self.updated_replicas < self.replicas {
            return RolloutState::Waiting(format!("{} of {} replicas updated", self.updated_replicas, self.replicas));
        }
        if self.status_replicas > self.updated_replicas {
            return RolloutState::Waiting(format!(
                "{} old replicas pending termination",
                self.status_replicas - self.updated_replicas
            ));
        }
        if self.available_replicas < self.updated_replicas {
            return RolloutState::Waiting(format!(
                "{} of {} updated replicas available",
                self.available_replicas, self.updated_replicas
            ));
        }
        RolloutState::Complete
    }
}

/// A validation Job's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobState {
    Running,
    Succeeded,
    Failed,
}

/// One validation Job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobView {
    pub name: String,
    pub state: JobState,
}

/// A StorageClass's provisioner and parameters.
pub type StorageClassData = (String, BTreeMap<String, String>);

/// The applications' objects as they are in the cluster now (for the names
/// in the spec); `None` where an object does not exist.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppData {
    /// Secret name → data (`None`: absent).
    pub secrets: BTreeMap<String, Option<BTreeMap<String, String>>>,
    /// ConfigMap name → data (`None`: absent).
    pub config_maps: BTreeMap<String, Option<BTreeMap<String, String>>>,
    /// StorageClass name → (provisioner, parameters) (`None`: absent).
    pub storage_classes: BTreeMap<String, Option<StorageClassData>>,
}

impl std::fmt::Debug for AppData {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppData")
            .field("secrets", &self.secrets.keys().collect::<Vec<_>>())
            .field("config_maps", &self.config_maps)
            .field("storage_classes", &self.storage_classes)
            .finish()
    }
}

/// What the operator restores on a rollback: the applications' data and the
/// Deployments' annotations before the rollout. Kept in a Secret the operator
/// owns (it holds credentials), never in status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    /// The hash of the rollout this snapshot was taken for.
    pub for_hash: String,
    /// The provider that was active (`None` before the first rollout).
    pub provider: Option<String>,
    pub data: AppData,
    /// Deployment name → its pod-template annotation before the rollout.
    pub deployments: BTreeMap<String, Option<String>>,
    /// The rollback decided for the rollout attempt, saved before anything
    /// is restored: a pass replayed after a crash continues it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollback: Option<RollbackIntent>,
}

/// Why a rollout attempt is rolled back, and which attempt (the status's
/// `rollout.hash`, `rollout.generation` and `rollout.retry`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RollbackIntent {
    pub hash: String,
    pub generation: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<String>,
    pub cause: FailureCause,
    /// The failure, as it goes to status (no secrets).
    pub message: String,
}

/// What made a rollout fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum FailureCause {
    /// A batch hit `ProgressDeadlineExceeded` or the batch timeout.
    RolloutFailed,
    /// A validation Job failed.
    ValidationFailed,
}

impl FailureCause {
    /// The Event and condition reason.
    pub fn as_str(self) -> &'static str {
        match self {
            FailureCause::RolloutFailed => "RolloutFailed",
            FailureCause::ValidationFailed => "ValidationFailed",
        }
    }
}
