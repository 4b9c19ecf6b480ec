//! The reconciler: reads what the planner needs through a [`Cluster`], plans,
//! and carries out the plan. One pass; it never loops on its own.
//!
//! # Guarantees
//! - The actions run in the plan's order and the status is written last, so
//!   an operator killed anywhere in a pass replays it on the next one
//!   (every action is idempotent) and restarts nothing twice.
//! - Credentials are read from the referenced Secret and written only to the
//!   application Secret and the snapshot Secret, never to status, Events or
//!   errors.
//!
//! # Assumptions
//! - One operator acts at a time (the leader election in [`crate::run`]).
//!
//! # Caveats
//! - A failed Event write is logged and ignored.

use std::time::Duration;

use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;

use crate::cluster::{Cluster, Data, Owner};
use crate::conditions::{self, DEGRADED, PROGRESSING, READY};
use crate::crd::{RETRY_ANNOTATION, StorageBackend};
use crate::error::Error;
use crate::job::validation_job;
use crate::planner::{self, Action, Input};
use crate::render::{self, ACCESS_KEY_ID, Credentials, SECRET_ACCESS_KEY};
use crate::view::{AppData, Snapshot};

/// The key of the snapshot in its Secret.
pub const SNAPSHOT_KEY: &str = "snapshot.json";
/// How soon to look again when the credentials Secret is missing.
pub const CREDENTIALS_RETRY: Duration = Duration::from_secs(30);

/// The name of the snapshot Secret of `StorageBackend` `name`.
pub fn snapshot_name(name: &str) -> String {
    format!("{name}-cutover-snapshot")
}

/// Reconciles one `StorageBackend` at time `now`; returns when to look again
/// (`None`: only on a change).
pub async fn reconcile<C: Cluster>(
    cluster: &C,
    sb: &StorageBackend,
    now: Timestamp,
) -> Result<Option<Duration>, Error> {
    let owner = Owner {
        namespace: sb.namespace().unwrap_or_else(|| "default".into()),
        name: sb.name_any(),
        uid: sb.uid().unwrap_or_default(),
    };
    let ns = owner.namespace.as_str();
    let spec = &sb.spec;
    let generation = sb.metadata.generation.unwrap_or(0);
    let status = sb.status.clone().unwrap_or_default();

    let credentials = match read_credentials(cluster, ns, &spec.credentials_secret).await? {
        Ok(c) => c,
        Err(problem) => {
            let mut next = status.clone();
            let now = now.to_string();
            conditions::set(
                &mut next.conditions,
                READY,
                false,
                "CredentialsMissing",
                problem.clone(),
                generation,
                &now,
            );
            conditions::set(
                &mut next.conditions,
                PROGRESSING,
                false,
                "CredentialsMissing",
                String::new(),
                generation,
                &now,
            );
            conditions::set(&mut next.conditions, DEGRADED, true, "CredentialsMissing", problem, generation, &now);
            next.observed_generation = Some(generation);
            if next != status {
                cluster.patch_status(&owner, &next).await?;
            }
            return Ok(Some(CREDENTIALS_RETRY));
        }
    };
    let desired = render::render(spec, &credentials);

    let mut current = AppData::default();
    if let Some(s) = &spec.secret {
        current.secrets.insert(s.name.clone(), cluster.get_secret(ns, &s.name).await?);
    }
    for cm in &spec.config_maps {
        current.config_maps.insert(cm.name.clone(), cluster.get_config_map(ns, &cm.name).await?);
    }
    if let Some(sc) = &spec.storage_class {
        current.storage_classes.insert(sc.name.clone(), cluster.get_storage_class(&sc.name).await?);
    }
    let snapshot = read_snapshot(cluster, ns, &owner.name).await?;
    let deployments = match &spec.rollout {
        Some(r) => cluster.list_deployments(ns, &r.selector).await?,
        None => Vec::new(),
    };
    let jobs = cluster.list_jobs(&owner).await?;
    let retry = sb.annotations().get(RETRY_ANNOTATION).cloned();

    let plan = planner::plan(&Input {
        name: &owner.name,
        generation,
        retry: retry.as_deref(),
        spec,
        status: &status,
        desired: &desired,
        current: &current,
        snapshot: snapshot.as_ref(),
        deployments: &deployments,
        jobs: &jobs,
        now,
    });
    for action in &plan.actions {
        execute(cluster, &owner, sb, action).await?;
    }
    if plan.status != status {
        cluster.patch_status(&owner, &plan.status).await?;
    }
    Ok(plan.requeue)
}

