//! Configuration: `RawConfig` (serde) → [`validate`] (no I/O, every problem at
//! once, each with its path) → [`Config`].

mod credentials;
pub mod ha;
mod keys;
pub mod raw;
mod validate;

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use credentials::{SharedCredentialsError, parse_shared_credentials};
pub use ha::HaConfig;
pub use raw::RawConfig;
pub use validate::validate;

#[cfg(test)]
mod audit_tests;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_edges;

use crate::endpoint::{Endpoint, HttpUrl};

/// One thing wrong with a configuration, at a path such as
/// `backends[1].endpoint` (or `line 3, column 7` for a syntax error).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub path: String,
    pub message: String,
}

impl Problem {
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self { path: path.into(), message: message.into() }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// Every problem found in one configuration file.
#[derive(Debug, Clone, thiserror::Error)]
pub struct ConfigError {
    /// The file the problems are in, as the user named it.
    pub file: String,
    pub problems: Vec<Problem>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.problems.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{}: {p}", self.file)?;
        }
        Ok(())
    }
}

/// Parses and validates a configuration text. `base_dir` is the directory
/// relative paths resolve against; `env` looks up environment variables (to
/// report credentials variables that are not set).
pub fn load_str(
    text: &str,
    file: &str,
    base_dir: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Config, ConfigError> {
    let fail = |problems| ConfigError { file: file.to_string(), problems };
    let raw = parse(text).map_err(|p| fail(vec![p]))?;
    let (raw, unknown) = raw;
    match validate(raw, base_dir, env) {
        Ok(config) if unknown.is_empty() => Ok(config),
        Ok(_) => Err(fail(unknown)),
        Err(mut problems) => {
            let mut all = unknown;
            all.append(&mut problems);
            Err(fail(all))
        }
    }
}

/// Parses TOML into [`RawConfig`], collecting every unknown key as a problem.
pub fn parse(text: &str) -> Result<(RawConfig, Vec<Problem>), Problem> {
    let mut unknown = Vec::new();
    let de = toml::Deserializer::parse(text).map_err(|e| toml_problem(text, &e))?;
    let raw: RawConfig = serde_ignored::deserialize(de, |path| {
        unknown.push((render_path(&path), keys::segments(&path)));
    })
    .map_err(|e| toml_problem(text, &e))?;
    let known = if unknown.is_empty() { Default::default() } else { keys::known_keys() };
    let unknown =
        unknown.into_iter().map(|(path, segs)| Problem::new(path, keys::explain(text, &segs, &known))).collect();
    Ok((raw, unknown))
}

fn toml_problem(text: &str, e: &toml::de::Error) -> Problem {
    let message = e.message().trim().to_string();
    match e.span() {
        Some(span) => {
            let before = &text[..span.start.min(text.len())];
            let line = before.matches('\n').count() + 1;
            let col = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
            Problem::new(format!("line {line}, column {col}"), message)
        }
        None => Problem::new("(file)", message),
    }
}

fn render_path(path: &serde_ignored::Path<'_>) -> String {
    use serde_ignored::Path as P;
    match path {
        P::Root => String::new(),
        P::Seq { parent, index } => format!("{}[{index}]", render_path(parent)),
        P::Map { parent, key } => {
            let p = render_path(parent);
            if p.is_empty() { key.clone() } else { format!("{p}.{key}") }
        }
        P::Some { parent } | P::NewtypeStruct { parent } | P::NewtypeVariant { parent } => render_path(parent),
    }
}

/// A validated configuration. Paths are absolute (resolved against the
/// configuration file's directory).
#[derive(Debug, Clone)]
pub struct Config {
    pub state: StateConfig,
    pub api: Option<ApiConfig>,
    pub probe: ProbeConfig,
    pub policy: PolicyConfig,
    pub runbooks: RunbooksConfig,
    pub fallback: FallbackConfig,
    pub backends: Vec<BackendConfig>,
    pub gateway: Option<GatewayConfig>,
    pub detect: DetectConfig,
    pub verify: VerifyConfig,
    pub signals: SignalsConfig,
    pub objectives: ObjectivesConfig,
    pub drills: Vec<DrillConfig>,
    /// `[audit]`: export of the audit chain and its HMAC key.
    pub audit: AuditConfig,
    /// `[ha]`: several processes coordinated through etcd. `None`: one
    /// process on SQLite.
    pub ha: Option<HaConfig>,
}

/// `[audit]`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditConfig {
    /// Where `cutover run` exports the chain and `cutover audit verify`
    /// compares it.
    pub export: Option<AuditExport>,
    /// The environment variable that holds the HMAC-SHA256 key of the chain
    /// hashes (its value is read when the store is opened, never logged).
    pub hmac_key_env: Option<String>,
}

