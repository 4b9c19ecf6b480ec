//! The HTTP API: `/healthz`, `/v1/status`, `/v1/incidents[/{id}]`,
//! `POST /v1/incidents/{id}/approve|reject` (approver), `POST /v1/failover`
//! (admin), `POST /v1/evidence` (agents), `/metrics`. Bearer tokens are configured as
//! SHA-256 hashes with roles; a missing or wrong token on a mutating endpoint
//! gets 401 or 403 and the attempt is audited.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use cutover_control::controller::{Event, RequestError};
use cutover_control::metrics;
use cutover_core::config::TokenRole;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::cmd::run::{Shared, report_event};

type Resp = Response<Full<Bytes>>;

pub async fn serve(listener: tokio::net::TcpListener, shared: Arc<Shared>) {
    loop {
        let Ok((socket, _)) = listener.accept().await else { continue };
        let _ = socket.set_nodelay(true);
        let shared = shared.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req| {
                let shared = shared.clone();
                async move { Ok::<_, std::convert::Infallible>(handle(req, &shared).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(socket), svc).await;
        });
    }
}

fn json_resp(status: StatusCode, v: &Value) -> Resp {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(v.to_string())))
        .expect("response")
}

fn error(status: StatusCode, msg: &str) -> Resp {
    json_resp(status, &json!({"error": msg}))
}

/// Who a request is, from its bearer token.
enum Caller {
    Anonymous,
    Unknown,
    Token { name: String, role: TokenRole },
}

fn caller(req: &Request<Incoming>, shared: &Shared) -> Caller {
    let Some(auth) = req.headers().get("authorization").and_then(|v| v.to_str().ok()) else { return Caller::Anonymous };
    let Some(token) = auth.strip_prefix("Bearer ") else { return Caller::Unknown };
    let digest = hex::encode(Sha256::digest(token.trim().as_bytes()));
    let tokens = shared.config.api.as_ref().map(|a| a.tokens.as_slice()).unwrap_or(&[]);
    match tokens.iter().find(|t| cutover_s3::sigv4::signatures_equal(&t.sha256, &digest)) {
        Some(t) => Caller::Token { name: t.name.clone(), role: t.role },
        None => Caller::Unknown,
    }
}

/// Checks the caller against the roles allowed; audits refusals.
fn authorize(req: &Request<Incoming>, shared: &Shared, allowed: &[TokenRole]) -> Result<String, Box<Resp>> {
    let path = req.uri().path().to_string();
    let refuse = |status: StatusCode, actor: &str, why: &str| {
        let c = shared.controller.lock().unwrap();
        let _ = c.store().audit(
            SystemTime::now(),
            actor,
            "api.denied",
            &json!({"path": path, "method": req.method().as_str(), "why": why}),
        );
        Box::new(error(status, why))
    };
    match caller(req, shared) {
        Caller::Anonymous => Err(refuse(StatusCode::UNAUTHORIZED, "anonymous", "a bearer token is required")),
        Caller::Unknown => Err(refuse(StatusCode::UNAUTHORIZED, "unknown-token", "unknown bearer token")),
        Caller::Token { name, role } if allowed.contains(&role) => Ok(name),
        Caller::Token { name, .. } => Err(refuse(StatusCode::FORBIDDEN, &name, "this token's role may not do that")),
    }
}

