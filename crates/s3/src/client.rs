//! One S3 client per backend: signs each request, sends it with a deadline,
//! and turns every failure into a typed [`S3Error`].

use std::time::Duration;

use bytes::Bytes;
use cutover_core::config::BackendConfig;
use cutover_core::{Endpoint, Secret};
use http::{HeaderMap, Method, Request};
use http_body_util::BodyExt;

use crate::error::S3Error;
use crate::http::{Connector, TransportError, classify, full};
use crate::sigv4::{self, AmzDate, CanonicalRequest};
use crate::xml;

mod stream;
pub use stream::{ListedObject, ListedPage, StreamedObject};

/// The secret material of one backend, resolved from the environment or a
/// credentials file.
#[derive(Debug, Clone)]
pub struct Credentials {
    pub access_key_id: String,
    pub secret_access_key: Secret,
    pub session_token: Option<Secret>,
}

/// Timeouts and connection reuse of a client.
#[derive(Debug, Clone, Copy)]
pub struct ClientOptions {
    /// Deadline of a whole operation, from connect to the last body byte.
    pub timeout: Duration,
    pub connect_timeout: Duration,
    /// Reuse connections. Probes do not: each operation sees a fresh
    /// connection, so a dead backend can never hide behind a pooled socket.
    pub pooled: bool,
}

impl ClientOptions {
    pub fn probe(timeout: Duration) -> Self {
        Self { timeout, connect_timeout: timeout, pooled: false }
    }
}

/// A request to send: bucket `None` addresses the service (ListBuckets).
#[derive(Debug)]
pub struct Req<'a> {
    pub method: Method,
    pub bucket: Option<&'a str>,
    pub key: Option<&'a str>,
    pub query: Vec<(String, String)>,
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
}

impl<'a> Req<'a> {
    pub fn new(method: Method, bucket: Option<&'a str>, key: Option<&'a str>) -> Self {
        Self { method, bucket, key, query: Vec::new(), headers: Vec::new(), body: Bytes::new() }
    }

    pub fn query(mut self, k: &str, v: impl Into<String>) -> Self {
        self.query.push((k.to_string(), v.into()));
        self
    }

    pub fn header(mut self, k: &str, v: impl Into<String>) -> Self {
        self.headers.push((k.to_ascii_lowercase(), v.into()));
        self
    }

    pub fn body(mut self, body: impl Into<Bytes>) -> Self {
        self.body = body.into();
        self
    }
}

/// A complete answer.
#[derive(Debug, Clone)]
pub struct S3Response {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl S3Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The ETag header without quotes.
    pub fn etag(&self) -> Option<String> {
        self.header("etag").map(|e| e.trim_matches('"').to_string())
    }
}

/// An object in a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    pub key: String,
    pub size: u64,
    pub etag: Option<String>,
}

/// One page of ListObjectsV2.
#[derive(Debug, Clone)]
pub struct ListPage {
    pub objects: Vec<ObjectInfo>,
    pub next_token: Option<String>,
}

/// An S3 client bound to one backend and its bucket.
#[derive(Debug, Clone)]
pub struct S3Client {
    name: String,
    region: String,
    bucket: String,
    path_style: bool,
    creds: Credentials,
    conn: Connector,
    timeout: Duration,
}

impl S3Client {
    /// A path-style client with literal keys and no configuration behind it
    /// (labs, tests, benchmarks).
    pub fn path_style(
        name: &str,
        endpoint: cutover_core::Endpoint,
        region: &str,
        bucket: &str,
        key_id: &str,
        secret: &str,
        opts: ClientOptions,
    ) -> Self {
        let creds = Credentials {
            access_key_id: key_id.to_string(),
            secret_access_key: cutover_core::Secret::new(secret.to_string()),
            session_token: None,
        };
        Self {
            name: name.to_string(),
            region: region.to_string(),
            bucket: bucket.to_string(),
            path_style: true,
            creds,
            conn: Connector::new(endpoint, opts.connect_timeout, opts.pooled),
            timeout: opts.timeout,
        }
    }

