//! Faults through the chaos proxy's control API.

use std::time::Duration;

use bytes::Bytes;
use serde_json::Value;

use crate::Failure;

/// Sets (or, with `None`, clears) the faults of a chaos proxy.
pub async fn set_faults(proxy: &cutover_core::Endpoint, faults: Option<Value>) -> Result<(), Failure> {
    let (method, body) = match faults {
        Some(f) => ("PUT", f.to_string()),
        None => ("DELETE", String::new()),
    };
    let connector = cutover_s3::http::Connector::new(proxy.clone(), Duration::from_secs(2), false);
    let mut sender = connector
        .checkout(&proxy.host)
        .await
        .map_err(|e| Failure::Error(anyhow::anyhow!("chaos proxy {}: {}", proxy.authority(), e.detail)))?;
    let req = http::Request::builder()
        .method(method)
        .uri("/faults")
        .header("host", proxy.authority())
        .header("content-type", "application/json")
        .header("content-length", body.len())
        .body(cutover_s3::http::full(Bytes::from(body)))
        .map_err(|e| Failure::Error(e.into()))?;
    let resp = sender.send_request(req).await.map_err(|e| Failure::Error(e.into()))?;
    if !resp.status().is_success() {
        return Err(Failure::Error(anyhow::anyhow!(
            "chaos proxy {}: {method} /faults: {}",
            proxy.authority(),
            resp.status()
        )));
    }
    Ok(())
}
