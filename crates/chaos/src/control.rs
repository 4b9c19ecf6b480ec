//! The control API: `GET/PUT/PATCH/DELETE /faults`, `GET /metrics`,
//! `GET /healthz`. JSON in and out; no authentication (bind it to loopback).

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::TcpListener;

use crate::faults::Faults;
use crate::proxy::Shared;
use crate::{ChaosError, metrics};

type Resp = Response<Full<Bytes>>;

const MAX_BODY: usize = 64 * 1024;

/// Control connections served at once; more are closed at once.
const MAX_CONNECTIONS: usize = 64;
/// A client must send a request head within this (also the keep-alive
/// idle timeout).
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

pub(crate) async fn serve(listener: TcpListener, shared: Arc<Shared>) {
    let limits = cutover_net::Limits { max_connections: MAX_CONNECTIONS, header_timeout: HEADER_READ_TIMEOUT };
    let refused = || tracing::warn!("control API: {MAX_CONNECTIONS} connections open; one refused");
    cutover_net::accept_loop(listener, "control API", limits, refused, move |socket| {
        let shared = shared.clone();
        async move {
            let svc = service_fn(move |req| {
                let shared = shared.clone();
                async move { Ok::<_, Infallible>(handle(req, &shared).await) }
            });
            if let Err(e) = cutover_net::http1(limits).serve_connection(TokioIo::new(socket), svc).await {
                tracing::debug!(error = %e, "control API connection ended");
            }
        }
    })
    .await;
}

fn respond(status: StatusCode, content_type: &str, body: impl Into<Bytes>) -> Resp {
    Response::builder()
        .status(status)
        .header("content-type", content_type)
        .body(Full::new(body.into()))
        .expect("a valid response")
}

fn json_resp(status: StatusCode, v: &Value) -> Resp {
    respond(status, "application/json", v.to_string())
}

fn error_resp(e: &ChaosError) -> Resp {
    match e {
        ChaosError::InvalidFaults { problems } => {
            json_resp(StatusCode::BAD_REQUEST, &json!({"error": e.to_string(), "problems": problems}))
        }
        _ => json_resp(StatusCode::INTERNAL_SERVER_ERROR, &json!({"error": e.to_string()})),
    }
}

async fn body_text(req: Request<Incoming>) -> Result<String, Resp> {
    let bytes = Limited::new(req.into_body(), MAX_BODY)
        .collect()
        .await
        .map_err(|e| json_resp(StatusCode::BAD_REQUEST, &json!({"error": format!("reading the body: {e}")})))?;
    String::from_utf8(bytes.to_bytes().to_vec())
        .map_err(|_| json_resp(StatusCode::BAD_REQUEST, &json!({"error": "the body is not UTF-8"})))
}

async fn apply(shared: &Shared, faults: Result<Faults, ChaosError>) -> Resp {
    let result = match faults {
        Ok(f) => shared.apply(f).await,
        Err(e) => Err(e),
    };
    match result {
        Ok(()) => json_resp(StatusCode::OK, &json!(shared.faults())),
        Err(e) => error_resp(&e),
    }
}

async fn handle(req: Request<Incoming>, shared: &Shared) -> Resp {
    let path = req.uri().path().to_string();
    match (req.method().clone(), path.as_str()) {
        (Method::GET, "/healthz") => respond(StatusCode::OK, "text/plain", "ok\n"),
        (Method::GET, "/faults") => json_resp(StatusCode::OK, &json!(shared.faults())),
        (Method::PUT, "/faults") => match body_text(req).await {
            Ok(text) => apply(shared, Faults::from_json(&text)).await,
            Err(resp) => resp,
        },
        (Method::PATCH, "/faults") => match body_text(req).await {
            Ok(text) => {
                let patch = serde_json::from_str::<Value>(&text)
                    .map_err(|e| ChaosError::InvalidFaults { problems: vec![e.to_string()] });
                apply(shared, patch.and_then(|p| shared.faults().merged(&p))).await
            }
            Err(resp) => resp,
        },
        (Method::DELETE, "/faults") => apply(shared, Ok(Faults::none())).await,
        (Method::GET, "/metrics") => respond(
            StatusCode::OK,
            "text/plain; version=0.0.4",
            metrics::render(&shared.metrics.snapshot(), &shared.faults()),
        ),
        (_, "/healthz" | "/faults" | "/metrics") => {
            json_resp(StatusCode::METHOD_NOT_ALLOWED, &json!({"error": format!("{} {path}", req.method())}))
        }
        _ => json_resp(StatusCode::NOT_FOUND, &json!({"error": format!("no such path: {path}")})),
    }
}
