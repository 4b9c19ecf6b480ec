//! The gateway's TLS listener in process, with real rustls clients over
//! loopback (no backend is needed: anonymous requests are answered by the
//! gateway itself).
//!
//! - handshakes run on each connection's task: a client that never speaks
//!   does not hold up the next one, and is dropped at the handshake deadline
//!   (a connection closed before its first byte is a probe, not counted);
//! - ALPN `http/1.1`, TLS 1.3 and 1.2;
//! - a client that does not trust the CA, and plain HTTP sent to the TLS
//!   port, fail the handshake; both are counted in
//!   `cutover_gateway_tls_handshake_failures_total` and the gateway keeps serving.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cutover_gateway::{ActiveBackend, Gateway, GatewayOptions};
use cutover_lab::tls::TestPki;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsConnector;

/// A TLS gateway on a free port, and the PKI it serves.
async fn gateway(dir: &Path, handshake_timeout: Duration) -> (Gateway, u16, TestPki) {
    let pki = TestPki::generate(dir, "gw").unwrap();
    std::fs::write(dir.join("client.secret"), "client-secret").unwrap();
    std::fs::write(dir.join("backend.credentials"), "[default]\naws_access_key_id = K\naws_secret_access_key = S\n")
        .unwrap();
    let text = format!(
        "[state]\npath = \"cutover.db\"\n[gateway]\nlisten = \"127.0.0.1:0\"\n\
         tls_cert_file = \"{}\"\ntls_key_file = \"{}\"\n\
         [[gateway.clients]]\naccess_key_id = \"CLIENTKEY\"\nsecret_access_key_file = \"client.secret\"\n\
         [[gateway.buckets]]\nname = \"app\"\n\n\
         [[backends]]\nname = \"primary\"\nendpoint = \"http://127.0.0.1:1\"\nregion = \"r\"\nbucket = \"data\"\n\
         role = \"primary\"\ncredentials = {{ file = \"backend.credentials\" }}\n",
        pki.chain.file_name().unwrap().to_str().unwrap(),
        pki.key.file_name().unwrap().to_str().unwrap(),
    );
    let env = |_: &str| None;
    let config = cutover_core::config::load_str(&text, "test.toml", dir, &env).unwrap();
    let opts = GatewayOptions { tls_handshake_timeout: handshake_timeout, ..GatewayOptions::default() };
    let gw = Gateway::build(&config, ActiveBackend::new("primary"), opts).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let serving = gw.clone();
    tokio::spawn(async move { serving.serve(listener, std::future::pending()).await });
    (gw, port, pki)
}

fn connector(ca: &Path, versions: &[&'static rustls::SupportedProtocolVersion]) -> TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(ca).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    TlsConnector::from(Arc::new(config))
}

const ANONYMOUS_GET: &[u8] = b"GET /app/key HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: close\r\n\r\n";

/// The gateway's answer to an anonymous GET over TLS, and the protocol details.
async fn anonymous_get(port: u16, connector: &TlsConnector) -> (String, rustls::ProtocolVersion, Option<Vec<u8>>) {
    let tcp = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let mut tls = connector.connect(ServerName::try_from("localhost").unwrap(), tcp).await.unwrap();
    let (_, session) = tls.get_ref();
    let version = session.protocol_version().unwrap();
    let alpn = session.alpn_protocol().map(<[u8]>::to_vec);
    tls.write_all(ANONYMOUS_GET).await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(20), tls.read_to_end(&mut out)).await.unwrap().unwrap();
    (String::from_utf8_lossy(&out).into_owned(), version, alpn)
}

async fn failures(gw: &Gateway) -> u64 {
    let text = gw.render_metrics().await;
    let line = text.lines().find(|l| l.starts_with("cutover_gateway_tls_handshake_failures_total ")).unwrap();
    line.rsplit(' ').next().unwrap().parse().unwrap()
}

/// Polls until the failure counter reaches `n` (the bound only ends a hung test).
async fn wait_failures(gw: &Gateway, n: u64) {
    let start = Instant::now();
    while failures(gw).await < n {
        assert!(start.elapsed() < Duration::from_secs(30), "failures stuck at {}", failures(gw).await);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(failures(gw).await, n);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_client_holds_up_no_one_and_is_dropped_at_the_handshake_deadline() {
    let dir = tempfile::tempdir().unwrap();
    let (gw, port, pki) = gateway(dir.path(), Duration::from_millis(500)).await;
    // A port probe (connected, closed at once) is no handshake: not counted.
    drop(TcpStream::connect(("127.0.0.1", port)).await.unwrap());
    // Connected, never says a word.
    let mut silent = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    // Meanwhile another client is served, over TLS 1.3 and over TLS 1.2, with ALPN http/1.1.
    for (versions, expect) in [
        (&[&rustls::version::TLS13][..], rustls::ProtocolVersion::TLSv1_3),
        (&[&rustls::version::TLS12][..], rustls::ProtocolVersion::TLSv1_2),
    ] {
        let (answer, version, alpn) = anonymous_get(port, &connector(&pki.ca, versions)).await;
        assert!(answer.starts_with("HTTP/1.1 403"), "{answer}");
        assert!(answer.contains("<Code>AccessDenied</Code>"), "{answer}");
        assert_eq!(version, expect);
        assert_eq!(alpn.as_deref(), Some(&b"http/1.1"[..]));
    }
    // The silent client is dropped at the deadline and counted.
    let mut buf = [0u8; 64];
    let n = tokio::time::timeout(Duration::from_secs(30), silent.read(&mut buf)).await.unwrap().unwrap_or(0);
    assert_eq!(n, 0, "the silent connection is closed");
    wait_failures(&gw, 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn untrusting_clients_and_plain_http_fail_the_handshake_are_counted_and_the_gateway_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let (gw, port, pki) = gateway(dir.path(), Duration::from_secs(10)).await;
    assert_eq!(failures(&gw).await, 0);

    // A client that trusts another CA refuses the server's certificate.
    let other = TestPki::generate(dir.path(), "other").unwrap();
    let tcp = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let e = connector(&other.ca, &[&rustls::version::TLS13])
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("invalid peer certificate"), "{e}");
    wait_failures(&gw, 1).await;

    // Plain HTTP to the TLS port: no HTTP answer, the connection is closed.
    let mut plain = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    plain.write_all(ANONYMOUS_GET).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(30), plain.read_to_end(&mut out)).await.unwrap();
    assert!(!out.starts_with(b"HTTP/"), "{:?}", String::from_utf8_lossy(&out));
    wait_failures(&gw, 2).await;

    // Still serving.
    let (answer, _, _) = anonymous_get(port, &connector(&pki.ca, &[&rustls::version::TLS13])).await;
    assert!(answer.starts_with("HTTP/1.1 403"), "{answer}");
    assert_eq!(failures(&gw).await, 2);
}
