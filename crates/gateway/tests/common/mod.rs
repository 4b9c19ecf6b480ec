//! Shared by the gateway's integration tests: an in-process gateway in
//! front of one backend, and a raw HTTP/1.1 client that sends exactly the
//! bytes it is given.
#![allow(dead_code)]

use std::time::Duration;

use bytes::Bytes;
use cutover_gateway::{ActiveBackend, Gateway, GatewayOptions};
use cutover_lab::garage::Garage;
use cutover_lab::s3sfs::S3sFs;
use cutover_s3::{ClientOptions, S3Client};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub const CLIENT_KEY: &str = "CLIENTKEY";
pub const CLIENT_SECRET: &str = "client-secret";

/// A gateway (client bucket `app`) serving on a free port.
#[derive(Debug)]
pub struct TestGateway {
    pub port: u16,
    /// The gateway itself: its state file, active backend, journal replay.
    pub gateway: Gateway,
    stop: Option<oneshot::Sender<()>>,
    served: Option<JoinHandle<()>>,
    _dir: tempfile::TempDir,
}

/// The backend behind a [`TestGateway`].
#[derive(Debug, Clone)]
pub struct BackendSpec<'a> {
    pub endpoint: &'a str,
    pub region: &'a str,
    pub bucket: &'a str,
    pub key_id: &'a str,
    pub secret: &'a str,
}

impl<'a> BackendSpec<'a> {
    /// An s3s-fs backend at `endpoint` (its [`S3sFs::endpoint`]).
    pub fn s3sfs(endpoint: &'a str, s: &'a S3sFs) -> Self {
        BackendSpec { endpoint, region: "us-east-1", bucket: &s.bucket, key_id: &s.key_id, secret: &s.secret }
    }
}

impl TestGateway {
    /// Active-passive in front of one backend.
    pub async fn start(b: &BackendSpec<'_>) -> Self {
        Self::start_with(std::slice::from_ref(b), "mode = \"active-passive\"").await
    }

