//! `cutover chaos-proxy`: the fault-injecting proxy of crates/chaos as a
//! process, for drills against real backends (see docs/chaos.md).

use std::io::Write;
use std::net::SocketAddr;

use clap::Args;
use cutover_chaos::{ChaosError, Faults, Proxy};

use crate::{Failure, runtime};

#[derive(Debug, Args)]
pub struct ChaosProxyArgs {
    /// Accept clients here (point the backend's endpoint at it), e.g. 127.0.0.1:9100.
    #[arg(long, value_name = "ADDR")]
    pub listen: SocketAddr,
    /// Forward to this HOST:PORT: the backend's S3 endpoint.
    #[arg(long, value_name = "HOST:PORT")]
    pub upstream: String,
    /// Serve the control API here: GET/PUT/PATCH/DELETE /faults, GET /metrics (no authentication).
    #[arg(long, value_name = "ADDR")]
    pub control: Option<SocketAddr>,
    /// Faults from the start, as the JSON body of PUT /faults, e.g. '{"latency_ms": 200}'.
    #[arg(long, value_name = "JSON")]
    pub faults: Option<String>,
}

fn usage(e: ChaosError) -> Failure {
    Failure::Usage(format!("error: {e}"))
}

pub fn run(args: ChaosProxyArgs) -> Result<(), Failure> {
    let faults = args.faults.as_deref().map(Faults::from_json).transpose().map_err(usage)?;
    let proxy = Proxy::start(args.listen, &args.upstream).map_err(|e| match e {
        ChaosError::Upstream { .. } => usage(e),
        e => Failure::Error(e.into()),
    })?;
    if let Some(f) = faults {
        proxy.set(f).map_err(|e| Failure::Error(e.into()))?;
    }
    let control =
        args.control.map(|addr| proxy.serve_control(addr)).transpose().map_err(|e| Failure::Error(e.into()))?;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "chaos-proxy: listening on {}, forwarding to {}", proxy.addr(), proxy.upstream());
    if let Some(addr) = control {
        let _ = writeln!(out, "chaos-proxy: control API on http://{addr}/faults, metrics on http://{addr}/metrics");
    }
    let _ = writeln!(out, "chaos-proxy: faults {}", serde_json::json!(proxy.faults()));
    let _ = out.flush();
    drop(out);
    runtime().block_on(crate::shutdown::signal());
    proxy.shutdown();
    println!("chaos-proxy: stopped");
    Ok(())
}
