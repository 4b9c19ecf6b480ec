//! One client request: authenticated, its body prepared, and routed by its
//! bucket's mode.

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use cutover_core::config::{BucketMode, GatewayBucket};
use http::header::{self, HeaderValue};
use http::{HeaderMap, Request, Response, StatusCode};
use hyper::body::Incoming;

use super::forward::{other_of, param};
use super::{BACKEND_HEADER, BODY_RATE_WINDOW, Ctx, Inner, SMALL_BODY_LIMIT};
use crate::auth::{self, Payload, Verified};
use crate::body::{Body, Counted, Fault, S3Refusal, collect_limited, empty, full};
use crate::deadline::MinRate;
use crate::route::{self, S3Op, Target};
use crate::s3xml;
use crate::upstream::{UpPayload, Upstream};

/// Query parameters of a presigned URL, never forwarded.
pub(super) const PRESIGN_PARAMS: [&str; 7] = [
    "X-Amz-Algorithm",
    "X-Amz-Credential",
    "X-Amz-Date",
    "X-Amz-Expires",
    "X-Amz-SignedHeaders",
    "X-Amz-Signature",
    "X-Amz-Security-Token",
];

/// The client's query without the presigned URL's parameters, as it goes
/// upstream.
pub(super) fn forwarded_query<Q: Into<String> + AsRef<str>>(
    query: impl IntoIterator<Item = (Q, Q)>,
) -> Vec<(String, String)> {
    query
        .into_iter()
        .filter(|(k, _)| {
            let k = k.as_ref();
            !PRESIGN_PARAMS.contains(&k) && !k.eq_ignore_ascii_case("x-amz-content-sha256")
        })
        .map(|(k, v)| (k.into(), v.into()))
        .collect()
}

/// An answer sent before the request's body was read: the connection
/// closes after it. A client that sent `Expect: 100-continue` may send the
/// body anyway once it gives up waiting; on a kept-alive connection those
/// bytes would be read as the next request's head (a bare 400 that no S3
/// client can parse, seen with botocore 1.43).
fn unread_body(mut r: Response<Body>) -> Response<Body> {
    r.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
    r
}

/// A client request's body and headers, ready to go upstream.
pub(super) struct ClientRequest {
    body: Body,
    len: Option<u64>,
    payload: UpPayload,
    /// Why the body was refused while it streamed, if it was.
    body_fault: Fault,
    headers: HeaderMap,
    /// DeleteObjects: the keys forwarded and the `<Error>` entries of the refused ones.
    delete: Option<(Vec<String>, String)>,
}

impl Inner {
    pub(super) async fn handle(&self, req: Request<Incoming>) -> Response<Body> {
        let start = Instant::now();
        let (parts, body) = req.into_parts();
        let raw_path = parts.uri.path().to_string();
        if raw_path.starts_with("/-/") && parts.method == http::Method::GET {
            // No bucket name starts with `-`: the gateway's own endpoints.
            return self.own_endpoint(&raw_path).await;
        }
        let query = auth::parse_query(parts.uri.query().unwrap_or(""));
        let target = route::target(&parts.headers, &raw_path, &self.bucket_names);
        let op = route::operation(&parts.method, &target, &query, &parts.headers);
        let verified =
            match auth::verify(&self.keys, parts.method.as_str(), &raw_path, &query, &parts.headers, SystemTime::now())
            {
                Ok(v) => v,
                Err(e) => {
                    let resp = unread_body(s3xml::error(e.status(), e.code(), &e.to_string(), &raw_path));
                    self.metrics.request(op, crate::metrics::GATEWAY, resp.status().as_u16(), start.elapsed());
                    return resp;
                }
            };
        let resp = self.dispatch(op, parts, target, query, body, verified, raw_path).await;
        let backend =
            resp.headers().get(BACKEND_HEADER).and_then(|v| v.to_str().ok()).unwrap_or(crate::metrics::GATEWAY);
        self.metrics.request(op, backend, resp.status().as_u16(), start.elapsed());
        let (parts, body) = resp.into_parts();
        Response::from_parts(parts, Counted::wrap(body, self.metrics.bytes_out.clone()))
    }

