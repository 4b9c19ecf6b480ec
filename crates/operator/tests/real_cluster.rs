//! The same scenarios against a real cluster (kind, k3d), when
//! `CUTOVER_TEST_KUBECONFIG` names its kubeconfig; compiled always, skipped
//! with a message otherwise. Needs `kubectl` on the PATH (to apply
//! `deploy/rbac.yaml`) and images `registry.k8s.io/pause:3.10` and
//! `busybox:1.36` pullable by the cluster.
//!
//! Each test uses its own namespace and deletes it at the end.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use cutover_operator::conditions::{self, READY};
use cutover_operator::crd::{HASH_ANNOTATION, StorageBackend};
use cutover_operator::kube_cluster::{KubeCluster, apply_params};
use cutover_operator::patch::{PatchError, Target, patch};
use cutover_operator::reconcile::reconcile;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Secret};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config, CustomResourceExt};
use serde_json::json;

const SERVICE_ACCOUNT: &str = "system:serviceaccount:cutover-system:cutover-operator";

/// A client for the test cluster (impersonating `as_user` when given), or
/// `None` with a message when no cluster is configured.
async fn client(as_user: Option<&str>) -> Option<Client> {
    let Ok(path) = std::env::var("CUTOVER_TEST_KUBECONFIG") else {
        eprintln!("skipped: set CUTOVER_TEST_KUBECONFIG to a kind or k3d cluster's kubeconfig to run this test");
        return None;
    };
    let kubeconfig = Kubeconfig::read_from(&path).unwrap();
    let mut config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await.unwrap();
    if let Some(user) = as_user {
        config.auth_info.impersonate = Some(user.to_string());
    }
    Some(Client::try_from(config).unwrap())
}

