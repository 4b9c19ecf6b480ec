//! The gateway's timeouts and buffer sizes.

use std::time::Duration;

use cutover_core::config::GatewayLimits;

use super::lane::LaneMarks;
use crate::deadline::Deadlines;

/// Timeouts and buffer sizes of the gateway.
#[derive(Debug, Clone)]
pub struct GatewayOptions {
    /// How long a backend may take to answer and may pause
    /// (`gateway.backend_first_byte_timeout`, `gateway.backend_idle_timeout`);
    /// beyond them read-through tries the other backend and other modes
    /// answer a retryable 503 `SlowDown`.
    pub deadlines: Deadlines,
    /// In dual-write (`gateway.hedge_after`): a write the active backend has
    /// not answered this long after the other backend took it is
    /// acknowledged and journaled for the active one. `None`: wait.
    pub hedge_after: Option<Duration>,
    /// In dual-write: how long the other backend may stall the upload (tee
    /// channel full) or take to answer after the last byte before it is
    /// given up and the write journaled (`ack = "active-journal"`).
    pub other_timeout: Duration,
    /// In dual-write: the same bound for the active backend, and for both with `ack = "all"`.
    pub write_timeout: Duration,
    pub connect_timeout: Duration,
    /// Chunks buffered per side of a dual-write tee.
    pub tee_chunks: usize,
    /// Pause between journal replay passes when nothing is due.
    pub replay_interval: Duration,
    /// After shutdown, how long requests in progress may take to finish.
    pub drain: Duration,
    /// With TLS: how long a client may take to complete its handshake.
    pub tls_handshake_timeout: Duration,
    /// A client must send a whole request head within this, on a new or a
    /// kept-alive connection (`gateway.client_header_timeout`).
    pub client_header_timeout: Duration,
    /// Bytes per second a client must at least send its body at, over
    /// [`BODY_RATE_WINDOW`] of waiting for it; 0: no minimum.
    pub client_min_body_rate: u64,
    /// Client connections served at once; more are closed and counted.
    pub max_connections: usize,
    /// When plain connections go to the fast lane and when they leave it;
    /// `None`: no lane, every connection is served on the runtime's workers.
    pub fast_lane: Option<LaneMarks>,
}

impl GatewayOptions {
    /// The defaults, with the deadlines and limits of `gateway.*`.
    pub fn from_limits(l: &GatewayLimits) -> Self {
        Self {
            deadlines: Deadlines { first_byte: l.backend_first_byte, idle: l.backend_idle },
            hedge_after: l.hedge_after,
            client_header_timeout: l.client_header,
            client_min_body_rate: l.client_min_body_rate,
            max_connections: l.max_connections,
            ..Self::default()
        }
    }
}

impl Default for GatewayOptions {
    fn default() -> Self {
        Self {
            deadlines: Deadlines::default(),
            hedge_after: Some(Duration::from_secs(1)),
            other_timeout: Duration::from_secs(5),
            write_timeout: Duration::from_secs(60),
            connect_timeout: Duration::from_secs(2),
            tee_chunks: 16,
            replay_interval: Duration::from_millis(500),
            drain: Duration::from_secs(10),
            tls_handshake_timeout: Duration::from_secs(10),
            client_header_timeout: GatewayLimits::default().client_header,
            client_min_body_rate: GatewayLimits::default().client_min_body_rate,
            max_connections: GatewayLimits::default().max_connections,
            fast_lane: Some(LaneMarks::default()),
        }
    }
}
