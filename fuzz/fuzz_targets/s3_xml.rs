//! The S3 XML bodies cutover reads: in the gateway (crates/gateway/src/s3xml.rs)
//! the keys of a DeleteObjects request (journaled for the failback), the
//! `<Code>` of an error document answered with 200 (a failed copy or
//! CompleteMultipartUpload), the bucket renaming of listings; in the S3
//! client (crates/s3/src/xml.rs) error bodies and the listing, ListBuckets
//! and multipart answers.
//!
//! Input: any bytes, parsed by every reader. Then, read as NUL-separated
//! strings, they become object keys, ETags and error codes of documents
//! written the way S3 and its clients write them, which must read back to
//! the same values.
#![no_main]

use cutover_gateway::fuzzing::{delete_keys, error_code, escape, rename_bucket};
use cutover_s3::xml::{
    CompleteMultipartUploadResult, InitiateMultipartUploadResult, ListAllMyBucketsResult, ListBucketResult,
    complete_multipart_body, parse_error,
};
use libfuzzer_sys::fuzz_target;
use serde::Deserialize;

/// The body of CompleteMultipartUpload as the S3 client writes it, read back.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct CompleteMultipartUpload {
    #[serde(default)]
    part: Vec<Part>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Part {
    part_number: u32,
    #[serde(rename = "ETag")]
    etag: String,
}

/// Text an XML 1.0 document can carry as element content and give back
/// unchanged: XML characters but carriage return (parsers normalise line
/// ends; S3 writes it `&#13;`).
fn xml_text(s: &str) -> bool {
    !s.is_empty()
        && s.chars().all(|c| matches!(c, '\t' | '\n' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..))
}

fuzz_target!(|data: &[u8]| {
    // Every reader, on anything.
    let _ = delete_keys(data);
    let _ = error_code(data);
    let _ = rename_bucket(data, "backend-bucket", "app");
    let _ = parse_error(data);
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = quick_xml::de::from_str::<ListBucketResult>(text);
        let _ = quick_xml::de::from_str::<ListAllMyBucketsResult>(text);
        let _ = quick_xml::de::from_str::<InitiateMultipartUploadResult>(text);
        let _ = quick_xml::de::from_str::<CompleteMultipartUploadResult>(text);
    }

    // Documents written with the input's strings read back to them.
    let Ok(text) = std::str::from_utf8(data) else { return };
    let strings: Vec<&str> = text.split('\0').filter(|s| xml_text(s)).take(16).collect();
    if strings.is_empty() {
        return;
    }

    // DeleteObjects, as the SDKs write it.
    let mut body = String::from(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Delete xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">",
    );
    for k in &strings {
        body.push_str(&format!("<Object><Key>{}</Key></Object>", escape(k)));
    }
    body.push_str("<Quiet>true</Quiet></Delete>");
    assert_eq!(delete_keys(body.as_bytes()), strings, "DeleteObjects keys");

    // A listing page with those keys.
    let mut page = String::from(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><ListBucketResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Name>b</Name><IsTruncated>false</IsTruncated>",
    );
    for (i, k) in strings.iter().enumerate() {
        page.push_str(&format!(
            "<Contents><Key>{}</Key><Size>{i}</Size><ETag>&quot;{i:032x}&quot;</ETag></Contents>",
            escape(k)
        ));
    }
    page.push_str("</ListBucketResult>");
    let listed: ListBucketResult = quick_xml::de::from_str(&page).expect("a listing page reads");
    let keys: Vec<&str> = listed.contents.iter().map(|c| c.key.as_str()).collect();
    assert_eq!(keys, strings, "listed keys");

    // CompleteMultipartUpload with those ETags.
    let parts: Vec<(u32, String)> = strings.iter().enumerate().map(|(i, e)| (i as u32 + 1, e.to_string())).collect();
    let complete = complete_multipart_body(&parts);
    let read: CompleteMultipartUpload = quick_xml::de::from_str(&complete).expect("CompleteMultipartUpload reads");
    let etags: Vec<&str> = read.part.iter().map(|p| p.etag.as_str()).collect();
    assert_eq!(etags, strings, "CompleteMultipartUpload ETags");
    assert!(read.part.iter().enumerate().all(|(i, p)| p.part_number as usize == i + 1), "part numbers");

    // Error documents: the code comes back (codes are S3 identifiers).
    let code: String = strings[0].chars().filter(char::is_ascii_alphanumeric).collect();
    if !code.is_empty() {
        let message = strings.get(1).copied().unwrap_or("m");
        let doc = format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code><Message>{}</Message><Resource>/b/k</Resource></Error>",
            escape(message)
        );
        assert_eq!(error_code(doc.as_bytes()).as_deref(), Some(code.as_str()), "error_code");
        let parsed = parse_error(doc.as_bytes());
        assert_eq!(parsed.code.as_deref(), Some(code.as_str()), "parse_error code");
        assert_eq!(parsed.message.as_deref(), Some(message), "parse_error message");
    }
});
