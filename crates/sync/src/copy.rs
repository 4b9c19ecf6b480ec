//! Verified streaming copies: GET → PUT for objects under the multipart
//! threshold, ranged GETs → parallel UploadParts above it. Bodies flow
//! through a hashing tee; nothing is buffered whole.
//!
//! # Guarantees
//! - A copied object has the source's size; its MD5 equals the source ETag
//!   when that is a plain MD5, and the destination's ETag when that is one
//!   (for multipart copies: every part's MD5 and the composite ETag).
//! - Content-Type, Cache-Control, Content-Disposition, Content-Encoding,
//!   Content-Language, Expires and `x-amz-meta-*` are carried over.
//! - A multipart upload is recorded in the store before its first part and
//!   aborted when the copy fails; it is never visible until completed.
//!
//! # Caveats
//! Ranged part GETs carry `If-Match` with the source ETag, so a source that
//! changes during a multipart copy fails the copy instead of mixing versions.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use cutover_s3::S3Client;
use cutover_s3::http::BoxError;
use http_body_util::BodyExt;
use hyper::body::{Body as HttpBody, Frame, Incoming, SizeHint};
use md5::{Digest, Md5};
use tokio::task::JoinSet;

use crate::SyncError;
use crate::diff::is_plain_md5;
use crate::retry::{Limiter, RetryPolicy, with_retries};
use crate::store::Store;

/// Headers of a source object that a copy carries over.
pub fn preserved_headers(headers: &http::HeaderMap) -> Vec<(String, String)> {
    const KEEP: [&str; 6] =
        ["content-type", "cache-control", "content-disposition", "content-encoding", "content-language", "expires"];
    headers
        .iter()
        .filter(|(name, _)| KEEP.contains(&name.as_str()) || name.as_str().starts_with("x-amz-meta-"))
        .filter_map(|(name, v)| v.to_str().ok().map(|v| (name.as_str().to_string(), v.to_string())))
        .collect()
}

/// What streamed through a [`Tee`].
#[derive(Debug, Clone, Default)]
pub struct Streamed {
    pub bytes: u64,
    pub md5: Option<[u8; 16]>,
}

/// A body that passes the source's data frames through while counting and
/// hashing them. The digest is ready once `expected` bytes went through.
#[derive(Debug)]
pub struct Tee {
    inner: Incoming,
    hasher: Option<Md5>,
    expected: u64,
    seen: u64,
    out: Arc<Mutex<Streamed>>,
}

impl Tee {
    pub fn new(inner: Incoming, expected: u64) -> (Self, Arc<Mutex<Streamed>>) {
        let out = Arc::new(Mutex::new(Streamed::default()));
        let mut tee = Self { inner, hasher: Some(Md5::new()), expected, seen: 0, out: out.clone() };
        if expected == 0 {
            // An empty body may never be polled.
            tee.finish();
        }
        (tee, out)
    }

    fn finish(&mut self) {
        if let Some(h) = self.hasher.take() {
            let mut out = self.out.lock().expect("tee lock");
            out.bytes = self.seen;
            out.md5 = Some(h.finalize().into());
        }
    }
}

impl HttpBody for Tee {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        loop {
            return match Pin::new(&mut this.inner).poll_frame(cx) {
                Poll::Pending => Poll::Pending,
                Poll::Ready(None) => {
                    this.finish();
                    Poll::Ready(None)
                }
                Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(Box::new(e)))),
                Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                    Ok(data) => {
                        this.seen += data.len() as u64;
                        if let Some(h) = this.hasher.as_mut() {
                            h.update(&data);
                        }
                        if this.seen >= this.expected {
                            this.finish();
                        }
                        Poll::Ready(Some(Ok(Frame::data(data))))
                    }
                    // Trailers are not forwarded.
                    Err(_) => continue,
                },
            };
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.expected.saturating_sub(self.seen))
    }
}

/// Everything a copy needs, shared by all copy tasks.
#[derive(Debug, Clone)]
pub struct Copier {
    /// Source client for listings, HEAD (pooled).
    pub src: S3Client,
    /// Source client for GETs: a fresh connection per GET, which also avoids
    /// the delayed-ACK stall on reused connections (see BASELINES.md).
    pub src_get: S3Client,
    pub dst: S3Client,
    pub dst_get: S3Client,
    pub src_prefix: String,
    pub dst_prefix: String,
    pub limiter: Limiter,
    pub retry: RetryPolicy,
    pub multipart_threshold: u64,
    pub part_size: u64,
    pub store: Option<Store>,
    pub job: String,
}

fn md5_hex(d: &[u8; 16]) -> String {
    hex::encode(d)
}

