//! The [`Cluster`] interface on a real API server, through kube.
//!
//! Writes are server-side applies with field manager `cutover-operator` and
//! `force=true` (the operator owns these fields); a 409 from an apply means a
//! conflict that `force` could not resolve and is retried on the next pass.

use k8s_openapi::ByteString;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, Event, EventSource, ObjectReference, Secret};
use k8s_openapi::api::storage::v1::StorageClass;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, MicroTime, ObjectMeta, Time};
use k8s_openapi::jiff::Timestamp;
use kube::Client;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;

use crate::cluster::{Cluster, Data, Owner};
use crate::crd::{FIELD_MANAGER, HASH_ANNOTATION, OWNER_LABEL, StorageBackend, StorageBackendStatus};
use crate::error::Error;
use crate::job::owner_reference;
use crate::selector;
use crate::view::{DeploymentView, JobState, JobView};

/// The API server, through a kube [`Client`].
#[derive(Clone)]
pub struct KubeCluster {
    client: Client,
}

impl std::fmt::Debug for KubeCluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeCluster").finish_non_exhaustive()
    }
}

impl KubeCluster {
    pub fn new(client: Client) -> Self {
        Self { client }
    }

    fn ns<K>(&self, ns: &str) -> Api<K>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>,
        <K as kube::Resource>::DynamicType: Default,
    {
        Api::namespaced(self.client.clone(), ns)
    }
}

/// Server-side apply, forced, as `cutover-operator`.
pub fn apply_params() -> PatchParams {
    PatchParams::apply(FIELD_MANAGER).force()
}

/// Maps a kube error to ours, with the verb and the object.
pub fn map_err(verb: &'static str, what: impl Into<String>, e: kube::Error) -> Error {
    let what = what.into();
    match e {
        kube::Error::Api(s) if s.code == 409 => Error::Conflict { what, message: s.message },
        kube::Error::Api(s) => Error::Api { verb, what, code: s.code, reason: s.reason, message: s.message },
        other => Error::Transport { verb, what, source: Box::new(other) },
    }
}

fn is_code(e: &kube::Error, code: u16) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == code)
}

fn to_strings(data: Option<std::collections::BTreeMap<String, ByteString>>) -> Data {
    data.unwrap_or_default().into_iter().map(|(k, v)| (k, String::from_utf8_lossy(&v.0).into_owned())).collect()
}

fn deployment_view(d: Deployment) -> DeploymentView {
    let spec = d.spec.unwrap_or_default();
    let status = d.status.unwrap_or_default();
    let hash = spec.template.metadata.and_then(|m| m.annotations).and_then(|a| a.get(HASH_ANNOTATION).cloned());
    let progress_deadline_exceeded = status
        .conditions
        .iter()
        .flatten()
        .any(|c| c.type_ == "Progressing" && c.reason.as_deref() == Some("ProgressDeadlineExceeded"));
    DeploymentView {
        name: d.metadata.name.unwrap_or_default(),
        hash,
        generation: d.metadata.generation.unwrap_or(0),
        observed_generation: status.observed_generation.unwrap_or(0),
        replicas: spec.replicas.unwrap_or(1),
        status_replicas: status.replicas.unwrap_or(0),
        updated_replicas: status.updated_replicas.unwrap_or(0),
        ready_replicas: status.ready_replicas.unwrap_or(0),
        available_replicas: status.available_replicas.unwrap_or(0),
        progress_deadline_exceeded,
    }
}

fn job_state(job: &Job) -> JobState {
    let status = job.status.clone().unwrap_or_default();
    let condition = |t: &str| status.conditions.iter().flatten().any(|c| c.type_ == t && c.status == "True");
    if condition("Failed") || status.failed.unwrap_or(0) > 0 {
        JobState::Failed
    } else if condition("Complete") || status.succeeded.unwrap_or(0) > 0 {
        JobState::Succeeded
    } else {
        JobState::Running
    }
}

impl Cluster for KubeCluster {
    async fn get_secret(&self, ns: &str, name: &str) -> Result<Option<Data>, Error> {
        let s: Option<Secret> =
            self.ns(ns).get_opt(name).await.map_err(|e| map_err("get", format!("Secret {ns}/{name}"), e))?;
        Ok(s.map(|s| to_strings(s.data)))
    }

