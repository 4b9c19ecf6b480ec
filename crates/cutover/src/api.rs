//! The HTTP API: `/healthz`, `/v1/status`, `/v1/incidents[/{id}]`,
//! `POST /v1/incidents/{id}/approve|reject` (approver), `POST /v1/failover`
//! (admin), `POST /v1/evidence` (agents), `/metrics`. Bearer tokens are configured as
//! SHA-256 hashes with roles; every `GET /v1/*` needs a token of any role
//! (`/metrics` too with `api.metrics_require_token`), a missing or wrong token
//! gets 401, a token without the role 403, and the attempt is audited. An
//! agent token posts evidence for its own vantage only. Every body is a typed
//! struct checked field by field before the controller sees it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use cutover_control::controller::{Event, RequestError};
use cutover_control::metrics;
use cutover_core::config::TokenRole;
use cutover_core::domain::Verdict;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::cmd::run::{Shared, report_event};

type Resp = Response<Full<Bytes>>;

/// Concurrent API connections; more are closed at once and counted.
const MAX_CONNECTIONS: usize = 256;
/// A client has this long to send a request's headers (and an idle
/// keep-alive connection is closed after it).
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// A whole request body must arrive within this.
const BODY_READ_TIMEOUT: Duration = Duration::from_secs(10);

pub async fn serve(listener: tokio::net::TcpListener, shared: Arc<Shared>) {
    let limits = crate::listen::Limits { max_connections: MAX_CONNECTIONS, header_timeout: HEADER_READ_TIMEOUT };
    let counter = shared.clone();
    let refused = move || {
        counter.metrics.lock().unwrap().inc(metrics::CONNECTIONS_REFUSED, vec![("listener", "api".into())]);
    };
    crate::listen::accept_loop(listener, "API", limits, refused, move |socket| {
        let shared = shared.clone();
        async move {
            let svc = service_fn(move |req| {
                let shared = shared.clone();
                async move { Ok::<_, std::convert::Infallible>(handle(req, &shared).await) }
            });
            let _ = crate::listen::http1(limits).serve_connection(TokioIo::new(socket), svc).await;
        }
    })
    .await
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
    Token { name: String, role: TokenRole, vantage: Option<String> },
}

fn caller(req: &Request<Incoming>, shared: &Shared) -> Caller {
    let Some(auth) = req.headers().get("authorization").and_then(|v| v.to_str().ok()) else { return Caller::Anonymous };
    let Some(token) = auth.strip_prefix("Bearer ") else { return Caller::Unknown };
    let digest = hex::encode(Sha256::digest(token.trim().as_bytes()));
    let tokens = shared.config.api.as_ref().map(|a| a.tokens.as_slice()).unwrap_or(&[]);
    match tokens.iter().find(|t| cutover_s3::sigv4::signatures_equal(&t.sha256, &digest)) {
        Some(t) => Caller::Token { name: t.name.clone(), role: t.role, vantage: t.vantage.clone() },
        None => Caller::Unknown,
    }
}

/// A caller allowed in.
struct Authorized {
    name: String,
    role: TokenRole,
    /// An agent token's vantage.
    vantage: Option<String>,
}

/// Records a refused request in the audit log and answers it. The record
/// goes to the denial log's own writer (aggregated per actor, route and
/// status; never blocking, never taking the controller's lock).
fn refuse(req: &Request<Incoming>, shared: &Shared, status: StatusCode, actor: &str, why: &str) -> Box<Resp> {
    audit_denial(shared, actor, req.uri().path(), req.method(), status, why);
    Box::new(error(status, why))
}

fn audit_denial(shared: &Shared, actor: &str, path: &str, method: &Method, status: StatusCode, why: &str) {
    shared.denials.record(cutover_store::Denial {
        actor: actor.to_string(),
        route: route(path).to_string(),
        method: method_name(method).to_string(),
        status: status.as_u16(),
        why: why.chars().take(256).collect(),
    });
}

