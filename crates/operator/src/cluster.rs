//! The client interface the reconciler acts through, with a kube
//! implementation ([`crate::kube_cluster`]) and an in-memory one
//! ([`crate::memory`]).

use std::collections::BTreeMap;
use std::future::Future;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

use crate::crd::StorageBackendStatus;
use crate::error::Error;
use crate::view::{DeploymentView, JobView};

/// The `StorageBackend` that objects belong to (for owner references, labels
/// and Events).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    pub namespace: String,
    pub name: String,
    pub uid: String,
}

/// String data of a Secret or ConfigMap.
pub type Data = BTreeMap<String, String>;

/// What the reconciler needs from a cluster. Every write is idempotent.
pub trait Cluster: Send + Sync {
    /// A Secret's data, `None` when it does not exist.
    fn get_secret(&self, ns: &str, name: &str) -> impl Future<Output = Result<Option<Data>, Error>> + Send;
    /// Server-side applies a Secret (`owner`: set an owner reference).
    fn apply_secret(
        &self,
        ns: &str,
        name: &str,
        data: &Data,
        owner: Option<&Owner>,
    ) -> impl Future<Output = Result<(), Error>> + Send;
    /// Deletes a Secret (absent is fine).
    fn delete_secret(&self, ns: &str, name: &str) -> impl Future<Output = Result<(), Error>> + Send;
    fn get_config_map(&self, ns: &str, name: &str) -> impl Future<Output = Result<Option<Data>, Error>> + Send;
    fn apply_config_map(&self, ns: &str, name: &str, data: &Data) -> impl Future<Output = Result<(), Error>> + Send;
    fn delete_config_map(&self, ns: &str, name: &str) -> impl Future<Output = Result<(), Error>> + Send;
    /// A StorageClass's provisioner and parameters.
    fn get_storage_class(&self, name: &str) -> impl Future<Output = Result<Option<(String, Data)>, Error>> + Send;
    /// Applies a StorageClass; when the API server refuses to change its
    /// parameters (422), deletes and recreates it. Returns whether it was recreated.
    fn apply_storage_class(
        &self,
        name: &str,
        provisioner: &str,
        parameters: &Data,
    ) -> impl Future<Output = Result<bool, Error>> + Send;
    fn delete_storage_class(&self, name: &str) -> impl Future<Output = Result<(), Error>> + Send;
    /// The Deployments in `ns` matching `selector`, with their rollout status.
    fn list_deployments(
        &self,
        ns: &str,
        selector: &LabelSelector,
    ) -> impl Future<Output = Result<Vec<DeploymentView>, Error>> + Send;
    /// Sets (or removes, with `None`) the pod-template hash annotation.
    fn set_template_annotation(
        &self,
        ns: &str,
        name: &str,
        value: Option<&str>,
    ) -> impl Future<Output = Result<(), Error>> + Send;
    /// The validation Jobs of `owner`.
    fn list_jobs(&self, owner: &Owner) -> impl Future<Output = Result<Vec<JobView>, Error>> + Send;
    /// Creates a Job (one that already exists is fine).
    fn create_job(&self, ns: &str, job: &Job) -> impl Future<Output = Result<(), Error>> + Send;
    /// Writes the `status` subresource.
    fn patch_status(
        &self,
        owner: &Owner,
        status: &StorageBackendStatus,
    ) -> impl Future<Output = Result<(), Error>> + Send;
    /// Records an Event on the `StorageBackend`.
    fn event(
        &self,
        owner: &Owner,
        warning: bool,
        reason: &str,
        message: &str,
    ) -> impl Future<Output = Result<(), Error>> + Send;
}
