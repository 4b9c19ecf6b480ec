//! Throwaway certificates for TLS tests, made with the `openssl` command in a
//! directory the caller owns (a temporary one): a CA, and a server
//! certificate for `127.0.0.1` and `localhost` signed by it. Nothing here is
//! ever written to the repository.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::LabError;

/// A test CA and a server certificate it signed (EC P-256 keys, valid for two days).
#[derive(Debug, Clone)]
pub struct TestPki {
    /// The CA certificate: what clients trust (`verify=`, `--ca-bundle`).
    pub ca: PathBuf,
    /// The server certificate followed by the CA's: a two-certificate chain.
    pub chain: PathBuf,
    /// The server's private key (PKCS#8).
    pub key: PathBuf,
}

fn openssl(dir: &Path, args: &[&str]) -> Result<(), LabError> {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .map_err(|source| LabError::Io { what: "running openssl".into(), source })?;
    if out.status.success() {
        Ok(())
    } else {
        Err(LabError::NotReady(format!(
            "openssl {}: {}",
            args.first().unwrap_or(&""),
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

impl TestPki {
    /// Makes a CA named `name` and a server certificate in `dir`; files are
    /// prefixed with `name` so that several fit in one directory.
    pub fn generate(dir: &Path, name: &str) -> Result<Self, LabError> {
        let f = |s: &str| format!("{name}-{s}");
        openssl(
            dir,
            &[
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-keyout",
                &f("ca.key"),
                "-out",
                &f("ca.pem"),
                "-days",
                "2",
                "-subj",
                &format!("/CN=cutover test CA {name}"),
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
            ],
        )?;
        let key = new_key(dir, &f("server.key"))?;
        openssl(dir, &["req", "-new", "-key", &f("server.key"), "-out", &f("server.csr"), "-subj", "/CN=localhost"])?;
        std::fs::write(
            dir.join(f("server.ext")),
            "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=critical,CA:FALSE\n\
             keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n\
             subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n",
        )
        .map_err(|source| LabError::Io { what: "server.ext".into(), source })?;
        let serial = format!("0x{:016x}", fastrand::u64(1..));
        openssl(
            dir,
            &[
                "x509",
                "-req",
                "-in",
                &f("server.csr"),
                "-CA",
                &f("ca.pem"),
                "-CAkey",
                &f("ca.key"),
                "-set_serial",
                &serial,
                "-days",
                "2",
                "-extfile",
                &f("server.ext"),
                "-out",
                &f("server.pem"),
            ],
        )?;
        let read = |p: &str| {
            std::fs::read_to_string(dir.join(p)).map_err(|source| LabError::Io { what: p.to_string(), source })
        };
        let chain = dir.join(f("fullchain.pem"));
        std::fs::write(&chain, read(&f("server.pem"))? + &read(&f("ca.pem"))?)
            .map_err(|source| LabError::Io { what: "fullchain.pem".into(), source })?;
        Ok(Self { ca: dir.join(f("ca.pem")), chain, key })
    }
}

/// A fresh EC P-256 private key (PKCS#8 PEM) at `dir/file`.
pub fn new_key(dir: &Path, file: &str) -> Result<PathBuf, LabError> {
    openssl(dir, &["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", file])?;
    Ok(dir.join(file))
}

/// A TLS terminator on 127.0.0.1 (a free port) in front of a plain TCP
/// server: whatever speaks HTTP on `upstream` (s3s-fs, a webhook receiver, a
/// Prometheus stand-in) is then served over HTTPS with the certificate of a
/// [`TestPki`]. It runs on its own thread and stops when dropped.
#[derive(Debug)]
pub struct TlsFront {
    pub addr: std::net::SocketAddr,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl TlsFront {
    pub fn start(pki: &TestPki, upstream: std::net::SocketAddr) -> Result<Self, LabError> {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let bad = |what: &str, e: &dyn std::fmt::Display| LabError::NotReady(format!("TLS front: {what}: {e}"));
        let certs = CertificateDer::pem_file_iter(&pki.chain)
            .and_then(|it| it.collect::<Result<Vec<_>, _>>())
            .map_err(|e| bad("certificate chain", &e))?;
        let key = PrivateKeyDer::from_pem_file(&pki.key).map_err(|e| bad("key", &e))?;
        let config =
            rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()
                .map_err(|e| bad("protocol versions", &e))?
                .with_no_client_auth()
                .with_single_cert(certs, key)
                .map_err(|e| bad("certificate", &e))?;
        let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config));
        let io = |what: &'static str| move |source| LabError::Io { what: what.into(), source };
        let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(io("bind 127.0.0.1:0"))?;
        listener.set_nonblocking(true).map_err(io("set_nonblocking"))?;
        let addr = listener.local_addr().map_err(io("local_addr"))?;
        let (shutdown, mut stop) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("tls-front".into())
            .spawn(move || {
                let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else { return };
                rt.block_on(async move {
                    let Ok(listener) = tokio::net::TcpListener::from_std(listener) else { return };
                    loop {
                        let (tcp, _) = tokio::select! {
                            _ = &mut stop => return,
                            a = listener.accept() => match a { Ok(a) => a, Err(_) => continue },
                        };
                        let acceptor = acceptor.clone();
                        tokio::spawn(async move {
                            let Ok(mut tls) = acceptor.accept(tcp).await else { return };
                            let Ok(mut plain) = tokio::net::TcpStream::connect(upstream).await else { return };
                            let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
                        });
                    }
                });
            })
            .map_err(io("spawn the TLS front"))?;
        Ok(Self { addr, shutdown: Some(shutdown), thread: Some(thread) })
    }

    /// `https://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("https://{}", self.addr)
    }
}

impl Drop for TlsFront {
    fn drop(&mut self) {
        if let Some(s) = self.shutdown.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
