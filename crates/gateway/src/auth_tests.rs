use std::time::{Duration, UNIX_EPOCH};

use http::HeaderValue;

use super::*;

const SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";

fn keys() -> ClientKeys {
    ClientKeys::new([("AKIAIOSFODNN7EXAMPLE".to_string(), Secret::new(SECRET))])
}

fn doc_time() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_369_353_600)
}

fn doc_headers() -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert("host", HeaderValue::from_static("examplebucket.s3.amazonaws.com"));
    h.insert("range", HeaderValue::from_static("bytes=0-9"));
    h.insert("x-amz-content-sha256", HeaderValue::from_static(sigv4::EMPTY_SHA256));
    h.insert("x-amz-date", HeaderValue::from_static("20130524T000000Z"));
    h.insert(
        "authorization",
        HeaderValue::from_static(
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, \
             SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, \
             Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41",
        ),
    );
    h
}

#[test]
fn accepts_the_documented_get_object_request() {
    let v = verify(&keys(), "GET", "/test.txt", &[], &doc_headers(), doc_time()).unwrap();
    assert_eq!(v.access_key_id, "AKIAIOSFODNN7EXAMPLE");
    assert!(matches!(v.payload, Payload::Sha256(_)));
}

#[test]
fn refuses_tampering_unknown_keys_anonymity_and_skew() {
    let mut h = doc_headers();
    h.insert("range", HeaderValue::from_static("bytes=0-99"));
    assert_eq!(verify(&keys(), "GET", "/test.txt", &[], &h, doc_time()).unwrap_err(), AuthError::Mismatch);
    assert_eq!(verify(&keys(), "GET", "/other.txt", &[], &doc_headers(), doc_time()).unwrap_err(), AuthError::Mismatch);
    let other = ClientKeys::new([("SOMEONE".to_string(), Secret::new(SECRET))]);
    assert_eq!(verify(&other, "GET", "/test.txt", &[], &doc_headers(), doc_time()).unwrap_err(), AuthError::UnknownKey);
    let mut anon = doc_headers();
    anon.remove("authorization");
    assert_eq!(verify(&keys(), "GET", "/test.txt", &[], &anon, doc_time()).unwrap_err(), AuthError::Anonymous);
    let late = doc_time() + Duration::from_secs(3600);
    assert_eq!(verify(&keys(), "GET", "/test.txt", &[], &doc_headers(), late).unwrap_err(), AuthError::Skewed);
}

#[test]
fn accepts_a_presigned_url_until_it_expires() {
    let date = AmzDate::from_system_time(doc_time());
    let q = sigv4::presign_query(
        "GET",
        "examplebucket.s3.amazonaws.com",
        "/test.txt",
        "AKIAIOSFODNN7EXAMPLE",
        SECRET,
        None,
        "us-east-1",
        &date,
        Duration::from_secs(86_400),
    );
    let query = parse_query(&q);
    let mut h = HeaderMap::new();
    h.insert("host", HeaderValue::from_static("examplebucket.s3.amazonaws.com"));
    verify(&keys(), "GET", "/test.txt", &query, &h, doc_time() + Duration::from_secs(60)).unwrap();
    let e = verify(&keys(), "GET", "/test.txt", &query, &h, doc_time() + Duration::from_secs(90_000)).unwrap_err();
    assert_eq!(e, AuthError::Expired);
    assert_eq!(verify(&keys(), "PUT", "/test.txt", &query, &h, doc_time()).unwrap_err(), AuthError::Mismatch);
}

#[test]
fn decodes_queries_as_sigv4_does() {
    assert_eq!(
        parse_query("a=b%2Fc&uploads&x=1+2"),
        [("a".into(), "b/c".into()), ("uploads".into(), String::new()), ("x".into(), "1+2".into())]
    );
    assert_eq!(percent_decode("%E2%9C%93%zz"), "✓%zz");
}
