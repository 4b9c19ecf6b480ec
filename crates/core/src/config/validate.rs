//! Semantic validation of a [`RawConfig`], without I/O.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::raw::*;
use super::*;
use crate::duration::parse_duration;

mod ha;

/// The longest duration a setting may have.
const MAX_DURATION: Duration = Duration::from_secs(365 * 86_400);

/// The most probe outcomes the sliding window of `[detect]` may hold.
const MAX_WINDOW: usize = 10_000;

/// Collects problems while validating.
struct Problems(Vec<Problem>);

impl Problems {
    fn push(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.0.push(Problem::new(path, message));
    }

    /// Parses an optional duration, reporting a problem and returning the
    /// default when it is malformed or not positive.
    fn duration(&mut self, path: &str, value: Option<&String>, default: Duration) -> Duration {
        let Some(text) = value else { return default };
        match parse_duration(text) {
            Ok(d) if d.is_zero() => {
                self.push(path, format!("{text:?} must be greater than zero"));
                default
            }
            // Far beyond any sensible setting, and far enough from the
            // overflow of `Instant + Duration` that nothing panics.
            Ok(d) if d > MAX_DURATION => {
                self.push(path, format!("{text:?} is too long (at most 365d)"));
                default
            }
            Ok(d) => d,
            Err(e) => {
                self.push(path, e.to_string());
                default
            }
        }
    }

    fn required<'a>(&mut self, path: &str, value: Option<&'a String>, hint: &str) -> Option<&'a str> {
        match value.map(|s| s.trim()) {
            Some(v) if !v.is_empty() => Some(v),
            Some(_) => {
                self.push(path, format!("must not be empty ({hint})"));
                None
            }
            None => {
                self.push(path, format!("missing ({hint})"));
                None
            }
        }
    }

    fn socket_addr(&mut self, path: &str, value: Option<&String>, default: &str) -> SocketAddr {
        let text = value.map(String::as_str).unwrap_or(default);
        text.parse().unwrap_or_else(|_| {
            self.push(path, format!("{text:?} is not an address:port (write e.g. \"127.0.0.1:8080\")"));
            default.parse().expect("default address")
        })
    }
}

/// Validates a parsed configuration. Returns every problem at once.
pub fn validate(raw: RawConfig, base_dir: &Path, env: &dyn Fn(&str) -> Option<String>) -> Result<Config, Vec<Problem>> {
    let mut p = Problems(Vec::new());
    let resolve = |s: &str| -> PathBuf { base_dir.join(s) };

    let state =
        StateConfig { path: resolve(raw.state.as_ref().and_then(|s| s.path.as_deref()).unwrap_or("cutover.db")) };

    let api = raw.api.map(|a| validate_api(&mut p, a));
    let probe = validate_probe(&mut p, raw.probe.unwrap_or_default());

    let rpol = raw.policy.unwrap_or_default();
    let policy = PolicyConfig {
        path: rpol.path.map(|s| resolve(&s)),
        max_failovers_per_hour: rpol.max_failovers_per_hour.unwrap_or(3),
    };
    let detect = validate_detect(&mut p, raw.detect.unwrap_or_default());

    let rv = raw.verify.unwrap_or_default();
    let verify = VerifyConfig {
        quorum: rv.quorum.unwrap_or(1),
        interval: p.duration("verify.interval", rv.interval.as_ref(), Duration::from_millis(100)),
        timeout: p.duration("verify.timeout", rv.timeout.as_ref(), Duration::from_millis(750)),
        agent_timeout: p.duration("verify.agent_timeout", rv.agent_timeout.as_ref(), Duration::from_secs(5)),
    };
    if verify.quorum == 0 {
        p.push("verify.quorum", "must be at least 1");
    }
    let rr = raw.runbooks.unwrap_or_default();
    let runbooks =
        RunbooksConfig { failover: rr.failover.map(|s| resolve(&s)), fallback: rr.fallback.map(|s| resolve(&s)) };
    let rf = raw.fallback.unwrap_or_default();
    let fallback = FallbackConfig {
        stable_for: p.duration("fallback.stable_for", rf.stable_for.as_ref(), Duration::from_secs(600)),
        min_dwell: p.duration("fallback.min_dwell", rf.min_dwell.as_ref(), Duration::from_secs(300)),
    };

    let objectives = validate_objectives(&mut p, raw.objectives.unwrap_or_default());
    let drills = validate_drills(&mut p, raw.drills, base_dir);

    let backends = validate_backends(&mut p, raw.backends, base_dir, env);
    let names: Vec<&str> = backends.iter().map(|b| b.name.as_str()).collect();
    let gateway = raw.gateway.map(|g| validate_gateway(&mut p, g, &names, base_dir, env));
    if let Some(g) = &gateway {
        check_bucket_overlap(&mut p, &g.buckets, &backends);
    }
    let primary = backends.iter().find(|b| b.role == Role::Primary).map(|b| b.name.as_str());
    let signals = raw.signals.map(|s| validate_signals(&mut p, s, &names, primary, base_dir)).unwrap_or_default();
    let audit = raw.audit.map(|a| validate_audit(&mut p, a, &backends, env)).unwrap_or_default();
    let ha = raw.ha.and_then(|h| ha::validate_ha(&mut p, h, api.as_ref(), base_dir, env, &ha::host_name));

    if !p.0.is_empty() {
        return Err(p.0);
    }
    Ok(Config {
        state,
        api,
        probe,
        policy,
        runbooks,
        fallback,
        backends,
        gateway,
        detect,
        verify,
        objectives,
        drills,
        signals,
        audit,
        ha,
    })
}

