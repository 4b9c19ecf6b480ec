//! Streaming operations for bulk copy: a GET whose body is handed over as it
//! arrives, PUT and UploadPart with a streamed body of known length
//! (`x-amz-content-sha256: UNSIGNED-PAYLOAD`), and detailed listing pages.
//!
//! # Caveats
//! The deadline of a streaming GET covers the response head only; the caller
//! bounds the body read. A streamed upload cannot be retried by this client
//! (its body is consumed): callers retry the whole GET → PUT.

use bytes::Bytes;
use cutover_core::Outcome;
use http::{Method, Request};
use http_body_util::BodyExt;
use hyper::body::Incoming;

use super::{Req, S3Client, S3Response};
use crate::error::S3Error;
use crate::http::{Body, TransportError, classify};
use crate::sigv4;
use crate::xml;

/// The head of a streamed GET answer and its body.
#[derive(Debug)]
pub struct StreamedObject {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: Incoming,
}

impl StreamedObject {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// An object in a detailed listing page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedObject {
    pub key: String,
    pub size: u64,
    /// Without quotes.
    pub etag: Option<String>,
    /// As the server wrote it (ISO 8601, e.g. `2024-05-01T12:00:00.000Z`).
    pub last_modified: Option<String>,
}

/// One detailed page of ListObjectsV2.
#[derive(Debug, Clone)]
pub struct ListedPage {
    pub objects: Vec<ListedObject>,
    /// The continuation token; `None` on the last page.
    pub next_token: Option<String>,
}

impl S3Client {
    /// Signs a request whose payload is not hashed; returns the connect host,
    /// the path with query and the headers to send.
    fn sign_unsigned_payload(&self, req: &Req<'_>) -> (String, String, Vec<(String, String)>) {
        self.sign(req, sigv4::UNSIGNED_PAYLOAD)
    }

    /// GET `key` (optionally the inclusive byte range `range`, optionally
    /// only if its ETag is `if_match`) and hand the body over unread. A
    /// non-2xx answer is read and becomes an error.
    pub async fn get_object_stream(
        &self,
        key: &str,
        range: Option<(u64, u64)>,
        if_match: Option<&str>,
    ) -> Result<StreamedObject, S3Error> {
        const OP: &str = "GetObject";
        let mut req = Req::new(Method::GET, Some(&self.bucket), Some(key));
        if let Some((a, b)) = range {
            req = req.header("range", format!("bytes={a}-{b}"));
        }
        if let Some(etag) = if_match {
            req = req.header("if-match", format!("\"{etag}\""));
        }
        let (host, path_and_query, headers) = self.sign_unsigned_payload(&req);
        let work = async {
            let mut sender = self.conn.checkout(&host).await?;
            let mut builder = Request::builder().method(Method::GET).uri(path_and_query);
            for (k, v) in &headers {
                builder = builder.header(k.as_str(), v.as_str());
            }
            let request = builder.body(crate::http::empty()).map_err(protocol_transport)?;
            let resp = sender.send_request(request).await.map_err(|e| classify(&e))?;
            // The connection finishes this answer and is then dropped: a
            // streamed body never goes back to the pool half-read.
            drop(sender);
            Ok::<_, TransportError>(resp)
        };
        let resp = match tokio::time::timeout(self.timeout, work).await {
            Err(_) => return Err(self.timeout_error(OP)),
            Ok(r) => r.map_err(|e| self.transport(OP, e))?,
        };
        let (parts, body) = resp.into_parts();
        let status = parts.status.as_u16();
        if (200..300).contains(&status) {
            return Ok(StreamedObject { status, headers: parts.headers, body });
        }
        let bytes = match tokio::time::timeout(self.timeout, body.collect()).await {
            Ok(Ok(b)) => b.to_bytes(),
            _ => Bytes::new(),
        };
        Err(self.error_response(OP, &S3Response { status, headers: parts.headers, body: bytes }))
    }

