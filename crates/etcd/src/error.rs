//! The errors of the etcd client. A transport failure (the request may not
//! have reached etcd, or its answer was lost) is distinct from an answer of
//! etcd (an error status) and from a transaction whose compare failed.

use std::time::Duration;

use crate::tls::TlsError;

/// Why an etcd request failed.
#[derive(Debug, thiserror::Error)]
pub enum EtcdError {
    /// An endpoint is not an `http://host:port` or `https://host:port` URL.
    #[error("etcd endpoint {endpoint:?} is not an http:// or https:// URL with a host and port")]
    Endpoint { endpoint: String },
    /// No endpoints were given.
    #[error("etcd: no endpoints")]
    NoEndpoints,
    /// The TLS files cannot be used.
    #[error("etcd TLS: {0}")]
    Tls(#[source] TlsError),
    /// The request did not get an answer from this endpoint.
    #[error("etcd {endpoint}: {source}")]
    Transport {
        endpoint: String,
        #[source]
        source: TransportError,
    },
    /// etcd answered with an error.
    #[error("etcd {endpoint}: {path}: {message} (grpc code {code}, http {http})")]
    Status { endpoint: String, path: &'static str, http: u16, code: i32, message: String },
    /// Every endpoint failed; the last failure is the source.
    #[error("etcd: none of {tried} endpoint(s) answered")]
    Unavailable {
        tried: usize,
        #[source]
        last: Box<EtcdError>,
    },
    /// An answer did not parse.
    #[error("etcd {endpoint}: {path}: the answer does not parse: {source}")]
    Decode {
        endpoint: String,
        path: &'static str,
        #[source]
        source: serde_json::Error,
    },
    /// Authentication was refused (the password is never shown).
    #[error("etcd: authentication as {user:?} failed: {message}")]
    Auth { user: String, message: String },
    /// A transaction's compare failed (another writer got there first, or
    /// the fence no longer holds).
    #[error("etcd: compare failed: {what}")]
    CompareFailed { what: String },
    /// A lease does not exist any more (expired or revoked).
    #[error("etcd: lease {id:x} expired or was revoked")]
    LeaseGone { id: i64 },
    /// etcd canceled a watch (for example its start revision was compacted).
    #[error("etcd: watch canceled: {reason}")]
    WatchCanceled { reason: String, compact_revision: i64 },
}

impl EtcdError {
    /// True when the request certainly did not reach etcd's state machine
    /// on this endpoint, so that another endpoint may be tried even for a
    /// write that is not idempotent.
    pub(crate) fn not_applied(&self) -> bool {
        match self {
            EtcdError::Transport { source, .. } => source.before_send(),
            EtcdError::Status { code, message, .. } => *code == 14 && message.contains("no leader"),
            _ => false,
        }
    }

    /// True when another endpoint may answer a read (or an idempotent write).
    pub(crate) fn try_elsewhere(&self) -> bool {
        match self {
            EtcdError::Transport { .. } => true,
            EtcdError::Status { code, http, .. } => matches!(code, 4 | 14) || *http >= 500 && *code == 0,
            _ => false,
        }
    }

    /// True when the error says that the request did not get through to
    /// etcd (any endpoint): connectivity, not a refusal.
    pub fn is_transport(&self) -> bool {
        match self {
            EtcdError::Transport { .. } => true,
            EtcdError::Unavailable { last, .. } => last.is_transport() || last.try_elsewhere(),
            _ => false,
        }
    }
}

/// Why a request got no answer from one endpoint.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// The TCP connection failed.
    #[error("connect: {0}")]
    Connect(#[source] std::io::Error),
    /// The TLS handshake failed.
    #[error("TLS handshake: {0}")]
    Handshake(#[source] std::io::Error),
    /// The host name is not valid for TLS.
    #[error("TLS server name {0:?} is not valid")]
    ServerName(String),
    /// The HTTP exchange failed (the request may have been sent).
    #[error("HTTP: {0}")]
    Http(#[source] hyper::Error),
    /// No answer within the request timeout (the request may have been sent).
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// Connecting took longer than the request timeout.
    #[error("connect: no connection within {0:?}")]
    ConnectTimeout(Duration),
}

impl TransportError {
    /// True when the request was certainly not sent.
    pub(crate) fn before_send(&self) -> bool {
        matches!(
            self,
            TransportError::Connect(_)
                | TransportError::Handshake(_)
                | TransportError::ServerName(_)
                | TransportError::ConnectTimeout(_)
        )
    }
}
