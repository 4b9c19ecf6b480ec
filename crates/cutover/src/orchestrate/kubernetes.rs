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

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn config(extra: &str) -> Config {
        let text = format!("{}{extra}", cutover_core::fixtures::TWO_BACKENDS);
        let env = |_: &str| Some("set".to_string());
        cutover_core::config::load_str(&text, "cutover.toml", Path::new("/etc/cutover"), &env).unwrap()
    }

    #[test]
    fn the_target_comes_from_the_backend_and_its_kubernetes_table() {
        let config = config("[backends.kubernetes]\ncredentials_secret = \"secondary-creds\"\n");
        let t = target(&config, "secondary").unwrap();
        assert_eq!(t.endpoint, "http://127.0.0.1:3901");
        assert_eq!((t.region.as_deref(), t.bucket.as_str()), (Some("garage"), "app-data"));
        assert_eq!(t.credentials_secret, "secondary-creds");
        assert!(t.path_style);
        let e = target(&config, "primary").unwrap_err();
        assert!(e.to_string().contains("has no [backends.kubernetes] credentials_secret"), "{e}");
        let e = target(&config, "nope").unwrap_err();
        assert!(e.to_string().contains("no backend named \"nope\""), "{e}");
    }
}