/// One `[[api.tokens]]` entry; `names` are the names seen so far (each
/// must be unique). `None` when it has a problem.
fn validate_token(p: &mut Problems, i: usize, t: &RawToken, names: &mut HashSet<String>) -> Option<ApiToken> {
    let at = format!("api.tokens[{i}]");
    let name = p.required(&format!("{at}.name"), t.name.as_ref(), "the actor recorded in the audit log");
    if let Some(n) = name
        && !names.insert(n.to_string())
    {
        p.push(format!("{at}.name"), format!("{n:?} is used by another token"));
    }
    let role = match t.role.as_deref() {
        Some("viewer") => Some(TokenRole::Viewer),
        Some("agent") => Some(TokenRole::Agent),
        Some("approver") => Some(TokenRole::Approver),
        Some("admin") => Some(TokenRole::Admin),
        Some(other) => {
            p.push(format!("{at}.role"), format!("{other:?} is not a role (viewer, agent, approver or admin)"));
            None
        }
        None => {
            p.push(format!("{at}.role"), "missing (viewer, agent, approver or admin)");
            None
        }
    };
    let sha = match t.sha256.as_deref() {
        Some(h) if h.len() == 64 && h.chars().all(|c| c.is_ascii_hexdigit()) => Some(h.to_ascii_lowercase()),
        Some(_) => {
            p.push(
                format!("{at}.sha256"),
                "must be the 64 hex digits of the token's SHA-256 (e.g. `printf %s \"$TOKEN\" | sha256sum`)",
            );
            None
        }
        None => {
            p.push(format!("{at}.sha256"), "missing (the hex SHA-256 of the bearer token)");
            None
        }
    };
    let vantage = match (role, t.vantage.as_deref()) {
        (Some(TokenRole::Agent), Some(v)) if valid_vantage(v) => Some(v.to_string()),
        (Some(TokenRole::Agent), Some(v)) => {
            p.push(
                format!("{at}.vantage"),
                format!("{v:?} is not a vantage name (1 to 64 letters, digits, '.', '_' or '-'; not \"local\")"),
            );
            None
        }
        (Some(TokenRole::Agent), None) => {
            p.push(
                format!("{at}.vantage"),
                "missing: an agent token speaks for one vantage (the name its `cutover agent --vantage` uses)",
            );
            None
        }
        (Some(_), Some(_)) => {
            p.push(format!("{at}.vantage"), "only an agent token has a vantage");
            None
        }
        (_, None) | (None, Some(_)) => None,
    };
    if role == Some(TokenRole::Agent) && vantage.is_none() {
        return None;
    }
    Some(ApiToken { name: name?.to_string(), role: role?, sha256: sha?, vantage })
}

/// `[api]`: the listen address and the tokens.
fn validate_api(p: &mut Problems, a: RawApi) -> ApiConfig {
    let listen = p.socket_addr("api.listen", a.listen.as_ref(), "127.0.0.1:8080");
    let mut names = HashSet::new();
    let tokens = a.tokens.iter().enumerate().filter_map(|(i, t)| validate_token(p, i, t, &mut names)).collect();
    let public_url = a.public_url.as_deref().and_then(|u| validate_public_url(p, u));
    ApiConfig { listen, tokens, metrics_require_token: a.metrics_require_token.unwrap_or(false), public_url }
}

/// `api.public_url`: an absolute `http` or `https` URL without query,
/// fragment or credentials; kept without its trailing slash.
fn validate_public_url(p: &mut Problems, url: &str) -> Option<String> {
    let rest = url.strip_prefix("https://").or_else(|| url.strip_prefix("http://"));
    let problem = match rest {
        None => Some("must start with http:// or https://"),
        Some(r) if r.is_empty() || r.starts_with('/') => Some("has no host"),
        Some(r) if r.contains(['?', '#', '@']) => Some("must not have a query, a fragment or credentials"),
        Some(r) if r.chars().any(|c| c.is_whitespace() || c.is_control() || c == '"' || c == '<' || c == '>') => {
            Some("contains spaces, quotes or angle brackets")
        }
        Some(_) => None,
    };
    match problem {
        Some(why) => {
            p.push("api.public_url", format!("{url:?} {why}"));
            None
        }
        None => Some(url.trim_end_matches('/').to_string()),
    }
}

