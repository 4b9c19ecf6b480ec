//! `cutover demo`: the whole recovery on an embedded default, needing nothing
//! installed beyond the Rust toolchain (git is used when present).
//!
//! Two S3 backends run in this process (s3s-fs on temporary directories),
//! `cloud-a` (primary) and `cloud-b`, with the real controller, policy,
//! runbook engine and gateway of `cutover run` in front of them. A client
//! writes and reads through the gateway while `cloud-a` stops answering; the
//! controller detects, verifies, decides, runs the failover runbook
//! (switch, `git.set` into a temporary repository, validate, notify) and,
//! once `cloud-a` is back and stable, the fallback runbook (resync, switch
//! back, validate). The summary gives the time to detect, the RTO, the
//! client's failed requests, and the acknowledged writes lost (must be 0).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use cutover_core::Config;
use cutover_core::config::load_str;
use cutover_core::domain::IncidentState;
use cutover_lab::s3sfs::S3sFs;
use cutover_s3::{ClientOptions, Credentials, S3Client};
use cutover_store::AuditError;
use sha2::{Digest, Sha256};

use crate::wiring::{Running, start};
use crate::{Failure, runtime};

/// What the client saw.
#[derive(Debug, Default)]
struct ClientView {
    ok: AtomicU64,
    failed: AtomicU64,
    /// Acknowledged writes: key → SHA-256 of the body.
    acked: Mutex<BTreeMap<String, String>>,
}

pub fn run() -> Result<(), Failure> {
    let started = Instant::now();
    say("starting two S3 backends in this process (s3s-fs): cloud-a (primary) and cloud-b (secondary)");
    let a = S3sFs::start("app-data").context("starting cloud-a")?;
    let b = S3sFs::start("app-data").context("starting cloud-b")?;
    let dir = tempfile::tempdir().context("temporary directory")?;
    let repo = git_repo(dir.path());
    write_files(dir.path(), &a, &b, repo.as_deref())?;
    let config = load_str(
        &std::fs::read_to_string(dir.path().join("cutover.toml")).context("demo configuration")?,
        "demo cutover.toml",
        dir.path(),
        &|_| None,
    )
    .map_err(|e| Failure::Usage(e.to_string()))?;
    let rt = runtime();
    let result = rt.block_on(outage_and_recovery(config, dir.path(), &a));
    drop(rt);
    let s = result?;
    if s.report(started.elapsed()) { Ok(()) } else { Err(Failure::Failed) }
}

/// Runs cutover in front of `a` and a second backend while a client writes
/// and reads through its gateway; `a` stops answering, then answers again.
/// Every acknowledged write is read back through the gateway and from `a`.
async fn outage_and_recovery(config: Config, dir: &Path, a: &S3sFs) -> Result<Summary, Failure> {
    let direct_a = backend_client(&config, "cloud-a", a);
    let running = start(config.clone(), true).await?;
    say(&format!(
        "cutover is running: API http://{} · S3 gateway http://{} (bucket \"app\") · state {}",
        running.api.map(|a| a.to_string()).unwrap_or_default(),
        running.gateway.map(|a| a.to_string()).unwrap_or_default(),
        config.state.path.display()
    ));
    let gw = running.gateway.context("the gateway's address")?;
    let app = gateway_client(&config, dir, gw)?;
    running.wait_for("both backends healthy", Duration::from_secs(20), Running::all_healthy).await?;

    let view = Arc::new(ClientView::default());
    let stop = Arc::new(AtomicBool::new(false));
    let workload = tokio::spawn(workload(app.clone(), view.clone(), stop.clone()));
    tokio::time::sleep(Duration::from_secs(2)).await;

    say("injecting an outage: cloud-a stops answering (connections accepted, never served)");
    a.hang();
    let onset = Instant::now();
    running.wait_for("failover", Duration::from_secs(30), |r| state(r) == Some(IncidentState::FailedOver)).await?;
    let rto = onset.elapsed();
    let incident = running.latest_incident().context("an incident")?.id;
    let id = incident.clone();
    let opened = running.shared.controller.query(move |c, _| c.opened_instant(&id)).await;
    let detect = opened.ok().flatten().map(|t| t.duration_since(onset));
    say(&format!("validated switch to cloud-b {:.1}s after the onset; the client keeps writing", rto.as_secs_f64()));
    tokio::time::sleep(Duration::from_secs(2)).await;

    say("lifting the outage: cloud-a answers again; fallback waits for it to be stable");
    a.resume();
    let back = Instant::now();
    running.wait_for("fallback", Duration::from_secs(30), |r| state(r) == Some(IncidentState::Resolved)).await?;
    let fallback = back.elapsed();
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::SeqCst);
    let _ = workload.await;

    say("reading back every acknowledged write through the gateway and directly from cloud-a");
    let acked = view.acked.lock().unwrap().clone();
    let mut lost = 0;
    for (key, hash) in &acked {
        for client in [&app, &direct_a] {
            let ok = client.get_object(key, &[]).await.is_ok_and(|r| hex::encode(Sha256::digest(&r.body)) == *hash);
            if !ok {
                lost += 1;
                say(&format!("  LOST: {key} via {}", client.name()));
            }
        }
    }
    let audit = running.shared.store.verify_audit().map_err(anyhow::Error::from)?;
    running.shutdown().await;
    Ok(Summary {
        detect,
        rto,
        fallback,
        ok: view.ok.load(Ordering::SeqCst),
        failed: view.failed.load(Ordering::SeqCst),
        acked: acked.len(),
        lost,
        audit,
        incident,
    })
}

