//! The JSON shapes, as etcd 3.4's gateway wrote them (recorded with curl).

use super::*;
use crate::watch::{EventType, WatchResponse};

#[test]
fn a_failed_txn_leaves_succeeded_out_and_carries_the_failure_reads() {
    let failed = r#"{"header":{"cluster_id":"324952591200643719","member_id":"3319814642761637952","revision":"2","raft_term":"2"},"responses":[{"response_range":{"header":{"revision":"2"},"kvs":[{"key":"L3AvbGVhZGVy","create_revision":"2","mod_revision":"2","version":"1","value":"aGVsbG8="}],"count":"1"}}]}"#;
    let r: TxnResponse = serde_json::from_str(failed).unwrap();
    assert!(!r.succeeded);
    assert_eq!(r.header.revision, 2);
    let kv = &r.range(0)[0];
    assert_eq!((kv.key.as_slice(), kv.value.as_slice(), kv.create_revision), (&b"/p/leader"[..], &b"hello"[..], 2));
    assert!(r.range(1).is_empty());
    let ok =
        r#"{"header":{"revision":"2"},"succeeded":true,"responses":[{"response_put":{"header":{"revision":"2"}}}]}"#;
    let r: TxnResponse = serde_json::from_str(ok).unwrap();
    assert!(r.succeeded && r.responses[0].response_put.is_some());
}

#[test]
fn an_empty_range_has_no_kvs_and_no_count() {
    let r: RangeResponse = serde_json::from_str(r#"{"header":{"revision":"3"}}"#).unwrap();
    assert_eq!((r.kvs.len(), r.count, r.header.revision), (0, 0, 3));
}

#[test]
fn leases_and_watch_events_parse() {
    let g: LeaseGrant = serde_json::from_str(r#"{"header":{},"ID":"2324035808745100293","TTL":"5"}"#).unwrap();
    assert_eq!((g.id, g.ttl), (2324035808745100293, 5));
    // A keepalive of a revoked lease answers without a TTL.
    let k: Streamed<LeaseTtl> = serde_json::from_str(r#"{"result":{"header":{},"ID":"2324035808745100302"}}"#).unwrap();
    assert_eq!(k.result.unwrap().ttl, 0);
    let line = r#"{"result":{"header":{"revision":"5"},"events":[{"type":"DELETE","kv":{"key":"L3AvYQ==","mod_revision":"5"},"prev_kv":{"key":"L3AvYQ==","create_revision":"4","mod_revision":"4","version":"1","value":"eA==","lease":"2324035808745100302"}}]}}"#;
    let w: Streamed<WatchResponse> = serde_json::from_str(line).unwrap();
    let ev = &w.result.unwrap().events[0];
    assert_eq!((ev.kind, ev.kv.mod_revision), (EventType::Delete, 5));
    assert_eq!(ev.prev_kv.as_ref().unwrap().lease, 2324035808745100302);
    let put = r#"{"result":{"header":{"revision":"4"},"events":[{"kv":{"key":"L3AvYQ==","create_revision":"4","mod_revision":"4","version":"1","value":"eA=="}}]}}"#;
    let w: Streamed<WatchResponse> = serde_json::from_str(put).unwrap();
    assert_eq!(w.result.unwrap().events[0].kind, EventType::Put);
}

#[test]
fn requests_use_the_gateway_field_names() {
    let c = Compare::create_revision(b"/p/leader", Cmp::Equal, 0);
    assert_eq!(c.0, json!({"key": "L3AvbGVhZGVy", "result": "EQUAL", "target": "CREATE", "create_revision": "0"}));
    let put = Op::Put { key: b"k".to_vec(), value: b"v".to_vec(), lease: 7 }.json();
    assert_eq!(put, json!({"request_put": {"key": "aw==", "value": "dg==", "lease": "7"}}));
    assert_eq!(crate::prefix_end(b"/p/"), b"/p0".to_vec());
    assert_eq!(crate::prefix_end(&[b'a', 0xff]), b"b".to_vec());
}
