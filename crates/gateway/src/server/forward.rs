//! Forwarding to one backend: the upstream request, and the backend's
//! answer turned into the client's.

use std::sync::Arc;

use bytes::Bytes;
use cutover_core::Outcome;
use cutover_core::config::GatewayBucket;
use cutover_s3::http::TransportError;
use http::header::{self, HeaderName, HeaderValue};
use http::{HeaderMap, Method, Response, StatusCode};

use super::{BACKEND_HEADER, Ctx, Inner, SMALL_BODY_LIMIT};
use crate::auth;
use crate::body::{Body, collect_limited, full};
use crate::metrics::Metrics;
use crate::route::S3Op;
use crate::s3xml;
use crate::upstream::{UpRequest, Upstream};

impl Inner {
    /// The request for one backend: forwarded headers, copy source mapped to
    /// that backend's bucket (the client's aws-chunked headers are not
    /// forwarded: [`Upstream`] sets them for the body it sends, from
    /// [`UpPayload`]). The error is the answer for the client.
    #[allow(clippy::result_large_err)]
    pub(super) fn up_request(
        &self,
        ctx: &Ctx,
        up: &Upstream,
        body: Body,
        len: Option<u64>,
    ) -> Result<UpRequest, Response<Body>> {
        // Allocated when the first header is forwarded (a plain PUT's Host and
        // Content-Length are not).
        let mut headers = Vec::new();
        for (k, v) in &ctx.headers {
            let how = forwarded(k);
            if how == Forward::Not {
                continue;
            }
            if headers.is_empty() {
                headers.reserve(ctx.headers.len());
            }
            let n = k.as_str();
            if how == Forward::AsIs {
                headers.push((k.clone(), v.clone()));
            } else if n == "content-encoding" {
                let rest: Vec<&str> = v
                    .to_str()
                    .unwrap_or("")
                    .split(',')
                    .map(str::trim)
                    .filter(|e| *e != "aws-chunked" && !e.is_empty())
                    .collect();
                if !rest.is_empty() {
                    headers.push((k.clone(), HeaderValue::from_str(&rest.join(", ")).unwrap_or(v.clone())));
                }
            } else {
                // x-amz-copy-source
                let mapped = self.map_copy_source(v.to_str().unwrap_or(""), up).ok_or_else(|| {
                    s3xml::error(
                        StatusCode::FORBIDDEN,
                        "AccessDenied",
                        "the copy source is not a bucket of this gateway",
                        &ctx.resource,
                    )
                })?;
                headers.push((k.clone(), mapped));
            }
        }
        Ok(UpRequest {
            method: ctx.method.clone(),
            key: ctx.key.clone(),
            query: ctx.query.clone(),
            headers,
            body,
            content_length: len,
            payload: ctx.payload.clone(),
        })
    }

    /// `/client-bucket/key?versionId=..` → `/backend-bucket/key?versionId=..`,
    /// when the client bucket is one `up` serves (gateway buckets never share
    /// a backend bucket: a copy across them is not a server-side copy).
    pub(super) fn map_copy_source(&self, v: &str, up: &Upstream) -> Option<HeaderValue> {
        let s = v.strip_prefix('/').unwrap_or(v);
        let (b, rest) = s.split_once('/')?;
        let b = auth::percent_decode(b);
        self.buckets.get(&b).filter(|gb| gb.backends.contains(&up.name))?;
        HeaderValue::from_str(&format!("/{}/{rest}", cutover_s3::sigv4::uri_encode(&up.bucket, false))).ok()
    }

    /// Turns a backend's answer into the client's: headers copied (hop-by-hop
    /// ones dropped), small XML answers read whole to rename the bucket,
    /// everything else streamed. Returns the whole body when it was read.
    pub(super) async fn answer(
        &self,
        ctx: &Ctx,
        up: &Upstream,
        resp: Response<Body>,
    ) -> (Response<Body>, Option<Bytes>) {
        let (mut parts, incoming) = resp.into_parts();
        drop_hop_by_hop(&mut parts.headers);
        // A copy's answer is read whole too: S3 may answer 200 and report
        // the copy's failure in an error document.
        let copy = matches!(ctx.op, S3Op::CopyObject | S3Op::UploadPartCopy);
        let read_whole = ((ctx.op.names_bucket() || copy) && parts.status.is_success())
            || (!parts.status.is_success() && ctx.method != Method::HEAD);
        let (body, small) = if read_whole {
            match collect_limited(incoming, SMALL_BODY_LIMIT).await {
                Ok(b) => {
                    let b =
                        if ctx.op.names_bucket() { s3xml::rename_bucket(&b, &up.bucket, &ctx.bucket.name) } else { b };
                    // Listings never show the probe prefix.
                    let b = if ctx.op.lists_keys() && parts.status.is_success() {
                        let url = param(&ctx.query, "encoding-type").is_some_and(|e| e.eq_ignore_ascii_case("url"));
                        match crate::xmlbody::filter_listing(&b, url, |k| self.key_policy.is_probe(k)) {
                            Some(b) => b,
                            None => {
                                tracing::warn!(backend = %up.name, op = ctx.op.name(), "a listing answer could not be read to filter it");
                                let mut r = s3xml::error(
                                    StatusCode::BAD_GATEWAY,
                                    "InternalError",
                                    "the backend's listing could not be read",
                                    &ctx.resource,
                                );
                                set_backend(&mut r, &up.name);
                                return (r, None);
                            }
                        }
                    } else {
                        b
                    };
                    // "200 with an error document" is a failure: never a 200 to the client.
                    if parts.status.is_success()
                        && let Some(code) = s3xml::error_code(&b)
                    {
                        tracing::warn!(backend = %up.name, op = ctx.op.name(), %code, "the backend answered 200 with an error document");
                        parts.status = if code == "SlowDown" {
                            StatusCode::SERVICE_UNAVAILABLE
                        } else {
                            StatusCode::INTERNAL_SERVER_ERROR
                        };
                    }
                    parts.headers.insert(header::CONTENT_LENGTH, HeaderValue::from(b.len()));
                    (full(b.clone()), Some(b))
                }
                Err(e) => {
                    let e = cutover_s3::http::classify(&*e);
                    return (unavailable(&self.metrics, up, &e, &ctx.resource), None);
                }
            }
        } else {
            (incoming, None)
        };
        let mut r = Response::from_parts(parts, body);
        set_backend(&mut r, &up.name);
        (r, small)
    }
}

