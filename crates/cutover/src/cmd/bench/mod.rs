//! `cutover bench detect`: over repeated trials per fault kind, the time from
//! the onset of an outage of the primary to the controller's confirmed
//! `failover` decision, and the false failovers on short SIGSTOP blips.
//!
//! Everything is real: two single-node Garage processes on loopback (kept for
//! the whole run) and, per trial, a fresh `cutover run` process (this same
//! binary) with a fresh state store and a generated configuration. The onset
//! is the wall-clock time just before the fault is injected (so the figures
//! include the few milliseconds the `kill` or `nft` command takes); the
//! decision time is the first `decision` event with action `failover` in the
//! incident's timeline, read through `GET /v1/incidents/{id}` (recorded with
//! millisecond precision by the controller when the policy decided). Trials
//! where another decision came first (an *interim* `await_approval` while the
//! independent re-check had not failed yet) are counted. Each trial injects
//! its fault at a pseudo-random phase of the probe interval.
//!
//! Fault kinds: `sigstop` (the primary hangs), `sigkill` (it crashes; it is
//! restarted afterwards), `nft-drop` (an nftables table `inet cutover_bench`
//! drops TCP to the primary's port on `lo`, a blackhole; needs root and
//! `nft`, skipped with a message otherwise; the table is deleted afterwards).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use clap::{Args, Subcommand, ValueEnum};
use cutover_core::config::Config;
use cutover_core::duration::format_duration;
use cutover_core::time::parse_rfc3339;
use cutover_lab::garage::{self, Garage};
use serde_json::{Value, json};
use sha2::Digest;

use crate::Failure;

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Time from the onset of an outage to the confirmed failover decision, and false failovers on blips.
    Detect(DetectArgs),
}

#[derive(Debug, Args)]
pub struct DetectArgs {
    /// Trials per fault kind.
    #[arg(long, default_value_t = 10, value_name = "N")]
    pub trials: usize,
    /// Fault kinds to measure, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "sigstop,sigkill,nft-drop")]
    pub kinds: Vec<FaultKind>,
    /// Short SIGSTOP blips that must not fail over [default: --trials].
    #[arg(long, value_name = "N")]
    pub blips: Option<usize>,
    /// Length of each blip.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    pub blip: Duration,
    /// TOML added to the generated configuration, e.g. a [detect] table to compare settings.
    #[arg(long, value_name = "FILE")]
    pub extra: Option<PathBuf>,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

/// How the primary is taken down.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FaultKind {
    /// SIGSTOP: the process hangs; connections are accepted but never answered.
    Sigstop,
    /// SIGKILL: the process is gone; connections are refused.
    Sigkill,
    /// An nftables rule drops TCP to the primary's port on lo: a blackhole.
    NftDrop,
}

impl FaultKind {
    fn as_str(self) -> &'static str {
        match self {
            FaultKind::Sigstop => "sigstop",
            FaultKind::Sigkill => "sigkill",
            FaultKind::NftDrop => "nft-drop",
        }
    }
}

/// The longest a trial waits for any one thing before it counts as failed.
const PATIENCE: Duration = Duration::from_secs(60);
/// How long after a blip ends a failover would still be a consequence of it.
const BLIP_AFTERMATH: Duration = Duration::from_secs(6);
const NFT_TABLE: &str = "cutover_bench";

pub fn run(command: BenchCommand) -> Result<(), Failure> {
    match command {
        BenchCommand::Detect(args) => detect(args),
    }
}

/// The measured outcome of one fault kind.
#[derive(Debug)]
struct KindReport {
    kind: FaultKind,
    /// Onset to decision, per decided trial.
    decided: Vec<Duration>,
    /// Onset to the first `healthy -> suspect` of the primary, per trial where the log shows it.
    suspect: Vec<Duration>,
    /// Trials where another decision came before the failover.
    interim: usize,
    errors: Vec<String>,
}

