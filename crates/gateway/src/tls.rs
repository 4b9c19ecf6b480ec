//! The optional TLS listener: the certificate chain and key loaded (and
//! checked against each other) once when the gateway is built, and the
//! handshake run on each connection's own task, under a deadline.
//!
//! rustls with the ring provider (as the S3 client uses), TLS 1.3 and 1.2,
//! ALPN `http/1.1`. Error messages name the file and what is wrong with it,
//! never its content.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use cutover_core::config::GatewayTls;
use rustls::ServerConfig;
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

use crate::error::GatewayError;
use crate::metrics::Metrics;

/// The configuration keys, as errors name them.
const CERT_KEY: &str = "tls_cert_file";
const KEY_KEY: &str = "tls_key_file";

/// A TLS acceptor and its handshake deadline.
#[derive(Clone)]
pub(crate) struct Tls {
    acceptor: TlsAcceptor,
    timeout: Duration,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls").field("timeout", &self.timeout).finish_non_exhaustive()
    }
}

impl Tls {
    pub(crate) fn new(files: &GatewayTls, timeout: Duration) -> Result<Self, GatewayError> {
        Ok(Self { acceptor: TlsAcceptor::from(Arc::new(server_config(files)?)), timeout })
    }

    /// Runs the handshake on `stream`. A failure or a client slower than the
    /// deadline is counted, logged at debug and ends the connection (`None`).
    /// A connection closed before its first byte (a TCP health check, a port
    /// probe) is no handshake and is not counted.
    pub(crate) async fn accept(&self, stream: TcpStream, metrics: &Metrics) -> Option<TlsStream<TcpStream>> {
        let peer = stream.peer_addr().ok();
        let handshake = async {
            if stream.peek(&mut [0u8; 1]).await? == 0 {
                return Ok(None);
            }
            self.acceptor.accept(stream).await.map(Some)
        };
        let error = match tokio::time::timeout(self.timeout, handshake).await {
            Ok(Ok(s)) => return s,
            Ok(Err(e)) => e.to_string(),
            Err(_) => format!("no handshake within {:?}", self.timeout),
        };
        metrics.tls_handshake_failures.inc();
        tracing::debug!(?peer, %error, "TLS handshake failed");
        None
    }
}

/// Reads and checks the certificate chain and key of `files`: the same check
/// `cutover config check` runs. The error names the key and the file.
pub fn check(files: &GatewayTls) -> Result<(), GatewayError> {
    server_config(files).map(drop)
}

fn server_config(files: &GatewayTls) -> Result<ServerConfig, GatewayError> {
    let err = |key: &'static str, path: &Path, detail: String| GatewayError::Tls {
        key,
        path: path.display().to_string(),
        detail,
    };
    let (cert_file, key_file) = (files.cert_file.as_path(), files.key_file.as_path());
    let certs = CertificateDer::pem_file_iter(cert_file)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| err(CERT_KEY, cert_file, pem_problem(&e)))?;
    if certs.is_empty() {
        return Err(err(CERT_KEY, cert_file, "no certificate in it (a PEM block BEGIN CERTIFICATE)".into()));
    }
    let key = PrivateKeyDer::from_pem_file(key_file).map_err(|e| match e {
        pem::Error::NoItemsFound => err(
            KEY_KEY,
            key_file,
            "no private key in it (a PEM block BEGIN PRIVATE KEY, BEGIN RSA PRIVATE KEY or BEGIN EC PRIVATE KEY)"
                .into(),
        ),
        e => err(KEY_KEY, key_file, pem_problem(&e)),
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| GatewayError::Config { detail: format!("TLS: {e}") })?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| match e {
            rustls::Error::InconsistentKeys(_) => err(
                KEY_KEY,
                key_file,
                format!("the private key does not match the certificate in {}", cert_file.display()),
            ),
            e @ (rustls::Error::InvalidCertificate(_) | rustls::Error::NoCertificatesPresented) => {
                err(CERT_KEY, cert_file, format!("the first certificate is not usable: {e}"))
            }
            // rustls's messages here name the failure (e.g. an unsupported
            // key type), never key material.
            e => err(KEY_KEY, key_file, format!("the private key is not usable: {e}")),
        })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// What is wrong with a PEM file, without quoting any of it.
fn pem_problem(e: &pem::Error) -> String {
    match e {
        pem::Error::Io(e) => format!("cannot be read: {e}"),
        pem::Error::NoItemsFound => "nothing usable in it".into(),
        pem::Error::MissingSectionEnd { .. } => "not valid PEM: a block has no END line".into(),
        pem::Error::IllegalSectionStart { .. } => "not valid PEM: a malformed BEGIN line".into(),
        pem::Error::Base64Decode(_) => "not valid PEM: a block is not valid base64".into(),
        pem::Error::SectionTooLarge => "not valid PEM: a block is larger than 256 MB".into(),
        _ => "not valid PEM".into(),
    }
}

#[cfg(test)]
#[path = "tls_tests.rs"]
mod tests;
