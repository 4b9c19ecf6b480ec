//! `[ha]`: how a node reaches etcd (the client options of the table, the
//! password read from its variable).

use cutover_core::Secret;
use cutover_core::config::HaConfig;
use cutover_etcd::{ClientOptions, TlsFiles};

/// Why the etcd side of a node could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum HaSetupError {
    /// `[ha] password_env` names a variable that is not set.
    #[error("[ha] password_env: environment variable {0} is not set")]
    PasswordMissing(String),
}

/// The etcd client options of `[ha]` (the password read from its variable).
pub fn client_options(ha: &HaConfig) -> Result<ClientOptions, HaSetupError> {
    let mut options = ClientOptions::new(ha.etcd.iter().map(|e| e.to_string()).collect(), ha.timing.request_timeout);
    options.tls = TlsFiles {
        ca_file: ha.ca_file.clone(),
        cert_file: ha.client_cert.as_ref().map(|c| c.cert_file.clone()),
        key_file: ha.client_cert.as_ref().map(|c| c.key_file.clone()),
    };
    if let Some(auth) = &ha.auth {
        let password =
            std::env::var(&auth.password_env).map_err(|_| HaSetupError::PasswordMissing(auth.password_env.clone()))?;
        options.username = Some(auth.username.clone());
        options.password = Some(Secret::new(password));
    }
    Ok(options)
}