/// The outcome of the blips.
#[derive(Debug, Default)]
struct BlipReport {
    trials: usize,
    false_failovers: usize,
    down: usize,
    suspect: usize,
    /// The failing streaks the blips caused, as the controller measured them.
    streaks: Vec<Duration>,
    errors: Vec<String>,
}

/// What one outage trial measured.
#[derive(Debug)]
struct TrialOutcome {
    /// Onset to the first `failover` decision.
    decided: Duration,
    /// Onset to the first `healthy -> suspect` of the primary.
    suspect: Option<Duration>,
    /// The actions of the decisions recorded before it (e.g. `await_approval`
    /// while the independent re-check had not failed yet).
    interim: Vec<String>,
}

/// What one blip did.
#[derive(Debug)]
struct BlipOutcome {
    failover: bool,
    down: bool,
    suspect: bool,
    /// The longest failing streak of the primary that ended in a success.
    streak: Option<Duration>,
}

fn detect(args: DetectArgs) -> Result<(), Failure> {
    if args.trials == 0 {
        return Err(Failure::Usage("--trials must be at least 1".into()));
    }
    let extra = match &args.extra {
        Some(p) => std::fs::read_to_string(p).map_err(|e| Failure::Usage(format!("{}: {e}", p.display())))?,
        None => String::new(),
    };
    let settings = settings(&extra).map_err(Failure::Usage)?;
    if !garage::available() {
        return Err(Failure::Error(anyhow::anyhow!(
            "garage binary not found (set GARAGE_BIN, or `cargo install garage --locked`)"
        )));
    }
    let exe = std::env::current_exe().map_err(|e| Failure::Error(anyhow::anyhow!("finding this binary: {e}")))?;
    let start = |what| Garage::start("app-data").map_err(|e| Failure::Error(anyhow::anyhow!("starting {what}: {e}")));
    let mut lab = Lab { exe, extra, primary: start("the primary Garage")?, secondary: start("the secondary Garage")? };
    let blips = args.blips.unwrap_or(args.trials);
    eprintln!(
        "cutover bench detect: {} trials per kind ({}), {blips} blips of {}; {}",
        args.trials,
        args.kinds.iter().map(|k| k.as_str()).collect::<Vec<_>>().join(", "),
        format_duration(args.blip),
        describe(&settings)
    );

    let mut kinds = Vec::new();
    let mut skipped = Vec::new();
    for &kind in dedup(&args.kinds).iter() {
        if kind == FaultKind::NftDrop
            && let Err(why) = nft_usable()
        {
            eprintln!("skipping nft-drop: {why}");
            skipped.push(json!({"kind": kind.as_str(), "reason": why}));
            continue;
        }
        let mut r = KindReport { kind, decided: Vec::new(), suspect: Vec::new(), interim: 0, errors: Vec::new() };
        for i in 1..=args.trials {
            match lab.trial(kind, &settings) {
                Ok(t) => {
                    let interim = if t.interim.is_empty() {
                        String::new()
                    } else {
                        format!(" (after an interim {})", t.interim.join(", "))
                    };
                    let secs = t.decided.as_secs_f64();
                    eprintln!("{} {i}/{}: failover decision after {secs:.3} s{interim}", kind.as_str(), args.trials);
                    r.decided.push(t.decided);
                    r.suspect.extend(t.suspect);
                    r.interim += usize::from(!t.interim.is_empty());
                }
                Err(e) => {
                    eprintln!("{} {i}/{}: {e}", kind.as_str(), args.trials);
                    r.errors.push(e);
                }
            }
        }
        kinds.push(r);
    }
    let mut blip = BlipReport { trials: blips, ..BlipReport::default() };
    for i in 1..=blips {
        match lab.blip(args.blip, (i - 1, blips), &settings) {
            Ok(b) => {
                eprintln!(
                    "blip {i}/{blips}: {}{}",
                    if b.failover { "FALSE FAILOVER" } else { "no failover" },
                    b.streak.map(|s| format!(", failing streak {:.2} s", s.as_secs_f64())).unwrap_or_default()
                );
                blip.false_failovers += usize::from(b.failover);
                blip.down += usize::from(b.down);
                blip.suspect += usize::from(b.suspect);
                blip.streaks.extend(b.streak);
            }
            Err(e) => {
                eprintln!("blip {i}/{blips}: {e}");
                blip.errors.push(e);
            }
        }
    }

    let report = report_json(&kinds, &skipped, &blip, args.blip, &settings, args.extra.as_deref());
    if args.json {
        println!("{report}");
    } else {
        print_table(&kinds, &skipped, &blip, args.blip, &settings);
    }
    let failed = kinds.iter().any(|k| !k.errors.is_empty()) || blip.false_failovers > 0 || !blip.errors.is_empty();
    if failed { Err(Failure::Failed) } else { Ok(()) }
}