/// `[probe]`.
fn validate_probe(p: &mut Problems, rp: RawProbe) -> ProbeConfig {
    let probe = ProbeConfig {
        interval: p.duration("probe.interval", rp.interval.as_ref(), Duration::from_secs(1)),
        timeout: p.duration("probe.timeout", rp.timeout.as_ref(), Duration::from_secs(2)),
        prefix: rp.prefix.clone().unwrap_or_else(|| ".cutover-probe/".into()),
        object_size: rp.object_size.unwrap_or(1024) as usize,
    };
    if probe.prefix.is_empty() || probe.prefix.starts_with('/') {
        p.push(
            "probe.prefix",
            format!("{:?} must be a non-empty key prefix that does not start with '/'", probe.prefix),
        );
    }
    if !(1..=5 * 1024 * 1024).contains(&probe.object_size) {
        p.push("probe.object_size", format!("{} bytes is out of range (1 to 5242880)", probe.object_size));
    }
    probe
}

/// `[detect]`: the health state machine's thresholds.
fn validate_detect(p: &mut Problems, rd: RawDetect) -> DetectConfig {
    let detect = DetectConfig {
        failures: rd.failures.unwrap_or(2).max(1),
        confirm_after: p.duration("detect.confirm_after", rd.confirm_after.as_ref(), Duration::from_millis(2250)),
        slow_after: p.duration("detect.slow_after", rd.slow_after.as_ref(), Duration::from_secs(1)),
        error_rate: rd.error_rate.unwrap_or(0.5),
        window: rd.window.unwrap_or(10).max(1),
        p95_latency: rd
            .p95_latency
            .as_ref()
            .map(|_| p.duration("detect.p95_latency", rd.p95_latency.as_ref(), Duration::ZERO)),
        recover_successes: rd.recover_successes.unwrap_or(3).max(1),
        recover_after: p.duration("detect.recover_after", rd.recover_after.as_ref(), Duration::from_secs(3)),
    };
    if !(1..=MAX_WINDOW).contains(&rd.window.unwrap_or(10)) {
        p.push("detect.window", format!("{} probes is out of range (1 to {MAX_WINDOW})", rd.window.unwrap_or(10)));
    }
    if !(0.0..=1.0).contains(&detect.error_rate) || detect.error_rate == 0.0 {
        p.push("detect.error_rate", format!("{} must be above 0 and at most 1", detect.error_rate));
    }
    detect
}

/// `[objectives]`: RTO, RPO and the false failovers allowed.
fn validate_objectives(p: &mut Problems, ro: RawObjectives) -> ObjectivesConfig {
    let rpo = match &ro.rpo {
        None | Some(super::raw::IntOrString::Int(0)) => Duration::ZERO,
        Some(super::raw::IntOrString::Str(s)) if s.trim() == "0" => Duration::ZERO,
        Some(super::raw::IntOrString::Str(s)) => match parse_duration(s) {
            Ok(d) => d,
            Err(e) => {
                p.push("objectives.rpo", e.to_string());
                Duration::ZERO
            }
        },
        Some(super::raw::IntOrString::Int(n)) => {
            p.push("objectives.rpo", format!("{n} is not a duration: write 0 or a string such as \"30s\""));
            Duration::ZERO
        }
    };
    ObjectivesConfig {
        rto: p.duration("objectives.rto", ro.rto.as_ref(), Duration::from_secs(5)),
        rpo,
        max_false_failovers: ro.max_false_failovers.unwrap_or(0),
    }
}

/// `[[drills]]`: scheduled game days.
fn validate_drills(p: &mut Problems, drills_raw: Vec<RawDrill>, base_dir: &Path) -> Vec<DrillConfig> {
    let resolve = |s: &str| -> PathBuf { base_dir.join(s) };
    let mut drills = Vec::new();
    for (i, d) in drills_raw.into_iter().enumerate() {
        let at = |k: &str| format!("drills[{i}].{k}");
        let scenario = d.scenario.unwrap_or_default();
        if !DRILL_SCENARIOS.contains(&scenario.as_str()) {
            p.push(at("scenario"), format!("{scenario:?} is not one of {}", DRILL_SCENARIOS.join(", ")));
        }
        let cron = match d.cron.as_deref().map(crate::cron::Cron::parse) {
            Some(Ok(c)) => Some(c),
            Some(Err(e)) => {
                p.push(at("cron"), e.to_string());
                None
            }
            None => {
                p.push(at("cron"), "missing (e.g. \"0 3 * * 1\" or \"@every 6h\")");
                None
            }
        };
        let config = match d.config {
            Some(c) => resolve(&c),
            None => {
                p.push(at("config"), "missing: the staging configuration the drill runs against");
                PathBuf::new()
            }
        };
        let chaos: Vec<(String, String)> = d.chaos.unwrap_or_default().into_iter().collect();
        if chaos.is_empty() {
            p.push(at("chaos"), "missing: { BACKEND = \"http://chaos-proxy-control\" } for the staging primary");
        }
        let runs = d.runs.unwrap_or(1);
        if runs == 0 {
            p.push(at("runs"), "must be at least 1");
        }
        let report = resolve(d.report.as_deref().unwrap_or("drill-reports"));
        if let Some(cron) = cron {
            drills.push(DrillConfig { scenario, cron, config, chaos, runs, report, agent_endpoint: d.agent_endpoint });
        }
    }
    drills
}

