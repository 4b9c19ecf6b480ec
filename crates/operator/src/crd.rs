//! The `StorageBackend` custom resource (`cutover.dev/v1alpha1`, short name
//! `sb`): its spec, its status and the CRD generated from them.
//!
//! The shape is the one in CONTRACT.md ("Kubernetes"). Embedded Kubernetes
//! types (the rollout's label selector, the validation Job's pod template) are
//! typed in Rust and described in the schema as open objects, the way the
//! Kubernetes API itself embeds pod templates in CRDs.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The API group.
pub const GROUP: &str = "cutover.dev";
/// The field manager of every server-side apply the operator makes.
pub const FIELD_MANAGER: &str = "cutover-operator";
/// The pod-template annotation that carries the provider hash.
pub const HASH_ANNOTATION: &str = "cutover.dev/provider-hash";
/// Bump this annotation on a `StorageBackend` to retry after a rollback.
pub const RETRY_ANNOTATION: &str = "cutover.dev/retry";
/// The label on everything the operator creates, naming its `StorageBackend`.
pub const OWNER_LABEL: &str = "cutover.dev/storage-backend";

/// Where the applications' S3 provider is, and what the operator keeps in
/// step with it.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "cutover.dev",
    version = "v1alpha1",
    kind = "StorageBackend",
    namespaced,
    shortname = "sb",
    status = "StorageBackendStatus",
    doc = "An S3 provider that the selected applications use: the operator writes their Secret and ConfigMaps and rolls their Deployments in validated batches.",
    printcolumn = r#"{"name": "Provider", "type": "string", "jsonPath": ".spec.provider"}"#,
    printcolumn = r#"{"name": "Ready", "type": "string", "jsonPath": ".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct StorageBackendSpec {
    /// The provider's name (a cutover backend name such as `aws-primary`).
    #[schemars(length(min = 1))]
    pub provider: String,
    /// The S3 endpoint URL.
    #[schemars(length(min = 1))]
    pub endpoint: String,
    /// The region the applications sign with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// The bucket.
    #[schemars(length(min = 1))]
    pub bucket: String,
    /// A Secret in the same namespace with `access_key_id` and `secret_access_key`.
    #[schemars(length(min = 1))]
    pub credentials_secret: String,
    /// Whether clients address the bucket path-style.
    #[serde(default)]
    pub path_style: bool,
    /// The Secret written for the applications.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<AppSecret>,
    /// ConfigMaps written for the applications.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub config_maps: Vec<AppConfigMap>,
    /// An optional StorageClass (its parameters cannot change in place: the
    /// operator deletes and recreates it when they differ).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_class: Option<StorageClassSpec>,
    /// The Deployments to roll.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout: Option<RolloutSpec>,
    /// The validation Job, run after the first batch and after the last.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validation: Option<ValidationSpec>,
}

/// The Secret written for the applications and the key names it uses.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AppSecret {
    /// The Secret's name.
    #[schemars(length(min = 1))]
    pub name: String,
    /// Key names (default `AWS_*` and `S3_BUCKET`).
    #[serde(default)]
    pub keys: SecretKeys,
}

/// The key names in the application Secret.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", default)]
pub struct SecretKeys {
    pub endpoint: String,
    pub region: String,
    pub bucket: String,
    pub access_key_id: String,
    pub secret_access_key: String,
}

impl Default for SecretKeys {
    fn default() -> Self {
        Self {
            endpoint: "AWS_ENDPOINT_URL_S3".into(),
            region: "AWS_REGION".into(),
            bucket: "S3_BUCKET".into(),
            access_key_id: "AWS_ACCESS_KEY_ID".into(),
            secret_access_key: "AWS_SECRET_ACCESS_KEY".into(),
        }
    }
}

/// A ConfigMap written for the applications: each key maps to a spec field.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AppConfigMap {
    #[schemars(length(min = 1))]
    pub name: String,
    /// ConfigMap key → the spec field whose value it gets.
    pub keys: BTreeMap<String, Field>,
}

/// A non-secret spec field that a ConfigMap key or StorageClass parameter can take.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum Field {
    Provider,
    Endpoint,
    Region,
    Bucket,
    PathStyle,
}

/// A StorageClass whose parameters follow the provider.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StorageClassSpec {
    #[schemars(length(min = 1))]
    pub name: String,
    /// The CSI provisioner, for example `ru.yandex.s3.csi`.
    #[schemars(length(min = 1))]
    pub provisioner: String,
    /// Fixed parameters.
    #[serde(default)]
    pub parameters: BTreeMap<String, String>,
    /// Parameters taken from spec fields.
    #[serde(default)]
    pub fields: BTreeMap<String, Field>,
}