    /// `GET /-/health` (the active backend, how fresh it is) and
    /// `GET /-/metrics` (this gateway's metrics), open like a load
    /// balancer's health check; anything else under `/-/` is 404.
    async fn own_endpoint(&self, path: &str) -> Response<Body> {
        let (content_type, body) = match path {
            "/-/health" => {
                let fresh = self.active.freshness();
                let v = serde_json::json!({
                    "active": self.active.get(),
                    "age_seconds": fresh.age.map(|a| a.as_secs_f64()),
                    "stale": fresh.stale,
                });
                ("application/json", v.to_string())
            }
            "/-/metrics" => ("text/plain; version=0.0.4", self.render_metrics().await),
            _ => return s3xml::error(StatusCode::NOT_FOUND, "NoSuchKey", "no such endpoint", path),
        };
        let mut r = Response::new(full(body));
        r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        r
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) async fn dispatch(
        &self,
        op: S3Op,
        parts: http::request::Parts,
        target: Target,
        query: Vec<(String, String)>,
        body: Incoming,
        verified: Verified,
        resource: String,
    ) -> Response<Body> {
        if op == S3Op::ListBuckets {
            let names: Vec<&str> = self.bucket_names.iter().map(String::as_str).collect();
            let mut r = Response::new(full(s3xml::list_buckets(&names)));
            r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/xml"));
            return r;
        }
        let Some(bucket) = target.bucket.as_ref().and_then(|b| self.buckets.get(b)).cloned() else {
            let r = s3xml::error(StatusCode::NOT_FOUND, "NoSuchBucket", "no such bucket on this gateway", &resource);
            return unread_body(r);
        };
        if let Err(r) = self.check_keys(target.key.as_deref(), &parts.headers) {
            return unread_body(s3xml::error(r.status, r.code, &r.message, &resource));
        }
        if op == S3Op::Unsupported {
            return unread_body(s3xml::error(
                StatusCode::NOT_IMPLEMENTED,
                "NotImplemented",
                "bucket management is not available through the gateway",
                &resource,
            ));
        }
        let query = forwarded_query(query);
        let req = match self.client_body(op, parts.headers, body, &verified, &resource).await {
            Ok(r) => r,
            Err(answer) => return answer,
        };
        let ClientRequest { body, len, payload, body_fault, headers, delete } = req;
        let ctx = Ctx {
            op,
            method: parts.method,
            bucket,
            key: target.key,
            query,
            headers,
            resource,
            payload,
            body_fault: Some(body_fault),
            delete,
        };
        let refused = ctx.delete.as_ref().map(|(_, r)| r.clone()).filter(|r| !r.is_empty());
        let resp = self.route(ctx, body, len).await;
        match refused {
            Some(errors) if resp.status().is_success() => with_refused_keys(resp, &errors).await,
            _ => resp,
        }
    }

