//! `[ha]`: each rule, through `load_str` as `config check` sees it.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::*;
use crate::config::{Config, load_str};
use crate::fixtures::TWO_BACKENDS as BACKENDS;

fn load(extra: &str) -> Result<Config, Vec<String>> {
    let text = format!("{extra}\n{BACKENDS}");
    let env = |k: &str| match k {
        "UNSET" => None,
        _ => Some("value".to_string()),
    };
    load_str(&text, "cutover.toml", Path::new("/etc/cutover"), &env)
        .map_err(|e| e.problems.iter().map(|p| p.to_string()).collect())
}

fn ha(extra: &str) -> HaConfig {
    load(&format!("[ha]\netcd = [\"http://127.0.0.1:2379\"]\nnode = \"ctl-a\"\n{extra}")).unwrap().ha.unwrap()
}

/// The problems of an `[ha]` table with one endpoint and a node, plus `extra`.
fn problems(extra: &str) -> Vec<String> {
    load(&format!("[ha]\netcd = [\"http://127.0.0.1:2379\"]\nnode = \"ctl-a\"\n{extra}")).unwrap_err()
}

#[test]
fn without_ha_nothing_changes() {
    assert_eq!(load("").unwrap().ha, None);
}

#[test]
fn the_contract_form_is_accepted_with_derived_timings() {
    let c = load(
        r#"
[api]
listen = "0.0.0.0:8080"

[ha]
etcd = ["http://127.0.0.1:2379", "http://127.0.0.1:22379", "http://127.0.0.1:32379"]
prefix = "/cutover/prod"
node = "ctl-a"
advertise_api = "http://10.0.0.5:8080"
lease_ttl = "6s"
"#,
    )
    .unwrap();
    let h = c.ha.unwrap();
    let ports: Vec<u16> = h.etcd.iter().map(|e| e.port).collect();
    assert_eq!(ports, [2379, 22379, 32379]);
    assert_eq!((h.prefix.as_str(), h.node.as_str()), ("/cutover/prod", "ctl-a"));
    assert_eq!(h.advertise_api.map(|e| e.to_string()).as_deref(), Some("http://10.0.0.5:8080"));
    assert_eq!(h.timing, HaTiming::default());
    assert_eq!(
        (h.timing.renew_interval, h.timing.request_timeout, h.timing.renew_deadline),
        (Duration::from_secs(2), Duration::from_secs(1), Duration::from_secs(4))
    );
    assert_eq!((h.ca_file, h.client_cert, h.auth), (None, None, None));
}

#[test]
fn defaults_derive_from_the_lease_and_can_be_overridden() {
    let h = ha("lease_ttl = \"12s\"");
    assert_eq!(h.timing, HaTiming::derived(Duration::from_secs(12)));
    assert_eq!(h.timing.renew_deadline, Duration::from_secs(8));
    assert_eq!(h.prefix, "/cutover");
    let h = ha("lease_ttl = \"10s\"\nrenew_interval = \"1s\"\nrequest_timeout = \"500ms\"\nrenew_deadline = \"9s\"");
    assert_eq!(
        (h.timing.lease_ttl, h.timing.renew_interval, h.timing.request_timeout, h.timing.renew_deadline),
        (Duration::from_secs(10), Duration::from_secs(1), Duration::from_millis(500), Duration::from_secs(9))
    );
    // Only one overridden: the others still derive from the lease.
    let h = ha("renew_interval = \"1s\"");
    assert_eq!(h.timing.renew_interval, Duration::from_secs(1));
    assert_eq!((h.timing.request_timeout, h.timing.renew_deadline), (Duration::from_secs(1), Duration::from_secs(4)));
}

#[test]
fn the_timing_rule_is_enforced_naming_the_four_values() {
    let e = problems("renew_interval = \"3s\"");
    assert_eq!(
        e,
        ["ha: renew_interval (3s) + 2 × request_timeout (1s) ≤ renew_deadline (4s) < lease_ttl (6s) \
          must hold: renew_interval + 2 × request_timeout is 3s + 2 × 1s = 5s, more than renew_deadline 4s"]
    );
    let e = problems("renew_deadline = \"6s\"");
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(e[0].contains("renew_deadline is not below lease_ttl (6s ≥ 6s)"), "{e:?}");
    let e = problems("lease_ttl = \"2s\"\nrequest_timeout = \"1s\"");
    assert!(e[0].contains("lease_ttl (2s)") && e[0].contains("request_timeout (1s)"), "{e:?}");
    let e = problems("lease_ttl = \"2500ms\"");
    assert_eq!(e, ["ha.lease_ttl: 2500ms is not a whole number of seconds (etcd counts leases in seconds)"]);
    let e = problems("lease_ttl = \"0s\"\nrenew_interval = \"soon\"");
    assert!(e.iter().any(|p| p.contains("ha.lease_ttl: \"0s\" must be greater than zero")), "{e:?}");
    assert!(e.iter().any(|p| p.contains("ha.renew_interval: \"soon\" is not a duration")), "{e:?}");
}

