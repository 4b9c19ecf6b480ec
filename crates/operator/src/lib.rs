//! cutover's Kubernetes operator for the `StorageBackend` resource.
//!
//! - [`crd`]: the resource and its CRD.
//! - [`render`]: what the applications should see, and its hash.
//! - [`planner`]: pure: what to do next.
//! - [`reconcile`]: one pass through a [`cluster::Cluster`].
//! - [`kube_cluster`] (the API server) and [`memory`] (an in-memory cluster
//!   with a scripted Deployment and Job controller).
//! - [`run`]: the operator loop with its Lease-based leader election;
//!   [`watch`] (the watches) and [`schedule`] (what to reconcile when).

pub mod cluster;
pub mod conditions;
pub mod crd;
pub mod error;
pub mod job;
pub mod kube_cluster;
pub mod lease;
pub mod memory;
pub mod patch;
pub mod planner;
pub mod reconcile;
pub mod render;
pub mod run;
pub mod schedule;
pub mod selector;
pub mod view;
pub mod watch;

pub use error::Error;
