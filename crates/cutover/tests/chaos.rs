//! `cutover chaos-proxy` as a separate process in front of a real Garage
//! node, driven over its control API.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{Backend, cutover, start_garage};
use cutover_core::Outcome;
use cutover_lab::free_ports;

/// The proxy process, stopped (SIGKILL) if a test fails before it does.
struct Proxy(Child);

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// One HTTP/1.1 request with `Connection: close`; returns the status and body.
fn http(addr: SocketAddr, method: &str, path: &str, body: &str) -> (u16, String) {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let status = text.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    (status, text.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default())
}

#[test]
fn chaos_proxy_relays_to_garage_and_switches_faults_over_its_control_api() {
    let g = start_garage();
    let [listen, control] = free_ports().map(|p| SocketAddr::from(([127, 0, 0, 1], p)));
    let child = Command::new(env!("CARGO_BIN_EXE_cutover"))
        .args(["chaos-proxy", "--listen", &listen.to_string(), "--upstream", &format!("127.0.0.1:{}", g.s3_port)])
        .args(["--control", &control.to_string(), "--faults", r#"{"latency_ms": 150}"#])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut proxy = Proxy(child);
    let mut lines = BufReader::new(proxy.0.stdout.take().unwrap()).lines();
    let mut next = || lines.next().expect("a line from chaos-proxy").unwrap();
    let (first, second, third) = (next(), next(), next());
    assert_eq!(first, format!("chaos-proxy: listening on {listen}, forwarding to 127.0.0.1:{}", g.s3_port));
    assert!(second.contains(&format!("http://{control}/faults")), "{second}");
    assert!(third.contains("\"latency_ms\":150"), "{third}");

    let mut b = Backend::garage("g", "primary", &g);
    b.endpoint = format!("http://{listen}");
    let c = b.client();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let get = |key: &str| rt.block_on(c.get_object(key, &[])).map(|r| r.body).map_err(|e| e.outcome());

    rt.block_on(c.put_object("k", "through the proxy".into(), &[])).unwrap();
    let start = Instant::now();
    assert_eq!(get("k").unwrap(), "through the proxy");
    assert!(start.elapsed() >= Duration::from_millis(150), "{:?}", start.elapsed());

    let (status, body) = http(control, "PUT", "/faults", r#"{"slowdown_rate": 1.0}"#);
    assert_eq!(status, 200, "{body}");
    assert_eq!(get("k").unwrap_err(), Outcome::SlowDown);
    let (_, metrics) = http(control, "GET", "/metrics", "");
    assert!(metrics.contains("cutover_chaos_faulted_total{kind=\"slowdown\"} 1\n"), "{metrics}");
    assert!(metrics.contains("cutover_chaos_faulted_total{kind=\"latency\"} 2\n"), "{metrics}");

    assert_eq!(http(control, "DELETE", "/faults", "").0, 200);
    assert_eq!(get("k").unwrap(), "through the proxy");
    let (_, faults) = http(control, "GET", "/faults", "");
    assert!(faults.contains("\"slowdown_rate\":0.0") && faults.contains("\"latency_ms\":0"), "{faults}");

    // SIGTERM stops it cleanly.
    cutover_lab::signal(proxy.0.id(), "TERM").unwrap();
    let status = proxy.0.wait().unwrap();
    assert!(status.success(), "{status:?}");
    assert_eq!(next(), "chaos-proxy: stopped");
}

#[test]
fn chaos_proxy_names_bad_arguments_and_exits_2() {
    let run = cutover(&["chaos-proxy", "--listen", "127.0.0.1:0", "--upstream", "nowhere"], &[]);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(run.stderr.contains("upstream \"nowhere\": expected HOST:PORT"), "{run:?}");
    let faults = r#"{"slowdown_rate": 3, "latency": 5}"#;
    let run =
        cutover(&["chaos-proxy", "--listen", "127.0.0.1:0", "--upstream", "127.0.0.1:9", "--faults", faults], &[]);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(run.stderr.contains("unknown field `latency`"), "{run:?}");
}
