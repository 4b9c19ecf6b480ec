//! The proxy: its own runtime on its own thread, the listener (closed while
//! `refuse` is on), the faults in force and the counters.

use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, oneshot, watch};

use crate::faults::{FaultKind, Faults};
use crate::metrics::{Counters, Metrics};
use crate::pace::Pacer;
use crate::{ChaosError, conn, control};

/// How long [`Proxy::set`] waits for the listener to reflect `refuse`
/// before it reports the proxy as stuck (it takes microseconds).
const APPLY_PATIENCE: Duration = Duration::from_secs(30);
/// Pause before binding the listen address again after a failure.
const REBIND_EVERY: Duration = Duration::from_millis(200);

/// The faults with a generation number, bumped by every change.
#[derive(Debug, Clone, Default)]
pub(crate) struct Versioned {
    pub version: u64,
    pub faults: Faults,
}

/// The last generation the accept loop has acted on.
#[derive(Debug, Default)]
struct Applied {
    version: u64,
    error: Option<String>,
}

/// What the accept loop, the connections and the control API share.
#[derive(Debug)]
pub(crate) struct Shared {
    pub addr: SocketAddr,
    pub upstream: String,
    pub faults: watch::Sender<Versioned>,
    pub metrics: Metrics,
    pub up_pacer: Pacer,
    pub down_pacer: Pacer,
    applied: Mutex<Applied>,
    applied_cv: Condvar,
    applied_notify: Notify,
}

impl Shared {
    pub fn faults(&self) -> Faults {
        self.faults.borrow().faults.clone()
    }

    pub fn bandwidth(&self) -> Option<u64> {
        self.faults.borrow().faults.bandwidth_bps
    }

    pub fn delay(&self) -> Duration {
        self.faults.borrow().faults.delay()
    }

    fn publish(&self, faults: Faults) -> u64 {
        let mut version = 0;
        self.faults.send_modify(|v| {
            v.version += 1;
            v.faults = faults;
            version = v.version;
        });
        tracing::info!(faults = ?self.faults(), "faults changed");
        version
    }

    fn ack(&self, version: u64, error: Option<String>) {
        let mut a = self.applied.lock().expect("applied lock");
        if version >= a.version {
            *a = Applied { version, error };
        }
        drop(a);
        self.applied_cv.notify_all();
        self.applied_notify.notify_waiters();
    }

    fn outcome(&self, a: &Applied) -> Result<(), ChaosError> {
        match &a.error {
            None => Ok(()),
            Some(detail) => Err(ChaosError::Reopen { addr: self.addr, detail: detail.clone() }),
        }
    }

    /// Replaces the faults and waits, blocking this thread, until the
    /// listener reflects them.
    fn apply_blocking(&self, faults: Faults) -> Result<(), ChaosError> {
        faults.validate()?;
        let version = self.publish(faults);
        let a = self.applied.lock().expect("applied lock");
        let (a, timeout) =
            self.applied_cv.wait_timeout_while(a, APPLY_PATIENCE, |a| a.version < version).expect("applied lock");
        if timeout.timed_out() {
            return Err(ChaosError::Runtime("the accept loop did not take the new faults".into()));
        }
        self.outcome(&a)
    }

    /// [`Shared::apply_blocking`] for async callers (the control API).
    pub async fn apply(&self, faults: Faults) -> Result<(), ChaosError> {
        faults.validate()?;
        let version = self.publish(faults);
        let wait = async {
            loop {
                let notified = self.applied_notify.notified();
                tokio::pin!(notified);
                notified.as_mut().enable();
                {
                    let a = self.applied.lock().expect("applied lock");
                    if a.version >= version {
                        return self.outcome(&a);
                    }
                }
                notified.await;
            }
        };
        tokio::time::timeout(APPLY_PATIENCE, wait)
            .await
            .unwrap_or_else(|_| Err(ChaosError::Runtime("the accept loop did not take the new faults".into())))
    }
}

