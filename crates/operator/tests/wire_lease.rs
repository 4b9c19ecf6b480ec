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
/// every namespace (or of one), watches StorageBackends, Deployments and its
/// Jobs there, and stops on shutdown. The watches run concurrently, so the
/// mock answers by route and the test checks the requests made.
#[tokio::test(start_paused = true)]
async fn the_operator_loop_leads_then_lists_and_watches_every_namespace() {
    use std::sync::{Arc, Mutex};

    use cutover_operator::run::{Options, run};
    use http::Response;
    use kube::client::Body;

    for (namespace, prefix) in [(None, ""), (Some("prod"), "/namespaces/prod")] {
        let (client, mut handle) = mock();
        let now = k8s_openapi::jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%S%.6fZ").to_string();
        let log: Arc<Mutex<Vec<String>>> = Arc::default();
        let seen = log.clone();
        let server = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Some((request, send)) = handle.next_request().await {
                let method = request.method().clone();
                let path = request.uri().path().to_string();
                // kube's query strings start with `&`.
                let query = request.uri().query().unwrap_or("").trim_start_matches('&').to_string();
                seen.lock().unwrap().push(format!("{method} {path}?{query}"));
                if query.contains("watch=true") {
                    held.push(send);
                    continue;
                }
                let body = match (method, path.as_str()) {
                    (Method::GET, PATH) => lease("replica-a", &now, "5"),
                    (Method::PUT, PATH) => {
                        let bytes = request.into_body().collect_bytes().await.unwrap();
                        let sent: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
                        assert_eq!(sent["metadata"]["resourceVersion"], json!("5"));
                        lease("replica-a", &now, "6")
                    }
                    (Method::GET, _) => {
                        json!({ "apiVersion": "v1", "kind": "List", "metadata": { "resourceVersion": "1" }, "items": [] })
                    }
                    (m, p) => panic!("unexpected {m} {p}"),
                };
                send.send_response(
                    Response::builder().status(200).body(Body::from(serde_json::to_vec(&body).unwrap())).unwrap(),
                );
            }
        });
        let options = Options {
            namespace: namespace.map(str::to_string),
            identity: "replica-a".into(),
            lease_namespace: "cutover-system".into(),
            lease_name: "cutover-operator".into(),
            lease_duration: Duration::from_secs(15),
            resync: Duration::from_secs(60),
        };
        // Shut down before the next lease renewal (every 5 s: a third of the lease).
        run(client, options, tokio::time::sleep(Duration::from_secs(1))).await.unwrap();
        server.abort();
        let log = log.lock().unwrap().clone();
        let has = |want: &str| log.iter().any(|l| l == want);
        assert!(has(&format!("GET {PATH}?")), "{log:#?}");
        assert!(has(&format!("PUT {PATH}?")), "{log:#?}");
        let backends = format!("/apis/cutover.dev/v1alpha1{prefix}/storagebackends");
        assert!(has(&format!("GET {backends}?")), "the pass lists every StorageBackend: {log:#?}");
        let watch = "watch=true&timeoutSeconds=290&allowWatchBookmarks=true&resourceVersion=1";
        let jobs = "watch=true&timeoutSeconds=290&labelSelector=cutover.dev%2Fstorage-backend&allowWatchBookmarks=true&resourceVersion=1";
        assert!(has(&format!("GET {backends}?{watch}")), "{log:#?}");
        assert!(has(&format!("GET /apis/apps/v1{prefix}/deployments?{watch}")), "{log:#?}");
        assert!(has(&format!("GET /apis/batch/v1{prefix}/jobs?{jobs}")), "{log:#?}");
    }
}
