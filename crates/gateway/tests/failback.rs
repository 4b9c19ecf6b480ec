//! Failback misses nothing: every key of a DeleteObjects body (as an XML
//! parser reads it) is journaled or recorded, and replayed; sub-resource
//! writes (tagging, legal hold) made while a non-primary backend is active
//! are replayed; a journal replay and a live write of the same key cannot
//! interleave into leaving one side stale.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use cutover_gateway::state::Op;
use cutover_s3::xml::escape;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use common::{BackendSpec, TestGateway, signed};

/// Keys whose XML form uses a character reference, CDATA, entities and
/// whitespace: (as written in the body, as stored).
const KEYS: [(&str, &str); 4] = [
    ("a&#47;b", "a/b"),
    ("<![CDATA[c<d>&e]]>", "c<d>&e"),
    (" sp &amp; &#x41; ", " sp & A "),
    ("\n  x y&#x2F;z", "\n  x y/z"),
];

fn delete_body() -> String {
    let mut body = String::from(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Delete xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">\n",
    );
    for (xml, _) in KEYS {
        body.push_str(&format!("  <Object>\n    <Key>{xml}</Key>\n  </Object>\n"));
    }
    body.push_str("</Delete>\n");
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_objects_with_char_refs_journals_every_key() {
    let (lab, _copy) = common::dual_lab("active-journal").await;
    // The secondary refuses connections: every key must be journaled for it.
    let endpoint = lab.garage.endpoint();
    let spec = |endpoint, bucket| BackendSpec {
        endpoint,
        region: "garage",
        bucket,
        key_id: &lab.garage.key_id,
        secret: &lab.garage.secret,
    };
    let gw = TestGateway::start_with(
        &[spec(&endpoint, &lab.garage.bucket), spec("http://127.0.0.1:9", "app-copy")],
        "mode = \"dual-write\"\nack = \"active-journal\"",
    )
    .await;
    for (_, key) in KEYS {
        lab.direct.put_object(key, Bytes::from_static(b"x"), &[]).await.unwrap();
    }
    lab.direct.put_object("kept", Bytes::from_static(b"kept"), &[]).await.unwrap();
    let a = signed(gw.port, "POST", "/app", &[("delete", "")], &[], delete_body().as_bytes()).await;
    assert_eq!(a.status, 200, "{a:?}");
    for (_, key) in KEYS {
        assert_eq!(lab.stored(key).await, None, "{key:?} deleted on the primary");
    }
    assert!(lab.stored("kept").await.is_some(), "no other key was deleted");
    let due = gw.gateway.state().due(100).await.unwrap();
    let mut journaled: Vec<(&str, bool, &str)> =
        due.iter().map(|e| (e.key.as_str(), e.op == Op::Delete, e.target.as_str())).collect();
    journaled.sort();
    let mut want: Vec<(&str, bool, &str)> = KEYS.iter().map(|(_, k)| (*k, true, "secondary")).collect();
    want.sort();
    assert_eq!(journaled, want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_objects_during_outage_is_replayed_at_fallback() {
    let (lab, copy) = common::dual_lab("active-journal").await;
    let endpoint = lab.garage.endpoint();
    let spec = |bucket| BackendSpec {
        endpoint: &endpoint,
        region: "garage",
        bucket,
        key_id: &lab.garage.key_id,
        secret: &lab.garage.secret,
    };
    let gw = TestGateway::start_with(&[spec(&lab.garage.bucket), spec("app-copy")], "mode = \"active-passive\"").await;
    for (_, key) in KEYS {
        lab.direct.put_object(key, Bytes::from_static(b"x"), &[]).await.unwrap();
        copy.put_object(key, Bytes::from_static(b"x"), &[]).await.unwrap();
    }
    gw.gateway.active().set("secondary");
    let a = signed(gw.port, "POST", "/app", &[("delete", "")], &[], delete_body().as_bytes()).await;
    assert_eq!((a.status, a.header("x-cutover-backend")), (200, Some("secondary")), "{a:?}");
    let records = gw.gateway.state().failback_records().await.unwrap();
    let mut recorded: Vec<&str> = records.iter().map(|r| r.key.as_str()).collect();
    recorded.sort();
    let mut want: Vec<&str> = KEYS.iter().map(|(_, k)| *k).collect();
    want.sort();
    assert_eq!(recorded, want);
    let report = gw.gateway.resync().await.unwrap();
    assert_eq!((report.deleted, report.failed, report.remaining), (4, 0, 0), "{report:?}");
    for (_, key) in KEYS {
        assert_eq!(lab.stored(key).await, None, "{key:?} deleted on the primary at fallback");
    }
}

/// An S3 backend in memory that keeps tags and legal holds (neither Garage
/// nor s3s-fs implements object tagging or object lock: both answer 501).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct Obj {
    data: Bytes,
    tags: Vec<(String, String)>,
    legal_hold: Option<String>,
}

type Store = Arc<Mutex<HashMap<String, Obj>>>;

fn md5_hex(b: &[u8]) -> String {
    use md5::Digest as _;
    hex::encode(md5::Md5::digest(b))
}

fn between<'a>(text: &'a str, open: &str, close: &str) -> Vec<&'a str> {
    text.split(open).skip(1).filter_map(|s| s.split_once(close).map(|(v, _)| v)).collect()
}

