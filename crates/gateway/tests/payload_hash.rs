//! What a backend receives for a client's PUT: the gateway in process in
//! front of a recording fake backend (plain HTTP on loopback).
//!
//! - a signed payload hash is signed upstream as is (the backend checks the
//!   body too), and a body that does not match it never reaches the backend
//!   whole (so it cannot commit the object);
//! - presigned (unsigned) payloads go up as `UNSIGNED-PAYLOAD`, bodyless
//!   requests with the empty body's hash;
//! - every upstream request verifies with the backend's secret.

mod common;

use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use cutover_core::Secret;
use cutover_gateway::auth::{ClientKeys, Payload, parse_query, verify};
use cutover_s3::sigv4::{self, AmzDate, CanonicalRequest, EMPTY_SHA256, UNSIGNED_PAYLOAD};
use http::{HeaderMap, Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use common::{BackendSpec, CLIENT_KEY, CLIENT_SECRET, TestGateway};

const BACKEND_KEY: &str = "GKBACKEND";
const BACKEND_SECRET: &str = "backend-secret";

/// One request as the fake backend saw it.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    path: String,
    query: String,
    headers: HeaderMap,
    /// The whole body, or None when the request ended short of it.
    body: Option<Bytes>,
}

type Log = Arc<Mutex<Vec<Seen>>>;

/// A backend that records every request and answers 200 to the complete ones.
async fn fake_backend() -> (u16, Log) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let log: Log = Arc::default();
    let l = log.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else { return };
            let l = l.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                    let l = l.clone();
                    async move {
                        let (parts, body) = req.into_parts();
                        let body = body.collect().await.ok().map(|c| c.to_bytes());
                        let complete = body.is_some();
                        l.lock().unwrap().push(Seen {
                            method: parts.method.to_string(),
                            path: parts.uri.path().to_string(),
                            query: parts.uri.query().unwrap_or("").to_string(),
                            headers: parts.headers,
                            body,
                        });
                        let status = if complete { 200 } else { 400 };
                        let resp = Response::builder()
                            .status(status)
                            .header("etag", "\"e\"")
                            .body(Full::new(Bytes::new()))
                            .unwrap();
                        Ok::<_, Infallible>(resp)
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), svc).await;
            });
        }
    });
    (port, log)
}

/// A gateway (bucket `app` → backend bucket `data`) in front of the fake backend.
async fn gateway(backend_port: u16) -> TestGateway {
    let endpoint = format!("http://127.0.0.1:{backend_port}");
    let spec = BackendSpec {
        endpoint: &endpoint,
        region: "garage",
        bucket: "data",
        key_id: BACKEND_KEY,
        secret: BACKEND_SECRET,
    };
    TestGateway::start(&spec).await
}

/// Sends one raw request and returns the status.
async fn send(port: u16, head: &str, body: &[u8]) -> u16 {
    common::send(port, head, body).await.status
}

/// A header-signed request for the gateway's client key.
fn signed_head(port: u16, method: &str, path: &str, payload_hash: &str, len: usize) -> String {
    let host = format!("127.0.0.1:{port}");
    let date = AmzDate::now();
    let headers = vec![
        ("host".to_string(), host.clone()),
        ("x-amz-content-sha256".to_string(), payload_hash.to_string()),
        ("x-amz-date".to_string(), date.datetime.clone()),
    ];
    let req = CanonicalRequest { method, encoded_path: path, query: sigv4::NO_QUERY, headers: &headers, payload_hash };
    let auth = sigv4::authorization(CLIENT_KEY, CLIENT_SECRET, "us-east-1", &date, &req);
    format!(
        "{method} {path} HTTP/1.1\r\nhost: {host}\r\nx-amz-content-sha256: {payload_hash}\r\nx-amz-date: {}\r\n\
         authorization: {auth}\r\ncontent-length: {len}\r\nconnection: close\r\n\r\n",
        date.datetime
    )
}

