//! Configuration edge cases (issue 12, point 11) and `ca_file` (point 12):
//! each gets a problem with its path and a hint, all at once, never a panic.

use std::path::{Path, PathBuf};

use super::*;

use crate::fixtures::TWO_BACKENDS;

fn problems(text: &str) -> Vec<String> {
    let env = |_: &str| Some("set".to_string());
    match load_str(text, "cutover.toml", Path::new("/etc/cutover"), &env) {
        Ok(_) => Vec::new(),
        Err(e) => e.problems.iter().map(|p| p.to_string()).collect(),
    }
}

fn load(text: &str) -> Config {
    let env = |_: &str| Some("set".to_string());
    load_str(text, "cutover.toml", Path::new("/etc/cutover"), &env).unwrap()
}

const GATEWAY: &str = "[gateway]\n[[gateway.clients]]\naccess_key_id = \"APP\"\nsecret_access_key_env = \"GW\"\n";

#[test]
fn empty_backends_is_a_config_error() {
    let p =
        problems(&format!("backends = []\n{GATEWAY}[[gateway.buckets]]\nname = \"app\"\nbackends = [\"primary\"]\n"));
    assert!(p.iter().any(|m| m.starts_with("backends: no backends configured")), "{p:?}");
    assert!(
        p.iter().any(|m| m
            .contains("gateway.buckets[0].backends[0]: \"primary\" is not a configured backend (configured: none)")),
        "{p:?}"
    );
    assert_eq!(
        problems("").first().map(String::as_str),
        Some("backends: no backends configured (add at least one [[backends]] table)")
    );
}

#[test]
fn gateway_bucket_without_backends_is_a_config_error() {
    let text = format!(
        "{TWO_BACKENDS}\n{GATEWAY}[[gateway.buckets]]\nname = \"app\"\nbackends = []\n\
         [[gateway.buckets]]\nname = \"logs\"\nbackends = [\"primary\", \"tertiary\", \"primary\"]\n\
         [[gateway.buckets]]\nname = \"app\"\n"
    );
    let p = problems(&text);
    assert_eq!(
        p,
        [
            "gateway.buckets[0].backends: empty: a bucket needs at least one backend (list them, or remove the key to span all)",
            "gateway.buckets[1].backends[1]: \"tertiary\" is not a configured backend (configured: primary, secondary)",
            "gateway.buckets[1].backends[2]: \"primary\" is listed twice",
            "gateway.buckets[2].name: \"app\" is also gateway.buckets[0]",
            "gateway.buckets[2]: gateway buckets \"logs\" and \"app\" both store into bucket \"app-data\" of backend \"primary\": their keys would collide; give each gateway bucket its own backends (`backends = [...]`), each with its own bucket",
        ],
        "{p:?}"
    );
}

#[test]
fn gateway_region_that_cannot_be_a_credential_scope_is_a_config_error() {
    for bad in ["", "us east 1", "eu/west"] {
        let p = problems(&format!(
            "{TWO_BACKENDS}\n{}",
            GATEWAY.replace("[gateway]\n", &format!("[gateway]\nregion = {bad:?}\n"))
        ));
        assert!(p.iter().any(|m| m.starts_with("gateway.region:")), "{bad:?}: {p:?}");
    }
}