/// The Garage pair and what each trial needs to start a controller.
struct Lab {
    exe: PathBuf,
    extra: String,
    primary: Garage,
    secondary: Garage,
}

/// A `cutover run` process for one trial, stopped when dropped.
struct Controller {
    child: Child,
    port: u16,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

/// The configuration of a trial's controller: the API on `port`, `extra`,
/// and the two backends as (endpoint, bucket).
fn config_text(port: u16, extra: &str, primary: (&str, &str), secondary: (&str, &str)) -> String {
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
fn settings(extra: &str) -> Result<Config, String> {
    let set = |_: &str| Some("set".to_string());
    let text = config_text(1, extra, ("http://127.0.0.1:1", "app-data"), ("http://127.0.0.1:2", "app-data"));
    cutover_core::config::load_str(&text, "the generated configuration", Path::new("/"), &set)
        .map_err(|e| format!("{e}\n(check the file given with --extra)"))
}

impl Lab {
    fn config_text(&self, port: u16) -> String {
        let (p, s) = (self.primary.endpoint(), self.secondary.endpoint());
        config_text(port, &self.extra, (&p, &self.primary.bucket), (&s, &self.secondary.bucket))
    }

    fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("BENCH_PRIMARY_KEY_ID", self.primary.key_id.clone()),
            ("BENCH_PRIMARY_SECRET", self.primary.secret.clone()),
            ("BENCH_SECONDARY_KEY_ID", self.secondary.key_id.clone()),
            ("BENCH_SECONDARY_SECRET", self.secondary.secret.clone()),
        ]
    }

    /// Starts a fresh controller and waits until both backends are healthy.
    fn controller(&self) -> Result<Controller, String> {
        let dir = tempfile::tempdir().map_err(|e| format!("temporary directory: {e}"))?;
        let port = cutover_lab::free_port();
        let config = dir.path().join("cutover.toml");
        std::fs::write(&config, self.config_text(port)).map_err(|e| format!("writing the configuration: {e}"))?;
        let log = dir.path().join("run.log");
        let stdout = std::fs::File::create(&log).map_err(|e| format!("run.log: {e}"))?;
        let stderr = std::fs::File::create(dir.path().join("run.err")).map_err(|e| format!("run.err: {e}"))?;
        let child = Command::new(&self.exe)
            .arg("--config")
            .arg(&config)
            .arg("run")
            .envs(self.env())
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .spawn()
            .map_err(|e| format!("starting `cutover run`: {e}"))?;
        let c = Controller { child, port, log, _dir: dir };
        c.wait("both backends healthy", |c| {
            let s = c.json("/v1/status");
            s["active"] == "primary"
                && s["backends"].as_array().is_some_and(|b| b.iter().all(|b| b["health"] == "healthy"))
        })?;
        Ok(c)
    }

