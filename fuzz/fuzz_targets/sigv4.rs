//! SigV4 verification of the gateway's clients (crates/gateway/src/auth.rs):
//! the Authorization header form and the presigned-query form, with the
//! query decoding they rest on.
//!
//! Input: a request head as text,
//!
//! ```text
//! GET /bucket/key?X-Amz-Algorithm=...&X-Amz-Signature=...
//! host: examplebucket.s3.amazonaws.com
//! authorization: AWS4-HMAC-SHA256 Credential=..., SignedHeaders=..., Signature=...
//! ```
//!
//! verified at 2013-05-24T00:01:00Z against the key of the S3 documentation
//! (`AKIAIOSFODNN7EXAMPLE`), so that its examples and the seed corpus
//! (signed with that key at that date) verify.
//!
//! Checks, besides "no panic": the query decoder agrees with a reference
//! percent-decoder; a request that verifies signed every `x-amz-*` header it
//! carries (but the date and the payload hash) and host.
#![no_main]

use std::sync::LazyLock;
use std::time::{Duration, UNIX_EPOCH};

use cutover_core::Secret;
use cutover_gateway::auth::{ClientKeys, parse_query, percent_decode, verify};
use http::{HeaderMap, HeaderName, HeaderValue};
use libfuzzer_sys::fuzz_target;

/// `FUZZ_SHOW=1`: print each request's outcome (to check the seeds verify).
static SHOW: LazyLock<bool> = LazyLock::new(|| std::env::var_os("FUZZ_SHOW").is_some());

const DOC_KEY: &str = "AKIAIOSFODNN7EXAMPLE";
const DOC_SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";

/// `%XX` with two hex digits is a byte; anything else is itself.
fn reference_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        if b[i] == b'%'
            && let (Some(h), Some(l)) = (b.get(i + 1).copied().and_then(hex), b.get(i + 2).copied().and_then(hex))
        {
            out.push((h * 16 + l) as u8);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The SignedHeaders list of the request, however it is signed.
fn signed_list(headers: &HeaderMap, query: &[(String, String)]) -> Option<Vec<String>> {
    if let Some(auth) = headers.get("authorization") {
        let rest = auth.to_str().ok()?.strip_prefix("AWS4-HMAC-SHA256 ")?;
        let part = rest.split(',').filter_map(|p| p.trim().strip_prefix("SignedHeaders=")).last()?;
        return Some(part.split(';').map(str::to_ascii_lowercase).collect());
    }
    let v = query.iter().find(|(k, _)| k == "X-Amz-SignedHeaders")?;
    Some(v.1.split(';').map(str::to_ascii_lowercase).collect())
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let mut lines = text.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));
    let Some(first) = lines.next() else { return };
    let (method, target) = first.split_once(' ').unwrap_or((first, "/"));
    let target = target.split(' ').next().unwrap_or(target);
    let (raw_path, raw_query) = target.split_once('?').unwrap_or((target, ""));
    let mut headers = HeaderMap::new();
    for line in lines {
        if line.is_empty() {
            break;
        }
        let Some((name, value)) = line.split_once(':') else { continue };
        // What hyper would not hand over is not a request.
        let (Ok(name), Ok(value)) =
            (HeaderName::from_bytes(name.trim().as_bytes()), HeaderValue::from_str(value.trim()))
        else {
            continue;
        };
        headers.append(name, value);
    }

    assert_eq!(percent_decode(raw_query), reference_decode(raw_query), "percent_decode({raw_query:?})");
    let query = parse_query(raw_query);

    let keys = ClientKeys::new([(DOC_KEY.to_string(), Secret::new(DOC_SECRET))]);
    let now = UNIX_EPOCH + Duration::from_secs(1_369_353_600 + 60);
    let verified = verify(&keys, method, raw_path, &query, &headers, now);
    if *SHOW {
        eprintln!("{method} {raw_path}: {:?}", verified.as_ref().map(|v| &v.payload));
    }
    match verified {
        Ok(v) => {
            assert_eq!(v.access_key_id, DOC_KEY);
            let signed = signed_list(&headers, &query).expect("a verified request lists its signed headers");
            assert!(signed.iter().any(|h| h == "host"), "verified without signing host");
            for name in headers.keys() {
                let n = name.as_str();
                if n.starts_with("x-amz-") && n != "x-amz-date" && n != "x-amz-content-sha256" {
                    assert!(signed.iter().any(|h| h == n), "verified with {n} unsigned");
                }
            }
        }
        Err(e) => {
            let _ = (e.status(), e.code(), e.to_string());
        }
    }
});