/// Bytes an `[audit] hmac_key_env` key must have at least.
const MIN_AUDIT_KEY: usize = 16;

fn validate_audit(
    p: &mut Problems,
    a: RawAudit,
    backends: &[BackendConfig],
    env: &dyn Fn(&str) -> Option<String>,
) -> AuditConfig {
    let hmac_key_env = a.hmac_key_env.and_then(|var| {
        let at = "audit.hmac_key_env";
        if var.trim().is_empty() {
            p.push(at, "must name an environment variable");
            return None;
        }
        match env(&var) {
            None => p.push(at, format!("environment variable {var} is not set")),
            Some(v) if v.len() < MIN_AUDIT_KEY => p.push(
                at,
                format!("environment variable {var} holds {} bytes; the key needs at least {MIN_AUDIT_KEY}", v.len()),
            ),
            Some(_) => {}
        }
        Some(var)
    });
    let export = a.export.and_then(|e| {
        let at = |k: &str| format!("audit.export.{k}");
        let backend = p.required(&at("backend"), e.backend.as_ref(), "the name of a [[backends]] entry to export to");
        if let Some(b) = backend
            && !backends.iter().any(|x| x.name == b)
        {
            let known: Vec<&str> = backends.iter().map(|x| x.name.as_str()).collect();
            p.push(at("backend"), format!("{b:?} is not a configured backend ({})", known.join(", ")));
        }
        let bucket = p.required(&at("bucket"), e.bucket.as_ref(), "the bucket that receives the audit segments");
        if let Some(bk) = bucket
            && let Err(e) = check_bucket_name(bk)
        {
            p.push(at("bucket"), e.to_string());
        }
        let prefix = e.prefix.clone().unwrap_or_else(|| "cutover/".into());
        if prefix.starts_with('/') || prefix.contains("//") || prefix.split('/').any(|s| s == "." || s == "..") {
            p.push(
                at("prefix"),
                format!("{prefix:?} must be a key prefix without a leading '/', '//' or '.'/'..' segments"),
            );
        }
        let object_lock = match e.object_lock.as_deref().map(str::to_ascii_lowercase).as_deref() {
            None | Some("none") => None,
            Some("governance") => Some(ObjectLockMode::Governance),
            Some("compliance") => Some(ObjectLockMode::Compliance),
            Some(other) => {
                p.push(
                    at("object_lock"),
                    format!("{other:?} is not an Object Lock mode (governance, compliance or none)"),
                );
                None
            }
        };
        if e.retain.is_some() && object_lock.is_none() {
            p.push(at("retain"), "only meaningful with object_lock = \"governance\" or \"compliance\"");
        }
        let retain = p.duration(&at("retain"), e.retain.as_ref(), Duration::from_secs(365 * 86_400));
        let interval = p.duration(&at("interval"), e.interval.as_ref(), Duration::from_secs(10));
        Some(AuditExport {
            backend: backend?.to_string(),
            bucket: bucket?.to_string(),
            prefix,
            object_lock,
            retain,
            interval,
        })
    });
    AuditConfig { export, hmac_key_env }
}

