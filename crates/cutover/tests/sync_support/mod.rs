//! Helpers for the sync tests: seeding objects with cutover's own S3 client
//! and an independent check of the result with `rclone check`.
#![allow(dead_code)]

use std::process::Command;

use bytes::Bytes;
use cutover_s3::S3Client;

use crate::common::Backend;

pub fn client(b: &Backend) -> S3Client {
    b.client()
}

pub fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
}

/// Deterministic content for key `key`, version `v`, of `len` bytes.
pub fn content(key: &str, v: u32, len: usize) -> Bytes {
    let seed = key.bytes().fold(v as u64 * 31 + 7, |a, b| a.wrapping_mul(131).wrapping_add(b as u64));
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut out = vec![0u8; len];
    rng.fill(&mut out);
    out.into()
}

/// PUTs `(key, body)` pairs, 16 at a time.
pub fn put_all(c: &S3Client, objects: Vec<(String, Bytes)>) {
    rt().block_on(async {
        let sem = std::sync::Arc::new(tokio::sync::Semaphore::new(16));
        let mut set = tokio::task::JoinSet::new();
        for (k, body) in objects {
            let (c, permit) = (c.clone(), sem.clone().acquire_owned().await.unwrap());
            set.spawn(async move {
                let _p = permit;
                c.put_object(&k, body, &[]).await.unwrap_or_else(|e| panic!("seeding {k}: {e}"));
            });
        }
        while let Some(r) = set.join_next().await {
            r.unwrap();
        }
    });
}

/// Every key under `prefix` with its size and ETag.
pub fn list(c: &S3Client, prefix: &str) -> Vec<(String, u64, Option<String>)> {
    rt().block_on(async {
        let mut out = Vec::new();
        let mut token = None;
        loop {
            let page = c.list_objects_v2(prefix, token.as_deref(), 1000).await.unwrap();
            out.extend(page.objects.into_iter().map(|o| (o.key, o.size, o.etag)));
            match page.next_token {
                Some(t) => token = Some(t),
                None => return out,
            }
        }
    })
}

fn rclone_env(cmd: &mut Command, remote: &str, b: &Backend) {
    let p = format!("RCLONE_CONFIG_{}", remote.to_uppercase());
    cmd.env(format!("{p}_TYPE"), "s3")
        .env(format!("{p}_PROVIDER"), "Other")
        .env(format!("{p}_ENDPOINT"), &b.endpoint)
        .env(format!("{p}_ACCESS_KEY_ID"), &b.key_id)
        .env(format!("{p}_SECRET_ACCESS_KEY"), &b.secret)
        .env(format!("{p}_REGION"), &b.region)
        .env(format!("{p}_FORCE_PATH_STYLE"), "true");
}

/// `rclone check` of `a:bucket/pa` against `b:bucket/pb`: the number of
/// differences it reports (0 means identical) and its output.
pub fn rclone_check(a: &Backend, pa: &str, b: &Backend, pb: &str, extra: &[&str]) -> (i32, String) {
    let mut cmd = Command::new("rclone");
    cmd.env_remove("AWS_CA_BUNDLE").env("RCLONE_CONFIG", "/dev/null");
    rclone_env(&mut cmd, "srca", a);
    rclone_env(&mut cmd, "dstb", b);
    cmd.arg("check")
        .arg(format!("srca:{}/{pa}", a.bucket))
        .arg(format!("dstb:{}/{pb}", b.bucket))
        .args(["--checkers", "16"])
        .args(extra);
    let out = cmd.output().unwrap_or_else(|e| {
        panic!("running rclone failed ({e}): install it with `apt-get install -y rclone` (.ci/run does)")
    });
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.code().unwrap_or(-1), text)
}

pub fn assert_rclone_identical(a: &Backend, pa: &str, b: &Backend, pb: &str, extra: &[&str]) {
    let (code, text) = rclone_check(a, pa, b, pb, extra);
    assert_eq!(code, 0, "rclone check found differences:\n{text}");
    assert!(text.contains(" 0 differences found"), "{text}");
}

/// `GET path` over plain HTTP/1.1 (`Connection: close`): the status and body.
pub fn http_get(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let status = text.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    (status, text.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default())
}
