//! The gateway stage: the S3 data plane, built and bound before anything
//! starts, then served as a listener with its journal's replayer beside it.
//! In `cutover run` it follows the controller's switch (the runbook's
//! `state.switch`); alone (`cutover gateway`) it follows the state file.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use cutover_core::Config;
use cutover_core::config::HaConfig;
use cutover_etcd::registry::GatewayRegistration;
use cutover_etcd::{ActiveFollower, Client};
use cutover_gateway::{ActiveBackend, Gateway, GatewayOptions, State, follow_state};
use tokio::net::TcpListener;

use super::tasks::Tasks;
use crate::Failure;

/// A gateway with its listener bound, not serving yet.
pub struct Bound {
    pub gateway: Gateway,
    listener: TcpListener,
    pub addr: SocketAddr,
    pub scheme: &'static str,
}

/// The gateway of `cutover run` (when `[gateway]` is configured and
/// wanted), starting on `active`, bound to `gateway.listen`.
pub async fn bind_for_run(config: &Config, active: &str, wanted: bool) -> Result<Option<Bound>, Failure> {
    let Some(g) = config.gateway.as_ref().filter(|_| wanted) else { return Ok(None) };
    let gateway =
        Gateway::build(config, ActiveBackend::new(active.to_string()), GatewayOptions::from_limits(&g.limits))
            .map_err(|e| Failure::Usage(format!("gateway: {e}")))?;
    let listener = TcpListener::bind(g.listen).await.with_context(|| format!("gateway.listen {}", g.listen))?;
    Ok(Some(Bound::new(gateway, listener, g.tls.is_some())?))
}

impl Bound {
    fn new(gateway: Gateway, listener: TcpListener, tls: bool) -> Result<Self, Failure> {
        let addr = listener.local_addr().context("local address")?;
        Ok(Self { gateway, listener, addr, scheme: if tls { "https" } else { "http" } })
    }

    /// Serves until the listeners stop (then drains), and replays the
    /// dual-write journal until cancelled.
    pub fn serve(self, tasks: &mut Tasks) {
        let replayer = self.gateway.clone();
        tasks.spawn(async move { replayer.replay_forever().await });
        let (gateway, listener, stop) = (self.gateway, self.listener, tasks.listeners_stop());
        tasks.spawn_listener(async move {
            if let Err(e) = gateway.serve(listener, stop).await {
                tracing::error!(error = %e, "the gateway stopped");
            }
        });
    }
}

/// What `cutover gateway` runs: the gateway alone.
#[derive(Debug, Clone)]
pub struct Alone {
    pub listen: SocketAddr,
    pub opts: GatewayOptions,
    /// How often the state file's active backend is read.
    pub poll: Duration,
}

/// `cutover gateway` running: its tasks.
#[derive(Debug)]
pub struct RunningAlone {
    tasks: Tasks,
}

impl RunningAlone {
    /// Stops accepting, lets the requests in progress finish, then stops
    /// the replayer and the state follower.
    pub async fn shutdown(self) {
        self.tasks.shutdown().await;
    }
}

/// Starts the gateway alone: it starts on the active backend recorded in
/// the state file (else the primary) and follows it every `poll` — or,
/// with `[ha]`, follows the active backend in etcd.
pub async fn start_alone(config: &Config, alone: Alone) -> Result<RunningAlone, Failure> {
    let primary = config.primary().name.clone();
    let known: Vec<String> = config.backend_names().iter().map(|s| s.to_string()).collect();
    let tls = config.gateway.as_ref().is_some_and(|g| g.tls.is_some());
    let state = State::open(&config.state.path).context("opening the state file")?;
    let initial = state.read_active().await.context("reading the active backend")?;
    let initial = initial.filter(|n| known.contains(n)).unwrap_or_else(|| primary.clone());
    let active = ActiveBackend::new(initial.clone());
    let gateway =
        Gateway::build(config, active.clone(), alone.opts).map_err(|e| Failure::Usage(format!("error: {e}")))?;
    let listener = TcpListener::bind(alone.listen).await.with_context(|| format!("binding {}", alone.listen))?;
    let bound = Bound::new(gateway, listener, tls)?;
    let mut tasks = Tasks::new();
    match &config.ha {
        Some(ha) => tasks.spawn(follow_etcd(active, ha, primary, known)?),
        None => {
            tasks.spawn(follow_state(active, state, primary, known, alone.poll).context("following the state file")?)
        }
    }
    eprintln!("cutover gateway listening on {}://{} (active backend: {initial})", bound.scheme, bound.addr);
    bound.serve(&mut tasks);
    Ok(RunningAlone { tasks })
}

/// With `[ha]`: follows `<prefix>/active_backend` in etcd (a watch; absent
/// means the primary), switches within the watch's latency, and registers
/// this gateway (`[ha] node`) under its own lease with the value it serves,
/// for `state.switch` and `cutover ha status`. While etcd cannot be reached
/// it keeps serving the last value it read, and says so once.
pub(super) fn follow_etcd(
    active: ActiveBackend,
    ha: &HaConfig,
    primary: String,
    known: Vec<String>,
) -> Result<impl std::future::Future<Output = ()> + Send + 'static, Failure> {
    let options = crate::ha::client_options(ha).map_err(|e| Failure::Usage(e.to_string()))?;
    let client = Client::new(&options).map_err(|e| Failure::Usage(format!("[ha] etcd: {e}")))?;
    let (prefix, name, ttl, every) =
        (ha.prefix.clone(), ha.node.clone(), ha.timing.lease_ttl, ha.timing.renew_interval);
    Ok(async move {
        let follower = ActiveFollower::start(client.clone(), &prefix, every);
        let registration = GatewayRegistration::start(client, &prefix, &name, ttl);
        let (mut value, known_rx) = (follower.value(), follower.known());
        let mut tick = tokio::time::interval(every);
        let mut away = false;
        loop {
            tokio::select! {
                changed = value.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    if !*known_rx.borrow() {
                        continue; // nothing read from etcd yet: keep the start-up value
                    }
                    let name = value.borrow_and_update().clone().unwrap_or_else(|| primary.clone());
                    if !known.contains(&name) {
                        tracing::warn!(value = %name, "etcd's active backend names no configured backend; ignored");
                        continue;
                    }
                    if active.set(&name) {
                        tracing::info!(active = %name, "active backend switched (etcd)");
                    }
                    registration.ack(Some(name));
                }
                _ = tick.tick() => {
                    let age = follower.age();
                    if let Some(at) = age.and_then(|a| std::time::Instant::now().checked_sub(a)) {
                        active.confirm(at, ttl);
                    }
                    let stale = age.is_none_or(|a| a > ttl);
                    if stale != away {
                        away = stale;
                        if stale {
                            tracing::warn!(active = %active.get(), "etcd unreachable: serving the last known active backend");
                        } else {
                            tracing::info!(active = %active.get(), "etcd reachable again");
                        }
                    }
                }
            }
        }
    })
}
