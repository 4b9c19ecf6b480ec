//! A whole reconcile pass against kube's mock service: the reads, then the
//! plan's writes in order (snapshot, application Secret, Events, the first
//! batch's Deployment, the status), each request asserted; and a 409 on
//! the status write, which the operator retries on its next pass.

mod support;

use cutover_operator::crd::StorageBackend;
use cutover_operator::kube_cluster::KubeCluster;
use cutover_operator::reconcile::reconcile;
use cutover_operator::render::{Credentials, render};
use http::Method;
use k8s_openapi::jiff::Timestamp;
use serde_json::{Value, json};
use support::wire::*;

const SSA: &[(&str, &str)] = &[("fieldManager", "cutover-operator"), ("force", "true")];
const SECRET: &str = "c2VjcmV0LWtleS1kby1ub3QtbG9n"; // base64("secret-key-do-not-log")

fn resource() -> StorageBackend {
    serde_json::from_value(json!({
        "apiVersion": "cutover.dev/v1alpha1", "kind": "StorageBackend",
        "metadata": { "name": "app-storage", "namespace": "prod", "uid": "uid-1", "generation": 1 },
        "spec": {
            "provider": "aws-primary", "endpoint": "https://s3.eu-west-1.amazonaws.com", "region": "eu-west-1",
            "bucket": "app-prod-bucket", "credentialsSecret": "aws-primary-creds",
            "secret": { "name": "app-s3" },
            "rollout": { "selector": { "matchLabels": { "app.kubernetes.io/part-of": "shop" } }, "batchPercent": 50, "batchTimeout": "5m" }
        }
    }))
    .unwrap()
}

fn deployment(name: &str) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": { "name": name, "generation": 1 },
        "spec": { "replicas": 1, "selector": { "matchLabels": { "app": name } }, "template": { "spec": { "containers": [] } } },
        "status": { "observedGeneration": 1, "replicas": 1, "updatedReplicas": 1, "readyReplicas": 1, "availableReplicas": 1 }
    })
}

fn not_found(what: &str) -> Value {
    status_body(404, "NotFound", &format!("{what} not found"))
}

