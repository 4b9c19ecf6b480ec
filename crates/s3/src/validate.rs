//! The smoke-test suite that runs after every switch (`cutover validate`).

use std::time::{Duration, Instant};

use base64::Engine;
use bytes::Bytes;
use cutover_core::config::{BackendValidateConfig, Sse};
use http::Method;
use md5::Digest;
use serde::Serialize;

use crate::client::S3Client;
use crate::error::S3Error;
use crate::{ms_since, random_bytes, sigv4, unique_key};

/// One check of the suite.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub name: &'static str,
    pub ok: bool,
    pub ms: f64,
    pub detail: String,
    /// True when the check did not apply (reported ok, with the reason).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub skipped: bool,
    /// True when the check could not run (the backend is unreachable, or the
    /// object it needs could not be written); reported failed, with why.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub not_run: bool,
}

/// Latency of every S3 operation the suite made, in milliseconds.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Latency {
    pub ops: usize,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub max_ms: f64,
}

/// The result of the suite against one backend.
#[derive(Debug, Clone, Serialize)]
pub struct ValidateReport {
    pub backend: String,
    pub ok: bool,
    pub checks: Vec<Check>,
    pub warnings: Vec<String>,
    pub latency: Latency,
}

const OBJECT_SIZE: usize = 256 * 1024;
const PART_SIZE: usize = 5 * 1024 * 1024;

type CheckResult = Result<String, CheckError>;

/// Why a check failed; its message is the check's `detail`.
#[derive(Debug, thiserror::Error)]
enum CheckError {
    /// An S3 operation of the check failed.
    #[error("{}: {source}", source.outcome())]
    Op { source: Box<S3Error> },
    /// The data read back is not the data written.
    #[error(
        "{what}: ChecksumMismatch: read back {got_len} bytes with sha256 {got_sha256}, wrote {want_len} bytes with sha256 {want_sha256}"
    )]
    Mismatch { what: String, got_len: usize, got_sha256: String, want_len: usize, want_sha256: String },
    /// The backend answered, but not as the check expects (the detail says how).
    #[error("{0}")]
    Unexpected(String),
}

struct Suite<'a> {
    client: &'a S3Client,
    checks: Vec<Check>,
    warnings: Vec<String>,
    samples: Vec<f64>,
    /// Objects to delete at the end; multipart uploads to abort.
    created: Vec<String>,
    uploads: Vec<(String, String)>,
    /// Set when the backend is unreachable: the remaining checks are not run.
    unreachable: Option<String>,
}

impl Suite<'_> {
    /// Times one S3 operation for the latency summary.
    async fn op<T>(&mut self, fut: impl Future<Output = Result<T, S3Error>>) -> Result<T, CheckError> {
        let start = Instant::now();
        let r = fut.await;
        self.samples.push(ms_since(start));
        r.map_err(|e| {
            if e.outcome().is_transport() && self.unreachable.is_none() {
                self.unreachable = Some(e.outcome().to_string());
            }
            CheckError::Op { source: Box::new(e) }
        })
    }

    fn record(&mut self, name: &'static str, start: Instant, r: CheckResult) {
        let (ok, detail) = match r {
            Ok(d) => (true, d),
            Err(e) => (false, e.to_string()),
        };
        self.checks.push(Check { name, ok, ms: ms_since(start), detail, skipped: false, not_run: false });
    }

    fn skip(&mut self, name: &'static str, why: impl Into<String>) {
        self.checks.push(Check { name, ok: true, ms: 0.0, detail: why.into(), skipped: true, not_run: false });
    }

    fn not_run(&mut self, name: &'static str) -> bool {
        match &self.unreachable {
            Some(outcome) => {
                let detail = format!("not run: the backend is unreachable ({outcome})");
                self.checks.push(Check { name, ok: false, ms: 0.0, detail, skipped: false, not_run: true });
                true
            }
            None => false,
        }
    }

    /// Like [`Suite::not_run`], for a check that reads the object the PUT
    /// wrote: without it, the check is listed as not run.
    fn cannot_read(&mut self, name: &'static str, stored: bool) -> bool {
        if self.not_run(name) {
            return true;
        }
        if !stored {
            let detail = "not run: the put check failed, so there is no object to read".to_string();
            self.checks.push(Check { name, ok: false, ms: 0.0, detail, skipped: false, not_run: true });
        }
        !stored
    }
}

