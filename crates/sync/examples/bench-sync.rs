//! `cutover sync` against rclone on two real Garage nodes (see
//! scripts/bench-sync.sh). Prints a Markdown table.
//!
//! Usage: bench-sync CUTOVER_BINARY [SMALL_COUNT] [LARGE_COUNT]

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cutover_core::Endpoint;
use cutover_lab::garage::Garage;
use cutover_s3::{ClientOptions, S3Client};

struct Measure {
    wall: f64,
    rss_kib: u64,
    cpu: f64,
    ok: bool,
}

fn client(g: &Garage) -> S3Client {
    let endpoint = Endpoint::parse(&g.endpoint()).expect("endpoint");
    let opts =
        ClientOptions { timeout: Duration::from_secs(300), connect_timeout: Duration::from_secs(5), pooled: true };
    S3Client::path_style("bench", endpoint, "garage", &g.bucket, &g.key_id, &g.secret, opts)
}

fn body(i: usize, v: u32, len: usize) -> bytes::Bytes {
    let mut rng = fastrand::Rng::with_seed(i as u64 * 1_000_003 + v as u64);
    let mut out = vec![0u8; len];
    rng.fill(&mut out);
    out.into()
}

async fn put_many(c: &S3Client, items: Vec<(String, usize, u32)>, parallel: usize) {
    let sem = Arc::new(tokio::sync::Semaphore::new(parallel));
    let mut set = tokio::task::JoinSet::new();
    for (i, (key, len, v)) in items.into_iter().enumerate() {
        let (c, permit) = (c.clone(), sem.clone().acquire_owned().await.expect("open"));
        set.spawn(async move {
            let _p = permit;
            c.put_object(&key, body(i, v, len), &[]).await.unwrap_or_else(|e| panic!("seed {key}: {e}"));
        });
    }
    while let Some(r) = set.join_next().await {
        r.expect("seed task");
    }
}

