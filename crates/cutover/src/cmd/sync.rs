//! `cutover sync`, `cutover check` and `cutover replicate`: thin wiring of
//! the sync engine (crates/sync) to the configuration and the terminal.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use clap::Args;
use cutover_core::Config;
use cutover_s3::ClientOptions;
use cutover_sync::{
    Filter, Location, Mode, ReplicationMetrics, Side, Store, Summary, SyncEvent, SyncOptions, SyncOutcome,
};
use serde_json::json;

use crate::Failure;
use crate::cli::Global;
use crate::{load, runtime};

mod metrics;
mod progress;
mod size;

use progress::Display;
use size::parse_size;

/// How often `replicate` records the lag in the state store during a round.
const LAG_SAVE_EVERY: Duration = Duration::from_secs(5);

/// What sync and check share.
#[derive(Debug, Args)]
pub struct Common {
    /// Source: BACKEND[:PREFIX], a backend name from the configuration.
    pub src: String,
    /// Destination: BACKEND[:PREFIX].
    pub dst: String,
    /// Only keys (relative to the prefix) matching this glob (`*`, `**`, `?`); repeatable.
    #[arg(long, value_name = "GLOB")]
    pub include: Vec<String>,
    /// Skip keys matching this glob; repeatable. Excluded keys are never deleted.
    #[arg(long, value_name = "GLOB")]
    pub exclude: Vec<String>,
    /// Objects copied or compared at once (adapts down on SlowDown/503).
    #[arg(long, default_value_t = 32, value_name = "N")]
    pub concurrency: usize,
    /// Compare objects whose ETags cannot decide (multipart, SSE) by streaming an MD5 of both.
    #[arg(long)]
    pub checksum: bool,
    /// Print a JSON summary on stdout.
    #[arg(long)]
    pub json: bool,
    /// Deadline of each S3 request (a whole part or small object).
    #[arg(long, default_value = "5m", value_parser = parse_duration)]
    pub timeout: Duration,
}

#[derive(Debug, Args)]
pub struct SyncArgs {
    #[command(flatten)]
    pub common: Common,
    /// Also delete destination objects that the source does not have (mirror).
    #[arg(long)]
    pub delete: bool,
    /// Show what would be copied and deleted; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Never delete more than N objects (refuse the deletes otherwise).
    #[arg(long, value_name = "N")]
    pub max_delete: Option<u64>,
    /// Allow deleting more than 10% of the destination.
    #[arg(long)]
    pub force: bool,
    /// Allow --delete to empty the destination when the source is empty.
    #[arg(long)]
    pub allow_empty_source: bool,
    /// Continue an interrupted sync from its checkpoint.
    #[arg(long)]
    pub resume: bool,
    /// Objects of at least this size are copied in parts.
    #[arg(long, default_value = "64MiB", value_parser = parse_size)]
    pub multipart_threshold: u64,
    /// Part size of multipart copies (at least 5 MiB).
    #[arg(long, default_value = "16MiB", value_parser = parse_size)]
    pub part_size: u64,
    /// How often to print a progress line on stderr (0s: never).
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    pub progress_interval: Duration,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    #[command(flatten)]
    pub common: Common,
}

#[derive(Debug, Args)]
pub struct ReplicateArgs {
    #[command(flatten)]
    pub sync: SyncArgs,
    /// Pause between rounds.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub interval: Duration,
    /// Stop after this many rounds (default: until interrupted).
    #[arg(long, value_name = "N")]
    pub rounds: Option<u64>,
    /// Serve the replication lag on http://ADDR/metrics (Prometheus text format).
    #[arg(long, value_name = "ADDR")]
    pub metrics_listen: Option<SocketAddr>,
}

fn parse_duration(s: &str) -> Result<Duration, cutover_core::DurationError> {
    cutover_core::parse_duration(s)
}