async fn execute<C: Cluster>(cluster: &C, owner: &Owner, sb: &StorageBackend, action: &Action) -> Result<(), Error> {
    let ns = owner.namespace.as_str();
    match action {
        Action::SaveSnapshot(snapshot) => {
            let json = serde_json::to_string(snapshot)
                .map_err(|e| Error::Snapshot { name: snapshot_name(&owner.name), problem: e.to_string() })?;
            let data = Data::from([(SNAPSHOT_KEY.to_string(), json)]);
            cluster.apply_secret(ns, &snapshot_name(&owner.name), &data, Some(owner)).await
        }
        Action::ApplySecret { name, data } => cluster.apply_secret(ns, name, data, None).await,
        Action::DeleteSecret { name } => cluster.delete_secret(ns, name).await,
        Action::ApplyConfigMap { name, data } => cluster.apply_config_map(ns, name, data).await,
        Action::DeleteConfigMap { name } => cluster.delete_config_map(ns, name).await,
        Action::ApplyStorageClass { name, provisioner, parameters } => {
            if cluster.apply_storage_class(name, provisioner, parameters).await? {
                let message = format!("StorageClass {name}: parameters cannot change in place; deleted and recreated");
                record(cluster, owner, false, "StorageClassRecreated", &message).await;
            }
            Ok(())
        }
        Action::DeleteStorageClass { name } => cluster.delete_storage_class(name).await,
        Action::Roll { deployments, .. } => {
            for (name, value) in deployments {
                cluster.set_template_annotation(ns, name, value.as_deref()).await?;
            }
            Ok(())
        }
        Action::RunValidation { job, stage } => {
            let Some(validation) = &sb.spec.validation else { return Ok(()) };
            cluster.create_job(ns, &validation_job(owner, validation, job, *stage)).await
        }
        Action::Event { warning, reason, message } => {
            record(cluster, owner, *warning, reason, message).await;
            Ok(())
        }
    }
}

async fn record<C: Cluster>(cluster: &C, owner: &Owner, warning: bool, reason: &str, message: &str) {
    if let Err(e) = cluster.event(owner, warning, reason, message).await {
        tracing::warn!(storage_backend = %owner.name, reason, error = %e, "could not record an Event");
    }
}

/// The access key pair, or the problem with the credentials Secret (for status).
async fn read_credentials<C: Cluster>(cluster: &C, ns: &str, name: &str) -> Result<Result<Credentials, String>, Error> {
    let Some(data) = cluster.get_secret(ns, name).await? else {
        return Ok(Err(format!("spec.credentialsSecret: Secret {ns}/{name} not found")));
    };
    let key = |k: &str| data.get(k).filter(|v| !v.is_empty()).cloned();
    match (key(ACCESS_KEY_ID), key(SECRET_ACCESS_KEY)) {
        (Some(access_key_id), Some(secret_access_key)) => Ok(Ok(Credentials { access_key_id, secret_access_key })),
        (None, _) => Ok(Err(format!("spec.credentialsSecret: Secret {ns}/{name} has no key {ACCESS_KEY_ID}"))),
        (_, None) => Ok(Err(format!("spec.credentialsSecret: Secret {ns}/{name} has no key {SECRET_ACCESS_KEY}"))),
    }
}

async fn read_snapshot<C: Cluster>(cluster: &C, ns: &str, name: &str) -> Result<Option<Snapshot>, Error> {
    let secret = snapshot_name(name);
    let Some(data) = cluster.get_secret(ns, &secret).await? else { return Ok(None) };
    let Some(json) = data.get(SNAPSHOT_KEY) else { return Ok(None) };
    serde_json::from_str(json).map(Some).map_err(|e| Error::Snapshot { name: secret, problem: e.to_string() })
}
