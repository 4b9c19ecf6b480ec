//! Console actions in the audit log: each one an entry with
//! `"channel": "console"` in its detail, written with this controller's
//! fence (the leader's in HA).
//!
//! # Guarantees
//! - An action that cannot be audited is refused ([`Unaudited`]): a
//!   sign-in is not granted without its `console.login` entry.
//!
//! # Caveats
//! - Under `[ha]` a standby cannot append to the shared chain in etcd
//!   (only the leader writes there), so its console's entries (sign-in,
//!   sign-out) go to the node's own audit log in its state file, with
//!   `"standby": <node>` in their detail, like the API's `api.denied`
//!   entries. A standby sends no verdict, so no verdict is audited there.

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
    let token = shared.controller.status().token;
    let actor = actor.to_string();
    let written = match (&shared.console.standby_audit, &shared.ha, token) {
        // An HA standby: the node's own audit log.
        (Some(local), Some(ha), None) => {
            detail["standby"] = Value::from(ha.node.clone());
            let local = local.clone();
            tokio::task::spawn_blocking(move || {
                local.audit(&Fence::local(), SystemTime::now(), &actor, action, &detail)
            })
            .await
        }
        _ => {
            let fence = token.map(Fence::leader).unwrap_or_else(Fence::local);
            let store = shared.store.clone();
            tokio::task::spawn_blocking(move || store.audit(&fence, SystemTime::now(), &actor, action, &detail)).await
        }
    };
    match written {
        Ok(Ok(seq)) => Ok(seq),
        Ok(Err(e)) => Err(Unaudited { action, source: Box::new(e) }),
        Err(e) => Err(Unaudited { action, source: Box::new(e) }),
    }
}