fn validate_backends(
    p: &mut Problems,
    raw: Vec<RawBackend>,
    base_dir: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> Vec<BackendConfig> {
    if raw.is_empty() {
        p.push("backends", "no backends configured (add at least one [[backends]] table)");
    }
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for (i, b) in raw.iter().enumerate() {
        let at = format!("backends[{i}]");
        let name = p.required(&format!("{at}.name"), b.name.as_ref(), "a unique name such as \"primary\"");
        if let Some(n) = name {
            let valid = n.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
            if !valid {
                p.push(format!("{at}.name"), format!("{n:?} may contain only lowercase letters, digits and '-'"));
            } else if !seen.insert(n.to_string()) {
                p.push(format!("{at}.name"), format!("{n:?} is the name of another backend too"));
            }
        }
        let endpoint = p
            .required(
                &format!("{at}.endpoint"),
                b.endpoint.as_ref(),
                "the S3 URL, e.g. \"https://s3.us-east-1.amazonaws.com\"",
            )
            .and_then(|e| match Endpoint::parse(e) {
                Ok(e) => Some(e),
                Err(e) => {
                    p.push(format!("{at}.endpoint"), e.to_string());
                    None
                }
            });
        let region = p.required(&format!("{at}.region"), b.region.as_ref(), "the SigV4 region, e.g. \"us-east-1\"");
        let bucket = p.required(&format!("{at}.bucket"), b.bucket.as_ref(), "the backend's bucket name");
        if let Some(bk) = bucket
            && let Err(e) = check_bucket_name(bk)
        {
            p.push(format!("{at}.bucket"), e.to_string());
        }
        let role = match b.role.as_deref() {
            Some("primary") => Some(Role::Primary),
            Some("secondary") | None => Some(Role::Secondary),
            Some(other) => {
                p.push(format!("{at}.role"), format!("{other:?} is not a role (\"primary\" or \"secondary\")"));
                None
            }
        };
        let credentials = validate_credentials(p, &format!("{at}.credentials"), b.credentials.as_ref(), base_dir, env);
        let validate =
            b.validate.as_ref().map(|v| validate_backend_checks(p, &format!("{at}.validate"), v)).unwrap_or_default();
        let ca_file =
            ca_file(p, &format!("{at}.ca_file"), b.ca_file.as_ref(), endpoint.as_ref().map(|e| e.tls), base_dir);
        let kubernetes =
            b.kubernetes.as_ref().and_then(|k| validate_backend_kubernetes(p, &format!("{at}.kubernetes"), k));
        if let (Some(name), Some(endpoint), Some(region), Some(bucket), Some(role), Some(credentials)) =
            (name, endpoint, region, bucket, role, credentials)
        {
            out.push(BackendConfig {
                name: name.to_string(),
                endpoint,
                region: region.to_string(),
                bucket: bucket.to_string(),
                role,
                path_style: b.path_style.unwrap_or(true),
                residency: b.residency.clone(),
                credentials,
                validate,
                ca_file,
                kubernetes,
            });
        }
    }
    let primaries: Vec<usize> =
        raw.iter().enumerate().filter(|(_, b)| b.role.as_deref() == Some("primary")).map(|(i, _)| i).collect();
    match primaries.len() {
        0 if !raw.is_empty() => p.push("backends", "no backend has role = \"primary\" (exactly one must)"),
        0 | 1 => {}
        _ => {
            let list: Vec<String> = primaries.iter().map(|i| format!("backends[{i}]")).collect();
            p.push(
                "backends",
                format!("{} backends have role = \"primary\" ({}); exactly one may", primaries.len(), list.join(", ")),
            );
        }
    }
    out
}

/// `[backends.kubernetes]`: `credentials_secret` is a Secret's name (a DNS
/// subdomain: lowercase letters, digits, '-' and '.', at most 253 characters).
fn validate_backend_kubernetes(
    p: &mut Problems,
    at: &str,
    k: &super::raw::RawBackendKubernetes,
) -> Option<super::KubernetesBackendConfig> {
    let at = format!("{at}.credentials_secret");
    let name = p.required(
        &at,
        k.credentials_secret.as_ref(),
        "the name of a Secret with access_key_id and secret_access_key",
    )?;
    let valid = !name.is_empty()
        && name.len() <= 253
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric());
    if !valid {
        p.push(at, format!("{name:?} is not a Secret name (lowercase letters, digits, '-' and '.')"));
        return None;
    }
    Some(super::KubernetesBackendConfig { credentials_secret: name.to_string() })
}

