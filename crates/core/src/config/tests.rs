//! Validation of the `[signals]`, `[detect]` and `[gateway]` TLS settings:
//! defaults, and every problem with its path.

use std::path::Path;
use std::time::Duration;

use super::*;

use crate::fixtures::TWO_BACKENDS as BACKENDS;

fn load(extra: &str) -> Result<Config, Vec<String>> {
    let text = format!("{extra}\n{BACKENDS}");
    let env = |_: &str| Some("set".to_string());
    load_str(&text, "cutover.toml", Path::new("/etc/cutover"), &env)
        .map_err(|e| e.problems.iter().map(|p| p.to_string()).collect())
}

#[test]
fn signals_are_optional() {
    let c = load("").unwrap();
    assert!(c.signals.prometheus.is_none() && c.signals.statuspage.is_none());
}

#[test]
fn signals_take_their_defaults() {
    let c = load(
        r#"
[signals.prometheus]
url = "http://127.0.0.1:9090"
query = 'sum(rate(s3_errors_total[1m]))'
threshold = 0.05
[signals.statuspage]
url = "https://status.example.com/api/v2/status.json"
"#,
    )
    .unwrap();
    let p = c.signals.prometheus.unwrap();
    assert_eq!(p.url.to_string(), "http://127.0.0.1:9090/");
    assert_eq!((p.threshold, p.interval, p.timeout), (0.05, Duration::from_secs(5), Duration::from_secs(2)));
    assert_eq!(p.backend, "primary");
    let s = c.signals.statuspage.unwrap();
    assert_eq!(s.url.target, "/api/v2/status.json");
    assert_eq!(
        (s.interval, s.timeout, s.backend.as_str()),
        (Duration::from_secs(30), Duration::from_secs(2), "primary")
    );
}

#[test]
fn signals_name_every_problem_with_its_path() {
    let problems = load(
        r#"
[signals.prometheus]
url = "127.0.0.1:9090"
threshold = inf
interval = "soon"
backend = "tertiary"
[signals.statuspage]
timeout = "0s"
colour = "green"
[signals.datadog]
url = "http://x"
"#,
    )
    .unwrap_err();
    let expect = [
        "signals.statuspage.colour: unknown key",
        "signals.datadog: unknown key",
        "signals.prometheus.url: \"127.0.0.1:9090\" is not an http(s) URL",
        "signals.prometheus.query: missing",
        "signals.prometheus.threshold: inf is not a finite number",
        "signals.prometheus.interval:",
        "signals.prometheus.backend: \"tertiary\" is not a configured backend",
        "signals.statuspage.url: missing",
        "signals.statuspage.timeout: \"0s\" must be greater than zero",
    ];
    for e in expect {
        assert!(problems.iter().any(|p| p.starts_with(e)), "no problem starting with {e:?} in {problems:#?}");
    }
    assert_eq!(problems.len(), expect.len(), "{problems:#?}");
}

#[test]
fn a_prometheus_url_is_a_base_url() {
    let problems = load(
        r#"
[signals.prometheus]
url = "http://127.0.0.1:9090/api/v1/query?query=up"
query = "up"
threshold = 1
"#,
    )
    .unwrap_err();
    assert!(
        problems[0]
            .starts_with("signals.prometheus.url: http://127.0.0.1:9090/api/v1/query?query=up: give the base URL")
    );
}

#[test]
fn p95_latency_is_parsed_when_set() {
    assert_eq!(load("").unwrap().detect.p95_latency, None);
    let c = load("[detect]\np95_latency = \"400ms\"").unwrap();
    assert_eq!(c.detect.p95_latency, Some(Duration::from_millis(400)));
    let problems = load("[detect]\np95_latency = \"fast\"").unwrap_err();
    assert!(problems[0].starts_with("detect.p95_latency:"), "{problems:?}");
}

