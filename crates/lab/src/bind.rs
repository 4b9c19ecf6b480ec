//! A BIND 9 name server (Debian's `bind9`) on a free loopback port, primary
//! for one zone that a TSIG key may update, for the `dns.update` tests.
//! `dig` (Debian's `bind9-dnsutils`) reads its answers.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;

use crate::{LabError, free_port};

/// The name of the key that [`Bind`] lets update its zone.
pub const KEY_NAME: &str = "cutover";

fn bin(name: &str, env: &str) -> Option<PathBuf> {
    if let Ok(p) = std::env::var(env) {
        return Some(p.into());
    }
    let path = std::env::var("PATH").unwrap_or_default();
    path.split(':').chain(["/usr/sbin", "/usr/bin"]).map(|d| Path::new(d).join(name)).find(|p| p.is_file())
}

/// True when `named` and `dig` can be found (`NAMED_BIN`, `DIG_BIN`, or the
/// path).
pub fn available() -> bool {
    bin("named", "NAMED_BIN").is_some() && bin("dig", "DIG_BIN").is_some()
}

/// A running `named`; killed when dropped.
#[derive(Debug)]
pub struct Bind {
    dir: tempfile::TempDir,
    pub port: u16,
    pub zone: String,
    /// `hmac-sha256` or `hmac-sha512`.
    pub algorithm: String,
    secret: String,
    child: Child,
}

impl Bind {
    /// Starts `named -g` as primary for `zone`, whose file holds an SOA
    /// (serial 1), an NS and `records` (zone-file lines such as
    /// `s3 300 IN CNAME primary.storage`); a new random key [`KEY_NAME`] of
    /// `algorithm` may update any name in the zone. A port taken between its
    /// choice and named's bind makes it start again, up to three times.
    pub fn start(zone: &str, records: &[&str], algorithm: &str) -> Result<Self, LabError> {
        Self::start_with_policy(zone, records, algorithm, &format!("grant {KEY_NAME} zonesub ANY;"))
    }

    /// [`Bind::start`] with the zone's `update-policy` rules (such as
    /// `grant cutover name s3.example.test. CNAME;`).
    pub fn start_with_policy(zone: &str, records: &[&str], algorithm: &str, policy: &str) -> Result<Self, LabError> {
        crate::on_free_ports(
            || Self::start_once(zone, records, algorithm, policy),
            |why| why.contains("address in use"),
        )
    }

