//! The manifests under `deploy/`: the committed CRD is the generated one,
//! everything passes the official Kubernetes schemas (`kubernetes-validate`),
//! the examples match the CRD's schema (and bad resources do not), and the
//! Argo CD health check (Lua) maps the conditions as documented.
//!
//! Needs `kubernetes-validate` (PyPI) and `lua5.4`; `.ci/run` installs both.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use cutover_operator::crd::{StorageBackend, crd_yaml};
use serde_json::Value;
use support::*;

fn deploy() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy")
}

fn tool(name: &str) -> Command {
    let found = Command::new("sh").arg("-c").arg(format!("command -v {name}")).output().unwrap();
    assert!(found.status.success(), "{name} is not installed (.ci/run installs it)");
    Command::new(name)
}

#[test]
fn the_committed_crd_is_the_generated_one() {
    let committed = std::fs::read_to_string(deploy().join("crd.yaml")).unwrap();
    assert!(
        committed == crd_yaml().unwrap(),
        "deploy/crd.yaml is stale: regenerate it with `cutover operator crd > deploy/crd.yaml`"
    );
}

#[test]
fn the_manifests_pass_the_official_schemas() {
    let dir = deploy();
    let out = tool("kubernetes-validate")
        .args(["-k", "1.33.0", "--strict"])
        .args(["crd.yaml", "rbac.yaml", "operator.yaml"].map(|f| dir.join(f)))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}");
    assert_eq!(text.matches("passed for resource").count(), 9, "{text}");

    // The validator does reject what is wrong.
    // Written to a file removed when dropped: a fixed name under /tmp was left behind by every run.
    let bad = tempfile::Builder::new().prefix("cutover-operator-bad-").suffix(".yaml").tempfile().unwrap();
    std::fs::write(
        bad.path(),
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\nspec: {replicas: two, selector: {}, template: {}}\n",
    )
    .unwrap();
    let out = tool("kubernetes-validate").args(["-k", "1.33.0", "--strict"]).arg(bad.path()).output().unwrap();
    assert!(!out.status.success(), "a bad Deployment passed");
}

const SCHEMA_CHECK: &str = r#"
import json, sys, yaml, jsonschema
crd = yaml.safe_load(open(sys.argv[1]))
schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
for doc in json.load(sys.stdin):
    try:
        jsonschema.validate(doc["object"], schema)
        print(doc["name"], "valid")
    except jsonschema.ValidationError as e:
        print(doc["name"], "invalid", "/".join(str(p) for p in e.absolute_path))
"#;

