//! TLS to a backend with a private CA (`ca_file`), and the connection pool:
//! keyed by host, idle connections expire. The S3 server is a real s3s-fs
//! behind a TLS terminator with a throwaway CA made by openssl.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use cutover_core::config::load_str;
use cutover_core::{Endpoint, Outcome};
use cutover_lab::s3sfs::S3sFs;
use cutover_lab::tls::{TestPki, TlsFront};
use cutover_s3::http::{Connector, empty};
use cutover_s3::{ClientOptions, Credentials, S3Client};

fn opts() -> ClientOptions {
    ClientOptions { timeout: Duration::from_secs(20), connect_timeout: Duration::from_secs(5), pooled: true }
}

/// A client for `https://front` with `ca_file` (or none), built from a
/// configuration text as `cutover` builds it.
fn client(front: &TlsFront, fs: &S3sFs, ca_file: Option<&Path>, dir: &Path) -> S3Client {
    let ca = ca_file.map(|p| format!("ca_file = {:?}\n", p.display().to_string())).unwrap_or_default();
    let text = format!(
        "[[backends]]\nname = \"onprem\"\nendpoint = \"{}\"\nregion = \"us-east-1\"\nbucket = \"{}\"\nrole = \"primary\"\n\
         credentials = {{ access_key_id_env = \"K\", secret_access_key_env = \"S\" }}\n{ca}",
        front.url(),
        fs.bucket
    );
    let config = load_str(&text, "cutover.toml", dir, &|_| Some("set".into())).unwrap();
    let creds = Credentials {
        access_key_id: fs.key_id.clone(),
        secret_access_key: cutover_core::Secret::new(fs.secret.clone()),
        session_token: None,
    };
    S3Client::new(&config.backends[0], creds, opts())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backend_with_internal_ca_is_reachable_with_ca_file() {
    let dir = tempfile::tempdir().unwrap();
    let pki = TestPki::generate(dir.path(), "internal").unwrap();
    let fs = S3sFs::start("onprem-data").unwrap();
    let front = TlsFront::start(&pki, fs.addr).unwrap();

    // The path is relative: it resolves against the configuration's directory.
    let with_ca = client(&front, &fs, Some(Path::new("internal-ca.pem")), dir.path());
    with_ca.put_object("k", Bytes::from_static(b"over tls"), &[]).await.unwrap();
    let got = with_ca.get_object("k", &[]).await.unwrap();
    assert_eq!(&got.body[..], b"over tls");

    // Without it, the public roots do not know the private CA: a TLS
    // failure that says so, never a silent success.
    let without = client(&front, &fs, None, dir.path());
    let e = without.get_object("k", &[]).await.unwrap_err();
    assert_eq!(e.outcome(), Outcome::Tls, "{e}");
    let text = e.to_string();
    assert!(text.contains("certificate") && text.contains("ca_file"), "{text}");
}

/// What broke: a `ca_file` that became unreadable after the configuration
/// was checked must fail the connection, naming the file, and never fall
/// back to the public roots.
#[tokio::test]
async fn backend_with_an_unreadable_ca_file_fails_with_the_file_named() {
    let dir = tempfile::tempdir().unwrap();
    let ep = Endpoint::parse("https://127.0.0.1:1").unwrap();
    let missing = dir.path().join("gone.pem");
    let conn = Connector::with_ca_file(ep, Duration::from_secs(1), true, Some(&missing));
    let e = conn.checkout("127.0.0.1").await.unwrap_err();
    assert_eq!(e.outcome, Outcome::Tls);
    assert!(e.detail.contains("ca_file") && e.detail.contains("gone.pem"), "{}", e.detail);
}

/// An HTTP/1.1 server that answers every request `200 ok` on keep-alive
/// connections and counts the connections it accepted.
fn counting_server() -> (u16, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let accepts = Arc::new(AtomicUsize::new(0));
    let counter = accepts.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            counter.fetch_add(1, Ordering::SeqCst);
            std::thread::spawn(move || {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 1024];
                loop {
                    while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        buf.drain(..end + 4);
                        if stream.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok").is_err() {
                            return;
                        }
                    }
                    match stream.read(&mut chunk) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
            });
        }
    });
    (port, accepts)
}

/// One GET on a connection checked out for `host`, then checked in.
async fn get(conn: &Connector, host: &str) {
    let mut sender = conn.checkout(host).await.unwrap();
    let req = http::Request::get("/").header("host", host).body(empty()).unwrap();
    let resp = sender.send_request(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    http_body_util::BodyExt::collect(resp.into_body()).await.unwrap();
    conn.checkin(sender);
}

#[tokio::test]
async fn pooled_connections_are_reused_per_host() {
    let (port, accepts) = counting_server();
    let ep = Endpoint::parse(&format!("http://127.0.0.1:{port}")).unwrap();
    let conn = Connector::new(ep, Duration::from_secs(5), true).idle_timeout(Duration::from_secs(3600));
    for _ in 0..3 {
        get(&conn, "127.0.0.1").await;
    }
    assert_eq!(accepts.load(Ordering::SeqCst), 1, "one connection for one host");
    // Another host (a virtual-host bucket name) gets its own connection,
    // never one opened for the first.
    get(&conn, "localhost").await;
    get(&conn, "localhost").await;
    assert_eq!(accepts.load(Ordering::SeqCst), 2);
    get(&conn, "127.0.0.1").await;
    assert_eq!(accepts.load(Ordering::SeqCst), 2);
}

/// What broke: an idle pooled connection was kept forever, so a request
/// could go out on a socket that the server was closing after its own
/// keep-alive timeout. One idle longer than the limit is not reused.
#[tokio::test]
async fn idle_connection_older_than_the_limit_is_not_reused() {
    let (port, accepts) = counting_server();
    let ep = Endpoint::parse(&format!("http://127.0.0.1:{port}")).unwrap();
    let limit = Duration::from_millis(200);
    let conn = Connector::new(ep, Duration::from_secs(5), true).idle_timeout(limit);
    get(&conn, "127.0.0.1").await;
    assert_eq!(accepts.load(Ordering::SeqCst), 1);
    // Sleeping at least twice the limit makes the connection older than it
    // however slow the machine is; no upper bound is assumed.
    tokio::time::sleep(limit * 2).await;
    get(&conn, "127.0.0.1").await;
    assert_eq!(accepts.load(Ordering::SeqCst), 2, "the expired connection was reused");
}