/// What the demo measured.
struct Summary {
    detect: Option<Duration>,
    rto: Duration,
    fallback: Duration,
    ok: u64,
    failed: u64,
    acked: usize,
    lost: usize,
    /// The audit chain's length, or where it breaks.
    audit: Result<usize, AuditError>,
    incident: String,
}

impl Summary {
    /// Prints the summary and the objectives; true when every one is met.
    fn report(&self, total: Duration) -> bool {
        let s = self;
        say(&format!("summary of incident {} ({:.1}s in all):", s.incident, total.as_secs_f64()));
        let secs = |d: Duration| format!("{:.1}s", d.as_secs_f64());
        say(&format!(
            "  time to detect (outage onset → incident opened): {}",
            s.detect.map(secs).unwrap_or("?".into())
        ));
        say(&format!("  RTO (outage onset → validated switch):            {}", secs(s.rto)));
        say(&format!("  fallback (cloud-a back → resynced, switched, validated): {}", secs(s.fallback)));
        say(&format!("  client requests: {} ok, {} failed", s.ok, s.failed));
        say(&format!("  acknowledged writes: {}, lost: {}", s.acked, s.lost));
        say(&format!(
            "  audit chain: {}",
            match &s.audit {
                Ok(n) => format!("{n} entries, verified"),
                Err(e) => format!("BROKEN: {e}"),
            }
        ));
        let objectives = [
            ("RTO within 10s", s.rto <= Duration::from_secs(10)),
            ("zero acknowledged writes lost", s.lost == 0 && s.acked > 0),
            ("audit chain verified", s.audit.is_ok()),
            ("finished within a minute", total <= Duration::from_secs(60)),
        ];
        for (what, ok) in objectives {
            say(&format!("  {} {what}", if ok { "met   " } else { "MISSED" }));
        }
        objectives.iter().all(|(_, ok)| *ok)
    }
}

fn say(line: &str) {
    println!("[demo] {line}");
}