/// `[audit] export`: segments of the chain in a bucket of a backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditExport {
    /// The `[[backends]]` entry whose endpoint and credentials are used.
    pub backend: String,
    pub bucket: String,
    /// Key prefix; segments go under `{prefix}audit/`.
    pub prefix: String,
    /// S3 Object Lock mode for each segment, when the backend supports it.
    pub object_lock: Option<ObjectLockMode>,
    /// How long a locked segment is retained (default 365 days).
    pub retain: Duration,
    /// How often new entries are exported (default 10s).
    pub interval: Duration,
}

/// `x-amz-object-lock-mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObjectLockMode {
    Governance,
    Compliance,
}

impl ObjectLockMode {
    /// The header value.
    pub fn as_header(self) -> &'static str {
        match self {
            ObjectLockMode::Governance => "GOVERNANCE",
            ObjectLockMode::Compliance => "COMPLIANCE",
        }
    }
}

/// The drill scenarios.
pub const DRILL_SCENARIOS: &[&str] = &["hard-down", "blip", "brownout", "flapping", "partial-vantage", "slowdown"];

/// `[[drills]]`: `cutover drill` run by the controller on a schedule.
#[derive(Debug, Clone, PartialEq)]
pub struct DrillConfig {
    pub scenario: String,
    pub cron: crate::cron::Cron,
    /// The staging (canary) configuration the drill runs against.
    pub config: PathBuf,
    /// Backend name → chaos proxy control URL.
    pub chaos: Vec<(String, String)>,
    pub runs: u32,
    pub report: PathBuf,
    pub agent_endpoint: Option<String>,
}

/// `[objectives]`: what `cutover drill` checks.
#[derive(Debug, Clone, PartialEq)]
pub struct ObjectivesConfig {
    /// Outage onset to validated switch (default 5s).
    pub rto: Duration,
    /// Acknowledged writes older than this before the onset must never be lost (default 0: none may be).
    pub rpo: Duration,
    /// Failovers a drill scenario that should not fail over may cause (default 0).
    pub max_false_failovers: u32,
}

/// Thresholds of the health state machine (`[detect]`).
#[derive(Debug, Clone)]
pub struct DetectConfig {
    /// Consecutive failed probes needed for Down.
    pub failures: u32,
    /// Minimum length of a failing streak before Down.
    pub confirm_after: Duration,
    /// A probe in flight this long counts as a failure at once.
    pub slow_after: Duration,
    /// Error rate over the window that marks an intermittent (brownout) backend.
    pub error_rate: f64,
    pub window: usize,
    /// p95 latency over the window above which a backend is suspect (latency-only evidence).
    pub p95_latency: Option<Duration>,
    pub recover_successes: u32,
    pub recover_after: Duration,
}

/// Verification before a decision (`[verify]`).
#[derive(Debug, Clone)]
pub struct VerifyConfig {
    /// Vantages that must see a backend down for full evidence.
    pub quorum: usize,
    /// Re-check period while a backend is suspect.
    pub interval: Duration,
    pub timeout: Duration,
    /// An agent silent this long is "unknown" and does not count.
    pub agent_timeout: Duration,
}

/// Optional signals that join the evidence (`[signals]`). Each has its own
/// interval and timeout; a signal that fails is "unavailable", never a blocker.
#[derive(Debug, Clone, Default)]
pub struct SignalsConfig {
    pub prometheus: Option<PrometheusSignal>,
    pub statuspage: Option<StatuspageSignal>,
}

/// `[signals.prometheus]`: an instant query whose value above `threshold`
/// means the signal is firing.
#[derive(Debug, Clone)]
pub struct PrometheusSignal {
    /// The base URL of Prometheus (the query goes to `{url}/api/v1/query`).
    pub url: HttpUrl,
    pub query: String,
    pub threshold: f64,
    pub interval: Duration,
    pub timeout: Duration,
    /// The backend the signal speaks about.
    pub backend: String,
    /// A PEM bundle of CA certificates trusted in addition to the public
    /// roots (an `https` URL with a private CA).
    pub ca_file: Option<PathBuf>,
}

/// `[signals.statuspage]`: a provider status feed in the Atlassian
/// Statuspage format (`/api/v2/status.json`).
#[derive(Debug, Clone)]
pub struct StatuspageSignal {
    pub url: HttpUrl,
    pub interval: Duration,
    pub timeout: Duration,
    /// The backend the signal speaks about.
    pub backend: String,
    /// As for [`PrometheusSignal::ca_file`].
    pub ca_file: Option<PathBuf>,
}