pub(super) fn set_backend(resp: &mut Response<Body>, name: &str) {
    if let Ok(v) = HeaderValue::from_str(name) {
        resp.headers_mut().insert(BACKEND_HEADER, v);
    }
}

/// Removes the hop-by-hop headers of a backend's answer.
pub(super) fn drop_hop_by_hop(headers: &mut HeaderMap) {
    let drop: Vec<HeaderName> = headers.keys().filter(|k| is_hop_by_hop(k.as_str().as_bytes())).cloned().collect();
    for k in drop {
        headers.remove(k);
    }
}

const HOP_BY_HOP: [&str; 7] =
    ["connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade"];

/// How a client's header goes to a backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Forward {
    /// Not at all: hop-by-hop, or one the gateway sets itself.
    Not,
    AsIs,
    /// Changed for the backend ([`Inner::up_request`]): `content-encoding`
    /// (without `aws-chunked`) and `x-amz-copy-source` (its bucket).
    Mapped,
}

/// How the header `k` of a client's request goes to a backend.
pub(super) fn forwarded(k: &HeaderName) -> Forward {
    let n = k.as_str();
    if is_hop_by_hop(n.as_bytes())
        || matches!(
            n,
            "host"
                | "authorization"
                | "content-length"
                | "expect"
                | "x-amz-date"
                | "x-amz-content-sha256"
                | "x-amz-security-token"
                | "x-amz-decoded-content-length"
                | "x-amz-trailer"
        )
    {
        Forward::Not
    } else if n == "content-encoding" || n == "x-amz-copy-source" {
        Forward::Mapped
    } else {
        Forward::AsIs
    }
}

/// A hop-by-hop header (its name in any case).
pub(super) fn is_hop_by_hop(n: &[u8]) -> bool {
    HOP_BY_HOP.iter().any(|h| n.eq_ignore_ascii_case(h.as_bytes()))
}

pub(super) fn unavailable(m: &Metrics, up: &Upstream, e: &TransportError, resource: &str) -> Response<Body> {
    if e.outcome == Outcome::Timeout {
        m.backend_timeouts.inc();
    }
    let (status, code) = match e.outcome {
        Outcome::Timeout => (StatusCode::SERVICE_UNAVAILABLE, "SlowDown"),
        _ => (StatusCode::SERVICE_UNAVAILABLE, "ServiceUnavailable"),
    };
    tracing::warn!(backend = %up.name, outcome = %e.outcome, detail = %e.detail, "backend unavailable");
    let mut r = s3xml::error(status, code, &format!("backend {} is unavailable: {}", up.name, e.outcome), resource);
    set_backend(&mut r, &up.name);
    r
}

/// Did a request succeed? (2xx and, for a completion, no error document.)
pub(super) fn succeeded(status: StatusCode, small: Option<&Bytes>) -> bool {
    status.is_success() && small.is_none_or(|b| s3xml::error_code(b).is_none())
}

/// The answer when sending to a backend failed: the client's fault if its
/// body was refused while it streamed (the upstream request was aborted
/// short of its end), the backend's otherwise.
pub(super) fn send_failed(m: &Metrics, ctx: &Ctx, up: &Upstream, e: &TransportError) -> Response<Body> {
    if let Some(r) = ctx.body_fault.as_ref().and_then(|f| f.get()) {
        return s3xml::error(r.status, r.code, &r.message, &ctx.resource);
    }
    unavailable(m, up, e, &ctx.resource)
}

pub(super) fn other_of(
    b: &GatewayBucket,
    name: &str,
    ups: &crate::names::NameMap<Arc<Upstream>>,
) -> Option<Arc<Upstream>> {
    b.backends.iter().find(|n| *n != name).and_then(|n| ups.get(n)).cloned()
}

pub(super) fn param(query: &[(String, String)], name: &str) -> Option<String> {
    query.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
}
