//! Parsing of both formats, the documents the policy sees, and reads from a
//! local HTTP server serving the documented Statuspage JSON (a third-party
//! SaaS format): ok, bad JSON, an HTTP error, a hang (timeout) and a refused
//! connection. Prometheus itself is exercised for real in tests/prometheus.rs.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use super::*;
use crate::telemetry::Telemetry;

fn statuspage(url: &str, timeout: Duration) -> Source {
    Source::Statuspage(StatuspageSignal {
        url: HttpUrl::parse(url).unwrap(),
        interval: Duration::from_secs(30),
        timeout,
        backend: "primary".into(),
        ca_file: None,
    })
}

fn prometheus(url: &str, threshold: f64) -> Source {
    Source::Prometheus(PrometheusSignal {
        url: HttpUrl::parse(url).unwrap(),
        query: "sum(rate(x[1m]))".into(),
        threshold,
        interval: Duration::from_secs(5),
        timeout: Duration::from_secs(2),
        backend: "primary".into(),
        ca_file: None,
    })
}

/// What the test server does with each request.
#[derive(Clone)]
enum Answer {
    Respond(u16, &'static str),
    Hang,
}

/// Serves `answer` on a free loopback port; returns the base URL and the
/// request lines it saw.
async fn server(answer: Answer) -> (String, tokio::sync::mpsc::UnboundedReceiver<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = listener.accept().await else { return };
            let (answer, tx) = (answer.clone(), tx.clone());
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 1024];
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                let text = String::from_utf8_lossy(&buf).into_owned();
                let _ = tx.send(text.lines().next().unwrap_or("").to_string());
                match answer {
                    Answer::Hang => tokio::time::sleep(Duration::from_secs(3600)).await,
                    Answer::Respond(status, body) => {
                        let resp = format!(
                            "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                            body.len()
                        );
                        let _ = s.write_all(resp.as_bytes()).await;
                    }
                }
            });
        }
    });
    (url, rx)
}

const STATUS_MINOR: &str = r#"{"page":{"id":"kctbh9vrtdwd","name":"Example","url":"https://status.example.com","updated_at":"2026-11-24T03:20:35.120Z"},"status":{"indicator":"minor","description":"Partially Degraded Service"}}"#;

#[test]
fn prometheus_answers_give_the_maximum_over_series() {
    let vector = br#"{"status":"success","data":{"resultType":"vector","result":[
        {"metric":{"backend":"a"},"value":[1700000000.1,"0.02"]},
        {"metric":{"backend":"b"},"value":[1700000000.1,"0.07"]},
        {"metric":{"backend":"c"},"value":[1700000000.1,"NaN"]}]}}"#;
    assert_eq!(parse_prometheus(200, vector), Ok(Some(0.07)));
    let scalar = br#"{"status":"success","data":{"resultType":"scalar","result":[1700000000.1,"+Inf"]}}"#;
    assert_eq!(parse_prometheus(200, scalar), Ok(Some(f64::INFINITY)));
    let empty = br#"{"status":"success","data":{"resultType":"vector","result":[]}}"#;
    assert_eq!(parse_prometheus(200, empty), Ok(None));
    let nan = br#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1,"NaN"]}]}}"#;
    assert_eq!(parse_prometheus(200, nan), Ok(None), "0/0 over no requests is no value");
}

#[test]
fn prometheus_errors_are_named() {
    let bad = br#"{"status":"error","errorType":"bad_data","error":"invalid parameter \"query\": 1:5: parse error"}"#;
    let e = parse_prometheus(400, bad).unwrap_err();
    assert_eq!(e.to_string(), "Prometheus bad_data: invalid parameter \"query\": 1:5: parse error");
    let matrix = br#"{"status":"success","data":{"resultType":"matrix","result":[]}}"#;
    assert!(parse_prometheus(200, matrix).unwrap_err().to_string().contains("gives a matrix"));
    assert!(matches!(parse_prometheus(502, b"Bad Gateway"), Err(SignalError::Status { status: 502, .. })));
    assert!(matches!(parse_prometheus(200, b"<html>"), Err(SignalError::Format(_))));
    let not_number = br#"{"status":"success","data":{"resultType":"scalar","result":[1,"many"]}}"#;
    assert!(parse_prometheus(200, not_number).unwrap_err().to_string().contains("\"many\" is not a number"));
}

