//! `[signals.prometheus] ca_file`: a Prometheus-like HTTPS server behind a
//! private CA (a TLS terminator with a throwaway CA made by openssl, in
//! front of a server answering the instant-query API).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::time::Duration;

use cutover_control::signals::{Reading, SignalError, Source};
use cutover_core::HttpUrl;
use cutover_core::config::PrometheusSignal;
use cutover_lab::tls::{TestPki, TlsFront};

const ANSWER: &str =
    r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1700000000,"0.25"]}]}}"#;

/// Answers every request with [`ANSWER`] and closes the connection.
fn prometheus_like() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { continue };
            let mut buf = Vec::new();
            let mut chunk = [0u8; 1024];
            while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                match s.read(&mut chunk) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                }
            }
            let head = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                ANSWER.len()
            );
            let _ = s.write_all(head.as_bytes()).and_then(|()| s.write_all(ANSWER.as_bytes()));
        }
    });
    addr
}

fn source(url: &str, ca_file: Option<PathBuf>) -> Source {
    Source::Prometheus(PrometheusSignal {
        url: HttpUrl::parse(url).unwrap(),
        query: "sum(rate(s3_errors_total[1m]))".into(),
        threshold: 0.1,
        interval: Duration::from_secs(5),
        timeout: Duration::from_secs(10),
        backend: "primary".into(),
        ca_file,
    })
}

#[tokio::test]
async fn prometheus_signal_with_internal_ca() {
    let dir = tempfile::tempdir().unwrap();
    let pki = TestPki::generate(dir.path(), "prom").unwrap();
    let front = TlsFront::start(&pki, prometheus_like()).unwrap();

    let reading = source(&front.url(), Some(pki.ca.clone())).read().await.unwrap();
    assert_eq!(reading, Reading::Prometheus { value: Some(0.25) });

    let err = source(&front.url(), None).read().await.unwrap_err();
    let SignalError::Transport { outcome, detail } = &err else { panic!("{err:?}") };
    assert_eq!(*outcome, cutover_core::Outcome::Tls);
    assert!(detail.contains("certificate") && detail.contains("ca_file"), "{detail}");
}
