//! S3 error answers and the few XML documents the gateway writes itself.

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode};

use crate::body::{Body, full};

/// Escapes text for an XML element (the one escaper of the workspace).
pub use cutover_s3::xml::escape;

/// An S3 error answer: `<Error><Code>..</Code><Message>..</Message>..`.
pub fn error(status: StatusCode, code: &str, message: &str, resource: &str) -> Response<Body> {
    let text = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{}</Code><Message>{}</Message><Resource>{}</Resource><RequestId>{:016x}</RequestId></Error>",
        escape(code),
        escape(message),
        escape(resource),
        fastrand::u64(..)
    );
    let mut resp = Response::new(full(Bytes::from(text)));
    *resp.status_mut() = status;
    resp.headers_mut().insert(http::header::CONTENT_TYPE, HeaderValue::from_static("application/xml"));
    if status == StatusCode::SERVICE_UNAVAILABLE {
        // Retryable: SDKs back off and retry; the next attempt may reach
        // the other backend once the switch is made.
        resp.headers_mut().insert(http::header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    resp
}

/// The ListBuckets answer naming the gateway's own buckets.
pub fn list_buckets(names: &[&str]) -> Bytes {
    let mut out = String::from(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<ListAllMyBucketsResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Owner><ID>cutover</ID><DisplayName>cutover</DisplayName></Owner><Buckets>",
    );
    for n in names {
        out.push_str(&format!(
            "<Bucket><Name>{}</Name><CreationDate>2000-01-01T00:00:00.000Z</CreationDate></Bucket>",
            escape(n)
        ));
    }
    out.push_str("</Buckets></ListAllMyBucketsResult>");
    Bytes::from(out)
}

/// Replaces the backend's bucket name by the client's in the `<Name>` and
/// `<Bucket>` elements of a listing or multipart answer.
pub fn rename_bucket(body: &[u8], backend_bucket: &str, client_bucket: &str) -> Bytes {
    let Ok(text) = std::str::from_utf8(body) else { return Bytes::copy_from_slice(body) };
    let (b, c) = (escape(backend_bucket), escape(client_bucket));
    let text = text
        .replace(&format!("<Name>{b}</Name>"), &format!("<Name>{c}</Name>"))
        .replace(&format!("<Bucket>{b}</Bucket>"), &format!("<Bucket>{c}</Bucket>"));
    Bytes::from(text)
}

/// The `<Code>` of an error document, if the body is one (S3 may answer a
/// CompleteMultipartUpload with 200 and an error body).
pub fn error_code(body: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(body).ok()?;
    if !text.contains("<Error>") {
        return None;
    }
    let i = text.find("<Code>")? + 6;
    let j = text[i..].find("</Code>")? + i;
    Some(text[i..j].to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renames_buckets_and_reads_keys() {
        let b = rename_bucket(b"<R><Name>back</Name><Bucket>back</Bucket><Key>back</Key></R>", "back", "app");
        assert_eq!(&b[..], b"<R><Name>app</Name><Bucket>app</Bucket><Key>back</Key></R>");
        assert_eq!(error_code(b"<Error><Code>InternalError</Code></Error>").as_deref(), Some("InternalError"));
        assert_eq!(error_code(b"<CompleteMultipartUploadResult/>"), None);
    }
}
