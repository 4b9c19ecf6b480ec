//! The configurations `bench ha` starts its controllers and gateways with:
//! `[ha]` on the bench's etcd cluster, the two in-process backends, and the
//! bench's viewer token on the API.

use std::time::Duration;

use sha2::Digest;

use crate::cmd::bench::process::BENCH_TOKEN;

/// The access key the gateways' application client is configured with
/// (loopback only; the bench never sends a request through a gateway).
const GATEWAY_KEY_ID: &str = "BENCHHAGATEWAY";

/// The environment variable holding the gateways' client secret.
pub const GATEWAY_SECRET_ENV: &str = "BENCH_GATEWAY_SECRET";

/// One backend: name, role, endpoint, bucket.
#[derive(Debug, Clone)]
pub struct BackendSpec {
    pub name: &'static str,
    pub endpoint: String,
    pub bucket: String,
}

/// What every process of one part of the bench shares.
#[derive(Debug, Clone)]
pub struct Shared {
    pub etcd: Vec<String>,
    /// Every key of this part under it.
    pub prefix: String,
    pub lease_ttl: Duration,
    pub primary: BackendSpec,
    pub secondary: BackendSpec,
}

impl Shared {
    fn ha(&self, node: &str) -> String {
        let etcd: Vec<String> = self.etcd.iter().map(|e| format!("{e:?}")).collect();
        format!(
            "[ha]\netcd = [{}]\nprefix = \"{}\"\nnode = \"{node}\"\nlease_ttl = \"{}s\"\n",
            etcd.join(", "),
            self.prefix,
            self.lease_ttl.as_secs()
        )
    }

    fn backends(&self) -> String {
        let backend = |b: &BackendSpec, role: &str| {
            let env = b.name.to_uppercase();
            format!(
                "\n[[backends]]\nname = \"{}\"\nendpoint = \"{}\"\nregion = \"us-east-1\"\nbucket = \"{}\"\nrole = \"{role}\"\npath_style = true\n\
                 credentials = {{ access_key_id_env = \"BENCH_{env}_KEY_ID\", secret_access_key_env = \"BENCH_{env}_SECRET\" }}\n",
                b.name, b.endpoint, b.bucket
            )
        };
        format!("{}{}", backend(&self.primary, "primary"), backend(&self.secondary, "secondary"))
    }

    /// A `cutover run` node named `node` with its API on `port`; `extra` is
    /// added (a `[runbooks]` or `[detect]` table).
    pub fn node(&self, node: &str, port: u16, extra: &str) -> String {
        format!(
            "[state]\npath = \"cutover.db\"\n\n[probe]\ninterval = \"1s\"\ntimeout = \"2s\"\n\n{}\n\
             [api]\nlisten = \"127.0.0.1:{port}\"\n[[api.tokens]]\nname = \"bench\"\nrole = \"viewer\"\nsha256 = \"{}\"\n\n{extra}\n{}",
            self.ha(node),
            hex::encode(sha2::Sha256::digest(BENCH_TOKEN)),
            self.backends()
        )
    }

    /// A `cutover gateway` named `name` listening on `port`.
    pub fn gateway(&self, name: &str, port: u16) -> String {
        format!(
            "[state]\npath = \"cutover.db\"\n\n{}\n[gateway]\nlisten = \"127.0.0.1:{port}\"\n\
             [[gateway.clients]]\naccess_key_id = \"{GATEWAY_KEY_ID}\"\nsecret_access_key_env = \"{GATEWAY_SECRET_ENV}\"\n\
             [[gateway.buckets]]\nname = \"app\"\nmode = \"active-passive\"\n{}",
            self.ha(name),
            self.backends()
        )
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn shared() -> Shared {
        let b =
            |name, port| BackendSpec { name, endpoint: format!("http://127.0.0.1:{port}"), bucket: "app-data".into() };
        Shared {
            etcd: vec!["http://127.0.0.1:2379".into(), "http://127.0.0.1:22379".into()],
            prefix: "/cutover-bench/takeover".into(),
            lease_ttl: Duration::from_secs(3),
            primary: b("primary", 9001),
            secondary: b("secondary", 9002),
        }
    }

    #[test]
    fn node_and_gateway_configurations_are_valid() {
        let set = |_: &str| Some("set".to_string());
        let node = shared().node("ctl-0", 8080, "");
        let c = cutover_core::config::load_str(&node, "node", Path::new("/"), &set).unwrap();
        let ha = c.ha.expect("an [ha] table");
        assert_eq!(ha.node, "ctl-0");
        assert_eq!(ha.timing.lease_ttl, Duration::from_secs(3));
        let gateway = shared().gateway("gw-1", 8081);
        cutover_core::config::load_str(&gateway, "gateway", Path::new("/"), &set).unwrap();
    }
}
