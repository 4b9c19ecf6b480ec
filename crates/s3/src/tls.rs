//! The TLS client configuration every outgoing connection of cutover uses
//! (S3 backends, the Prometheus and status-page signals, the `http`,
//! `notify` and `terraform_cloud.run` steps): rustls with the ring provider,
//! trusting the webpki roots (Mozilla's list) and, when a `ca_file` is
//! given, the certificates in that PEM file **in addition**. A private CA
//! (an on-premises MinIO or Ceph RGW) then works without losing the public
//! roots that a webhook to a SaaS service needs.
//!
//! # Guarantees
//! - One function, [`client_config`], builds every client configuration.
//! - Errors name the file and what is wrong with it, never its content.
//! - A file that cannot be read, is not PEM, holds no certificate or holds a
//!   certificate rustls cannot use as a trust anchor is an error: never a
//!   silent fallback to the public roots.
//!
//! # Caveats
//! - The file is read again when its modification time or size changes (a
//!   rotated bundle is picked up by the next new connection); until then
//!   the parsed configuration is cached per path.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::SystemTime;

use rustls::ClientConfig;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::{self, PemObject};

/// Why a CA bundle cannot be used. Every variant names the file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TlsError {
    /// The file cannot be opened or read.
    #[error("{path}: cannot be read: {detail}")]
    Read { path: String, detail: String },
    /// The file is not PEM (or a block is malformed).
    #[error("{path}: not a PEM file: {detail}")]
    NotPem { path: String, detail: String },
    /// The file is PEM but has no `BEGIN CERTIFICATE` block.
    #[error("{path}: no certificate in it (a PEM block BEGIN CERTIFICATE)")]
    NoCertificate { path: String },
    /// A certificate cannot be a trust anchor (not a valid X.509 certificate).
    #[error("{path}: certificate {index} is not usable as a CA: {detail}")]
    BadCertificate { path: String, index: usize, detail: String },
}

/// The client configuration trusting the webpki roots, plus the
/// certificates of `ca_file` when given. Cached: the default one for the
/// process, one per CA file until the file changes.
pub fn client_config(ca_file: Option<&Path>) -> Result<Arc<ClientConfig>, TlsError> {
    match ca_file {
        None => Ok(default_config()),
        Some(path) => with_ca_file(path),
    }
}

/// Reads and checks a CA bundle: what `cutover config check`, `cutover run`
/// and `cutover runbook check` run for every `ca_file`.
pub fn check_ca_file(path: &Path) -> Result<(), TlsError> {
    with_ca_file(path).map(drop)
}

fn default_config() -> Arc<ClientConfig> {
    static CONFIG: OnceLock<Arc<ClientConfig>> = OnceLock::new();
    CONFIG.get_or_init(|| Arc::new(build(webpki_store()))).clone()
}

fn webpki_store() -> rustls::RootCertStore {
    rustls::RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() }
}

fn build(roots: rustls::RootCertStore) -> ClientConfig {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("ring supports the default protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth()
}

/// What identifies one version of a file: its modification time and size.
type Stamp = (Option<SystemTime>, u64);

/// A parsed CA file and the version it was parsed from.
type Cached = (Stamp, Arc<ClientConfig>);

fn with_ca_file(path: &Path) -> Result<Arc<ClientConfig>, TlsError> {
    static CACHE: OnceLock<Mutex<HashMap<PathBuf, Cached>>> = OnceLock::new();
    let shown = path.display().to_string();
    let meta = std::fs::metadata(path).map_err(|e| TlsError::Read { path: shown.clone(), detail: e.to_string() })?;
    if !meta.is_file() {
        return Err(TlsError::Read { path: shown, detail: "not a regular file".into() });
    }
    let stamp = (meta.modified().ok(), meta.len());
    let cache = CACHE.get_or_init(Default::default);
    if let Some((s, config)) = cache.lock().unwrap_or_else(|e| e.into_inner()).get(path)
        && *s == stamp
    {
        return Ok(config.clone());
    }
    let config = Arc::new(build(store_with(path)?));
    cache.lock().unwrap_or_else(|e| e.into_inner()).insert(path.to_path_buf(), (stamp, config.clone()));
    Ok(config)
}

/// The webpki roots plus every certificate of the PEM file at `path`.
fn store_with(path: &Path) -> Result<rustls::RootCertStore, TlsError> {
    let shown = || path.display().to_string();
    let certs: Vec<CertificateDer<'static>> =
        CertificateDer::pem_file_iter(path).and_then(|it| it.collect::<Result<Vec<_>, _>>()).map_err(|e| match e {
            pem::Error::Io(e) => TlsError::Read { path: shown(), detail: e.to_string() },
            e => TlsError::NotPem { path: shown(), detail: pem_problem(&e) },
        })?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate { path: shown() });
    }
    let mut store = webpki_store();
    for (i, cert) in certs.into_iter().enumerate() {
        store.add(cert).map_err(|e| TlsError::BadCertificate { path: shown(), index: i + 1, detail: e.to_string() })?;
    }
    Ok(store)
}

