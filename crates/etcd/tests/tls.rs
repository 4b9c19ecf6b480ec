//! https:// endpoints: etcd behind a TLS terminator with a test CA.

mod common;

use std::time::Duration;

use cutover_etcd::{Client, ClientOptions, EtcdError, TlsError, TlsFiles};
use cutover_lab::tls::{TestPki, TlsFront};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_endpoints_trust_the_ca_file() {
    let cluster = common::cluster();
    let dir = tempfile::tempdir().unwrap();
    let pki = TestPki::generate(dir.path(), "etcd").unwrap();
    let upstream = format!("127.0.0.1:{}", cluster.endpoints()[0].rsplit(':').next().unwrap()).parse().unwrap();
    let front = TlsFront::start(&pki, upstream).unwrap();
    let mut o = ClientOptions::new(vec![front.url()], Duration::from_secs(2));
    o.tls = TlsFiles { ca_file: Some(pki.ca.clone()), ..TlsFiles::default() };
    let c = Client::new(&o).unwrap();
    c.put(b"/tls/x", b"v", 0).await.unwrap();
    assert_eq!(c.get(b"/tls/x").await.unwrap().1.unwrap().value, b"v");
    // A watch over TLS.
    let mut w = c.watch(b"/tls/x", &[], 0).await.unwrap();
    c.put(b"/tls/x", b"w", 0).await.unwrap();
    let msg = tokio::time::timeout(Duration::from_secs(5), w.next()).await.unwrap().unwrap().unwrap();
    assert_eq!(msg.events[0].kv.value, b"w");
    // Without the CA: the handshake fails, a transport error.
    let plain = Client::new(&ClientOptions::new(vec![front.url()], Duration::from_secs(2))).unwrap();
    let e = plain.get(b"/tls/x").await.unwrap_err();
    assert!(e.is_transport(), "{e}");
    // A client certificate needs both files.
    o.tls.cert_file = Some(pki.chain.clone());
    assert!(matches!(Client::new(&o).unwrap_err(), EtcdError::Tls(TlsError::HalfClientCert)));
    o.tls.key_file = Some(pki.key.clone());
    Client::new(&o).unwrap();
}