    /// The client's body as it goes upstream: its length, its checks (hash,
    /// chunk signatures, trailer, minimum rate) wrapped around it, and for
    /// DeleteObjects the body rendered again without the refused keys. The
    /// error is the answer for the client.
    #[allow(clippy::result_large_err)]
    pub(super) async fn client_body(
        &self,
        op: S3Op,
        mut headers: HeaderMap,
        body: Incoming,
        verified: &Verified,
        resource: &str,
    ) -> Result<ClientRequest, Response<Body>> {
        let len = headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
        // Verified by the body as it streams (its last bytes are held back
        // until then), and by the backend when the payload hash or trailing
        // checksum goes on with it.
        let body_fault = Fault::default();
        let counter = self.metrics.bytes_in.clone();
        // A body without Content-Length (HTTP chunked) that is not
        // aws-chunked (whose decoded length is declared): the gateway
        // cannot forward it with a length, and must never send it as empty.
        let unknown_len = len.is_none() && http_body::Body::size_hint(&body).exact() != Some(0);
        let fwd = match crate::chunked::client_body(body, verified, &headers, len, counter, &body_fault) {
            Ok(b) => b,
            Err(r) => return Err(s3xml::error(r.status, r.code, &r.message, resource)),
        };
        if unknown_len && fwd.len.is_none() {
            return Err(s3xml::error(
                StatusCode::LENGTH_REQUIRED,
                "MissingContentLength",
                "You must provide the Content-Length HTTP header.",
                resource,
            ));
        }
        let (body, len, payload) = (fwd.body, fwd.len, fwd.payload);
        let body = MinRate::wrap(
            body,
            self.opts.client_min_body_rate,
            BODY_RATE_WINDOW,
            body_fault.clone(),
            self.metrics.slow_clients.clone(),
        );
        // An empty aws-chunked upload sent upstream as a plain body has
        // Content-Length 0, which hyper sends without polling the body: its
        // checks (final chunk signature, trailer) run here first. (With a
        // forwarded trailer the upstream body is never empty.)
        let streaming = matches!(verified.payload, Payload::StreamingUnsignedTrailer | Payload::StreamingSigned { .. });
        let body = if streaming && len == Some(0) {
            match collect_limited(body, 0).await {
                Ok(_) => empty(),
                Err(e) => {
                    let r = body_fault.get().cloned().unwrap_or_else(|| {
                        S3Refusal::bad_request("IncompleteBody", format!("could not read the request body: {e}"))
                    });
                    return Err(s3xml::error(r.status, r.code, &r.message, resource));
                }
            }
        } else {
            body
        };
        let (body, len, payload, delete) = if op == S3Op::DeleteObjects {
            match self.delete_objects_body(body, &mut headers, &body_fault).await {
                Ok((b, keys, refused)) => {
                    let n = b.len() as u64;
                    let hash = UpPayload::Sha256(cutover_s3::sigv4::sha256_hex(&b));
                    if keys.is_empty() {
                        // Every key was refused: nothing to forward.
                        let xml = crate::xmlbody::with_delete_errors(None, &refused).unwrap_or_default();
                        let mut r = Response::new(full(xml));
                        r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/xml"));
                        return Err(r);
                    }
                    (full(b), Some(n), hash, Some((keys, refused)))
                }
                Err(r) => return Err(s3xml::error(r.status, r.code, &r.message, resource)),
            }
        } else {
            (body, len, payload, None)
        };
        Ok(ClientRequest { body, len, payload, body_fault, headers, delete })
    }

    /// The object key of the request and of its `x-amz-copy-source`, by
    /// [`KeyPolicy`]: no `.`/`..` segment, nothing under the probe prefix.
    pub(super) fn check_keys(&self, key: Option<&str>, headers: &HeaderMap) -> Result<(), S3Refusal> {
        if let Some(k) = key {
            self.key_policy.check(k)?;
        }
        if let Some(v) = headers.get(crate::amz::X_AMZ_COPY_SOURCE) {
            let v =
                v.to_str().map_err(|_| S3Refusal::bad_request("InvalidArgument", "x-amz-copy-source is not ASCII"))?;
            let v = v.strip_prefix('/').unwrap_or(v);
            let v = v.split_once('?').map_or(v, |(p, _)| p);
            let key = v.split_once('/').map(|(_, k)| auth::percent_decode(k)).unwrap_or_default();
            self.key_policy.check(&key)?;
        }
        Ok(())
    }

    /// (active, other) backends of a bucket.
    pub(super) fn sides(&self, b: &GatewayBucket) -> (Arc<Upstream>, Option<Arc<Upstream>>) {
        let name = self.active.with(|active| b.backends.iter().position(|n| n == active).unwrap_or(0));
        let other = b.backends.iter().find(|n| **n != b.backends[name]).and_then(|n| self.upstreams.get(n)).cloned();
        (self.upstreams[&b.backends[name]].clone(), other)
    }

