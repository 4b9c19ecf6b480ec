//! The fast path (small PUT, DELETE and HEAD read whole and sent to the
//! backend without hyper) against Garage and s3s-fs: it serves pipelined
//! requests in order, waits for a body sent after its head, hands the
//! connection to hyper where it stops (nothing lost), leaves refusals to
//! hyper, sends a request again when a pooled backend connection had been
//! closed, and refuses a trickled body as the hyper path does. Plain
//! connections are served on the fast lane and come back to the runtime for
//! hyper or when the lane is busy, losing no request.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use cutover_gateway::{GatewayOptions, LaneMarks};
use cutover_lab::s3sfs::S3sFs;
use cutover_s3::sigv4;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use common::{BackendSpec, TestGateway, lab, lab_opts, signed_head_with_hash};

/// A header-signed request for `path` on a kept-alive connection: its head
/// and body.
fn request(port: u16, method: &str, path: &str, body: &[u8]) -> Vec<u8> {
    let head = signed_head_with_hash(port, method, path, &sigv4::sha256_hex(body), body.len());
    let mut bytes = head.replace("connection: close\r\n", "").into_bytes();
    bytes.extend_from_slice(body);
    bytes
}

/// (status, head, body) of the next answer on `s`; `head_only`: the answer
/// to a HEAD (its Content-Length is the object's, no body follows).
async fn answer(s: &mut TcpStream, buf: &mut Vec<u8>, head_only: bool) -> (u16, String, Vec<u8>) {
    let end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let mut chunk = [0u8; 8192];
        let n = tokio::time::timeout(Duration::from_secs(30), s.read(&mut chunk)).await.unwrap().unwrap();
        assert!(n > 0, "closed after {:?}", String::from_utf8_lossy(buf));
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    let len: usize = head
        .lines()
        .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().parse().unwrap()))
        .unwrap_or(0);
    let len = if head_only { 0 } else { len };
    while buf.len() < end + len {
        let mut chunk = [0u8; 8192];
        let n = s.read(&mut chunk).await.unwrap();
        assert!(n > 0, "closed in a body");
        buf.extend_from_slice(&chunk[..n]);
    }
    let body = buf[end..end + len].to_vec();
    buf.drain(..end + len);
    (status, head, body)
}

/// A metric of `gw` without labels (a counter's `_total` included in `name`).
async fn metric(gw: &TestGateway, name: &str) -> f64 {
    let text = gw.gateway.render_metrics().await;
    text.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|v| v.strip_prefix(' ')))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {name} in\n{text}"))
}

/// `cutover_gateway_fast_path_requests_total` of `gw`.
async fn fast_count(gw: &TestGateway) -> u64 {
    metric(gw, "cutover_gateway_fast_path_requests_total").await as u64
}