/// The route template of a path: a bounded set, so that refusals of made-up
/// paths aggregate instead of each becoming a row.
fn route(path: &str) -> &'static str {
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    match segments.as_slice() {
        ["healthz"] => "/healthz",
        ["metrics"] => "/metrics",
        ["v1", "status"] => "/v1/status",
        ["v1", "incidents"] => "/v1/incidents",
        ["v1", "incidents", _] => "/v1/incidents/{id}",
        ["v1", "incidents", _, "approve"] => "/v1/incidents/{id}/approve",
        ["v1", "incidents", _, "reject"] => "/v1/incidents/{id}/reject",
        ["v1", "failover"] => "/v1/failover",
        ["v1", "evidence"] => "/v1/evidence",
        ["v1", ..] => "/v1/*",
        _ => "/*",
    }
}

fn method_name(m: &Method) -> &'static str {
    match *m {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::PATCH => "PATCH",
        Method::OPTIONS => "OPTIONS",
        _ => "OTHER",
    }
}

/// Checks the caller against the roles allowed; audits refusals.
fn authorize(req: &Request<Incoming>, shared: &Shared, allowed: &[TokenRole]) -> Result<Authorized, Box<Resp>> {
    match caller(req, shared) {
        Caller::Anonymous => {
            Err(refuse(req, shared, StatusCode::UNAUTHORIZED, "anonymous", "a bearer token is required"))
        }
        Caller::Unknown => Err(refuse(req, shared, StatusCode::UNAUTHORIZED, "unknown-token", "unknown bearer token")),
        Caller::Token { name, role, vantage } if allowed.contains(&role) => Ok(Authorized { name, role, vantage }),
        Caller::Token { name, .. } => {
            let needed: Vec<&str> = allowed.iter().map(|r| role_name(*r)).collect();
            let why = format!("this token's role may not do that (needs {})", needed.join(" or "));
            Err(refuse(req, shared, StatusCode::FORBIDDEN, &name, &why))
        }
    }
}

fn role_name(r: TokenRole) -> &'static str {
    match r {
        TokenRole::Viewer => "viewer",
        TokenRole::Agent => "agent",
        TokenRole::Approver => "approver",
        TokenRole::Admin => "admin",
    }
}

/// Reads a request body of at most `limit` bytes within [`BODY_READ_TIMEOUT`].
async fn read_body(req: Request<Incoming>, limit: usize) -> Result<Bytes, Box<Resp>> {
    let collect = Limited::new(req.into_body(), limit).collect();
    match tokio::time::timeout(BODY_READ_TIMEOUT, collect).await {
        Ok(Ok(b)) => Ok(b.to_bytes()),
        Ok(Err(e)) => Err(Box::new(error(StatusCode::BAD_REQUEST, &format!("reading the body: {e}")))),
        Err(_) => Err(Box::new(error(
            StatusCode::REQUEST_TIMEOUT,
            &format!("the body did not arrive within {BODY_READ_TIMEOUT:?}"),
        ))),
    }
}

/// Parses a typed JSON body; an empty body is `{}`.
async fn typed_body<T: serde::de::DeserializeOwned>(req: Request<Incoming>, limit: usize) -> Result<T, Box<Resp>> {
    let body = read_body(req, limit).await?;
    let body: &[u8] = if body.iter().all(u8::is_ascii_whitespace) { b"{}" } else { &body };
    serde_json::from_slice(body).map_err(|e| Box::new(error(StatusCode::BAD_REQUEST, &format!("bad body: {e}"))))
}

/// A free-text field: at most `max` characters, no control characters but
/// newlines and tabs.
fn check_text(field: &str, value: &str, max: usize) -> Result<(), Box<Resp>> {
    if value.chars().count() > max {
        return Err(Box::new(error(StatusCode::BAD_REQUEST, &format!("\"{field}\" is longer than {max} characters"))));
    }
    if value.chars().any(|c| c.is_control() && c != '\n' && c != '\t') {
        return Err(Box::new(error(StatusCode::BAD_REQUEST, &format!("\"{field}\" contains control characters"))));
    }
    Ok(())
}

#[derive(serde::Deserialize)]
struct DecisionBody {
    #[serde(default)]
    comment: Option<String>,
}

#[derive(serde::Deserialize)]
struct FailoverBody {
    target: String,
    reason: String,
}

