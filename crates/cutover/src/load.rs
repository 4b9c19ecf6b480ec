//! Finding and loading the configuration; building backend clients.

use std::path::{Path, PathBuf};

use cutover_core::Config;
use cutover_core::config::{BackendConfig, ConfigError, load_str};
use cutover_s3::{ClientOptions, S3Client, resolve_credentials};

use crate::Failure;
use crate::cli::Global;

/// The configuration file: `--config`, else `$CUTOVER_CONFIG`, else `./cutover.toml`.
pub fn config_path(global: &Global) -> PathBuf {
    global
        .config
        .clone()
        .or_else(|| std::env::var_os("CUTOVER_CONFIG").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("cutover.toml"))
}

/// Reads and validates the configuration. Every problem is in the error.
pub fn config(global: &Global) -> Result<Config, Failure> {
    let path = config_path(global);
    load_file(&path).map_err(|e| Failure::Usage(e.to_string()))
}

pub fn load_file(path: &Path) -> Result<Config, ConfigError> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| {
        let hint = if e.kind() == std::io::ErrorKind::NotFound {
            "not found (give --config FILE or set CUTOVER_CONFIG)".to_string()
        } else {
            e.to_string()
        };
        ConfigError { file: file.clone(), problems: vec![cutover_core::Problem::new("(file)", hint)] }
    })?;
    let base = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let base = std::path::absolute(base).unwrap_or_else(|_| base.to_path_buf());
    let config = load_str(&text, &file, &base, &|k| std::env::var(k).ok())?;
    // Every CA bundle is read now, so that a missing or broken one stops
    // `config check` and `run` (exit 2) instead of the first TLS connection.
    let mut problems: Vec<cutover_core::Problem> = config
        .ca_files()
        .into_iter()
        .filter_map(|(key, path)| {
            cutover_s3::tls::check_ca_file(path).err().map(|e| cutover_core::Problem::new(key, e.to_string()))
        })
        .collect();
    // Client certificates and keys (`[ha]`) must at least be readable files.
    problems.extend(config.client_cert_files().into_iter().filter_map(|(key, path)| {
        readable_file(path)
            .err()
            .map(|e| cutover_core::Problem::new(key, format!("{}: cannot be read: {e}", path.display())))
    }));
    if !problems.is_empty() {
        return Err(ConfigError { file, problems });
    }
    Ok(config)
}

/// Opens `path` as a regular file (its content is read when it is used).
fn readable_file(path: &Path) -> std::io::Result<()> {
    let file = std::fs::File::open(path)?;
    if file.metadata()?.is_file() {
        Ok(())
    } else {
        Err(std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a regular file"))
    }
}

/// The backends a command addresses: one by name, or all.
pub fn select<'a>(config: &'a Config, name: Option<&str>) -> Result<Vec<&'a BackendConfig>, Failure> {
    match name {
        None => Ok(config.backends.iter().collect()),
        Some(n) => config.backend(n).map(|b| vec![b]).ok_or_else(|| {
            Failure::Usage(format!("unknown backend {n:?} (configured: {})", config.backend_names().join(", ")))
        }),
    }
}

/// A client for a backend, with its credentials resolved.
pub fn client(backend: &BackendConfig, opts: ClientOptions) -> Result<S3Client, Failure> {
    let creds = resolve_credentials(backend).map_err(|e| Failure::Usage(format!("error: {e}")))?;
    Ok(S3Client::new(backend, creds, opts))
}