async fn handle(req: Request<Incoming>, shared: &Shared) -> Resp {
    let path = req.uri().path().trim_end_matches('/').to_string();
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    match (req.method().clone(), segments.as_slice()) {
        (Method::GET, ["healthz"]) => Response::new(Full::new(Bytes::from_static(b"ok\n"))),
        (Method::GET, ["v1", "status"]) => {
            let c = shared.controller.lock().unwrap();
            json_resp(StatusCode::OK, &c.status(Instant::now()))
        }
        (Method::GET, ["v1", "incidents"]) => {
            let c = shared.controller.lock().unwrap();
            match c.store().incidents() {
                Ok(list) => json_resp(StatusCode::OK, &json!(list)),
                Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
            }
        }
        (Method::GET, ["v1", "incidents", id]) => {
            let c = shared.controller.lock().unwrap();
            incident_json(c.store(), id)
                .map(|v| json_resp(StatusCode::OK, &v))
                .unwrap_or_else(|| error(StatusCode::NOT_FOUND, &format!("no incident {id:?}")))
        }
        (Method::POST, ["v1", "evidence"]) => {
            let actor = match authorize(&req, shared, &[TokenRole::Agent, TokenRole::Admin]) {
                Ok(a) => a,
                Err(r) => return *r,
            };
            let body = match Limited::new(req.into_body(), 1 << 20).collect().await {
                Ok(b) => b.to_bytes(),
                Err(e) => return error(StatusCode::BAD_REQUEST, &format!("reading the body: {e}")),
            };
            evidence(shared, &actor, &body)
        }
        (Method::POST, ["v1", "incidents", id, verb @ ("approve" | "reject")]) => {
            let actor = match authorize(&req, shared, &[TokenRole::Approver, TokenRole::Admin]) {
                Ok(a) => a,
                Err(r) => return *r,
            };
            let (id, approve) = (id.to_string(), *verb == "approve");
            let doc = match json_body(req).await {
                Ok(d) => d,
                Err(r) => return *r,
            };
            let comment = match doc.get("comment") {
                None | Some(Value::Null) => String::new(),
                Some(Value::String(c)) => c.clone(),
                Some(_) => return error(StatusCode::BAD_REQUEST, "\"comment\" must be a string"),
            };
            let r = shared.controller.lock().unwrap().approval(&id, approve, &actor, &comment);
            match r {
                Ok(due) => {
                    let started = due.is_some();
                    if let Some(due) = due {
                        report_event(shared, &Event::RunbookDue(due));
                    }
                    let verdict = if approve { "approve" } else { "reject" };
                    json_resp(
                        StatusCode::OK,
                        &json!({"incident": id, "verdict": verdict, "by": actor, "failover_started": started}),
                    )
                }
                Err(e) => request_error(&e),
            }
        }
        (Method::POST, ["v1", "failover"]) => {
            let actor = match authorize(&req, shared, &[TokenRole::Admin]) {
                Ok(a) => a,
                Err(r) => return *r,
            };
            let doc = match json_body(req).await {
                Ok(d) => d,
                Err(r) => return *r,
            };
            let (Some(target), Some(reason)) =
                (doc.get("target").and_then(Value::as_str), doc.get("reason").and_then(Value::as_str))
            else {
                return error(StatusCode::BAD_REQUEST, "the body must be {\"target\": NAME, \"reason\": TEXT}");
            };
            let r = shared.controller.lock().unwrap().force_failover(target, reason, &actor, Instant::now());
            match r {
                Ok(due) => {
                    let body =
                        json!({"incident": due.incident, "source": due.source, "target": due.target, "by": actor});
                    report_event(shared, &Event::RunbookDue(due));
                    json_resp(StatusCode::ACCEPTED, &body)
                }
                Err(e) => request_error(&e),
            }
        }
        (Method::GET, ["metrics"]) => {
            let text = render_metrics(shared).await;
            Response::builder()
                .header("content-type", "text/plain; version=0.0.4")
                .body(Full::new(Bytes::from(text)))
                .expect("response")
        }
        (
            _,
            ["healthz"]
            | ["metrics"]
            | ["v1", "status"]
            | ["v1", "incidents"]
            | ["v1", "incidents", _]
            | ["v1", "incidents", _, "approve" | "reject"]
            | ["v1", "failover"]
            | ["v1", "evidence"],
        ) => error(StatusCode::METHOD_NOT_ALLOWED, "method not allowed"),
        _ => error(StatusCode::NOT_FOUND, &format!("no such endpoint: {path}")),
    }
}

