//! No client request hangs on a hung backend (issue 18, point 3), and no
//! slow or idle client holds the gateway's connections (issue 12, point 3).
//! Backends are s3s-fs servers in this process; `hang()` holds every
//! request (headers read, body not taken, no answer) like a SIGSTOPped
//! process.

mod common;

use std::time::{Duration, Instant};

use bytes::Bytes;
use cutover_gateway::GatewayOptions;
use cutover_lab::s3sfs::S3sFs;
use cutover_s3::{ClientOptions, S3Client};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use common::{BackendSpec, CLIENT_KEY, CLIENT_SECRET, TestGateway};

fn spec(s: &S3sFs) -> (String, &S3sFs) {
    (s.endpoint(), s)
}

fn opts() -> GatewayOptions {
    let mut o = GatewayOptions::default();
    o.deadlines.first_byte = Duration::from_secs(2);
    o.deadlines.idle = Duration::from_secs(2);
    o.hedge_after = Some(Duration::from_millis(500));
    o
}

/// Connecting to a server of this process may wait on a loaded 2-core
/// machine (a clean-clone CI run once timed out after 5 s before anything
/// hung): the tests bound what hangs, not how fast a connect is.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

fn client(port: u16) -> S3Client {
    let opts = ClientOptions { timeout: Duration::from_secs(60), connect_timeout: CONNECT_TIMEOUT, pooled: false };
    let endpoint = cutover_core::Endpoint::parse(&format!("http://127.0.0.1:{port}")).unwrap();
    S3Client::path_style("gateway", endpoint, "us-east-1", "app", CLIENT_KEY, CLIENT_SECRET, opts)
}

