//! The wire: the kube implementation of the cluster interface (and the
//! `kubernetes.patch` step, and the Lease) against kube's mock service
//! (tower-test), in the style of controller-rs's `fixtures.rs`: every request's
//! method, path, query, content type and body is asserted, and the answers
//! script 404, 409, 422 and successes.

use std::collections::BTreeMap;
use std::time::Duration;

use cutover_operator::cluster::{Cluster, Owner};
use cutover_operator::crd::StorageBackendStatus;
use cutover_operator::error::Error;
use cutover_operator::kube_cluster::KubeCluster;
use cutover_operator::patch::{PatchError, Target, patch};
use http::Method;
use serde_json::{Value, json};

mod support;

use support::wire::*;

const SSA: &[(&str, &str)] = &[("fieldManager", "cutover-operator"), ("force", "true")];

fn owner() -> Owner {
    Owner { namespace: "prod".into(), name: "app-storage".into(), uid: "uid-1".into() }
}

#[tokio::test]
async fn the_application_secret_is_a_forced_server_side_apply() {
    let (client, handle) = mock();
    let data = BTreeMap::from([("AWS_REGION".to_string(), "eu-west-1".to_string())]);
    let server = serve(
        handle,
        vec![
            Expect::new(Method::PATCH, "/api/v1/namespaces/prod/secrets/app-s3")
                .query(SSA)
                .apply(json!({
                    "apiVersion": "v1", "kind": "Secret",
                    "metadata": { "name": "app-s3", "namespace": "prod" },
                    "type": "Opaque",
                    "data": { "AWS_REGION": "ZXUtd2VzdC0x" }
                }))
                .answer(200, json!({ "apiVersion": "v1", "kind": "Secret", "metadata": { "name": "app-s3" } })),
            // The snapshot is owned by the StorageBackend and labelled.
            Expect::new(Method::PATCH, "/api/v1/namespaces/prod/secrets/app-storage-cutover-snapshot")
                .query(SSA)
                .apply(json!({
                    "apiVersion": "v1", "kind": "Secret",
                    "metadata": {
                        "name": "app-storage-cutover-snapshot", "namespace": "prod",
                        "labels": { "cutover.dev/storage-backend": "app-storage" },
                        "ownerReferences": [{
                            "apiVersion": "cutover.dev/v1alpha1", "kind": "StorageBackend", "name": "app-storage",
                            "uid": "uid-1", "controller": true, "blockOwnerDeletion": false
                        }]
                    },
                    "type": "Opaque",
                    "data": { "AWS_REGION": "ZXUtd2VzdC0x" }
                }))
                .answer(201, json!({ "apiVersion": "v1", "kind": "Secret", "metadata": { "name": "x" } })),
        ],
    );
    let cluster = KubeCluster::new(client);
    cluster.apply_secret("prod", "app-s3", &data, None).await.unwrap();
    cluster.apply_secret("prod", "app-storage-cutover-snapshot", &data, Some(&owner())).await.unwrap();
    server.await.unwrap();
}

#[tokio::test]
async fn a_missing_secret_is_none_and_deleting_a_missing_one_is_fine() {
    let (client, handle) = mock();
    let server = serve(
        handle,
        vec![
            Expect::new(Method::GET, "/api/v1/namespaces/prod/secrets/creds")
                .answer(404, status_body(404, "NotFound", "secrets \"creds\" not found")),
            Expect::new(Method::GET, "/api/v1/namespaces/prod/secrets/creds").answer(
                200,
                json!({ "apiVersion": "v1", "kind": "Secret", "metadata": { "name": "creds" }, "data": { "access_key_id": "QUtJQQ==" } }),
            ),
            Expect::new(Method::DELETE, "/api/v1/namespaces/prod/configmaps/app-config")
                .json(json!({}))
                .answer(404, status_body(404, "NotFound", "configmaps \"app-config\" not found")),
        ],
    );
    let cluster = KubeCluster::new(client);
    assert_eq!(cluster.get_secret("prod", "creds").await.unwrap(), None);
    let data = cluster.get_secret("prod", "creds").await.unwrap().unwrap();
    assert_eq!(data["access_key_id"], "AKIA");
    cluster.delete_config_map("prod", "app-config").await.unwrap();
    server.await.unwrap();
}