/// A bare repository with `infra/vars.json`, when git is installed.
fn git_repo(dir: &Path) -> Option<std::path::PathBuf> {
    let git = |cwd: &Path, args: &[&str]| {
        std::process::Command::new("git")
            .current_dir(cwd)
            .args(["-c", "user.name=demo", "-c", "user.email=demo@localhost"])
            .args(args)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    let bare = dir.join("infra.git");
    let seed = dir.join("infra-seed");
    let ok = std::fs::create_dir_all(seed.join("infra")).is_ok()
        && std::fs::write(seed.join("infra/vars.json"), "{\n  \"active_provider\": \"cloud-a\"\n}\n").is_ok()
        && git(dir, &["init", "-q", "--bare", "-b", "main", "infra.git"])
        && git(&seed, &["init", "-q", "-b", "main"])
        && git(&seed, &["add", "."])
        && git(&seed, &["commit", "-q", "-m", "initial"])
        && git(&seed, &["push", "-q", bare.to_str()?, "main"]);
    if ok {
        Some(bare)
    } else {
        say("git is not installed: the demo runbook skips its git.set step");
        None
    }
}

fn write_files(dir: &Path, a: &S3sFs, b: &S3sFs, repo: Option<&Path>) -> Result<(), Failure> {
    let write =
        |name: &str, text: String| std::fs::write(dir.join(name), text).with_context(|| format!("writing {name}"));
    write(
        "credentials",
        format!(
            "[cloud-a]\naws_access_key_id = {}\naws_secret_access_key = {}\n[cloud-b]\naws_access_key_id = {}\naws_secret_access_key = {}\n",
            a.key_id, a.secret, b.key_id, b.secret
        ),
    )?;
    write("gateway.secret", "demo-app-secret-0123456789\n".into())?;
    let git_step = repo
        .map(|r| {
            format!(
                "\n[[steps]]\nname = \"terraform vars\"\nuses = \"git.set\"\n\
                 with = {{ repo = \"{r}\", file = \"infra/vars.json\", key = \"active_provider\", value = \"{{{{ target }}}}\", \
                 branch = \"main\", message = \"cutover: {{{{ kind }}}} to {{{{ target }}}} ({{{{ incident.id }}}})\" }}\n\
                 undo = {{ uses = \"git.set\", with = {{ repo = \"{r}\", file = \"infra/vars.json\", key = \"active_provider\", \
                 value = \"{{{{ source }}}}\", branch = \"main\", message = \"cutover: undo ({{{{ incident.id }}}})\" }} }}\n",
                r = r.display()
            )
        })
        .unwrap_or_default();
    write(
        "failover.toml",
        format!(
            "[[steps]]\nname = \"switch the gateway\"\nuses = \"state.switch\"\nwith = {{ to = \"{{{{ target }}}}\" }}\ntimeout = \"5s\"\n\
             {git_step}\n\
             [[steps]]\nname = \"smoke-test the target\"\nuses = \"validate\"\nwith = {{ backend = \"{{{{ target }}}}\" }}\ntimeout = \"20s\"\n\n\
             [[steps]]\nname = \"tell the team\"\nuses = \"notify\"\nwith = {{ url = \"-\" }}\n"
        ),
    )?;
    let backend = |name: &str, role: &str, s: &S3sFs| {
        format!(
            "[[backends]]\nname = \"{name}\"\nendpoint = \"{}\"\nregion = \"us-east-1\"\nbucket = \"app-data\"\nrole = \"{role}\"\n\
             path_style = true\ncredentials = {{ file = \"credentials\", profile = \"{name}\" }}\n",
            s.endpoint()
        )
    };
    write(
        "cutover.toml",
        format!(
            "[state]\npath = \"cutover.db\"\n[api]\nlisten = \"127.0.0.1:0\"\n\
             [probe]\ninterval = \"500ms\"\ntimeout = \"1s\"\n\
             [runbooks]\nfailover = \"failover.toml\"\n\
             [fallback]\nstable_for = \"3s\"\nmin_dwell = \"3s\"\n\n{}\n{}\n\
             [gateway]\nlisten = \"127.0.0.1:0\"\n[[gateway.clients]]\naccess_key_id = \"DEMOAPPKEY\"\n\
             secret_access_key_file = \"gateway.secret\"\n[[gateway.buckets]]\nname = \"app\"\nmode = \"dual-write\"\nack = \"active-journal\"\n",
            backend("cloud-a", "primary", a),
            backend("cloud-b", "secondary", b)
        ),
    )?;
    Ok(())
}

/// The application's client: it speaks S3 to the gateway, nothing else.
fn gateway_client(config: &Config, dir: &Path, addr: std::net::SocketAddr) -> Result<S3Client, Failure> {
    let mut b = config.backends[0].clone();
    b.name = "gateway".into();
    b.bucket = "app".into();
    b.endpoint = cutover_core::Endpoint::parse(&format!("http://{addr}")).map_err(|e| Failure::Usage(e.to_string()))?;
    let secret = std::fs::read_to_string(dir.join("gateway.secret")).context("gateway secret")?;
    Ok(S3Client::new(&b, creds("DEMOAPPKEY", secret.trim()), ClientOptions::probe(Duration::from_secs(2))))
}

fn backend_client(config: &Config, name: &str, s: &S3sFs) -> S3Client {
    let b = config.backend(name).expect("demo backend");
    S3Client::new(b, creds(&s.key_id, &s.secret), ClientOptions::probe(Duration::from_secs(5)))
}

fn creds(id: &str, secret: &str) -> Credentials {
    Credentials {
        access_key_id: id.to_string(),
        secret_access_key: cutover_core::Secret::new(secret.to_string()),
        session_token: None,
    }
}

/// Writes a new key every 50 ms and reads the previous one back, printing
/// what the client sees every second.
async fn workload(client: S3Client, view: Arc<ClientView>, stop: Arc<AtomicBool>) {
    let mut i = 0u64;
    let mut last_report = Instant::now();
    let (mut ok_s, mut failed_s) = (0u64, 0u64);
    while !stop.load(Ordering::SeqCst) {
        let key = format!("orders/{i:05}.json");
        let body = Bytes::from(format!("{{\"order\": {i}, \"note\": \"written through the gateway\"}}"));
        let hash = hex::encode(Sha256::digest(&body));
        match client.put_object(&key, body, &[]).await {
            Ok(_) => {
                view.acked.lock().unwrap().insert(key.clone(), hash);
                view.ok.fetch_add(1, Ordering::SeqCst);
                ok_s += 1;
                if client.get_object(&key, &[]).await.is_ok() {
                    view.ok.fetch_add(1, Ordering::SeqCst);
                    ok_s += 1;
                } else {
                    view.failed.fetch_add(1, Ordering::SeqCst);
                    failed_s += 1;
                }
            }
            Err(_) => {
                view.failed.fetch_add(1, Ordering::SeqCst);
                failed_s += 1;
            }
        }
        i += 1;
        if last_report.elapsed() >= Duration::from_secs(1) {
            println!("[client] last second: {ok_s} requests ok, {failed_s} failed");
            (ok_s, failed_s, last_report) = (0, 0, Instant::now());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn state(r: &Running) -> Option<IncidentState> {
    r.latest_incident().map(|i| i.state)
}
