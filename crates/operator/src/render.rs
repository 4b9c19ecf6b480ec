//! What the applications should see for a spec: the Secret's data, the
//! ConfigMaps' data, the StorageClass parameters, and the hash of it all that
//! goes into the pod-template annotation.
//!
//! Pure: the credentials are passed in (the reconciler reads them from the
//! referenced Secret). Nothing here is ever logged or put into status.

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};

use crate::crd::{Field, StorageBackendSpec};

/// Keys in the referenced credentials Secret.
pub const ACCESS_KEY_ID: &str = "access_key_id";
pub const SECRET_ACCESS_KEY: &str = "secret_access_key";

/// The access key pair from the `credentialsSecret`.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub access_key_id: String,
    pub secret_access_key: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Credentials(<redacted>)")
    }
}

/// The data the operator writes for one provider; also what a snapshot holds.
#[derive(Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Rendered {
    /// The provider's name.
    pub provider: String,
    /// The hash of everything below (the pod-template annotation).
    pub hash: String,
    /// The application Secret's data (`None` when the spec has no `secret`).
    pub secret: Option<(String, BTreeMap<String, String>)>,
    /// ConfigMap name → data.
    pub config_maps: BTreeMap<String, BTreeMap<String, String>>,
    /// StorageClass (name, provisioner, parameters).
    pub storage_class: Option<(String, String, BTreeMap<String, String>)>,
}

impl std::fmt::Debug for Rendered {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rendered")
            .field("provider", &self.provider)
            .field("hash", &self.hash)
            .field("secret", &self.secret.as_ref().map(|(name, _)| name))
            .field("config_maps", &self.config_maps)
            .field("storage_class", &self.storage_class)
            .finish()
    }
}

/// The value of a spec field as a string.
pub fn field_value(spec: &StorageBackendSpec, field: Field) -> String {
    match field {
        Field::Provider => spec.provider.clone(),
        Field::Endpoint => spec.endpoint.clone(),
        Field::Region => spec.region.clone().unwrap_or_default(),
        Field::Bucket => spec.bucket.clone(),
        Field::PathStyle => spec.path_style.to_string(),
    }
}

/// Renders what the applications should see for `spec` with `credentials`.
pub fn render(spec: &StorageBackendSpec, credentials: &Credentials) -> Rendered {
    let secret = spec.secret.as_ref().map(|s| {
        let k = &s.keys;
        let mut data = BTreeMap::new();
        data.insert(k.endpoint.clone(), spec.endpoint.clone());
        if let Some(region) = &spec.region {
            data.insert(k.region.clone(), region.clone());
        }
        data.insert(k.bucket.clone(), spec.bucket.clone());
        data.insert(k.access_key_id.clone(), credentials.access_key_id.clone());
        data.insert(k.secret_access_key.clone(), credentials.secret_access_key.clone());
        (s.name.clone(), data)
    });
    let config_maps = spec
        .config_maps
        .iter()
        .map(|cm| {
            let data = cm.keys.iter().map(|(key, field)| (key.clone(), field_value(spec, *field))).collect();
            (cm.name.clone(), data)
        })
        .collect();
    let storage_class = spec.storage_class.as_ref().map(|sc| {
        let mut params = sc.parameters.clone();
        for (key, field) in &sc.fields {
            params.insert(key.clone(), field_value(spec, *field));
        }
        (sc.name.clone(), sc.provisioner.clone(), params)
    });
    let mut rendered =
        Rendered { provider: spec.provider.clone(), hash: String::new(), secret, config_maps, storage_class };
    rendered.hash = hash(spec, credentials, &rendered);
    rendered
}

/// A short hash of the provider data: the spec's provider fields, the
/// credentials and the rendered objects. Equal data gives an equal hash, so a
/// Deployment already carrying it is never restarted again.
fn hash(spec: &StorageBackendSpec, credentials: &Credentials, rendered: &Rendered) -> String {
    let mut h = Sha256::new();
    let canonical = serde_json::json!({
        "provider": spec.provider,
        "endpoint": spec.endpoint,
        "region": spec.region,
        "bucket": spec.bucket,
        "pathStyle": spec.path_style,
        "accessKeyId": credentials.access_key_id,
        "secretAccessKey": credentials.secret_access_key,
        "secret": rendered.secret,
        "configMaps": rendered.config_maps,
        "storageClass": rendered.storage_class,
    });
    h.update(canonical.to_string().as_bytes());
    hex::encode(&h.finalize()[..8])
}