fn kubectl(args: &[&str]) {
    let path = std::env::var("CUTOVER_TEST_KUBECONFIG").unwrap();
    let out = std::process::Command::new("kubectl").env("KUBECONFIG", path).args(args).output().unwrap();
    assert!(out.status.success(), "kubectl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

async fn install_crd(client: &Client) {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let crd = StorageBackend::crd();
    crds.patch("storagebackends.cutover.dev", &apply_params(), &Patch::Apply(&crd)).await.unwrap();
    for _ in 0..60 {
        let crd = crds.get("storagebackends.cutover.dev").await.unwrap();
        let established = crd
            .status
            .and_then(|s| s.conditions)
            .unwrap_or_default()
            .iter()
            .any(|c| c.type_ == "Established" && c.status == "True");
        if established {
            return;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    panic!("the CRD was not established within a minute");
}

async fn namespace(client: &Client, name: &str) {
    let api: Api<Namespace> = Api::all(client.clone());
    let ns: Namespace =
        serde_json::from_value(json!({ "apiVersion": "v1", "kind": "Namespace", "metadata": { "name": name } }))
            .unwrap();
    let _ = api.delete(name, &DeleteParams::default()).await;
    for _ in 0..120 {
        match api.create(&PostParams::default(), &ns).await {
            Ok(_) => return,
            Err(_) => tokio::time::sleep(Duration::from_secs(1)).await,
        }
    }
    panic!("namespace {name} could not be created");
}

fn storage_backend(ns: &str, percent: u32, validation: bool) -> serde_json::Value {
    let mut spec = json!({
        "provider": "garage", "endpoint": "http://garage.example.test:3900", "region": "garage",
        "bucket": "app", "credentialsSecret": "garage-creds", "pathStyle": true,
        "secret": { "name": "app-s3" },
        "configMaps": [{ "name": "app-config", "keys": { "S3_ENDPOINT": "endpoint" } }],
        "rollout": { "selector": { "matchLabels": { "app.kubernetes.io/part-of": "shop" } }, "batchPercent": percent, "batchTimeout": "3m" }
    });
    if validation {
        spec["validation"] = json!({ "template": { "spec": { "containers": [{ "name": "check", "image": "busybox:1.36", "command": ["true"] }] } } });
    }
    json!({ "apiVersion": "cutover.dev/v1alpha1", "kind": "StorageBackend", "metadata": { "name": "app-storage", "namespace": ns }, "spec": spec })
}

#[tokio::test]
async fn the_crd_schema_rejects_bad_resources() {
    let Some(client) = client(None).await else { return };
    install_crd(&client).await;
    let ns = "cutover-test-schema";
    namespace(&client, ns).await;
    let api: Api<StorageBackend> = Api::namespaced(client.clone(), ns);
    let mut bad = storage_backend(ns, 0, false);
    let err = api.patch("app-storage", &apply_params(), &Patch::Apply(&bad)).await.unwrap_err();
    assert!(matches!(&err, kube::Error::Api(s) if s.code == 422), "{err}");
    bad["spec"]["rollout"]["batchPercent"] = 10.into();
    bad["spec"]["configMaps"][0]["keys"]["S3_ENDPOINT"] = "password".into();
    let err = api.patch("app-storage", &apply_params(), &Patch::Apply(&bad)).await.unwrap_err();
    assert!(matches!(&err, kube::Error::Api(s) if s.code == 422), "{err}");
    api.patch("app-storage", &apply_params(), &Patch::Apply(storage_backend(ns, 10, false))).await.unwrap();
    Api::<Namespace>::all(client).delete(ns, &DeleteParams::default()).await.unwrap();
}

#[tokio::test]
async fn a_field_owned_by_another_manager_is_a_conflict_naming_it() {
    let Some(client) = client(None).await else { return };
    install_crd(&client).await;
    let ns = "cutover-test-conflict";
    namespace(&client, ns).await;
    let api: Api<StorageBackend> = Api::namespaced(client.clone(), ns);
    api.patch("app-storage", &PatchParams::apply("argocd-controller"), &Patch::Apply(storage_backend(ns, 10, false)))
        .await
        .unwrap();
    let target = Target {
        provider: "r2".into(),
        endpoint: "https://r2.example.test".into(),
        region: Some("auto".into()),
        bucket: "app".into(),
        credentials_secret: "r2-creds".into(),
        path_style: true,
    };
    let err = patch(client.clone(), ns, "app-storage", &target, false, Duration::from_secs(5)).await.unwrap_err();
    assert!(matches!(&err, PatchError::Conflict { owners, .. } if owners.contains("argocd-controller")), "{err}");
    Api::<Namespace>::all(client).delete(ns, &DeleteParams::default()).await.unwrap();
}

/// A whole rollout (4 Deployments at 50%: two batches, canary and final
/// validation) by the operator's reconciler under the shipped
/// ServiceAccount's RBAC (impersonated), nothing restarted twice.
#[tokio::test]
async fn a_whole_rollout_under_the_shipped_rbac() {
    let Some(admin) = client(None).await else { return };
    install_crd(&admin).await;
    let rbac = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/rbac.yaml");
    kubectl(&["apply", "-f", &rbac.to_string_lossy()]);
    let ns = "cutover-test-rollout";
    namespace(&admin, ns).await;
    let secrets: Api<Secret> = Api::namespaced(admin.clone(), ns);
    let creds: Secret = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Secret", "metadata": { "name": "garage-creds" },
        "stringData": { "access_key_id": "GK-test", "secret_access_key": "not-a-real-secret" }
    }))
    .unwrap();
    secrets.create(&PostParams::default(), &creds).await.unwrap();
    let deployments: Api<Deployment> = Api::namespaced(admin.clone(), ns);
    for i in 0..4 {
        let name = format!("app-{i}");
        let d: Deployment = serde_json::from_value(json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": { "name": name, "labels": { "app.kubernetes.io/part-of": "shop" } },
            "spec": {
                "replicas": 1,
                "selector": { "matchLabels": { "app": name } },
                "template": { "metadata": { "labels": { "app": name } }, "spec": { "containers": [{ "name": "app", "image": "registry.k8s.io/pause:3.10" }] } }
            }
        }))
        .unwrap();
        deployments.create(&PostParams::default(), &d).await.unwrap();
    }
    let sbs: Api<StorageBackend> = Api::namespaced(admin.clone(), ns);
    sbs.patch("app-storage", &PatchParams::apply("test"), &Patch::Apply(storage_backend(ns, 50, true))).await.unwrap();

    let operator = client(Some(SERVICE_ACCOUNT)).await.unwrap();
    let cluster = KubeCluster::new(operator);
    let mut ready = false;
    for _ in 0..300 {
        let sb = sbs.get("app-storage").await.unwrap();
        if sb.status.as_ref().is_some_and(|s| conditions::is_true(&s.conditions, READY)) {
            ready = true;
            break;
        }
        reconcile(&cluster, &sb, Timestamp::now()).await.unwrap();
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    assert!(ready, "not Ready within 10 minutes");
    let sb = sbs.get("app-storage").await.unwrap();
    let hash = sb.status.unwrap().rollout.unwrap().hash;
    for i in 0..4 {
        let d = deployments.get(&format!("app-{i}")).await.unwrap();
        let annotations: BTreeMap<String, String> =
            d.spec.unwrap().template.metadata.unwrap().annotations.unwrap_or_default();
        assert_eq!(annotations.get(HASH_ANNOTATION), Some(&hash));
        // Created at generation 1, one template change: generation 2.
        assert_eq!(d.metadata.generation, Some(2), "app-{i} was restarted more than once");
    }
    Api::<Namespace>::all(admin).delete(ns, &DeleteParams::default()).await.unwrap();
}