/// Which Deployments to roll and how fast.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RolloutSpec {
    /// Deployments in the namespace with these labels.
    #[schemars(schema_with = "label_selector_schema")]
    pub selector: LabelSelector,
    /// The share of the Deployments per batch (batches of
    /// `max(1, ceil(batchPercent% × count))`).
    #[serde(default = "default_batch_percent")]
    #[schemars(range(min = 1, max = 100))]
    pub batch_percent: u32,
    /// How long one batch may take to become ready (`10m`, `90s`).
    #[serde(default = "default_batch_timeout")]
    pub batch_timeout: String,
}

/// The validation Job.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ValidationSpec {
    /// The Job's pod template (`restartPolicy` is set to `Never`).
    #[schemars(schema_with = "open_object_schema")]
    pub template: PodTemplateSpec,
    /// The Job's `activeDeadlineSeconds` (default 600).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub active_deadline_seconds: Option<i64>,
    /// The Job's `ttlSecondsAfterFinished` (default 3600).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub ttl_seconds_after_finished: Option<i32>,
}

fn default_batch_percent() -> u32 {
    25
}

fn default_batch_timeout() -> String {
    "10m".into()
}

fn label_selector_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "object",
        "description": "A metav1.LabelSelector.",
        "properties": {
            "matchLabels": { "type": "object", "additionalProperties": { "type": "string" } },
            "matchExpressions": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["key", "operator"],
                    "properties": {
                        "key": { "type": "string" },
                        "operator": { "type": "string", "enum": ["In", "NotIn", "Exists", "DoesNotExist"] },
                        "values": { "type": "array", "items": { "type": "string" } }
                    }
                }
            }
        }
    })
}

fn open_object_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "object",
        "description": "A core/v1 PodTemplateSpec.",
        "x-kubernetes-preserve-unknown-fields": true
    })
}

/// What the operator observed and did.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StorageBackendStatus {
    /// The generation this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// The provider the applications use (set when a rollout completes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_provider: Option<String>,
    /// The provider before it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_provider: Option<String>,
    /// `Ready`, `Progressing`, `Degraded` (metav1.Condition).
    #[serde(default)]
    pub conditions: Vec<Condition>,
    /// The rollout in progress or the last one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout: Option<RolloutStatus>,
    /// The last validation Job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_validation: Option<ValidationStatus>,
}

/// A condition, by the Kubernetes API conventions (metav1.Condition).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    #[serde(rename = "type")]
    pub type_: String,
    /// `True`, `False` or `Unknown`.
    pub status: String,
    /// CamelCase.
    pub reason: String,
    pub message: String,
    pub observed_generation: i64,
    /// RFC 3339; changes only when `status` changes.
    pub last_transition_time: String,
}

/// Where a rollout is.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RolloutStatus {
    /// The provider being rolled out.
    pub provider: String,
    /// The hash of its data (the pod-template annotation).
    pub hash: String,
    pub phase: Phase,
    /// The batch in flight or last finished (1-based; 0 before the first).
    pub batch: u32,
    pub batches: u32,
    /// Deployments selected.
    pub total: u32,
    /// Deployments whose pod template carries `hash`.
    pub updated: u32,
    /// When the batch in flight was started (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch_started_at: Option<String>,
    /// The validation Job in flight.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validation_job: Option<String>,
    /// The value of the `cutover.dev/retry` annotation this rollout started with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<String>,
    /// The generation this rollout started for.
    pub generation: i64,
    /// Why it failed, when it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<String>,
    /// While rolling back: the Deployments re-rolled to their old template.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub restoring: Vec<String>,
}

/// The phase of a rollout.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum Phase {
    /// Rolling batch `batch`.
    RollingBatch,
    /// Waiting for the validation Job after batch `batch`.
    Validating,
    /// Every Deployment is updated and validated.
    Complete,
    /// Failed; the snapshot's data is restored and the Deployments in
    /// `restoring` are rolling back to their old template.
    RollingBack,
    /// Failed and restored from the snapshot; waits for a new generation or retry.
    RolledBack,
    /// Failed with nothing to restore; waits for a new generation or retry.
    Failed,
}

/// The last validation Job's outcome.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ValidationStatus {
    pub job: String,
    /// `Canary` or `Final`.
    pub stage: String,
    /// `Succeeded` or `Failed`.
    pub result: String,
    pub finished_at: String,
}

/// The CRD as YAML (what `cutover operator crd` prints and `deploy/crd.yaml` holds).
pub fn crd_yaml() -> Result<String, crate::Error> {
    use kube::CustomResourceExt;
    let crd = StorageBackend::crd();
    let mut out = serde_saphyr::to_string(&crd).map_err(|e| crate::Error::Yaml(e.to_string()))?;
    if !out.ends_with('\n') {
        out.push('\n');
    }
    Ok(out)
}
