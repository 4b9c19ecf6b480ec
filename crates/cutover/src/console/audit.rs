//! Console actions in the audit log: each one an entry with
//! `"channel": "console"` in its detail, written with this controller's
//! fence (the leader's in HA).
//!
//! # Guarantees
//! - An action that cannot be audited is refused ([`Unaudited`]): a
//!   sign-in is not granted without its `console.login` entry.

use std::sync::Arc;
use std::time::SystemTime;

use cutover_store::Fence;
use cutover_store::prelude::*;
use serde_json::Value;

use crate::wiring::Shared;

/// The audit log could not take the entry.
#[derive(Debug, thiserror::Error)]
#[error("the console could not write its audit entry {action:?}")]
pub struct Unaudited {
    pub action: &'static str,
    #[source]
    pub source: Box<dyn std::error::Error + Send + Sync>,
}

/// Appends `action` by `actor` to the audit log, with `channel: console`
/// added to `detail`.
pub async fn record(
    shared: &Arc<Shared>,
    actor: &str,
    action: &'static str,
    mut detail: Value,
) -> Result<i64, Unaudited> {
    detail["channel"] = Value::from("console");
    let fence = shared.controller.status().token.map(Fence::leader).unwrap_or_else(Fence::local);
    let (store, actor) = (shared.store.clone(), actor.to_string());
    let written =
        tokio::task::spawn_blocking(move || store.audit(&fence, SystemTime::now(), &actor, action, &detail)).await;
    match written {
        Ok(Ok(seq)) => Ok(seq),
        Ok(Err(e)) => Err(Unaudited { action, source: Box::new(e) }),
        Err(e) => Err(Unaudited { action, source: Box::new(e) }),
    }
}
