//! Validation of `[ha]` (see [`HaConfig`]).

use std::path::Path;
use std::time::Duration;

use super::Problems;
use crate::config::ApiConfig;
use crate::config::ha::{DEFAULT_LEASE_TTL, DEFAULT_PREFIX, HaAuth, HaClientCert, HaConfig, HaTiming};
use crate::config::raw::RawHa;
use crate::duration::format_duration;
use crate::endpoint::{Endpoint, EndpointError};

#[cfg(test)]
mod tests;

/// The longest `node` name.
const MAX_NODE: usize = 64;

/// Validates `[ha]`. `host_name` gives the default of `node`.
pub(super) fn validate_ha(
    p: &mut Problems,
    h: RawHa,
    api: Option<&ApiConfig>,
    base_dir: &Path,
    env: &dyn Fn(&str) -> Option<String>,
    host_name: &dyn Fn() -> Option<String>,
) -> Option<HaConfig> {
    let etcd = etcd_endpoints(p, h.etcd.as_deref());
    let prefix = h.prefix.clone().unwrap_or_else(|| DEFAULT_PREFIX.into());
    if !prefix.starts_with('/') || prefix.ends_with('/') || prefix.contains("//") || has_blank_or_control(&prefix) {
        p.push(
            "ha.prefix",
            format!(
                "{prefix:?} must start with '/', not end with '/', and have no '//' or blanks (e.g. \"/cutover/prod\")"
            ),
        );
    }
    let node = node(p, h.node.as_deref(), host_name);
    let advertise_api = advertise_api(p, h.advertise_api.as_deref(), api);
    let timing = timing(p, &h);
    let https = etcd.iter().any(|e| e.tls);
    let file = |p: &mut Problems, key: &str, value: &Option<String>| -> Option<std::path::PathBuf> {
        let v = value.as_deref()?.trim();
        if v.is_empty() {
            p.push(format!("ha.{key}"), "must not be empty (the path of a PEM file)");
            return None;
        }
        if !etcd.is_empty() && !https {
            p.push(
                format!("ha.{key}"),
                "every etcd endpoint is http://, so no TLS is used; use https:// endpoints or remove it",
            );
        }
        Some(base_dir.join(v))
    };
    let ca_file = file(p, "ca_file", &h.ca_file);
    let client_cert = match (file(p, "cert_file", &h.cert_file), file(p, "key_file", &h.key_file)) {
        (Some(cert_file), Some(key_file)) => Some(HaClientCert { cert_file, key_file }),
        (Some(_), None) if h.key_file.is_none() => {
            p.push("ha.key_file", "missing: cert_file is set (give both cert_file and key_file, or neither)");
            None
        }
        (None, Some(_)) if h.cert_file.is_none() => {
            p.push("ha.cert_file", "missing: key_file is set (give both cert_file and key_file, or neither)");
            None
        }
        _ => None,
    };
    let auth = auth(p, &h, env);
    Some(HaConfig { etcd, prefix, node: node?, advertise_api, timing, ca_file, client_cert, auth })
}

fn has_blank_or_control(s: &str) -> bool {
    s.chars().any(|c| c.is_whitespace() || c.is_control())
}

/// `etcd`: at least one `http(s)://host:port`, none twice.
fn etcd_endpoints(p: &mut Problems, list: Option<&[String]>) -> Vec<Endpoint> {
    let Some(list) = list else {
        p.push("ha.etcd", "missing (the etcd client URLs, e.g. [\"http://127.0.0.1:2379\"])");
        return Vec::new();
    };
    if list.is_empty() {
        p.push("ha.etcd", "empty: give at least one etcd client URL (e.g. [\"http://127.0.0.1:2379\"])");
    }
    let mut out: Vec<Endpoint> = Vec::new();
    for (i, text) in list.iter().enumerate() {
        let at = format!("ha.etcd[{i}]");
        match Endpoint::parse(text) {
            Ok(e) if out.contains(&e) => p.push(at, format!("{text:?} is listed twice")),
            Ok(e) => out.push(e),
            Err(EndpointError::HasPath { .. }) => p.push(
                at,
                format!("{text:?}: an etcd endpoint has no path or query (write e.g. \"http://127.0.0.1:2379\")"),
            ),
            // The URL is not repeated: it holds a password.
            Err(EndpointError::Credentials { .. }) => {
                p.push(at, "credentials do not belong in the URL; use username and password_env")
            }
            Err(EndpointError::NotEndpoint { .. }) => {
                p.push(at, format!("{text:?} is not an http(s) URL (write e.g. \"http://127.0.0.1:2379\")"))
            }
            Err(e) => p.push(at, e.to_string()),
        }
    }
    out
}