#[test]
fn examples_match_the_crd_schema_and_bad_resources_do_not() {
    let example_text = std::fs::read_to_string(deploy().join("examples/storagebackend.yaml")).unwrap();
    let example: Value = serde_saphyr::from_str(&example_text).unwrap();
    // The operator reads it, too.
    let typed: StorageBackend = serde_json::from_value(example.clone()).unwrap();
    assert_eq!(typed.spec.rollout.unwrap().batch_percent, 10);

    let with = |path: &[&str], value: Value| {
        let mut doc = example.clone();
        let mut at = &mut doc;
        for p in &path[..path.len() - 1] {
            at = &mut at[*p];
        }
        match value {
            Value::Null => {
                at.as_object_mut().unwrap().remove(path[path.len() - 1]);
            }
            v => at[path[path.len() - 1]] = v,
        }
        doc
    };
    let docs = serde_json::json!([
        { "name": "example", "object": example },
        { "name": "no-provider", "object": with(&["spec", "provider"], Value::Null) },
        { "name": "batch-percent-0", "object": with(&["spec", "rollout", "batchPercent"], 0.into()) },
        { "name": "batch-percent-101", "object": with(&["spec", "rollout", "batchPercent"], 101.into()) },
        { "name": "unknown-field", "object": with(&["spec", "configMaps"], serde_json::json!([{ "name": "c", "keys": { "K": "password" } }])) },
        { "name": "path-style-string", "object": with(&["spec", "pathStyle"], "yes".into()) },
    ]);
    let mut child = tool("python3")
        .args(["-c", SCHEMA_CHECK])
        .arg(deploy().join("crd.yaml"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(docs.to_string().as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "example valid", "{text}");
    assert!(lines[1].starts_with("no-provider invalid"), "{text}");
    assert!(lines[2].starts_with("batch-percent-0 invalid"), "{text}");
    assert!(lines[3].starts_with("batch-percent-101 invalid"), "{text}");
    assert!(lines[4].starts_with("unknown-field invalid"), "{text}");
    assert!(lines[5].starts_with("path-style-string invalid"), "{text}");
}

/// A Lua table constructor for a JSON value.
fn lua(v: &Value) -> String {
    match v {
        Value::Null => "nil".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => format!("{s:?}"),
        Value::Array(a) => format!("{{{}}}", a.iter().map(lua).collect::<Vec<_>>().join(", ")),
        Value::Object(o) => {
            format!("{{{}}}", o.iter().map(|(k, v)| format!("[{k:?}] = {}", lua(v))).collect::<Vec<_>>().join(", "))
        }
    }
}

/// Runs the health check on `obj`: (status, message).
fn health(obj: &Value) -> (String, String) {
    let script = std::fs::read_to_string(deploy().join("argocd-health.lua")).unwrap();
    let program = format!(
        "obj = {}\nlocal function check()\n{script}\nend\nlocal hs = check()\nio.write(hs.status, \"\\t\", hs.message)\n",
        lua(obj)
    );
    let out = tool("lua5.4").arg("-e").arg(program).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let (status, message) = text.split_once('\t').unwrap();
    (status.to_string(), message.to_string())
}

#[tokio::test]
async fn the_argocd_health_check_maps_the_conditions() {
    let fresh = serde_json::json!({ "metadata": { "name": "x", "generation": 1 }, "spec": {} });
    assert_eq!(health(&fresh).0, "Progressing");

    // Real statuses from whole rollouts on the in-memory cluster.
    let cluster = cluster(4, spec("aws-primary", 50, "10m", false), &["aws-primary"]);
    let (now, _) = drive(&cluster, start(), 100).await;
    let complete = serde_json::to_value(cluster.storage_backend(NS, NAME).unwrap()).unwrap();
    let (status, message) = health(&complete);
    assert_eq!(status, "Healthy", "{message}");

    let mut behind = complete.clone();
    behind["metadata"]["generation"] = 2.into();
    assert_eq!(health(&behind).0, "Progressing");

    change_spec(&cluster, spec("r2", 50, "10m", false));
    cluster.state().secrets.insert(
        (NS.into(), "r2-creds".into()),
        [("access_key_id".to_string(), "a".to_string()), ("secret_access_key".to_string(), "b".to_string())].into(),
    );
    let sb = cluster.storage_backend(NS, NAME).unwrap();
    cutover_operator::reconcile::reconcile(&cluster, &sb, now).await.unwrap();
    let rolling = serde_json::to_value(cluster.storage_backend(NS, NAME).unwrap()).unwrap();
    let (status, message) = health(&rolling);
    assert_eq!(status, "Progressing");
    assert!(message.starts_with("RollingBatch"), "{message}");

    cluster.state().deployments.get_mut(&(NS.to_string(), "app-00".to_string())).unwrap().behaviour =
        cutover_operator::memory::Behaviour::DeadlineExceededWithNewData;
    let now = until_phase(&cluster, now, cutover_operator::crd::Phase::RollingBack, 100).await;
    let rolling_back = serde_json::to_value(cluster.storage_backend(NS, NAME).unwrap()).unwrap();
    let (status, message) = health(&rolling_back);
    assert_eq!(status, "Progressing");
    assert!(message.starts_with("RollingBack: "), "{message}");
    drive(&cluster, now, 100).await;
    let rolled_back = serde_json::to_value(cluster.storage_backend(NS, NAME).unwrap()).unwrap();
    let (status, message) = health(&rolled_back);
    assert_eq!(status, "Degraded");
    assert!(message.starts_with("RolledBack: "), "{message}");
}
