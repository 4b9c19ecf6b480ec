//! DeleteObjects request bodies: verified, parsed, and rendered again without
//! the keys the gateway refuses.

use bytes::Bytes;
use http::HeaderMap;
use http::header::{HeaderName, HeaderValue};

use super::{Inner, SMALL_BODY_LIMIT};
use crate::body::{Body, Fault, S3Refusal, collect_limited};

impl Inner {
    /// A DeleteObjects body, read whole (its signed hash, Content-MD5 or
    /// checksum header verified), parsed, and rendered again without the
    /// keys [`KeyPolicy`] refuses: (the body to forward, its keys, the
    /// `<Error>` entries of the refused keys). The forwarded body is the
    /// gateway's own rendering, so the backend deletes exactly the keys the
    /// gateway journals; its Content-MD5 is set anew.
    pub(super) async fn delete_objects_body(
        &self,
        body: Body,
        headers: &mut HeaderMap,
        fault: &Fault,
    ) -> Result<(Bytes, Vec<String>, String), S3Refusal> {
        let b = collect_limited(body, SMALL_BODY_LIMIT).await.map_err(|e| {
            fault.get().cloned().unwrap_or_else(|| {
                S3Refusal::bad_request("IncompleteBody", format!("could not read the request body: {e}"))
            })
        })?;
        let bad_digest = || {
            S3Refusal::bad_request(
                "BadDigest",
                "the Content-MD5 or checksum you specified did not match what was received",
            )
        };
        if let Some(md5) = headers.get("content-md5") {
            use base64::Engine as _;
            use md5::Digest as _;
            let want = base64::engine::general_purpose::STANDARD.encode(md5::Md5::digest(&b));
            if md5.as_bytes() != want.as_bytes() {
                return Err(bad_digest());
            }
        }
        for (name, v) in headers.iter() {
            if let Some(a) = crate::checksum::Algorithm::from_header(name.as_str()) {
                let want = v.to_str().ok().and_then(|v| a.parse_value(v)).ok_or_else(bad_digest)?;
                let mut h = a.hasher();
                h.update(&b);
                if h.finish() != want {
                    return Err(bad_digest());
                }
            }
        }
        let req = crate::xmlbody::parse_delete(&b).map_err(|e| {
            S3Refusal::bad_request(
                "MalformedXML",
                format!(
                    "The XML you provided was not well-formed or did not validate against our published schema: {e}"
                ),
            )
        })?;
        let mut refused = Vec::new();
        let mut kept = Vec::new();
        for o in &req.objects {
            match self.key_policy.check(&o.key) {
                Ok(()) => kept.push(o),
                Err(r) => refused.push((o.key.clone(), r.code, r.message)),
            }
        }
        let out = crate::xmlbody::render_delete(req.quiet, &kept);
        let stale: Vec<HeaderName> = headers
            .keys()
            .filter(|k| {
                let k = k.as_str();
                k == "content-md5" || k.starts_with("x-amz-checksum-") || k == "x-amz-sdk-checksum-algorithm"
            })
            .cloned()
            .collect();
        for k in stale {
            headers.remove(k);
        }
        {
            use base64::Engine as _;
            use md5::Digest as _;
            let md5 = base64::engine::general_purpose::STANDARD.encode(md5::Md5::digest(&out));
            headers.insert("content-md5", HeaderValue::from_str(&md5).expect("base64"));
        }
        let keys = kept.iter().map(|o| o.key.clone()).collect();
        Ok((out, keys, crate::xmlbody::delete_errors(&refused)))
    }
}