    pub fn new(backend: &BackendConfig, creds: Credentials, opts: ClientOptions) -> Self {
        Self {
            name: backend.name.clone(),
            region: backend.region.clone(),
            bucket: backend.bucket.clone(),
            path_style: backend.path_style,
            creds,
            conn: Connector::for_backend(backend, opts.connect_timeout, opts.pooled),
            timeout: opts.timeout,
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    pub fn endpoint(&self) -> &Endpoint {
        self.conn.endpoint()
    }

    /// (Host header, host to connect to, encoded path) for a bucket and key.
    fn locate(&self, bucket: Option<&str>, key: Option<&str>) -> (String, String, String) {
        let ep = self.conn.endpoint();
        let key_path = key.map(|k| sigv4::uri_encode(k, true)).unwrap_or_default();
        match bucket {
            Some(b) if !self.path_style => {
                let host = format!("{b}.{}", ep.host);
                let authority = format!("{b}.{}", ep.authority());
                (authority, host, format!("/{key_path}"))
            }
            Some(b) => {
                let path = if key.is_some() { format!("/{b}/{key_path}") } else { format!("/{b}") };
                (ep.authority(), ep.host.clone(), path)
            }
            None => (ep.authority(), ep.host.clone(), "/".to_string()),
        }
    }

    fn transport(&self, op: &'static str, e: TransportError) -> S3Error {
        S3Error::Transport { backend: self.name.clone(), op, outcome: e.outcome, detail: e.detail }
    }

    /// Signs a request with `payload_hash` as `x-amz-content-sha256`:
    /// (host to connect to, path and query, headers with the signature).
    pub(crate) fn sign(&self, req: &Req<'_>, payload_hash: &str) -> (String, String, Vec<(String, String)>) {
        let (authority, host, path) = self.locate(req.bucket, req.key);
        let date = AmzDate::now();
        let mut headers = req.headers.clone();
        headers.push(("host".into(), authority));
        headers.push(("x-amz-date".into(), date.datetime.clone()));
        headers.push(("x-amz-content-sha256".into(), payload_hash.to_string()));
        if let Some(t) = &self.creds.session_token {
            headers.push(("x-amz-security-token".into(), t.expose().to_string()));
        }
        let canonical = CanonicalRequest {
            method: req.method.as_str(),
            encoded_path: &path,
            query: &req.query,
            headers: &headers,
            payload_hash,
        };
        let auth = sigv4::authorization(
            &self.creds.access_key_id,
            self.creds.secret_access_key.expose(),
            &self.region,
            &date,
            &canonical,
        );
        headers.push(("authorization".into(), auth));
        let query = encode_query(&req.query);
        let path_and_query = if query.is_empty() { path } else { format!("{path}?{query}") };
        (host, path_and_query, headers)
    }

    /// Signs and sends a request; a non-2xx answer becomes [`S3Error::Response`].
    pub async fn send(&self, op: &'static str, req: Req<'_>) -> Result<S3Response, S3Error> {
        let (host, path_and_query, headers) = self.sign(&req, &sigv4::sha256_hex(&req.body));
        let resp = self.send_raw(op, req.method, &host, &path_and_query, headers, req.body).await?;
        if (200..300).contains(&resp.status) { Ok(resp) } else { Err(self.error_response(op, &resp)) }
    }

    fn error_response(&self, op: &'static str, resp: &S3Response) -> S3Error {
        let e = xml::parse_error(&resp.body);
        S3Error::Response {
            backend: self.name.clone(),
            op,
            status: resp.status,
            code: e.code,
            message: e.message.unwrap_or_else(|| {
                http::StatusCode::from_u16(resp.status)
                    .ok()
                    .and_then(|s| s.canonical_reason())
                    .unwrap_or("")
                    .to_string()
            }),
        }
    }

    /// Sends a request as given, without signing (presigned URLs), and reads
    /// the whole answer within the client's deadline.
    pub async fn send_raw(
        &self,
        op: &'static str,
        method: Method,
        connect_host: &str,
        path_and_query: &str,
        headers: Vec<(String, String)>,
        body: Bytes,
    ) -> Result<S3Response, S3Error> {
        let work = async {
            let mut sender = self.conn.checkout(connect_host).await?;
            let mut builder = Request::builder().method(method).uri(path_and_query);
            let has_host = headers.iter().any(|(k, _)| k == "host");
            for (k, v) in &headers {
                builder = builder.header(k.as_str(), v.as_str());
            }
            if !has_host {
                builder = builder.header("host", self.conn.endpoint().authority());
            }
            let request = builder.header("content-length", body.len()).body(full(body)).map_err(|e| {
                TransportError { outcome: cutover_core::Outcome::Protocol(e.to_string()), detail: e.to_string() }
            })?;
            let resp = sender.send_request(request).await.map_err(|e| classify(&e))?;
            let (parts, incoming) = resp.into_parts();
            let body = incoming.collect().await.map_err(|e| classify(&e))?.to_bytes();
            self.conn.checkin(sender);
            Ok::<_, TransportError>(S3Response { status: parts.status.as_u16(), headers: parts.headers, body })
        };
        match tokio::time::timeout(self.timeout, work).await {
            Err(_) => Err(S3Error::Transport {
                backend: self.name.clone(),
                op,
                outcome: cutover_core::Outcome::Timeout,
                detail: format!("no complete answer within {:?}", self.timeout),
            }),
            Ok(r) => r.map_err(|e| self.transport(op, e)),
        }
    }

    pub async fn put_object(&self, key: &str, data: Bytes, headers: &[(&str, String)]) -> Result<S3Response, S3Error> {
        let mut req = Req::new(Method::PUT, Some(&self.bucket), Some(key)).body(data);
        for (k, v) in headers {
            req = req.header(k, v.clone());
        }
        self.send("PutObject", req).await
    }

    pub async fn get_object(&self, key: &str, headers: &[(&str, String)]) -> Result<S3Response, S3Error> {
        let mut req = Req::new(Method::GET, Some(&self.bucket), Some(key));
        for (k, v) in headers {
            req = req.header(k, v.clone());
        }
        self.send("GetObject", req).await
    }

    pub async fn head_object(&self, key: &str) -> Result<S3Response, S3Error> {
        self.send("HeadObject", Req::new(Method::HEAD, Some(&self.bucket), Some(key))).await
    }

    pub async fn delete_object(&self, key: &str) -> Result<S3Response, S3Error> {
        self.send("DeleteObject", Req::new(Method::DELETE, Some(&self.bucket), Some(key))).await
    }

    /// One page of ListObjectsV2 under `prefix`.
    pub async fn list_objects_v2(&self, prefix: &str, token: Option<&str>, max_keys: u32) -> Result<ListPage, S3Error> {
        let mut req = Req::new(Method::GET, Some(&self.bucket), None)
            .query("list-type", "2")
            .query("prefix", prefix)
            .query("max-keys", max_keys.to_string());
        if let Some(t) = token {
            req = req.query("continuation-token", t);
        }
        let resp = self.send("ListObjectsV2", req).await?;
        let text = std::str::from_utf8(&resp.body).map_err(|e| self.protocol("ListObjectsV2", e))?;
        let page: xml::ListBucketResult =
            quick_xml::de::from_str(text).map_err(|e| self.protocol("ListObjectsV2", e))?;
        let next_token = if page.is_truncated { page.next_continuation_token } else { None };
        let objects = page
            .contents
            .into_iter()
            .map(|c| ObjectInfo { key: c.key, size: c.size, etag: c.etag.map(|e| e.trim_matches('"').to_string()) })
            .collect();
        Ok(ListPage { objects, next_token })
    }

    /// The names of the buckets these credentials can list.
    pub async fn list_buckets(&self) -> Result<Vec<String>, S3Error> {
        let resp = self.send("ListBuckets", Req::new(Method::GET, None, None)).await?;
        let text = std::str::from_utf8(&resp.body).map_err(|e| self.protocol("ListBuckets", e))?;
        let r: xml::ListAllMyBucketsResult =
            quick_xml::de::from_str(text).map_err(|e| self.protocol("ListBuckets", e))?;
        Ok(r.buckets.map(|b| b.bucket.into_iter().map(|e| e.name).collect()).unwrap_or_default())
    }

    pub async fn create_bucket(&self, name: &str) -> Result<(), S3Error> {
        let mut req = Req::new(Method::PUT, Some(name), None);
        if self.region != "us-east-1" {
            req = req.body(format!(
                "<CreateBucketConfiguration><LocationConstraint>{}</LocationConstraint></CreateBucketConfiguration>",
                xml::escape(&self.region)
            ));
        }
        self.send("CreateBucket", req).await.map(|_| ())
    }

    pub async fn delete_bucket(&self, name: &str) -> Result<(), S3Error> {
        self.send("DeleteBucket", Req::new(Method::DELETE, Some(name), None)).await.map(|_| ())
    }

    /// Starts a multipart upload; returns its upload id.
    pub async fn create_multipart(&self, key: &str, headers: &[(&str, String)]) -> Result<String, S3Error> {
        let mut req = Req::new(Method::POST, Some(&self.bucket), Some(key)).query("uploads", "");
        for (k, v) in headers {
            req = req.header(k, v.clone());
        }
        let resp = self.send("CreateMultipartUpload", req).await?;
        let text = std::str::from_utf8(&resp.body).map_err(|e| self.protocol("CreateMultipartUpload", e))?;
        let r: xml::InitiateMultipartUploadResult =
            quick_xml::de::from_str(text).map_err(|e| self.protocol("CreateMultipartUpload", e))?;
        Ok(r.upload_id)
    }

    /// Uploads one part; returns its ETag.
    pub async fn upload_part(&self, key: &str, upload_id: &str, part: u32, data: Bytes) -> Result<String, S3Error> {
        let req = Req::new(Method::PUT, Some(&self.bucket), Some(key))
            .query("partNumber", part.to_string())
            .query("uploadId", upload_id)
            .body(data);
        let resp = self.send("UploadPart", req).await?;
        resp.etag().ok_or_else(|| self.protocol("UploadPart", "no ETag in the answer"))
    }

    /// Completes a multipart upload; returns the object's ETag. A 200 answer
    /// whose body is an error (as S3 may send) is an error.
    pub async fn complete_multipart(
        &self,
        key: &str,
        upload_id: &str,
        parts: &[(u32, String)],
    ) -> Result<String, S3Error> {
        let req = Req::new(Method::POST, Some(&self.bucket), Some(key))
            .query("uploadId", upload_id)
            .header("content-type", "application/xml")
            .body(xml::complete_multipart_body(parts));
        let resp = self.send("CompleteMultipartUpload", req).await?;
        let err = xml::parse_error(&resp.body);
        if err.code.is_some() {
            return Err(S3Error::Response {
                backend: self.name.clone(),
                op: "CompleteMultipartUpload",
                status: resp.status,
                code: err.code,
                message: err.message.unwrap_or_default(),
            });
        }
        let text = std::str::from_utf8(&resp.body).map_err(|e| self.protocol("CompleteMultipartUpload", e))?;
        let r: xml::CompleteMultipartUploadResult =
            quick_xml::de::from_str(text).map_err(|e| self.protocol("CompleteMultipartUpload", e))?;
        Ok(r.etag.unwrap_or_default().trim_matches('"').to_string())
    }

    pub async fn abort_multipart(&self, key: &str, upload_id: &str) -> Result<(), S3Error> {
        let req = Req::new(Method::DELETE, Some(&self.bucket), Some(key)).query("uploadId", upload_id);
        self.send("AbortMultipartUpload", req).await.map(|_| ())
    }

    /// A presigned URL for `method` on `key`, valid for `expires`.
    pub fn presign(&self, method: &Method, key: &str, expires: Duration) -> PresignedUrl {
        let (authority, host, path) = self.locate(Some(&self.bucket), Some(key));
        let query = sigv4::presign_query(
            method.as_str(),
            &authority,
            &path,
            &self.creds.access_key_id,
            self.creds.secret_access_key.expose(),
            self.creds.session_token.as_ref().map(|t| t.expose()),
            &self.region,
            &AmzDate::now(),
            expires,
        );
        PresignedUrl {
            url: format!("{}://{authority}{path}?{query}", self.conn.endpoint().scheme()),
            connect_host: host,
            host_header: authority,
            path_and_query: format!("{path}?{query}"),
        }
    }

    /// Sends a request to a presigned URL as a plain HTTP client would: no
    /// signing, only the URL.
    pub async fn send_presigned(
        &self,
        op: &'static str,
        method: Method,
        url: &PresignedUrl,
        body: Bytes,
    ) -> Result<S3Response, S3Error> {
        let headers = vec![("host".to_string(), url.host_header.clone())];
        let resp = self.send_raw(op, method, &url.connect_host, &url.path_and_query, headers, body).await?;
        if (200..300).contains(&resp.status) { Ok(resp) } else { Err(self.error_response(op, &resp)) }
    }

    fn protocol(&self, op: &'static str, e: impl std::fmt::Display) -> S3Error {
        S3Error::Protocol { backend: self.name.clone(), op, detail: e.to_string() }
    }
}

/// A presigned URL and what a plain client needs to send to it.
#[derive(Debug, Clone)]
pub struct PresignedUrl {
    pub url: String,
    pub connect_host: String,
    pub host_header: String,
    pub path_and_query: String,
}

fn encode_query(q: &[(String, String)]) -> String {
    let mut pairs: Vec<String> =
        q.iter().map(|(k, v)| format!("{}={}", sigv4::uri_encode(k, false), sigv4::uri_encode(v, false))).collect();
    pairs.sort();
    pairs.join("&")
}
