//! The TLS client configuration for `https://` etcd endpoints: rustls with
//! the ring provider, trusting the webpki roots plus the certificates of
//! `ca_file` (as the S3 client does), and presenting `cert_file`/`key_file`
//! as a client certificate when both are given.
//!
//! # Guarantees
//! Errors name the file and what is wrong with it, never its content.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::ClientConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// The files of `[ha]`'s TLS settings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsFiles {
    /// Extra CA certificates (PEM) trusted for the etcd servers.
    pub ca_file: Option<PathBuf>,
    /// The client certificate chain (PEM), with `key_file`.
    pub cert_file: Option<PathBuf>,
    /// The client certificate's private key (PEM).
    pub key_file: Option<PathBuf>,
}

/// Why the TLS files cannot be used. Every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The file cannot be read or is not PEM.
    #[error("{path}: cannot be read as PEM: {source}")]
    Read {
        path: String,
        #[source]
        source: rustls::pki_types::pem::Error,
    },
    /// The file holds no certificate.
    #[error("{path}: no certificate in it (a PEM block BEGIN CERTIFICATE)")]
    NoCertificate { path: String },
    /// A CA certificate cannot be a trust anchor.
    #[error("{path}: certificate {index} is not usable as a CA: {source}")]
    BadCa {
        path: String,
        index: usize,
        #[source]
        source: rustls::Error,
    },
    /// Only one of `cert_file` and `key_file` is given.
    #[error("cert_file and key_file go together: only one is set")]
    HalfClientCert,
    /// The client certificate and key do not go together.
    #[error("{cert} with {key}: {source}")]
    ClientCert {
        cert: String,
        key: String,
        #[source]
        source: rustls::Error,
    },
}

impl TlsFiles {
    /// The client configuration for these files.
    pub fn client_config(&self) -> Result<Arc<ClientConfig>, TlsError> {
        let mut roots = rustls::RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() };
        if let Some(ca) = &self.ca_file {
            for (i, cert) in certs(ca)?.into_iter().enumerate() {
                roots.add(cert).map_err(|source| TlsError::BadCa { path: shown(ca), index: i + 1, source })?;
            }
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("ring supports the default protocol versions")
            .with_root_certificates(roots);
        let config = match (&self.cert_file, &self.key_file) {
            (None, None) => builder.with_no_client_auth(),
            (Some(cert), Some(key)) => {
                let chain = certs(cert)?;
                let der =
                    PrivateKeyDer::from_pem_file(key).map_err(|source| TlsError::Read { path: shown(key), source })?;
                builder.with_client_auth_cert(chain, der).map_err(|source| TlsError::ClientCert {
                    cert: shown(cert),
                    key: shown(key),
                    source,
                })?
            }
            _ => return Err(TlsError::HalfClientCert),
        };
        Ok(Arc::new(config))
    }
}

fn shown(p: &Path) -> String {
    p.display().to_string()
}

fn certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|source| TlsError::Read { path: shown(path), source })?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate { path: shown(path) });
    }
    Ok(certs)
}
