//! Which bucket, key and S3 operation a client request addresses.

use http::{HeaderMap, Method};

use crate::auth::percent_decode;

/// The S3 operations the gateway distinguishes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum S3Op {
    ListBuckets,
    ListObjectsV2,
    ListObjects,
    ListMultipartUploads,
    /// `GET /bucket?versions`.
    ListObjectVersions,
    HeadBucket,
    /// Other bucket-level reads (`?location`, `?versioning`, ...), sent to the active backend.
    BucketRead,
    GetObject,
    HeadObject,
    PutObject,
    CopyObject,
    DeleteObject,
    DeleteObjects,
    CreateMultipartUpload,
    UploadPart,
    UploadPartCopy,
    CompleteMultipartUpload,
    AbortMultipartUpload,
    ListParts,
    /// Object sub-resources (`?tagging`, `?acl`, ...), sent to the active backend.
    ObjectOther,
    /// Bucket creation, deletion or configuration: not the gateway's business.
    Unsupported,
}

impl S3Op {
    /// How many operations there are (`Unsupported` is the last).
    pub const COUNT: usize = S3Op::Unsupported as usize + 1;

    pub fn name(self) -> &'static str {
        match self {
            S3Op::ListBuckets => "ListBuckets",
            S3Op::ListObjectsV2 => "ListObjectsV2",
            S3Op::ListObjects => "ListObjects",
            S3Op::ListMultipartUploads => "ListMultipartUploads",
            S3Op::ListObjectVersions => "ListObjectVersions",
            S3Op::HeadBucket => "HeadBucket",
            S3Op::BucketRead => "BucketRead",
            S3Op::GetObject => "GetObject",
            S3Op::HeadObject => "HeadObject",
            S3Op::PutObject => "PutObject",
            S3Op::CopyObject => "CopyObject",
            S3Op::DeleteObject => "DeleteObject",
            S3Op::DeleteObjects => "DeleteObjects",
            S3Op::CreateMultipartUpload => "CreateMultipartUpload",
            S3Op::UploadPart => "UploadPart",
            S3Op::UploadPartCopy => "UploadPartCopy",
            S3Op::CompleteMultipartUpload => "CompleteMultipartUpload",
            S3Op::AbortMultipartUpload => "AbortMultipartUpload",
            S3Op::ListParts => "ListParts",
            S3Op::ObjectOther => "ObjectOther",
            S3Op::Unsupported => "Unsupported",
        }
    }

    /// Listings: answers that name keys, from which the probe prefix is dropped.
    pub fn lists_keys(self) -> bool {
        matches!(self, S3Op::ListObjectsV2 | S3Op::ListObjects | S3Op::ListMultipartUploads | S3Op::ListObjectVersions)
    }

    /// A write of an object's sub-resource (tagging, ACL, retention, legal
    /// hold): PUT or DELETE `?tagging`, `?acl`, `?retention`, `?legal-hold`.
    pub fn is_subresource_write(self, method: &Method) -> bool {
        self == S3Op::ObjectOther && matches!(*method, Method::PUT | Method::DELETE)
    }

    /// Answers whose bucket name must be rewritten (small XML documents).
    pub fn names_bucket(self) -> bool {
        matches!(
            self,
            S3Op::ListObjectsV2
                | S3Op::ListObjects
                | S3Op::ListMultipartUploads
                | S3Op::ListObjectVersions
                | S3Op::CreateMultipartUpload
                | S3Op::CompleteMultipartUpload
                | S3Op::ListParts
        )
    }
}

/// Bucket and key of a request, path-style or virtual-hosted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub bucket: Option<String>,
    /// Decoded key.
    pub key: Option<String>,
}

/// Finds bucket and key. A Host whose first label is one of `buckets` (and
/// that is not an IP address) is virtual-hosted style; otherwise the first
/// path segment is the bucket.
pub fn target(headers: &HeaderMap, raw_path: &str, buckets: &[String]) -> Target {
    let host = headers.get(http::header::HOST).and_then(|v| v.to_str().ok()).unwrap_or("");
    let hostname = if host.starts_with('[') { host } else { host.rsplit_once(':').map(|(h, _)| h).unwrap_or(host) };
    let path = raw_path.strip_prefix('/').unwrap_or(raw_path);
    // An address is never virtual-hosted (asked last: parsing it costs more
    // than the rest).
    let is_ip = || hostname.starts_with('[') || hostname.parse::<std::net::IpAddr>().is_ok();
    if let Some((first, rest)) = hostname.split_once('.')
        && !rest.is_empty()
        && buckets.iter().any(|b| b == first)
        && !is_ip()
    {
        let key = (!path.is_empty()).then(|| percent_decode(path));
        return Target { bucket: Some(first.to_string()), key };
    }
    if path.is_empty() {
        return Target { bucket: None, key: None };
    }
    match path.split_once('/') {
        None => Target { bucket: Some(percent_decode(path)), key: None },
        Some((b, k)) => Target { bucket: Some(percent_decode(b)), key: (!k.is_empty()).then(|| percent_decode(k)) },
    }
}