fn unescape(s: &str) -> String {
    s.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
}

async fn tag_backend() -> (String, Store) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let store: Store = Arc::default();
    let s = store.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else { return };
            let s = s.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                    let s = s.clone();
                    async move { Ok::<_, Infallible>(tag_backend_answer(&s, req).await) }
                });
                let _ = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), svc).await;
            });
        }
    });
    (endpoint, store)
}

async fn tag_backend_answer(store: &Store, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let (parts, body) = req.into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    let key =
        cutover_gateway::auth::percent_decode(parts.uri.path().trim_start_matches('/').split_once('/').unwrap().1);
    let query = parts.uri.query().unwrap_or("");
    let text = String::from_utf8_lossy(&body).into_owned();
    let mut st = store.lock().unwrap();
    let reply =
        |status: u16, body: String| Response::builder().status(status).body(Full::new(Bytes::from(body))).unwrap();
    let method = parts.method.as_str();
    match (method, query) {
        ("PUT", "tagging=") => match st.get_mut(&key) {
            Some(o) => {
                let keys = between(&text, "<Key>", "</Key>");
                let values = between(&text, "<Value>", "</Value>");
                o.tags = keys.iter().zip(values).map(|(k, v)| (unescape(k), unescape(v))).collect();
                reply(200, String::new())
            }
            None => reply(404, "<Error><Code>NoSuchKey</Code></Error>".into()),
        },
        ("DELETE", "tagging=") => {
            if let Some(o) = st.get_mut(&key) {
                o.tags.clear();
            }
            reply(204, String::new())
        }
        ("PUT", "legal-hold=") => {
            let status = between(&text, "<Status>", "</Status>").first().map(|s| s.to_string());
            match st.get_mut(&key) {
                Some(o) => {
                    o.legal_hold = status;
                    reply(200, String::new())
                }
                None => reply(404, String::new()),
            }
        }
        ("GET", "tagging=") => match st.get(&key) {
            Some(o) => {
                let tags: String = o
                    .tags
                    .iter()
                    .map(|(k, v)| format!("<Tag><Key>{}</Key><Value>{}</Value></Tag>", escape(k), escape(v)))
                    .collect();
                reply(200, format!("<Tagging><TagSet>{tags}</TagSet></Tagging>"))
            }
            None => reply(404, String::new()),
        },
        ("PUT", "") => {
            let tags = parts
                .headers
                .get("x-amz-tagging")
                .map(|v| cutover_gateway::auth::parse_query(v.to_str().unwrap()))
                .unwrap_or_default();
            let legal_hold = parts.headers.get("x-amz-object-lock-legal-hold").map(|v| v.to_str().unwrap().to_string());
            let etag = md5_hex(&body);
            st.insert(key, Obj { data: body, tags, legal_hold });
            Response::builder().status(200).header("etag", format!("\"{etag}\"")).body(Full::new(Bytes::new())).unwrap()
        }
        ("GET" | "HEAD", "") => match st.get(&key) {
            Some(o) => {
                let mut r = Response::builder()
                    .status(200)
                    .header("etag", format!("\"{}\"", md5_hex(&o.data)))
                    .header("content-length", o.data.len());
                if !o.tags.is_empty() {
                    r = r.header("x-amz-tagging-count", o.tags.len());
                }
                if let Some(h) = &o.legal_hold {
                    r = r.header("x-amz-object-lock-legal-hold", h);
                }
                let body = if method == "GET" { o.data.clone() } else { Bytes::new() };
                r.body(Full::new(body)).unwrap()
            }
            None => reply(404, String::new()),
        },
        ("DELETE", "") => {
            st.remove(&key);
            reply(204, String::new())
        }
        _ => reply(501, format!("<Error><Code>NotImplemented</Code><Message>{method} ?{query}</Message></Error>")),
    }
}

fn seed(store: &Store, key: &str, data: &'static [u8], tags: &[(&str, &str)]) {
    let tags = tags.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    store.lock().unwrap().insert(key.into(), Obj { data: Bytes::from_static(data), tags, legal_hold: None });
}

