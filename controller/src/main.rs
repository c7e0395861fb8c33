//! ferrolb-controller: allocates LoadBalancer IPs from pools. Each mode of operation is a
//! subcommand; add new ones to [`Command`].

#![forbid(unsafe_code)]

use clap::{Args, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, Subcommand)]
enum Command {
    /// Check manifests offline: parse every file, build the configuration from all of them
    /// together and print every problem. Exits 1 on any error.
    Validate(ValidateArgs),
    /// Run the controller against the cluster of the current kubeconfig (or in-cluster
    /// credentials): allocate addresses, write Service status, serve the HTTP API.
    Run(RunArgs),
}

#[derive(Debug, Args)]
struct RunArgs {
    /// Address of the HTTP API (/healthz, /readyz, /metrics, /api/v1/status).
    #[arg(long, default_value = "0.0.0.0:7472")]
    listen: std::net::SocketAddr,
    /// Namespace of the configuration objects and of the leader Lease.
    #[arg(long, env = "POD_NAMESPACE", default_value = "ferrolb-system")]
    namespace: String,
    /// Read configuration objects from every namespace, not only --namespace.
    #[arg(long)]
    all_namespaces_config: bool,
    /// Handle only Services with spec.loadBalancerClass ferrolb.io/ferrolb (not unset ones).
    #[arg(long)]
    require_class: bool,
    /// Handle only Services whose spec.loadBalancerClass is NAME (as MetalLB's --lb-class):
    /// neither unset ones nor ferrolb.io/ferrolb. Overrides --require-class.
    #[arg(long, value_name = "NAME")]
    lb_class: Option<String>,
    /// Identity in the leader Lease.
    #[arg(long, env = "POD_NAME")]
    identity: Option<String>,
    /// Do not elect a leader: this replica always writes. Only for a single replica.
    #[arg(long)]
    no_leader_election: bool,
}

#[derive(Debug, Args)]
struct ValidateArgs {
    /// A manifest file, or a directory whose *.yaml and *.yml files are read. Repeatable.
    #[arg(short = 'f', long = "filename", value_name = "FILE", required = true)]
    files: Vec<PathBuf>,
}

fn main() -> anyhow::Result<ExitCode> {
    let command: Command = ferrolb_runtime::telemetry::parse_command(
        "ferrolb-controller",
        env!("CARGO_PKG_VERSION"),
        "ferrolb controller: allocates LoadBalancer IPs from pools",
    );
    match command {
        Command::Run(args) => {
            ferrolb_runtime::telemetry::init_tracing();
            let runtime = tokio::runtime::Runtime::new()?;
            runtime.block_on(run(args))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Validate(args) => {
            let report = ferrolb_controller::validate::validate(&args.files);
            print!("{}", report.render());
            Ok(ExitCode::from(report.exit_code()))
        }
    }
}

async fn run(args: RunArgs) -> anyhow::Result<()> {
    let client = kube::Client::try_default().await?;
    let identity = match args.identity {
        Some(id) => id,
        None => std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_else(|_| format!("controller-{}", std::process::id())),
    };
    let mut opts = ferrolb_controller::run::RunOptions::new(&args.namespace, &identity);
    opts.listen = args.listen;
    opts.all_namespaces_config = args.all_namespaces_config;
    opts.class_policy =
        ferrolb_api::service::ClassPolicy::from_flags(args.lb_class, args.require_class);
    opts.leader_election = !args.no_leader_election;
    ferrolb_controller::run::run(client, opts).await
}
