//! The configuration of one isolated drill run, and the S3 client that
//! writes through its gateway.

use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use cutover_core::Config;
use cutover_core::config::{Ack, BucketMode, GatewayBucket, GatewayClient, GatewayConfig, SecretRef};
use cutover_s3::{ClientOptions, Credentials, S3Client};
use sha2::{Digest, Sha256};

use crate::Failure;

/// A copy of the configuration for one isolated run.
pub fn drill_config(config: &Config, dir: &Path, stable_for: Duration) -> Result<Config, Failure> {
    let mut c = config.clone();
    c.state.path = dir.join("drill.db");
    if let Some(api) = &mut c.api {
        api.listen = "127.0.0.1:0".parse().expect("address");
    }
    c.fallback.stable_for = stable_for;
    c.fallback.min_dwell = stable_for.min(Duration::from_secs(2));
    let secret = dir.join("drill.secret");
    std::fs::write(&secret, format!("drill-{}\n", hex::encode(clock_and_pid_digest()))).context("drill secret")?;
    c.gateway = Some(GatewayConfig {
        listen: "127.0.0.1:0".parse().expect("address"),
        region: "us-east-1".into(),
        tls: None,
        clients: vec![GatewayClient { access_key_id: "CUTOVERDRILL".into(), secret: SecretRef::File(secret) }],
        buckets: vec![GatewayBucket {
            name: "drill".into(),
            mode: BucketMode::DualWrite,
            ack: Ack::ActiveJournal,
            backends: config.backends.iter().map(|b| b.name.clone()).collect(),
        }],
        limits: Default::default(),
    });
    Ok(c)
}

fn clock_and_pid_digest() -> [u8; 16] {
    let mut b = [0u8; 16];
    let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos();
    let h = Sha256::digest(format!("{t}-{}", std::process::id()));
    b.copy_from_slice(&h[..16]);
    b
}

pub fn config_secret(config: &Config) -> Result<String, Failure> {
    let gw = config.gateway.as_ref().expect("the drill gateway");
    match &gw.clients[0].secret {
        SecretRef::File(p) => Ok(std::fs::read_to_string(p).context("drill secret")?.trim().to_string()),
        SecretRef::Env(_) => unreachable!("the drill writes a file"),
    }
}

pub fn client_for(config: &Config, endpoint: &str, bucket: &str, key: &str, secret: &str) -> Result<S3Client, Failure> {
    let mut b = config.primary().clone();
    b.name = "gateway".into();
    b.bucket = bucket.into();
    // Clients sign for the gateway's region (another is refused, as S3 does).
    b.region = config.gateway.as_ref().map(|g| g.region.clone()).unwrap_or_else(|| "us-east-1".into());
    b.path_style = true;
    b.endpoint = cutover_core::Endpoint::parse(endpoint).map_err(|e| Failure::Usage(e.to_string()))?;
    let creds = Credentials {
        access_key_id: key.into(),
        secret_access_key: cutover_core::Secret::new(secret.to_string()),
        session_token: None,
    };
    Ok(S3Client::new(&b, creds, ClientOptions::probe(Duration::from_secs(2))))
}
