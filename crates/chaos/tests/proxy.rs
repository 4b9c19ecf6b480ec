//! The proxy in front of a real Garage node, seen through cutover's own S3
//! client: each fault yields the typed outcome the controller relies on.

mod common;

use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{ProxyLab, http, loopback};
use cutover_chaos::{FaultKind, Faults, Proxy};
use cutover_core::Outcome;
use cutover_s3::S3Client;

const PATIENT: Duration = Duration::from_secs(60);
/// The deadline of clients that are expected to give up (blackhole).
const IMPATIENT: Duration = Duration::from_secs(1);

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
}

async fn get(c: &S3Client, key: &str) -> Outcome {
    match c.get_object(key, &[]).await {
        Ok(_) => Outcome::Ok,
        Err(e) => e.outcome(),
    }
}

async fn put(c: &S3Client, key: &str, body: Bytes) -> Outcome {
    match c.put_object(key, body, &[]).await {
        Ok(_) => Outcome::Ok,
        Err(e) => e.outcome(),
    }
}

#[test]
fn requests_pass_through_unchanged() {
    let lab = ProxyLab::start();
    let c = lab.client(PATIENT, true);
    let body = cutover_s3::random_bytes(300 << 10);
    rt().block_on(async {
        let meta = [("x-amz-meta-origin", "chaos-test".to_string())];
        c.put_object("dir/object", body.clone(), &meta).await.unwrap();
        let got = c.get_object("dir/object", &[]).await.unwrap();
        assert_eq!(got.body, body);
        assert_eq!(got.header("x-amz-meta-origin"), Some("chaos-test"));
        let head = c.head_object("dir/object").await.unwrap();
        assert_eq!(head.header("content-length"), Some("307200"));
        let page = c.list_objects_v2("dir/", None, 100).await.unwrap();
        assert_eq!(page.objects.len(), 1);
        assert_eq!(lab.direct().get_object("dir/object", &[]).await.unwrap().body, body);
        c.delete_object("dir/object").await.unwrap();
    });
    let n = lab.proxy.counters();
    assert_eq!(n.requests, 5, "{n:?}");
    assert!(n.bytes_upstream > 300 << 10 && n.bytes_downstream > 300 << 10, "{n:?}");
    assert!(n.faulted.values().all(|v| *v == 0), "{n:?}");
}

#[test]
fn latency_delays_every_answer_by_at_least_the_configured_time() {
    let lab = ProxyLab::start();
    let (pooled, fresh) = (lab.client(PATIENT, true), lab.client(PATIENT, false));
    rt().block_on(async {
        assert_eq!(put(&pooled, "k", Bytes::from_static(b"v")).await, Outcome::Ok);
        lab.proxy.set(Faults { latency_ms: 300, jitter_ms: 100, ..Faults::none() }).unwrap();
        for c in [&pooled, &fresh, &pooled] {
            let start = Instant::now();
            assert_eq!(get(c, "k").await, Outcome::Ok);
            let took = start.elapsed();
            tracing::info!(?took, "GET with 300 ms latency and 100 ms jitter");
            assert!(took >= Duration::from_millis(300), "{took:?}");
        }
    });
    assert_eq!(lab.proxy.counters().faulted(FaultKind::Latency), 3);
}

#[test]
fn blackhole_leaves_new_and_pooled_connections_waiting_until_their_timeout() {
    let lab = ProxyLab::start();
    let (pooled, fresh) = (lab.client(IMPATIENT, true), lab.client(IMPATIENT, false));
    rt().block_on(async {
        // The pooled client has a keep-alive connection from before the fault.
        assert_eq!(put(&pooled, "k", Bytes::from_static(b"v")).await, Outcome::Ok);
        lab.proxy.set(Faults { blackhole: true, ..Faults::none() }).unwrap();
        assert_eq!(get(&pooled, "k").await, Outcome::Timeout);
        assert_eq!(get(&fresh, "k").await, Outcome::Timeout);
        lab.proxy.set(Faults::none()).unwrap();
        assert_eq!(get(&lab.client(PATIENT, false), "k").await, Outcome::Ok);
    });
    assert_eq!(lab.proxy.counters().faulted(FaultKind::Blackhole), 2);
}