/// Runs a command under /usr/bin/time -v; wall time and peak RSS.
fn measure(cmd: &mut Command) -> Measure {
    let start = Instant::now();
    let out = cmd.output().expect("run benchmark command");
    let wall = start.elapsed().as_secs_f64();
    let err = String::from_utf8_lossy(&out.stderr);
    let rss_kib = err
        .lines()
        .find_map(|l| l.trim().strip_prefix("Maximum resident set size (kbytes):"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    let cpu: f64 = err
        .lines()
        .filter_map(|l| {
            let l = l.trim();
            l.strip_prefix("User time (seconds):").or_else(|| l.strip_prefix("System time (seconds):"))
        })
        .filter_map(|v| v.trim().parse::<f64>().ok())
        .sum();
    if !out.status.success() {
        eprintln!("command failed: {cmd:?}\n{}\n{err}", String::from_utf8_lossy(&out.stdout));
    }
    Measure { wall, rss_kib, cpu, ok: out.status.success() }
}

fn rclone(a: &Garage, b: &Garage, from: &str, to: &str) -> Measure {
    let mut cmd = Command::new("/usr/bin/time");
    cmd.args(["-v", "rclone", "sync", "--transfers", "32", "--checkers", "32"]);
    cmd.arg(format!("srca:{}/{from}", a.bucket)).arg(format!("dstb:{}/{to}", b.bucket));
    cmd.env_remove("AWS_CA_BUNDLE").env("RCLONE_CONFIG", "/dev/null");
    for (remote, g) in [("SRCA", a), ("DSTB", b)] {
        let p = format!("RCLONE_CONFIG_{remote}");
        cmd.env(format!("{p}_TYPE"), "s3")
            .env(format!("{p}_PROVIDER"), "Other")
            .env(format!("{p}_ENDPOINT"), g.endpoint())
            .env(format!("{p}_ACCESS_KEY_ID"), &g.key_id)
            .env(format!("{p}_SECRET_ACCESS_KEY"), &g.secret)
            .env(format!("{p}_REGION"), "garage")
            .env(format!("{p}_FORCE_PATH_STYLE"), "true");
    }
    measure(&mut cmd)
}

fn cutover(bin: &Path, config: &Path, a: &Garage, b: &Garage, from: &str, to: &str) -> Measure {
    let mut cmd = Command::new("/usr/bin/time");
    cmd.arg("-v").arg(bin).arg("--config").arg(config);
    let concurrency = std::env::var("BENCH_CONCURRENCY").unwrap_or_else(|_| "32".into());
    cmd.args(["sync", &format!("a:{from}"), &format!("b:{to}"), "--concurrency", &concurrency]);
    cmd.args(["--progress-interval", "0s"]);
    cmd.env("BENCH_A_KEY", &a.key_id).env("BENCH_A_SECRET", &a.secret);
    cmd.env("BENCH_B_KEY", &b.key_id).env("BENCH_B_SECRET", &b.secret);
    measure(&mut cmd)
}

fn row(case: &str, objects: usize, bytes: u64, r: &Measure, c: &Measure) -> String {
    let ops = |m: &Measure| objects as f64 / m.wall;
    let mbs = |m: &Measure| bytes as f64 / 1e6 / m.wall;
    let fail = |m: &Measure| if m.ok { "" } else { " (FAILED)" };
    format!(
        "| {case} | {:.2} s, {:.0} obj/s, {:.1} MB/s, {:.0} MiB, CPU {:.1} s{} | {:.2} s, {:.0} obj/s, {:.1} MB/s, {:.0} MiB, CPU {:.1} s{} | {:.2}× | {:.2} |",
        r.wall,
        ops(r),
        mbs(r),
        r.rss_kib as f64 / 1024.0,
        r.cpu,
        fail(r),
        c.wall,
        ops(c),
        mbs(c),
        c.rss_kib as f64 / 1024.0,
        c.cpu,
        fail(c),
        r.wall / c.wall,
        c.rss_kib as f64 / r.rss_kib.max(1) as f64,
    )
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let bin =
        std::path::absolute(args.get(1).expect("usage: bench-sync CUTOVER_BINARY [SMALL] [LARGE]")).expect("path");
    let small: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(10_000);
    let large: usize = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(20);
    let (a, b) = (Garage::start("bench").expect("garage a"), Garage::start("bench").expect("garage b"));
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("cutover.toml");
    let toml = format!(
        "[state]\npath = \"state.db\"\n\n[[backends]]\nname = \"a\"\nendpoint = \"{}\"\nregion = \"garage\"\nbucket = \"bench\"\nrole = \"primary\"\npath_style = true\n\
         credentials = {{ access_key_id_env = \"BENCH_A_KEY\", secret_access_key_env = \"BENCH_A_SECRET\" }}\n\n\
         [[backends]]\nname = \"b\"\nendpoint = \"{}\"\nregion = \"garage\"\nbucket = \"bench\"\nrole = \"secondary\"\npath_style = true\n\
         credentials = {{ access_key_id_env = \"BENCH_B_KEY\", secret_access_key_env = \"BENCH_B_SECRET\" }}\n",
        a.endpoint(),
        b.endpoint()
    );
    std::fs::write(&config, toml).expect("write config");
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    let ca = client(&a);
    eprintln!("seeding {small} × 4 KiB and {large} × 64 MiB");
    let smalls: Vec<_> = (0..small).map(|i| (format!("small/obj-{i:06}"), 4096, 0)).collect();
    rt.block_on(put_many(&ca, smalls, 32));
    let larges: Vec<_> = (0..large).map(|i| (format!("large/obj-{i:03}"), 64 << 20, 0)).collect();
    rt.block_on(put_many(&ca, larges, 4));

    let mut rows = Vec::new();
    let small_bytes = small as u64 * 4096;
    eprintln!("(a) {small} × 4 KiB");
    let r = rclone(&a, &b, "small", "rclone/small");
    let c = cutover(&bin, &config, &a, &b, "small/", "cutover/small/");
    rows.push(row(&format!("(a) {small} × 4 KiB"), small, small_bytes, &r, &c));
    eprintln!("(c) no-op resync");
    let r = rclone(&a, &b, "small", "rclone/small");
    let c = cutover(&bin, &config, &a, &b, "small/", "cutover/small/");
    rows.push(row("(c) no-op resync of (a)", small, 0, &r, &c));
    eprintln!("(d) 1 % changed");
    let changed: Vec<_> = (0..small).step_by(100).map(|i| (format!("small/obj-{i:06}"), 4096, 1)).collect();
    let n_changed = changed.len();
    rt.block_on(put_many(&ca, changed, 32));
    let r = rclone(&a, &b, "small", "rclone/small");
    let c = cutover(&bin, &config, &a, &b, "small/", "cutover/small/");
    rows.push(row(&format!("(d) {n_changed} of (a) changed"), small, n_changed as u64 * 4096, &r, &c));
    if large > 0 {
        eprintln!("(b) {large} × 64 MiB");
        let r = rclone(&a, &b, "large", "rclone/large");
        let c = cutover(&bin, &config, &a, &b, "large/", "cutover/large/");
        rows.push(row(&format!("(b) {large} × 64 MiB"), large, large as u64 * (64 << 20), &r, &c));
    }

    println!(
        "| case | rclone 1.60 `--transfers 32 --checkers 32` (wall, objects/s, MB/s, peak RSS, CPU user+sys) | cutover sync `--concurrency 32` | speed-up (rclone time / cutover time) | RSS ratio (cutover / rclone) |"
    );
    println!("|---|---|---|---|---|");
    for r in rows {
        println!("{r}");
    }
}
