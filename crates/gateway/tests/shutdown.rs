//! Shutting the gateway down while an upload is in progress: the listener
//! closes at once (new connections are refused), the upload in progress
//! finishes and is stored, then its connection closes and `serve` returns.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use cutover_s3::sigv4::{self, AmzDate};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use common::{CLIENT_KEY, CLIENT_SECRET, lab};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_in_progress_at_shutdown_finishes_and_new_connections_are_refused() {
    let mut lab = lab().await;
    let port = lab.gw.port;
    let host = format!("127.0.0.1:{port}");
    let date = AmzDate::from_system_time(SystemTime::now());
    let query = sigv4::presign_query(
        "PUT",
        &host,
        "/app/slow",
        CLIENT_KEY,
        CLIENT_SECRET,
        None,
        "us-east-1",
        &date,
        Duration::from_secs(600),
    );
    let body: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
    let mut conn = TcpStream::connect(&host).await.unwrap();
    let head = format!("PUT /app/slow?{query} HTTP/1.1\r\nhost: {host}\r\ncontent-length: {}\r\n\r\n", body.len());
    conn.write_all(head.as_bytes()).await.unwrap();
    conn.write_all(&body[..5_000]).await.unwrap();
    // Let the request reach the backend with half its body.
    tokio::time::sleep(Duration::from_millis(300)).await;

    let served = AtomicBool::new(false);
    let stop = async {
        lab.gw.shutdown().await;
        served.store(true, Ordering::SeqCst);
    };
    let client = async {
        let mut refused = false;
        for _ in 0..100 {
            if TcpStream::connect(&host).await.is_err() {
                refused = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(refused, "the gateway still accepts connections after shutdown");
        assert!(!served.load(Ordering::SeqCst), "serve returned while an upload was in progress");
        conn.write_all(&body[5_000..]).await.unwrap();
        // The connection closes after the answer (graceful shutdown).
        let mut answer = Vec::new();
        conn.read_to_end(&mut answer).await.unwrap();
        String::from_utf8_lossy(&answer).into_owned()
    };
    let ((), answer) =
        tokio::time::timeout(Duration::from_secs(60), async { tokio::join!(stop, client) }).await.expect("stuck");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(served.load(Ordering::SeqCst));
    assert_eq!(lab.stored("slow").await.as_deref(), Some(&body[..]), "the upload was not stored whole");
}