fn validate_credentials(
    p: &mut Problems,
    at: &str,
    c: Option<&RawCredentials>,
    base_dir: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> Option<CredentialsRef> {
    let Some(c) = c else {
        p.push(at, "missing (write credentials = { access_key_id_env = \"...\", secret_access_key_env = \"...\" } or { file = \"...\", profile = \"...\" })");
        return None;
    };
    let uses_env = c.access_key_id_env.is_some() || c.secret_access_key_env.is_some() || c.session_token_env.is_some();
    let uses_file = c.file.is_some() || c.profile.is_some();
    let mut check_env = |key: &str, var: &str| {
        if var.is_empty() {
            p.push(format!("{at}.{key}"), "must name an environment variable");
        } else if env(var).is_none_or(|v| v.is_empty()) {
            p.push(format!("{at}.{key}"), format!("environment variable {var} is not set"));
        }
    };
    match (uses_env, uses_file) {
        (true, true) => {
            p.push(at, "use either the *_env keys or file/profile, not both");
            None
        }
        (true, false) => {
            let (Some(id), Some(secret)) = (&c.access_key_id_env, &c.secret_access_key_env) else {
                let missing = if c.access_key_id_env.is_none() { "access_key_id_env" } else { "secret_access_key_env" };
                p.push(
                    format!("{at}.{missing}"),
                    "missing (both access_key_id_env and secret_access_key_env are needed)",
                );
                return None;
            };
            check_env("access_key_id_env", id);
            check_env("secret_access_key_env", secret);
            if let Some(t) = &c.session_token_env {
                check_env("session_token_env", t);
            }
            Some(CredentialsRef::Env {
                access_key_id_env: id.clone(),
                secret_access_key_env: secret.clone(),
                session_token_env: c.session_token_env.clone(),
            })
        }
        (false, true) => {
            let Some(file) = c.file.as_deref().filter(|f| !f.is_empty()) else {
                p.push(format!("{at}.file"), "missing (the path of an AWS shared-credentials file)");
                return None;
            };
            Some(CredentialsRef::File {
                path: base_dir.join(file),
                profile: c.profile.clone().unwrap_or_else(|| "default".into()),
            })
        }
        (false, false) => {
            p.push(at, "empty (give access_key_id_env and secret_access_key_env, or file)");
            None
        }
    }
}

fn validate_backend_checks(p: &mut Problems, at: &str, v: &RawBackendValidate) -> BackendValidateConfig {
    let sse = match v.sse.as_deref() {
        None => None,
        Some("AES256") => Some(Sse::Aes256),
        Some("aws:kms") => Some(Sse::Kms { key_id: v.sse_kms_key_id.clone() }),
        Some("SSE-C") => Some(Sse::CustomerKey),
        Some(other) => {
            p.push(format!("{at}.sse"), format!("{other:?} is not supported (\"AES256\", \"aws:kms\" or \"SSE-C\")"));
            None
        }
    };
    if v.sse_kms_key_id.is_some() && !matches!(sse, Some(Sse::Kms { .. })) {
        p.push(format!("{at}.sse_kms_key_id"), "only meaningful with sse = \"aws:kms\"");
    }
    let max_latency = v
        .max_latency
        .as_ref()
        .map(|_| p.duration(&format!("{at}.max_latency"), v.max_latency.as_ref(), Duration::ZERO));
    BackendValidateConfig { sse, max_latency }
}

/// `[gateway]`: listen address, region, TLS, clients, buckets and limits.
fn validate_gateway(
    p: &mut Problems,
    g: RawGateway,
    backends: &[&str],
    base_dir: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> GatewayConfig {
    let listen = p.socket_addr("gateway.listen", g.listen.as_ref(), "127.0.0.1:9000");
    let region = g.region.clone().unwrap_or_else(|| "us-east-1".into());
    if region.is_empty() || !region.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_') {
        p.push(
            "gateway.region",
            format!(
                "{region:?} is not a region (letters, digits, '-' and '_', e.g. \"us-east-1\"; clients sign with it)"
            ),
        );
    }
    let tls = validate_gateway_tls(p, &g, base_dir);
    if g.clients.is_empty() {
        p.push(
            "gateway.clients",
            "no clients configured; the gateway is never an open proxy (add [[gateway.clients]])",
        );
    }
    let clients =
        g.clients.iter().enumerate().filter_map(|(i, c)| validate_gateway_client(p, i, c, base_dir, env)).collect();
    let buckets =
        g.buckets.iter().enumerate().filter_map(|(i, b)| validate_gateway_bucket(p, i, b, backends)).collect();
    let limits = validate_gateway_limits(p, &g);
    GatewayConfig { listen, region, tls, clients, buckets, limits }
}

/// One `[[gateway.clients]]` entry; `None` when it has a problem.
fn validate_gateway_client(
    p: &mut Problems,
    i: usize,
    c: &RawGatewayClient,
    base_dir: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> Option<GatewayClient> {
    let at = format!("gateway.clients[{i}]");
    let id = p.required(&format!("{at}.access_key_id"), c.access_key_id.as_ref(), "the key id applications sign with");
    let secret = match (&c.secret_access_key_env, &c.secret_access_key_file) {
        (Some(var), None) => {
            if env(var).is_none_or(|v| v.is_empty()) {
                p.push(format!("{at}.secret_access_key_env"), format!("environment variable {var} is not set"));
            }
            Some(SecretRef::Env(var.clone()))
        }
        (None, Some(file)) => Some(SecretRef::File(base_dir.join(file))),
        (Some(_), Some(_)) => {
            p.push(&at, "give secret_access_key_env or secret_access_key_file, not both");
            None
        }
        (None, None) => {
            p.push(&at, "missing secret_access_key_env (or secret_access_key_file)");
            None
        }
    };
    Some(GatewayClient { access_key_id: id?.to_string(), secret: secret? })
}

/// One `[[gateway.buckets]]` entry over the configured `backends`; `None`
/// when it has a problem.
fn validate_gateway_bucket(
    p: &mut Problems,
    i: usize,
    b: &RawGatewayBucket,
    backends: &[&str],
) -> Option<GatewayBucket> {
    let at = format!("gateway.buckets[{i}]");
    let name = p.required(&format!("{at}.name"), b.name.as_ref(), "the bucket name applications use");
    if let Some(n) = name
        && let Err(e) = check_bucket_name(n)
    {
        p.push(format!("{at}.name"), e.to_string());
    }
    let mode = match b.mode.as_deref() {
        None | Some("active-passive") => Some(BucketMode::ActivePassive),
        Some("read-through") => Some(BucketMode::ReadThrough),
        Some("dual-write") => Some(BucketMode::DualWrite),
        Some(other) => {
            p.push(
                format!("{at}.mode"),
                format!("{other:?} is not a mode (active-passive, read-through or dual-write)"),
            );
            None
        }
    };
    let ack = match b.ack.as_deref() {
        None => Some(Ack::ActiveJournal),
        Some(a) if mode != Some(BucketMode::DualWrite) => {
            p.push(format!("{at}.ack"), format!("ack = {a:?} is only meaningful with mode = \"dual-write\""));
            None
        }
        Some("all") => Some(Ack::All),
        Some("active-journal") => Some(Ack::ActiveJournal),
        Some(other) => {
            p.push(format!("{at}.ack"), format!("{other:?} is not an ack policy (all or active-journal)"));
            None
        }
    };
    let spans: Vec<String> = match &b.backends {
        Some(list) if list.is_empty() => {
            p.push(
                format!("{at}.backends"),
                "empty: a bucket needs at least one backend (list them, or remove the key to span all)",
            );
            Vec::new()
        }
        Some(list) => {
            for (j, n) in list.iter().enumerate() {
                if !backends.contains(&n.as_str()) {
                    let known = if backends.is_empty() { "none".to_string() } else { backends.join(", ") };
                    p.push(
                        format!("{at}.backends[{j}]"),
                        format!("{n:?} is not a configured backend (configured: {known})"),
                    );
                } else if list[..j].contains(n) {
                    p.push(format!("{at}.backends[{j}]"), format!("{n:?} is listed twice"));
                }
            }
            list.clone()
        }
        None => backends.iter().map(|s| s.to_string()).collect(),
    };
    Some(GatewayBucket { name: name?.to_string(), mode: mode?, ack: ack?, backends: spans })
}

/// Deadlines, hedging and client limits of the gateway.
fn validate_gateway_limits(p: &mut Problems, g: &RawGateway) -> GatewayLimits {
    let d = GatewayLimits::default();
    let hedge_after = match g.hedge_after.as_deref().map(str::trim) {
        None => d.hedge_after,
        Some("off") => None,
        Some(_) => Some(p.duration("gateway.hedge_after", g.hedge_after.as_ref(), Duration::from_secs(1))),
    };
    let max_connections = match g.max_connections {
        None => d.max_connections,
        Some(0) => {
            p.push("gateway.max_connections", "must be at least 1");
            d.max_connections
        }
        Some(n) => usize::try_from(n).unwrap_or(usize::MAX),
    };
    GatewayLimits {
        backend_first_byte: p.duration(
            "gateway.backend_first_byte_timeout",
            g.backend_first_byte_timeout.as_ref(),
            d.backend_first_byte,
        ),
        backend_idle: p.duration("gateway.backend_idle_timeout", g.backend_idle_timeout.as_ref(), d.backend_idle),
        hedge_after,
        client_header: p.duration("gateway.client_header_timeout", g.client_header_timeout.as_ref(), d.client_header),
        client_min_body_rate: g.client_min_body_rate.unwrap_or(d.client_min_body_rate),
        max_connections,
    }
}

/// Two gateway buckets must not store into one backend bucket: a key of
/// one would be the same object as that key of the other (overwritten,
/// listed, deleted through the other bucket). They collide when they share a
/// backend, or when two of their backends name the same bucket on the same
/// endpoint. Refused, naming both buckets (and duplicate names too).
fn check_bucket_overlap(p: &mut Problems, buckets: &[GatewayBucket], backends: &[BackendConfig]) {
    let store = |name: &str| {
        backends
            .iter()
            .find(|b| b.name == name)
            .map(|b| (b.endpoint.to_string().to_ascii_lowercase(), b.bucket.clone(), b.name.clone()))
    };
    for (i, a) in buckets.iter().enumerate() {
        for (j, b) in buckets.iter().enumerate().skip(i + 1) {
            if a.name == b.name {
                p.push(format!("gateway.buckets[{j}].name"), format!("{:?} is also gateway.buckets[{i}]", b.name));
                continue;
            }
            let clash = a.backends.iter().filter_map(|n| store(n)).find_map(|(ea, ba, na)| {
                b.backends
                    .iter()
                    .filter_map(|n| store(n))
                    .find(|(eb, bb, _)| *eb == ea && *bb == ba)
                    .map(|(_, _, nb)| (na.clone(), nb, ba.clone()))
            });
            if let Some((na, nb, bucket)) = clash {
                let on = if na == nb { format!("backend {na:?}") } else { format!("backends {na:?} and {nb:?}") };
                p.push(
                    format!("gateway.buckets[{j}]"),
                    format!(
                        "gateway buckets {:?} and {:?} both store into bucket {bucket:?} of {on}: their keys would collide; \
                         give each gateway bucket its own backends (`backends = [...]`), each with its own bucket",
                        a.name, b.name
                    ),
                );
            }
        }
    }
}

/// `gateway.tls_cert_file` and `gateway.tls_key_file`: both or neither. The
/// files are read when the gateway is built (and by `cutover config check`).
fn validate_gateway_tls(p: &mut Problems, g: &RawGateway, base_dir: &Path) -> Option<GatewayTls> {
    let mut file = |key: &str, value: &Option<String>| match value.as_deref().map(str::trim) {
        Some("") => {
            p.push(format!("gateway.{key}"), "must not be empty (the path of a PEM file)");
            None
        }
        v => v.map(|f| base_dir.join(f)),
    };
    let cert = file("tls_cert_file", &g.tls_cert_file);
    let key = file("tls_key_file", &g.tls_key_file);
    match (cert, key, &g.tls_cert_file, &g.tls_key_file) {
        (Some(cert_file), Some(key_file), _, _) => Some(GatewayTls { cert_file, key_file }),
        (Some(_), None, _, None) => {
            p.push(
                "gateway.tls_key_file",
                "missing: tls_cert_file is set (give both tls_cert_file and tls_key_file, or neither)",
            );
            None
        }
        (None, Some(_), None, _) => {
            p.push(
                "gateway.tls_cert_file",
                "missing: tls_key_file is set (give both tls_cert_file and tls_key_file, or neither)",
            );
            None
        }
        _ => None,
    }
}

fn validate_signals(
    p: &mut Problems,
    s: RawSignals,
    backends: &[&str],
    primary: Option<&str>,
    base_dir: &Path,
) -> SignalsConfig {
    let url = |p: &mut Problems, at: &str, value: Option<&String>, hint: &str| {
        p.required(at, value, hint).and_then(|u| match HttpUrl::parse(u) {
            Ok(u) => Some(u),
            Err(e) => {
                p.push(at, e.to_string());
                None
            }
        })
    };
    let backend = |p: &mut Problems, at: &str, value: Option<&String>| -> Option<String> {
        match value {
            Some(b) if backends.contains(&b.as_str()) => Some(b.clone()),
            Some(b) => {
                p.push(at, format!("{b:?} is not a configured backend"));
                None
            }
            None => primary.map(str::to_string),
        }
    };
    let prometheus = s.prometheus.and_then(|r| {
        let at = "signals.prometheus";
        let u =
            url(p, &format!("{at}.url"), r.url.as_ref(), "the base URL of Prometheus, e.g. \"http://127.0.0.1:9090\"");
        if let Some(u) = &u
            && u.has_query()
        {
            p.push(format!("{at}.url"), format!("{u}: give the base URL of Prometheus, without a query"));
        }
        let query = p.required(&format!("{at}.query"), r.query.as_ref(), "a PromQL instant query").map(str::to_string);
        let threshold = match r.threshold {
            Some(t) if t.is_finite() => Some(t),
            Some(t) => {
                p.push(format!("{at}.threshold"), format!("{t} is not a finite number"));
                None
            }
            None => {
                p.push(format!("{at}.threshold"), "missing (the signal fires when the query's value is above it)");
                None
            }
        };
        let interval = p.duration(&format!("{at}.interval"), r.interval.as_ref(), Duration::from_secs(5));
        let timeout = p.duration(&format!("{at}.timeout"), r.timeout.as_ref(), Duration::from_secs(2));
        let backend = backend(p, &format!("{at}.backend"), r.backend.as_ref());
        let ca_file =
            ca_file(p, &format!("{at}.ca_file"), r.ca_file.as_ref(), u.as_ref().map(|u| u.endpoint.tls), base_dir);
        Some(PrometheusSignal {
            url: u?,
            query: query?,
            threshold: threshold?,
            interval,
            timeout,
            backend: backend?,
            ca_file,
        })
    });
    let statuspage = s.statuspage.and_then(|r| {
        let at = "signals.statuspage";
        let u = url(
            p,
            &format!("{at}.url"),
            r.url.as_ref(),
            "the status feed, e.g. \"https://status.example.com/api/v2/status.json\"",
        );
        let interval = p.duration(&format!("{at}.interval"), r.interval.as_ref(), Duration::from_secs(30));
        let timeout = p.duration(&format!("{at}.timeout"), r.timeout.as_ref(), Duration::from_secs(2));
        let backend = backend(p, &format!("{at}.backend"), r.backend.as_ref());
        let ca_file =
            ca_file(p, &format!("{at}.ca_file"), r.ca_file.as_ref(), u.as_ref().map(|u| u.endpoint.tls), base_dir);
        Some(StatuspageSignal { url: u?, interval, timeout, backend: backend?, ca_file })
    });
    SignalsConfig { prometheus, statuspage }
}

/// A `ca_file` key: a non-empty path, resolved against the configuration's
/// directory, only where the URL is `https` (`tls`: `None` when the URL is
/// itself invalid). The file is read later (`cutover config check`, `run`).
fn ca_file(p: &mut Problems, at: &str, value: Option<&String>, tls: Option<bool>, base_dir: &Path) -> Option<PathBuf> {
    let v = value?.trim();
    if v.is_empty() {
        p.push(at, "must not be empty (the path of a PEM file of CA certificates)");
        return None;
    }
    if tls == Some(false) {
        p.push(at, "the URL is http://, so no certificate is checked; use https:// or remove ca_file");
    }
    Some(base_dir.join(v))
}

/// A name that breaks the S3 bucket naming rules.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{name:?} is not a valid bucket name (3 to 63 lowercase letters, digits, '.' and '-', starting and ending with a letter or digit)"
)]
struct InvalidBucketName {
    name: String,
}

/// Checks the S3 bucket naming rules that every provider shares.
fn check_bucket_name(name: &str) -> Result<(), InvalidBucketName> {
    let ok_chars = name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.');
    let ok_ends =
        name.starts_with(|c: char| c.is_ascii_alphanumeric()) && name.ends_with(|c: char| c.is_ascii_alphanumeric());
    if !(3..=63).contains(&name.len()) || !ok_chars || !ok_ends {
        return Err(InvalidBucketName { name: name.to_string() });
    }
    Ok(())
}