#[tokio::test]
async fn a_conflict_is_a_retryable_error_naming_the_object() {
    let (client, handle) = mock();
    let server = serve(
        handle,
        vec![
            Expect::new(Method::PATCH, "/api/v1/namespaces/prod/configmaps/app-config")
                .query(SSA)
                .apply(json!({
                    "apiVersion": "v1", "kind": "ConfigMap",
                    "metadata": { "name": "app-config", "namespace": "prod" },
                    "data": { "S3_BUCKET": "b" }
                }))
                .answer(
                    409,
                    status_body(
                        409,
                        "Conflict",
                        "the object has been modified; please apply your changes to the latest version",
                    ),
                ),
        ],
    );
    let cluster = KubeCluster::new(client);
    let data = BTreeMap::from([("S3_BUCKET".to_string(), "b".to_string())]);
    let err = cluster.apply_config_map("prod", "app-config", &data).await.unwrap_err();
    assert!(matches!(&err, Error::Conflict { what, .. } if what == "ConfigMap prod/app-config"), "{err}");
    assert!(err.retryable());
    server.await.unwrap();
}

#[tokio::test]
async fn storage_class_parameters_that_cannot_change_are_recreated() {
    let (client, handle) = mock();
    let sc = json!({
        "apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
        "metadata": { "name": "s3" },
        "provisioner": "ru.yandex.s3.csi",
        "parameters": { "bucket": "new" }
    });
    let server = serve(
        handle,
        vec![
            Expect::new(Method::PATCH, "/apis/storage.k8s.io/v1/storageclasses/s3").query(SSA).apply(sc.clone()).answer(
                422,
                status_body(422, "Invalid", "StorageClass.storage.k8s.io \"s3\" is invalid: parameters: Forbidden: updates to parameters are forbidden."),
            ),
            Expect::new(Method::DELETE, "/apis/storage.k8s.io/v1/storageclasses/s3").json(json!({})).answer(200, sc.clone()),
            Expect::new(Method::PATCH, "/apis/storage.k8s.io/v1/storageclasses/s3").query(SSA).apply(sc.clone()).answer(201, sc),
        ],
    );
    let cluster = KubeCluster::new(client);
    let params = BTreeMap::from([("bucket".to_string(), "new".to_string())]);
    assert!(cluster.apply_storage_class("s3", "ru.yandex.s3.csi", &params).await.unwrap());
    server.await.unwrap();
}

