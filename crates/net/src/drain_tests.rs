use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::oneshot;

use super::*;
use crate::{http1, serve_http1};

const LIMITS: Limits = Limits { max_connections: 8, header_timeout: Duration::from_secs(30) };

/// An HTTP/1.1 server whose handler sleeps `pause` before answering; it
/// stops when the returned sender fires.
fn slow_server(
    listener: TcpListener,
    pause: Duration,
    drain: Duration,
) -> (oneshot::Sender<()>, tokio::task::JoinHandle<()>) {
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(serve_until(
        listener,
        "test",
        LIMITS,
        || {},
        move |socket, stopping| async move {
            let svc = hyper::service::service_fn(move |_req: hyper::Request<Incoming>| async move {
                tokio::time::sleep(pause).await;
                Ok::<_, Infallible>(hyper::Response::new(String::from("done")))
            });
            let _ = serve_http1(&http1(LIMITS), TokioIo::new(socket), svc, stopping).await;
        },
        async move { drop(stopped.await) },
        drain,
    ));
    (stop, task)
}

async fn get(addr: std::net::SocketAddr) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n").await.unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 1024];
    // Read until the answer's body has arrived or the connection closes.
    while !out.ends_with(b"done") {
        match s.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test]
async fn a_request_in_progress_finishes_after_shutdown_and_the_listener_closes() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, task) = slow_server(listener, Duration::from_millis(300), Duration::from_secs(10));
    let request = tokio::spawn(get(addr));
    tokio::time::sleep(Duration::from_millis(100)).await;
    stop.send(()).unwrap();
    let answer = request.await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 200") && answer.ends_with("done"), "{answer}");
    tokio::time::timeout(Duration::from_secs(5), task).await.expect("drained").unwrap();
    assert!(TcpStream::connect(addr).await.is_err(), "the listener is still open after the drain");
}

#[tokio::test]
async fn connections_still_busy_after_the_drain_are_closed() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, task) = slow_server(listener, Duration::from_secs(60), Duration::from_millis(200));
    let request = tokio::spawn(get(addr));
    tokio::time::sleep(Duration::from_millis(100)).await;
    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(5), task).await.expect("the drain is bounded").unwrap();
    let answer = tokio::time::timeout(Duration::from_secs(5), request).await.expect("closed").unwrap();
    assert!(!answer.contains("done"), "{answer}");
}

#[tokio::test]
async fn refused_is_called_beyond_the_cap() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let refused = Arc::new(AtomicUsize::new(0));
    let r = refused.clone();
    let limits = Limits { max_connections: 1, header_timeout: Duration::from_secs(30) };
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(serve_until(
        listener,
        "test",
        limits,
        move || {
            r.fetch_add(1, Ordering::Relaxed);
        },
        |mut s: TcpStream, mut stopping: Stopping| async move {
            let mut buf = [0u8; 16];
            tokio::select! {
                _ = s.read(&mut buf) => {}
                _ = stopping.stopped() => {}
            }
        },
        async move { drop(stopped.await) },
        Duration::from_secs(5),
    ));
    let _held = TcpStream::connect(addr).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut second = TcpStream::connect(addr).await.unwrap();
    let mut buf = [0u8; 1];
    let n = tokio::time::timeout(Duration::from_secs(10), second.read(&mut buf)).await.unwrap().unwrap_or(0);
    assert_eq!(n, 0, "the second connection was not closed");
    assert_eq!(refused.load(Ordering::Relaxed), 1);
    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(5), task).await.expect("the held connection stops").unwrap();
}
