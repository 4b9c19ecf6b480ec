//! Shared by the actuator tests: a step context and a local HTTP server that
//! records what it receives.
#![allow(dead_code)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use cutover_orchestrate::actuators::{Ctx, Params};
use http::{HeaderMap, Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// A context for incident `inc-42`, failing over from `primary` to
/// `standby`, with `env` as the whole environment.
pub fn ctx(work_dir: &Path, env: &[(&str, &str)]) -> Ctx {
    let env: Vec<(String, String)> = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    Ctx {
        incident: "inc-42".into(),
        source: "primary".into(),
        target: "standby".into(),
        reason: "primary unreachable from 3 vantages".into(),
        kind: "failover".into(),
        step: "test step".into(),
        timeout: Duration::from_secs(60),
        work_dir: work_dir.to_path_buf(),
        env: Arc::new(move |name| env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())),
        fencing_token: None,
        incident_url: Some("http://127.0.0.1:8080/v1/incidents/inc-42".into()),
    }
}

/// A JSON object as step parameters.
pub fn params(v: Value) -> Params {
    v.as_object().expect("parameters are a table").clone()
}

/// One request the server received.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    /// Path and query.
    pub path: String,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("a JSON body")
    }
}

type Respond = dyn Fn(&Recorded) -> (u16, String) + Send + Sync;

/// An HTTP/1.1 server on 127.0.0.1 that answers with `respond` and keeps
/// every request. Stops when dropped.
pub struct Server {
    pub addr: SocketAddr,
    requests: Arc<Mutex<Vec<Recorded>>>,
    task: JoinHandle<()>,
}

impl Server {
    pub async fn start(respond: impl Fn(&Recorded) -> (u16, String) + Send + Sync + 'static) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let respond: Arc<Respond> = Arc::new(respond);
        let task = tokio::spawn({
            let requests = requests.clone();
            async move {
                loop {
                    let Ok((socket, _)) = listener.accept().await else { continue };
                    let (requests, respond) = (requests.clone(), respond.clone());
                    tokio::spawn(async move {
                        let svc = service_fn(move |req: Request<Incoming>| {
                            let (requests, respond) = (requests.clone(), respond.clone());
                            async move {
                                let (parts, body) = req.into_parts();
                                let body = body.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
                                let recorded = Recorded {
                                    method: parts.method.to_string(),
                                    path: parts.uri.to_string(),
                                    headers: parts.headers,
                                    body,
                                };
                                let (status, text) = respond(&recorded);
                                requests.lock().unwrap().push(recorded);
                                let response = Response::builder()
                                    .status(status)
                                    .header("content-type", "application/json")
                                    .body(Full::new(Bytes::from(text)))
                                    .unwrap();
                                Ok::<_, Infallible>(response)
                            }
                        });
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(TokioIo::new(socket), svc)
                            .await;
                    });
                }
            }
        });
        Self { addr, requests, task }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.requests.lock().unwrap().clone()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A local port where nothing listens.
pub async fn closed_port() -> ClosedPort {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let port = socket.local_addr().unwrap().port();
    ClosedPort { _socket: socket, port }
}

/// A loopback port that refuses connections for as long as this lives: it is
/// bound and never listened on, so no other server (nor an outgoing
/// connection's ephemeral port) can take it. (A port bound and released
/// could be taken by another test's server and time out instead of
/// refusing; that failed a full run once.) Displays as its number.
pub struct ClosedPort {
    _socket: tokio::net::TcpSocket,
    pub port: u16,
}

impl std::fmt::Display for ClosedPort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.port)
    }
}