fn side(config: &Config, spec: &str, timeout: Duration, what: &str) -> Result<Side, Failure> {
    let location = Location::parse(spec).map_err(|e| Failure::Usage(format!("error: {what} {e}")))?;
    let backend = config.backend(&location.backend).ok_or_else(|| {
        Failure::Usage(format!(
            "error: unknown backend {:?} in {what} {spec:?} (configured: {})",
            location.backend,
            config.backend_names().join(", ")
        ))
    })?;
    let connect_timeout = Duration::from_secs(10);
    let client = load::client(backend, ClientOptions { timeout, connect_timeout, pooled: true })?;
    let get_client = load::client(backend, ClientOptions { timeout, connect_timeout, pooled: false })?;
    Ok(Side { location, client, get_client })
}

fn options(c: &Common, mode: Mode) -> SyncOptions {
    SyncOptions {
        mode,
        checksum: c.checksum,
        filter: Filter::new(c.include.clone(), c.exclude.clone()),
        concurrency: c.concurrency.max(1),
        ..SyncOptions::default()
    }
}

/// The sync options, with progress as often as `display` wants it.
fn sync_options(a: &SyncArgs, display: &Display) -> SyncOptions {
    SyncOptions {
        dry_run: a.dry_run,
        max_delete: a.max_delete,
        force: a.force,
        allow_empty_source: a.allow_empty_source,
        resume: a.resume,
        multipart_threshold: a.multipart_threshold,
        part_size: a.part_size,
        progress_every: display.every(progress_every(a)),
        count_ahead: display.counts_ahead(),
        ..options(&a.common, if a.delete { Mode::Mirror } else { Mode::Copy })
    }
}

/// `--progress-interval`, `None` for 0s (never).
fn progress_every(a: &SyncArgs) -> Option<Duration> {
    (!a.progress_interval.is_zero()).then_some(a.progress_interval)
}

fn store(config: &Config) -> Result<Store, Failure> {
    Store::open(&config.state.path).map_err(|e| Failure::Usage(format!("error: {e}")))
}