async fn handle(req: Request<Incoming>, shared: &Shared) -> Resp {
    let path = req.uri().path().trim_end_matches('/').to_string();
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    const ANY_ROLE: &[TokenRole] = &[TokenRole::Viewer, TokenRole::Agent, TokenRole::Approver, TokenRole::Admin];
    let metrics_need_token = shared.config.api.as_ref().is_some_and(|a| a.metrics_require_token);
    let reads = matches!(segments.first(), Some(&"v1")) || (metrics_need_token && segments == ["metrics"]);
    if req.method() == Method::GET
        && reads
        && let Err(r) = authorize(&req, shared, ANY_ROLE)
    {
        return *r;
    }
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
            incident_json(c.store().as_ref(), id)
                .map(|v| json_resp(StatusCode::OK, &v))
                .unwrap_or_else(|| error(StatusCode::NOT_FOUND, &format!("no incident {id:?}")))
        }
        (Method::POST, ["v1", "evidence"]) => {
            let who = match authorize(&req, shared, &[TokenRole::Agent, TokenRole::Admin]) {
                Ok(a) => a,
                Err(r) => return *r,
            };
            let (path, method) = (req.uri().path().to_string(), req.method().clone());
            let body = match read_body(req, 1 << 20).await {
                Ok(b) => b,
                Err(r) => return *r,
            };
            evidence(shared, &who, &body, &path, &method)
        }
        (Method::POST, ["v1", "incidents", id, verb @ ("approve" | "reject")]) => {
            let actor = match authorize(&req, shared, &[TokenRole::Approver, TokenRole::Admin]) {
                Ok(a) => a.name,
                Err(r) => return *r,
            };
            let (id, approve) = (id.to_string(), *verb == "approve");
            let body: DecisionBody = match typed_body(req, 1 << 16).await {
                Ok(d) => d,
                Err(r) => return *r,
            };
            let comment = body.comment.unwrap_or_default();
            if let Err(r) = check_text("comment", &comment, 4096) {
                return *r;
            }
            let r = shared.controller.lock().unwrap().approval(&id, approve, &actor, &comment);
            match r {
                Ok(due) => {
                    let started = due.is_some();
                    if let Some(due) = due {
                        report_event(shared, &Event::RunbookDue(due));
                    }
                    let verdict = if approve { Verdict::Approve } else { Verdict::Reject };
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
                Ok(a) => a.name,
                Err(r) => return *r,
            };
            let body: FailoverBody = match typed_body(req, 1 << 16).await {
                Ok(d) => d,
                Err(r) => return *r,
            };
            let (target, reason) = (body.target.as_str(), body.reason.as_str());
            if let Err(r) = check_text("target", target, 64).and_then(|_| check_text("reason", reason, 4096)) {
                return *r;
            }
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
pub fn incident_json(store: &dyn cutover_store::Store, id: &str) -> Option<Value> {
    let inc = store.incident(id).ok()??;
    let mut v = json!(inc);
    v["timeline"] = json!(store.timeline(id).unwrap_or_default());
    v["runs"] = json!(store.runs_for(id).unwrap_or_default());
    Some(v)
}

/// `POST /v1/evidence`: `{"vantage", "reports": [probe report, ...]}`.
#[derive(serde::Deserialize)]
struct EvidenceBody {
    vantage: String,
    reports: Vec<ReportBody>,
}

/// One probe report, as `cutover agent` sends it.
#[derive(serde::Deserialize)]
struct ReportBody {
    backend: String,
    ok: bool,
    #[serde(default)]
    outcome: Option<String>,
    #[serde(default)]
    ops: Vec<OpBody>,
}

#[derive(serde::Deserialize)]
struct OpBody {
    #[serde(default)]
    ms: Option<f64>,
}

/// Bounds on what one evidence post may carry.
const MAX_REPORTS: usize = 256;
const MAX_OPS: usize = 16;
const MAX_OP_MS: f64 = 3_600_000.0;
const MAX_OUTCOME: usize = 128;
const VANTAGE_RULE: &str = "\"vantage\" must be 1 to 64 letters, digits, '.', '_' or '-', other than \"local\"";

/// Checks an evidence body completely before the controller sees any of it;
/// returns each report as (backend, started, ok, outcome).
fn check_evidence(
    doc: &EvidenceBody,
    names: &[String],
    now: Instant,
) -> Result<Vec<(String, Instant, bool, String)>, String> {
    if !cutover_core::config::valid_vantage(&doc.vantage) {
        return Err(VANTAGE_RULE.into());
    }
    if doc.reports.len() > MAX_REPORTS {
        return Err(format!("\"reports\" has {} entries; at most {MAX_REPORTS}", doc.reports.len()));
    }
    let mut out = Vec::with_capacity(doc.reports.len());
    for (i, r) in doc.reports.iter().enumerate() {
        let at = format!("reports[{i}]");
        if !names.contains(&r.backend) {
            let shown: String = r.backend.chars().take(64).collect();
            return Err(format!("{at}.backend: no backend named {shown:?}"));
        }
        if r.ops.len() > MAX_OPS {
            return Err(format!("{at}.ops: {} entries; at most {MAX_OPS}", r.ops.len()));
        }
        let mut ms = 0.0;
        for (j, op) in r.ops.iter().enumerate() {
            match op.ms {
                None => {}
                Some(v) if v.is_finite() && (0.0..=MAX_OP_MS).contains(&v) => ms += v,
                Some(v) => return Err(format!("{at}.ops[{j}].ms: {v} is not a duration from 0 to {MAX_OP_MS} ms")),
            }
        }
        let outcome = r.outcome.clone().unwrap_or_else(|| "unknown".into());
        if outcome.len() > MAX_OUTCOME || !outcome.bytes().all(|b| b.is_ascii_graphic() || b == b' ') {
            return Err(format!("{at}.outcome: at most {MAX_OUTCOME} printable ASCII characters"));
        }
        let started = now.checked_sub(Duration::from_secs_f64(ms / 1000.0)).unwrap_or(now);
        out.push((r.backend.clone(), started, r.ok, outcome));
    }
    Ok(out)
}

fn evidence(shared: &Shared, who: &Authorized, body: &[u8], path: &str, method: &Method) -> Resp {
    let doc: EvidenceBody = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => return error(StatusCode::BAD_REQUEST, &format!("bad body: {e}")),
    };
    if !cutover_core::config::valid_vantage(&doc.vantage) {
        return error(StatusCode::BAD_REQUEST, VANTAGE_RULE);
    }
    // An agent speaks for its own vantage; an admin for any configured one.
    let allowed = match (&who.role, &who.vantage) {
        (TokenRole::Agent, Some(v)) => *v == doc.vantage,
        _ => shared.config.api.iter().flat_map(|a| &a.tokens).any(|t| t.vantage.as_deref() == Some(&doc.vantage)),
    };
    if !allowed {
        let shown: String = doc.vantage.chars().take(64).collect();
        let why = match &who.vantage {
            Some(own) => format!("this token speaks for vantage {own:?} only, not {shown:?}"),
            None => format!("{shown:?} is not the vantage of any agent token"),
        };
        audit_denial(shared, &who.name, path, method, StatusCode::FORBIDDEN, &why);
        return error(StatusCode::FORBIDDEN, &why);
    }
    let now = Instant::now();
    let names = shared.controller.lock().unwrap().backend_names();
    let reports = match check_evidence(&doc, &names, now) {
        Ok(r) => r,
        Err(why) => return error(StatusCode::BAD_REQUEST, &why),
    };
    let mut events: Vec<Event> = Vec::new();
    {
        let mut c = shared.controller.lock().unwrap();
        for (backend, started, ok, outcome) in &reports {
            events.extend(c.observe(now, backend, &doc.vantage, *started, *ok, outcome));
        }
    }
    for e in &events {
        report_event(shared, e);
    }
    json_resp(StatusCode::OK, &json!({"accepted": reports.len(), "vantage": doc.vantage, "by": who.name}))
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
    let store_errors: Vec<(&'static str, u64)> = c.store_errors().iter().map(|(k, v)| (*k, *v)).collect();
    drop(c);
    let mut m = shared.metrics.lock().unwrap();
    for (op, n) in store_errors {
        m.set_counter(metrics::STORE_ERRORS, vec![("op", op.to_string())], n);
    }
    let d = shared.denials.stats();
    let load = |a: &std::sync::atomic::AtomicU64| a.load(std::sync::atomic::Ordering::Relaxed);
    m.set_counter(metrics::STORE_ERRORS, vec![("op", "audit.denied".into())], load(&d.failed));
    m.set_counter(metrics::AUDIT_DENIALS_QUEUE_FULL, vec![], load(&d.dropped));
    m.set_counter(metrics::AUDIT_DENIAL_ENTRIES, vec![], load(&d.written));
    m.render(&gauges)
}