/// Classifies a request.
pub fn operation<Q: AsRef<str>>(method: &Method, target: &Target, query: &[(Q, Q)], headers: &HeaderMap) -> S3Op {
    let has = |name: &str| query.iter().any(|(k, _)| k.as_ref() == name);
    let copy = headers.contains_key(crate::amz::X_AMZ_COPY_SOURCE);
    match (&target.bucket, &target.key) {
        (None, _) if *method == Method::GET => S3Op::ListBuckets,
        (None, _) => S3Op::Unsupported,
        (Some(_), None) => match *method {
            Method::GET if has("list-type") => S3Op::ListObjectsV2,
            Method::GET if has("uploads") => S3Op::ListMultipartUploads,
            Method::GET if has("versions") => S3Op::ListObjectVersions,
            Method::GET if query.iter().all(|(k, _)| is_list_param(k.as_ref())) => S3Op::ListObjects,
            Method::GET => S3Op::BucketRead,
            Method::HEAD => S3Op::HeadBucket,
            Method::POST if has("delete") => S3Op::DeleteObjects,
            _ => S3Op::Unsupported,
        },
        (Some(_), Some(_)) => {
            let sub = query.iter().any(|(k, _)| is_subresource(k.as_ref()));
            match *method {
                Method::GET if has("uploadId") => S3Op::ListParts,
                Method::GET if sub => S3Op::ObjectOther,
                Method::GET => S3Op::GetObject,
                Method::HEAD => S3Op::HeadObject,
                Method::PUT if has("uploadId") && copy => S3Op::UploadPartCopy,
                Method::PUT if has("uploadId") => S3Op::UploadPart,
                Method::PUT if sub => S3Op::ObjectOther,
                Method::PUT if copy => S3Op::CopyObject,
                Method::PUT => S3Op::PutObject,
                Method::DELETE if has("uploadId") => S3Op::AbortMultipartUpload,
                Method::DELETE if sub => S3Op::ObjectOther,
                Method::DELETE => S3Op::DeleteObject,
                Method::POST if has("uploads") => S3Op::CreateMultipartUpload,
                Method::POST if has("uploadId") => S3Op::CompleteMultipartUpload,
                _ => S3Op::ObjectOther,
            }
        }
    }
}

fn is_list_param(k: &str) -> bool {
    matches!(k, "prefix" | "delimiter" | "marker" | "max-keys" | "encoding-type" | "x-id") || k.starts_with("X-Amz-")
}

fn is_subresource(k: &str) -> bool {
    matches!(k, "tagging" | "acl" | "retention" | "legal-hold" | "attributes" | "torrent" | "restore" | "select")
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    fn hdrs(host: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("host", HeaderValue::from_str(host).unwrap());
        h
    }

    #[test]
    fn finds_bucket_and_key_in_both_styles() {
        let b = vec!["app".to_string()];
        let t = target(&hdrs("127.0.0.1:9000"), "/app/a%20b/c", &b);
        assert_eq!((t.bucket.as_deref(), t.key.as_deref()), (Some("app"), Some("a b/c")));
        let t = target(&hdrs("app.s3.local:9000"), "/a%20b", &b);
        assert_eq!((t.bucket.as_deref(), t.key.as_deref()), (Some("app"), Some("a b")));
        let t = target(&hdrs("localhost:9000"), "/", &b);
        assert_eq!(t, Target { bucket: None, key: None });
        let t = target(&hdrs("other.s3.local"), "/app", &b);
        assert_eq!((t.bucket.as_deref(), t.key), (Some("app"), None));
        // A bucket named as an address's first label: the address is not
        // a virtual host.
        let b = vec!["127".to_string(), "app".to_string()];
        let t = target(&hdrs("127.0.0.1:9000"), "/app/k", &b);
        assert_eq!((t.bucket.as_deref(), t.key.as_deref()), (Some("app"), Some("k")));
        let t = target(&hdrs("127.s3.local"), "/k", &b);
        assert_eq!((t.bucket.as_deref(), t.key.as_deref()), (Some("127"), Some("k")));
    }

    #[test]
    fn classifies_operations() {
        let t = Target { bucket: Some("b".into()), key: Some("k".into()) };
        let q = |s: &[&str]| s.iter().map(|k| (k.to_string(), String::new())).collect::<Vec<_>>();
        let h = HeaderMap::new();
        assert_eq!(operation(&Method::PUT, &t, &q(&["partNumber", "uploadId"]), &h), S3Op::UploadPart);
        assert_eq!(operation(&Method::POST, &t, &q(&["uploads"]), &h), S3Op::CreateMultipartUpload);
        assert_eq!(operation(&Method::GET, &t, &q(&[]), &h), S3Op::GetObject);
        let mut c = HeaderMap::new();
        c.insert("x-amz-copy-source", HeaderValue::from_static("/b/x"));
        assert_eq!(operation(&Method::PUT, &t, &q(&[]), &c), S3Op::CopyObject);
        let bucket = Target { bucket: Some("b".into()), key: None };
        assert_eq!(operation(&Method::GET, &bucket, &q(&["list-type", "prefix"]), &h), S3Op::ListObjectsV2);
        assert_eq!(operation(&Method::GET, &bucket, &q(&["prefix"]), &h), S3Op::ListObjects);
        assert_eq!(operation(&Method::GET, &bucket, &q(&["versions", "prefix"]), &h), S3Op::ListObjectVersions);
        assert_eq!(operation(&Method::POST, &bucket, &q(&["delete"]), &h), S3Op::DeleteObjects);
        assert_eq!(operation(&Method::PUT, &bucket, &q(&[]), &h), S3Op::Unsupported);
    }
}