/// `node`, or the host name: 1 to 64 letters, digits, `.`, `_` or `-`.
fn node(p: &mut Problems, value: Option<&str>, host_name: &dyn Fn() -> Option<String>) -> Option<String> {
    let (name, from_host) = match value {
        Some(n) => (n.to_string(), false),
        None => match host_name().map(|h| h.trim().to_string()).filter(|h| !h.is_empty()) {
            Some(h) => (h, true),
            None => {
                p.push("ha.node", "missing, and the host name cannot be read (give this node a name)");
                return None;
            }
        },
    };
    let valid = (1..=MAX_NODE).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if !valid {
        let whose = if from_host { format!("the host name {name:?}") } else { format!("{name:?}") };
        p.push(
            "ha.node",
            format!("{whose} is not a node name (1 to {MAX_NODE} letters, digits, '.', '_' or '-'); set node"),
        );
        return None;
    }
    Some(name)
}

/// `advertise_api`, or `http://` + `[api] listen` when that is an address
/// another host can reach.
fn advertise_api(p: &mut Problems, value: Option<&str>, api: Option<&ApiConfig>) -> Option<Endpoint> {
    let Some(text) = value else {
        let listen = api?.listen;
        return (!listen.ip().is_unspecified()).then(|| Endpoint {
            tls: false,
            host: listen.ip().to_string(),
            port: listen.port(),
        });
    };
    match Endpoint::parse(text) {
        Ok(e) if e.host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_unspecified()) => {
            p.push(
                "ha.advertise_api",
                format!("{text:?} is not an address other nodes can reach (give this host's address or name)"),
            );
            None
        }
        Ok(e) => Some(e),
        Err(EndpointError::HasPath { .. }) => {
            p.push(
                "ha.advertise_api",
                format!("{text:?}: give the API's base URL, without a path (e.g. \"http://10.0.0.5:8080\")"),
            );
            None
        }
        Err(EndpointError::NotEndpoint { .. }) => {
            p.push("ha.advertise_api", format!("{text:?} is not an http(s) URL (write e.g. \"http://10.0.0.5:8080\")"));
            None
        }
        Err(e) => {
            p.push("ha.advertise_api", e.to_string());
            None
        }
    }
}

/// `lease_ttl` and the three timings derived from it unless given, checked
/// against `renew_interval + 2 × request_timeout ≤ renew_deadline < lease_ttl`.
fn timing(p: &mut Problems, h: &RawHa) -> HaTiming {
    let lease_ttl = p.duration("ha.lease_ttl", h.lease_ttl.as_ref(), DEFAULT_LEASE_TTL);
    if lease_ttl.subsec_nanos() != 0 {
        p.push(
            "ha.lease_ttl",
            format!("{} is not a whole number of seconds (etcd counts leases in seconds)", format_duration(lease_ttl)),
        );
    }
    let d = HaTiming::derived(lease_ttl);
    let t = HaTiming {
        lease_ttl,
        renew_interval: p.duration("ha.renew_interval", h.renew_interval.as_ref(), d.renew_interval),
        request_timeout: p.duration("ha.request_timeout", h.request_timeout.as_ref(), d.request_timeout),
        renew_deadline: p.duration("ha.renew_deadline", h.renew_deadline.as_ref(), d.renew_deadline),
    };
    if !t.is_safe() {
        let f = |d: Duration| format_duration(d);
        let needed = t.renew_interval.saturating_add(t.request_timeout.saturating_mul(2));
        let why = if t.renew_deadline >= t.lease_ttl {
            format!("renew_deadline is not below lease_ttl ({} ≥ {})", f(t.renew_deadline), f(t.lease_ttl))
        } else {
            format!(
                "renew_interval + 2 × request_timeout is {} + 2 × {} = {}, more than renew_deadline {}",
                f(t.renew_interval),
                f(t.request_timeout),
                f(needed),
                f(t.renew_deadline)
            )
        };
        p.push(
            "ha",
            format!(
                "renew_interval ({}) + 2 × request_timeout ({}) ≤ renew_deadline ({}) < lease_ttl ({}) must hold: {why}",
                f(t.renew_interval),
                f(t.request_timeout),
                f(t.renew_deadline),
                f(t.lease_ttl)
            ),
        );
    }
    t
}

/// `username` and `password_env`: both or neither; the variable is set.
fn auth(p: &mut Problems, h: &RawHa, env: &dyn Fn(&str) -> Option<String>) -> Option<HaAuth> {
    match (h.username.as_deref(), h.password_env.as_deref()) {
        (None, None) => None,
        (Some(u), _) if u.trim().is_empty() => {
            p.push("ha.username", "must not be empty (the etcd user)");
            None
        }
        (Some(_), None) => {
            p.push(
                "ha.password_env",
                "missing: username is set (name the environment variable that holds its password)",
            );
            None
        }
        (None, Some(_)) => {
            p.push("ha.username", "missing: password_env is set (give the etcd user it is the password of)");
            None
        }
        (Some(_), Some(var)) if var.trim().is_empty() => {
            p.push("ha.password_env", "must name an environment variable");
            None
        }
        (Some(username), Some(var)) => {
            if env(var).is_none_or(|v| v.is_empty()) {
                p.push("ha.password_env", format!("environment variable {var} is not set"));
            }
            Some(HaAuth { username: username.to_string(), password_env: var.to_string() })
        }
    }
}

/// The host name, from `/proc/sys/kernel/hostname` (Linux). `None` when
/// it cannot be read.
pub(super) fn host_name() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/hostname").ok()
}