impl Config {
    /// Every `ca_file` of the configuration, with the key it is at
    /// (`backends[0].ca_file`, `signals.prometheus.ca_file`): the files
    /// `cutover config check` and `cutover run` read before anything starts.
    pub fn ca_files(&self) -> Vec<(String, &Path)> {
        let mut out: Vec<(String, &Path)> = Vec::new();
        for (i, b) in self.backends.iter().enumerate() {
            if let Some(f) = &b.ca_file {
                out.push((format!("backends[{i}].ca_file"), f));
            }
        }
        if let Some(f) = self.signals.prometheus.as_ref().and_then(|p| p.ca_file.as_deref()) {
            out.push(("signals.prometheus.ca_file".into(), f));
        }
        if let Some(f) = self.signals.statuspage.as_ref().and_then(|p| p.ca_file.as_deref()) {
            out.push(("signals.statuspage.ca_file".into(), f));
        }
        if let Some(f) = self.ha.as_ref().and_then(|h| h.ca_file.as_deref()) {
            out.push(("ha.ca_file".into(), f));
        }
        out
    }

    /// Every client certificate and key file of the configuration, with the
    /// key it is at (`ha.cert_file`, `ha.key_file`): files `cutover config
    /// check` and `cutover run` read before anything starts.
    pub fn client_cert_files(&self) -> Vec<(String, &Path)> {
        let mut out: Vec<(String, &Path)> = Vec::new();
        if let Some(c) = self.ha.as_ref().and_then(|h| h.client_cert.as_ref()) {
            out.push(("ha.cert_file".into(), &c.cert_file));
            out.push(("ha.key_file".into(), &c.key_file));
        }
        out
    }

    pub fn backend(&self, name: &str) -> Option<&BackendConfig> {
        self.backends.iter().find(|b| b.name == name)
    }

    pub fn primary(&self) -> &BackendConfig {
        self.backends.iter().find(|b| b.role == Role::Primary).expect("validated: one primary")
    }

    pub fn backend_names(&self) -> Vec<&str> {
        self.backends.iter().map(|b| b.name.as_str()).collect()
    }
}

#[derive(Debug, Clone)]
pub struct StateConfig {
    pub path: PathBuf,
}

#[derive(Debug, Clone)]
pub struct ApiConfig {
    pub listen: SocketAddr,
    pub tokens: Vec<ApiToken>,
    /// `GET /metrics` needs a token of at least `viewer` (default: open).
    pub metrics_require_token: bool,
    /// `public_url`: the console's address as people reach it (`http(s)://host[:port][/path]`,
    /// no trailing slash), put in notification links; `None`: no links.
    pub public_url: Option<String>,
}

/// A bearer token, known only by the SHA-256 of its value.
#[derive(Debug, Clone)]
pub struct ApiToken {
    pub name: String,
    pub role: TokenRole,
    /// Lowercase hex SHA-256 of the token.
    pub sha256: String,
    /// For an `agent` token: the one vantage it may post evidence for.
    pub vantage: Option<String>,
}

/// Whether `name` can be a vantage: 1 to 64 ASCII letters, digits, `.`,
/// `_` or `-`, and not `local` (the controller's own).
pub fn valid_vantage(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name != "local"
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum TokenRole {
    Viewer,
    /// A probe agent: may post evidence.
    Agent,
    Approver,
    Admin,
}

#[derive(Debug, Clone)]
pub struct ProbeConfig {
    pub interval: Duration,
    pub timeout: Duration,
    /// Key prefix under which probe objects are written.
    pub prefix: String,
    /// Size in bytes of each probe object.
    pub object_size: usize,
}

#[derive(Debug, Clone, Default)]
pub struct PolicyConfig {
    /// `None`: the built-in default policy.
    pub path: Option<PathBuf>,
    /// Passed to the policy as `limits.max_failovers_per_hour`.
    pub max_failovers_per_hour: u32,
}

#[derive(Debug, Clone, Default)]
pub struct RunbooksConfig {
    /// `None`: the built-in runbook.
    pub failover: Option<PathBuf>,
    pub fallback: Option<PathBuf>,
}

#[derive(Debug, Clone)]
pub struct FallbackConfig {
    pub stable_for: Duration,
    pub min_dwell: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Primary,
    Secondary,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Primary => "primary",
            Role::Secondary => "secondary",
        }
    }
}

