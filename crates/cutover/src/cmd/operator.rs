//! `cutover operator [--namespace NS]`: the Kubernetes operator for the
//! `StorageBackend` resource (in-cluster configuration or `KUBECONFIG`, one
//! acting replica through a Lease); `cutover operator crd` prints the CRD.

use std::time::Duration;

use clap::{Args, Subcommand};
use cutover_operator::run::{Options, connect, run as run_operator};

use crate::Failure;

#[derive(Debug, Args)]
pub struct OperatorArgs {
    #[command(subcommand)]
    pub command: Option<OperatorCommand>,
    /// Act on StorageBackends in this namespace only (default: every namespace).
    #[arg(long, value_name = "NS")]
    pub namespace: Option<String>,
    /// The namespace of the leader-election Lease (default: $POD_NAMESPACE, else `default`).
    #[arg(long, value_name = "NS")]
    pub lease_namespace: Option<String>,
    /// The Lease's name.
    #[arg(long, default_value = "cutover-operator")]
    pub lease_name: String,
}

#[derive(Debug, Subcommand)]
pub enum OperatorCommand {
    /// Print the StorageBackend CRD as YAML (`kubectl apply -f -`).
    Crd,
}

pub fn run(args: OperatorArgs) -> Result<(), Failure> {
    if let Some(OperatorCommand::Crd) = args.command {
        let yaml = cutover_operator::crd::crd_yaml().map_err(|e| Failure::Error(e.into()))?;
        print!("{yaml}");
        return Ok(());
    }
    let identity = std::env::var("POD_NAME")
        .or_else(|_| std::env::var("HOSTNAME"))
        .unwrap_or_else(|_| format!("cutover-operator-{}", std::process::id()));
    let lease_namespace =
        args.lease_namespace.or_else(|| std::env::var("POD_NAMESPACE").ok()).unwrap_or_else(|| "default".into());
    let options = Options {
        namespace: args.namespace,
        identity,
        lease_namespace,
        lease_name: args.lease_name,
        lease_duration: Duration::from_secs(15),
        resync: Duration::from_secs(60),
    };
    crate::runtime().block_on(async move {
        let client = connect().await.map_err(|e| Failure::Error(e.into()))?;
        run_operator(client, options, crate::shutdown::signal()).await.map_err(|e| Failure::Error(e.into()))
    })
}