fn same(what: &str, want: &[u8], got: &[u8]) -> Result<(), CheckError> {
    if want == got {
        return Ok(());
    }
    Err(CheckError::Mismatch {
        what: what.to_string(),
        got_len: got.len(),
        got_sha256: sigv4::sha256_hex(got),
        want_len: want.len(),
        want_sha256: sigv4::sha256_hex(want),
    })
}

/// Runs the suite against `client`'s bucket, under `prefix`.
///
/// # Guarantees
/// Every object the suite created is deleted and every multipart upload it
/// started is completed or aborted, also when a check fails (as far as the
/// backend answers).
pub async fn run(client: &S3Client, cfg: &BackendValidateConfig, prefix: &str) -> ValidateReport {
    let mut s = Suite {
        client,
        checks: Vec::new(),
        warnings: Vec::new(),
        samples: Vec::new(),
        created: Vec::new(),
        uploads: Vec::new(),
        unreachable: None,
    };
    let key = unique_key(prefix, "validate");
    let data = random_bytes(OBJECT_SIZE);

    let stored = object_checks(&mut s, &key, &data).await;
    if !s.not_run("multipart") {
        let t = Instant::now();
        let r = multipart(&mut s, prefix).await;
        s.record("multipart", t, r);
    }
    if !s.cannot_read("presigned_get", stored) {
        let t = Instant::now();
        let url = client.presign(&Method::GET, &key, Duration::from_secs(300));
        let r = s.op(client.send_presigned("presigned GET", Method::GET, &url, Bytes::new())).await.and_then(|r| {
            same("presigned GET", &data, &r.body)
                .map(|_| "a plain HTTP GET of the presigned URL read the object".to_string())
        });
        s.record("presigned_get", t, r);
    }
    if !s.not_run("presigned_put") {
        let t = Instant::now();
        let r = presigned_put(&mut s, prefix).await;
        s.record("presigned_put", t, r);
    }
    match &cfg.sse {
        None => s.skip("sse", "skipped: no server-side encryption configured ([backends.validate] sse)"),
        Some(_) if s.not_run("sse") => {}
        Some(sse) => {
            let t = Instant::now();
            let r = encryption(&mut s, prefix, sse).await;
            s.record("sse", t, r);
        }
    }

    // Cleanup, reported as the delete check.
    let t = Instant::now();
    let r = cleanup(&mut s).await;
    s.record("delete", t, r);

    if !s.not_run("permissions") {
        let t = Instant::now();
        permissions(&mut s).await;
        s.record("permissions", t, Ok("audited; see warnings".into()));
    }

    let latency = summarize(&s.samples);
    let t = Instant::now();
    let lat = latency_check(&latency, cfg.max_latency);
    s.record("latency", t, lat);

    ValidateReport {
        backend: client.name().to_string(),
        ok: s.checks.iter().all(|c| c.ok),
        checks: s.checks,
        warnings: s.warnings,
        latency,
    }
}