const ON_LANE: &str = "cutover_gateway_lane_connections";
const DEPARTED: &str = "cutover_gateway_lane_departures_total";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_connection_is_served_on_the_lane_and_comes_home_for_hyper() {
    let lab = lab().await;
    let port = lab.gw.port;
    let mut s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let mut buf = Vec::new();
    s.write_all(&request(port, "PUT", "/app/one", b"on the lane")).await.unwrap();
    assert_eq!(answer(&mut s, &mut buf, false).await.0, 200);
    // Its first request served, the connection moves to the lane.
    assert!(settles(&lab.gw, ON_LANE, |v| v == 1.0).await, "the connection is on the lane");
    // GET is hyper's: the connection comes home, with the request's bytes.
    s.write_all(&request(port, "GET", "/app/one", b"")).await.unwrap();
    let (status, _, body) = answer(&mut s, &mut buf, false).await;
    assert_eq!((status, &body[..]), (200, &b"on the lane"[..]));
    assert_eq!(metric(&lab.gw, ON_LANE).await, 0.0, "back on the runtime");
    assert_eq!(fast_count(&lab.gw).await, 1);
    s.write_all(&request(port, "PUT", "/app/two", b"at home")).await.unwrap();
    assert_eq!(answer(&mut s, &mut buf, false).await.0, 200);
    assert_eq!(lab.stored("two").await.as_deref(), Some(&b"at home"[..]));
    assert_eq!(metric(&lab.gw, DEPARTED).await, 0.0, "nobody left because the lane was busy");
    drop(s);
    // A connection whose first request is hyper's stays on the runtime.
    let mut s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    s.write_all(&request(port, "GET", "/app/one", b"")).await.unwrap();
    assert_eq!(answer(&mut s, &mut Vec::new(), false).await.0, 200);
    s.write_all(&request(port, "PUT", "/app/four", b"4")).await.unwrap();
    assert_eq!(answer(&mut s, &mut Vec::new(), false).await.0, 200);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(metric(&lab.gw, ON_LANE).await, 0.0, "hyper's connection never moves");
    drop(s);
    // A connection that closes on the lane leaves its count. (The lane
    // takes it once it is idle again: the requests above kept it busy.)
    settles(&lab.gw, "cutover_gateway_lane_busy_ratio", |v| v < 0.1).await;
    let mut s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    s.write_all(&request(port, "PUT", "/app/three", b"3")).await.unwrap();
    assert_eq!(answer(&mut s, &mut Vec::new(), false).await.0, 200);
    assert!(settles(&lab.gw, ON_LANE, |v| v == 1.0).await);
    drop(s);
    assert!(settles(&lab.gw, ON_LANE, |v| v == 0.0).await, "a closed connection is off the lane");
}