#[tokio::test]
async fn a_first_pass_snapshots_writes_and_rolls_the_first_batch() {
    let sb = resource();
    let creds = Credentials { access_key_id: "AKIA-test".into(), secret_access_key: "secret-key-do-not-log".into() };
    let hash = render(&sb.spec, &creds).hash;
    let (client, handle) = mock();
    let server = serve(
        handle,
        vec![
            Expect::new(Method::GET, "/api/v1/namespaces/prod/secrets/aws-primary-creds").answer(
                200,
                json!({ "apiVersion": "v1", "kind": "Secret", "metadata": { "name": "aws-primary-creds" },
                        "data": { "access_key_id": "QUtJQS10ZXN0", "secret_access_key": SECRET } }),
            ),
            Expect::new(Method::GET, "/api/v1/namespaces/prod/secrets/app-s3").answer(404, not_found("app-s3")),
            Expect::new(Method::GET, "/api/v1/namespaces/prod/secrets/app-storage-cutover-snapshot")
                .answer(404, not_found("snapshot")),
            Expect::new(Method::GET, "/apis/apps/v1/namespaces/prod/deployments")
                .query(&[("labelSelector", "app.kubernetes.io/part-of=shop")])
                .answer(200, json!({ "apiVersion": "apps/v1", "kind": "DeploymentList", "metadata": {},
                                     "items": [deployment("web"), deployment("api"), deployment("worker")] })),
            Expect::new(Method::GET, "/apis/batch/v1/namespaces/prod/jobs")
                .query(&[("labelSelector", "cutover.dev/storage-backend=app-storage")])
                .answer(200, json!({ "apiVersion": "batch/v1", "kind": "JobList", "metadata": {}, "items": [] })),
            // The snapshot: what the applications saw (no Secret yet) and every Deployment's annotation.
            Expect::new(Method::PATCH, "/api/v1/namespaces/prod/secrets/app-storage-cutover-snapshot")
                .query(SSA)
                .fields(
                    "application/apply-patch+yaml",
                    vec![
                        ("/metadata/ownerReferences/0/uid", json!("uid-1")),
                        ("/metadata/labels/cutover.dev~1storage-backend", json!("app-storage")),
                    ],
                )
                .answer(201, json!({ "apiVersion": "v1", "kind": "Secret", "metadata": { "name": "s" } })),
            Expect::new(Method::PATCH, "/api/v1/namespaces/prod/secrets/app-s3")
                .query(SSA)
                .apply(json!({
                    "apiVersion": "v1", "kind": "Secret", "type": "Opaque",
                    "metadata": { "name": "app-s3", "namespace": "prod" },
                    "data": {
                        "AWS_ACCESS_KEY_ID": "QUtJQS10ZXN0",
                        "AWS_ENDPOINT_URL_S3": "aHR0cHM6Ly9zMy5ldS13ZXN0LTEuYW1hem9uYXdzLmNvbQ==",
                        "AWS_REGION": "ZXUtd2VzdC0x",
                        "AWS_SECRET_ACCESS_KEY": SECRET,
                        "S3_BUCKET": "YXBwLXByb2QtYnVja2V0"
                    }
                }))
                .answer(201, json!({ "apiVersion": "v1", "kind": "Secret", "metadata": { "name": "app-s3" } })),
            Expect::new(Method::POST, "/api/v1/namespaces/prod/events")
                .fields(
                    "application/json",
                    vec![
                        ("/reason", json!("RolloutStarted")),
                        ("/type", json!("Normal")),
                        ("/involvedObject/kind", json!("StorageBackend")),
                        ("/involvedObject/name", json!("app-storage")),
                        ("/message", json!("rolling 3 Deployment(s) to provider aws-primary in 2 batch(es)")),
                    ],
                )
                .answer(201, json!({ "apiVersion": "v1", "kind": "Event", "metadata": { "name": "e" } })),
            Expect::new(Method::POST, "/api/v1/namespaces/prod/events")
                .fields("application/json", vec![("/reason", json!("BatchStarted")), ("/message", json!("batch 1/2: api, web"))])
                .answer(201, json!({ "apiVersion": "v1", "kind": "Event", "metadata": { "name": "e" } })),
            // Batch 1 of ceil(50% × 3) = 2, in name order: api, web.
            Expect::new(Method::PATCH, "/apis/apps/v1/namespaces/prod/deployments/api")
                .query(SSA)
                .apply(json!({ "apiVersion": "apps/v1", "kind": "Deployment", "metadata": { "name": "api" },
                               "spec": { "template": { "metadata": { "annotations": { "cutover.dev/provider-hash": hash.clone() } } } } }))
                .answer(200, deployment("api")),
            Expect::new(Method::PATCH, "/apis/apps/v1/namespaces/prod/deployments/web")
                .query(SSA)
                .apply(json!({ "apiVersion": "apps/v1", "kind": "Deployment", "metadata": { "name": "web" },
                               "spec": { "template": { "metadata": { "annotations": { "cutover.dev/provider-hash": hash.clone() } } } } }))
                .answer(200, deployment("web")),
            Expect::new(Method::PATCH, "/apis/cutover.dev/v1alpha1/namespaces/prod/storagebackends/app-storage/status")
                .query(SSA)
                .fields(
                    "application/apply-patch+yaml",
                    vec![
                        ("/status/observedGeneration", json!(1)),
                        ("/status/rollout/phase", json!("RollingBatch")),
                        ("/status/rollout/batch", json!(1)),
                        ("/status/rollout/batches", json!(2)),
                        ("/status/rollout/hash", json!(hash.clone())),
                        ("/status/conditions/0/type", json!("Ready")),
                        ("/status/conditions/0/status", json!("False")),
                        ("/status/conditions/1/type", json!("Progressing")),
                        ("/status/conditions/1/reason", json!("RollingBatch")),
                        ("/status/conditions/1/observedGeneration", json!(1)),
                    ],
                )
                // 409: someone else wrote the status; the pass fails and is retried.
                .answer(409, status_body(409, "Conflict", "Operation cannot be fulfilled: the object has been modified")),
        ],
    );
    let cluster = KubeCluster::new(client);
    let err = reconcile(&cluster, &sb, Timestamp::from_second(1_800_000_000).unwrap()).await.unwrap_err();
    assert!(err.retryable(), "{err}");
    assert!(!err.to_string().contains("secret-key-do-not-log"));
    server.await.unwrap();
}
