use super::*;

const BACKENDS: &[&str] = &["primary", "secondary"];

fn problems(text: &str) -> Vec<String> {
    parse(text, "rb.toml", BACKENDS).unwrap_err().to_string().lines().map(String::from).collect()
}

#[test]
fn the_contract_example_parses() {
    let rb = parse(
        r#"
[[steps]]
name = "switch the gateway"
uses = "state.switch"
with = { to = "{{ target }}" }
timeout = "10s"
retries = 1
on_failure = "rollback"
undo = { uses = "state.switch", with = { to = "{{ source }}" } }

[[steps]]
name = "smoke test"
uses = "validate"
with = { backend = "{{ target }}" }
on_failure = "continue"
"#,
        "rb.toml",
        BACKENDS,
    )
    .unwrap();
    assert_eq!(rb.steps.len(), 2);
    assert_eq!(rb.steps[0].timeout, Duration::from_secs(10));
    assert_eq!(rb.steps[0].retries, 1);
    assert_eq!(rb.steps[0].undo.as_ref().unwrap().uses, "state.switch");
    assert_eq!(rb.steps[1].on_failure, OnFailure::Continue);
    assert_eq!(rb.steps[1].timeout, DEFAULT_TIMEOUT);
    assert_eq!(rb.sha256.len(), 64);
}

#[test]
fn built_ins_are_valid() {
    assert_eq!(built_in(cutover_core::domain::RunKind::Failover).steps.len(), 2);
    assert_eq!(built_in(cutover_core::domain::RunKind::Fallback).steps[0].call.uses, "sync.resync");
}

#[test]
fn every_problem_is_named_with_its_step_and_field() {
    let p = problems(
        r#"
[[steps]]
name = "one"
uses = "htp"

[[steps]]
name = "two"
uses = "state.switch"
with = { to = "{{ targte }}", extra = 1 }
timeout = "soon"

[[steps]]
name = "three"
uses = "validate"

[[steps]]
name = "four"
uses = "state.switch"
with = { to = "tertiary" }
on_failure = "ignore"
undo = { uses = "state.switch" }

[[steps]]
name = "five"
uses = "kubernetes.patch"
"#,
    );
    let all = p.join("\n");
    assert!(all.contains(r#"steps[0] "one".uses: unknown actuator "htp""#), "{all}");
    assert!(all.contains(r#"steps[1] "two".with.to: unknown template variable "targte""#), "{all}");
    assert!(all.contains(r#"steps[1] "two".with.extra: unknown parameter of state.switch"#), "{all}");
    assert!(all.contains(r#"steps[1] "two".timeout"#), "{all}");
    assert!(all.contains(r#"steps[2] "three".with.backend: missing required parameter"#), "{all}");
    assert!(all.contains(r#"steps[3] "four".with.to: no backend named "tertiary""#), "{all}");
    assert!(all.contains(r#"steps[3] "four".on_failure"#), "{all}");
    assert!(all.contains(r#"steps[3] "four".undo.with.to: missing required parameter"#), "{all}");
    assert!(all.contains(r#"steps[4] "five".with.namespace: missing required parameter"#), "{all}");
    assert!(all.contains(r#"steps[4] "five".with.provider: missing required parameter"#), "{all}");
    assert!(p.iter().all(|l| l.starts_with("rb.toml: ")), "{all}");
}

#[test]
fn syntax_errors_give_line_and_column() {
    let p = problems("[[steps]]\nname = \"a\"\nuses = \n");
    assert!(p[0].starts_with("rb.toml: line 3, column"), "{p:?}");
}

#[test]
fn empty_and_duplicate_steps_are_refused() {
    assert!(problems("")[0].contains("at least one [[steps]]"));
    let p =
        problems("[[steps]]\nname = \"a\"\nuses = \"sync.resync\"\n[[steps]]\nname = \"a\"\nuses = \"sync.resync\"\n");
    assert!(p.join("\n").contains("another step has this name"), "{p:?}");
}

#[test]
fn templates_render_and_reject_bad_syntax() {
    let vars = Vars {
        incident: "inc-1".into(),
        backend: "primary".into(),
        source: "primary".into(),
        target: "secondary".into(),
        reason: "down".into(),
        kind: "failover".into(),
        fencing_token: "0".into(),
    };
    assert_eq!(render_str("to {{target}} ({{ incident.id }})", &vars).unwrap(), "to secondary (inc-1)");
    assert!(render_str("{{ target", &vars).unwrap_err().to_string().contains("unclosed"));
    assert_eq!(render_str("target }}", &vars).unwrap(), "target }}", "a }} outside a template is text");
    let with: Params = serde_json::from_str(r#"{"body": {"a": ["{{ source }}"]}, "n": 3}"#).unwrap();
    let out = render(&with, &vars).unwrap();
    assert_eq!(out["body"]["a"][0], "primary");
    assert_eq!(out["n"], 3);
}

#[test]
fn redaction_hides_secret_values_but_keeps_variable_names() {
    let p: Params = serde_json::from_str(
        r#"{"token": "s3cr3t", "token_env": "TFC_TOKEN", "url": "https://u:pw@host/x", "headers": {"Authorization": "Bearer abc", "X-Ok": "1"}}"#,
    )
    .unwrap();
    let r = serde_json::to_string(&redact(&p)).unwrap();
    assert!(!r.contains("s3cr3t") && !r.contains("pw@") && !r.contains("Bearer abc"), "{r}");
    assert!(r.contains("TFC_TOKEN") && r.contains("https://[redacted]@host/x") && r.contains("\"X-Ok\":\"1\""), "{r}");
}

#[test]
fn every_external_actuator_name_has_its_parameters() {
    for name in actuators::NAMES {
        assert!(params(name).is_some(), "{name}");
    }
}

/// Regression: a failing `notify` step rolled the whole failover back onto
/// the backend that was down. A notify step always continues.
#[test]
fn a_notify_step_never_rolls_a_run_back() {
    let text = r#"
[[steps]]
name = "switch"
uses = "state.switch"
with = { to = "{{ target }}" }
[[steps]]
name = "tell the team"
uses = "notify"
with = { url_env = "SLACK_WEBHOOK_URL" }
"#;
    let rb = parse(text, "rb.toml", BACKENDS).unwrap();
    assert_eq!(rb.steps[0].on_failure, OnFailure::Rollback);
    assert_eq!(rb.steps[1].on_failure, OnFailure::Continue);
    let all = problems(&format!("{text}on_failure = \"rollback\"\n")).join("\n");
    assert!(all.contains(r#"steps[1] "tell the team".on_failure"#), "{all}");
    assert!(all.contains("never rolls a run back"), "{all}");
}