    pub(super) async fn route(&self, ctx: Ctx, body: Body, len: Option<u64>) -> Response<Body> {
        // A write holds its keys until it is recorded, so a journal replay of
        // the same key runs wholly before or after it (crate::keys::KeyLocks).
        let write_keys: Vec<&str> = match (&ctx.delete, ctx.op) {
            (Some((keys, _)), _) => keys.iter().map(String::as_str).collect(),
            (None, S3Op::PutObject | S3Op::CopyObject | S3Op::DeleteObject | S3Op::CompleteMultipartUpload) => {
                ctx.key.iter().map(String::as_str).collect()
            }
            (None, op) if op.is_subresource_write(&ctx.method) => ctx.key.iter().map(String::as_str).collect(),
            _ => Vec::new(),
        };
        let _held =
            if write_keys.is_empty() { None } else { Some(self.locks.lock_shared(&ctx.bucket.name, write_keys).await) };
        let (active, other) = self.sides(&ctx.bucket);
        let mode = ctx.bucket.mode;
        match ctx.op {
            S3Op::GetObject | S3Op::HeadObject if mode == BucketMode::ReadThrough => {
                self.read_through(&ctx, &active, other, true).await
            }
            S3Op::GetObject | S3Op::HeadObject if mode == BucketMode::DualWrite && other.is_some() => {
                let key = ctx.key.as_deref().unwrap_or("");
                match self.newest_of(&ctx.bucket.name, key).and_then(|n| self.upstreams.get(&n).cloned()) {
                    // One side holds a write the other has not got yet
                    // (journaled): only that side answers.
                    Some(up) => self.single(&ctx, &up, None, body, len).await,
                    // Both sides hold the same: the other answers when the
                    // active cannot.
                    None => self.read_through(&ctx, &active, other, false).await,
                }
            }
            S3Op::PutObject | S3Op::CopyObject | S3Op::DeleteObject | S3Op::DeleteObjects
                if mode == BucketMode::DualWrite && other.is_some() =>
            {
                let other = other.expect("checked");
                self.dual_write(&ctx, &active, &other, body, len).await
            }
            S3Op::UploadPart
            | S3Op::UploadPartCopy
            | S3Op::CompleteMultipartUpload
            | S3Op::AbortMultipartUpload
            | S3Op::ListParts => {
                let upload_id = param(&ctx.query, "uploadId").unwrap_or_default();
                let owner = match self.state.upload_backend(&upload_id).await {
                    Ok(o) => o.and_then(|n| self.upstreams.get(&n).cloned()).unwrap_or(active.clone()),
                    Err(e) => {
                        tracing::error!(error = %e, "reading the multipart upload owner");
                        return s3xml::error(
                            StatusCode::SERVICE_UNAVAILABLE,
                            "ServiceUnavailable",
                            "state database error",
                            &ctx.resource,
                        );
                    }
                };
                let other = other_of(&ctx.bucket, &owner.name, &self.upstreams);
                self.single(&ctx, &owner, other, body, len).await
            }
            _ => self.single(&ctx, &active, other, body, len).await,
        }
    }
}

/// Adds the `<Error>` entries of the keys the gateway refused to a
/// DeleteObjects answer.
pub(super) async fn with_refused_keys(resp: Response<Body>, errors: &str) -> Response<Body> {
    let (mut parts, body) = resp.into_parts();
    let b = match collect_limited(body, SMALL_BODY_LIMIT).await {
        Ok(b) => b,
        Err(_) => {
            return s3xml::error(StatusCode::BAD_GATEWAY, "InternalError", "the backend's answer was cut short", "");
        }
    };
    let b = crate::xmlbody::with_delete_errors(Some(&b), errors).unwrap_or(b);
    parts.headers.insert(header::CONTENT_LENGTH, HeaderValue::from(b.len()));
    Response::from_parts(parts, full(b))
}