/// Waits (at most 5 s) for the metric `name` of `gw` to read a value `ok` takes.
async fn settles(gw: &TestGateway, name: &str, ok: impl Fn(f64) -> bool) -> bool {
    for _ in 0..500 {
        if ok(metric(gw, name).await) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_a_busy_lane_sends_home_lose_no_request() {
    // Any work makes this lane "busy": connections leave it, a few per
    // tick, while others go on and pipelined bytes travel with them.
    let marks = LaneMarks { admit_below: 1001, shed_above: 0 };
    let lab = lab_opts(GatewayOptions { fast_lane: Some(marks), ..GatewayOptions::default() }).await;
    let port = lab.gw.port;
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let clients: Vec<_> = (0..4)
        .map(|c| {
            let stop = stop.clone();
            tokio::spawn(async move {
                let mut s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
                let mut buf = Vec::new();
                let mut round = 0;
                // Until told to stop, at least 20 rounds.
                while round < 20 || !stop.load(Ordering::Relaxed) {
                    // Two requests in one write: the second may be read while
                    // the first is served, and go home with the connection.
                    let (a, b) = (format!("/app/c{c}-{round}-a"), format!("/app/c{c}-{round}-b"));
                    let mut both = request(port, "PUT", &a, a.as_bytes());
                    both.extend(request(port, "PUT", &b, b.as_bytes()));
                    s.write_all(&both).await.unwrap();
                    for _ in 0..2 {
                        let (status, head, _) = answer(&mut s, &mut buf, false).await;
                        assert_eq!(status, 200, "{head}");
                    }
                    round += 1;
                }
                (s, round)
            })
        })
        .collect();
    // Departures happen at the lane's 50 ms ticks: go on until one did
    // (at most 20 s), then a little longer.
    for _ in 0..2000 {
        if metric(&lab.gw, DEPARTED).await >= 1.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    stop.store(true, Ordering::Relaxed);
    let mut open = Vec::new();
    let mut requests = 0;
    for (c, client) in clients.into_iter().enumerate() {
        let (s, rounds) = client.await.unwrap();
        open.push(s);
        requests += rounds * 2;
        for round in [0, rounds - 1] {
            for side in ["a", "b"] {
                let key = format!("c{c}-{round}-{side}");
                let want = format!("/app/{key}");
                assert_eq!(lab.stored(&key).await.as_deref(), Some(want.as_bytes()), "{key}");
            }
        }
    }
    let departed = metric(&lab.gw, DEPARTED).await;
    assert!((1.0..=3.0).contains(&departed), "departures: {departed} (the last connection on the lane stays)");
    assert_eq!(metric(&lab.gw, ON_LANE).await, 4.0 - departed, "the others are still on the lane");
    assert_eq!(fast_count(&lab.gw).await, requests as u64, "every request on the fast path, on the lane or at home");
    drop(open);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_small_writes_take_the_fast_path_then_hyper_takes_the_connection() {
    let lab = lab().await;
    let port = lab.gw.port;
    let data: Vec<u8> = (0..4096u32).map(|i| (i * 7 % 251) as u8).collect();
    let mut s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let mut all = Vec::new();
    for (method, path, body) in [
        ("PUT", "/app/a", &data[..]),
        ("PUT", "/app/b", b"second".as_slice()),
        ("HEAD", "/app/a", b"".as_slice()),
        ("DELETE", "/app/b", b"".as_slice()),
        // GET is hyper's: the connection goes on there.
        ("GET", "/app/a", b"".as_slice()),
        ("PUT", "/app/c", b"after the handover".as_slice()),
    ] {
        all.extend(request(port, method, path, body));
    }
    s.write_all(&all).await.unwrap();
    let mut buf = Vec::new();
    let mut statuses = Vec::new();
    for head_only in [false, false, true, false, false, false] {
        let (status, head, body) = answer(&mut s, &mut buf, head_only).await;
        statuses.push(status);
        if head_only {
            assert!(head.to_ascii_lowercase().contains("content-length: 4096"), "{head}");
        }
        if statuses.len() == 5 {
            assert_eq!(body, data, "GET after the fast path");
        }
        if status == 200 && statuses.len() <= 4 {
            assert!(head.to_ascii_lowercase().contains("x-cutover-backend: primary"), "{head}");
        }
    }
    assert_eq!(statuses, [200, 200, 200, 204, 200, 200]);
    assert_eq!(lab.stored("a").await.as_deref(), Some(&data[..]));
    assert_eq!(lab.stored("b").await, None);
    assert_eq!(lab.stored("c").await.as_deref(), Some(&b"after the handover"[..]));
    assert_eq!(
        fast_count(&lab.gw).await,
        4,
        "PUT, PUT, HEAD and DELETE on the fast path; GET and what follows on hyper"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_sent_after_its_head_in_pieces_is_waited_for() {
    let lab = lab().await;
    let port = lab.gw.port;
    let data = vec![b'z'; 20_000];
    let bytes = request(port, "PUT", "/app/late", &data);
    let head_len = bytes.len() - data.len();
    let mut s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    for piece in
        [&bytes[..head_len - 3], &bytes[head_len - 3..head_len], &bytes[head_len..head_len + 7], &bytes[head_len + 7..]]
    {
        s.write_all(piece).await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (status, head, _) = answer(&mut s, &mut Vec::new(), false).await;
    assert_eq!(status, 200, "{head}");
    assert_eq!(lab.stored("late").await.as_deref(), Some(&data[..]));
    assert_eq!(fast_count(&lab.gw).await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_are_left_to_hyper_and_nothing_is_stored() {
    let lab = lab().await;
    let port = lab.gw.port;
    // A body that does not match its signed hash.
    let mut bad = request(port, "PUT", "/app/bad", b"good body");
    let n = bad.len();
    bad[n - 1] = b'X';
    // A signature changed in one digit.
    let mut forged = request(port, "PUT", "/app/forged", b"x");
    let at = forged.windows(10).position(|w| w == b"Signature=").unwrap() + 10;
    forged[at] = if forged[at] == b'0' { b'1' } else { b'0' };
    for (what, bytes, status, code) in
        [("payload", bad, 400, "XAmzContentSHA256Mismatch"), ("signature", forged, 403, "SignatureDoesNotMatch")]
    {
        let mut s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        s.write_all(&bytes).await.unwrap();
        let (got, head, body) = answer(&mut s, &mut Vec::new(), false).await;
        assert_eq!(got, status, "{what}: {head}");
        assert!(String::from_utf8_lossy(&body).contains(code), "{what}: {}", String::from_utf8_lossy(&body));
    }
    assert_eq!(lab.stored("bad").await, None);
    assert_eq!(lab.stored("forged").await, None);
    assert_eq!(fast_count(&lab.gw).await, 0);
}

/// A backend that answers each request 200 and then closes the connection
/// without saying so (as a server does whose keep-alive timeout ran out):
/// returns its port and how many requests it answered.
async fn closing_backend() -> (u16, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let answered = Arc::new(AtomicUsize::new(0));
    let count = answered.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = listener.accept().await else { return };
            let count = count.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                loop {
                    // A request: its head and its Content-Length's body.
                    let mut chunk = [0u8; 8192];
                    let Ok(n) = s.read(&mut chunk).await else { return };
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else { continue };
                    let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
                    let len: usize = head
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length:").map(|v| v.trim().parse().unwrap()))
                        .unwrap_or(0);
                    if buf.len() >= end + 4 + len {
                        break;
                    }
                }
                let _ = s.write_all(b"HTTP/1.1 200 OK\r\netag: \"e\"\r\ncontent-length: 0\r\n\r\n").await;
                count.fetch_add(1, Ordering::SeqCst);
                // Closed: the gateway's pooled copy of this connection is dead.
            });
        }
    });
    (port, answered)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pooled_backend_connection_closed_by_the_backend_is_replaced_and_the_request_sent_again() {
    let (bport, answered) = closing_backend().await;
    let endpoint = format!("http://127.0.0.1:{bport}");
    let spec = BackendSpec { endpoint: &endpoint, region: "us-east-1", bucket: "data", key_id: "K", secret: "S" };
    let gw = TestGateway::start(&spec).await;
    for i in 0..3 {
        let mut s = TcpStream::connect(("127.0.0.1", gw.port)).await.unwrap();
        s.write_all(&request(gw.port, "PUT", &format!("/app/k{i}"), b"data")).await.unwrap();
        let (status, head, _) = answer(&mut s, &mut Vec::new(), false).await;
        assert_eq!(status, 200, "PUT {i}: {head}");
        // Let the backend's close arrive before the next request.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(answered.load(Ordering::SeqCst), 3);
    assert_eq!(fast_count(&gw).await, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trickled_small_body_gets_request_timeout_and_nothing_is_stored() {
    let fs = S3sFs::start("data").unwrap();
    let endpoint = fs.endpoint();
    let spec = BackendSpec::s3sfs(&endpoint, &fs);
    let opts = GatewayOptions { client_min_body_rate: 1 << 20, ..GatewayOptions::default() };
    let gw = TestGateway::start_opts(&[spec], "mode = \"active-passive\"", opts).await;
    let body = vec![b'x'; 60_000];
    let bytes = request(gw.port, "PUT", "/app/slow", &body);
    let head_len = bytes.len() - body.len();
    let mut s = TcpStream::connect(("127.0.0.1", gw.port)).await.unwrap();
    s.write_all(&bytes[..head_len + 100]).await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(40), s.read_to_end(&mut out)).await.expect("no answer").unwrap();
    let text = String::from_utf8_lossy(&out);
    assert!(text.starts_with("HTTP/1.1 400"), "{text}");
    assert!(text.contains("RequestTimeout"), "{text}");
    assert!(text.to_ascii_lowercase().contains("connection: close"), "{text}");
    let head = signed_head_with_hash(gw.port, "HEAD", "/app/slow", sigv4::EMPTY_SHA256, 0);
    let a = common::send(gw.port, &head, b"").await;
    assert_eq!(a.status, 404, "{a:?}");
    assert_eq!(fast_count(&gw).await, 2, "the refusal and the HEAD");
}

/// The head of a header-signed PUT with `Expect: 100-continue`, for `body`.
fn expecting_head(port: u16, path: &str, body: &[u8]) -> Vec<u8> {
    let head = signed_head_with_hash(port, "PUT", path, &sigv4::sha256_hex(body), body.len());
    head.replace("connection: close\r\n", "expect: 100-continue\r\n").into_bytes()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_expecting_100_continue_gets_it_once_its_signature_verifies() {
    let lab = lab().await;
    let port = lab.gw.port;
    let mut s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let mut buf = Vec::new();
    // A good upload: 100 Continue, then the body, then 200.
    s.write_all(&expecting_head(port, "/app/expect", b"continued")).await.unwrap();
    let (status, head, _) = answer(&mut s, &mut buf, false).await;
    assert_eq!(status, 100, "{head}");
    s.write_all(b"continued").await.unwrap();
    let (status, head, _) = answer(&mut s, &mut buf, false).await;
    assert_eq!(status, 200, "{head}");
    // A body that does not match its signed hash, on the same connection:
    // 100 Continue, then 400, and nothing stored; the connection goes on.
    let mut head = expecting_head(port, "/app/tampered", b"original");
    s.write_all(&head).await.unwrap();
    assert_eq!(answer(&mut s, &mut buf, false).await.0, 100);
    s.write_all(b"tampered").await.unwrap();
    let (status, _, body) = answer(&mut s, &mut buf, false).await;
    assert_eq!(status, 400);
    assert!(String::from_utf8_lossy(&body).contains("XAmzContentSHA256Mismatch"));
    s.write_all(&request(port, "DELETE", "/app/expect", b"")).await.unwrap();
    assert_eq!(answer(&mut s, &mut buf, false).await.0, 204);
    assert_eq!(lab.stored("tampered").await, None);
    assert_eq!(lab.stored("expect").await, None, "deleted after it was stored");
    assert_eq!(fast_count(&lab.gw).await, 3, "the good PUT, the refused one and the DELETE");
    // A bad signature: no 100 Continue; the gateway answers 403 and closes
    // without waiting for the body.
    let mut s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let at = head.windows(10).position(|w| w == b"Signature=").unwrap() + 10;
    head[at] = if head[at] == b'0' { b'1' } else { b'0' };
    s.write_all(&head).await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), s.read_to_end(&mut out)).await.unwrap().unwrap();
    let text = String::from_utf8_lossy(&out);
    assert!(text.starts_with("HTTP/1.1 403"), "{text}");
    assert!(!text.contains("100 Continue"), "{text}");
}

/// boto3's uploads of small files: `put_object` with bytes and with a file
/// (botocore sends the latter with `Expect: 100-continue`) and
/// `upload_fileobj`, all on the fast path, all stored whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn boto3_small_uploads_with_and_without_expect_take_the_fast_path() {
    let lab = lab().await;
    let script = r#"
import io, json, os, boto3
from botocore.config import Config
c = boto3.client("s3", endpoint_url=os.environ["GW_ENDPOINT"], aws_access_key_id=os.environ["GW_KEY"],
                 aws_secret_access_key=os.environ["GW_SECRET"], region_name="us-east-1",
                 config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}))
expect = []
c.meta.events.register("before-send", lambda request, **_: expect.append(request.headers.get("Expect")))
c.put_object(Bucket="app", Key="bytes", Body=b"b" * 3000)
c.put_object(Bucket="app", Key="file", Body=io.BytesIO(b"f" * 5000))
c.upload_fileobj(io.BytesIO(b"u" * 7000), "app", "fileobj")
print(json.dumps([e.decode() if isinstance(e, bytes) else e for e in expect]))
"#;
    let stdout = common::boto3(lab.gw.port, &["-c", script]).await;
    let expect: Vec<Option<String>> = serde_json::from_str(stdout.trim()).unwrap();
    assert!(expect.iter().any(|e| e.as_deref() == Some("100-continue")), "no upload sent Expect: {expect:?}");
    assert_eq!(lab.stored("bytes").await.as_deref(), Some(&[b'b'; 3000][..]));
    assert_eq!(lab.stored("file").await.as_deref(), Some(&[b'f'; 5000][..]));
    assert_eq!(lab.stored("fileobj").await.as_deref(), Some(&[b'u'; 7000][..]));
    assert_eq!(fast_count(&lab.gw).await, 3);
}