#[derive(Debug, Clone)]
pub struct BackendConfig {
    pub name: String,
    pub endpoint: Endpoint,
    pub region: String,
    pub bucket: String,
    pub role: Role,
    pub path_style: bool,
    pub residency: Option<String>,
    pub credentials: CredentialsRef,
    pub validate: BackendValidateConfig,
    /// A PEM bundle of CA certificates trusted in addition to the public
    /// (webpki) roots: an `https` endpoint whose certificate a private CA
    /// signed. Read when a client is built (and by `cutover config check`).
    pub ca_file: Option<PathBuf>,
    /// `[backends.kubernetes]`, for the `kubernetes.patch` step.
    pub kubernetes: Option<KubernetesBackendConfig>,
}

/// `[backends.kubernetes]`: the Secret (in the `StorageBackend`'s namespace)
/// that holds this backend's `access_key_id` and `secret_access_key`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KubernetesBackendConfig {
    pub credentials_secret: String,
}

/// Where a backend's credentials come from. The values themselves are read
/// when the backend is built, never stored in the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CredentialsRef {
    Env {
        access_key_id_env: String,
        secret_access_key_env: String,
        session_token_env: Option<String>,
    },
    /// An AWS shared-credentials file and the profile in it.
    File {
        path: PathBuf,
        profile: String,
    },
}

#[derive(Debug, Clone, Default)]
pub struct BackendValidateConfig {
    pub sse: Option<Sse>,
    /// A latency above this fails the latency check of `cutover validate`.
    pub max_latency: Option<Duration>,
}

/// Server-side encryption to exercise in the smoke suite.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sse {
    /// `x-amz-server-side-encryption: AES256`.
    Aes256,
    /// `aws:kms`, with an optional key id.
    Kms { key_id: Option<String> },
    /// Customer-provided keys (SSE-C).
    CustomerKey,
}

#[derive(Debug, Clone)]
pub struct GatewayConfig {
    pub listen: SocketAddr,
    pub region: String,
    /// `tls_cert_file` and `tls_key_file`: serve HTTPS instead of HTTP.
    pub tls: Option<GatewayTls>,
    pub clients: Vec<GatewayClient>,
    pub buckets: Vec<GatewayBucket>,
    /// Deadlines on every backend request and hedging of dual-writes.
    pub limits: GatewayLimits,
}

/// How long the gateway waits for backends and clients, and how many
/// clients it serves at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GatewayLimits {
    /// `backend_first_byte_timeout` (default 5s): from the end of a request
    /// to the backend's answer headers.
    pub backend_first_byte: Duration,
    /// `backend_idle_timeout` (default 5s): the longest pause of a backend
    /// while it takes a body or sends an answer.
    pub backend_idle: Duration,
    /// `hedge_after` (default 1s, `"off"` to disable): in dual-write with
    /// `ack = "active-journal"`, a write the active backend has not answered
    /// this long after the other backend took it is acknowledged and
    /// journaled for the active one.
    pub hedge_after: Option<Duration>,
    /// `client_header_timeout` (default 20s): a client must send a whole
    /// request head within it, on a new or a kept-alive connection (so it is
    /// also the keep-alive idle timeout).
    pub client_header: Duration,
    /// `client_min_body_rate` (bytes per second, default 1024): a client
    /// sending a body slower than this, measured over 10 s of waiting for
    /// it, gets 400 `RequestTimeout`. 0 disables.
    pub client_min_body_rate: u64,
    /// `max_connections` (default 4096): client connections served at once;
    /// more are closed at once and counted.
    pub max_connections: usize,
}

impl Default for GatewayLimits {
    fn default() -> Self {
        Self {
            backend_first_byte: Duration::from_secs(5),
            backend_idle: Duration::from_secs(5),
            hedge_after: Some(Duration::from_secs(1)),
            client_header: Duration::from_secs(20),
            client_min_body_rate: 1024,
            max_connections: 4096,
        }
    }
}

/// The gateway's certificate chain and private key (PEM files, read when the
/// gateway is built; the key never leaves the process).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayTls {
    /// The server certificate first, then its intermediates.
    pub cert_file: PathBuf,
    /// PKCS#8, PKCS#1 (RSA) or SEC1 (EC).
    pub key_file: PathBuf,
}

#[derive(Debug, Clone)]
pub struct GatewayClient {
    pub access_key_id: String,
    pub secret: SecretRef,
}

/// Where one secret comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretRef {
    Env(String),
    File(PathBuf),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BucketMode {
    ActivePassive,
    ReadThrough,
    DualWrite,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ack {
    All,
    ActiveJournal,
}

#[derive(Debug, Clone)]
pub struct GatewayBucket {
    pub name: String,
    pub mode: BucketMode,
    pub ack: Ack,
    /// The backends this bucket spans (all backends when not configured).
    pub backends: Vec<String>,
}