    /// Sends a signed request with a streamed body of `len` bytes and reads
    /// the whole (small) answer within the client's deadline.
    async fn send_streamed(&self, op: &'static str, req: Req<'_>, body: Body, len: u64) -> Result<S3Response, S3Error> {
        let method = req.method.clone();
        let (host, path_and_query, headers) = self.sign_unsigned_payload(&req);
        let work = async {
            let mut sender = self.conn.checkout(&host).await?;
            let mut builder = Request::builder().method(method).uri(path_and_query);
            for (k, v) in &headers {
                builder = builder.header(k.as_str(), v.as_str());
            }
            let request = builder.header("content-length", len).body(body).map_err(protocol_transport)?;
            let resp = sender.send_request(request).await.map_err(|e| classify(&e))?;
            let (parts, incoming) = resp.into_parts();
            let body = incoming.collect().await.map_err(|e| classify(&e))?.to_bytes();
            self.conn.checkin(sender);
            Ok::<_, TransportError>(S3Response { status: parts.status.as_u16(), headers: parts.headers, body })
        };
        let resp = match tokio::time::timeout(self.timeout, work).await {
            Err(_) => return Err(self.timeout_error(op)),
            Ok(r) => r.map_err(|e| self.transport(op, e))?,
        };
        if (200..300).contains(&resp.status) { Ok(resp) } else { Err(self.error_response(op, &resp)) }
    }

    /// PutObject with a streamed body of exactly `len` bytes.
    pub async fn put_object_stream(
        &self,
        key: &str,
        body: Body,
        len: u64,
        headers: &[(String, String)],
    ) -> Result<S3Response, S3Error> {
        let mut req = Req::new(Method::PUT, Some(&self.bucket), Some(key));
        for (k, v) in headers {
            req = req.header(k, v.clone());
        }
        self.send_streamed("PutObject", req, body, len).await
    }

    /// UploadPart with a streamed body of exactly `len` bytes; returns the
    /// part's ETag without quotes.
    pub async fn upload_part_stream(
        &self,
        key: &str,
        upload_id: &str,
        part: u32,
        body: Body,
        len: u64,
    ) -> Result<String, S3Error> {
        let req = Req::new(Method::PUT, Some(&self.bucket), Some(key))
            .query("partNumber", part.to_string())
            .query("uploadId", upload_id);
        let resp = self.send_streamed("UploadPart", req, body, len).await?;
        resp.etag().ok_or_else(|| self.protocol("UploadPart", "no ETag in the answer"))
    }

    /// One detailed page of ListObjectsV2 under `prefix`, after `start_after`
    /// (first page only) or from `token`. A page that says it is truncated
    /// but carries no continuation token is an error, never a short listing.
    pub async fn list_objects_v2_detailed(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        token: Option<&str>,
        max_keys: u32,
    ) -> Result<ListedPage, S3Error> {
        const OP: &str = "ListObjectsV2";
        let mut req = Req::new(Method::GET, Some(&self.bucket), None)
            .query("list-type", "2")
            .query("prefix", prefix)
            .query("max-keys", max_keys.to_string());
        if let Some(t) = token {
            req = req.query("continuation-token", t);
        } else if let Some(s) = start_after {
            req = req.query("start-after", s);
        }
        let resp = self.send(OP, req).await?;
        let text = std::str::from_utf8(&resp.body).map_err(|e| self.protocol(OP, e))?;
        let page: xml::ListBucketResult = quick_xml::de::from_str(text).map_err(|e| self.protocol(OP, e))?;
        let next_token = match (page.is_truncated, page.next_continuation_token) {
            (false, _) => None,
            (true, Some(t)) if !t.is_empty() => Some(t),
            (true, _) => return Err(self.protocol(OP, "truncated listing without a continuation token")),
        };
        let objects = page
            .contents
            .into_iter()
            .map(|c| ListedObject {
                key: c.key,
                size: c.size,
                etag: c.etag.map(|e| e.trim_matches('"').to_string()),
                last_modified: c.last_modified,
            })
            .collect();
        Ok(ListedPage { objects, next_token })
    }

    fn timeout_error(&self, op: &'static str) -> S3Error {
        S3Error::Transport {
            backend: self.name.clone(),
            op,
            outcome: Outcome::Timeout,
            detail: format!("no answer within {:?}", self.timeout),
        }
    }
}

fn protocol_transport(e: http::Error) -> TransportError {
    TransportError { outcome: Outcome::Protocol(e.to_string()), detail: e.to_string() }
}