#[test]
fn statuspage_answers_give_indicator_and_description() {
    assert_eq!(parse_statuspage(STATUS_MINOR.as_bytes()), Ok((Indicator::Minor, "Partially Degraded Service".into())));
    for (text, indicator) in [("none", Indicator::None), ("major", Indicator::Major), ("critical", Indicator::Critical)]
    {
        let body = format!(r#"{{"status":{{"indicator":"{text}","description":"d"}}}}"#);
        assert_eq!(parse_statuspage(body.as_bytes()).unwrap().0, indicator);
    }
    let unknown = br#"{"status":{"indicator":"purple","description":"?"}}"#;
    assert!(parse_statuspage(unknown).unwrap_err().to_string().contains("\"purple\" is not none"));
    assert!(parse_statuspage(br#"{"page":{}}"#).unwrap_err().to_string().contains("status.indicator is missing"));
    assert!(parse_statuspage(b"{not json").unwrap_err().to_string().starts_with("unexpected answer: not JSON"));
}

#[test]
fn the_policy_documents_have_the_documented_shape() {
    let t0 = Instant::now();
    let mut p = Snapshot::new(prometheus("http://127.0.0.1:9", 0.05));
    p.latest = Some((t0, Ok(Reading::Prometheus { value: Some(0.07) })));
    assert_eq!(
        p.to_json(t0 + Duration::from_millis(1200)),
        json!({"status": "ok", "value": 0.07, "threshold": 0.05, "firing": true, "backend": "primary", "age_ms": 1200})
    );
    p.latest = Some((t0, Ok(Reading::Prometheus { value: None })));
    assert_eq!(p.to_json(t0)["firing"], false, "no value is not firing");
    p.latest = Some((t0, Err(SignalError::Timeout(Duration::from_secs(2)))));
    assert_eq!(
        p.to_json(t0),
        json!({"status": "unavailable", "error": "no answer within 2s", "value": null, "threshold": 0.05,
               "firing": null, "backend": "primary", "age_ms": 0})
    );
    let mut s = Snapshot::new(statuspage("https://status.example.com/api/v2/status.json", Duration::from_secs(2)));
    s.latest = Some((t0, Ok(Reading::Statuspage { indicator: Indicator::Major, description: "Outage".into() })));
    assert_eq!(
        s.to_json(t0),
        json!({"status": "ok", "indicator": "major", "description": "Outage", "backend": "primary", "age_ms": 0})
    );
    let telemetry = Telemetry::default();
    telemetry.emit(&s.event());
    telemetry.emit(&p.event());
    let mut registry = prometheus_client::registry::Registry::default();
    telemetry.metrics().register(&mut registry);
    let mut text = String::new();
    prometheus_client::encoding::prometheus_text::encode(&mut text, &registry).unwrap();
    for line in [
        "cutover_signal_up{signal=\"statuspage\"} 1",
        "cutover_signal_value{signal=\"statuspage\"} 2",
        "cutover_signal_firing{signal=\"statuspage\"} 1",
        "cutover_signal_up{signal=\"prometheus\"} 0",
        "cutover_signal_value{signal=\"prometheus\"} NaN",
        "cutover_signal_firing{signal=\"prometheus\"} NaN",
    ] {
        assert!(text.contains(line), "{line} not in\n{text}");
    }
}

#[tokio::test]
async fn a_status_page_is_read_over_http() {
    let (url, mut requests) = server(Answer::Respond(200, STATUS_MINOR)).await;
    let source = statuspage(&format!("{url}/api/v2/status.json"), Duration::from_secs(2));
    let reading = source.read().await.unwrap();
    assert_eq!(
        reading,
        Reading::Statuspage { indicator: Indicator::Minor, description: "Partially Degraded Service".into() }
    );
    assert_eq!(requests.recv().await.unwrap(), "GET /api/v2/status.json HTTP/1.1");
}

#[tokio::test]
async fn a_bad_status_page_is_unavailable_never_an_error_of_the_caller() {
    let (url, _r) = server(Answer::Respond(200, "<html>maintenance</html>")).await;
    let e = statuspage(&format!("{url}/api/v2/status.json"), Duration::from_secs(2)).read().await.unwrap_err();
    assert!(matches!(e, SignalError::Format(_)), "{e}");
    let (url, _r) = server(Answer::Respond(503, "down for maintenance")).await;
    let e = statuspage(&format!("{url}/api/v2/status.json"), Duration::from_secs(2)).read().await.unwrap_err();
    assert_eq!(e.to_string(), "HTTP 503: down for maintenance");
    let port = cutover_lab::free_port();
    let e = statuspage(&format!("http://127.0.0.1:{port}/api/v2/status.json"), Duration::from_secs(2))
        .read()
        .await
        .unwrap_err();
    assert!(matches!(e, SignalError::Transport { outcome: Outcome::ConnectRefused, .. }), "{e}");
}

#[tokio::test]
async fn a_hanging_status_page_times_out_on_its_own_timeout() {
    let (url, _r) = server(Answer::Hang).await;
    let started = Instant::now();
    let e = statuspage(&format!("{url}/api/v2/status.json"), Duration::from_millis(300)).read().await.unwrap_err();
    assert_eq!(e, SignalError::Timeout(Duration::from_millis(300)));
    assert!(started.elapsed() < Duration::from_secs(2), "{:?}", started.elapsed());
    let mut snapshot = Snapshot::new(statuspage(&url, Duration::from_millis(300)));
    snapshot.latest = Some((Instant::now(), Err(e)));
    let doc = snapshot.to_json(Instant::now());
    assert_eq!((doc["status"].as_str(), doc["error"].as_str()), (Some("unavailable"), Some("no answer within 300ms")));
}

#[tokio::test]
async fn the_prometheus_query_is_url_encoded_under_the_base_path() {
    let answer = r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1,"0.5"]}]}}"#;
    let (url, mut requests) = server(Answer::Respond(200, answer)).await;
    let reading = prometheus(&format!("{url}/prom/"), 0.1).read().await.unwrap();
    assert_eq!(reading, Reading::Prometheus { value: Some(0.5) });
    assert_eq!(requests.recv().await.unwrap(), "GET /prom/api/v1/query?query=sum%28rate%28x%5B1m%5D%29%29 HTTP/1.1");
}

#[tokio::test]
async fn spawn_publishes_readings_and_refreshes_their_age() {
    let (url, _r) = server(Answer::Respond(200, STATUS_MINOR)).await;
    let config = SignalsConfig {
        prometheus: None,
        statuspage: Some(StatuspageSignal {
            url: HttpUrl::parse(&format!("{url}/api/v2/status.json")).unwrap(),
            interval: Duration::from_secs(30),
            timeout: Duration::from_secs(2),
            backend: "primary".into(),
            ca_file: None,
        }),
    };
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let tasks = spawn(&config, move |s: &Snapshot| {
        let _ = tx.send((s.name(), s.to_json(Instant::now())));
    });
    let (name, first) = rx.recv().await.unwrap();
    assert_eq!((name, first["indicator"].as_str()), ("statuspage", Some("minor")));
    let (_, again) = rx.recv().await.unwrap();
    assert!(again["age_ms"].as_u64().unwrap() >= 400, "refreshed about every {REFRESH:?}: {again}");
    for t in tasks {
        t.abort();
    }
}
