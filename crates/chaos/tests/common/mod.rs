//! Helpers for the proxy tests: a real Garage behind a proxy, cutover's own
//! S3 client pointed at the proxy, and a plain HTTP/1.1 client for the
//! control API.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::time::Duration;

use cutover_chaos::Proxy;
use cutover_lab::garage::Garage;
use cutover_s3::{ClientOptions, S3Client};

/// A Garage node and a proxy in front of it.
#[derive(Debug)]
pub struct ProxyLab {
    pub garage: Garage,
    pub proxy: Proxy,
}

impl ProxyLab {
    pub fn start() -> Self {
        let garage = Garage::start("app-data").unwrap_or_else(|e| panic!("starting Garage: {e}"));
        let proxy = Proxy::start(loopback(0), &format!("127.0.0.1:{}", garage.s3_port)).unwrap();
        Self { garage, proxy }
    }

    /// A client through the proxy: `pooled` reuses connections (as the
    /// gateway and sync do), otherwise each request connects afresh (as probes do).
    pub fn client(&self, timeout: Duration, pooled: bool) -> S3Client {
        client_for(&self.garage, &format!("http://{}", self.proxy.addr()), timeout, pooled)
    }

    /// A client straight to Garage, to check what the proxy did.
    pub fn direct(&self) -> S3Client {
        client_for(&self.garage, &self.garage.endpoint(), Duration::from_secs(60), true)
    }
}

pub fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

pub fn client_for(g: &Garage, endpoint: &str, timeout: Duration, pooled: bool) -> S3Client {
    let endpoint = cutover_core::Endpoint::parse(endpoint).unwrap();
    let opts = ClientOptions { timeout, connect_timeout: timeout, pooled };
    S3Client::path_style("garage", endpoint, "garage", &g.bucket, &g.key_id, &g.secret, opts)
}

/// One HTTP/1.1 request with `Connection: close`; returns the status and body.
pub fn http(addr: SocketAddr, method: &str, path: &str, body: &str) -> (u16, String) {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let status = text.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    (status, body)
}