#[test]
fn gateway_tls_is_off_unless_configured_and_its_paths_resolve_like_the_others() {
    let c = load("[gateway]\n[[gateway.clients]]\naccess_key_id = \"APP\"\nsecret_access_key_env = \"GW\"\n").unwrap();
    assert_eq!(c.gateway.unwrap().tls, None);
    let c = load(
        "[gateway]\ntls_cert_file = \"tls/fullchain.pem\"\ntls_key_file = \"/srv/tls/key.pem\"\n\
         [[gateway.clients]]\naccess_key_id = \"APP\"\nsecret_access_key_file = \"secrets/app\"\n",
    )
    .unwrap();
    let gw = c.gateway.unwrap();
    let tls = gw.tls.unwrap();
    assert_eq!(tls.cert_file, Path::new("/etc/cutover/tls/fullchain.pem"));
    assert_eq!(tls.key_file, Path::new("/srv/tls/key.pem"));
    assert_eq!(gw.clients[0].secret, SecretRef::File("/etc/cutover/secrets/app".into()), "resolved the same way");
}

#[test]
fn gateway_tls_needs_both_files() {
    let tls = |keys: &str| {
        load(&format!(
            "[gateway]\n{keys}\n[[gateway.clients]]\naccess_key_id = \"APP\"\nsecret_access_key_env = \"GW\"\n"
        ))
    };
    let problems = tls("tls_cert_file = \"cert.pem\"").unwrap_err();
    assert_eq!(
        problems,
        ["gateway.tls_key_file: missing: tls_cert_file is set (give both tls_cert_file and tls_key_file, or neither)"]
    );
    let problems = tls("tls_key_file = \"key.pem\"").unwrap_err();
    assert_eq!(
        problems,
        ["gateway.tls_cert_file: missing: tls_key_file is set (give both tls_cert_file and tls_key_file, or neither)"]
    );
    let problems = tls("tls_cert_file = \"\"\ntls_key_file = \"key.pem\"").unwrap_err();
    assert_eq!(problems, ["gateway.tls_cert_file: must not be empty (the path of a PEM file)"]);
    let problems = tls("tls_certfile = \"cert.pem\"").unwrap_err();
    assert!(problems[0].starts_with("gateway.tls_certfile: unknown key"), "{problems:?}");
}

const SHA: &str = "6b86b273ff34fce19d6b804eff5a3f5747ada4eaa22f1d49c01e52ddb7875b4b";

/// Regression: any agent token could post evidence for any vantage, so one
/// leaked agent token could outvote the whole quorum.
#[test]
fn an_agent_token_is_bound_to_one_valid_vantage_and_only_agents_have_one() {
    let token = |role: &str, vantage: &str| {
        format!("[[api.tokens]]\nname = \"t-{role}\"\nrole = \"{role}\"\nsha256 = \"{SHA}\"\n{vantage}")
    };
    let c =
        load(&format!("[api]\nmetrics_require_token = true\n{}", token("agent", "vantage = \"eu-west\"\n"))).unwrap();
    let api = c.api.unwrap();
    assert!(api.metrics_require_token);
    assert_eq!(api.tokens[0].vantage.as_deref(), Some("eu-west"));

    let e = load(&format!("[api]\n{}", token("agent", ""))).unwrap_err().join("\n");
    assert!(e.contains("api.tokens[0].vantage: missing"), "{e}");
    for bad in ["local", "", "eu west", &"x".repeat(65)] {
        let e = load(&format!("[api]\n{}", token("agent", &format!("vantage = {bad:?}\n")))).unwrap_err().join("\n");
        assert!(e.contains("api.tokens[0].vantage:") && e.contains("is not a vantage name"), "{bad}: {e}");
    }
    let e = load(&format!("[api]\n{}", token("viewer", "vantage = \"eu\"\n"))).unwrap_err().join("\n");
    assert!(e.contains("api.tokens[0].vantage: only an agent token has a vantage"), "{e}");
    assert!(!load("[api]\n").unwrap().api.unwrap().metrics_require_token);
}

