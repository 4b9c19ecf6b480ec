//! The configuration file as written: serde types with every field optional or
//! defaulted, and enum-like values as strings, so that [`super::validate`] can
//! report every problem at once with its path.

use serde::Deserialize;

#[derive(Debug, Default, Deserialize)]
pub struct RawConfig {
    pub state: Option<RawState>,
    pub api: Option<RawApi>,
    pub probe: Option<RawProbe>,
    pub policy: Option<RawPolicy>,
    pub runbooks: Option<RawRunbooks>,
    pub fallback: Option<RawFallback>,
    #[serde(default)]
    pub backends: Vec<RawBackend>,
    pub gateway: Option<RawGateway>,
    pub detect: Option<RawDetect>,
    pub verify: Option<RawVerify>,
    pub signals: Option<RawSignals>,
    pub objectives: Option<RawObjectives>,
    #[serde(default)]
    pub drills: Vec<RawDrill>,
    pub audit: Option<RawAudit>,
    pub ha: Option<RawHa>,
}

/// `[ha]`: high availability on etcd.
#[derive(Debug, Default, Deserialize)]
pub struct RawHa {
    pub etcd: Option<Vec<String>>,
    pub prefix: Option<String>,
    pub node: Option<String>,
    pub advertise_api: Option<String>,
    pub lease_ttl: Option<String>,
    pub renew_interval: Option<String>,
    pub request_timeout: Option<String>,
    pub renew_deadline: Option<String>,
    pub ca_file: Option<String>,
    pub cert_file: Option<String>,
    pub key_file: Option<String>,
    pub username: Option<String>,
    pub password_env: Option<String>,
}

/// `[audit]`: where the audit chain is exported, and its HMAC key.
#[derive(Debug, Default, Deserialize)]
pub struct RawAudit {
    pub export: Option<RawAuditExport>,
    pub hmac_key_env: Option<String>,
}

/// `[audit] export = { backend, bucket, prefix, object_lock, retain, interval }`.
#[derive(Debug, Default, Deserialize)]
pub struct RawAuditExport {
    pub backend: Option<String>,
    pub bucket: Option<String>,
    pub prefix: Option<String>,
    pub object_lock: Option<String>,
    pub retain: Option<String>,
    pub interval: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub struct RawSignals {
    pub prometheus: Option<RawPrometheusSignal>,
    pub statuspage: Option<RawStatuspageSignal>,
}

#[derive(Debug, Default, Deserialize)]
pub struct RawPrometheusSignal {
    pub url: Option<String>,
    pub query: Option<String>,
    pub threshold: Option<f64>,
    pub interval: Option<String>,
    pub timeout: Option<String>,
    pub backend: Option<String>,
    pub ca_file: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub struct RawStatuspageSignal {
    pub url: Option<String>,
    pub interval: Option<String>,
    pub timeout: Option<String>,
    pub backend: Option<String>,
    pub ca_file: Option<String>,
}

/// `[[drills]]`: a drill that `cutover run` starts on a schedule.
#[derive(Debug, Default, Deserialize)]
pub struct RawDrill {
    pub scenario: Option<String>,
    pub cron: Option<String>,
    pub config: Option<String>,
    pub chaos: Option<std::collections::BTreeMap<String, String>>,
    pub runs: Option<u32>,
    pub report: Option<String>,
    pub agent_endpoint: Option<String>,
}

/// `[objectives]`: what a drill must achieve.
#[derive(Debug, Default, Deserialize)]
pub struct RawObjectives {
    pub rto: Option<String>,
    /// `0` or a duration string.
    pub rpo: Option<IntOrString>,
    pub max_false_failovers: Option<u32>,
}

/// A value written either as a number or as a string (`rpo = 0`, `rpo = "30s"`).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum IntOrString {
    Int(i64),
    Str(String),
}

#[derive(Debug, Default, Deserialize)]
pub struct RawDetect {
    pub failures: Option<u32>,
    pub confirm_after: Option<String>,
    pub slow_after: Option<String>,
    pub error_rate: Option<f64>,
    pub window: Option<usize>,
    pub p95_latency: Option<String>,
    pub recover_successes: Option<u32>,
    pub recover_after: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub struct RawVerify {
    pub quorum: Option<usize>,
    pub interval: Option<String>,
    pub timeout: Option<String>,
    pub agent_timeout: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub struct RawState {
    pub path: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub struct RawApi {
    pub listen: Option<String>,
    pub metrics_require_token: Option<bool>,
    #[serde(default)]
    pub tokens: Vec<RawToken>,
    /// The console's address as people reach it (notification links).
    pub public_url: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub struct RawToken {
    pub name: Option<String>,
    pub role: Option<String>,
    pub sha256: Option<String>,
    pub vantage: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub struct RawProbe {
    pub interval: Option<String>,
    pub timeout: Option<String>,
    pub prefix: Option<String>,
    pub object_size: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
pub struct RawPolicy {
    pub path: Option<String>,
    pub max_failovers_per_hour: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
pub struct RawRunbooks {
    pub failover: Option<String>,
    pub fallback: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub struct RawFallback {
    pub stable_for: Option<String>,
    pub min_dwell: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub struct RawBackend {
    pub name: Option<String>,
    pub endpoint: Option<String>,
    pub region: Option<String>,
    pub bucket: Option<String>,
    pub role: Option<String>,
    pub path_style: Option<bool>,
    pub residency: Option<String>,
    pub credentials: Option<RawCredentials>,
    pub validate: Option<RawBackendValidate>,
    pub ca_file: Option<String>,
    pub kubernetes: Option<RawBackendKubernetes>,
}

/// `[backends.kubernetes]`: how the `kubernetes.patch` step names this
/// backend to the cluster's operator.
#[derive(Debug, Default, Deserialize)]
pub struct RawBackendKubernetes {
    pub credentials_secret: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub struct RawCredentials {
    pub access_key_id_env: Option<String>,
    pub secret_access_key_env: Option<String>,
    pub session_token_env: Option<String>,
    pub file: Option<String>,
    pub profile: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub struct RawBackendValidate {
    pub sse: Option<String>,
    pub sse_kms_key_id: Option<String>,
    pub max_latency: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub struct RawGateway {
    pub listen: Option<String>,
    pub region: Option<String>,
    pub tls_cert_file: Option<String>,
    pub tls_key_file: Option<String>,
    pub backend_first_byte_timeout: Option<String>,
    pub backend_idle_timeout: Option<String>,
    pub hedge_after: Option<String>,
    pub client_header_timeout: Option<String>,
    pub client_min_body_rate: Option<u64>,
    pub max_connections: Option<u64>,
    #[serde(default)]
    pub clients: Vec<RawGatewayClient>,
    #[serde(default)]
    pub buckets: Vec<RawGatewayBucket>,
}

#[derive(Debug, Default, Deserialize)]
pub struct RawGatewayClient {
    pub access_key_id: Option<String>,
    pub secret_access_key_env: Option<String>,
    pub secret_access_key_file: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub struct RawGatewayBucket {
    pub name: Option<String>,
    pub mode: Option<String>,
    pub ack: Option<String>,
    pub backends: Option<Vec<String>>,
}
