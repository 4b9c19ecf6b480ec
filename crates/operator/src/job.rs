//! The validation Job built from the spec's pod template.

use std::collections::BTreeMap;

use k8s_openapi::api::batch::v1::{Job, JobSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

use crate::cluster::Owner;
use crate::crd::{OWNER_LABEL, ValidationSpec};
use crate::planner::Stage;

/// The label naming the validation stage.
pub const STAGE_LABEL: &str = "cutover.dev/validation-stage";

/// A new Job each time: `backoffLimit: 0`, a deadline, a TTL, `restartPolicy: Never`.
pub fn validation_job(owner: &Owner, spec: &ValidationSpec, name: &str, stage: Stage) -> Job {
    let mut template = spec.template.clone();
    if let Some(pod) = template.spec.as_mut() {
        pod.restart_policy = Some("Never".into());
    }
    let labels = BTreeMap::from([
        (OWNER_LABEL.to_string(), owner.name.clone()),
        (STAGE_LABEL.to_string(), stage.as_str().to_string()),
    ]);
    Job {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            namespace: Some(owner.namespace.clone()),
            labels: Some(labels),
            owner_references: Some(vec![owner_reference(owner)]),
            ..ObjectMeta::default()
        },
        spec: Some(JobSpec {
            backoff_limit: Some(0),
            active_deadline_seconds: Some(spec.active_deadline_seconds.unwrap_or(600)),
            ttl_seconds_after_finished: Some(spec.ttl_seconds_after_finished.unwrap_or(3600)),
            template,
            ..JobSpec::default()
        }),
        status: None,
    }
}

/// An owner reference to the `StorageBackend`.
pub fn owner_reference(owner: &Owner) -> OwnerReference {
    OwnerReference {
        api_version: "cutover.dev/v1alpha1".into(),
        kind: "StorageBackend".into(),
        name: owner.name.clone(),
        uid: owner.uid.clone(),
        controller: Some(true),
        block_owner_deletion: Some(false),
    }
}
