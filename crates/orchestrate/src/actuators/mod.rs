//! Actuators: the things a runbook step `uses`.
//!
//! Every actuator is a module with
//! - `pub const PARAMS: &[ParamSpec]`: the parameters it takes (checked by
//!   `cutover runbook check` before anything runs), and
//! - `pub async fn run(params: &Params, ctx: &Ctx) -> Result<Value, StepError>`:
//!   one attempt. The engine renders templates in `params` first, enforces the
//!   step's timeout around the call (the future is dropped on timeout, so an
//!   actuator must clean up on drop: child processes are `kill_on_drop`), and
//!   does the retries. The returned JSON is the step's result for the
//!   timeline and the audit log: it must never contain a secret.
//!
//! Actuators are idempotent: running one twice with the same parameters has
//! the effect of running it once (the engine may re-run a step that was
//! interrupted by a crash).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

pub mod command;
pub mod dns;
pub mod git;
pub mod http;
pub mod http_client;
pub mod kubernetes;
pub mod notify;
pub mod param;
pub mod terraform_cloud;
pub mod text;

/// The parameters of a step, after templating: the `with` table as JSON.
pub type Params = serde_json::Map<String, Value>;

/// Looks up an environment variable (secrets come from the environment; tests
/// inject their own lookup).
pub type EnvLookup = Arc<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// What a step runs with.
#[derive(Clone)]
pub struct Ctx {
    /// The incident's id (`{{ incident.id }}`).
    pub incident: String,
    /// The backend we move away from (`{{ source }}`).
    pub source: String,
    /// The backend we move to (`{{ target }}`).
    pub target: String,
    /// Why (`{{ reason }}`).
    pub reason: String,
    /// `failover` or `fallback`.
    pub kind: String,
    /// The step's name, for messages.
    pub step: String,
    /// The step's timeout (the engine enforces it; actuators that poll use it
    /// to bound their own waits).
    pub timeout: Duration,
    /// A directory that cutover owns, for actuator state such as git working
    /// copies. It persists across restarts.
    pub work_dir: PathBuf,
    /// Environment lookup for secrets.
    pub env: EnvLookup,
    /// The leader's fencing token in HA (`None` embedded): the `http`
    /// actuator sends it as `X-Cutover-Fencing-Token`.
    pub fencing_token: Option<i64>,
    /// Where people see the incident (and approve it): its console page
    /// (`[api] public_url` + `/ui/incidents/{id}`), else the API's
    /// `/v1/incidents/{id}` on this node's address, `None` when cutover does
    /// not know its own address. `notify` links to it.
    pub incident_url: Option<String>,
}

impl std::fmt::Debug for Ctx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ctx")
            .field("incident", &self.incident)
            .field("source", &self.source)
            .field("target", &self.target)
            .field("kind", &self.kind)
            .field("step", &self.step)
            .field("timeout", &self.timeout)
            .field("work_dir", &self.work_dir)
            .field("fencing_token", &self.fencing_token)
            .field("incident_url", &self.incident_url)
            .finish_non_exhaustive()
    }
}

/// Why one attempt of a step failed. Messages never contain secrets.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StepError {
    /// A parameter is missing or has the wrong shape (found at run time; most
    /// are caught by `runbook check`).
    #[error("with.{field}: {problem}")]
    Param { field: String, problem: String },
    /// The actuator ran and the operation failed.
    #[error("{0}")]
    Failed(String),
    /// The step did not finish within its timeout.
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    /// The actuator refuses to act (for example a dirty git working copy);
    /// retrying will not help.
    #[error("refused: {0}")]
    Refused(String),
}

impl StepError {
    /// Whether a retry may succeed.
    pub fn retryable(&self) -> bool {
        matches!(self, StepError::Failed(_) | StepError::Timeout(_))
    }
}

/// The JSON type a parameter must have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    String,
    Integer,
    Bool,
    /// A duration string such as `30s`.
    Duration,
    /// A table of strings (such as HTTP headers).
    StringMap,
    /// An array of strings (such as command arguments).
    StringList,
    /// Any JSON value (such as a body given as a table).
    Any,
}

/// One parameter an actuator takes.
#[derive(Debug, Clone, Copy)]
pub struct ParamSpec {
    pub name: &'static str,
    pub required: bool,
    pub kind: Kind,
    /// One line for `runbook check` and the docs.
    pub help: &'static str,
}

impl ParamSpec {
    pub const fn required(name: &'static str, kind: Kind, help: &'static str) -> Self {
        Self { name, required: true, kind, help }
    }
    pub const fn optional(name: &'static str, kind: Kind, help: &'static str) -> Self {
        Self { name, required: false, kind, help }
    }
}

/// The names of the external actuators (the engine provides `state.switch`,
/// `validate`, `sync.resync` and `approval`).
pub const NAMES: &[&str] =
    &["dns.update", "git.set", "terraform_cloud.run", "http", "command", "notify", "kubernetes.patch"];

/// The parameters of the actuator named `uses`, for `runbook check`; `None`
/// for a name this module does not know.
pub fn params(uses: &str) -> Option<&'static [ParamSpec]> {
    match uses {
        "command" => Some(command::PARAMS),
        "dns.update" => Some(dns::PARAMS),
        "git.set" => Some(git::PARAMS),
        "http" => Some(http::PARAMS),
        "kubernetes.patch" => Some(kubernetes::PARAMS),
        "notify" => Some(notify::PARAMS),
        "terraform_cloud.run" => Some(terraform_cloud::PARAMS),
        _ => None,
    }
}

/// Checks of a call's parameters beyond their names and types (such as
/// "exactly one of"), for `runbook check`: `(field, problem)` pairs.
pub fn check(uses: &str, with: &Params) -> Vec<(String, String)> {
    match uses {
        "http" => http::check(with),
        "dns.update" => dns::check(with),
        "notify" => notify::check(with),
        _ => Vec::new(),
    }
}

/// What a call would send, for `runbook run --dry-run`, when the actuator
/// can say more than its parameters (never a secret); `with` is rendered.
/// `None` for an actuator that has nothing to add.
pub fn describe(uses: &str, with: &Params) -> Option<Result<String, String>> {
    match uses {
        "dns.update" => Some(dns::describe(with)),
        _ => None,
    }
}

/// Runs one attempt of the external actuator named `uses` (one that acts on
/// something outside cutover: git, webhooks, Terraform Cloud, a program).
/// `None` when `uses` is not one of them.
pub async fn run_external(uses: &str, params: &Params, ctx: &Ctx) -> Option<Result<Value, StepError>> {
    Some(match uses {
        "command" => command::run(params, ctx).await,
        "dns.update" => dns::run(params, ctx).await,
        "git.set" => git::run(params, ctx).await,
        "http" => http::run(params, ctx).await,
        "notify" => notify::run(params, ctx).await,
        "terraform_cloud.run" => terraform_cloud::run(params, ctx).await,
        _ => return None,
    })
}
