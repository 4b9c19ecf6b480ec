//! The Prometheus signal against a real Prometheus (Debian's package) that
//! scrapes a tiny exporter in this test: the value and `firing` for a
//! threshold below and above it, an empty result, a query Prometheus refuses,
//! and `unavailable` once Prometheus is killed.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cutover_control::signals::{Reading, SignalError, Snapshot, Source};
use cutover_core::HttpUrl;
use cutover_core::Outcome;
use cutover_core::config::PrometheusSignal;
use cutover_lab::prometheus::{self, Prometheus};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Serves `/metrics` with `test_error_ratio{backend="primary"}` = the shared
/// value and a constant series for another backend.
async fn exporter(value: Arc<Mutex<f64>>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = listener.accept().await else { return };
            let value = value.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 1024];
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                let v = *value.lock().unwrap();
                let body = format!(
                    "# TYPE test_error_ratio gauge\ntest_error_ratio{{backend=\"primary\"}} {v}\ntest_error_ratio{{backend=\"secondary\"}} 0.01\n"
                );
                let resp = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = s.write_all(resp.as_bytes()).await;
            });
        }
    });
    addr
}

fn source(url: &str, query: &str, threshold: f64) -> Source {
    Source::Prometheus(PrometheusSignal {
        url: HttpUrl::parse(url).unwrap(),
        query: query.into(),
        threshold,
        interval: Duration::from_secs(1),
        timeout: Duration::from_secs(2),
        backend: "primary".into(),
        ca_file: None,
    })
}

/// Reads until the value is `want` (Prometheus needs a scrape or two first).
async fn read_until(src: &Source, want: Option<f64>, prom: &Prometheus) -> Snapshot {
    let start = Instant::now();
    loop {
        let r = src.read().await;
        if matches!(&r, Ok(Reading::Prometheus { value }) if *value == want) {
            let mut s = Snapshot::new(src.clone());
            s.latest = Some((Instant::now(), r));
            return s;
        }
        assert!(start.elapsed() < Duration::from_secs(60), "no {want:?} from Prometheus: {r:?}\n{}", prom.log());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[test]
fn the_prometheus_signal_reads_a_real_prometheus() {
    if prometheus::binary().is_none() {
        println!("SKIPPED: no prometheus binary (/usr/bin/prometheus); `apt-get install prometheus` to run this test");
        return;
    }
    let rt = tokio::runtime::Runtime::new().unwrap();
    let value = Arc::new(Mutex::new(0.2));
    let target = rt.block_on(exporter(value.clone()));
    let mut prom = Prometheus::start(&[target], Duration::from_millis(500)).unwrap();
    let url = prom.url();
    let query = r#"sum(test_error_ratio{backend="primary"})"#;

    rt.block_on(async {
        let below = source(&url, query, 0.05);
        let s = read_until(&below, Some(0.2), &prom).await;
        assert_eq!(s.firing(), Some(true), "0.2 > 0.05");
        let doc = s.to_json(Instant::now());
        assert_eq!(
            (doc["status"].as_str(), doc["value"].as_f64(), doc["firing"].as_bool()),
            (Some("ok"), Some(0.2), Some(true))
        );

        let above = source(&url, query, 0.5);
        let s = read_until(&above, Some(0.2), &prom).await;
        assert_eq!(s.firing(), Some(false), "0.2 <= 0.5");

        *value.lock().unwrap() = 0.01;
        let s = read_until(&below, Some(0.01), &prom).await;
        assert_eq!(s.firing(), Some(false), "the signal follows the scraped value");

        let s = read_until(&source(&url, "max(test_error_ratio)", 0.005), Some(0.01), &prom).await;
        assert_eq!(s.firing(), Some(true), "the maximum over both series");

        let empty = source(&url, "sum(no_such_metric_anywhere)", 0.05);
        let s = read_until(&empty, None, &prom).await;
        let doc = s.to_json(Instant::now());
        assert_eq!((doc["status"].as_str(), doc["firing"].as_bool()), (Some("ok"), Some(false)));
        assert!(doc["value"].is_null());

        let e = source(&url, "sum(rate(", 0.05).read().await.unwrap_err();
        assert!(matches!(&e, SignalError::Query { error_type, .. } if error_type == "bad_data"), "{e}");
    });

    prom.kill();
    rt.block_on(async {
        let src = source(&url, query, 0.05);
        let e = src.read().await.unwrap_err();
        assert!(matches!(e, SignalError::Transport { outcome: Outcome::ConnectRefused, .. }), "{e}");
        let mut s = Snapshot::new(src);
        s.latest = Some((Instant::now(), Err(e)));
        let doc = s.to_json(Instant::now());
        assert_eq!(doc["status"], "unavailable");
        assert!(doc["error"].as_str().unwrap().starts_with("ConnectRefused"), "{doc}");
        assert!(doc["firing"].is_null() && doc["value"].is_null(), "{doc}");
    });
}