async fn json_body(req: Request<Incoming>) -> Result<Value, Box<Resp>> {
    let body = Limited::new(req.into_body(), 1 << 16)
        .collect()
        .await
        .map_err(|e| Box::new(error(StatusCode::BAD_REQUEST, &format!("reading the body: {e}"))))?
        .to_bytes();
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(json!({}));
    }
    serde_json::from_slice(&body)
        .map_err(|e| Box::new(error(StatusCode::BAD_REQUEST, &format!("body is not JSON: {e}"))))
}

fn request_error(e: &RequestError) -> Resp {
    let status = match e {
        RequestError::NotFound(_) => StatusCode::NOT_FOUND,
        RequestError::Conflict(_) => StatusCode::CONFLICT,
        RequestError::Store(_) => StatusCode::INTERNAL_SERVER_ERROR,
    };
    error(status, &e.to_string())
}

/// An incident with its timeline, as `GET /v1/incidents/{id}` and
/// `cutover incidents show` print it.
pub fn incident_json(store: &cutover_store::Store, id: &str) -> Option<Value> {
    let inc = store.incident(id).ok()??;
    let mut v = json!(inc);
    v["timeline"] = json!(store.timeline(id).unwrap_or_default());
    v["runs"] = json!(store.runs_for(id).unwrap_or_default());
    Some(v)
}

/// `POST /v1/evidence`: `{"vantage", "reports": [probe report, ...]}`.
fn evidence(shared: &Shared, actor: &str, body: &[u8]) -> Resp {
    let doc: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => return error(StatusCode::BAD_REQUEST, &format!("body is not JSON: {e}")),
    };
    let Some(vantage) = doc.get("vantage").and_then(Value::as_str).filter(|v| !v.is_empty() && *v != "local") else {
        return error(StatusCode::BAD_REQUEST, "\"vantage\" must be a non-empty name other than \"local\"");
    };
    let Some(reports) = doc.get("reports").and_then(Value::as_array) else {
        return error(StatusCode::BAD_REQUEST, "\"reports\" must be an array of probe reports");
    };
    let now = Instant::now();
    let mut events: Vec<Event> = Vec::new();
    let mut accepted = 0;
    {
        let mut c = shared.controller.lock().unwrap();
        let names = c.backend_names();
        for r in reports {
            let (Some(backend), Some(ok)) =
                (r.get("backend").and_then(Value::as_str), r.get("ok").and_then(Value::as_bool))
            else {
                continue;
            };
            if !names.iter().any(|n| n == backend) {
                continue;
            }
            let ms: f64 =
                r["ops"].as_array().map(|ops| ops.iter().filter_map(|o| o["ms"].as_f64()).sum()).unwrap_or(0.0);
            let started = now.checked_sub(Duration::from_secs_f64(ms / 1000.0)).unwrap_or(now);
            let outcome = r.get("outcome").and_then(Value::as_str).unwrap_or("unknown");
            events.extend(c.observe(now, backend, vantage, started, ok, outcome));
            accepted += 1;
        }
    }
    for e in &events {
        report_event(shared, e);
    }
    json_resp(StatusCode::OK, &json!({"accepted": accepted, "vantage": vantage, "by": actor}))
}

async fn render_metrics(shared: &Shared) -> String {
    let mut text = render_controller_metrics(shared);
    if let Some(gw) = &shared.gateway {
        text.push_str(&gw.render_metrics().await);
    }
    text
}

fn render_controller_metrics(shared: &Shared) -> String {
    let now = Instant::now();
    let c = shared.controller.lock().unwrap();
    let mut gauges = Vec::new();
    for name in c.backend_names() {
        let health = c.health(&name, now);
        for state in ["healthy", "suspect", "down", "recovering", "unknown"] {
            let v = if health.as_str() == state { 1.0 } else { 0.0 };
            gauges.push((metrics::BACKEND_HEALTH, vec![("backend", name.clone()), ("state", state.to_string())], v));
        }
    }
    let open = c.store().open_incidents().map(|v| v.len()).unwrap_or(0);
    gauges.push((metrics::OPEN_INCIDENTS, vec![], open as f64));
    drop(c);
    shared.metrics.lock().unwrap().render(&gauges)
}
