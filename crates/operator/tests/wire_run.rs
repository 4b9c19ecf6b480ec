//! The operator loop on the wire, end to end: it takes the Lease, starts its
//! watches, reconciles every StorageBackend once, and then a watch event (a
//! spec change: a new generation) makes it reconcile that StorageBackend
//! again at once, long before the hour-long resync of this test; a
//! status-only change (the same generation) does not. The mock
//! API server answers by route (the watches run concurrently, so there is no
//! fixed order); later watches are held open, never answered.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use cutover_operator::run::{Options, run};
use http::{Method, Response};
use kube::client::Body;
use serde_json::{Value, json};
use support::wire::*;

fn sb(generation: i64) -> Value {
    json!({
        "apiVersion": "cutover.dev/v1alpha1", "kind": "StorageBackend",
        "metadata": { "name": "app-storage", "namespace": "prod", "uid": "uid-1", "generation": generation, "resourceVersion": "11" },
        "spec": { "provider": "r2", "endpoint": "https://r2.example", "bucket": "b", "credentialsSecret": "creds" }
    })
}

fn respond(status: u16, body: Vec<u8>) -> Response<Body> {
    Response::builder().status(status).body(Body::from(body)).unwrap()
}

#[tokio::test]
async fn a_watch_event_reconciles_its_storage_backend_at_once() {
    let (client, mut handle) = mock();
    let reconciles = Arc::new(AtomicUsize::new(0));
    let seen = reconciles.clone();
    let (first_watch, mut watch_opened) = tokio::sync::mpsc::unbounded_channel();
    let server = tokio::spawn(async move {
        let mut held = Vec::new();
        let mut backend_watches = 0;
        while let Some((request, send)) = handle.next_request().await {
            let path = request.uri().path().to_string();
            let query = request.uri().query().unwrap_or("").to_string();
            let watching = query.contains("watch=true");
            let method = request.method().clone();
            let list = |version: &str| json!({ "apiVersion": "v1", "kind": "List", "metadata": { "resourceVersion": version }, "items": [] });
            let response = match (method, path.as_str()) {
                (Method::GET, p) if p.ends_with("/leases/cutover-operator") => {
                    respond(404, serde_json::to_vec(&status_body(404, "NotFound", "not found")).unwrap())
                }
                (Method::POST, p) if p.ends_with("/leases") => {
                    let bytes = request.into_body().collect_bytes().await.unwrap();
                    respond(201, bytes.to_vec())
                }
                (Method::GET, "/apis/cutover.dev/v1alpha1/namespaces/prod/storagebackends") if watching => {
                    backend_watches += 1;
                    assert!(query.contains("resourceVersion=1"), "{query}");
                    if backend_watches <= 2 {
                        // The test answers these.
                        first_watch.send(send).ok().unwrap();
                    } else {
                        held.push(send);
                    }
                    continue;
                }
                (Method::GET, "/apis/cutover.dev/v1alpha1/namespaces/prod/storagebackends") => {
                    let mut l = list("1");
                    l["items"] = json!([sb(1)]);
                    respond(200, serde_json::to_vec(&l).unwrap())
                }
                (Method::GET, _) if watching => {
                    held.push(send);
                    continue;
                }
                (Method::GET, "/apis/apps/v1/namespaces/prod/deployments" | "/apis/batch/v1/namespaces/prod/jobs") => {
                    respond(200, serde_json::to_vec(&list("1")).unwrap())
                }
                // A reconcile pass starts by reading the credentials Secret.
                (Method::GET, "/api/v1/namespaces/prod/secrets/creds") => {
                    seen.fetch_add(1, Ordering::SeqCst);
                    respond(
                        404,
                        serde_json::to_vec(&status_body(404, "NotFound", "secrets \"creds\" not found")).unwrap(),
                    )
                }
                (Method::PATCH, "/apis/cutover.dev/v1alpha1/namespaces/prod/storagebackends/app-storage/status") => {
                    respond(200, serde_json::to_vec(&sb(1)).unwrap())
                }
                (m, p) => panic!("unexpected request {m} {p}?{query}"),
            };
            send.send_response(response);
        }
    });
    let options = Options {
        namespace: Some("prod".into()),
        identity: "replica-a".into(),
        lease_namespace: "cutover-system".into(),
        lease_name: "cutover-operator".into(),
        lease_duration: Duration::from_secs(15),
        resync: Duration::from_secs(3600),
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let operator = tokio::spawn(run(client, options, async {
        let _ = stopped.await;
    }));
    // The start: the Lease, the first pass, the watches' lists (each a
    // resync). Wait until the StorageBackend watch is open and the passes
    // have settled (no reconcile for a second).
    let watch = tokio::time::timeout(Duration::from_secs(60), watch_opened.recv()).await.unwrap().unwrap();
    let mut before = reconciles.load(Ordering::SeqCst);
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let now = reconciles.load(Ordering::SeqCst);
        if now == before {
            break;
        }
        before = now;
    }
    assert!(before >= 1, "the start reconciles every StorageBackend");
    // A status-only change (the operator's own write: generation 1 still)
    // ends the first watch; the watch resumes (no re-list) and nothing is
    // reconciled.
    let status_only = json!({ "type": "MODIFIED", "object": sb(1) });
    watch.send_response(respond(200, format!("{status_only}\n").into_bytes()));
    let watch = tokio::time::timeout(Duration::from_secs(60), watch_opened.recv()).await.unwrap().unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(reconciles.load(Ordering::SeqCst), before, "a status-only change caused a reconcile");
    // A spec change (generation 2) arrives on the watch: one more reconcile,
    // within a generous bound (the resync alone would take an hour, the
    // credentials retry 30 s).
    let event = json!({ "type": "MODIFIED", "object": sb(2) });
    watch.send_response(respond(200, format!("{event}\n").into_bytes()));
    let sent = std::time::Instant::now();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while reconciles.load(Ordering::SeqCst) == before {
        assert!(tokio::time::Instant::now() < deadline, "the event did not cause a reconcile");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    eprintln!("event to reconcile: {:?}", sent.elapsed());
    stop.send(()).unwrap();
    operator.await.unwrap().unwrap();
    server.abort();
}
