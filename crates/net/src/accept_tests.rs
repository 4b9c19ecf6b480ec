use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::io::AsyncReadExt;

use super::*;

#[tokio::test]
async fn connections_beyond_the_cap_are_closed_and_counted() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let refused = Arc::new(AtomicUsize::new(0));
    let r = refused.clone();
    let limits = Limits { max_connections: 1, header_timeout: Duration::from_secs(30) };
    let task = tokio::spawn(accept_loop(
        listener,
        "test",
        limits,
        move || {
            r.fetch_add(1, Ordering::Relaxed);
        },
        |mut s: TcpStream| async move {
            // Hold the connection until the client goes away.
            let mut buf = [0u8; 16];
            let _ = s.read(&mut buf).await;
        },
    ));
    let _held = TcpStream::connect(addr).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut second = TcpStream::connect(addr).await.unwrap();
    let mut buf = [0u8; 1];
    let n = tokio::time::timeout(Duration::from_secs(10), second.read(&mut buf)).await.unwrap().unwrap_or(0);
    assert_eq!(n, 0, "the second connection was not closed");
    assert_eq!(refused.load(Ordering::Relaxed), 1);
    task.abort();
}

#[tokio::test]
async fn accepted_connections_have_nodelay() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel();
    let tx = std::sync::Mutex::new(Some(tx));
    let limits = Limits { max_connections: 4, header_timeout: Duration::from_secs(30) };
    let task = tokio::spawn(accept_loop(
        listener,
        "test",
        limits,
        || {},
        move |s: TcpStream| {
            if let Some(tx) = tx.lock().unwrap().take() {
                tx.send(s.nodelay().unwrap()).unwrap();
            }
            async {}
        },
    ));
    let _client = TcpStream::connect(addr).await.unwrap();
    assert!(rx.await.unwrap(), "TCP_NODELAY is not set on an accepted connection");
    task.abort();
}