/// Checks the upstream request's signature with the backend's secret and
/// returns what it says about the payload.
fn backend_verifies(seen: &Seen) -> Payload {
    let keys = ClientKeys::new([(BACKEND_KEY.to_string(), Secret::new(BACKEND_SECRET))]);
    let query = parse_query(&seen.query);
    verify(&keys, &seen.method, &seen.path, &query, &seen.headers, SystemTime::now())
        .unwrap_or_else(|e| panic!("the backend refuses the gateway's signature: {e}"))
        .payload
}

fn content_sha256(seen: &Seen) -> &str {
    seen.headers.get("x-amz-content-sha256").unwrap().to_str().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backends_get_the_verified_hash_and_never_a_whole_body_that_fails_it() {
    let (backend, log) = fake_backend().await;
    let gw = gateway(backend).await;
    let port = gw.port;

    // A signed payload: the same hash goes up, signed with the backend key.
    let body = b"hello, backend".as_slice();
    let hash = sigv4::sha256_hex(body);
    let status = send(port, &signed_head(port, "PUT", "/app/k1", &hash, body.len()), body).await;
    assert_eq!(status, 200);
    let seen = log.lock().unwrap().pop().expect("the backend got the PUT");
    assert_eq!(seen.path, "/data/k1");
    assert_eq!(seen.body.as_deref(), Some(body));
    assert_eq!(content_sha256(&seen), hash);
    let mut want = [0u8; 32];
    hex::decode_to_slice(&hash, &mut want).unwrap();
    assert_eq!(backend_verifies(&seen), Payload::Sha256(want));

    // A body that does not match its signed hash: refused, and the backend
    // never sees it whole, in one frame or in several.
    for tampered in [b"hellO, backend".to_vec(), vec![b'x'; 300_000]] {
        let status = send(port, &signed_head(port, "PUT", "/app/k2", &hash, tampered.len()), &tampered).await;
        assert_eq!(status, 400, "a tampered body is refused (XAmzContentSHA256Mismatch), never acknowledged");
        tokio::time::sleep(Duration::from_millis(200)).await;
        for seen in log.lock().unwrap().drain(..) {
            assert!(seen.body.is_none(), "the backend got a whole tampered body on {}", seen.path);
        }
    }

    // A presigned PUT (unsigned payload) and a GET (no body).
    let presigned_path = presign(port, "PUT", "/app/k3");
    let head = format!(
        "PUT {presigned_path} HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\ncontent-length: 3\r\nconnection: close\r\n\r\n"
    );
    assert_eq!(send(port, &head, b"abc").await, 200);
    let seen = log.lock().unwrap().pop().unwrap();
    assert_eq!((seen.query.as_str(), content_sha256(&seen)), ("", UNSIGNED_PAYLOAD));
    assert_eq!(backend_verifies(&seen), Payload::Unsigned);
    assert_eq!(send(port, &signed_head(port, "GET", "/app/k1", EMPTY_SHA256, 0), b"").await, 200);
    let seen = log.lock().unwrap().pop().unwrap();
    assert_eq!((seen.method.as_str(), content_sha256(&seen)), ("GET", EMPTY_SHA256));
    backend_verifies(&seen);
}

/// The path and query of a presigned URL for the gateway's client key.
fn presign(port: u16, method: &str, path: &str) -> String {
    let q = sigv4::presign_query(
        method,
        &format!("127.0.0.1:{port}"),
        path,
        CLIENT_KEY,
        CLIENT_SECRET,
        None,
        "us-east-1",
        &AmzDate::now(),
        Duration::from_secs(300),
    );
    format!("{path}?{q}")
}

/// `curl -T -` and friends: HTTP chunked, no Content-Length, a payload that
/// is not aws-chunked (presigned, `UNSIGNED-PAYLOAD`, a signed hash), on a
/// PUT or an UploadPart. Refused with 411; the backend never sees it (it
/// would have been sent with `Content-Length: 0` and stored empty).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chunked_put_without_content_length_is_never_acknowledged_empty() {
    let (backend, log) = fake_backend().await;
    let gw = gateway(backend).await;
    let port = gw.port;
    let wire = b"3\r\nabc\r\n0\r\n\r\n";
    let chunked = |head: String| head.replace("content-length: 3\r\n", "transfer-encoding: chunked\r\n");
    let presigned = chunked(format!(
        "PUT {} HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\ncontent-length: 3\r\nconnection: close\r\n\r\n",
        presign(port, "PUT", "/app/k")
    ));
    let unsigned = chunked(signed_head(port, "PUT", "/app/k", UNSIGNED_PAYLOAD, 3));
    let hashed = chunked(signed_head(port, "PUT", "/app/k", &sigv4::sha256_hex(b"abc"), 3));
    let part = chunked(signed_part_head(port));
    for (what, head) in [("presigned", presigned), ("unsigned", unsigned), ("hashed", hashed), ("part", part)] {
        assert!(head.contains("transfer-encoding: chunked\r\n") && !head.contains("content-length"), "{what}");
        let a = common::send(port, &head, wire).await;
        assert_eq!((a.status, a.code().as_deref()), (411, Some("MissingContentLength")), "{what}");
        assert!(String::from_utf8_lossy(&a.body).contains("You must provide the Content-Length HTTP header."));
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(log.lock().unwrap().is_empty(), "the backend got a request");

    // With a Content-Length, the same presigned PUT goes through whole.
    let head = format!(
        "PUT {} HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\ncontent-length: 3\r\nconnection: close\r\n\r\n",
        presign(port, "PUT", "/app/k")
    );
    assert_eq!(send(port, &head, b"abc").await, 200);
    assert_eq!(log.lock().unwrap().pop().unwrap().body.as_deref(), Some(b"abc".as_slice()));
}

/// A presigned PUT is signed over `host` only: an `x-amz-*` header added to
/// it (a copy source, an ACL) is refused, never signed upstream by the
/// gateway on the client's behalf.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unsigned_x_amz_copy_source_on_a_presigned_put_is_refused() {
    let (backend, log) = fake_backend().await;
    let gw = gateway(backend).await;
    let port = gw.port;
    for extra in ["x-amz-copy-source: /app/private/x", "x-amz-acl: public-read", "x-amz-tagging: a=b"] {
        let head = format!(
            "PUT {} HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\n{extra}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
            presign(port, "PUT", "/app/k")
        );
        let a = common::send(port, &head, b"").await;
        assert_eq!((a.status, a.code().as_deref()), (403, Some("AccessDenied")), "{extra}");
        assert!(
            String::from_utf8_lossy(&a.body)
                .contains("There were headers present in the request which were not signed")
        );
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(log.lock().unwrap().is_empty(), "the backend got a request");
}

/// A header-signed UploadPart (`UNSIGNED-PAYLOAD`) head with a Content-Length of 3.
fn signed_part_head(port: u16) -> String {
    let host = format!("127.0.0.1:{port}");
    let date = AmzDate::now();
    let headers = vec![
        ("host".to_string(), host.clone()),
        ("x-amz-content-sha256".to_string(), UNSIGNED_PAYLOAD.to_string()),
        ("x-amz-date".to_string(), date.datetime.clone()),
    ];
    let query = [("partNumber".to_string(), "1".to_string()), ("uploadId".to_string(), "u1".to_string())];
    let req = CanonicalRequest {
        method: "PUT",
        encoded_path: "/app/k",
        query: &query,
        headers: &headers,
        payload_hash: UNSIGNED_PAYLOAD,
    };
    let auth = sigv4::authorization(CLIENT_KEY, CLIENT_SECRET, "us-east-1", &date, &req);
    format!(
        "PUT /app/k?partNumber=1&uploadId=u1 HTTP/1.1\r\nhost: {host}\r\nx-amz-content-sha256: {UNSIGNED_PAYLOAD}\r\n\
         x-amz-date: {}\r\nauthorization: {auth}\r\ncontent-length: 3\r\nconnection: close\r\n\r\n",
        date.datetime
    )
}
