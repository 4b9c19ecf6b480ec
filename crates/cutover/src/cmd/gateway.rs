//! `cutover gateway`: the S3 gateway, following `kv.active_backend` in the
//! state file, replaying its journal in the background.

use anyhow::Context;
use cutover_gateway::{ActiveBackend, Gateway, GatewayOptions, State, follow_state};

use crate::Failure;
use crate::cli::{GatewayArgs, Global};
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
    let listen = args.listen.unwrap_or(gw.listen);
    let tls = gw.tls.is_some();
    let primary = config.primary().name.clone();
    let known: Vec<String> = config.backend_names().iter().map(|s| s.to_string()).collect();
    let mut opts = GatewayOptions::from_limits(&gw.limits);
    if let Some(t) = args.header_timeout {
        opts.deadlines.first_byte = t;
    }
    runtime().block_on(async move {
        let state = State::open(&config.state.path).context("opening the state file")?;
        let initial = state.read_active().await.context("reading the active backend")?;
        let initial = initial.filter(|n| known.contains(n)).unwrap_or_else(|| primary.clone());
        let active = ActiveBackend::new(initial.clone());
        let gateway =
            Gateway::build(&config, active.clone(), opts).map_err(|e| Failure::Usage(format!("error: {e}")))?;
        let listener = tokio::net::TcpListener::bind(listen).await.with_context(|| format!("binding {listen}"))?;
        let addr = listener.local_addr().context("local address")?;
        tokio::spawn(follow_state(active, state, primary, known, args.poll));
        let replayer = gateway.clone();
        tokio::spawn(async move { replayer.replay_forever().await });
        let scheme = if tls { "https" } else { "http" };
        eprintln!("cutover gateway listening on {scheme}://{addr} (active backend: {initial})");
        gateway.serve(listener, crate::shutdown::signal()).await.context("serving")?;
        Ok::<(), Failure>(())
    })
}
