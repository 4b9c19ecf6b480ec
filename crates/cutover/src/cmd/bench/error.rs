//! Why a trial of `cutover bench detect` failed. The messages end up in the
//! report's `errors`.

use std::fmt;

use cutover_lab::LabError;

/// Why a trial (or the set-up of one) failed.
#[derive(Debug)]
pub enum BenchError {
    /// A file or process operation failed; `what` names it.
    Io { what: &'static str, source: std::io::Error },
    /// The controller did not reach the awaited state within the patience.
    Timeout { what: String, patience: String, log_tail: String },
    /// The failover decision in the timeline has no readable time.
    DecisionWithoutTime,
    /// The failover decision is timed before the fault's onset.
    DecisionBeforeOnset,
    /// Pausing or resuming the primary failed.
    Lab(LabError),
    /// Restarting the killed primary failed.
    Restart(LabError),
    /// `nft` could not be run.
    NftSpawn(std::io::Error),
    /// `nft ARGS` failed with this error output.
    Nft { args: String, stderr: String },
    /// An etcd request of the bench itself failed; `what` names it.
    Etcd { what: &'static str, source: Box<cutover_etcd::EtcdError> },
    /// A write to the state store in etcd failed; `what` names it.
    Store { what: &'static str, source: Box<cutover_store::StoreError> },
    /// Starting the etcd cluster or a backend failed.
    Setup { what: &'static str, source: LabError },
}

impl fmt::Display for BenchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BenchError::Io { what, source } => write!(f, "{what}: {source}"),
            BenchError::Timeout { what, patience, log_tail } => {
                write!(f, "no {what} within {patience}; controller log:\n{log_tail}")
            }
            BenchError::DecisionWithoutTime => f.write_str("a decision without a time"),
            BenchError::DecisionBeforeOnset => f.write_str("a decision before the onset"),
            BenchError::Lab(e) => write!(f, "{e}"),
            BenchError::Restart(e) => write!(f, "restarting the primary: {e}"),
            BenchError::NftSpawn(e) => write!(f, "nft: {e}"),
            BenchError::Nft { args, stderr } => write!(f, "nft {args}: {stderr}"),
            BenchError::Etcd { what, source } => write!(f, "{what}: {source}"),
            BenchError::Store { what, source } => write!(f, "{what}: {source}"),
            BenchError::Setup { what, source } => write!(f, "starting {what}: {source}"),
        }
    }
}

impl std::error::Error for BenchError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            BenchError::Io { source, .. } | BenchError::NftSpawn(source) => Some(source),
            BenchError::Restart(e) | BenchError::Setup { source: e, .. } => Some(e),
            BenchError::Etcd { source, .. } => Some(source.as_ref()),
            BenchError::Store { source, .. } => Some(source.as_ref()),
            BenchError::Lab(e) => e.source(),
            _ => None,
        }
    }
}

/// `map_err` for an etcd request of the bench named `what`.
pub fn etcd(what: &'static str) -> impl FnOnce(cutover_etcd::EtcdError) -> BenchError {
    move |source| BenchError::Etcd { what, source: Box::new(source) }
}

/// `map_err` for a state store operation named `what`.
pub fn store_op(what: &'static str) -> impl FnOnce(cutover_store::StoreError) -> BenchError {
    move |source| BenchError::Store { what, source: Box::new(source) }
}

/// `map_err` for an I/O step named `what`.
pub fn io(what: &'static str) -> impl FnOnce(std::io::Error) -> BenchError {
    move |source| BenchError::Io { what, source }
}
