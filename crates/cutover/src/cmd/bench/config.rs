//! The configuration each trial's controller runs with.

use std::path::Path;

use cutover_core::config::{Config, ConfigError};
use sha2::Digest;

use super::process::BENCH_TOKEN;

/// The configuration of a trial's controller: the API on `port`, `extra`,
/// and the two backends as (endpoint, bucket).
pub fn config_text(port: u16, extra: &str, primary: (&str, &str), secondary: (&str, &str)) -> String {
    let backend = |name: &str, role: &str, (endpoint, bucket): (&str, &str)| {
        let env = name.to_uppercase();
        format!(
            "\n[[backends]]\nname = \"{name}\"\nendpoint = \"{endpoint}\"\nregion = \"garage\"\nbucket = \"{bucket}\"\nrole = \"{role}\"\n\
             credentials = {{ access_key_id_env = \"BENCH_{env}_KEY_ID\", secret_access_key_env = \"BENCH_{env}_SECRET\" }}\n"
        )
    };
    format!(
        "[state]\npath = \"cutover.db\"\n\n[api]\nlisten = \"127.0.0.1:{port}\"\n\
         [[api.tokens]]\nname = \"bench\"\nrole = \"viewer\"\nsha256 = \"{}\"\n\n{extra}\n{}{}",
        hex::encode(sha2::Sha256::digest(BENCH_TOKEN)),
        backend("primary", "primary", primary),
        backend("secondary", "secondary", secondary)
    )
}

/// The effective configuration the trials run with; checks `--extra`.
pub fn settings(extra: &str) -> Result<Config, ConfigError> {
    let set = |_: &str| Some("set".to_string());
    let text = config_text(1, extra, ("http://127.0.0.1:1", "app-data"), ("http://127.0.0.1:2", "app-data"));
    cutover_core::config::load_str(&text, "the generated configuration", Path::new("/"), &set)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extra_settings_reach_the_effective_configuration() {
        let c = settings("[probe]\ninterval = \"750ms\"\n").unwrap();
        assert_eq!(c.probe.interval, std::time::Duration::from_millis(750));
        assert!(settings("[probe]\nintervall = \"1s\"\n").is_err());
    }
}
