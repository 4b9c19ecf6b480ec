//! Keys stay where they belong, checked from outside against Garage with raw
//! requests signed with the gateway's client key: `.`/`..` segments are
//! refused before anything is forwarded, the probe prefix can be neither
//! read, written, deleted nor listed, and a presigned URL that pins
//! `x-amz-content-sha256` has its body checked (a mismatch commits nothing).

mod common;

use std::time::Duration;

use bytes::Bytes;
use cutover_s3::sigv4::{self, AmzDate, CanonicalRequest, UNSIGNED_PAYLOAD};

use common::{CLIENT_KEY, CLIENT_SECRET, lab, signed};

const PROBE: &str = ".cutover-probe/";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dot_dot_key_is_refused() {
    let lab = lab().await;
    let port = lab.gw.port;
    for path in [
        "/app/a/../b",
        "/app/./x",
        "/app/..",
        "/app/x/.",
        "/app/%2e%2e",
        "/app/a/%2E%2E/b",
        "/app/x%2F..",
        "/app/%2e/x",
    ] {
        for method in ["PUT", "GET", "HEAD", "DELETE"] {
            let a = signed(port, method, path, &[], &[], if method == "PUT" { b"data" } else { b"" }).await;
            assert_eq!(a.status, 400, "{method} {path}: {a:?}");
            if method != "HEAD" {
                assert_eq!(a.code().as_deref(), Some("InvalidArgument"), "{method} {path}");
                assert!(String::from_utf8_lossy(&a.body).contains("path segment"), "{method} {path}");
            }
            assert!(a.header("x-cutover-backend").is_none(), "{method} {path} reached a backend");
        }
    }
    // As a copy source too, and in a multipart upload.
    lab.direct.put_object("b", Bytes::from_static(b"secret"), &[]).await.unwrap();
    let a = signed(port, "PUT", "/app/c", &[], &[("x-amz-copy-source", "/app/a/../b")], b"").await;
    assert_eq!((a.status, a.code().as_deref()), (400, Some("InvalidArgument")));
    let a = signed(port, "POST", "/app/x/..", &[("uploads", "")], &[], b"").await;
    assert_eq!((a.status, a.code().as_deref()), (400, Some("InvalidArgument")));
    let page = lab.direct.list_objects_v2("", None, 1000).await.unwrap();
    let keys: Vec<&str> = page.objects.iter().map(|o| o.key.as_str()).collect();
    assert_eq!(keys, ["b"], "nothing but the seeded object reached Garage");
    // Keys that only look like dots are fine.
    for key in ["a..b", ".x", "..."] {
        let a = signed(port, "PUT", &format!("/app/{key}"), &[], &[], b"ok").await;
        assert_eq!(a.status, 200, "{key}: {a:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probe_prefix_is_not_listed_or_readable() {
    let lab = lab().await;
    let port = lab.gw.port;
    let probe_key = format!("{PROBE}probe-1");
    lab.direct.put_object(&probe_key, Bytes::from_static(b"probe"), &[]).await.unwrap();
    lab.direct.put_object("a", Bytes::from_static(b"mine"), &[]).await.unwrap();
    let upload = lab.direct.create_multipart(&format!("{PROBE}upload"), &[]).await.unwrap();

    // Read, write, delete, tag, copy: 403 AccessDenied, never forwarded.
    let encoded = "/app/%2Ecutover-probe%2Fprobe-1";
    let plain = format!("/app/{probe_key}");
    for (method, path, query, headers, body) in [
        ("GET", plain.as_str(), vec![], vec![], &b""[..]),
        ("GET", encoded, vec![], vec![], b""),
        ("PUT", plain.as_str(), vec![], vec![], b"forged"),
        ("DELETE", plain.as_str(), vec![], vec![], b""),
        ("PUT", plain.as_str(), vec![("tagging", "")], vec![], b"<Tagging><TagSet/></Tagging>"),
        ("GET", plain.as_str(), vec![("uploadId", upload.as_str())], vec![], b""),
        ("PUT", "/app/stolen", vec![], vec![("x-amz-copy-source", "/app/.cutover-probe/probe-1")], b""),
    ] {
        let a = signed(port, method, path, &query, &headers, body).await;
        assert_eq!((a.status, a.code().as_deref()), (403, Some("AccessDenied")), "{method} {path} {query:?}");
        assert!(a.header("x-cutover-backend").is_none());
    }
    let a = signed(port, "HEAD", &plain, &[], &[], b"").await;
    assert_eq!(a.status, 403);
    assert_eq!(lab.stored(&probe_key).await.as_deref(), Some(&b"probe"[..]), "the probe object is untouched");
    assert_eq!(lab.stored("stolen").await, None);

    // Listings: neither the objects nor the common prefix nor the upload.
    let listings: Vec<Vec<(&str, &str)>> = vec![
        vec![("list-type", "2")],
        vec![("list-type", "2"), ("delimiter", "/")],
        vec![("list-type", "2"), ("prefix", ".cutover-probe/")],
        vec![("list-type", "2"), ("prefix", ".")],
        vec![("list-type", "2"), ("encoding-type", "url")],
        vec![],
        vec![("delimiter", "/")],
        vec![("prefix", ".cutover-probe")],
        vec![("uploads", "")],
        vec![("uploads", ""), ("delimiter", "/")],
        vec![("versions", "")],
    ];
    for q in &listings {
        let a = signed(port, "GET", "/app", q, &[], b"").await;
        let text = String::from_utf8_lossy(&a.body);
        assert!(!shows_probe(&text), "{q:?} shows the probe prefix: {text}");
        if q.first() == Some(&("list-type", "2")) && q.len() == 1 {
            assert_eq!(a.status, 200);
            assert!(text.contains("<Key>a</Key>") && text.contains("<KeyCount>1</KeyCount>"), "{text}");
        }
    }

    // DeleteObjects: the probe key is refused on its own, the others deleted.
    let body = format!(
        "<Delete><Object><Key>a</Key></Object><Object><Key>{}</Key></Object><Object><Key>x/../y</Key></Object></Delete>",
        probe_key.replace('/', "&#47;")
    );
    let a = signed(port, "POST", "/app", &[("delete", "")], &[], body.as_bytes()).await;
    assert_eq!(a.status, 200, "{a:?}");
    let text = String::from_utf8_lossy(&a.body);
    assert!(text.contains("<Deleted>") && text.contains("<Key>a</Key>"), "{text}");
    assert!(
        text.contains(&format!("<Error><Key>{probe_key}</Key><Code>AccessDenied</Code>")),
        "the probe key is refused: {text}"
    );
    assert!(text.contains("<Error><Key>x/../y</Key><Code>InvalidArgument</Code>"), "{text}");
    assert_eq!(lab.stored("a").await, None);
    assert_eq!(lab.stored(&probe_key).await.as_deref(), Some(&b"probe"[..]));
    // Only refused keys: answered by the gateway, nothing forwarded.
    let only = format!("<Delete><Quiet>true</Quiet><Object><Key>{probe_key}</Key></Object></Delete>");
    let a = signed(port, "POST", "/app", &[("delete", "")], &[], only.as_bytes()).await;
    assert_eq!(a.status, 200);
    assert!(String::from_utf8_lossy(&a.body).contains("<Code>AccessDenied</Code>"));
    assert_eq!(lab.stored(&probe_key).await.as_deref(), Some(&b"probe"[..]));
}

/// Does a listing name a key or common prefix under the probe prefix?
/// (The request's own `<Prefix>` echo does not count.)
fn shows_probe(text: &str) -> bool {
    let values = |open: &str, close: &str| -> Vec<String> {
        text.split(open)
            .skip(1)
            .filter_map(|s| s.split_once(close).map(|(v, _)| cutover_gateway::auth::percent_decode(v)))
            .collect()
    };
    let mut all = values("<Key>", "</Key>");
    all.extend(values("<CommonPrefixes><Prefix>", "</Prefix>"));
    all.iter().any(|v| v.starts_with(PROBE) || v.starts_with("&#46;cutover"))
}

/// A presigned URL for `path` whose payload is pinned by the
/// `x-amz-content-sha256` header (`in_query` false: the header must be sent)
/// or by a signed `X-Amz-Content-Sha256` query parameter.
fn presigned_pinned(port: u16, path: &str, hash: &str, in_query: bool) -> String {
    let host = format!("127.0.0.1:{port}");
    let date = AmzDate::now();
    let mut query = vec![
        ("X-Amz-Algorithm".to_string(), "AWS4-HMAC-SHA256".to_string()),
        ("X-Amz-Credential".to_string(), format!("{CLIENT_KEY}/{}/us-east-1/s3/aws4_request", date.date)),
        ("X-Amz-Date".to_string(), date.datetime.clone()),
        ("X-Amz-Expires".to_string(), "300".to_string()),
        ("X-Amz-SignedHeaders".to_string(), "host".to_string()),
    ];
    if in_query {
        query.push(("X-Amz-Content-Sha256".to_string(), hash.to_string()));
    }
    let headers = [("host".to_string(), host)];
    let payload_hash = if in_query { UNSIGNED_PAYLOAD } else { hash };
    let req = CanonicalRequest { method: "PUT", encoded_path: path, query: &query, headers: &headers, payload_hash };
    let (canonical, _) = req.render();
    let sig = sigv4::signature(CLIENT_SECRET, &date, "us-east-1", "s3", &canonical);
    query.push(("X-Amz-Signature".to_string(), sig));
    let q: Vec<String> =
        query.iter().map(|(k, v)| format!("{}={}", sigv4::uri_encode(k, false), sigv4::uri_encode(v, false))).collect();
    format!("{path}?{}", q.join("&"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presigned_put_with_pinned_sha256_and_other_body_is_refused() {
    let lab = lab().await;
    let port = lab.gw.port;
    let good = b"the body the URL was made for".to_vec();
    let hash = sigv4::sha256_hex(&good);
    for (what, in_query) in [("header", false), ("query", true)] {
        let key = format!("pinned-{what}");
        lab.direct.put_object(&key, Bytes::from_static(b"old"), &[]).await.unwrap();
        let url = presigned_pinned(port, &format!("/app/{key}"), &hash, in_query);
        let pin = if in_query { String::new() } else { format!("x-amz-content-sha256: {hash}\r\n") };
        for other in [b"another body of the same size!".to_vec(), vec![b'x'; 300_000]] {
            let head = format!(
                "PUT {url} HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\n{pin}content-length: {}\r\nconnection: close\r\n\r\n",
                other.len()
            );
            let a = common::send(port, &head, &other).await;
            assert_eq!((a.status, a.code().as_deref()), (400, Some("XAmzContentSHA256Mismatch")), "{what}: {a:?}");
            tokio::time::sleep(Duration::from_millis(200)).await;
            assert_eq!(lab.stored(&key).await.as_deref(), Some(&b"old"[..]), "{what}: the write was committed");
        }
        // The body it was made for goes through.
        let head = format!(
            "PUT {url} HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\n{pin}content-length: {}\r\nconnection: close\r\n\r\n",
            good.len()
        );
        let a = common::send(port, &head, &good).await;
        assert_eq!(a.status, 200, "{what}: {a:?}");
        assert_eq!(lab.stored(&key).await.as_deref(), Some(&good[..]));
    }
    // A header-signed request with a hex payload hash: the same.
    let head = common::signed_head_with_hash(port, "PUT", "/app/hashed", &hash, 3);
    let a = common::send(port, &head, b"abc").await;
    assert_eq!((a.status, a.code().as_deref()), (400, Some("XAmzContentSHA256Mismatch")));
    assert_eq!(lab.stored("hashed").await, None, "the write was committed");
}

/// boto3 as an application uses it: dot-segment keys are refused (botocore
/// sends them as they are), probe objects are neither readable nor listed
/// across pages, and a batch delete refuses the probe key on its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn boto3_sees_neither_dot_keys_nor_the_probe_prefix() {
    let lab = lab().await;
    for key in ["a", "b", "c"] {
        lab.direct.put_object(key, Bytes::from_static(b"mine"), &[]).await.unwrap();
    }
    for i in 0..5 {
        lab.direct.put_object(&format!("{PROBE}p{i}"), Bytes::from_static(b"probe"), &[]).await.unwrap();
    }
    let stdout = common::boto3(lab.gw.port, &[&common::script("boto3_keys.py")]).await;
    let v: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    for key in ["a/../b", "./x", "..", "x/."] {
        assert_eq!(v["dot_keys"][key], "InvalidArgument", "{key}: {v}");
    }
    assert_eq!((v["probe_get"].as_str(), v["probe_put"].as_str()), (Some("AccessDenied"), Some("AccessDenied")));
    assert_eq!(v["probe_head"], "403");
    assert_eq!(v["listed_v2"], serde_json::json!(["a", "b", "c"]), "{v}");
    assert_eq!(v["listed_v1_delimited"], serde_json::json!(["a", "b", "c"]), "{v}");
    assert_eq!(v["deleted"], serde_json::json!(["c"]));
    assert_eq!(v["errors"], serde_json::json!([[".cutover-probe/p1", "AccessDenied"]]));
    assert_eq!(lab.stored(&format!("{PROBE}p1")).await.as_deref(), Some(&b"probe"[..]));
    assert_eq!(lab.stored("c").await, None);
}

/// Regression: a refusal sent before the body was read left the connection
/// open; a client that had sent `Expect: 100-continue` and then sent its
/// body anyway had those bytes read as its next request's head, which got a
/// bare 400 no S3 client can parse (botocore 1.43, intermittently). The
/// refusal now closes the connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusal_before_the_body_closes_the_connection_so_a_late_body_is_not_read_as_a_request() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let lab = lab().await;
    let port = lab.gw.port;
    let hash = cutover_s3::sigv4::sha256_hex(b"x");
    let head = common::signed_head_with_hash(port, "PUT", "/app/..", &hash, 1)
        .replace("connection: close\r\n", "expect: 100-continue\r\n");
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    s.write_all(head.as_bytes()).await.unwrap();
    // The refusal comes without a 100 Continue; the client sends its body
    // anyway, then a second request on what it thinks is a live connection.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let again = common::signed_head_with_hash(port, "PUT", "/app/..", &hash, 1);
    let _ = s.write_all(format!("x{again}x").as_bytes()).await;
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out)).await.expect("the gateway closes");
    let text = String::from_utf8_lossy(&out);
    assert!(text.starts_with("HTTP/1.1 400"), "{text}");
    assert!(text.to_ascii_lowercase().contains("connection: close"), "{text}");
    assert_eq!(text.matches("HTTP/1.1 ").count(), 1, "one answer, nothing read from the late body: {text}");
}
