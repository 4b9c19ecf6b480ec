//! S3 access for cutover: a SigV4 signer, a client per backend with typed
//! outcomes and deadlines, the probe cycle and the smoke-test suite.

pub mod client;
pub mod error;
pub mod http;
pub mod probe;
pub mod sigv4;
pub mod tls;
pub mod validate;
pub mod xml;

use std::time::Instant;

pub use client::{ClientOptions, Credentials, S3Client};
pub use error::S3Error;

use cutover_core::Secret;
use cutover_core::config::{BackendConfig, CredentialsRef, parse_shared_credentials};

/// Reads a backend's credentials from the environment or its credentials
/// file. The error names the variable or file, never a value.
pub fn resolve_credentials(backend: &BackendConfig) -> Result<Credentials, S3Error> {
    let setup = |detail: String| S3Error::Setup { backend: backend.name.clone(), detail };
    match &backend.credentials {
        CredentialsRef::Env { access_key_id_env, secret_access_key_env, session_token_env } => {
            let var = |name: &str| {
                std::env::var(name)
                    .ok()
                    .filter(|v| !v.is_empty())
                    .ok_or_else(|| setup(format!("environment variable {name} is not set")))
            };
            Ok(Credentials {
                access_key_id: var(access_key_id_env)?,
                secret_access_key: Secret::new(var(secret_access_key_env)?),
                session_token: session_token_env.as_deref().map(var).transpose()?.map(Secret::new),
            })
        }
        CredentialsRef::File { path, profile } => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| setup(format!("credentials file {}: {e}", path.display())))?;
            let (id, secret, token) = parse_shared_credentials(&text, profile)
                .map_err(|e| setup(format!("credentials file {}: {e}", path.display())))?;
            Ok(Credentials {
                access_key_id: id,
                secret_access_key: Secret::new(secret),
                session_token: token.map(Secret::new),
            })
        }
    }
}

/// Milliseconds since `start`, rounded to microseconds.
pub(crate) fn ms_since(start: Instant) -> f64 {
    (start.elapsed().as_secs_f64() * 1e6).round() / 1e3
}

/// `len` random bytes (not cryptographic; probe and test payloads).
pub fn random_bytes(len: usize) -> bytes::Bytes {
    let mut rng = fastrand::Rng::new();
    let mut v = vec![0u8; len];
    rng.fill(&mut v);
    v.into()
}

/// A unique, sortable object key under `prefix`.
pub fn unique_key(prefix: &str, what: &str) -> String {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    format!("{prefix}{what}-{}-{:08x}", now.as_millis(), fastrand::u32(..))
}
