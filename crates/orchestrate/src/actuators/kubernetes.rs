//! `kubernetes.patch`: point a `StorageBackend` (cutover's Kubernetes
//! operator, `cutover.dev/v1alpha1`) at a backend and wait until the
//! operator has rolled the applications over.
//!
//! Parameters:
//! - `namespace`, `name` (required): the `StorageBackend`.
//! - `provider` (required): a backend name (usually `{{ target }}`; the undo
//!   is the same step with `{{ source }}`). Its `endpoint`, `region`,
//!   `bucket` and `path_style` and its `[backends.kubernetes]
//!   credentials_secret` come from cutover's configuration.
//! - `force`: take the fields from another field manager (default false: a
//!   conflict fails the step, naming the owner, for example Argo CD; then
//!   change the value in Git with `git.set` instead).
//!
//! Result: `{"generation": 4, "provider": "...", "previous_provider": "...",
//! "conditions": [...]}`.
//!
//! The step is carried out by the binary (see
//! [`crate::engine::Host::kubernetes_patch`]) so that this crate needs no
//! Kubernetes client; this module holds its parameters.
//!
//! # Guarantees
//! - Succeeds only when the operator reports `Ready` at the patched
//!   generation; `Degraded` (a rollback) fails the step without retries.
//! - Idempotent: applying the same provider again changes no generation
//!   and returns at once when it is Ready.

use super::{Kind, ParamSpec};

/// The parameters.
pub const PARAMS: &[ParamSpec] = &[
    ParamSpec::required("namespace", Kind::String, "the StorageBackend's namespace"),
    ParamSpec::required("name", Kind::String, "the StorageBackend's name"),
    ParamSpec::required("provider", Kind::String, "the backend to point it at, e.g. {{ target }}"),
    ParamSpec::optional("force", Kind::Bool, "take fields owned by another field manager (default false)"),
];
