//! `[audit]`: the export of the audit chain and its HMAC key.

use std::path::Path;
use std::time::Duration;

use super::*;

use crate::fixtures::TWO_BACKENDS as BACKENDS;

fn load(extra: &str) -> Result<Config, Vec<String>> {
    let text = format!("{extra}\n{BACKENDS}");
    let env = |k: &str| match k {
        "SHORT_KEY" => Some("short".to_string()),
        "UNSET" => None,
        _ => Some("a-long-enough-audit-key".to_string()),
    };
    load_str(&text, "cutover.toml", Path::new("/etc/cutover"), &env)
        .map_err(|e| e.problems.iter().map(|p| p.to_string()).collect())
}

#[test]
fn audit_is_optional() {
    assert_eq!(load("").unwrap().audit, AuditConfig::default());
}

#[test]
fn the_contract_form_is_accepted_with_defaults() {
    let c = load(
        r#"
[audit]
export = { backend = "secondary", bucket = "audit-log", prefix = "cutover/", object_lock = "governance" }
hmac_key_env = "CUTOVER_AUDIT_KEY"
"#,
    )
    .unwrap();
    assert_eq!(c.audit.hmac_key_env.as_deref(), Some("CUTOVER_AUDIT_KEY"));
    let e = c.audit.export.unwrap();
    assert_eq!((e.backend.as_str(), e.bucket.as_str(), e.prefix.as_str()), ("secondary", "audit-log", "cutover/"));
    assert_eq!(e.object_lock, Some(ObjectLockMode::Governance));
    assert_eq!((e.retain, e.interval), (Duration::from_secs(365 * 86_400), Duration::from_secs(10)));
}

#[test]
fn every_audit_problem_is_named_with_its_path() {
    let problems = load(
        r#"
[audit]
export = { backend = "tertiary", bucket = "Audit_Log", prefix = "/x/../", object_lock = "forever", retain = "soon", interval = "0s" }
hmac_key_env = "SHORT_KEY"
"#,
    )
    .unwrap_err();
    for needle in [
        "audit.export.backend: \"tertiary\" is not a configured backend",
        "audit.export.bucket: \"Audit_Log\" is not a valid bucket name",
        "audit.export.prefix:",
        "audit.export.object_lock: \"forever\" is not an Object Lock mode",
        "audit.export.retain:",
        "audit.export.interval:",
        "audit.hmac_key_env: environment variable SHORT_KEY holds 5 bytes",
    ] {
        assert!(problems.iter().any(|p| p.contains(needle)), "{needle} not in {problems:#?}");
    }
    assert!(problems.iter().all(|p| !p.contains("short")), "the key's value leaked: {problems:#?}");
}

#[test]
fn an_unset_key_variable_and_a_missing_bucket_are_named() {
    let problems = load("[audit]\nexport = { backend = \"secondary\" }\nhmac_key_env = \"UNSET\"\n").unwrap_err();
    assert!(problems.iter().any(|p| p.contains("audit.export.bucket: missing")), "{problems:#?}");
    assert!(problems.iter().any(|p| p.contains("audit.hmac_key_env: environment variable UNSET is not set")));
}

#[test]
fn unknown_audit_keys_are_refused() {
    let problems =
        load("[audit]\nexport = { backend = \"secondary\", bucket = \"audit-log\", lock = \"x\" }\n").unwrap_err();
    assert!(problems.iter().any(|p| p.contains("audit.export.lock: unknown key")), "{problems:#?}");
}