    /// One outage: the onset-to-decision time, and the onset-to-suspect time when the log shows it.
    fn trial(&mut self, kind: FaultKind, settings: &Config) -> Result<TrialOutcome, String> {
        let c = self.controller()?;
        std::thread::sleep(phase(settings.probe.interval));
        let onset = SystemTime::now();
        let injected = self.inject(kind);
        let outcome = injected.and_then(|()| {
            let (decision, interim) = c.wait_value("a failover decision", |c| {
                let incidents = c.json("/v1/incidents");
                let inc = incidents.as_array()?.iter().find(|i| i["backend"] == "primary")?;
                let detail = c.json(&format!("/v1/incidents/{}", inc["id"].as_str()?));
                let decisions: Vec<&Value> =
                    detail["timeline"].as_array()?.iter().filter(|e| e["kind"] == "decision").collect();
                let first = decisions.iter().position(|d| d["detail"]["action"] == "failover")?;
                let interim = decisions[..first].iter().map(|d| d["detail"]["action"].to_string()).collect();
                Some((decisions[first].clone(), interim))
            })?;
            let at = decision["at"].as_str().and_then(parse_rfc3339).ok_or("a decision without a time")?;
            let decided = at.duration_since(onset).map_err(|_| "a decision before the onset".to_string())?;
            Ok(TrialOutcome { decided, suspect: first_suspect(&c.log(), onset), interim })
        });
        drop(c);
        self.restore(kind)?;
        outcome
    }

    /// Blip `i` of `n`: whether it led to a failover decision, a down state,
    /// a suspect state. Blip `i` starts in the `i`-th `n`-th of the probe
    /// interval, so that the blips cover every phase of the probe cycle,
    /// including the worst (just before or just after a probe starts).
    fn blip(&mut self, length: Duration, (i, n): (usize, usize), settings: &Config) -> Result<BlipOutcome, String> {
        let c = self.controller()?;
        std::thread::sleep(stratified_phase(settings.probe.interval, i, n));
        let paused = self.primary.pause().map_err(|e| e.to_string());
        std::thread::sleep(length);
        self.primary.resume().map_err(|e| e.to_string())?;
        paused?;
        let resumed = Instant::now();
        c.wait("the primary healthy again", |c| {
            resumed.elapsed() >= BLIP_AFTERMATH
                && c.json("/v1/status")["backends"]
                    .as_array()
                    .is_some_and(|b| b.iter().any(|b| b["name"] == "primary" && b["health"] == "healthy"))
        })?;
        let incidents = c.json("/v1/incidents");
        let failover = incidents.as_array().is_some_and(|a| a.iter().any(|i| i["decision"]["action"] == "failover"));
        let log = c.log();
        Ok(BlipOutcome {
            failover,
            down: log.contains("health primary@local: suspect -> down"),
            suspect: log.contains("health primary@local: healthy -> suspect"),
            streak: longest_streak(&log),
        })
    }

    fn inject(&mut self, kind: FaultKind) -> Result<(), String> {
        match kind {
            FaultKind::Sigstop => self.primary.pause().map_err(|e| e.to_string()),
            FaultKind::Sigkill => {
                self.primary.kill();
                Ok(())
            }
            FaultKind::NftDrop => nft_drop(self.primary.s3_port),
        }
    }

    fn restore(&mut self, kind: FaultKind) -> Result<(), String> {
        match kind {
            FaultKind::Sigstop => self.primary.resume().map_err(|e| e.to_string()),
            FaultKind::Sigkill => self.primary.restart().map_err(|e| format!("restarting the primary: {e}")),
            FaultKind::NftDrop => nft_delete(),
        }
    }
}

/// The viewer token the trials' controller is configured with (loopback only).
const BENCH_TOKEN: &str = "cutover-bench-viewer";

impl Controller {
    fn get(&self, path: &str) -> Option<String> {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        let req = format!(
            "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {BENCH_TOKEN}\r\nConnection: close\r\n\r\n"
        );
        s.write_all(req.as_bytes()).ok()?;
        let mut out = String::new();
        s.read_to_string(&mut out).ok()?;
        out.split_once("\r\n\r\n").map(|(_, body)| body.to_string())
    }