fn snapshot(store: &Store) -> BTreeMap<String, Obj> {
    store.lock().unwrap().iter().map(|(k, o)| (k.clone(), o.clone())).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tagging_written_during_outage_is_replayed() {
    let (p_end, primary) = tag_backend().await;
    let (s_end, secondary) = tag_backend().await;
    let spec = |endpoint| BackendSpec { endpoint, region: "r", bucket: "data", key_id: "K", secret: "S" };
    let gw = TestGateway::start_with(&[spec(&p_end), spec(&s_end)], "mode = \"active-passive\"").await;
    for store in [&primary, &secondary] {
        seed(store, "tagged", b"one", &[]);
        seed(store, "held", b"two", &[]);
        seed(store, "untagged", b"three", &[("old", "tag")]);
    }
    gw.gateway.active().set("secondary");
    let port = gw.port;
    let tagging = "<Tagging><TagSet><Tag><Key>team</Key><Value>a b&amp;c</Value></Tag></TagSet></Tagging>";
    let a = signed(port, "PUT", "/app/tagged", &[("tagging", "")], &[], tagging.as_bytes()).await;
    assert_eq!((a.status, a.header("x-cutover-backend")), (200, Some("secondary")), "{a:?}");
    let hold = "<LegalHold><Status>ON</Status></LegalHold>";
    assert_eq!(signed(port, "PUT", "/app/held", &[("legal-hold", "")], &[], hold.as_bytes()).await.status, 200);
    assert_eq!(signed(port, "DELETE", "/app/untagged", &[("tagging", "")], &[], b"").await.status, 204);
    assert_ne!(snapshot(&primary), snapshot(&secondary), "the writes went to the secondary only");

    let mut recorded: Vec<String> =
        gw.gateway.state().failback_records().await.unwrap().into_iter().map(|r| r.key).collect();
    recorded.sort();
    assert_eq!(recorded, ["held", "tagged", "untagged"]);
    let report = gw.gateway.resync().await.unwrap();
    assert_eq!((report.copied, report.failed, report.remaining), (3, 0, 0), "{report:?}");
    assert_eq!(snapshot(&primary), snapshot(&secondary));
    let p = snapshot(&primary);
    assert_eq!(p["tagged"].tags, [("team".to_string(), "a b&c".to_string())]);
    assert_eq!(p["held"].legal_hold.as_deref(), Some("ON"));
    assert!(p["untagged"].tags.is_empty());
}

/// A TCP proxy that holds back each answer to a GET for `delay` (the journal
/// replay's read of the source), and passes everything else through.
async fn slow_get_proxy(target: String, delay: Duration) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        loop {
            let Ok((client, _)) = listener.accept().await else { return };
            let server = TcpStream::connect(&target).await.unwrap();
            let (mut cr, mut cw) = client.into_split();
            let (mut sr, mut sw) = server.into_split();
            let get = Arc::new(AtomicBool::new(false));
            let g = get.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 64 << 10];
                loop {
                    let Ok(n) = cr.read(&mut buf).await else { return };
                    if n == 0 {
                        return;
                    }
                    if buf[..n].starts_with(b"GET ") {
                        g.store(true, Ordering::SeqCst);
                    }
                    if sw.write_all(&buf[..n]).await.is_err() {
                        return;
                    }
                }
            });
            tokio::spawn(async move {
                let mut buf = vec![0u8; 64 << 10];
                loop {
                    let Ok(n) = sr.read(&mut buf).await else { return };
                    if n == 0 {
                        return;
                    }
                    if get.swap(false, Ordering::SeqCst) {
                        tokio::time::sleep(delay).await;
                    }
                    if cw.write_all(&buf[..n]).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    endpoint
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_racing_a_live_write_leaves_both_sides_equal() {
    let (lab, copy) = common::dual_lab("active-journal").await;
    let garage = lab.garage.endpoint();
    let slow = slow_get_proxy(garage.trim_start_matches("http://").to_string(), Duration::from_millis(1500)).await;
    let spec = |endpoint, bucket| BackendSpec {
        endpoint,
        region: "garage",
        bucket,
        key_id: &lab.garage.key_id,
        secret: &lab.garage.secret,
    };
    let gw = TestGateway::start_with(
        &[spec(&slow, &lab.garage.bucket), spec(&garage, "app-copy")],
        "mode = \"dual-write\"\nack = \"active-journal\"",
    )
    .await;
    // The secondary missed v1 (journaled); the replay reads v1 from the
    // primary, slowly; meanwhile a client writes v2 through the gateway.
    lab.direct.put_object("k", Bytes::from(vec![b'1'; 4096]), &[]).await.unwrap();
    copy.put_object("k", Bytes::from_static(b"v0"), &[]).await.unwrap();
    let state = gw.gateway.state().clone();
    state.append("app", "k", Op::Put, "primary", "secondary").await.unwrap();
    let replayer = gw.gateway.clone();
    let replay = tokio::spawn(async move { replayer.replay_once().await.unwrap() });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let v2 = vec![b'2'; 4096];
    let live = signed(gw.port, "PUT", "/app/k", &[], &[], &v2).await;
    assert_eq!(live.status, 200, "{live:?}");
    assert_eq!(replay.await.unwrap(), 1, "the replay copied its entry");
    // Whatever is left in the journal converges too.
    for _ in 0..20 {
        if state.journal_depth().await.unwrap().0 == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        gw.gateway.replay_once().await.unwrap();
    }
    let primary = lab.stored("k").await.unwrap();
    let secondary = copy.get_object("k", &[]).await.unwrap().body;
    assert_eq!(primary.len(), 4096);
    assert!(
        primary == secondary,
        "the replay left the secondary stale: primary {:?}.., secondary {:?}..",
        &primary[..2],
        &secondary[..secondary.len().min(2)]
    );
    assert_eq!(&primary[..], &v2[..], "the live write is the last one");
}