#[tokio::test]
async fn deployments_are_listed_by_selector_and_rolled_by_annotation() {
    let (client, handle) = mock();
    let deployment = json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": { "name": "app-00", "generation": 3 },
        "spec": {
            "replicas": 2,
            "selector": { "matchLabels": { "app": "a" } },
            "template": { "metadata": { "annotations": { "cutover.dev/provider-hash": "abc" } }, "spec": { "containers": [] } }
        },
        "status": {
            "observedGeneration": 3, "replicas": 2, "updatedReplicas": 2, "readyReplicas": 2, "availableReplicas": 1,
            "conditions": [{ "type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded" }]
        }
    });
    let server = serve(
        handle,
        vec![
            Expect::new(Method::GET, "/apis/apps/v1/namespaces/prod/deployments")
                .query(&[("labelSelector", "app.kubernetes.io/part-of=shop")])
                .answer(
                    200,
                    json!({ "apiVersion": "apps/v1", "kind": "DeploymentList", "metadata": {}, "items": [deployment] }),
                ),
            Expect::new(Method::PATCH, "/apis/apps/v1/namespaces/prod/deployments/app-00")
                .query(SSA)
                .apply(json!({
                    "apiVersion": "apps/v1", "kind": "Deployment", "metadata": { "name": "app-00" },
                    "spec": { "template": { "metadata": { "annotations": { "cutover.dev/provider-hash": "def" } } } }
                }))
                .answer(
                    200,
                    json!({ "apiVersion": "apps/v1", "kind": "Deployment", "metadata": { "name": "app-00" } }),
                ),
            // A rollback to "no annotation" applies without it: SSA drops the field we own.
            Expect::new(Method::PATCH, "/apis/apps/v1/namespaces/prod/deployments/app-00")
                .query(SSA)
                .apply(json!({ "apiVersion": "apps/v1", "kind": "Deployment", "metadata": { "name": "app-00" } }))
                .answer(
                    200,
                    json!({ "apiVersion": "apps/v1", "kind": "Deployment", "metadata": { "name": "app-00" } }),
                ),
        ],
    );
    let cluster = KubeCluster::new(client);
    let selector = k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector {
        match_labels: Some([("app.kubernetes.io/part-of".to_string(), "shop".to_string())].into()),
        match_expressions: None,
    };
    let list = cluster.list_deployments("prod", &selector).await.unwrap();
    assert_eq!(list.len(), 1);
    let d = &list[0];
    assert_eq!(d.hash.as_deref(), Some("abc"));
    assert!(d.progress_deadline_exceeded);
    assert_eq!(d.rollout_state(), cutover_operator::view::RolloutState::Failed);
    cluster.set_template_annotation("prod", "app-00", Some("def")).await.unwrap();
    cluster.set_template_annotation("prod", "app-00", None).await.unwrap();
    server.await.unwrap();
}

#[tokio::test]
async fn status_is_applied_to_the_subresource_and_jobs_are_created_once() {
    let (client, handle) = mock();
    let status = StorageBackendStatus { observed_generation: Some(3), ..StorageBackendStatus::default() };
    let job = json!({
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": { "name": "app-storage-validate-canary-1", "namespace": "prod" },
        "spec": { "backoffLimit": 0, "template": { "spec": { "containers": [] } } }
    });
    let server = serve(
        handle,
        vec![
            Expect::new(Method::PATCH, "/apis/cutover.dev/v1alpha1/namespaces/prod/storagebackends/app-storage/status")
                .query(SSA)
                .apply(json!({
                    "apiVersion": "cutover.dev/v1alpha1", "kind": "StorageBackend",
                    "status": { "observedGeneration": 3, "conditions": [] }
                }))
                .answer(
                    200,
                    json!({
                        "apiVersion": "cutover.dev/v1alpha1", "kind": "StorageBackend",
                        "metadata": { "name": "app-storage" },
                        "spec": { "provider": "p", "endpoint": "e", "bucket": "b", "credentialsSecret": "c" }
                    }),
                ),
            Expect::new(Method::POST, "/apis/batch/v1/namespaces/prod/jobs")
                .query(&[("fieldManager", "cutover-operator")])
                .json(job.clone())
                .answer(
                    409,
                    status_body(409, "AlreadyExists", "jobs.batch \"app-storage-validate-canary-1\" already exists"),
                ),
        ],
    );
    let cluster = KubeCluster::new(client);
    cluster.patch_status(&owner(), &status).await.unwrap();
    let job: k8s_openapi::api::batch::v1::Job = serde_json::from_value(job).unwrap();
    cluster.create_job("prod", &job).await.unwrap();
    server.await.unwrap();
}

fn target() -> Target {
    Target {
        provider: "r2".into(),
        endpoint: "https://r2.example.test".into(),
        region: Some("auto".into()),
        bucket: "app".into(),
        credentials_secret: "r2-creds".into(),
        path_style: true,
    }
}

