//! `kubernetes.patch` for this process: the backend's data from the
//! configuration, applied to a `StorageBackend` through the operator crate.

use std::time::Duration;

use cutover_core::Config;
use cutover_operator::patch::{Target, patch};
use cutover_orchestrate::actuators::param::{opt_bool, req_str};
use cutover_orchestrate::actuators::{Params, StepError};
use serde_json::{Value, json};

/// Applies `provider` to the `StorageBackend` and waits for the operator (up
/// to `timeout`, less a second for the answer).
pub async fn run(config: &Config, params: &Params, timeout: Duration) -> Result<Value, StepError> {
    let namespace = req_str(params, "namespace")?;
    let name = req_str(params, "name")?;
    let provider = req_str(params, "provider")?;
    let force = opt_bool(params, "force")?.unwrap_or(false);
    let target = target(config, provider)?;
    let client = cutover_operator::run::connect().await.map_err(|e| StepError::Failed(e.to_string()))?;
    let wait = timeout.saturating_sub(Duration::from_secs(1));
    match patch(client, namespace, name, &target, force, wait).await {
        Ok(p) => Ok(json!({
            "namespace": namespace,
            "name": name,
            "provider": provider,
            "generation": p.generation,
            "previous_provider": p.previous_provider,
            "conditions": p.conditions,
        })),
        Err(e) if e.retryable() => Err(StepError::Failed(e.to_string())),
        Err(e) => Err(StepError::Refused(e.to_string())),
    }
}

/// The backend's data for the `StorageBackend`.
pub fn target(config: &Config, provider: &str) -> Result<Target, StepError> {
    let b = config.backend(provider).ok_or_else(|| StepError::Param {
        field: "provider".into(),
        problem: format!("no backend named {provider:?}"),
    })?;
    let k = b.kubernetes.as_ref().ok_or_else(|| StepError::Param {
        field: "provider".into(),
        problem: format!("backend {provider:?} has no [backends.kubernetes] credentials_secret"),
    })?;
    Ok(Target {
        provider: provider.to_string(),
        endpoint: b.endpoint.to_string(),
        region: Some(b.region.clone()),
        bucket: b.bucket.clone(),
        credentials_secret: k.credentials_secret.clone(),
        path_style: b.path_style,
    })
}