/// Two gateway buckets storing into one backend bucket would be one
/// keyspace under two names (a PUT to `a/k` overwrites `b/k`).
#[test]
fn two_gateway_buckets_on_one_backend_bucket_are_refused() {
    let backend = |name: &str, port: u16, bucket: &str| {
        format!(
            "[[backends]]\nname = \"{name}\"\nendpoint = \"http://127.0.0.1:{port}\"\nregion = \"garage\"\n\
             bucket = \"{bucket}\"\ncredentials = {{ access_key_id_env = \"K\", secret_access_key_env = \"S\" }}\n"
        )
    };
    let config = |buckets: &str, other_bucket: &str| {
        let text = format!(
            "[gateway]\n[[gateway.clients]]\naccess_key_id = \"APP\"\nsecret_access_key_env = \"GW\"\n{buckets}\n\
             {}{}{}{}",
            backend("primary", 3900, "app-data").replace("region", "role = \"primary\"\nregion"),
            backend("secondary", 3901, "app-data"),
            backend("logs-primary", 3900, other_bucket),
            backend("logs-secondary", 3901, "logs"),
        );
        let env = |_: &str| Some("set".to_string());
        load_str(&text, "cutover.toml", Path::new("/etc/cutover"), &env)
            .map_err(|e| e.problems.iter().map(|p| p.to_string()).collect::<Vec<_>>())
    };
    // Both span every backend (the default).
    let problems =
        config("[[gateway.buckets]]\nname = \"app\"\n[[gateway.buckets]]\nname = \"logs\"\n", "logs").unwrap_err();
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(problems[0].starts_with("gateway.buckets[1]: gateway buckets \"app\" and \"logs\" both store into bucket \"app-data\" of backend \"primary\""), "{problems:?}");
    // Different backends, but the same bucket on the same endpoint.
    let split = "[[gateway.buckets]]\nname = \"app\"\nbackends = [\"primary\", \"secondary\"]\n\
                 [[gateway.buckets]]\nname = \"logs\"\nbackends = [\"logs-primary\", \"logs-secondary\"]\n";
    let problems = config(split, "app-data").unwrap_err();
    assert!(
        problems[0].contains(
            "\"app\" and \"logs\" both store into bucket \"app-data\" of backends \"primary\" and \"logs-primary\""
        ),
        "{problems:?}"
    );
    // Their own buckets: fine.
    let c = config(split, "logs").unwrap();
    assert_eq!(c.gateway.unwrap().buckets.len(), 2);
    // The same name twice.
    let twice = "[[gateway.buckets]]\nname = \"app\"\nbackends = [\"primary\"]\n\
                 [[gateway.buckets]]\nname = \"app\"\nbackends = [\"logs-primary\"]\n";
    let problems = config(twice, "logs").unwrap_err();
    assert_eq!(problems, ["gateway.buckets[1].name: \"app\" is also gateway.buckets[0]"]);
}

/// `[api] public_url`: the console's address in notification links; kept
/// without its trailing slash; anything but a plain http(s) URL is named.
#[test]
fn the_public_url_is_an_http_url_without_query_or_credentials() {
    let c = load("[api]\npublic_url = \"https://cutover.example.com/ops/\"\n").unwrap();
    assert_eq!(c.api.unwrap().public_url.as_deref(), Some("https://cutover.example.com/ops"));
    assert_eq!(load("[api]\n").unwrap().api.unwrap().public_url, None);
    for bad in ["cutover.example.com", "ftp://x", "https://", "https://u:p@x", "https://x/?a=1", "https://x/a b"] {
        let e = load(&format!("[api]\npublic_url = {bad:?}\n")).unwrap_err().join("\n");
        assert!(e.contains("api.public_url:") && e.contains(bad), "{bad}: {e}");
    }
}
