//! The fast lane: one single-threaded event loop that plain client
//! connections visit while it has room.
//!
//! On tokio's work-stealing runtime a connection's wake-ups are spread over
//! every worker: a batch of ready sockets found by one worker wakes another
//! to steal half of it, and each hand-over is a futex and a context switch.
//! With the gateway sharing its cores with clients and backends, that cost
//! was a fifth of its CPU per small PUT at 32 connections
//! (docs/bench-gateway.md, "The fast lane"). One event loop takes every
//! ready socket of a wake-up in one pass, as nginx's worker does.
//!
//! A plain connection is accepted on the runtime as before (its "home"
//! task stays there, and serves its first request), then moves to the lane
//! if the lane is busy less than [`LaneMarks::admit_below`] of its time. It comes back home, between
//! two requests, when its next request is not the fast path's (hyper
//! serves it on the runtime) or when the lane is busier than
//! [`LaneMarks::shed_above`] (a few connections per tick then leave it, so
//! that load beyond one core is spread over every core as before). TLS
//! connections stay home.

use std::cell::Cell;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use tokio::runtime::Handle;
use tokio::sync::{Notify, oneshot};
use tokio::task::JoinHandle;

/// When the fast lane takes connections and when it sends them home, as
/// shares of its time it was busy over the last tick, per mille.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LaneMarks {
    /// New connections go to the lane while it is busy less than this.
    pub admit_below: u32,
    /// Connections leave the lane, a few per tick, while it is busy more
    /// than this.
    pub shed_above: u32,
}

impl Default for LaneMarks {
    fn default() -> Self {
        Self { admit_below: 600, shed_above: 850 }
    }
}

/// The lane's figures in the gateway's metrics.
#[derive(Debug, Clone, Default)]
pub(crate) struct LaneMetrics {
    /// Client connections on the lane now.
    pub visitors: Gauge,
    /// The lane's busy share over the last tick (0 to 1).
    pub busy: Gauge<f64, AtomicU64>,
    /// Connections sent home because the lane was busy.
    pub departures: Counter,
}

/// How often the lane measures how busy it is.
const TICK: Duration = Duration::from_millis(50);

thread_local! {
    static ON_LANE: Cell<bool> = const { Cell::new(false) };
}

/// Is the calling thread the lane's? (Backend connections made there are
/// pooled apart: a socket serves wake-ups on the loop it was made on.)
pub(crate) fn on_lane() -> bool {
    ON_LANE.with(Cell::get)
}

/// How busy the lane is, kept by its park and unpark hooks.
#[derive(Debug)]
pub(crate) struct Load {
    marks: LaneMarks,
    metrics: LaneMetrics,
    start: Instant,
    /// Nanoseconds spent outside the event loop's wait, up to the last park.
    busy: AtomicU64,
    /// When the loop last woke (nanoseconds since `start`).
    woke: AtomicU64,
    /// The busy share over the last tick, per mille.
    permille: AtomicU32,
    /// Connections that may still leave during this tick.
    leave: AtomicU32,
    /// A visitor came to an idle lane (see [`measure`]), at `arrival`
    /// (nanoseconds since `start`).
    arrived: Notify,
    arrival: AtomicU64,
    /// Ticks measured so far.
    ticks: AtomicU64,
}

impl Load {
    fn new(marks: LaneMarks, metrics: LaneMetrics) -> Self {
        Self {
            marks,
            metrics,
            start: Instant::now(),
            busy: AtomicU64::new(0),
            woke: AtomicU64::new(0),
            permille: AtomicU32::new(0),
            leave: AtomicU32::new(0),
            arrived: Notify::new(),
            arrival: AtomicU64::new(0),
            ticks: AtomicU64::new(0),
        }
    }

    fn now(&self) -> u64 {
        self.start.elapsed().as_nanos() as u64
    }

    fn unparked(&self) {
        self.woke.store(self.now(), Ordering::Relaxed);
    }

    fn parked(&self) {
        let spent = self.now().saturating_sub(self.woke.load(Ordering::Relaxed));
        self.busy.fetch_add(spent, Ordering::Relaxed);
    }

    /// Busy nanoseconds so far, the current wake included (called on the lane).
    fn busy_now(&self, now: u64) -> u64 {
        self.busy.load(Ordering::Relaxed) + now.saturating_sub(self.woke.load(Ordering::Relaxed))
    }