fn content_length(headers: &http::HeaderMap) -> Option<u64> {
    headers.get("content-length")?.to_str().ok()?.parse().ok()
}

fn etag_of(headers: &http::HeaderMap) -> Option<String> {
    headers.get("etag")?.to_str().ok().map(|e| e.trim_matches('"').to_string())
}

impl Copier {
    /// True when an object of `size` bytes is copied in parts.
    pub fn is_multipart(&self, size: u64) -> bool {
        size >= self.multipart_threshold && size > self.part_size
    }

    /// Copies one object (relative key `rel`, listed with `size`); returns the
    /// bytes copied. Retries per the policy; a large object's parts retry
    /// one by one, each holding a permit of the limiter. The caller holds a
    /// limiter permit for a single-part copy.
    pub async fn copy(&self, rel: &str, size: u64) -> Result<u64, SyncError> {
        if self.is_multipart(size) {
            self.copy_multipart(rel).await
        } else {
            with_retries(self.retry, &self.limiter, || self.copy_single(rel)).await
        }
    }

    async fn copy_single(&self, rel: &str) -> Result<u64, SyncError> {
        let (src_key, dst_key) = (format!("{}{rel}", self.src_prefix), format!("{}{rel}", self.dst_prefix));
        let copy_err = |source| SyncError::Copy { key: src_key.clone(), source: Box::new(source) };
        let obj = self.src_get.get_object_stream(&src_key, None, None).await.map_err(copy_err)?;
        let len = content_length(&obj.headers).ok_or_else(|| SyncError::Verify {
            key: src_key.clone(),
            detail: "source answer has no Content-Length".into(),
        })?;
        let src_etag = etag_of(&obj.headers);
        let headers = preserved_headers(&obj.headers);
        let (tee, streamed) = Tee::new(obj.body, len);
        let resp = self.dst.put_object_stream(&dst_key, tee.boxed(), len, &headers).await.map_err(copy_err)?;
        let streamed = streamed.lock().expect("tee lock").clone();
        let verify = |detail: String| SyncError::Verify { key: src_key.clone(), detail };
        let Some(md5) = streamed.md5 else { return Err(verify("source body ended early".into())) };
        if streamed.bytes != len {
            return Err(verify(format!("copied {} bytes, source has {len}", streamed.bytes)));
        }
        let md5 = md5_hex(&md5);
        if let Some(e) = src_etag.as_deref().filter(|e| is_plain_md5(e))
            && !e.eq_ignore_ascii_case(&md5)
        {
            return Err(verify(format!("MD5 {md5} of the bytes read differs from the source ETag {e}")));
        }
        if let Some(e) = resp.etag().filter(|e| is_plain_md5(e))
            && !e.eq_ignore_ascii_case(&md5)
        {
            return Err(verify(format!("destination ETag {e} differs from the MD5 {md5} of the bytes sent")));
        }
        Ok(len)
    }

    async fn copy_multipart(&self, rel: &str) -> Result<u64, SyncError> {
        let (src_key, dst_key) = (format!("{}{rel}", self.src_prefix), format!("{}{rel}", self.dst_prefix));
        let copy_err = |source| SyncError::Copy { key: src_key.clone(), source: Box::new(source) };
        let head = with_retries(self.retry, &self.limiter, || async {
            self.src.head_object(&src_key).await.map_err(copy_err)
        })
        .await?;
        let len = content_length(&head.headers).ok_or_else(|| SyncError::Verify {
            key: src_key.clone(),
            detail: "source HEAD has no Content-Length".into(),
        })?;
        let src_etag = head.etag();
        let headers = preserved_headers(&head.headers);
        let header_refs: Vec<(&str, String)> = headers.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
        let upload_id = with_retries(self.retry, &self.limiter, || async {
            self.dst.create_multipart(&dst_key, &header_refs).await.map_err(copy_err)
        })
        .await?;
        if let Some(store) = &self.store
            && let Err(e) = store.record_upload(&self.job, &dst_key, &upload_id)
        {
            let _ = self.dst.abort_multipart(&dst_key, &upload_id).await;
            return Err(e);
        }
        let result = self.upload_parts(&src_key, &dst_key, &upload_id, len, src_etag.as_deref()).await;
        match result {
            Ok(()) => {
                if let Some(store) = &self.store {
                    store.forget_upload(&self.job, &upload_id)?;
                }
                Ok(len)
            }
            Err(e) => {
                if let Err(abort) = self.dst.abort_multipart(&dst_key, &upload_id).await {
                    tracing::warn!(key = %dst_key, error = %abort, "aborting a failed multipart upload");
                } else if let Some(store) = &self.store {
                    let _ = store.forget_upload(&self.job, &upload_id);
                }
                Err(e)
            }
        }
    }