/// PUT, GET, HEAD, LIST and a ranged GET of one object; true when the PUT
/// stored it (the later checks that read it need it).
async fn object_checks(s: &mut Suite<'_>, key: &str, data: &Bytes) -> bool {
    let t = Instant::now();
    let meta = [
        ("content-type", "application/x-cutover-validate".to_string()),
        ("x-amz-meta-cutover", "validate".to_string()),
    ];
    let put = s.op(s.client.put_object(key, data.clone(), &meta)).await;
    let put_etag = put.as_ref().ok().and_then(|r| r.etag());
    if put.is_ok() {
        s.created.push(key.to_string());
    }
    s.record("put", t, put.map(|_| format!("{} bytes", data.len())));
    let stored = s.created.iter().any(|k| k == key);

    if !s.cannot_read("get", stored) {
        let t = Instant::now();
        let r = s.op(s.client.get_object(key, &[])).await.and_then(|r| {
            same("GET", data, &r.body)?;
            match r.header("x-amz-meta-cutover") {
                Some("validate") => Ok("content and user metadata read back".to_string()),
                other => {
                    Err(CheckError::Unexpected(format!("user metadata x-amz-meta-cutover came back as {other:?}")))
                }
            }
        });
        s.record("get", t, r);
    }
    if !s.cannot_read("head", stored) {
        let t = Instant::now();
        let r = s.op(s.client.head_object(key)).await.and_then(|r| {
            let len = r.header("content-length").unwrap_or("");
            if len != data.len().to_string() {
                return Err(CheckError::Unexpected(format!("content-length {len:?}, expected {}", data.len())));
            }
            if put_etag.is_some() && r.etag() != put_etag {
                return Err(CheckError::Unexpected(format!("ETag {:?} differs from the PUT's {put_etag:?}", r.etag())));
            }
            Ok(format!("size and ETag match ({})", r.etag().unwrap_or_default()))
        });
        s.record("head", t, r);
    }
    if !s.cannot_read("list", stored) {
        let t = Instant::now();
        let r = s.op(s.client.list_objects_v2(key, None, 10)).await.and_then(|page| {
            match page.objects.iter().find(|o| o.key == key) {
                Some(o) if o.size == data.len() as u64 => Ok("ListObjectsV2 sees the new object".to_string()),
                Some(o) => Err(CheckError::Unexpected(format!("listed with size {}, expected {}", o.size, data.len()))),
                None => Err(CheckError::Unexpected("ListObjectsV2 does not list the new object".to_string())),
            }
        });
        s.record("list", t, r);
    }
    if !s.cannot_read("range_get", stored) {
        let t = Instant::now();
        let (from, to) = (1000usize, 5095usize);
        let r = s.op(s.client.get_object(key, &[("range", format!("bytes={from}-{to}"))])).await.and_then(|r| {
            if r.status != 206 {
                return Err(CheckError::Unexpected(format!("status {} for a ranged GET, expected 206", r.status)));
            }
            same("ranged GET", &data[from..=to], &r.body)?;
            Ok(format!("bytes {from}-{to} match"))
        });
        s.record("range_get", t, r);
    }
    stored
}

/// The latency check: the p95 of every operation against `max_latency`.
fn latency_check(latency: &Latency, max_latency: Option<Duration>) -> CheckResult {
    match max_latency {
        Some(max) if latency.p95_ms > max.as_secs_f64() * 1000.0 => Err(CheckError::Unexpected(format!(
            "p95 {:.1} ms is above max_latency {} ms",
            latency.p95_ms,
            max.as_millis()
        ))),
        _ => Ok(format!(
            "{} operations: p50 {:.1} ms, p95 {:.1} ms, max {:.1} ms",
            latency.ops, latency.p50_ms, latency.p95_ms, latency.max_ms
        )),
    }
}

async fn multipart(s: &mut Suite<'_>, prefix: &str) -> CheckResult {
    let key = unique_key(prefix, "validate-multipart");
    let parts_data = [random_bytes(PART_SIZE), random_bytes(PART_SIZE), random_bytes(1024)];
    let upload_id = s.op(s.client.create_multipart(&key, &[])).await?;
    s.uploads.push((key.clone(), upload_id.clone()));
    let mut parts = Vec::new();
    for (i, data) in parts_data.iter().enumerate() {
        let n = i as u32 + 1;
        let etag = s.op(s.client.upload_part(&key, &upload_id, n, data.clone())).await?;
        parts.push((n, etag));
    }
    s.op(s.client.complete_multipart(&key, &upload_id, &parts)).await?;
    s.uploads.retain(|(_, id)| *id != upload_id);
    s.created.push(key.clone());
    let whole: Vec<u8> = parts_data.iter().flat_map(|p| p.iter().copied()).collect();
    let r = s.op(s.client.get_object(&key, &[])).await?;
    same("multipart object", &whole, &r.body)?;
    Ok(format!("{} parts, {} bytes read back intact", parts.len(), whole.len()))
}

async fn presigned_put(s: &mut Suite<'_>, prefix: &str) -> CheckResult {
    let key = unique_key(prefix, "validate-presigned");
    let data = random_bytes(4096);
    let url = s.client.presign(&Method::PUT, &key, Duration::from_secs(300));
    s.op(s.client.send_presigned("presigned PUT", Method::PUT, &url, data.clone())).await?;
    s.created.push(key.clone());
    let r = s.op(s.client.get_object(&key, &[])).await?;
    same("object written by presigned PUT", &data, &r.body)?;
    Ok("a plain HTTP PUT to the presigned URL stored the object".into())
}

