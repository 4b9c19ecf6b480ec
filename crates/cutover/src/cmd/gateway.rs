//! `cutover gateway`: the S3 gateway alone (composed by
//! [`crate::wiring::gateway`]), following `kv.active_backend` in the state
//! file, replaying its journal in the background, until Ctrl-C or SIGTERM.

use anyhow::Context;
use cutover_gateway::GatewayOptions;

use crate::Failure;
use crate::cli::{GatewayArgs, Global};
use crate::wiring::gateway::{Alone, start_alone};
use crate::{load, runtime};

pub fn run(global: &Global, args: GatewayArgs) -> Result<(), Failure> {
    let config = load::config(global)?;
    let Some(gw) = &config.gateway else {
        return Err(Failure::Usage(format!("{}: no [gateway] section", load::config_path(global).display())));
    };
    if args.resync {
        let report = runtime().block_on(cutover_gateway::resync(&config)).context("resync")?;
        let json = serde_json::json!({
            "copied": report.copied, "deleted": report.deleted, "failed": report.failed,
            "remaining": report.remaining, "errors": report.errors,
        });
        println!("{json}");
        return if report.failed == 0 { Ok(()) } else { Err(Failure::Failed) };
    }
    let mut opts = GatewayOptions::from_limits(&gw.limits);
    if let Some(t) = args.header_timeout {
        opts.deadlines.first_byte = t;
    }
    let alone = Alone { listen: args.listen.unwrap_or(gw.listen), opts, poll: args.poll };
    runtime().block_on(async move {
        let running = start_alone(&config, alone).await?;
        crate::shutdown::signal().await;
        running.shutdown().await;
        Ok::<(), Failure>(())
    })
}