fn sb(generation: i64, observed: i64, ready: &str, degraded: &str) -> Value {
    let condition = |t: &str, s: &str, r: &str| json!({ "type": t, "status": s, "reason": r, "message": "", "observedGeneration": observed, "lastTransitionTime": "2026-01-01T00:00:00Z" });
    json!({
        "apiVersion": "cutover.dev/v1alpha1", "kind": "StorageBackend",
        "metadata": { "name": "app-storage", "namespace": "prod", "generation": generation },
        "spec": { "provider": "r2", "endpoint": "https://r2.example.test", "bucket": "app", "credentialsSecret": "r2-creds" },
        "status": {
            "observedGeneration": observed, "activeProvider": "r2", "previousProvider": "aws-primary",
            "conditions": [condition("Ready", ready, "RolloutComplete"), condition("Degraded", degraded, "RolledBack")]
        }
    })
}

const RUNBOOK_SSA: &[(&str, &str)] = &[("fieldManager", "cutover")];

fn patch_body() -> Value {
    json!({
        "apiVersion": "cutover.dev/v1alpha1", "kind": "StorageBackend",
        "metadata": { "name": "app-storage", "namespace": "prod" },
        "spec": {
            "provider": "r2", "endpoint": "https://r2.example.test", "region": "auto", "bucket": "app",
            "credentialsSecret": "r2-creds", "pathStyle": true
        }
    })
}

#[tokio::test(start_paused = true)]
async fn kubernetes_patch_waits_for_ready_at_the_patched_generation() {
    let (client, handle) = mock();
    const PATH: &str = "/apis/cutover.dev/v1alpha1/namespaces/prod/storagebackends/app-storage";
    let server = serve(
        handle,
        vec![
            Expect::new(Method::PATCH, PATH)
                .query(RUNBOOK_SSA)
                .apply(patch_body())
                .answer(200, sb(4, 3, "True", "False")),
            Expect::new(Method::GET, PATH).answer(200, sb(4, 4, "False", "False")),
            Expect::new(Method::GET, PATH).answer(200, sb(4, 4, "True", "False")),
        ],
    );
    let patched = patch(client, "prod", "app-storage", &target(), false, Duration::from_secs(60)).await.unwrap();
    assert_eq!(patched.generation, 4);
    assert_eq!(patched.previous_provider.as_deref(), Some("aws-primary"));
    server.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn kubernetes_patch_fails_on_degraded_and_names_a_conflicting_owner() {
    let (client, handle) = mock();
    const PATH: &str = "/apis/cutover.dev/v1alpha1/namespaces/prod/storagebackends/app-storage";
    let server = serve(
        handle,
        vec![
            Expect::new(Method::PATCH, PATH).query(RUNBOOK_SSA).apply(patch_body()).answer(200, sb(5, 5, "False", "True")),
            Expect::new(Method::PATCH, PATH).query(RUNBOOK_SSA).apply(patch_body()).answer(
                409,
                status_body(
                    409,
                    "Conflict",
                    "Apply failed with 1 conflict: conflict with \"argocd-controller\" using cutover.dev/v1alpha1: .spec.provider",
                ),
            ),
            Expect::new(Method::PATCH, PATH)
                .query(RUNBOOK_SSA)
                .apply(patch_body())
                .answer(404, status_body(404, "NotFound", "storagebackends.cutover.dev \"app-storage\" not found")),
        ],
    );
    let err =
        patch(client.clone(), "prod", "app-storage", &target(), false, Duration::from_secs(60)).await.unwrap_err();
    assert!(matches!(err, PatchError::Degraded { generation: 5, .. }), "{err}");
    assert!(!err.retryable());
    let err =
        patch(client.clone(), "prod", "app-storage", &target(), false, Duration::from_secs(60)).await.unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("argocd-controller") && text.contains(".spec.provider") && text.contains("git.set"),
        "{text}"
    );
    assert!(!err.retryable());
    let err = patch(client, "prod", "app-storage", &target(), false, Duration::from_secs(60)).await.unwrap_err();
    assert!(matches!(err, PatchError::NotFound { .. }), "{err}");
    server.await.unwrap();
}
