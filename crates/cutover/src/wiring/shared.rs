//! What the stages of `cutover run` share.

use std::sync::Arc;

use cutover_control::controller::{ControllerHandle, RunbookDue};
use cutover_control::telemetry::Telemetry;
use cutover_core::Config;
use cutover_store::Store;
use tokio::sync::mpsc;

/// Shared by the stages: the controller task's handle, the state store for
/// reads and the runbook journal, the metrics, the configuration, the
/// runbook queue and the gateway. The controller itself is reached only
/// through its handle: commands over a channel, status on a watch.
pub struct Shared {
    /// The controller task: requests in, status out (read without locks).
    pub controller: ControllerHandle,
    /// The state store: the API's and the drills' reads, the engine's journal.
    pub store: Arc<dyn Store>,
    /// Where what happens is reported: the controller's metrics (in
    /// `registry`) and the event lines.
    pub telemetry: Telemetry,
    pub config: Config,
    /// Runbooks to run, one at a time.
    pub jobs: mpsc::UnboundedSender<RunbookDue>,
    /// The in-process S3 gateway, when `[gateway]` is configured.
    pub gateway: Option<cutover_gateway::Gateway>,
    /// The process's one metrics registry: the controller's families and,
    /// with a gateway, the gateway's.
    pub registry: prometheus_client::registry::Registry,
    /// Refused API requests go to the audit log through this, on its own
    /// connection, never through the controller.
    pub denials: cutover_store::DenialLog,
    /// With `[ha]`: this node in the election (role, leader, token).
    pub ha: Option<super::ha::HaNode>,
    /// The console's sessions, probe samples and change log.
    pub console: crate::console::ConsoleState,
}
