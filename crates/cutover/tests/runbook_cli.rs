//! `cutover runbook check`, `runbook run --dry-run` and the runbooks in
//! `config check`: no servers, no side effects.

mod common;

use common::{Backend, Setup, cutover};

fn setup(runbook: &str) -> Setup {
    let s = Setup::new(
        &[Backend::dummy("primary", "primary"), Backend::dummy("secondary", "secondary")],
        "[runbooks]\nfailover = \"failover.toml\"\n",
    );
    std::fs::write(s.dir.path().join("failover.toml"), runbook).unwrap();
    s
}

const GOOD: &str = r#"
[[steps]]
name = "switch the gateway"
uses = "state.switch"
with = { to = "{{ target }}" }
timeout = "10s"
retries = 1

[[steps]]
name = "smoke test"
uses = "validate"
with = { backend = "{{ target }}" }
"#;

#[test]
fn a_good_runbook_checks_and_its_plan_renders_the_templates() {
    let s = setup(GOOD);
    let file = s.dir.path().join("failover.toml");
    let r = s.run(&["runbook", "check", file.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("ok, 2 steps"), "{r:?}");
    let r = s.run(&["runbook", "run", file.to_str().unwrap(), "--dry-run"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains(r#"with {"to":"secondary"}"#), "{r:?}");
    assert!(r.stdout.contains(r#"undo [state.switch] with {"to":"primary"}"#), "{r:?}");
    let r = s.run(&["runbook", "run", file.to_str().unwrap()]);
    assert_eq!(r.code, 2, "only --dry-run is supported: {r:?}");
    assert_eq!(s.run(&["config", "check"]).code, 0);
}

#[test]
fn a_bad_runbook_names_step_and_field_in_runbook_check_and_config_check() {
    let bad = GOOD.replace("state.switch", "state.swich").replace("{{ target }}\" }\n\"#", "{{ targte }}\" }\n\"#");
    let bad = bad.replace("with = { backend = \"{{ target }}\" }", "with = { backend = \"{{ tagret }}\" }");
    let s = setup(&bad);
    let file = s.dir.path().join("failover.toml");
    let r = s.run(&["runbook", "check", file.to_str().unwrap()]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains(r#"steps[0] "switch the gateway".uses: unknown actuator "state.swich""#), "{r:?}");
    assert!(r.stderr.contains(r#"steps[1] "smoke test".with.backend: unknown template variable "tagret""#), "{r:?}");
    let r = s.run(&["config", "check"]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("runbooks.failover"), "{r:?}");
    assert!(r.stderr.contains("unknown actuator"), "{r:?}");
    // `run` refuses to start with it, naming the file.
    let r = s.run(&["run"]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("failover.toml"), "{r:?}");
}

#[test]
fn runbook_check_without_a_configuration_still_checks_the_shape() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("rb.toml");
    std::fs::write(&f, "[[steps]]\nname = \"k\"\nuses = \"kubernetes.patch\"\n").unwrap();
    let r = cutover(&["--config", "/nonexistent/cutover.toml", "runbook", "check", f.to_str().unwrap()], &[]);
    assert_eq!(r.code, 2, "{r:?}");
    let r = cutover(&["runbook", "check", f.to_str().unwrap()], &[]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("with.namespace: missing required parameter"), "{r:?}");
}

/// Regression (issue 18): with `SLACK_WEBHOOK_URL` unset, `runbook check`,
/// `--dry-run` and `config check` said nothing, and the first outage found
/// out. They warn, naming the step and field, and still exit 0.
#[test]
fn unset_url_env_is_warned_by_runbook_check() {
    let runbook = format!(
        "{GOOD}\n[[steps]]\nname = \"tell the team\"\nuses = \"notify\"\nwith = {{ url_env = \"CUTOVER_TEST_UNSET_SLACK_URL\" }}\n\
         \n[[steps]]\nname = \"hook\"\nuses = \"http\"\nwith = {{ url = \"http://127.0.0.1:9/h\", headers_env = {{ Authorization = \"CUTOVER_TEST_SET_AUTH\" }} }}\n"
    );
    let mut s = setup(&runbook);
    s.env.push(("CUTOVER_TEST_SET_AUTH".into(), "Bearer x".into()));
    let file = s.dir.path().join("failover.toml");
    let want = r#"steps[2] "tell the team".with.url_env: environment variable CUTOVER_TEST_UNSET_SLACK_URL is not set"#;

    let r = s.run(&["runbook", "check", file.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stderr.contains(&format!("warning: {}: {want}", file.display())), "{r:?}");
    assert!(!r.stderr.contains("CUTOVER_TEST_SET_AUTH"), "a set variable is not warned about: {r:?}");
    assert!(r.stdout.contains("ok, 4 steps") && r.stdout.contains("1 warning(s)"), "{r:?}");

    let r = s.run(&["runbook", "check", file.to_str().unwrap(), "--json"]);
    assert_eq!(r.code, 0, "{r:?}");
    let doc = &r.json_lines()[0];
    assert_eq!(doc["warnings"][0]["path"], r#"steps[2] "tell the team".with.url_env"#, "{r:?}");

    let r = s.run(&["runbook", "run", file.to_str().unwrap(), "--dry-run"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stderr.contains(want), "{r:?}");

    let r = s.run(&["config", "check"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stderr.contains(&format!("runbooks.failover ({}): {want}", file.display())), "{r:?}");
}

/// Regression (issue 18): the shipped runbook's `ws-PLACEHOLDER` and
/// `example.com` hosts passed every check.
#[test]
fn placeholder_values_are_warned_by_runbook_check() {
    let runbook = format!(
        "{GOOD}\n[[steps]]\nname = \"apply\"\nuses = \"terraform_cloud.run\"\nwith = {{ workspace_id = \"ws-PLACEHOLDER\", token_env = \"CUTOVER_TEST_SET_AUTH\" }}\n\
         \n[[steps]]\nname = \"argo\"\nuses = \"http\"\nwith = {{ url = \"https://argocd.example.com/api/webhook\" }}\n"
    );
    let mut s = setup(&runbook);
    s.env.push(("CUTOVER_TEST_SET_AUTH".into(), "t".into()));
    let file = s.dir.path().join("failover.toml");

    let r = s.run(&["runbook", "check", file.to_str().unwrap()]);

    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        r.stderr.contains(r#"steps[2] "apply".with.workspace_id: "ws-PLACEHOLDER" looks like a placeholder"#),
        "{r:?}"
    );
    assert!(r.stderr.contains(r#"steps[3] "argo".with.url: "https://argocd.example.com/api/webhook" uses the example host argocd.example.com"#), "{r:?}");
    let r = s.run(&["config", "check", "--json"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(r.json_lines()[0]["warnings"].as_array().map(Vec::len), Some(2), "{r:?}");
}
