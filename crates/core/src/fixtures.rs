//! Configuration text shared by tests of several crates.

/// Two backends, `primary` and `secondary`, on loopback Garage ports, with
/// credentials from the variables `K` and `S`.
pub const TWO_BACKENDS: &str = r#"
[[backends]]
name = "primary"
endpoint = "http://127.0.0.1:3900"
region = "garage"
bucket = "app-data"
role = "primary"
credentials = { access_key_id_env = "K", secret_access_key_env = "S" }

[[backends]]
name = "secondary"
endpoint = "http://127.0.0.1:3901"
region = "garage"
bucket = "app-data"
credentials = { access_key_id_env = "K", secret_access_key_env = "S" }
"#;