    /// Records the share of `span` the lane was busy and how many
    /// connections may leave before the next tick.
    fn tick(&self, busy: u64, span: u64) {
        let permille = (busy.saturating_mul(1000) / span.max(1)).min(1000) as u32;
        self.permille.store(permille, Ordering::Relaxed);
        self.metrics.busy.set(f64::from(permille) / 1000.0);
        let visitors = u32::try_from(self.metrics.visitors.get()).unwrap_or(0);
        let leave = if permille > self.marks.shed_above { leavers(visitors) } else { 0 };
        self.leave.store(leave, Ordering::Relaxed);
    }

    pub(crate) fn permille(&self) -> u32 {
        self.permille.load(Ordering::Relaxed)
    }

    /// May one more connection come to the lane?
    pub(crate) fn admits(&self) -> bool {
        self.permille() < self.marks.admit_below
    }

    /// Should the calling connection leave the lane now? (Takes one of
    /// this tick's departures.)
    pub(crate) fn should_leave(&self) -> bool {
        let leaves = self.leave.load(Ordering::Relaxed) > 0
            && self.leave.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1)).is_ok();
        if leaves {
            self.metrics.departures.inc();
        }
        leaves
    }
}

/// How many of `visitors` connections leave an overloaded lane per tick:
/// an eighth, at least one (none when one is left).
fn leavers(visitors: u32) -> u32 {
    if visitors <= 1 { 0 } else { (visitors / 8).max(1) }
}

/// The lane's thread and its runtime; stopping it (on drop) ends the
/// connections still on it.
#[derive(Debug)]
pub(crate) struct Lane {
    handle: Handle,
    load: Arc<Load>,
    stop: Option<oneshot::Sender<()>>,
}

impl Lane {
    /// Starts the lane's thread.
    pub(crate) fn start(marks: LaneMarks, metrics: LaneMetrics) -> std::io::Result<Self> {
        let load = Arc::new(Load::new(marks, metrics));
        let (park, unpark) = (load.clone(), load.clone());
        // Sockets and timers only: no signal or process driver to check at
        // every wake-up.
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .on_thread_park(move || park.parked())
            .on_thread_unpark(move || unpark.unparked())
            .build()?;
        let handle = rt.handle().clone();
        let (stop, stopped) = oneshot::channel::<()>();
        let ticking = load.clone();
        std::thread::Builder::new().name("gateway-lane".into()).spawn(move || {
            ON_LANE.with(|l| l.set(true));
            ticking.unparked();
            rt.block_on(async move {
                tokio::select! {
                    _ = stopped => {}
                    _ = measure(&ticking) => {}
                }
            });
        })?;
        Ok(Self { handle, load, stop: Some(stop) })
    }

    pub(crate) fn load(&self) -> &Arc<Load> {
        &self.load
    }

    /// Runs `work` on the lane; the connection it serves counts as a
    /// visitor meanwhile. Dropping the returned future ends `work`.
    pub(crate) fn visit<F>(&self, work: F) -> Visit<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        // Counted until the work is dropped, also when it is aborted
        // before the lane ever ran it.
        if self.load.metrics.visitors.inc() == 0 {
            self.load.arrival.store(self.load.now(), Ordering::Relaxed);
            self.load.arrived.notify_one();
        }
        let visitor = Visitor(self.load.clone());
        let task = self.handle.spawn(async move {
            let _left = visitor;
            work.await
        });
        Visit(task)
    }
}

impl Drop for Lane {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Measures the lane's busy share every tick while it has visitors (runs
/// on the lane). Without any, the lane is idle: it says so and sleeps until
/// a connection comes (an idle gateway does not wake every tick).
async fn measure(load: &Load) {
    let mut last = (load.now(), load.busy_now(load.now()));
    loop {
        if load.metrics.visitors.get() == 0 {
            load.tick(0, 1);
            // A visitor that came since the check left a permit: no wait.
            load.arrived.notified().await;
            // Idle until the visitor came: the window starts then.
            last.0 = last.0.max(load.arrival.load(Ordering::Relaxed));
        }
        let mut every = tokio::time::interval_at(tokio::time::Instant::now() + TICK, TICK);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            every.tick().await;
            let now = load.now();
            let busy = load.busy_now(now);
            load.tick(busy.saturating_sub(last.1), now.saturating_sub(last.0));
            load.ticks.fetch_add(1, Ordering::Relaxed);
            last = (now, busy);
            // Idle once a tick without visitors found it (nearly) so: what
            // it measured busy stays said until then.
            if load.metrics.visitors.get() == 0 && load.permille() < 10 {
                break;
            }
        }
    }
}

struct Visitor(Arc<Load>);

impl Drop for Visitor {
    fn drop(&mut self) {
        self.0.metrics.visitors.dec();
    }
}