#[test]
fn ca_files_resolve_against_the_config_directory() {
    let text = TWO_BACKENDS.replace(
        "endpoint = \"http://127.0.0.1:3900\"",
        "endpoint = \"https://127.0.0.1:3900\"\nca_file = \"tls/internal-ca.pem\"",
    ) + "[signals.prometheus]\nurl = \"https://prom.internal:9090\"\nquery = \"up\"\nthreshold = 1\nca_file = \"/srv/ca.pem\"\n\
         [signals.statuspage]\nurl = \"https://status.internal/api/v2/status.json\"\nca_file = \"ca.pem\"\n";
    let c = load(&text);
    assert_eq!(c.backends[0].ca_file.as_deref(), Some(Path::new("/etc/cutover/tls/internal-ca.pem")));
    assert_eq!(c.backends[1].ca_file, None);
    let files: Vec<(String, PathBuf)> = c.ca_files().into_iter().map(|(k, p)| (k, p.to_path_buf())).collect();
    assert_eq!(
        files,
        [
            ("backends[0].ca_file".to_string(), PathBuf::from("/etc/cutover/tls/internal-ca.pem")),
            ("signals.prometheus.ca_file".to_string(), PathBuf::from("/srv/ca.pem")),
            ("signals.statuspage.ca_file".to_string(), PathBuf::from("/etc/cutover/ca.pem")),
        ]
    );
}

#[test]
fn ca_file_on_plain_http_or_empty_is_a_config_error() {
    let text = TWO_BACKENDS.replace("role = \"primary\"", "role = \"primary\"\nca_file = \"ca.pem\"")
        + "[signals.prometheus]\nurl = \"http://127.0.0.1:9090\"\nquery = \"up\"\nthreshold = 1\nca_file = \" \"\n";
    let p = problems(&text);
    assert_eq!(
        p,
        [
            "backends[0].ca_file: the URL is http://, so no certificate is checked; use https:// or remove ca_file",
            "signals.prometheus.ca_file: must not be empty (the path of a PEM file of CA certificates)",
        ],
        "{p:?}"
    );
}

/// Broken files of every kind get problems, never a panic.
#[test]
fn hostile_configs_are_problems_not_panics() {
    let cases: &[&str] = &[
        "",
        "[[backends]]\nname = 5\n",
        "backends = \"primary\"\n",
        "[probe]\ninterval = -1\n",
        "[probe]\ninterval = \"-1s\"\nobject_size = -5\n",
        "[probe]\ninterval = \"99999999999999999999999s\"\ntimeout = \"18446744073709551615d\"\n",
        "[probe]\nobject_size = 18446744073709551615\n",
        "[detect]\nwindow = 9223372036854775807\nfailures = 4294967296\nerror_rate = nan\n",
        "[verify]\nquorum = 9223372036854775807\n",
        "[objectives]\nrpo = -9223372036854775808\n",
        "[unknown]\nx = 1\n[[backends]]\nbogus = true\n",
        "[gateway]\nlisten = \"999.0.0.1:99999\"\n[[gateway.buckets]]\nbackends = [1, 2]\n",
        "\u{feff}[state]\npath = \"\u{0}\"\n",
        "[[drills]]\ncron = \"99 99 99 99 99\"\nruns = 0\n",
        "a = [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]",
        "é = 1\n\"\\u0000\" = 2\n",
    ];
    for text in cases {
        let p = problems(&format!("{text}\n"));
        assert!(!p.is_empty(), "{text:?} was accepted");
        assert!(p.iter().all(|m| !m.is_empty() && m.contains(':')), "{text:?}: {p:?}");
    }
}

#[test]
fn backends_kubernetes_names_the_credentials_secret() {
    let text = format!("{TWO_BACKENDS}[backends.kubernetes]\ncredentials_secret = \"secondary-creds\"\n");
    let config = load(&text);
    assert_eq!(config.backends[0].kubernetes, None);
    let k = config.backends[1].kubernetes.as_ref().unwrap();
    assert_eq!(k.credentials_secret, "secondary-creds");
    let p = problems(&format!("{TWO_BACKENDS}[backends.kubernetes]\ncredentials_secret = \"Not_A_Name\"\n"));
    assert!(
        p.iter().any(|m| m.contains("backends[1].kubernetes.credentials_secret: \"Not_A_Name\" is not a Secret name")),
        "{p:?}"
    );
    let p = problems(&format!("{TWO_BACKENDS}[backends.kubernetes]\n"));
    assert!(p.iter().any(|m| m.contains("backends[1].kubernetes.credentials_secret: missing")), "{p:?}");
}
