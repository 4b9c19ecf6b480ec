//! An in-memory cluster behind the [`Cluster`] interface, with a scripted
//! Deployment and Job controller, for whole rollouts without an API server.
//!
//! The controller is [`MemoryCluster::tick`]: Deployments whose template
//! changed observe the new generation and become ready (or not, as scripted);
//! validation Jobs finish as scripted. Every pod-template change is recorded,
//! so tests can count restarts.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

use crate::cluster::{Cluster, Data, Owner};
use crate::crd::{OWNER_LABEL, StorageBackend, StorageBackendStatus};
use crate::error::Error;
use crate::job::STAGE_LABEL;
use crate::selector;
use crate::view::{DeploymentView, JobState, JobView};

/// How a scripted Deployment behaves after a template change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Behaviour {
    /// Every replica becomes updated, ready and available on the next tick.
    Healthy,
    /// New pods never become ready.
    NeverReady,
    /// Pods of a template the Deployment never ran before never become
    /// ready; one it ran before (what a rollback restores) does.
    NeverReadyWithNewData,
    /// The controller reports `ProgressDeadlineExceeded`.
    DeadlineExceeded,
    /// `ProgressDeadlineExceeded` for a template the Deployment never ran
    /// before; one it ran before (what a rollback restores) rolls out.
    DeadlineExceededWithNewData,
}

/// One Deployment.
#[derive(Debug, Clone)]
pub struct MemDeployment {
    pub labels: BTreeMap<String, String>,
    /// The pod-template hash annotation.
    pub hash: Option<String>,
    pub generation: i64,
    pub observed_generation: i64,
    pub replicas: i32,
    pub updated: i32,
    pub available: i32,
    pub deadline_exceeded: bool,
    pub behaviour: Behaviour,
    /// Every value the annotation was set to (each one a restart).
    pub restarts: Vec<Option<String>>,
}

/// One Job.
#[derive(Debug, Clone)]
pub struct MemJob {
    pub job: Job,
    pub state: JobState,
}

/// The cluster's objects.
#[derive(Debug, Default)]
pub struct State {
    pub secrets: BTreeMap<(String, String), Data>,
    pub config_maps: BTreeMap<(String, String), Data>,
    pub storage_classes: BTreeMap<String, (String, Data)>,
    /// How many times a StorageClass was deleted and recreated.
    pub storage_class_recreations: u32,
    pub deployments: BTreeMap<(String, String), MemDeployment>,
    pub jobs: BTreeMap<(String, String), MemJob>,
    pub storage_backends: BTreeMap<(String, String), StorageBackend>,
    /// (reason, message, warning).
    pub events: Vec<(String, String, bool)>,
    /// Validation stage (`Canary`, `Final`) → how its Jobs end (default `Succeeded`).
    pub job_outcomes: BTreeMap<String, JobState>,
    /// After this many more writes, every call fails (a crash mid-pass).
    pub fail_after_writes: Option<usize>,
    /// Every status written, in order.
    pub status_writes: Vec<StorageBackendStatus>,
}

/// The in-memory cluster.
#[derive(Debug, Default)]
pub struct MemoryCluster {
    state: Mutex<State>,
}

impl MemoryCluster {
    pub fn new() -> Self {
        Self::default()
    }

    /// The state, to set up and inspect.
    pub fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds a healthy Deployment with `replicas` replicas, rolled out.
    pub fn add_deployment(&self, ns: &str, name: &str, labels: &[(&str, &str)], replicas: i32) {
        let d = MemDeployment {
            labels: labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            hash: None,
            generation: 1,
            observed_generation: 1,
            replicas,
            updated: replicas,
            available: replicas,
            deadline_exceeded: false,
            behaviour: Behaviour::Healthy,
            restarts: Vec::new(),
        };
        self.state().deployments.insert((ns.into(), name.into()), d);
    }

    /// The `StorageBackend` as stored (with the status written so far).
    pub fn storage_backend(&self, ns: &str, name: &str) -> Option<StorageBackend> {
        self.state().storage_backends.get(&(ns.into(), name.into())).cloned()
    }

    /// The Deployment and Job controllers: one step.
    pub fn tick(&self) {
        let mut s = self.state();
        for d in s.deployments.values_mut() {
            if d.generation == d.observed_generation && d.updated == d.replicas && !d.deadline_exceeded {
                continue;
            }
            d.observed_generation = d.generation;
            let ran_before = d.hash.is_none() || d.restarts[..d.restarts.len().saturating_sub(1)].contains(&d.hash);
            let behaviour = match d.behaviour {
                Behaviour::NeverReadyWithNewData if ran_before => Behaviour::Healthy,
                Behaviour::NeverReadyWithNewData => Behaviour::NeverReady,
                Behaviour::DeadlineExceededWithNewData if ran_before => Behaviour::Healthy,
                Behaviour::DeadlineExceededWithNewData => Behaviour::DeadlineExceeded,
                b => b,
            };
            match behaviour {
                Behaviour::Healthy => {
                    d.updated = d.replicas;
                    d.available = d.replicas;
                    d.deadline_exceeded = false;
                }
                Behaviour::NeverReady | Behaviour::NeverReadyWithNewData => {
                    d.updated = d.replicas;
                    d.available = 0;
                }
                Behaviour::DeadlineExceeded | Behaviour::DeadlineExceededWithNewData => {
                    d.updated = 0;
                    d.deadline_exceeded = true;
                }
            }
        }
        let outcomes = s.job_outcomes.clone();
        for j in s.jobs.values_mut() {
            if j.state == JobState::Running {
                let stage =
                    j.job.metadata.labels.as_ref().and_then(|l| l.get(STAGE_LABEL)).cloned().unwrap_or_default();
                j.state = outcomes.get(&stage).copied().unwrap_or(JobState::Succeeded);
            }
        }
    }

