//! The typed result of one S3 operation, as probes and checks see it.

use std::fmt;

use serde::{Serialize, Serializer};

/// What happened to one S3 request. Transport failures and S3 answers are kept
/// apart: an unreachable backend is never reported as "not found".
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// The operation succeeded.
    Ok,
    /// No complete answer within the timeout (a hung or blackholed server).
    Timeout,
    /// The TCP connection was refused (nothing listens: a crashed server).
    ConnectRefused,
    /// The connection was reset or closed before a complete answer.
    ConnectionReset,
    /// The host name did not resolve.
    Dns,
    /// The TLS handshake failed (certificate, protocol).
    Tls,
    /// The backend rejected the request signature (wrong secret key).
    SignatureDoesNotMatch,
    /// The credentials are valid but not allowed to do this.
    AccessDenied,
    /// The backend does not know the access key id.
    InvalidAccessKeyId,
    /// The configured bucket does not exist.
    NoSuchBucket,
    /// The object does not exist.
    NoSuchKey,
    /// The backend asks to slow down (503 SlowDown).
    SlowDown,
    /// Another HTTP status, with the S3 error code when the body had one.
    Status(u16, Option<String>),
    /// The data read back differs from the data written.
    ChecksumMismatch,
    /// The answer was not what the S3 protocol says (bad XML, missing header).
    Protocol(String),
    /// Another transport error.
    Io(String),
}

impl Outcome {
    pub fn is_ok(&self) -> bool {
        matches!(self, Outcome::Ok)
    }

    /// Maps an S3 error answer (HTTP status, `<Code>` and `<Message>` of the
    /// error body) to an outcome. Vendors spell some answers differently:
    /// Garage says `AccessDenied` "Forbidden: Invalid signature" for a wrong
    /// secret and "Forbidden: No such key" for an unknown key id; s3s says
    /// `NotSignedUp` for an unknown key id.
    pub fn from_s3_error(status: u16, code: Option<&str>, message: &str) -> Self {
        let message = message.to_ascii_lowercase();
        match code {
            Some("AccessDenied") if message.contains("invalid signature") => Outcome::SignatureDoesNotMatch,
            Some("AccessDenied") if message.contains("no such key") => Outcome::InvalidAccessKeyId,
            Some("NotSignedUp") => Outcome::InvalidAccessKeyId,
            Some("SignatureDoesNotMatch") => Outcome::SignatureDoesNotMatch,
            Some("AccessDenied") => Outcome::AccessDenied,
            Some("InvalidAccessKeyId") => Outcome::InvalidAccessKeyId,
            Some("NoSuchBucket") => Outcome::NoSuchBucket,
            Some("NoSuchKey") => Outcome::NoSuchKey,
            Some("SlowDown") => Outcome::SlowDown,
            Some(other) => Outcome::Status(status, Some(other.to_string())),
            None => match status {
                403 => Outcome::AccessDenied,
                404 => Outcome::NoSuchKey,
                503 => Outcome::Status(503, None),
                _ => Outcome::Status(status, None),
            },
        }
    }

    /// True for outcomes that say the backend could not be reached or did not
    /// answer, as opposed to an S3 answer.
    pub fn is_transport(&self) -> bool {
        matches!(
            self,
            Outcome::Timeout
                | Outcome::ConnectRefused
                | Outcome::ConnectionReset
                | Outcome::Dns
                | Outcome::Tls
                | Outcome::Io(_)
        )
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Ok => f.write_str("Ok"),
            Outcome::Timeout => f.write_str("Timeout"),
            Outcome::ConnectRefused => f.write_str("ConnectRefused"),
            Outcome::ConnectionReset => f.write_str("ConnectionReset"),
            Outcome::Dns => f.write_str("Dns"),
            Outcome::Tls => f.write_str("Tls"),
            Outcome::SignatureDoesNotMatch => f.write_str("SignatureDoesNotMatch"),
            Outcome::AccessDenied => f.write_str("AccessDenied"),
            Outcome::InvalidAccessKeyId => f.write_str("InvalidAccessKeyId"),
            Outcome::NoSuchBucket => f.write_str("NoSuchBucket"),
            Outcome::NoSuchKey => f.write_str("NoSuchKey"),
            Outcome::SlowDown => f.write_str("SlowDown"),
            Outcome::Status(code, Some(s3)) => write!(f, "Status({code}, {s3})"),
            Outcome::Status(code, None) => write!(f, "Status({code})"),
            Outcome::ChecksumMismatch => f.write_str("ChecksumMismatch"),
            Outcome::Protocol(_) => f.write_str("Protocol"),
            Outcome::Io(_) => f.write_str("Io"),
        }
    }
}

impl Serialize for Outcome {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_s3_codes_and_bare_statuses() {
        assert_eq!(Outcome::from_s3_error(403, Some("SignatureDoesNotMatch"), ""), Outcome::SignatureDoesNotMatch);
        assert_eq!(Outcome::from_s3_error(404, Some("NoSuchBucket"), ""), Outcome::NoSuchBucket);
        assert_eq!(Outcome::from_s3_error(503, Some("SlowDown"), ""), Outcome::SlowDown);
        assert_eq!(Outcome::from_s3_error(403, None, ""), Outcome::AccessDenied);
        assert_eq!(
            Outcome::from_s3_error(500, Some("InternalError"), "oops"),
            Outcome::Status(500, Some("InternalError".into()))
        );
        assert_eq!(Outcome::Status(500, Some("InternalError".into())).to_string(), "Status(500, InternalError)");
    }

    #[test]
    fn maps_vendor_spellings_of_credential_errors() {
        let garage_sig = Outcome::from_s3_error(403, Some("AccessDenied"), "Forbidden: Invalid signature");
        assert_eq!(garage_sig, Outcome::SignatureDoesNotMatch);
        let garage_key = Outcome::from_s3_error(403, Some("AccessDenied"), "Forbidden: No such key: GK1");
        assert_eq!(garage_key, Outcome::InvalidAccessKeyId);
        assert_eq!(Outcome::from_s3_error(403, Some("NotSignedUp"), ""), Outcome::InvalidAccessKeyId);
        assert_eq!(Outcome::from_s3_error(403, Some("AccessDenied"), "Access Denied"), Outcome::AccessDenied);
    }

    #[test]
    fn transport_failures_are_not_answers() {
        assert!(Outcome::ConnectRefused.is_transport());
        assert!(Outcome::Timeout.is_transport());
        assert!(!Outcome::NoSuchKey.is_transport());
        assert_eq!(serde_json::to_string(&Outcome::Timeout).unwrap(), "\"Timeout\"");
    }
}
