//! The `kubernetes.patch` runbook step's work: server-side-apply a provider
//! to a named `StorageBackend` and wait until the operator has rolled it out.
//!
//! # Guarantees
//! - The apply is not forced (unless asked): a field that another manager
//!   (Argo CD, Flux, kubectl) owns makes it fail with a conflict that names
//!   the owner, instead of a tug of war with GitOps.
//! - Success only when `status.observedGeneration` has reached the patched
//!   generation and `Ready` is `True`; `Degraded` at that generation is a
//!   failure that retrying will not fix.
//!
//! # Caveats
//! - The wait polls the resource every [`POLL`]; there is no watch.

use std::time::Duration;

use kube::Client;
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;

use crate::conditions::{self, DEGRADED, READY};
use crate::crd::{Condition, StorageBackend};

/// The field manager of runbook patches (distinct from the operator's own).
pub const FIELD_MANAGER: &str = "cutover";
/// How often the wait looks at the resource.
pub const POLL: Duration = Duration::from_secs(2);

/// The provider to apply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub provider: String,
    pub endpoint: String,
    pub region: Option<String>,
    pub bucket: String,
    pub credentials_secret: String,
    pub path_style: bool,
}

/// The outcome of a successful patch.
#[derive(Debug, Clone, PartialEq)]
pub struct Patched {
    /// The generation the patch produced (and the operator rolled out).
    pub generation: i64,
    pub conditions: Vec<Condition>,
    pub previous_provider: Option<String>,
    pub active_provider: Option<String>,
}

/// Why a patch failed. Messages never contain credentials (there are none
/// here: only the credentials Secret's name).
#[derive(Debug, thiserror::Error)]
pub enum PatchError {
    /// The `StorageBackend` does not exist.
    #[error("StorageBackend {namespace}/{name} not found")]
    NotFound { namespace: String, name: String },
    /// Another field manager owns a field this patch sets.
    #[error(
        "StorageBackend {namespace}/{name}: {fields} owned by {owners}; change it where that manager takes it from (for Argo CD or Flux: the Git repository, with git.set), or set force = true"
    )]
    Conflict { namespace: String, name: String, owners: String, fields: String },
    /// The operator rolled back or could not roll out.
    #[error("StorageBackend {namespace}/{name} is Degraded at generation {generation}: {reason}: {message}")]
    Degraded { namespace: String, name: String, generation: i64, reason: String, message: String },
    /// Not Ready within the step's time.
    #[error(
        "StorageBackend {namespace}/{name}: not Ready at generation {generation} within {waited:?} (observed generation {observed:?})"
    )]
    NotReady { namespace: String, name: String, generation: i64, observed: Option<i64>, waited: Duration },
    /// Any other API error.
    #[error(transparent)]
    Api(#[from] crate::Error),
}

impl PatchError {
    /// Whether another attempt may succeed.
    pub fn retryable(&self) -> bool {
        match self {
            PatchError::Api(e) => e.retryable(),
            PatchError::NotReady { .. } => true,
            PatchError::NotFound { .. } | PatchError::Conflict { .. } | PatchError::Degraded { .. } => false,
        }
    }
}

/// The apply body.
pub fn apply_body(name: &str, namespace: &str, t: &Target) -> serde_json::Value {
    let mut spec = json!({
        "provider": t.provider,
        "endpoint": t.endpoint,
        "bucket": t.bucket,
        "credentialsSecret": t.credentials_secret,
        "pathStyle": t.path_style,
    });
    if let Some(region) = &t.region {
        spec["region"] = json!(region);
    }
    json!({
        "apiVersion": "cutover.dev/v1alpha1",
        "kind": "StorageBackend",
        "metadata": { "name": name, "namespace": namespace },
        "spec": spec,
    })
}

/// The managers and fields named in an API server's apply-conflict message
/// (`conflict with "argocd-controller" using cutover.dev/v1alpha1: .spec.provider`).
pub fn conflict_owners(message: &str) -> (Vec<String>, Vec<String>) {
    let mut owners = Vec::new();
    let mut fields = Vec::new();
    for part in message.split("conflict with \"").skip(1) {
        if let Some((owner, rest)) = part.split_once('"') {
            if !owners.iter().any(|o| o == owner) {
                owners.push(owner.to_string());
            }
            if let Some((_, field)) = rest.split_once(": ") {
                let field = field.split(['\n', ',']).next().unwrap_or("").trim();
                if !field.is_empty() {
                    fields.push(field.to_string());
                }
            }
        }
    }
    (owners, fields)
}

/// Applies `target` and waits up to `wait` until the operator reports it.
pub async fn patch(
    client: Client,
    namespace: &str,
    name: &str,
    target: &Target,
    force: bool,
    wait: Duration,
) -> Result<Patched, PatchError> {
    let api: Api<StorageBackend> = Api::namespaced(client, namespace);
    let mut params = PatchParams::apply(FIELD_MANAGER);
    if force {
        params = params.force();
    }
    let what = format!("StorageBackend {namespace}/{name}");
    let sb = match api.patch(name, &params, &Patch::Apply(apply_body(name, namespace, target))).await {
        Ok(sb) => sb,
        Err(kube::Error::Api(s)) if s.code == 404 => {
            return Err(PatchError::NotFound { namespace: namespace.into(), name: name.into() });
        }
        Err(kube::Error::Api(s)) if s.code == 409 => {
            let (owners, fields) = conflict_owners(&s.message);
            let owners = if owners.is_empty() { "another field manager".to_string() } else { owners.join(", ") };
            let fields = if fields.is_empty() { "a field".to_string() } else { fields.join(", ") };
            return Err(PatchError::Conflict { namespace: namespace.into(), name: name.into(), owners, fields });
        }
        Err(e) => return Err(crate::kube_cluster::map_err("apply", what, e).into()),
    };
    let generation = sb.metadata.generation.unwrap_or(0);
    let started = tokio::time::Instant::now();
    let mut current = sb;
    loop {
        let status = current.status.clone().unwrap_or_default();
        let observed = status.observed_generation;
        if observed.is_some_and(|g| g >= generation) {
            if let Some(d) = conditions::get(&status.conditions, DEGRADED).filter(|c| c.status == "True") {
                return Err(PatchError::Degraded {
                    namespace: namespace.into(),
                    name: name.into(),
                    generation,
                    reason: d.reason.clone(),
                    message: d.message.clone(),
                });
            }
            if conditions::is_true(&status.conditions, READY) {
                return Ok(Patched {
                    generation,
                    conditions: status.conditions,
                    previous_provider: status.previous_provider,
                    active_provider: status.active_provider,
                });
            }
        }
        if started.elapsed() + POLL > wait {
            return Err(PatchError::NotReady {
                namespace: namespace.into(),
                name: name.into(),
                generation,
                observed,
                waited: started.elapsed(),
            });
        }
        tokio::time::sleep(POLL).await;
        current = api.get(name).await.map_err(|e| crate::kube_cluster::map_err("get", what.clone(), e))?;
    }
}
