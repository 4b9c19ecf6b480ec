//! The synthetic probe cycle: PUT → GET + checksum → HEAD → DELETE.

use std::time::Instant;

use cutover_core::Outcome;
use serde::Serialize;

use crate::client::S3Client;
use crate::{ms_since, random_bytes, sigv4, unique_key};

/// One operation of a probe cycle.
#[derive(Debug, Clone, Serialize)]
pub struct OpReport {
    pub op: &'static str,
    pub ok: bool,
    pub ms: f64,
    pub outcome: Outcome,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// The result of one probe cycle against one backend.
#[derive(Debug, Clone, Serialize)]
pub struct ProbeReport {
    pub backend: String,
    pub ok: bool,
    /// The outcome of the first failed operation, or `Ok`.
    pub outcome: Outcome,
    pub ops: Vec<OpReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// Runs one probe cycle. It never retries: a probe must see the failure.
///
/// # Guarantees
/// The probe object is deleted whenever its PUT succeeded, also when a later
/// operation failed.
pub async fn probe_cycle(client: &S3Client, prefix: &str, size: usize) -> ProbeReport {
    let key = unique_key(prefix, "probe");
    let data = random_bytes(size);
    let mut ops = Vec::with_capacity(4);
    let mut record = |op: &'static str, start: Instant, r: Result<(), crate::S3Error>| {
        let (ok, outcome, detail) = match r {
            Ok(()) => (true, Outcome::Ok, None),
            Err(e) => (false, e.outcome(), Some(e.to_string())),
        };
        ops.push(OpReport { op, ok, ms: ms_since(start), outcome, detail });
        ok
    };

    let t = Instant::now();
    let put_ok = record("put", t, client.put_object(&key, data.clone(), &[]).await.map(|_| ()));
    if put_ok {
        let t = Instant::now();
        let get = client.get_object(&key, &[]).await.and_then(|r| {
            let (want, got) = (sigv4::sha256_hex(&data), sigv4::sha256_hex(&r.body));
            if want == got {
                Ok(())
            } else {
                Err(crate::S3Error::ChecksumMismatch {
                    backend: client.name().into(),
                    op: "GetObject",
                    key: key.clone(),
                    expected: want,
                    actual: got,
                })
            }
        });
        if record("get", t, get) {
            let t = Instant::now();
            let head = client.head_object(&key).await.and_then(|r| match r.header("content-length") {
                Some(len) if len == data.len().to_string() => Ok(()),
                other => Err(crate::S3Error::Protocol {
                    backend: client.name().into(),
                    op: "HeadObject",
                    detail: format!("content-length {other:?}, expected {}", data.len()),
                }),
            });
            record("head", t, head);
        }
        let t = Instant::now();
        record("delete", t, client.delete_object(&key).await.map(|_| ()));
    }
    let failed = ops.iter().find(|o| !o.ok);
    ProbeReport {
        backend: client.name().to_string(),
        ok: failed.is_none(),
        outcome: failed.map(|o| o.outcome.clone()).unwrap_or(Outcome::Ok),
        detail: failed.and_then(|o| o.detail.clone()),
        ops,
    }
}
