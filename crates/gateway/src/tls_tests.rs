//! Loading the certificate chain and key: what works, and every way it can
//! fail, named by key and file, never quoting the file.

use std::path::PathBuf;

use cutover_lab::tls::{TestPki, new_key};

use super::*;

fn pki() -> (tempfile::TempDir, TestPki) {
    let dir = tempfile::tempdir().unwrap();
    let pki = TestPki::generate(dir.path(), "t").unwrap();
    (dir, pki)
}

fn files(cert: &Path, key: &Path) -> GatewayTls {
    GatewayTls { cert_file: cert.to_path_buf(), key_file: key.to_path_buf() }
}

fn error(cert: &Path, key: &Path) -> String {
    check(&files(cert, key)).unwrap_err().to_string()
}

fn write(dir: &tempfile::TempDir, name: &str, text: &str) -> PathBuf {
    let p = dir.path().join(name);
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn a_chain_and_its_key_load() {
    let (_dir, pki) = pki();
    check(&files(&pki.chain, &pki.key)).unwrap();
    let config = server_config(&files(&pki.chain, &pki.key)).unwrap();
    assert_eq!(config.alpn_protocols, vec![b"http/1.1".to_vec()]);
}

#[test]
fn missing_files_are_named_with_their_key() {
    let (dir, pki) = pki();
    let nowhere = dir.path().join("nowhere.pem");
    let e = error(&nowhere, &pki.key);
    assert!(e.starts_with(&format!("gateway.tls_cert_file: {}: cannot be read: ", nowhere.display())), "{e}");
    let e = error(&pki.chain, &nowhere);
    assert!(e.starts_with(&format!("gateway.tls_key_file: {}: cannot be read: ", nowhere.display())), "{e}");
}

#[test]
fn garbage_and_swapped_files_are_refused_with_the_file_named() {
    let (dir, pki) = pki();
    let garbage = write(&dir, "garbage.pem", "this is not PEM at all\n");
    let cert_at = |p: &Path| format!("gateway.tls_cert_file: {}: ", p.display());
    let key_at = |p: &Path| format!("gateway.tls_key_file: {}: ", p.display());
    assert_eq!(
        error(&garbage, &pki.key),
        format!("{}no certificate in it (a PEM block BEGIN CERTIFICATE)", cert_at(&garbage))
    );
    assert!(error(&pki.chain, &garbage).starts_with(&format!("{}no private key in it", key_at(&garbage))));
    // The files given the wrong way round.
    assert!(error(&pki.key, &pki.chain).starts_with(&format!("{}no certificate in it", cert_at(&pki.key))));
    // Broken PEM.
    let bad_b64 = write(&dir, "b64.pem", "-----BEGIN CERTIFICATE-----\n!!not base64!!\n-----END CERTIFICATE-----\n");
    assert_eq!(error(&bad_b64, &pki.key), format!("{}not valid PEM: a block is not valid base64", cert_at(&bad_b64)));
    // PEM, but not a certificate inside.
    let not_der = write(&dir, "der.pem", "-----BEGIN CERTIFICATE-----\naGVsbG8gd29ybGQ=\n-----END CERTIFICATE-----\n");
    let e = error(&not_der, &pki.key);
    assert!(e.starts_with(&format!("{}the first certificate is not usable", cert_at(&not_der))), "{e}");
    let not_key = write(&dir, "k.pem", "-----BEGIN PRIVATE KEY-----\naGVsbG8gd29ybGQ=\n-----END PRIVATE KEY-----\n");
    let e = error(&pki.chain, &not_key);
    assert!(e.starts_with(&format!("{}the private key is not usable", key_at(&not_key))), "{e}");
}

#[test]
fn a_broken_key_file_is_never_quoted() {
    let (dir, pki) = pki();
    let key = std::fs::read_to_string(&pki.key).unwrap();
    let body: Vec<&str> = key.lines().filter(|l| !l.starts_with("-----")).collect();
    // The key without its END line, and with a damaged line.
    let truncated = write(&dir, "truncated.pem", &key.replace("-----END PRIVATE KEY-----", ""));
    let e = error(&pki.chain, &truncated);
    assert_eq!(e, format!("gateway.tls_key_file: {}: not valid PEM: a block has no END line", truncated.display()));
    let damaged = write(&dir, "damaged.pem", &key.replacen(body[0], &format!("{}*", body[0]), 1));
    let e = error(&pki.chain, &damaged);
    assert!(e.ends_with("not valid PEM: a block is not valid base64"), "{e}");
    for line in body {
        assert!(!e.contains(line), "the error quotes the key: {e}");
    }
}

#[test]
fn a_key_that_does_not_match_the_certificate_is_refused() {
    let (dir, pki) = pki();
    let other = new_key(dir.path(), "other.key").unwrap();
    assert_eq!(
        error(&pki.chain, &other),
        format!(
            "gateway.tls_key_file: {}: the private key does not match the certificate in {}",
            other.display(),
            pki.chain.display()
        )
    );
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = std::process::Command::new("openssl").args(args).current_dir(dir).output().unwrap();
    assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn rsa_pkcs1_and_ec_sec1_keys_load_too() {
    let (dir, pki) = pki();
    let d = dir.path();
    // SEC1 ("EC PRIVATE KEY") form of the test key.
    openssl(d, &["ec", "-in", pki.key.to_str().unwrap(), "-out", "sec1.key"]);
    assert!(std::fs::read_to_string(d.join("sec1.key")).unwrap().starts_with("-----BEGIN EC PRIVATE KEY-----"));
    check(&files(&pki.chain, &d.join("sec1.key"))).unwrap();
    // A self-signed RSA certificate with a PKCS#1 ("RSA PRIVATE KEY") key.
    openssl(
        d,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "rsa8.key",
            "-out",
            "rsa.pem",
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
        ],
    );
    openssl(d, &["rsa", "-in", "rsa8.key", "-traditional", "-out", "rsa1.key"]);
    assert!(std::fs::read_to_string(d.join("rsa1.key")).unwrap().starts_with("-----BEGIN RSA PRIVATE KEY-----"));
    check(&files(&d.join("rsa.pem"), &d.join("rsa1.key"))).unwrap();
    check(&files(&d.join("rsa.pem"), &d.join("rsa8.key"))).unwrap();
}