    async fn apply_secret(&self, ns: &str, name: &str, data: &Data, owner: Option<&Owner>) -> Result<(), Error> {
        let secret = Secret {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some(ns.into()),
                labels: owner.map(|o| [(OWNER_LABEL.to_string(), o.name.clone())].into()),
                owner_references: owner.map(|o| vec![owner_reference(o)]),
                ..ObjectMeta::default()
            },
            type_: Some("Opaque".into()),
            data: Some(data.iter().map(|(k, v)| (k.clone(), ByteString(v.clone().into_bytes()))).collect()),
            ..Secret::default()
        };
        self.ns::<Secret>(ns)
            .patch(name, &apply_params(), &Patch::Apply(&secret))
            .await
            .map_err(|e| map_err("apply", format!("Secret {ns}/{name}"), e))?;
        Ok(())
    }

    async fn delete_secret(&self, ns: &str, name: &str) -> Result<(), Error> {
        match self.ns::<Secret>(ns).delete(name, &DeleteParams::default()).await {
            Err(e) if !is_code(&e, 404) => Err(map_err("delete", format!("Secret {ns}/{name}"), e)),
            _ => Ok(()),
        }
    }

    async fn get_config_map(&self, ns: &str, name: &str) -> Result<Option<Data>, Error> {
        let cm: Option<ConfigMap> =
            self.ns(ns).get_opt(name).await.map_err(|e| map_err("get", format!("ConfigMap {ns}/{name}"), e))?;
        Ok(cm.map(|c| c.data.unwrap_or_default()))
    }

    async fn apply_config_map(&self, ns: &str, name: &str, data: &Data) -> Result<(), Error> {
        let cm = ConfigMap {
            metadata: ObjectMeta { name: Some(name.into()), namespace: Some(ns.into()), ..ObjectMeta::default() },
            data: Some(data.clone()),
            ..ConfigMap::default()
        };
        self.ns::<ConfigMap>(ns)
            .patch(name, &apply_params(), &Patch::Apply(&cm))
            .await
            .map_err(|e| map_err("apply", format!("ConfigMap {ns}/{name}"), e))?;
        Ok(())
    }

    async fn delete_config_map(&self, ns: &str, name: &str) -> Result<(), Error> {
        match self.ns::<ConfigMap>(ns).delete(name, &DeleteParams::default()).await {
            Err(e) if !is_code(&e, 404) => Err(map_err("delete", format!("ConfigMap {ns}/{name}"), e)),
            _ => Ok(()),
        }
    }

    async fn get_storage_class(&self, name: &str) -> Result<Option<(String, Data)>, Error> {
        let api: Api<StorageClass> = Api::all(self.client.clone());
        let sc = api.get_opt(name).await.map_err(|e| map_err("get", format!("StorageClass {name}"), e))?;
        Ok(sc.map(|sc| (sc.provisioner, sc.parameters.unwrap_or_default())))
    }

    async fn apply_storage_class(&self, name: &str, provisioner: &str, parameters: &Data) -> Result<bool, Error> {
        let api: Api<StorageClass> = Api::all(self.client.clone());
        let sc = StorageClass {
            metadata: ObjectMeta { name: Some(name.into()), ..ObjectMeta::default() },
            provisioner: provisioner.into(),
            parameters: Some(parameters.clone()),
            ..StorageClass::default()
        };
        let what = format!("StorageClass {name}");
        match api.patch(name, &apply_params(), &Patch::Apply(&sc)).await {
            Ok(_) => Ok(false),
            // Parameters (and the provisioner) are immutable: delete and recreate.
            Err(e) if is_code(&e, 422) => {
                match api.delete(name, &DeleteParams::default()).await {
                    Err(e) if !is_code(&e, 404) => return Err(map_err("delete", what, e)),
                    _ => {}
                }
                api.patch(name, &apply_params(), &Patch::Apply(&sc)).await.map_err(|e| map_err("apply", what, e))?;
                Ok(true)
            }
            Err(e) => Err(map_err("apply", what, e)),
        }
    }

    async fn delete_storage_class(&self, name: &str) -> Result<(), Error> {
        let api: Api<StorageClass> = Api::all(self.client.clone());
        match api.delete(name, &DeleteParams::default()).await {
            Err(e) if !is_code(&e, 404) => Err(map_err("delete", format!("StorageClass {name}"), e)),
            _ => Ok(()),
        }
    }

    async fn list_deployments(&self, ns: &str, selector: &LabelSelector) -> Result<Vec<DeploymentView>, Error> {
        let lp = ListParams::default().labels(&selector::to_query(selector));
        let list = self
            .ns::<Deployment>(ns)
            .list(&lp)
            .await
            .map_err(|e| map_err("list", format!("Deployments in {ns}"), e))?;
        Ok(list.items.into_iter().map(deployment_view).collect())
    }

    async fn set_template_annotation(&self, ns: &str, name: &str, value: Option<&str>) -> Result<(), Error> {
        // Applying without the annotation drops the field this manager owns.
        let patch = match value {
            Some(v) => json!({
                "apiVersion": "apps/v1", "kind": "Deployment", "metadata": { "name": name },
                "spec": { "template": { "metadata": { "annotations": { HASH_ANNOTATION: v } } } }
            }),
            None => json!({ "apiVersion": "apps/v1", "kind": "Deployment", "metadata": { "name": name } }),
        };
        self.ns::<Deployment>(ns)
            .patch(name, &apply_params(), &Patch::Apply(&patch))
            .await
            .map_err(|e| map_err("apply", format!("Deployment {ns}/{name}"), e))?;
        Ok(())
    }

    async fn list_jobs(&self, owner: &Owner) -> Result<Vec<JobView>, Error> {
        let lp = ListParams::default().labels(&format!("{OWNER_LABEL}={}", owner.name));
        let ns = &owner.namespace;
        let list = self.ns::<Job>(ns).list(&lp).await.map_err(|e| map_err("list", format!("Jobs in {ns}"), e))?;
        Ok(list
            .items
            .iter()
            .map(|j| JobView { name: j.metadata.name.clone().unwrap_or_default(), state: job_state(j) })
            .collect())
    }

    async fn create_job(&self, ns: &str, job: &Job) -> Result<(), Error> {
        let name = job.metadata.name.clone().unwrap_or_default();
        let pp = PostParams { field_manager: Some(FIELD_MANAGER.into()), ..PostParams::default() };
        match self.ns::<Job>(ns).create(&pp, job).await {
            Err(e) if !is_code(&e, 409) => Err(map_err("create", format!("Job {ns}/{name}"), e)),
            _ => Ok(()),
        }
    }

    async fn patch_status(&self, owner: &Owner, status: &StorageBackendStatus) -> Result<(), Error> {
        let patch = json!({ "apiVersion": "cutover.dev/v1alpha1", "kind": "StorageBackend", "status": status });
        self.ns::<StorageBackend>(&owner.namespace)
            .patch_status(&owner.name, &apply_params(), &Patch::Apply(&patch))
            .await
            .map_err(|e| map_err("apply status of", format!("StorageBackend {}/{}", owner.namespace, owner.name), e))?;
        Ok(())
    }

    async fn event(&self, owner: &Owner, warning: bool, reason: &str, message: &str) -> Result<(), Error> {
        let now = Timestamp::now();
        let event = Event {
            metadata: ObjectMeta {
                generate_name: Some(format!("{}.", owner.name)),
                namespace: Some(owner.namespace.clone()),
                ..ObjectMeta::default()
            },
            involved_object: ObjectReference {
                api_version: Some("cutover.dev/v1alpha1".into()),
                kind: Some("StorageBackend".into()),
                name: Some(owner.name.clone()),
                namespace: Some(owner.namespace.clone()),
                uid: Some(owner.uid.clone()),
                ..ObjectReference::default()
            },
            reason: Some(reason.into()),
            message: Some(message.into()),
            type_: Some(if warning { "Warning" } else { "Normal" }.into()),
            first_timestamp: Some(Time(now)),
            last_timestamp: Some(Time(now)),
            event_time: Some(MicroTime(now)),
            count: Some(1),
            action: Some("Reconcile".into()),
            reporting_component: Some(FIELD_MANAGER.into()),
            reporting_instance: Some(FIELD_MANAGER.into()),
            source: Some(EventSource { component: Some(FIELD_MANAGER.into()), host: None }),
            ..Event::default()
        };
        self.ns::<Event>(&owner.namespace)
            .create(&PostParams::default(), &event)
            .await
            .map_err(|e| map_err("create", format!("Event for {}", owner.name), e))?;
        Ok(())
    }
}