    fn json(&self, path: &str) -> Value {
        self.get(path).and_then(|b| serde_json::from_str(&b).ok()).unwrap_or(Value::Null)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn wait(&self, what: &str, f: impl Fn(&Self) -> bool) -> Result<(), String> {
        self.wait_value(what, |c| f(c).then_some(()))
    }

    fn wait_value<T>(&self, what: &str, f: impl Fn(&Self) -> Option<T>) -> Result<T, String> {
        let start = Instant::now();
        loop {
            if let Some(v) = f(self) {
                return Ok(v);
            }
            if start.elapsed() > PATIENCE {
                let log = self.log();
                let lines: Vec<&str> = log.lines().collect();
                let tail = &lines[lines.len().saturating_sub(15)..];
                return Err(format!(
                    "no {what} within {}; controller log:\n{}",
                    format_duration(PATIENCE),
                    tail.join("\n")
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Controller {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The time from `onset` to the first `primary@local: healthy -> suspect` line.
fn first_suspect(log: &str, onset: SystemTime) -> Option<Duration> {
    log.lines()
        .filter(|l| l.contains(" health primary@local: healthy -> suspect"))
        .filter_map(|l| parse_rfc3339(l.split(' ').next()?))
        .find_map(|t| t.duration_since(onset).ok())
}

/// The longest `failing streak of N.NNs` that ended a suspect episode of the primary.
fn longest_streak(log: &str) -> Option<Duration> {
    log.lines()
        .filter(|l| l.contains(" health primary@local: suspect -> healthy"))
        .filter_map(|l| l.split("failing streak of ").nth(1)?.split('s').next()?.parse::<f64>().ok())
        .map(Duration::from_secs_f64)
        .max()
}

/// A pseudo-random delay in [1 s, 1 s + interval): the fault then lands at
/// any phase of the probe cycle (the probe loop's ticks are aligned with the
/// moment the controller first saw both backends healthy, give or take the
/// few milliseconds of a probe cycle).
fn phase(interval: Duration) -> Duration {
    Duration::from_secs(1) + interval.mul_f64(pseudo_random())
}

/// A pseudo-random delay in [1 s + interval·i/n, 1 s + interval·(i+1)/n).
fn stratified_phase(interval: Duration, i: usize, n: usize) -> Duration {
    let n = n.max(1) as f64;
    Duration::from_secs(1) + interval.mul_f64((i as f64 + pseudo_random()) / n)
}

/// A number in [0, 1) from the clock's nanoseconds.
fn pseudo_random() -> f64 {
    let nanos = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default().subsec_nanos() as u64;
    (nanos.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 11) as f64 / (1u64 << 53) as f64
}

fn dedup(kinds: &[FaultKind]) -> Vec<FaultKind> {
    let mut out: Vec<FaultKind> = Vec::new();
    for k in kinds {
        if !out.contains(k) {
            out.push(*k);
        }
    }
    out
}

fn nft(args: &[&str], stdin: Option<&str>) -> Result<(), String> {
    let mut child = Command::new("nft")
        .args(args)
        .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("nft: {e}"))?;
    if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(text.as_bytes()).map_err(|e| format!("nft: {e}"))?;
    }
    let out = child.wait_with_output().map_err(|e| format!("nft: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!("nft {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim()))
    }
}

/// Whether nftables can be used here (root, `nft` installed); removes a
/// table left behind by an interrupted run.
fn nft_usable() -> Result<(), String> {
    let _ = nft_delete();
    nft(&["add", "table", "inet", NFT_TABLE], None)?;
    nft_delete()
}

/// Drops TCP to `port` on lo, both ways through the output and input hooks.
fn nft_drop(port: u16) -> Result<(), String> {
    let rules = format!(
        "table inet {NFT_TABLE} {{\n\
         chain output {{ type filter hook output priority 0; policy accept; oifname \"lo\" tcp dport {port} drop; }}\n\
         chain input {{ type filter hook input priority 0; policy accept; iifname \"lo\" tcp dport {port} drop; }}\n}}\n"
    );
    nft(&["-f", "-"], Some(&rules))
}

fn nft_delete() -> Result<(), String> {
    nft(&["delete", "table", "inet", NFT_TABLE], None)
}

/// Median (mean of the two middle values for an even count), p90 (nearest
/// rank), min and max, in milliseconds.
fn stats(samples: &[Duration]) -> Option<(f64, f64, f64, f64)> {
    if samples.is_empty() {
        return None;
    }
    let mut ms: Vec<f64> = samples.iter().map(|d| d.as_secs_f64() * 1000.0).collect();
    ms.sort_by(f64::total_cmp);
    let n = ms.len();
    let median = if n % 2 == 1 { ms[n / 2] } else { (ms[n / 2 - 1] + ms[n / 2]) / 2.0 };
    let p90 = ms[(n * 9).div_ceil(10) - 1];
    Some((median, p90, ms[0], ms[n - 1]))
}

fn describe(c: &Config) -> String {
    format!(
        "probe.interval {}, detect.failures {}, detect.confirm_after {}, detect.slow_after {}, verify.interval {}, verify.timeout {}",
        format_duration(c.probe.interval),
        c.detect.failures,
        format_duration(c.detect.confirm_after),
        format_duration(c.detect.slow_after),
        format_duration(c.verify.interval),
        format_duration(c.verify.timeout),
    )
}

fn report_json(
    kinds: &[KindReport],
    skipped: &[Value],
    blip: &BlipReport,
    length: Duration,
    c: &Config,
    extra: Option<&Path>,
) -> Value {
    let round = |ms: f64| (ms * 10.0).round() / 10.0;
    let ms = |d: &Duration| round(d.as_secs_f64() * 1000.0);
    let kinds: Vec<Value> = kinds
        .iter()
        .map(|k| {
            let s = stats(&k.decided);
            json!({
                "kind": k.kind.as_str(),
                "trials": k.decided.len() + k.errors.len(),
                "decided": k.decided.len(),
                "decision_ms": k.decided.iter().map(ms).collect::<Vec<_>>(),
                "median_ms": s.map(|s| round(s.0)),
                "p90_ms": s.map(|s| round(s.1)),
                "min_ms": s.map(|s| round(s.2)),
                "max_ms": s.map(|s| round(s.3)),
                "suspect_median_ms": stats(&k.suspect).map(|s| round(s.0)),
                "interim_decisions": k.interim,
                "errors": k.errors,
            })
        })
        .collect();
    json!({
        "settings": {
            "probe_interval_ms": c.probe.interval.as_millis() as u64,
            "probe_timeout_ms": c.probe.timeout.as_millis() as u64,
            "failures": c.detect.failures,
            "confirm_after_ms": c.detect.confirm_after.as_millis() as u64,
            "slow_after_ms": c.detect.slow_after.as_millis() as u64,
            "verify_interval_ms": c.verify.interval.as_millis() as u64,
            "verify_timeout_ms": c.verify.timeout.as_millis() as u64,
            "extra": extra.map(|p| p.display().to_string()),
        },
        "kinds": kinds,
        "skipped": skipped,
        "blips": {
            "trials": blip.trials,
            "length_ms": length.as_millis() as u64,
            "false_failovers": blip.false_failovers,
            "down": blip.down,
            "suspect": blip.suspect,
            "streak_ms": blip.streaks.iter().map(ms).collect::<Vec<_>>(),
            "longest_streak_ms": blip.streaks.iter().max().map(ms),
            "errors": blip.errors,
        },
    })
}

fn print_table(kinds: &[KindReport], skipped: &[Value], blip: &BlipReport, length: Duration, c: &Config) {
    println!("onset of the outage -> confirmed failover decision ({})", describe(c));
    println!(
        "{:<10} {:>6} {:>8} {:>9} {:>9} {:>9} {:>9} {:>14} {:>8}",
        "kind", "trials", "decided", "median", "p90", "min", "max", "suspect (med)", "interim"
    );
    let secs = |ms: f64| format!("{:.2} s", ms / 1000.0);
    for k in kinds {
        let (median, p90, min, max) = match stats(&k.decided) {
            Some((a, b, c, d)) => (secs(a), secs(b), secs(c), secs(d)),
            None => ("-".into(), "-".into(), "-".into(), "-".into()),
        };
        let suspect = stats(&k.suspect).map_or("-".into(), |s| secs(s.0));
        println!(
            "{:<10} {:>6} {:>8} {median:>9} {p90:>9} {min:>9} {max:>9} {suspect:>14} {:>8}",
            k.kind.as_str(),
            k.decided.len() + k.errors.len(),
            k.decided.len(),
            k.interim,
        );
        for e in &k.errors {
            println!("  error: {}", e.lines().next().unwrap_or(""));
        }
    }
    for s in skipped {
        println!("{:<10} skipped: {}", s["kind"].as_str().unwrap_or(""), s["reason"].as_str().unwrap_or(""));
    }
    println!(
        "blips: {} SIGSTOP blips of {}: {} false failovers (suspect {}, down {}; longest failing streak {}, detect.confirm_after {})",
        blip.trials,
        format_duration(length),
        blip.false_failovers,
        blip.suspect,
        blip.down,
        blip.streaks.iter().max().map_or("-".into(), |d| format!("{:.2} s", d.as_secs_f64())),
        format_duration(c.detect.confirm_after),
    );
    for e in &blip.errors {
        println!("  error: {}", e.lines().next().unwrap_or(""));
    }
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    cutover_core::parse_duration(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_are_median_p90_min_max() {
        let d = |ms: &[u64]| ms.iter().map(|m| Duration::from_millis(*m)).collect::<Vec<_>>();
        assert_eq!(stats(&d(&[3000])), Some((3000.0, 3000.0, 3000.0, 3000.0)));
        assert_eq!(stats(&d(&[4000, 1000, 3000, 2000])), Some((2500.0, 4000.0, 1000.0, 4000.0)));
        let ten = d(&[10, 9, 8, 7, 6, 5, 4, 3, 2, 1]);
        assert_eq!(stats(&ten), Some((5.5, 9.0, 1.0, 10.0)));
        assert_eq!(stats(&[]), None);
    }

    #[test]
    fn the_first_suspect_line_after_the_onset_counts() {
        let onset = parse_rfc3339("2026-11-24T03:20:35.000Z").unwrap();
        let log = "2026-11-24T03:20:30.000Z health primary@local: healthy -> suspect (a probe failed)\n\
                   2026-11-24T03:20:35.500Z health secondary@local: healthy -> suspect (a probe failed)\n\
                   2026-11-24T03:20:36.250Z health primary@local: healthy -> suspect (a probe failed)\n";
        assert_eq!(first_suspect(log, onset), Some(Duration::from_millis(1250)));
    }

    #[test]
    fn the_longest_failing_streak_of_the_primary_is_found() {
        let log = "t health primary@local: suspect -> healthy (a probe succeeded again after a failing streak of 1.93s, before the outage was confirmed)\n\
                   t health secondary@local: suspect -> healthy (a probe succeeded again after a failing streak of 2.40s, before the outage was confirmed)\n\
                   t health primary@local: suspect -> healthy (a probe succeeded again after a failing streak of 2.04s, before the outage was confirmed)\n";
        assert_eq!(longest_streak(log), Some(Duration::from_millis(2040)));
        assert_eq!(longest_streak(""), None);
    }

    #[test]
    fn phases_spread_over_the_interval() {
        for _ in 0..100 {
            let p = phase(Duration::from_secs(1));
            assert!(p >= Duration::from_secs(1) && p < Duration::from_secs(2), "{p:?}");
        }
        for i in 0..10 {
            let p = stratified_phase(Duration::from_secs(1), i, 10);
            let lo = Duration::from_millis(1000 + 100 * i as u64);
            assert!(p >= lo && p < lo + Duration::from_millis(100), "{i}: {p:?}");
        }
    }
}