/// Work running on the lane; dropped, it is aborted. `None`: the lane
/// stopped (or the work panicked) before it finished.
pub(crate) struct Visit<T>(JoinHandle<T>);

impl<T> Future for Visit<T> {
    type Output = Option<T>;

    fn poll(mut self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<Self::Output> {
        std::pin::Pin::new(&mut self.0).poll(cx).map(Result::ok)
    }
}

impl<T> Drop for Visit<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::until;

    #[test]
    fn an_overloaded_lane_lets_an_eighth_of_its_connections_leave_per_tick() {
        let load = Load::new(LaneMarks::default(), LaneMetrics::default());
        load.metrics.visitors.set(32);
        load.tick(900, 1000);
        assert!(!load.admits());
        let left = (0..10).filter(|_| load.should_leave()).count();
        assert_eq!(left, 4);
        assert_eq!(load.metrics.departures.get(), 4);
        load.tick(700, 1000);
        assert!(!load.should_leave(), "below the shedding mark nobody leaves");
        assert!(!load.admits(), "nor is a new connection admitted above the admission mark");
        load.tick(100, 1000);
        assert!(load.admits());
    }

    #[test]
    fn the_last_connection_never_leaves() {
        assert_eq!(leavers(0), 0);
        assert_eq!(leavers(1), 0);
        assert_eq!(leavers(2), 1);
        assert_eq!(leavers(80), 10);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_busy_lane_measures_itself_busy_and_an_idle_one_idle() {
        let lane = Lane::start(LaneMarks::default(), LaneMetrics::default()).unwrap();
        let permille = || lane.load().permille();
        assert!(until(permille, |p| *p < 100).await.is_some(), "an idle lane measures itself idle");
        // Keep the lane's thread busy for several ticks, from the lane.
        let spin = lane.visit(async {
            let until = Instant::now() + TICK * 8;
            while Instant::now() < until {
                std::hint::spin_loop();
            }
        });
        let busy = tokio::spawn({
            let load = lane.load().clone();
            async move { until(|| load.permille(), |p| *p > LaneMarks::default().shed_above).await }
        });
        assert_eq!(spin.await, Some(()));
        assert!(busy.await.unwrap().is_some(), "a busy lane measures itself busy");
        assert!(!lane.load().admits());
        assert!(until(permille, |p| *p < 100).await.is_some(), "idle again");
        assert!(lane.load().admits());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn regression_a_visit_aborted_before_the_lane_ran_it_stayed_counted() {
        let lane = Lane::start(LaneMarks::default(), LaneMetrics::default()).unwrap();
        // The lane is held by the first visit while the second is aborted.
        let spin = lane.visit(async {
            let until = Instant::now() + Duration::from_millis(300);
            while Instant::now() < until {
                std::hint::spin_loop();
            }
        });
        drop(lane.visit(std::future::pending::<()>()));
        assert_eq!(spin.await, Some(()));
        let visitors = || lane.load().metrics.visitors.get();
        until(visitors, |v| *v == 0).await;
        assert_eq!(visitors(), 0, "no visit is left on the lane");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_lane_ticks_only_while_it_has_visitors() {
        let lane = Lane::start(LaneMarks::default(), LaneMetrics::default()).unwrap();
        let ticks = || lane.load().ticks.load(Ordering::Relaxed);
        tokio::time::sleep(TICK * 4).await;
        assert_eq!(ticks(), 0, "a lane that never had a visitor ticked");
        let visit = lane.visit(std::future::pending::<()>());
        assert!(until(ticks, |t| *t >= 3).await.is_some(), "a lane with a visitor does not measure itself");
        drop(visit);
        until(|| lane.load().metrics.visitors.get(), |v| *v == 0).await;
        tokio::time::sleep(TICK * 2).await;
        let (before, busy_gauge) = (ticks(), lane.load().metrics.busy.get());
        tokio::time::sleep(TICK * 6).await;
        assert_eq!(ticks(), before, "a lane without visitors kept ticking");
        assert_eq!(busy_gauge, 0.0, "an idle lane says it is idle");
        // And it measures again when a visitor comes.
        let again = lane.visit(std::future::pending::<()>());
        assert!(until(ticks, |t| *t > before).await.is_some(), "the lane did not measure itself again");
        drop(again);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_stopped_lane_ends_its_visits() {
        let lane = Lane::start(LaneMarks::default(), LaneMetrics::default()).unwrap();
        let forever = lane.visit(std::future::pending::<()>());
        drop(lane);
        assert_eq!(tokio::time::timeout(Duration::from_secs(5), forever).await, Ok(None));
    }
}