    fn write(&self) -> Result<MutexGuard<'_, State>, Error> {
        let mut s = self.state();
        match s.fail_after_writes {
            Some(0) => return Err(Error::Injected("the operator was killed".into())),
            Some(n) => s.fail_after_writes = Some(n - 1),
            None => {}
        }
        Ok(s)
    }

    fn read(&self) -> Result<MutexGuard<'_, State>, Error> {
        let s = self.state();
        if s.fail_after_writes == Some(0) {
            return Err(Error::Injected("the operator was killed".into()));
        }
        Ok(s)
    }
}

fn key(ns: &str, name: &str) -> (String, String) {
    (ns.to_string(), name.to_string())
}

impl Cluster for MemoryCluster {
    async fn get_secret(&self, ns: &str, name: &str) -> Result<Option<Data>, Error> {
        Ok(self.read()?.secrets.get(&key(ns, name)).cloned())
    }

    async fn apply_secret(&self, ns: &str, name: &str, data: &Data, _owner: Option<&Owner>) -> Result<(), Error> {
        self.write()?.secrets.insert(key(ns, name), data.clone());
        Ok(())
    }

    async fn delete_secret(&self, ns: &str, name: &str) -> Result<(), Error> {
        self.write()?.secrets.remove(&key(ns, name));
        Ok(())
    }

    async fn get_config_map(&self, ns: &str, name: &str) -> Result<Option<Data>, Error> {
        Ok(self.read()?.config_maps.get(&key(ns, name)).cloned())
    }

    async fn apply_config_map(&self, ns: &str, name: &str, data: &Data) -> Result<(), Error> {
        self.write()?.config_maps.insert(key(ns, name), data.clone());
        Ok(())
    }

    async fn delete_config_map(&self, ns: &str, name: &str) -> Result<(), Error> {
        self.write()?.config_maps.remove(&key(ns, name));
        Ok(())
    }

    async fn get_storage_class(&self, name: &str) -> Result<Option<(String, Data)>, Error> {
        Ok(self.read()?.storage_classes.get(name).cloned())
    }

    async fn apply_storage_class(&self, name: &str, provisioner: &str, parameters: &Data) -> Result<bool, Error> {
        let mut s = self.write()?;
        let recreate = s.storage_classes.get(name).is_some_and(|(p, params)| p != provisioner || params != parameters);
        if recreate {
            s.storage_class_recreations += 1;
        }
        s.storage_classes.insert(name.to_string(), (provisioner.to_string(), parameters.clone()));
        Ok(recreate)
    }

    async fn delete_storage_class(&self, name: &str) -> Result<(), Error> {
        self.write()?.storage_classes.remove(name);
        Ok(())
    }

    async fn list_deployments(&self, ns: &str, selector: &LabelSelector) -> Result<Vec<DeploymentView>, Error> {
        let s = self.read()?;
        Ok(s.deployments
            .iter()
            .filter(|((n, _), d)| n == ns && selector::matches(selector, &d.labels))
            .map(|((_, name), d)| DeploymentView {
                name: name.clone(),
                hash: d.hash.clone(),
                generation: d.generation,
                observed_generation: d.observed_generation,
                replicas: d.replicas,
                status_replicas: d.replicas,
                updated_replicas: d.updated,
                ready_replicas: d.available,
                available_replicas: d.available,
                progress_deadline_exceeded: d.deadline_exceeded,
            })
            .collect())
    }

    async fn set_template_annotation(&self, ns: &str, name: &str, value: Option<&str>) -> Result<(), Error> {
        let mut s = self.write()?;
        let Some(d) = s.deployments.get_mut(&key(ns, name)) else {
            return Err(Error::Api {
                verb: "patch",
                what: format!("Deployment {ns}/{name}"),
                code: 404,
                reason: "NotFound".into(),
                message: "not found".into(),
            });
        };
        if d.hash.as_deref() != value {
            d.hash = value.map(str::to_string);
            d.generation += 1;
            d.updated = 0;
            d.restarts.push(d.hash.clone());
        }
        Ok(())
    }

    async fn list_jobs(&self, owner: &Owner) -> Result<Vec<JobView>, Error> {
        let s = self.read()?;
        Ok(s.jobs
            .iter()
            .filter(|((ns, _), j)| {
                ns == &owner.namespace
                    && j.job.metadata.labels.as_ref().and_then(|l| l.get(OWNER_LABEL)) == Some(&owner.name)
            })
            .map(|((_, name), j)| JobView { name: name.clone(), state: j.state })
            .collect())
    }

    async fn create_job(&self, ns: &str, job: &Job) -> Result<(), Error> {
        let name = job.metadata.name.clone().unwrap_or_default();
        self.write()?
            .jobs
            .entry(key(ns, &name))
            .or_insert_with(|| MemJob { job: job.clone(), state: JobState::Running });
        Ok(())
    }

    async fn patch_status(&self, owner: &Owner, status: &StorageBackendStatus) -> Result<(), Error> {
        let mut s = self.write()?;
        s.status_writes.push(status.clone());
        if let Some(sb) = s.storage_backends.get_mut(&key(&owner.namespace, &owner.name)) {
            sb.status = Some(status.clone());
        }
        Ok(())
    }

    async fn event(&self, _owner: &Owner, warning: bool, reason: &str, message: &str) -> Result<(), Error> {
        self.write()?.events.push((reason.to_string(), message.to_string(), warning));
        Ok(())
    }
}
