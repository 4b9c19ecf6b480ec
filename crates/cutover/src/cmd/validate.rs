//! `cutover validate`: the smoke-test suite against one backend.

use cutover_s3::ClientOptions;
use cutover_s3::validate::ValidateReport;

use crate::Failure;
use crate::cli::{Global, ValidateArgs};
use crate::{load, runtime};

pub fn run(global: &Global, args: ValidateArgs) -> Result<(), Failure> {
    let config = load::config(global)?;
    let backend = load::select(&config, Some(&args.backend))?[0];
    let opts = ClientOptions { timeout: args.timeout, connect_timeout: config.probe.timeout, pooled: true };
    let client = load::client(backend, opts)?;
    let report = runtime().block_on(cutover_s3::validate::run(&client, &backend.validate, &config.probe.prefix));
    if args.json {
        println!("{}", serde_json::to_string(&report).expect("report serializes"));
    } else {
        print_human(&report);
    }
    if report.ok { Ok(()) } else { Err(Failure::Failed) }
}

fn print_human(r: &ValidateReport) {
    println!("validate {}: {}", r.backend, if r.ok { "ok" } else { "FAILED" });
    for c in &r.checks {
        let mark = match (c.ok, c.skipped, c.not_run) {
            (_, _, true) => "not run",
            (_, true, _) => "skip",
            (true, false, _) => "ok",
            (false, false, _) => "FAIL",
        };
        let detail = if c.not_run { c.detail.strip_prefix("not run: ").unwrap_or(&c.detail) } else { &c.detail };
        println!("  {mark:<7} {:<14} {:>9.1}ms  {detail}", c.name, c.ms);
    }
    for w in &r.warnings {
        println!("  warning: {w}");
    }
}
