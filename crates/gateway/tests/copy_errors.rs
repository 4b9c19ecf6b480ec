//! A copy (CopyObject, UploadPartCopy) that a backend answers "200 with an
//! error document" failed: the gateway never answers 200 for it, and in
//! dual-write the other side's such answer is a missed write. The gateway
//! in process in front of fake backends (plain HTTP on loopback).

mod common;

use std::convert::Infallible;

use bytes::Bytes;
use cutover_s3::sigv4::{self, AmzDate, CanonicalRequest};
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use common::{BackendSpec, CLIENT_KEY, CLIENT_SECRET, TestGateway};

const COPY_OK: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<CopyObjectResult><LastModified>2026-01-01T00:00:00.000Z</LastModified><ETag>\"e\"</ETag></CopyObjectResult>";
const COPY_FAILED: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>InternalError</Code><Message>We encountered an internal error. Please try again.</Message></Error>";

/// A backend that answers every request 200, a copy with `copy_body`.
async fn fake_backend(copy_body: &'static str) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else { return };
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req: Request<Incoming>| async move {
                    let copy = req.headers().contains_key("x-amz-copy-source");
                    let _ = req.into_body().collect().await;
                    let body = if copy { Bytes::from_static(copy_body.as_bytes()) } else { Bytes::new() };
                    let resp = Response::builder().status(200).header("etag", "\"e\"").body(Full::new(body)).unwrap();
                    Ok::<_, Infallible>(resp)
                });
                let _ = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), svc).await;
            });
        }
    });
    port
}

fn spec(endpoint: &str) -> BackendSpec<'_> {
    BackendSpec { endpoint, region: "garage", bucket: "data", key_id: "GKBACKEND", secret: "backend-secret" }
}

/// A header-signed copy of `/app/src` to `/app/dst` (with `query`: UploadPartCopy).
async fn copy(port: u16, query: &[(String, String)]) -> common::Answer {
    let host = format!("127.0.0.1:{port}");
    let date = AmzDate::now();
    let hash = sigv4::EMPTY_SHA256;
    let headers = vec![
        ("host".to_string(), host.clone()),
        ("x-amz-content-sha256".to_string(), hash.to_string()),
        ("x-amz-date".to_string(), date.datetime.clone()),
        ("x-amz-copy-source".to_string(), "/app/src".to_string()),
    ];
    let req =
        CanonicalRequest { method: "PUT", encoded_path: "/app/dst", query, headers: &headers, payload_hash: hash };
    let auth = sigv4::authorization(CLIENT_KEY, CLIENT_SECRET, "us-east-1", &date, &req);
    let q: Vec<String> = query.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let q = if q.is_empty() { String::new() } else { format!("?{}", q.join("&")) };
    let mut head = format!("PUT /app/dst{q} HTTP/1.1\r\n");
    for (k, v) in &headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str(&format!("authorization: {auth}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"));
    common::send(port, &head, b"").await
}

fn part_query() -> Vec<(String, String)> {
    vec![("partNumber".into(), "1".into()), ("uploadId".into(), "u1".into())]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copy_answered_200_with_an_error_document_is_never_acknowledged() {
    let failing = fake_backend(COPY_FAILED).await;
    let endpoint = format!("http://127.0.0.1:{failing}");
    let gw = TestGateway::start(&spec(&endpoint)).await;
    for (what, query) in [("CopyObject", vec![]), ("UploadPartCopy", part_query())] {
        let a = copy(gw.port, &query).await;
        assert_eq!((a.status, a.code().as_deref()), (500, Some("InternalError")), "{what}");
    }
    let working = fake_backend(COPY_OK).await;
    let endpoint = format!("http://127.0.0.1:{working}");
    let gw = TestGateway::start(&spec(&endpoint)).await;
    for (what, query) in [("CopyObject", vec![]), ("UploadPartCopy", part_query())] {
        let a = copy(gw.port, &query).await;
        assert_eq!(a.status, 200, "{what}");
        assert!(String::from_utf8_lossy(&a.body).contains("<CopyObjectResult>"), "{what}");
    }
}

/// With `ack = "all"` the client learns that the other backend missed the
/// copy (which the gateway journals).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dual_write_copy_the_other_side_answered_200_with_an_error_document_is_a_missed_write() {
    let (working, failing) = (fake_backend(COPY_OK).await, fake_backend(COPY_FAILED).await);
    let (a, b) = (format!("http://127.0.0.1:{working}"), format!("http://127.0.0.1:{failing}"));
    let gw = TestGateway::start_with(&[spec(&a), spec(&b)], "mode = \"dual-write\"\nack = \"all\"").await;
    let answer = copy(gw.port, &[]).await;
    assert_eq!((answer.status, answer.code().as_deref()), (503, Some("ServiceUnavailable")));
    // Both sides took it: acknowledged.
    let other = fake_backend(COPY_OK).await;
    let c = format!("http://127.0.0.1:{other}");
    let gw = TestGateway::start_with(&[spec(&a), spec(&c)], "mode = \"dual-write\"\nack = \"all\"").await;
    assert_eq!(copy(gw.port, &[]).await.status, 200);
}
