//! Leader election on the wire: the Lease is created when absent, left alone
//! while another replica holds it, and taken over an expired holder only by
//! a replace conditional on its resourceVersion (a 409 means another replica
//! won: stand by).

mod support;

use std::time::Duration;

use cutover_operator::lease::LeaseLock;
use http::Method;
use serde_json::json;
use support::wire::*;

const PATH: &str = "/apis/coordination.k8s.io/v1/namespaces/cutover-system/leases/cutover-operator";

fn lease(holder: &str, renewed: &str, version: &str) -> serde_json::Value {
    json!({
        "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": { "name": "cutover-operator", "namespace": "cutover-system", "resourceVersion": version },
        "spec": { "holderIdentity": holder, "leaseDurationSeconds": 15, "renewTime": renewed, "leaseTransitions": 3 }
    })
}

#[tokio::test]
async fn the_lease_is_created_respected_and_taken_over_only_conditionally() {
    let (client, handle) = mock();
    let now = k8s_openapi::jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%S%.6fZ").to_string();
    let server = serve(
        handle,
        vec![
            Expect::new(Method::GET, PATH)
                .answer(404, status_body(404, "NotFound", "leases \"cutover-operator\" not found")),
            Expect::new(Method::POST, "/apis/coordination.k8s.io/v1/namespaces/cutover-system/leases")
                .fields(
                    "application/json",
                    vec![
                        ("/metadata/name", json!("cutover-operator")),
                        ("/spec/holderIdentity", json!("replica-a")),
                        ("/spec/leaseDurationSeconds", json!(15)),
                        ("/spec/leaseTransitions", json!(0)),
                    ],
                )
                .answer(201, lease("replica-a", &now, "1")),
            // Held by another replica, renewed just now: no write at all.
            Expect::new(Method::GET, PATH).answer(200, lease("replica-b", &now, "7")),
            // Expired: a replace guarded by resourceVersion 42; another replica won (409).
            Expect::new(Method::GET, PATH).answer(200, lease("replica-b", "2020-01-01T00:00:00.000000Z", "42")),
            Expect::new(Method::PUT, PATH)
                .fields(
                    "application/json",
                    vec![
                        ("/metadata/resourceVersion", json!("42")),
                        ("/spec/holderIdentity", json!("replica-a")),
                        ("/spec/leaseTransitions", json!(4)),
                    ],
                )
                .answer(
                    409,
                    status_body(
                        409,
                        "Conflict",
                        "Operation cannot be fulfilled on leases: the object has been modified",
                    ),
                ),
        ],
    );
    let lock = LeaseLock::new(client, "cutover-system", "cutover-operator", "replica-a", Duration::from_secs(15));
    assert!(lock.try_acquire_or_renew().await.unwrap(), "created: leads");
    assert!(!lock.try_acquire_or_renew().await.unwrap(), "held by replica-b");
    assert!(!lock.try_acquire_or_renew().await.unwrap(), "lost the race for the expired lease");
    server.await.unwrap();
}

/// The operator loop on the wire: it leads, lists the StorageBackends of
/// every namespace (or of one), reconciles each, and stops on shutdown.
#[tokio::test(start_paused = true)]
async fn the_operator_loop_leads_then_lists_every_namespace() {
    use cutover_operator::run::{Options, run};
    for (namespace, path) in [
        (None, "/apis/cutover.dev/v1alpha1/storagebackends"),
        (Some("prod"), "/apis/cutover.dev/v1alpha1/namespaces/prod/storagebackends"),
    ] {
        let (client, handle) = mock();
        let now = k8s_openapi::jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%S%.6fZ").to_string();
        let server = serve(
            handle,
            vec![
                Expect::new(Method::GET, PATH).answer(200, lease("replica-a", &now, "5")),
                Expect::new(Method::PUT, PATH)
                    .fields("application/json", vec![("/metadata/resourceVersion", json!("5"))])
                    .answer(200, lease("replica-a", &now, "6")),
                Expect::new(Method::GET, path).answer(
                    200,
                    json!({ "apiVersion": "cutover.dev/v1alpha1", "kind": "StorageBackendList", "metadata": {}, "items": [] }),
                ),
            ],
        );
        let options = Options {
            namespace: namespace.map(str::to_string),
            identity: "replica-a".into(),
            lease_namespace: "cutover-system".into(),
            lease_name: "cutover-operator".into(),
            lease_duration: Duration::from_secs(15),
            resync: Duration::from_secs(60),
        };
        // Shut down before the next pass (every 5 s: a third of the lease).
        run(client, options, tokio::time::sleep(Duration::from_secs(1))).await.unwrap();
        server.await.unwrap();
    }
}