async fn encryption(s: &mut Suite<'_>, prefix: &str, sse: &Sse) -> CheckResult {
    let key = unique_key(prefix, "validate-sse");
    let data = random_bytes(4096);
    match sse {
        Sse::Aes256 | Sse::Kms { .. } => {
            let (alg, mut headers) = match sse {
                Sse::Kms { key_id } => {
                    let mut h = vec![("x-amz-server-side-encryption", "aws:kms".to_string())];
                    if let Some(id) = key_id {
                        h.push(("x-amz-server-side-encryption-aws-kms-key-id", id.clone()));
                    }
                    ("aws:kms", h)
                }
                _ => ("AES256", vec![("x-amz-server-side-encryption", "AES256".to_string())]),
            };
            s.op(s.client.put_object(&key, data.clone(), &headers)).await?;
            s.created.push(key.clone());
            headers.clear();
            let r = s.op(s.client.get_object(&key, &headers)).await?;
            same("encrypted object", &data, &r.body)?;
            match r.header("x-amz-server-side-encryption") {
                Some(a) if a == alg => Ok(format!("{alg} round trip; the backend reports the object encrypted")),
                other => Err(CheckError::Unexpected(format!(
                    "the backend answered x-amz-server-side-encryption {other:?}, expected {alg:?}"
                ))),
            }
        }
        Sse::CustomerKey => {
            let secret_key = random_bytes(32);
            let b64 = base64::engine::general_purpose::STANDARD;
            let headers = vec![
                ("x-amz-server-side-encryption-customer-algorithm", "AES256".to_string()),
                ("x-amz-server-side-encryption-customer-key", b64.encode(&secret_key)),
                ("x-amz-server-side-encryption-customer-key-md5", b64.encode(md5::Md5::digest(&secret_key))),
            ];
            s.op(s.client.put_object(&key, data.clone(), &headers)).await?;
            s.created.push(key.clone());
            let r = s.op(s.client.get_object(&key, &headers)).await?;
            same("SSE-C object", &data, &r.body)?;
            match s.client.get_object(&key, &[]).await {
                Ok(_) => Err(CheckError::Unexpected("the object was readable without its customer key".into())),
                Err(_) => Ok("SSE-C round trip; unreadable without the key".into()),
            }
        }
    }
}

async fn cleanup(s: &mut Suite<'_>) -> CheckResult {
    let mut failed = Vec::new();
    for (key, id) in std::mem::take(&mut s.uploads) {
        if let Err(e) = s.op(s.client.abort_multipart(&key, &id)).await {
            failed.push(format!("abort {key}: {e}"));
        }
    }
    let created = std::mem::take(&mut s.created);
    for key in &created {
        if let Err(e) = s.op(s.client.delete_object(key)).await {
            failed.push(format!("{key}: {e}"));
        }
    }
    if let Some(first) = created.first()
        && failed.is_empty()
    {
        match s.client.head_object(first).await {
            Err(e) if e.status() == Some(404) => {}
            Ok(_) => failed.push(format!("{first} is still there after DELETE")),
            Err(e) => failed.push(format!("HEAD after DELETE: {e}")),
        }
    }
    if failed.is_empty() {
        Ok(format!("deleted the {} objects the suite created", created.len()))
    } else {
        Err(CheckError::Unexpected(format!("left behind: {}", failed.join("; "))))
    }
}

async fn permissions(s: &mut Suite<'_>) {
    if let Ok(buckets) = s.client.list_buckets().await {
        s.warnings.push(format!(
            "permissions: these credentials can list buckets (ListBuckets returned {}); the job needs only its bucket",
            buckets.len()
        ));
    }
    let probe_bucket = format!("cutover-permcheck-{:08x}", fastrand::u32(..));
    if s.client.create_bucket(&probe_bucket).await.is_ok() {
        s.warnings.push("permissions: these credentials can create buckets; the job does not need that".into());
        if s.client.delete_bucket(&probe_bucket).await.is_ok() {
            s.warnings.push("permissions: these credentials can delete buckets; the job does not need that".into());
        } else {
            s.warnings.push(format!("permissions: could not delete the test bucket {probe_bucket}; remove it by hand"));
        }
    }
}

fn summarize(samples: &[f64]) -> Latency {
    if samples.is_empty() {
        return Latency::default();
    }
    let mut v = samples.to_vec();
    v.sort_by(f64::total_cmp);
    let at = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize];
    Latency { ops: v.len(), p50_ms: at(0.5), p95_ms: at(0.95), max_ms: v[v.len() - 1] }
}