    fn start_once(zone: &str, records: &[&str], algorithm: &str, policy: &str) -> Result<Self, LabError> {
        let named = bin("named", "NAMED_BIN").ok_or_else(|| missing("named"))?;
        let dir = tempfile::tempdir().map_err(|source| LabError::Io { what: "temporary directory".into(), source })?;
        let port = free_port();
        let mut secret = [0u8; 32];
        fastrand::fill(&mut secret);
        let secret = base64::engine::general_purpose::STANDARD.encode(secret);
        let conf = format!(
            r#"options {{
    directory "{dir}";
    pid-file none;
    session-keyfile none;
    listen-on port {port} {{ 127.0.0.1; }};
    listen-on-v6 {{ none; }};
    recursion no;
    dnssec-validation no;
    notify no;
}};
controls {{ }};
key "{KEY_NAME}" {{ algorithm {algorithm}; secret "{secret}"; }};
zone "{zone}" {{
    type primary;
    file "zone.db";
    update-policy {{ {policy} }};
}};
"#,
            dir = dir.path().display()
        );
        let mut zone_file = format!(
            "$ORIGIN {zone}.\n$TTL 300\n@ IN SOA ns1 hostmaster 1 3600 600 86400 60\n@ IN NS ns1\nns1 IN A 127.0.0.1\n"
        );
        for r in records {
            zone_file.push_str(r);
            zone_file.push('\n');
        }
        let write = |name: &str, text: &str| {
            std::fs::write(dir.path().join(name), text)
                .map_err(|source| LabError::Io { what: format!("writing {name}"), source })
        };
        write("named.conf", &conf)?;
        write("zone.db", &zone_file)?;
        let log_path = dir.path().join("named.log");
        let log =
            std::fs::File::create(&log_path).map_err(|source| LabError::Io { what: "named.log".into(), source })?;
        let child = Command::new(named)
            .arg("-g")
            .arg("-c")
            .arg(dir.path().join("named.conf"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|source| LabError::Io { what: "spawn named".into(), source })?;
        let bind = Bind { dir, port, zone: zone.to_string(), algorithm: algorithm.to_string(), secret, child };
        bind.wait_ready(Duration::from_secs(30))?;
        Ok(bind)
    }

    /// Waits until named says it is running and answers for its zone.
    fn wait_ready(&self, limit: Duration) -> Result<(), LabError> {
        let start = Instant::now();
        loop {
            let log = self.log();
            if log.contains("address in use") {
                return Err(LabError::NotReady(format!("named on port {}: address in use", self.port)));
            }
            if log.contains("exiting (due to fatal error)") || log.contains("loading configuration: failure") {
                return Err(LabError::NotReady(format!("named did not start:\n{log}")));
            }
            if log.lines().any(|l| l.ends_with(" running")) && self.dig(&self.zone, "SOA").is_ok_and(|a| !a.is_empty())
            {
                return Ok(());
            }
            if start.elapsed() > limit {
                return Err(LabError::NotReady(format!("named not ready within {limit:?}:\n{log}")));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// named's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("named.log")).unwrap_or_default()
    }

    /// `127.0.0.1:port`.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The key's secret, base64.
    pub fn secret(&self) -> &str {
        &self.secret
    }

    /// Writes the key as `tsig-keygen` does (a `key` clause) and returns the
    /// file's path.
    pub fn key_file(&self) -> Result<PathBuf, LabError> {
        let path = self.dir.path().join("cutover.key");
        let text =
            format!("key \"{KEY_NAME}\" {{\n\talgorithm {};\n\tsecret \"{}\";\n}};\n", self.algorithm, self.secret);
        std::fs::write(&path, text).map_err(|source| LabError::Io { what: "writing the key file".into(), source })?;
        Ok(path)
    }

    /// The answer section of `dig @127.0.0.1 -p PORT +tcp NAME TYPE`, one
    /// record a line as `name ttl class type data`.
    pub fn dig(&self, name: &str, rtype: &str) -> Result<Vec<String>, LabError> {
        let dig = bin("dig", "DIG_BIN").ok_or_else(|| missing("dig"))?;
        let out = Command::new(dig)
            .args(["@127.0.0.1", "-p", &self.port.to_string(), "+tcp", "+norecurse", "+noall", "+answer"])
            .args(["+time=5", "+tries=1", name, rtype])
            .output()
            .map_err(|source| LabError::Io { what: "dig".into(), source })?;
        if !out.status.success() {
            return Err(LabError::NotReady(format!("dig {name} {rtype}: {}", String::from_utf8_lossy(&out.stdout))));
        }
        let text = String::from_utf8_lossy(&out.stdout);
        Ok(text.lines().map(|l| l.split_whitespace().collect::<Vec<_>>().join(" ")).filter(|l| !l.is_empty()).collect())
    }

    /// Sends `commands` (nsupdate's syntax, such as `update delete s3 CNAME`)
    /// with `nsupdate -v` over TCP and the server's key: a human's change.
    pub fn nsupdate(&self, commands: &str) -> Result<(), LabError> {
        use std::io::Write;
        let io = |source| LabError::Io { what: "nsupdate".into(), source };
        let key = self.key_file()?;
        let script = format!("server 127.0.0.1 {}\nzone {}\n{commands}\nsend\n", self.port, self.zone);
        let mut child = Command::new(bin("nsupdate", "NSUPDATE_BIN").ok_or_else(|| missing("nsupdate"))?)
            .arg("-v")
            .arg("-k")
            .arg(&key)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(io)?;
        child.stdin.take().expect("piped").write_all(script.as_bytes()).map_err(io)?;
        let out = child.wait_with_output().map_err(io)?;
        if !out.status.success() {
            return Err(LabError::NotReady(format!("nsupdate: {}", String::from_utf8_lossy(&out.stderr))));
        }
        Ok(())
    }

    /// The zone's SOA serial, read with `dig`.
    pub fn serial(&self) -> Result<u32, LabError> {
        let lines = self.dig(&self.zone, "SOA")?;
        lines
            .first()
            .and_then(|l| l.split(' ').nth(6))
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| LabError::NotReady(format!("no SOA serial in {lines:?}")))
    }
}

fn missing(what: &str) -> LabError {
    LabError::NotReady(format!(
        "{what} not found (`apt-get install bind9 bind9-dnsutils`, as .ci/run does; or set NAMED_BIN / DIG_BIN)"
    ))
}

impl Drop for Bind {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