#[test]
fn etcd_needs_at_least_one_valid_endpoint() {
    let e = load("[ha]\nnode = \"a\"").unwrap_err();
    assert_eq!(e, ["ha.etcd: missing (the etcd client URLs, e.g. [\"http://127.0.0.1:2379\"])"]);
    let e = load("[ha]\nnode = \"a\"\netcd = []").unwrap_err();
    assert!(e[0].starts_with("ha.etcd: empty: give at least one"), "{e:?}");
    let e = load(
        "[ha]\nnode = \"a\"\netcd = [\"https://etcd-1:2379\", \"etcd-2:2379\", \"http://u:p@etcd-3:2379\", \
         \"http://etcd-4:2379/v3\", \"https://etcd-1:2379/\"]",
    )
    .unwrap_err();
    assert_eq!(e.len(), 4, "{e:?}");
    assert_eq!(e[0], "ha.etcd[1]: \"etcd-2:2379\" is not an http(s) URL (write e.g. \"http://127.0.0.1:2379\")");
    assert_eq!(e[1], "ha.etcd[2]: credentials do not belong in the URL; use username and password_env");
    assert!(e[2].contains("ha.etcd[3]: ") && e[2].contains("an etcd endpoint has no path"), "{e:?}");
    assert!(e[3].contains("ha.etcd[4]: \"https://etcd-1:2379/\" is listed twice"), "{e:?}");
}

#[test]
fn the_prefix_starts_with_a_slash_and_has_no_trailing_or_double_slash() {
    assert_eq!(ha("prefix = \"/a/b-c\"").prefix, "/a/b-c");
    for bad in ["cutover", "/cutover/", "/", "/a//b", "", "/a b"] {
        let e = problems(&format!("prefix = {bad:?}"));
        assert_eq!(e.len(), 1, "{bad:?}: {e:?}");
        assert!(e[0].starts_with(&format!("ha.prefix: {bad:?} must start with '/'")), "{e:?}");
    }
}

#[test]
fn the_node_defaults_to_the_host_name() {
    let h = load("[ha]\netcd = [\"http://127.0.0.1:2379\"]").map(|c| c.ha.unwrap());
    match super::host_name().map(|h| h.trim().to_string()) {
        Some(name) if !name.is_empty() => assert_eq!(h.unwrap().node, name),
        _ => assert!(h.is_err()),
    }
    let raw = || RawHa { etcd: Some(vec!["http://127.0.0.1:2379".into()]), ..RawHa::default() };
    let run = |host: Option<&str>| {
        let mut p = Problems(Vec::new());
        let host = host.map(str::to_string);
        let out = validate_ha(&mut p, raw(), None, Path::new("/"), &|_| None, &|| host.clone());
        (out.map(|h| h.node), p.0.iter().map(|p| p.to_string()).collect::<Vec<_>>())
    };
    assert_eq!(run(Some("db-7.example\n")), (Some("db-7.example".into()), vec![]));
    assert_eq!(
        run(None),
        (None, vec!["ha.node: missing, and the host name cannot be read (give this node a name)".to_string()])
    );
    let (node, e) = run(Some("bad host"));
    assert_eq!(node, None);
    assert!(e[0].starts_with("ha.node: the host name \"bad host\" is not a node name"), "{e:?}");
    let e = load("[ha]\netcd = [\"http://127.0.0.1:2379\"]\nnode = \"a/b\"").unwrap_err();
    assert!(e[0].starts_with("ha.node: \"a/b\" is not a node name"), "{e:?}");
}