/// Prints events as they come: differences and dry-run actions on stdout,
/// progress and failures on stderr; progress as a bar on a terminal.
fn reporter(json: bool, dry_run: bool, display: &Display) -> impl Fn(SyncEvent<'_>) + Sync + '_ {
    move |event| match event {
        SyncEvent::Progress(p) if display.progress(&p) => {}
        event => display.print(|| print_event(json, dry_run, event)),
    }
}

fn print_event(json: bool, dry_run: bool, event: SyncEvent<'_>) {
    match event {
        SyncEvent::Difference { key, verdict } if !json => {
            let v = serde_json::to_value(verdict).ok().and_then(|v| v.as_str().map(str::to_string));
            let v = v.unwrap_or_default();
            if dry_run {
                if v == "extra" {
                    println!("extra {key}");
                } else {
                    println!("would copy {key} ({v})");
                }
            } else {
                println!("{v} {key}");
            }
        }
        SyncEvent::Difference { .. } => {}
        SyncEvent::WouldDelete { key } if !json => println!("would delete {key}"),
        SyncEvent::WouldDelete { .. } => {}
        SyncEvent::Failed { key, error } => eprintln!("failed {key}: {error}"),
        SyncEvent::Progress(p) => eprintln!(
            "progress: {} copied ({:.1} MB), {} skipped, {} failed, {} in flight, {:.0} objects/s, {:.1} MB/s, {:.1}s",
            p.copied,
            p.bytes as f64 / 1e6,
            p.skipped,
            p.failed,
            p.in_flight,
            (p.copied + p.skipped) as f64 / p.seconds.max(1e-9),
            p.bytes as f64 / 1e6 / p.seconds.max(1e-9),
            p.seconds
        ),
        SyncEvent::Resumed { after } => eprintln!("resuming after {after:?}"),
        SyncEvent::AbortedUpload { key } => {
            eprintln!("aborted the multipart upload of {key} left by an interrupted run")
        }
        SyncEvent::Refused(r) => eprintln!("{r}"),
    }
}

fn summary_line(s: &Summary) -> String {
    let mut line = format!(
        "copied {}, skipped {}, deleted {}, failed {}, {:.1} MB in {:.2}s: {:.0} objects/s, {:.1} MB/s",
        s.copied,
        s.skipped,
        s.deleted,
        s.failed,
        s.bytes as f64 / 1e6,
        s.seconds,
        s.objects_per_second(),
        s.megabytes_per_second()
    );
    if s.retries > 0 {
        line += &format!("; {} retries ({} throttled)", s.retries, s.throttled);
    }
    line
}

/// A dry run copies nothing: it says what a real run would do.
fn dry_run_line(s: &Summary, delete: bool) -> String {
    let copy = s.new + s.changed;
    let mut line = format!(
        "dry run: would copy {copy} ({} new, {} changed, {:.1} MB)",
        s.new,
        s.changed,
        s.pending_bytes as f64 / 1e6
    );
    if delete {
        line += &format!(" and delete {}", s.extra);
    } else if s.extra > 0 {
        line += &format!(", {} only on the destination (kept; --delete removes them)", s.extra);
    }
    line += &format!(", {} equal; nothing was changed", s.skipped);
    line
}

fn summary_json(s: &Summary) -> serde_json::Value {
    let mut v = serde_json::to_value(s).expect("summary serializes");
    v["objects_per_second"] = json!(s.objects_per_second());
    v["megabytes_per_second"] = json!(s.megabytes_per_second());
    v["lag_oldest_seconds"] = json!(s.lag().oldest_age.map(|d| d.as_secs_f64()));
    v
}

fn finish(result: Result<Summary, cutover_sync::SyncError>, json: bool) -> Result<Summary, Failure> {
    let s = match result {
        Ok(s) => s,
        Err(cutover_sync::SyncError::Options(m)) => return Err(Failure::Usage(format!("error: {m}"))),
        Err(e) => return Err(Failure::Error(e.into())),
    };
    if json {
        println!("{}", summary_json(&s));
    }
    Ok(s)
}

fn exit(s: &Summary) -> Result<(), Failure> {
    match s.outcome {
        SyncOutcome::Ok => Ok(()),
        SyncOutcome::Differences | SyncOutcome::Failed | SyncOutcome::Refused => Err(Failure::Failed),
    }
}

pub fn sync(global: &Global, args: SyncArgs) -> Result<(), Failure> {
    let config = load::config(global)?;
    let src = side(&config, &args.common.src, args.common.timeout, "SRC")?;
    let dst = side(&config, &args.common.dst, args.common.timeout, "DST")?;
    let display = Display::new(progress_every(&args));
    let opts = sync_options(&args, &display);
    let store = if args.dry_run { None } else { Some(store(&config)?) };
    let report = reporter(args.common.json, args.dry_run, &display);
    let result = runtime().block_on(cutover_sync::run(&src, &dst, &opts, store.as_ref(), &report));
    display.finish();
    let s = finish(result, args.common.json)?;
    if !args.common.json {
        if args.dry_run {
            println!("{}", dry_run_line(&s, args.delete));
        } else {
            println!("{}", summary_line(&s));
        }
    }
    exit(&s)
}

pub fn check(global: &Global, args: CheckArgs) -> Result<(), Failure> {
    let config = load::config(global)?;
    let src = side(&config, &args.common.src, args.common.timeout, "SRC")?;
    let dst = side(&config, &args.common.dst, args.common.timeout, "DST")?;
    let opts = options(&args.common, Mode::Check);
    let differences = Mutex::new(Vec::new());
    let json = args.common.json;
    let report = |e: SyncEvent<'_>| {
        if let SyncEvent::Difference { key, verdict } = &e
            && json
        {
            let mut d = differences.lock().expect("lock");
            if d.len() < 10_000 {
                d.push(json!({"key": key, "verdict": verdict}));
            }
        }
        reporter(json, false, &Display::Lines)(e)
    };
    let result = runtime().block_on(cutover_sync::run(&src, &dst, &opts, None, &report));
    let s = match result {
        Ok(s) => s,
        Err(e) => return Err(Failure::Error(e.into())),
    };
    let diffs = s.pending_objects + s.extra;
    if json {
        let mut v = summary_json(&s);
        v["differences"] = json!(differences.into_inner().expect("lock"));
        println!("{v}");
    } else {
        eprintln!(
            "{diffs} differences ({} new, {} changed, {} only on the destination), {} equal",
            s.new, s.changed, s.extra, s.skipped
        );
    }
    exit(&s)
}