    /// `backends` (the first is the primary, named `primary`, the others
    /// `secondary`, `third`..), the bucket's `mode` line(s) as given.
    pub async fn start_with(backends: &[BackendSpec<'_>], mode: &str) -> Self {
        Self::start_opts(backends, mode, GatewayOptions::default()).await
    }

    /// [`TestGateway::start_with`] with options.
    pub async fn start_opts(backends: &[BackendSpec<'_>], mode: &str, opts: GatewayOptions) -> Self {
        let (gw, _dir) = Self::build(backends, mode, opts);
        Self::serve(gw, _dir).await
    }

    /// The gateway, not serving yet, and its directory.
    pub fn build(backends: &[BackendSpec<'_>], mode: &str, opts: GatewayOptions) -> (Gateway, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(d.join("client.secret"), CLIENT_SECRET).unwrap();
        let mut text = format!(
            "[state]\npath = \"{d}/cutover.db\"\n[gateway]\nlisten = \"127.0.0.1:0\"\n\
             [[gateway.clients]]\naccess_key_id = \"{CLIENT_KEY}\"\nsecret_access_key_file = \"{d}/client.secret\"\n\
             [[gateway.buckets]]\nname = \"app\"\n{mode}\n\n",
            d = d.display()
        );
        for (i, b) in backends.iter().enumerate() {
            let (name, role) = match i {
                0 => ("primary", "primary"),
                1 => ("secondary", "secondary"),
                _ => ("third", "secondary"),
            };
            let creds = d.join(format!("{name}.credentials"));
            std::fs::write(
                &creds,
                format!("[default]\naws_access_key_id = {}\naws_secret_access_key = {}\n", b.key_id, b.secret),
            )
            .unwrap();
            text.push_str(&format!(
                "[[backends]]\nname = \"{name}\"\nendpoint = \"{}\"\nregion = \"{}\"\n\
                 bucket = \"{}\"\nrole = \"{role}\"\npath_style = true\n\
                 credentials = {{ file = \"{}\", profile = \"default\" }}\n\n",
                b.endpoint,
                b.region,
                b.bucket,
                creds.display()
            ));
        }
        let env = |_: &str| None;
        let config = cutover_core::config::load_str(&text, "test.toml", d, &env).unwrap();
        let gw = Gateway::build(&config, ActiveBackend::new("primary"), opts).unwrap();
        (gw, dir)
    }

    /// Serves `gw` on a free port.
    pub async fn serve(gw: Gateway, dir: tempfile::TempDir) -> Self {
        let gateway = gw.clone();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (stop, stopped) = oneshot::channel::<()>();
        let served = tokio::spawn(async move {
            gw.serve(listener, async move { drop(stopped.await) }).await.unwrap();
        });
        Self { port, gateway, stop: Some(stop), served: Some(served), _dir: dir }
    }

    /// Shuts the gateway down and waits until `serve` has returned.
    pub async fn shutdown(&mut self) {
        drop(self.stop.take());
        if let Some(served) = self.served.take() {
            served.await.unwrap();
        }
    }
}

/// An answer as read off the wire.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub head: String,
    pub body: Vec<u8>,
}

impl Answer {
    /// The `<Code>` of an S3 error document, if any.
    pub fn code(&self) -> Option<String> {
        let text = String::from_utf8_lossy(&self.body);
        let i = text.find("<Code>")? + 6;
        let j = text[i..].find("</Code>")? + i;
        Some(text[i..j].to_string())
    }

    /// The value of an answer header.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().skip(1).find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }
}

/// Sends one raw HTTP/1.1 request (it should say `Connection: close`) and
/// reads the whole answer. The body is written while the answer is read, so
/// an early answer (and a closed connection) does not fail the write side.
pub async fn send(port: u16, head: &str, body: &[u8]) -> Answer {
    let s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let (mut rd, mut wr) = s.into_split();
    let mut bytes = head.as_bytes().to_vec();
    bytes.extend_from_slice(body);
    let writer = tokio::spawn(async move {
        let _ = wr.write_all(&bytes).await;
        wr
    });
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(60), rd.read_to_end(&mut out)).await.unwrap().unwrap();
    drop(writer.await);
    let split = out.windows(4).position(|w| w == b"\r\n\r\n").unwrap_or(out.len());
    let head = String::from_utf8_lossy(&out[..split]).into_owned();
    let body = out.get(split + 4..).unwrap_or_default().to_vec();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status in {:?}", String::from_utf8_lossy(&out)));
    Answer { status, head, body }
}

/// Garage and an in-process gateway in front of it, with a direct client.
pub struct GatewayLab {
    pub garage: Garage,
    pub gw: TestGateway,
    /// A client straight to Garage, to check what is stored.
    pub direct: S3Client,
}

/// Garage (bucket `app-data`) and an in-process gateway in front of it.
pub async fn lab() -> GatewayLab {
    lab_opts(GatewayOptions::default()).await
}

/// [`lab`] with the gateway's options.
pub async fn lab_opts(opts: GatewayOptions) -> GatewayLab {
    let garage = start_garage().await;
    let endpoint = garage.endpoint();
    let spec = BackendSpec {
        endpoint: &endpoint,
        region: "garage",
        bucket: &garage.bucket,
        key_id: &garage.key_id,
        secret: &garage.secret,
    };
    let gw = TestGateway::start_opts(std::slice::from_ref(&spec), "mode = \"active-passive\"", opts).await;
    let direct = direct_client(&garage, &garage.bucket);
    GatewayLab { garage, gw, direct }
}

/// Garage with two buckets, `app-data` (the primary) and `app-copy` (the
/// secondary), behind a dual-write gateway with `ack`; also a client
/// straight to `app-copy`.
pub async fn dual_lab(ack: &str) -> (GatewayLab, S3Client) {
    let garage = start_garage().await;
    let garage = tokio::task::spawn_blocking(move || {
        garage.create_bucket("app-copy").and_then(|()| garage.allow("app-copy", &garage.key_id)).unwrap();
        garage
    })
    .await
    .unwrap();
    let endpoint = garage.endpoint();
    let spec = |bucket| BackendSpec {
        endpoint: &endpoint,
        region: "garage",
        bucket,
        key_id: &garage.key_id,
        secret: &garage.secret,
    };
    let mode = format!("mode = \"dual-write\"\nack = \"{ack}\"");
    let gw = TestGateway::start_with(&[spec(&garage.bucket), spec("app-copy")], &mode).await;
    let direct = direct_client(&garage, &garage.bucket);
    let copy = direct_client(&garage, "app-copy");
    (GatewayLab { garage, gw, direct }, copy)
}

async fn start_garage() -> Garage {
    tokio::task::spawn_blocking(|| Garage::start("app-data").unwrap_or_else(|e| panic!("Garage: {e}"))).await.unwrap()
}

/// A client straight to `bucket` on Garage.
pub fn direct_client(garage: &Garage, bucket: &str) -> S3Client {
    let opts =
        ClientOptions { timeout: Duration::from_secs(60), connect_timeout: Duration::from_secs(5), pooled: false };
    let endpoint = cutover_core::Endpoint::parse(&garage.endpoint()).unwrap();
    S3Client::path_style("garage", endpoint, "garage", bucket, &garage.key_id, &garage.secret, opts)
}

impl GatewayLab {
    /// The object as Garage has it (None: 404).
    pub async fn stored(&self, key: &str) -> Option<Bytes> {
        match self.direct.get_object(key, &[]).await {
            Ok(r) => Some(r.body),
            Err(e) if e.status() == Some(404) => None,
            Err(e) => panic!("GET {key} on Garage: {e}\n{}", self.garage.log()),
        }
    }
}

/// A header-signed request (the gateway's client key, the body's SHA-256
/// signed) for `path` exactly as given (not normalised), with the decoded
/// `query` and the extra `headers` (all signed), sent raw.
pub async fn signed(
    port: u16,
    method: &str,
    path: &str,
    query: &[(&str, &str)],
    headers: &[(&str, &str)],
    body: &[u8],
) -> Answer {
    use cutover_s3::sigv4::{self, AmzDate, CanonicalRequest};
    let host = format!("127.0.0.1:{port}");
    let date = AmzDate::now();
    let hash = sigv4::sha256_hex(body);
    let mut signed = vec![
        ("host".to_string(), host.clone()),
        ("x-amz-content-sha256".to_string(), hash.clone()),
        ("x-amz-date".to_string(), date.datetime.clone()),
    ];
    signed.extend(headers.iter().map(|(k, v)| (k.to_ascii_lowercase(), v.to_string())));
    signed.sort();
    let q: Vec<(String, String)> = query.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    let req = CanonicalRequest { method, encoded_path: path, query: &q, headers: &signed, payload_hash: &hash };
    let auth = sigv4::authorization(CLIENT_KEY, CLIENT_SECRET, "us-east-1", &date, &req);
    let qs: Vec<String> =
        q.iter().map(|(k, v)| format!("{}={}", sigv4::uri_encode(k, false), sigv4::uri_encode(v, false))).collect();
    let target = if qs.is_empty() { path.to_string() } else { format!("{path}?{}", qs.join("&")) };
    let mut head = format!("{method} {target} HTTP/1.1\r\n");
    for (k, v) in &signed {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str(&format!("authorization: {auth}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n", body.len()));
    send(port, &head, body).await
}

/// The head of a header-signed request whose signed payload hash is `hash`
/// (whatever body follows), with a Content-Length of `len`.
pub fn signed_head_with_hash(port: u16, method: &str, path: &str, hash: &str, len: usize) -> String {
    use cutover_s3::sigv4::{self, AmzDate, CanonicalRequest};
    let host = format!("127.0.0.1:{port}");
    let date = AmzDate::now();
    let headers = vec![
        ("host".to_string(), host.clone()),
        ("x-amz-content-sha256".to_string(), hash.to_string()),
        ("x-amz-date".to_string(), date.datetime.clone()),
    ];
    let req =
        CanonicalRequest { method, encoded_path: path, query: sigv4::NO_QUERY, headers: &headers, payload_hash: hash };
    let auth = sigv4::authorization(CLIENT_KEY, CLIENT_SECRET, "us-east-1", &date, &req);
    format!(
        "{method} {path} HTTP/1.1\r\nhost: {host}\r\nx-amz-content-sha256: {hash}\r\nx-amz-date: {}\r\n\
         authorization: {auth}\r\ncontent-length: {len}\r\nconnection: close\r\n\r\n",
        date.datetime
    )
}

/// Runs `python3 args..` (a boto3 script) against the gateway on `port`,
/// with `GW_ENDPOINT`, `GW_KEY` and `GW_SECRET` set, and returns what it
/// printed; the test fails with its output when the script fails.
pub async fn boto3(port: u16, args: &[&str]) -> String {
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    let what = args.join(" ");
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new("python3")
            .args(&args)
            .env("GW_ENDPOINT", format!("http://127.0.0.1:{port}"))
            .env("GW_KEY", CLIENT_KEY)
            .env("GW_SECRET", CLIENT_SECRET)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "python3 {what} failed:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    stdout
}

/// The path of a script in this crate's `tests/`.
pub fn script(name: &str) -> String {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests").join(name).display().to_string()
}