/// A running fault-injecting proxy: accepts TCP connections on
/// [`Proxy::addr`] and relays them to the upstream, with the faults of
/// [`Proxy::set`] applied. It runs on its own runtime thread, so it works
/// the same under any caller (async or not); dropping it stops it.
#[derive(Debug)]
pub struct Proxy {
    shared: Arc<Shared>,
    handle: tokio::runtime::Handle,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// Checks that `upstream` is `HOST:PORT` and resolves.
fn check_upstream(upstream: &str) -> Result<(), ChaosError> {
    let err = |detail: String| ChaosError::Upstream { upstream: upstream.to_string(), detail };
    let Some((host, port)) = upstream.rsplit_once(':') else { return Err(err("expected HOST:PORT".into())) };
    if host.is_empty() || port.parse::<u16>().is_err() {
        return Err(err("expected HOST:PORT".into()));
    }
    match upstream.to_socket_addrs() {
        Ok(addrs) if addrs.len() > 0 => Ok(()),
        Ok(_) => Err(err("resolves to no address".into())),
        Err(e) => Err(err(e.to_string())),
    }
}

/// A listening socket with `SO_REUSEADDR`, so that it can be bound again
/// at once after `refuse` closed it.
fn bind(addr: SocketAddr) -> Result<std::net::TcpListener, ChaosError> {
    let err = |source| ChaosError::Bind { addr, source };
    let socket = socket2::Socket::new(socket2::Domain::for_address(addr), socket2::Type::STREAM, None).map_err(err)?;
    socket.set_reuse_address(true).map_err(err)?;
    socket.bind(&addr.into()).map_err(err)?;
    socket.listen(1024).map_err(err)?;
    socket.set_nonblocking(true).map_err(err)?;
    Ok(socket.into())
}

impl Proxy {
    /// Binds `listen` (port 0 picks a free port; see [`Proxy::addr`]) and
    /// starts relaying to `upstream` (`HOST:PORT`, resolved again for every
    /// connection), with no fault.
    pub fn start(listen: SocketAddr, upstream: &str) -> Result<Proxy, ChaosError> {
        check_upstream(upstream)?;
        let std_listener = bind(listen)?;
        let addr = std_listener.local_addr().map_err(|source| ChaosError::Bind { addr: listen, source })?;
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("chaos-proxy")
            .enable_all()
            .build()
            .map_err(|e| ChaosError::Runtime(e.to_string()))?;
        let handle = rt.handle().clone();
        let listener = {
            let _guard = handle.enter();
            TcpListener::from_std(std_listener).map_err(|source| ChaosError::Bind { addr, source })?
        };
        let shared = Arc::new(Shared {
            addr,
            upstream: upstream.to_string(),
            faults: watch::Sender::new(Versioned::default()),
            metrics: Metrics::default(),
            up_pacer: Pacer::default(),
            down_pacer: Pacer::default(),
            applied: Mutex::new(Applied::default()),
            applied_cv: Condvar::new(),
            applied_notify: Notify::new(),
        });
        let (stop, stop_rx) = oneshot::channel();
        let loop_shared = shared.clone();
        let thread = std::thread::Builder::new()
            .name("chaos-proxy".into())
            .spawn(move || rt.block_on(accept_loop(listener, loop_shared, stop_rx)))
            .map_err(|e| ChaosError::Runtime(e.to_string()))?;
        tracing::info!(%addr, upstream, "chaos proxy started");
        Ok(Proxy { shared, handle, stop: Some(stop), thread: Some(thread) })
    }

    /// The address clients connect to.
    pub fn addr(&self) -> SocketAddr {
        self.shared.addr
    }

    /// The upstream, as given to [`Proxy::start`].
    pub fn upstream(&self) -> &str {
        &self.shared.upstream
    }

    /// Replaces the faults in force. Returns once the listener reflects
    /// `refuse` (so a connect right after `set` sees it); the other faults
    /// act from the next request, chunk or connection on. Blocks the calling
    /// thread for that short moment; needs no runtime.
    pub fn set(&self, faults: Faults) -> Result<(), ChaosError> {
        self.shared.apply_blocking(faults)
    }

    /// The faults in force.
    pub fn faults(&self) -> Faults {
        self.shared.faults()
    }

    /// The counters so far.
    pub fn counters(&self) -> Counters {
        self.shared.metrics.snapshot()
    }

    /// The counters and faults in the Prometheus text format.
    pub fn metrics(&self) -> String {
        crate::metrics::render(&self.counters(), &self.faults())
    }

    /// Serves the control API (see the crate documentation) on `addr`;
    /// returns the address bound (port 0 picks a free port). It stops with
    /// the proxy.
    pub fn serve_control(&self, addr: SocketAddr) -> Result<SocketAddr, ChaosError> {
        let std_listener = bind(addr)?;
        let bound = std_listener.local_addr().map_err(|source| ChaosError::Bind { addr, source })?;
        let _guard = self.handle.enter();
        let listener = TcpListener::from_std(std_listener).map_err(|source| ChaosError::Bind { addr, source })?;
        self.handle.spawn(control::serve(listener, self.shared.clone()));
        tracing::info!(addr = %bound, "chaos control API listening");
        Ok(bound)
    }

    /// Stops accepting, closes every connection and the control API, and
    /// waits for the proxy's thread to end.
    pub fn shutdown(mut self) {
        self.stop_now();
    }

    fn stop_now(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop_now();
    }
}

async fn accept(listener: &Option<TcpListener>) -> std::io::Result<TcpStream> {
    match listener {
        Some(l) => l.accept().await.map(|(s, _)| s),
        None => std::future::pending().await,
    }
}

/// Accepts connections; closes the listener while `refuse` is on and binds
/// it again when it is cleared; acknowledges every generation of faults.
async fn accept_loop(listener: TcpListener, shared: Arc<Shared>, mut stop: oneshot::Receiver<()>) {
    let mut listener = Some(listener);
    let mut faults = shared.faults.subscribe();
    loop {
        let (version, refuse) = {
            let v = faults.borrow_and_update();
            (v.version, v.faults.refuse)
        };
        let mut error = None;
        if refuse && listener.is_some() {
            listener = None;
            shared.metrics.fault(FaultKind::Refuse);
            tracing::info!(addr = %shared.addr, "listener closed: connects are refused");
        } else if !refuse && listener.is_none() {
            match bind(shared.addr)
                .and_then(|l| TcpListener::from_std(l).map_err(|source| ChaosError::Bind { addr: shared.addr, source }))
            {
                Ok(l) => {
                    listener = Some(l);
                    tracing::info!(addr = %shared.addr, "listener open again");
                }
                Err(e) => {
                    tracing::warn!(error = %e, "could not reopen the listener; retrying");
                    error = Some(e.to_string());
                }
            }
        }
        let retry = error.is_some();
        shared.ack(version, error);
        tokio::select! {
            _ = &mut stop => return,
            changed = faults.changed() => if changed.is_err() { return },
            _ = tokio::time::sleep(REBIND_EVERY), if retry => {}
            accepted = accept(&listener) => match accepted {
                Ok(stream) => {
                    tokio::spawn(conn::serve(stream, shared.clone()));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
        }
    }
}