/// Records the lag in the state store; a failure is a warning, not a failed round.
fn save_lag(store: &Store, metrics: &ReplicationMetrics) {
    if let Some(record) = metrics.record(SystemTime::now())
        && let Err(e) = store.save_lag(&record)
    {
        eprintln!("warning: could not record the replication lag: {e}");
    }
}

pub fn replicate(global: &Global, args: ReplicateArgs) -> Result<(), Failure> {
    let config = load::config(global)?;
    let c = &args.sync.common;
    let src = side(&config, &c.src, c.timeout, "SRC")?;
    let dst = side(&config, &c.dst, c.timeout, "DST")?;
    let display = Display::new(progress_every(&args.sync));
    let opts = SyncOptions { resume: false, ..sync_options(&args.sync, &display) };
    let store = store(&config)?;
    let metrics = Arc::new(ReplicationMetrics::new(&src.location, &dst.location));
    let base = reporter(c.json, args.sync.dry_run, &display);
    let last_saved = Mutex::new(Instant::now());
    // Progress also updates the lag metrics, and the stored lag every few seconds.
    let report = |event: SyncEvent<'_>| {
        if let SyncEvent::Progress(p) = &event {
            metrics.progress(p);
            let mut last = last_saved.lock().expect("lock");
            if last.elapsed() >= LAG_SAVE_EVERY {
                *last = Instant::now();
                save_lag(&store, &metrics);
            }
        }
        base(event)
    };
    runtime().block_on(async {
        if let Some(addr) = args.metrics_listen {
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|e| Failure::Error(anyhow::anyhow!("--metrics-listen {addr}: {e}")))?;
            let bound = listener.local_addr().map_err(|e| Failure::Error(e.into()))?;
            eprintln!("replication metrics on http://{bound}/metrics");
            tokio::spawn(metrics::serve(listener, metrics.clone()));
        }
        let mut round = 0u64;
        let mut last_ok;
        loop {
            round += 1;
            let result = cutover_sync::run(&src, &dst, &opts, Some(&store), &report).await;
            display.finish();
            match result {
                Ok(s) => {
                    metrics.round(&s, SystemTime::now());
                    save_lag(&store, &metrics);
                    let lag = s.lag();
                    last_ok = s.outcome == SyncOutcome::Ok;
                    if c.json {
                        let mut v = summary_json(&s);
                        v["round"] = json!(round);
                        println!("{v}");
                    } else {
                        let age = lag.oldest_age.map(|d| format!("{:.1}s", d.as_secs_f64())).unwrap_or("-".into());
                        println!(
                            "round {round}: lag {} objects, {:.1} MB, oldest unsynced change {age} old; {}",
                            lag.objects,
                            lag.bytes as f64 / 1e6,
                            summary_line(&s)
                        );
                    }
                }
                Err(e) => {
                    metrics.round_error();
                    last_ok = false;
                    eprintln!("round {round}: error: {e}");
                }
            }
            if args.rounds.is_some_and(|n| round >= n) {
                break;
            }
            tokio::select! {
                _ = tokio::time::sleep(args.interval) => {}
                _ = tokio::signal::ctrl_c() => break,
            }
        }
        if last_ok { Ok(()) } else { Err(Failure::Failed) }
    })
}