fn direct(s: &S3sFs) -> S3Client {
    let opts = ClientOptions { timeout: Duration::from_secs(30), connect_timeout: CONNECT_TIMEOUT, pooled: false };
    let endpoint = cutover_core::Endpoint::parse(&s.endpoint()).unwrap();
    S3Client::path_style("direct", endpoint, "us-east-1", &s.bucket, &s.key_id, &s.secret, opts)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_put_to_a_hung_backend_fails_fast_with_a_retryable_slowdown() {
    let a = S3sFs::start("data").unwrap();
    let (ea, a) = spec(&a);
    let gw = TestGateway::start_opts(&[BackendSpec::s3sfs(&ea, a)], "mode = \"active-passive\"", opts()).await;
    let c = client(gw.port);
    c.put_object("before", Bytes::from_static(b"ok"), &[]).await.unwrap();
    a.hang();
    let start = Instant::now();
    let e = c.put_object("during", Bytes::from(vec![7u8; 256 << 10]), &[]).await.unwrap_err();
    let took = start.elapsed();
    assert_eq!(e.status(), Some(503), "{e}");
    assert!(e.to_string().contains("SlowDown"), "{e}");
    // The deadlines are 2 s; the old gateway waited for the backend's
    // 60 s write timeout. (A loose bound: the machine is shared.)
    assert!(took < Duration::from_secs(30), "took {took:?}");
    let start = Instant::now();
    let e = c.get_object("before", &[]).await.unwrap_err();
    assert_eq!(e.status(), Some(503), "{e}");
    assert!(start.elapsed() < Duration::from_secs(30));
    a.resume();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slowdown_answer_carries_retry_after() {
    let a = S3sFs::start("data").unwrap();
    let (ea, a) = spec(&a);
    let gw = TestGateway::start_opts(&[BackendSpec::s3sfs(&ea, a)], "mode = \"active-passive\"", opts()).await;
    a.hang();
    let r = client(gw.port).get_object("x", &[]).await;
    a.resume();
    // Through a raw request to see the headers.
    a.hang();
    let host = format!("127.0.0.1:{}", gw.port);
    let url = client(gw.port).presign(&http::Method::GET, "x", Duration::from_secs(60));
    let path = url.path_and_query;
    let ans =
        common::send(gw.port, &format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"), b"").await;
    a.resume();
    assert!(r.is_err());
    assert_eq!(ans.status, 503, "{}", ans.head);
    assert_eq!(ans.code().as_deref(), Some("SlowDown"));
    assert_eq!(ans.header("retry-after"), Some("1"), "{}", ans.head);
}

/// Dual-write with `ack = "active-journal"`: the active backend hangs, the
/// other takes the write; the client is answered from the other, the
/// journal brings the active up to date once it answers, and reads in the
/// meantime go to the side with the newest version.
async fn hedged(size: usize) {
    let a = S3sFs::start("data").unwrap();
    let b = S3sFs::start("data").unwrap();
    let (ea, a) = spec(&a);
    let (eb, b) = spec(&b);
    let (gw, dir) = TestGateway::build(
        &[BackendSpec::s3sfs(&ea, a), BackendSpec::s3sfs(&eb, b)],
        "mode = \"dual-write\"\nack = \"active-journal\"",
        opts(),
    );
    let replayer = gw.clone();
    let replay = tokio::spawn(async move { replayer.replay_forever().await });
    let gw = TestGateway::serve(gw, dir).await;
    let c = client(gw.port);
    c.put_object("k", Bytes::from_static(b"old"), &[]).await.unwrap();

    a.hang();
    let body = Bytes::from((0..size).map(|i| (i % 251) as u8).collect::<Vec<u8>>());
    let start = Instant::now();
    let r = c.put_object("k", body.clone(), &[]).await.unwrap();
    assert!(start.elapsed() < Duration::from_secs(30), "took {:?}", start.elapsed());
    assert_eq!(r.header("x-cutover-backend"), Some("secondary"));
    assert_eq!(direct(b).get_object("k", &[]).await.unwrap().body, body);
    // The active one still has the old version: reads go to the other.
    let got = c.get_object("k", &[]).await.unwrap();
    assert_eq!(got.header("x-cutover-backend"), Some("secondary"));
    assert_eq!(got.body, body);

    a.resume();
    let direct_a = direct(a);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if direct_a.get_object("k", &[]).await.is_ok_and(|r| r.body == body) {
            break;
        }
        assert!(Instant::now() < deadline, "the journal did not bring the active backend up to date");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Replayed: reads are the active backend's again.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let got = c.get_object("k", &[]).await.unwrap();
        assert_eq!(got.body, body);
        if got.header("x-cutover-backend") == Some("primary") {
            break;
        }
        assert!(Instant::now() < deadline, "reads stayed on the secondary after the replay");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    replay.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dual_write_to_a_hung_active_is_acknowledged_from_the_other_backend() {
    hedged(1000).await;
}

/// Larger than the tee's buffers: the hung active backend stops taking the
/// body, and the other must still get all of it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_dual_write_to_a_hung_active_is_acknowledged_from_the_other_backend() {
    hedged(8 << 20).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delete_while_the_active_hangs_is_acknowledged_and_replayed() {
    let a = S3sFs::start("data").unwrap();
    let b = S3sFs::start("data").unwrap();
    let (ea, a) = spec(&a);
    let (eb, b) = spec(&b);
    let (gw, dir) = TestGateway::build(
        &[BackendSpec::s3sfs(&ea, a), BackendSpec::s3sfs(&eb, b)],
        "mode = \"dual-write\"\nack = \"active-journal\"",
        opts(),
    );
    let replayer = gw.clone();
    let replay = tokio::spawn(async move { replayer.replay_forever().await });
    let gw = TestGateway::serve(gw, dir).await;
    let c = client(gw.port);
    c.put_object("gone", Bytes::from_static(b"x"), &[]).await.unwrap();
    a.hang();
    c.delete_object("gone").await.unwrap();
    // Not served from the stale active backend.
    assert_eq!(c.get_object("gone", &[]).await.unwrap_err().status(), Some(404));
    a.resume();
    let direct_a = direct(a);
    let deadline = Instant::now() + Duration::from_secs(60);
    while direct_a.get_object("gone", &[]).await.is_ok() {
        assert!(Instant::now() < deadline, "the delete was not replayed on the active backend");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    replay.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_ack_all_a_hung_active_is_not_hedged() {
    let a = S3sFs::start("data").unwrap();
    let b = S3sFs::start("data").unwrap();
    let (ea, a) = spec(&a);
    let (eb, b) = spec(&b);
    let gw = TestGateway::start_opts(
        &[BackendSpec::s3sfs(&ea, a), BackendSpec::s3sfs(&eb, b)],
        "mode = \"dual-write\"\nack = \"all\"",
        opts(),
    )
    .await;
    a.hang();
    let e = client(gw.port).put_object("k", Bytes::from_static(b"v"), &[]).await.unwrap_err();
    a.resume();
    assert_eq!(e.status(), Some(503), "{e}");
}

async fn connect(port: u16) -> TcpStream {
    TcpStream::connect(("127.0.0.1", port)).await.unwrap()
}

/// Reads until the peer closes (Ok) or `limit` passes (Err).
async fn closed_within(s: &mut TcpStream, limit: Duration) -> Result<Vec<u8>, ()> {
    let mut out = Vec::new();
    match tokio::time::timeout(limit, s.read_to_end(&mut out)).await {
        Ok(_) => Ok(out),
        Err(_) => Err(()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_sends_its_headers_is_disconnected() {
    let a = S3sFs::start("data").unwrap();
    let (ea, a) = spec(&a);
    let o = GatewayOptions { client_header_timeout: Duration::from_secs(1), ..opts() };
    let gw = TestGateway::start_opts(&[BackendSpec::s3sfs(&ea, a)], "mode = \"active-passive\"", o).await;
    let mut s = connect(gw.port).await;
    s.write_all(b"GET /app/x HTTP/1.1\r\nHost: 127.0.0.1\r\n").await.unwrap();
    // Slowloris: never the blank line.
    assert!(closed_within(&mut s, Duration::from_secs(20)).await.is_ok(), "a half-sent head held the connection");
    let mut idle = connect(gw.port).await;
    assert!(closed_within(&mut idle, Duration::from_secs(20)).await.is_ok(), "an idle connection was kept");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_max_connections_are_closed_and_counted() {
    let a = S3sFs::start("data").unwrap();
    let (ea, a) = spec(&a);
    let o = GatewayOptions { max_connections: 2, ..opts() };
    let (gw, dir) = TestGateway::build(&[BackendSpec::s3sfs(&ea, a)], "mode = \"active-passive\"", o);
    let metrics = gw.clone();
    let t = TestGateway::serve(gw, dir).await;
    let _one = connect(t.port).await;
    let _two = connect(t.port).await;
    // Let the gateway accept both.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut three = connect(t.port).await;
    assert!(closed_within(&mut three, Duration::from_secs(10)).await.is_ok(), "a third connection was served");
    let text = metrics.render_metrics().await;
    assert!(text.contains("cutover_gateway_connections_refused_total 1"), "{text}");
    drop((_one, _two));
    // Slots come back once connections close.
    tokio::time::sleep(Duration::from_millis(300)).await;
    client(t.port).put_object("after", Bytes::from_static(b"ok"), &[]).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_trickling_its_body_gets_request_timeout_and_nothing_is_stored() {
    let a = S3sFs::start("data").unwrap();
    let (ea, a) = spec(&a);
    let o = GatewayOptions { client_min_body_rate: 1 << 20, ..opts() };
    let gw = TestGateway::start_opts(&[BackendSpec::s3sfs(&ea, a)], "mode = \"active-passive\"", o).await;
    let url = client(gw.port).presign(&http::Method::PUT, "slow", Duration::from_secs(120));
    let host = format!("127.0.0.1:{}", gw.port);
    let path = url.path_and_query;
    let mut s = connect(gw.port).await;
    s.write_all(
        format!("PUT {path} HTTP/1.1\r\nHost: {host}\r\nContent-Length: 1000000\r\nConnection: close\r\n\r\n")
            .as_bytes(),
    )
    .await
    .unwrap();
    let (mut rd, mut wr) = s.into_split();
    let trickle = tokio::spawn(async move {
        for _ in 0..60 {
            if wr.write_all(&[b'x'; 100]).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    });
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(40), rd.read_to_end(&mut out)).await.expect("no answer").unwrap();
    trickle.abort();
    let text = String::from_utf8_lossy(&out);
    assert!(text.starts_with("HTTP/1.1 400"), "{text}");
    assert!(text.contains("RequestTimeout"), "{text}");
    assert_eq!(direct(a).get_object("slow", &[]).await.unwrap_err().status(), Some(404));
}