#[test]
fn reset_breaks_new_connections_and_pooled_ones_at_their_next_request() {
    let lab = ProxyLab::start();
    let (pooled, fresh) = (lab.client(PATIENT, true), lab.client(PATIENT, false));
    rt().block_on(async {
        assert_eq!(put(&pooled, "k", Bytes::from_static(b"v")).await, Outcome::Ok);
        lab.proxy.set(Faults { reset: true, ..Faults::none() }).unwrap();
        assert_eq!(get(&pooled, "k").await, Outcome::ConnectionReset);
        assert_eq!(get(&fresh, "k").await, Outcome::ConnectionReset);
        lab.proxy.set(Faults::none()).unwrap();
        assert_eq!(get(&fresh, "k").await, Outcome::Ok);
    });
    assert_eq!(lab.proxy.counters().faulted(FaultKind::Reset), 2);
}

#[test]
fn refuse_closes_the_listener_until_cleared_and_spares_established_connections() {
    let lab = ProxyLab::start();
    let (pooled, fresh) = (lab.client(PATIENT, true), lab.client(PATIENT, false));
    rt().block_on(async {
        assert_eq!(put(&pooled, "k", Bytes::from_static(b"v")).await, Outcome::Ok);
        lab.proxy.set(Faults { refuse: true, ..Faults::none() }).unwrap();
        assert_eq!(get(&fresh, "k").await, Outcome::ConnectRefused);
        assert_eq!(get(&pooled, "k").await, Outcome::Ok, "an established connection goes on working");
        lab.proxy.set(Faults::none()).unwrap();
        assert_eq!(get(&fresh, "k").await, Outcome::Ok);
    });
    assert_eq!(lab.proxy.counters().faulted(FaultKind::Refuse), 1);
}

#[test]
fn slowdown_at_rate_one_answers_every_request_with_503_slowdown() {
    let lab = ProxyLab::start();
    let c = lab.client(PATIENT, true);
    rt().block_on(async {
        assert_eq!(put(&c, "existing", Bytes::from_static(b"v")).await, Outcome::Ok);
        lab.proxy.set(Faults { slowdown_rate: 1.0, ..Faults::none() }).unwrap();
        // The body is read and dropped, never forwarded.
        assert_eq!(put(&c, "new", cutover_s3::random_bytes(100 << 10)).await, Outcome::SlowDown);
        assert_eq!(get(&c, "existing").await, Outcome::SlowDown);
        // A 503 to HEAD has no body, so no S3 code: as from a real backend.
        let head = c.head_object("existing").await.unwrap_err().outcome();
        assert_eq!(head, Outcome::Status(503, None));
        lab.proxy.set(Faults::none()).unwrap();
        assert_eq!(get(&c, "existing").await, Outcome::Ok);
        assert_eq!(put(&c, "new", Bytes::from_static(b"now")).await, Outcome::Ok);
        assert_eq!(lab.direct().get_object("new", &[]).await.unwrap().body, Bytes::from_static(b"now"));
    });
    let n = lab.proxy.counters();
    assert_eq!((n.requests, n.faulted(FaultKind::Slowdown)), (6, 3), "{n:?}");
}

/// Reads one HTTP/1.1 answer (with a Content-Length) from a keep-alive connection.
fn read_answer(s: &mut std::net::TcpStream) -> (u16, String) {
    use std::io::Read;
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        s.read_exact(&mut byte).unwrap();
        head.push(byte[0]);
    }
    let head = String::from_utf8(head).unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    let len: usize = head
        .lines()
        .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().parse().unwrap()))
        .unwrap_or(0);
    let mut body = vec![0u8; len];
    s.read_exact(&mut body).unwrap();
    (status, String::from_utf8_lossy(&body).into_owned())
}

