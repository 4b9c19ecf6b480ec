//! The `x-amz-*` header names the gateway reads or writes, parsed once.
//!
//! A `HeaderMap` lookup by `&str` parses the name first (about 300
//! instructions for a custom name); by a `HeaderName` it only hashes it.

use http::HeaderName;

pub(crate) const X_AMZ_DATE: HeaderName = HeaderName::from_static("x-amz-date");
pub(crate) const X_AMZ_CONTENT_SHA256: HeaderName = HeaderName::from_static("x-amz-content-sha256");
pub(crate) const X_AMZ_SECURITY_TOKEN: HeaderName = HeaderName::from_static("x-amz-security-token");
pub(crate) const X_AMZ_DECODED_CONTENT_LENGTH: HeaderName = HeaderName::from_static("x-amz-decoded-content-length");
pub(crate) const X_AMZ_TRAILER: HeaderName = HeaderName::from_static("x-amz-trailer");
pub(crate) const X_AMZ_COPY_SOURCE: HeaderName = HeaderName::from_static("x-amz-copy-source");