    async fn upload_parts(
        &self,
        src_key: &str,
        dst_key: &str,
        upload_id: &str,
        len: u64,
        src_etag: Option<&str>,
    ) -> Result<(), SyncError> {
        let count = len.div_ceil(self.part_size);
        if count > 10_000 {
            return Err(SyncError::Options(format!("{src_key}: {count} parts exceed 10,000; raise --part-size")));
        }
        let mut tasks = JoinSet::new();
        let mut parts: Vec<(u32, String, [u8; 16])> = Vec::with_capacity(count as usize);
        for i in 0..count {
            let permit = self.limiter.acquire().await;
            // Collect finished parts as we go so errors stop the upload early.
            while let Some(done) = tasks.try_join_next() {
                parts.push(done.expect("part task does not panic")?);
            }
            let (this, src_key, dst_key, upload_id) =
                (self.clone(), src_key.to_string(), dst_key.to_string(), upload_id.to_string());
            let src_etag = src_etag.map(str::to_string);
            let start = i * self.part_size;
            let end = (start + self.part_size).min(len) - 1;
            tasks.spawn(async move {
                let _permit = permit;
                let n = (i + 1) as u32;
                let (etag, md5) = with_retries(this.retry, &this.limiter, || {
                    this.copy_part(&src_key, &dst_key, &upload_id, n, (start, end), src_etag.as_deref())
                })
                .await?;
                Ok::<_, SyncError>((n, etag, md5))
            });
        }
        while let Some(done) = tasks.join_next().await {
            parts.push(done.expect("part task does not panic")?);
        }
        parts.sort_by_key(|p| p.0);
        let list: Vec<(u32, String)> = parts.iter().map(|(n, e, _)| (*n, format!("\"{e}\""))).collect();
        let etag = with_retries(self.retry, &self.limiter, || async {
            self.dst
                .complete_multipart(dst_key, upload_id, &list)
                .await
                .map_err(|source| SyncError::Copy { key: src_key.to_string(), source: Box::new(source) })
        })
        .await?;
        let mut composite = Md5::new();
        for (_, _, md5) in &parts {
            composite.update(md5);
        }
        let expected = format!("{}-{}", hex::encode(composite.finalize()), parts.len());
        if etag.contains('-') && !etag.eq_ignore_ascii_case(&expected) {
            return Err(SyncError::Verify {
                key: src_key.to_string(),
                detail: format!("destination ETag {etag} differs from the parts' composite {expected}"),
            });
        }
        Ok(())
    }

    async fn copy_part(
        &self,
        src_key: &str,
        dst_key: &str,
        upload_id: &str,
        n: u32,
        (start, end): (u64, u64),
        src_etag: Option<&str>,
    ) -> Result<(String, [u8; 16]), SyncError> {
        let copy_err = |source| SyncError::Copy { key: format!("{src_key} part {n}"), source: Box::new(source) };
        let obj = self.src_get.get_object_stream(src_key, Some((start, end)), src_etag).await.map_err(copy_err)?;
        let len = end - start + 1;
        let (tee, streamed) = Tee::new(obj.body, len);
        let etag = self.dst.upload_part_stream(dst_key, upload_id, n, tee.boxed(), len).await.map_err(copy_err)?;
        let streamed = streamed.lock().expect("tee lock").clone();
        let verify = |detail: String| SyncError::Verify { key: format!("{src_key} part {n}"), detail };
        let Some(md5) = streamed.md5 else { return Err(verify("source body ended early".into())) };
        if streamed.bytes != len {
            return Err(verify(format!("copied {} bytes, expected {len}", streamed.bytes)));
        }
        let etag = etag.trim_matches('"').to_string();
        if is_plain_md5(&etag) && !etag.eq_ignore_ascii_case(&md5_hex(&md5)) {
            return Err(verify(format!("part ETag {etag} differs from the MD5 {} of the bytes sent", md5_hex(&md5))));
        }
        Ok((etag, md5))
    }

    /// The MD5 of an object's content, streamed (for `--checksum`).
    pub async fn hash(&self, client: &S3Client, key: &str) -> Result<String, SyncError> {
        with_retries(self.retry, &self.limiter, || async {
            let copy_err = |source| SyncError::Copy { key: key.to_string(), source: Box::new(source) };
            let obj = client.get_object_stream(key, None, None).await.map_err(copy_err)?;
            let mut body = obj.body;
            let mut h = Md5::new();
            while let Some(frame) = body.frame().await {
                let frame = frame.map_err(|e| SyncError::Verify { key: key.to_string(), detail: e.to_string() })?;
                if let Ok(data) = frame.into_data() {
                    h.update(&data);
                }
            }
            Ok(hex::encode(h.finalize()))
        })
        .await
    }
}
