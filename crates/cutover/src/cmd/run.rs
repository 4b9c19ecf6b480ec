//! `cutover run`: the long-running controller, composed by
//! [`crate::wiring`], until Ctrl-C or SIGTERM.

use crate::cli::{Global, RunArgs};
use crate::{Failure, load, runtime};

pub fn run(global: &Global, args: RunArgs) -> Result<(), Failure> {
    let config = load::config(global)?;
    runtime().block_on(async move {
        let running = crate::wiring::start(config, !args.no_gateway).await?;
        crate::shutdown::signal().await;
        running.shutdown().await;
        crate::logs::say("stopped", "cutover run: stopped", serde_json::json!({}));
        Ok(())
    })
}