/// What is wrong with a PEM file, without quoting any of it.
fn pem_problem(e: &pem::Error) -> String {
    match e {
        pem::Error::MissingSectionEnd { .. } => "a block has no END line".into(),
        pem::Error::IllegalSectionStart { .. } => "a malformed BEGIN line".into(),
        pem::Error::Base64Decode(_) => "a block is not valid base64".into(),
        pem::Error::SectionTooLarge => "a block is too large".into(),
        _ => "not valid PEM".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &tempfile::TempDir, name: &str, bytes: &[u8]) -> PathBuf {
        let p = dir.path().join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    }

    #[test]
    fn unusable_ca_files_are_named_errors() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope.pem");
        let e = check_ca_file(&missing).unwrap_err();
        assert!(matches!(e, TlsError::Read { .. }) && e.to_string().contains("nope.pem"), "{e}");
        let e = check_ca_file(dir.path()).unwrap_err();
        assert!(e.to_string().contains("not a regular file"), "{e}");
        let e = check_ca_file(&write(&dir, "text.pem", b"just some text\n")).unwrap_err();
        assert!(matches!(e, TlsError::NoCertificate { .. }), "{e}");
        let e = check_ca_file(&write(&dir, "binary.pem", &[0xff, 0xfe, 0, 1, 2])).unwrap_err();
        assert!(matches!(e, TlsError::NoCertificate { .. }), "{e}");
        let cut = b"-----BEGIN CERTIFICATE-----\nMIIB\n";
        let e = check_ca_file(&write(&dir, "cut.pem", cut)).unwrap_err();
        assert!(matches!(e, TlsError::NotPem { .. }), "{e}");
        let junk = b"-----BEGIN CERTIFICATE-----\naGVsbG8gd29ybGQ=\n-----END CERTIFICATE-----\n";
        let e = check_ca_file(&write(&dir, "junk.pem", junk)).unwrap_err();
        assert!(matches!(e, TlsError::BadCertificate { index: 1, .. }), "{e}");
        assert!(!e.to_string().contains("aGVsbG8"), "{e}");
    }

    #[test]
    fn a_ca_file_adds_to_the_public_roots_and_is_reread_when_it_changes() {
        let dir = tempfile::tempdir().unwrap();
        let pki = cutover_lab::tls::TestPki::generate(dir.path(), "a").unwrap();
        let first = client_config(Some(&pki.ca)).unwrap();
        assert!(Arc::ptr_eq(&first, &client_config(Some(&pki.ca)).unwrap()), "cached while unchanged");
        // Two CAs in one bundle.
        let other = cutover_lab::tls::TestPki::generate(dir.path(), "b").unwrap();
        let mut both = std::fs::read(&pki.ca).unwrap();
        both.extend(std::fs::read(&other.ca).unwrap());
        std::fs::write(&pki.ca, both).unwrap();
        let second = client_config(Some(&pki.ca)).unwrap();
        assert!(!Arc::ptr_eq(&first, &second), "a changed file is read again");
        assert_eq!(store_with(&pki.ca).unwrap().len(), webpki_store().len() + 2);
    }
}
