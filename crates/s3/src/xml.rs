//! The S3 XML documents the client reads and writes.

use serde::Deserialize;

/// `<Error><Code>..</Code><Message>..</Message></Error>`
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ErrorBody {
    pub code: Option<String>,
    pub message: Option<String>,
}

/// Reads the code and message of an S3 error body, if it is one.
pub fn parse_error(body: &[u8]) -> ErrorBody {
    std::str::from_utf8(body).ok().and_then(|s| quick_xml::de::from_str::<ErrorBody>(s).ok()).unwrap_or_default()
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListBucketResult {
    #[serde(default)]
    pub contents: Vec<Contents>,
    #[serde(default)]
    pub is_truncated: bool,
    pub next_continuation_token: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Contents {
    pub key: String,
    pub size: u64,
    #[serde(rename = "ETag")]
    pub etag: Option<String>,
    pub last_modified: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListAllMyBucketsResult {
    pub buckets: Option<Buckets>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Buckets {
    #[serde(default)]
    pub bucket: Vec<BucketEntry>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct BucketEntry {
    pub name: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct InitiateMultipartUploadResult {
    pub upload_id: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CompleteMultipartUploadResult {
    #[serde(rename = "ETag")]
    pub etag: Option<String>,
}

/// Escapes text for an XML element.
pub fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;").replace('\'', "&apos;")
}

/// The body of CompleteMultipartUpload for `(part number, ETag)` pairs.
pub fn complete_multipart_body(parts: &[(u32, String)]) -> String {
    let mut out = String::from("<CompleteMultipartUpload>");
    for (n, etag) in parts {
        out.push_str(&format!("<Part><PartNumber>{n}</PartNumber><ETag>{}</ETag></Part>", escape(etag)));
    }
    out.push_str("</CompleteMultipartUpload>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_error_codes() {
        let e = parse_error(b"<?xml version=\"1.0\"?><Error><Code>NoSuchBucket</Code><Message>gone &amp; lost</Message><Resource>/x</Resource></Error>");
        assert_eq!(e.code.as_deref(), Some("NoSuchBucket"));
        assert_eq!(e.message.as_deref(), Some("gone & lost"));
        assert!(parse_error(b"not xml").code.is_none());
    }

    #[test]
    fn reads_list_pages() {
        let xml = r#"<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Name>b</Name><IsTruncated>true</IsTruncated>
            <Contents><Key>a&amp;b</Key><Size>3</Size><ETag>"x"</ETag></Contents><Contents><Key>c</Key><Size>0</Size></Contents>
            <NextContinuationToken>tok</NextContinuationToken></ListBucketResult>"#;
        let r: ListBucketResult = quick_xml::de::from_str(xml).unwrap();
        assert_eq!(r.contents.len(), 2);
        assert_eq!(r.contents[0].key, "a&b");
        assert!(r.is_truncated);
        assert_eq!(r.next_continuation_token.as_deref(), Some("tok"));
    }
}