#[test]
fn advertise_api_is_a_reachable_base_url_or_comes_from_the_api_listener() {
    let with_api = |listen: &str| {
        let c = load(&format!("[api]\nlisten = {listen:?}\n[ha]\netcd = [\"http://127.0.0.1:2379\"]\nnode = \"a\""))
            .unwrap();
        c.ha.unwrap().advertise_api.map(|e| e.to_string())
    };
    assert_eq!(with_api("10.0.0.5:8080").as_deref(), Some("http://10.0.0.5:8080"));
    assert_eq!(with_api("0.0.0.0:8080"), None);
    assert_eq!(ha("").advertise_api, None);
    assert_eq!(ha("advertise_api = \"https://ctl-a.internal:8443\"").advertise_api.unwrap().port, 8443);
    let e = problems("advertise_api = \"http://0.0.0.0:8080\"");
    assert!(
        e[0].contains("ha.advertise_api: \"http://0.0.0.0:8080\" is not an address other nodes can reach"),
        "{e:?}"
    );
    let e = problems("advertise_api = \"http://h:8080/v1\"");
    assert!(e[0].contains("ha.advertise_api: \"http://h:8080/v1\": give the API's base URL, without a path"), "{e:?}");
    let e = problems("advertise_api = \"h:8080\"");
    assert!(e[0].contains("ha.advertise_api: \"h:8080\" is not an http(s) URL"), "{e:?}");
}

#[test]
fn tls_files_resolve_come_in_pairs_and_need_https() {
    let https = "[ha]\netcd = [\"https://127.0.0.1:2379\"]\nnode = \"a\"\n";
    let h = load(&format!("{https}ca_file = \"tls/ca.pem\"\ncert_file = \"tls/c.pem\"\nkey_file = \"/k.pem\""))
        .unwrap()
        .ha
        .unwrap();
    assert_eq!(h.ca_file, Some(PathBuf::from("/etc/cutover/tls/ca.pem")));
    let cert = h.client_cert.unwrap();
    assert_eq!((cert.cert_file, cert.key_file), (PathBuf::from("/etc/cutover/tls/c.pem"), PathBuf::from("/k.pem")));
    let e = load(&format!("{https}cert_file = \"c.pem\"")).unwrap_err();
    assert_eq!(e, ["ha.key_file: missing: cert_file is set (give both cert_file and key_file, or neither)"]);
    let e = load(&format!("{https}key_file = \"k.pem\"")).unwrap_err();
    assert_eq!(e, ["ha.cert_file: missing: key_file is set (give both cert_file and key_file, or neither)"]);
    let e = load(&format!("{https}ca_file = \"\"")).unwrap_err();
    assert_eq!(e, ["ha.ca_file: must not be empty (the path of a PEM file)"]);
    let e = problems("ca_file = \"ca.pem\"");
    assert!(e[0].starts_with("ha.ca_file: every etcd endpoint is http://"), "{e:?}");
}

#[test]
fn the_client_files_are_listed_for_config_check() {
    let c = load(
        "[ha]\netcd = [\"https://127.0.0.1:2379\"]\nnode = \"a\"\nca_file = \"ca.pem\"\n\
         cert_file = \"c.pem\"\nkey_file = \"k.pem\"",
    )
    .unwrap();
    let ca: Vec<String> = c.ca_files().into_iter().map(|(k, p)| format!("{k}={}", p.display())).collect();
    assert_eq!(ca, ["ha.ca_file=/etc/cutover/ca.pem"]);
    let files: Vec<String> = c.client_cert_files().into_iter().map(|(k, p)| format!("{k}={}", p.display())).collect();
    assert_eq!(files, ["ha.cert_file=/etc/cutover/c.pem", "ha.key_file=/etc/cutover/k.pem"]);
}

#[test]
fn a_username_needs_its_password_variable() {
    let h = ha("username = \"cutover\"\npassword_env = \"ETCD_PASSWORD\"");
    let auth = h.auth.unwrap();
    assert_eq!((auth.username.as_str(), auth.password_env.as_str()), ("cutover", "ETCD_PASSWORD"));
    let e = problems("username = \"cutover\"");
    assert_eq!(
        e,
        ["ha.password_env: missing: username is set \
          (name the environment variable that holds its password)"]
    );
    let e = problems("password_env = \"ETCD_PASSWORD\"");
    assert!(e[0].starts_with("ha.username: missing: password_env is set"), "{e:?}");
    let e = problems("username = \"cutover\"\npassword_env = \"UNSET\"");
    assert_eq!(e, ["ha.password_env: environment variable UNSET is not set"]);
}

#[test]
fn unknown_keys_get_did_you_mean() {
    let e = problems("lease_tll = \"6s\"");
    assert_eq!(e, ["ha.lease_tll: unknown key at line 4 (did you mean \"lease_ttl\"?)"]);
    let e = load("[ha]\netcd = [\"http://127.0.0.1:2379\"]\nnode = \"a\"\npasword_env = \"P\"").unwrap_err();
    assert_eq!(e, ["ha.pasword_env: unknown key at line 4 (did you mean \"password_env\"?)"]);
}
