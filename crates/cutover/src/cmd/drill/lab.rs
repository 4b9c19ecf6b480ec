//! `--lab`: the drill's own backends, for benchmarks and trying drills out.

use anyhow::Context;
use cutover_core::Config;

use crate::Failure;

/// `--lab`: two Garage backends, a chaos proxy in front of the first.
pub struct DrillLab {
    _a: cutover_lab::garage::Garage,
    _b: cutover_lab::garage::Garage,
    _proxy: cutover_chaos::Proxy,
    _dir: tempfile::TempDir,
    pub config: Config,
    pub control: std::net::SocketAddr,
    /// The primary without the proxy.
    pub direct: String,
}

impl DrillLab {
    pub fn start() -> Result<Self, Failure> {
        let lab = |e: cutover_lab::LabError| Failure::Error(anyhow::anyhow!("--lab: {e}"));
        let a = cutover_lab::garage::Garage::start("drill-a").map_err(lab)?;
        let b = cutover_lab::garage::Garage::start("drill-b").map_err(lab)?;
        let upstream = a.endpoint().trim_start_matches("http://").trim_end_matches('/').to_string();
        let proxy = cutover_chaos::Proxy::start("127.0.0.1:0".parse().expect("address"), &upstream)
            .map_err(|e| Failure::Error(anyhow::anyhow!("--lab: chaos proxy: {e}")))?;
        let control = proxy
            .serve_control("127.0.0.1:0".parse().expect("address"))
            .map_err(|e| Failure::Error(anyhow::anyhow!("--lab: chaos control: {e}")))?;
        let dir = tempfile::tempdir().context("temporary directory")?;
        std::fs::write(
            dir.path().join("credentials"),
            format!(
                "[a]\naws_access_key_id = {}\naws_secret_access_key = {}\n[b]\naws_access_key_id = {}\naws_secret_access_key = {}\n",
                a.key_id, a.secret, b.key_id, b.secret
            ),
        )
        .context("credentials")?;
        let text = format!(
            "[[backends]]\nname = \"primary\"\nendpoint = \"http://{}\"\nregion = \"garage\"\nbucket = \"{}\"\nrole = \"primary\"\n\
             credentials = {{ file = \"credentials\", profile = \"a\" }}\n\
             [[backends]]\nname = \"secondary\"\nendpoint = \"{}\"\nregion = \"garage\"\nbucket = \"{}\"\nrole = \"secondary\"\n\
             credentials = {{ file = \"credentials\", profile = \"b\" }}\n",
            proxy.addr(),
            a.bucket,
            b.endpoint(),
            b.bucket
        );
        let config = cutover_core::config::load_str(&text, "--lab", dir.path(), &|_| None)
            .map_err(|e| Failure::Usage(e.to_string()))?;
        let direct = a.endpoint();
        Ok(Self { _a: a, _b: b, _proxy: proxy, _dir: dir, config, control, direct })
    }
}
