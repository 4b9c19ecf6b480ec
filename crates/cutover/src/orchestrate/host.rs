//! The actuators that act on this process: `state.switch` (through the
//! controller task, then the gateway), `validate` (the smoke suite on a
//! backend) and `resync` (the gateway's journal, then a reconcile of what
//! the primary lost).

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use cutover_orchestrate::actuators::{Params, StepError};
use cutover_orchestrate::engine::{BoxFut, Host};
use cutover_s3::ClientOptions;
use serde_json::{Value, json};

use crate::wiring::Shared;
use crate::wiring::ha::HaNode;
use crate::{Failure, load};

/// How long `state.switch` waits in HA for every live gateway to
/// acknowledge the new active backend.
const ACK_WAIT: Duration = Duration::from_secs(3);

/// Waits until every gateway registered in etcd acknowledges `to`, at
/// most `limit`; returns who did and who lags (with the value it serves,
/// or `unreachable` when etcd could not be read).
async fn wait_for_gateways(ha: &HaNode, to: &str, limit: Duration) -> (Vec<String>, Vec<String>) {
    let start = Instant::now();
    loop {
        let (acked, lagging) = match cutover_etcd::registry::read_gateways(&ha.client, &ha.prefix).await {
            Ok(gateways) => {
                let (acked, lagging): (Vec<_>, Vec<_>) =
                    gateways.into_iter().partition(|g| g.active.as_deref() == Some(to));
                let lagging = lagging
                    .into_iter()
                    .map(|g| format!("{} ({})", g.name, g.active.as_deref().unwrap_or("no value")))
                    .collect::<Vec<_>>();
                (acked.into_iter().map(|g| g.name).collect::<Vec<_>>(), lagging)
            }
            Err(e) => (vec![], vec![format!("unreachable ({e})")]),
        };
        if lagging.is_empty() || start.elapsed() >= limit {
            return (acked, lagging);
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The actuators that act on this process: the switch, validation, resync.
pub struct RunHost {
    pub shared: Arc<Shared>,
}

impl Host for RunHost {
    fn kubernetes_patch<'a>(&'a self, params: &'a Params, timeout: Duration) -> BoxFut<'a, Result<Value, StepError>> {
        Box::pin(super::kubernetes::run(&self.shared.config, params, timeout))
    }

    fn switch<'a>(&'a self, to: &'a str) -> BoxFut<'a, Result<Value, StepError>> {
        Box::pin(async move {
            let from = self.shared.controller.set_active(to).await.map_err(|e| StepError::Failed(e.to_string()))?;
            if let Some(gw) = &self.shared.gateway {
                gw.active().set(to);
            }
            let Some(ha) = &self.shared.ha else { return Ok(json!({"from": from, "to": to})) };
            // HA: wait (bounded) for every live gateway to serve `to`.
            let started = Instant::now();
            let (acked, lagging) = wait_for_gateways(ha, to, ACK_WAIT).await;
            ha.metrics.switched(started.elapsed(), lagging.len());
            if !lagging.is_empty() {
                tracing::warn!(to, lagging = ?lagging, "gateways have not acknowledged the switch within {ACK_WAIT:?}");
            }
            Ok(json!({"from": from, "to": to, "acknowledged": acked, "lagging": lagging}))
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