#[test]
fn a_503_leaves_a_keep_alive_connection_in_step_after_length_and_chunked_bodies() {
    use std::io::Write;
    let lab = ProxyLab::start();
    let mut s = std::net::TcpStream::connect(lab.proxy.addr()).unwrap();
    let bucket = &lab.garage.bucket;
    lab.proxy.set(Faults { slowdown_rate: 1.0, ..Faults::none() }).unwrap();
    let body = vec![b'x'; 100_000];
    write!(s, "PUT /{bucket}/a HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n", body.len()).unwrap();
    s.write_all(&body).unwrap();
    let (status, text) = read_answer(&mut s);
    assert_eq!(status, 503);
    assert!(text.contains("<Code>SlowDown</Code>"), "{text}");
    write!(s, "PUT /{bucket}/b HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n").unwrap();
    write!(s, "5\r\nhello\r\n10;ext=1\r\n0123456789abcdef\r\n0\r\nx-trailer: 1\r\n\r\n").unwrap();
    assert_eq!(read_answer(&mut s).0, 503);

    // The same connection now reaches Garage, which answers the unsigned
    // request with its own S3 error: the bodies above were not taken for requests.
    lab.proxy.set(Faults::none()).unwrap();
    write!(s, "GET /{bucket}/a HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let (status, text) = read_answer(&mut s);
    assert_eq!(status, 403, "{text}");
    assert!(text.contains("<Code>AccessDenied</Code>"), "{text}");
    let n = lab.proxy.counters();
    assert_eq!((n.connections, n.requests, n.faulted(FaultKind::Slowdown)), (1, 3, 2), "{n:?}");
}

#[test]
fn slowdown_at_a_rate_answers_about_that_share_of_requests() {
    let lab = ProxyLab::start();
    let c = lab.client(PATIENT, true);
    let slowed = rt().block_on(async {
        assert_eq!(put(&c, "k", Bytes::from_static(b"v")).await, Outcome::Ok);
        lab.proxy.set(Faults { slowdown_rate: 0.3, ..Faults::none() }).unwrap();
        let mut slowed = 0;
        for _ in 0..200 {
            match get(&c, "k").await {
                Outcome::Ok => {}
                Outcome::SlowDown => slowed += 1,
                other => panic!("unexpected {other}"),
            }
        }
        slowed
    });
    tracing::info!(slowed, "of 200 GETs at rate 0.3");
    // Binomial(200, 0.3): mean 60, standard deviation 6.5.
    assert!((20..=110).contains(&slowed), "{slowed}");
    assert_eq!(lab.proxy.counters().faulted(FaultKind::Slowdown), slowed);
}

#[test]
fn faults_switch_over_the_control_api() {
    let lab = ProxyLab::start();
    let api = lab.proxy.serve_control(loopback(0)).unwrap();
    let (c, fresh) = (lab.client(PATIENT, true), lab.client(PATIENT, false));
    let rt = rt();
    assert_eq!(rt.block_on(put(&c, "k", Bytes::from_static(b"v"))), Outcome::Ok);

    let (status, body) = http(api, "GET", "/faults", "");
    assert_eq!(status, 200, "{body}");
    let off: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(off["slowdown_rate"], 0.0);
    assert_eq!(off["bandwidth_bps"], serde_json::Value::Null);

    let (status, body) = http(api, "PUT", "/faults", r#"{"slowdown_rate": 1.0}"#);
    assert_eq!(status, 200, "{body}");
    assert_eq!(rt.block_on(get(&c, "k")), Outcome::SlowDown);

    let (status, body) = http(api, "PATCH", "/faults", r#"{"latency_ms": 50}"#);
    assert_eq!(status, 200, "{body}");
    let now: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!((now["slowdown_rate"].as_f64(), now["latency_ms"].as_u64()), (Some(1.0), Some(50)));

    let (status, body) = http(api, "PUT", "/faults", r#"{"slowdown": 1}"#);
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("unknown field `slowdown`"), "{body}");
    let (status, body) = http(api, "PUT", "/faults", r#"{"slowdown_rate": 2, "bandwidth_bps": 0}"#);
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("slowdown_rate") && body.contains("bandwidth_bps"), "{body}");
    assert_eq!(lab.proxy.faults().latency_ms, 50, "a refused change changes nothing");

    assert_eq!(http(api, "DELETE", "/faults", "").0, 200);
    assert_eq!(rt.block_on(get(&c, "k")), Outcome::Ok);

    // The answer comes once the listener is closed: the next connect is refused.
    assert_eq!(http(api, "PUT", "/faults", r#"{"refuse": true}"#).0, 200);
    assert_eq!(rt.block_on(get(&fresh, "k")), Outcome::ConnectRefused);
    assert_eq!(http(api, "DELETE", "/faults", "").0, 200);
    assert_eq!(rt.block_on(get(&fresh, "k")), Outcome::Ok);

    let (status, metrics) = http(api, "GET", "/metrics", "");
    assert_eq!(status, 200);
    assert!(metrics.contains("cutover_chaos_faulted_total{kind=\"slowdown\"} 1\n"), "{metrics}");
    assert!(metrics.contains("cutover_chaos_faulted_total{kind=\"refuse\"} 1\n"), "{metrics}");
    assert!(metrics.contains("cutover_chaos_fault_active{kind=\"refuse\"} 0\n"), "{metrics}");
    assert!(metrics.contains("# TYPE cutover_chaos_connections_total counter"), "{metrics}");
    assert_eq!(http(api, "GET", "/nope", "").0, 404);
    assert_eq!(http(api, "POST", "/faults", "{}").0, 405);
    assert_eq!(http(api, "GET", "/healthz", "").0, 200);
}

#[test]
fn a_bandwidth_cap_slows_a_1_mib_transfer_both_ways() {
    let lab = ProxyLab::start();
    let c = lab.client(PATIENT, true);
    let body = cutover_s3::random_bytes(1 << 20);
    rt().block_on(async {
        lab.proxy.set(Faults { bandwidth_bps: Some(512 << 10), ..Faults::none() }).unwrap();
        let start = Instant::now();
        assert_eq!(put(&c, "big", body.clone()).await, Outcome::Ok);
        let up = start.elapsed();
        let start = Instant::now();
        let got = c.get_object("big", &[]).await.unwrap();
        let down = start.elapsed();
        tracing::info!(?up, ?down, "1 MiB at 512 KiB/s");
        assert_eq!(got.body, body);
        // 2 s at the cap; the bound is lenient.
        assert!(up >= Duration::from_millis(1500), "upload took {up:?}");
        assert!(down >= Duration::from_millis(1500), "download took {down:?}");
    });
}

#[test]
fn bytes_that_are_not_http_are_relayed_as_they_are() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let rt = rt();
    // An echo server upstream, speaking no HTTP at all (as TLS would not parse).
    let echo = rt.block_on(tokio::net::TcpListener::bind(loopback(0))).unwrap();
    let upstream = echo.local_addr().unwrap();
    rt.spawn(async move {
        while let Ok((mut s, _)) = echo.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = s.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    let proxy = Proxy::start(loopback(0), &upstream.to_string()).unwrap();
    proxy.set(Faults { latency_ms: 200, ..Faults::none() }).unwrap();
    let hello = [0x16u8, 0x03, 0x01, 0x00, 0x05, b'h', b'e', b'l', b'l', b'o'];
    rt.block_on(async {
        let mut s = tokio::net::TcpStream::connect(proxy.addr()).await.unwrap();
        let start = Instant::now();
        s.write_all(&hello).await.unwrap();
        let mut back = [0u8; 10];
        s.read_exact(&mut back).await.unwrap();
        assert_eq!(back, hello);
        assert!(start.elapsed() >= Duration::from_millis(200), "{:?}", start.elapsed());
    });
    let n = proxy.counters();
    assert_eq!((n.requests, n.bytes_upstream, n.bytes_downstream), (0, 10, 10), "{n:?}");
    assert_eq!(n.faulted(FaultKind::Latency), 1, "a plain-bytes connection counts once");
    proxy.shutdown();
}

#[test]
fn start_names_a_bad_upstream_and_a_taken_address() {
    let err = Proxy::start(loopback(0), "no-port").unwrap_err().to_string();
    assert!(err.contains("expected HOST:PORT"), "{err}");
    let taken = std::net::TcpListener::bind(loopback(0)).unwrap();
    let err = Proxy::start(taken.local_addr().unwrap(), "127.0.0.1:9").unwrap_err().to_string();
    assert!(err.starts_with("binding 127.0.0.1:"), "{err}");
}
