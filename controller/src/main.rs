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
    /// Rewrite MetalLB manifests (metallb.io IPAddressPool, L2Advertisement, BGPAdvertisement,
    /// BGPPeer v1beta1/v1beta2, BFDProfile, Community) as ferrolb.io objects with the same
    /// names and namespaces, and list every difference in behaviour that applies to them.
    /// ferrolb.io objects are carried over unchanged; MetalLB's status objects and objects of
    /// other groups (Secrets, Services, MetalLB's own install) are left out and listed, as
    /// they stay in the cluster as they are. The objects go to --output, or to stdout with the
    /// report on stderr. Exits 1 when an object cannot be carried over with its meaning (its
    /// field is kept in the output, to fix there) or the result is not a valid configuration.
    Migrate(MigrateArgs),
    /// Run the controller against the cluster of the current kubeconfig (or in-cluster
    /// credentials): allocate addresses, write Service status, serve the HTTP API.
    Run(RunArgs),
}

#[derive(Debug, Args)]
struct RunArgs {
    /// Address of the HTTP API (/healthz, /readyz, /metrics, /api/v1/status). HTTPS; every path
    /// but /healthz and /readyz needs a bearer token allowed to get it (RBAC nonResourceURLs).
    #[arg(long, default_value = "0.0.0.0:7472")]
    listen: std::net::SocketAddr,
    #[command(flatten)]
    http: ferrolb_runtime::http::HttpSecurityArgs,
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
    /// Secret in --namespace holding the speakers' membership key (data.secretkey), created at
    /// start when missing, as MetalLB's controller does; empty leaves it to the installer.
    #[arg(long, env = "FERROLB_ML_SECRET_NAME", default_value = "memberlist")]
    ml_secret_name: String,
    #[command(flatten)]
    config_source: ferrolb_runtime::groups::ConfigSourceArgs,
}

#[derive(Debug, Args)]
struct ValidateArgs {
    /// A manifest file, or a directory whose *.yaml and *.yml files are read. Repeatable.
    #[arg(short = 'f', long = "filename", value_name = "FILE", required = true)]
    files: Vec<PathBuf>,
}

#[derive(Debug, Args)]
struct MigrateArgs {
    /// A manifest file, or a directory whose *.yaml and *.yml files are read. Repeatable.
    #[arg(short = 'f', long = "filename", value_name = "FILE", required = true)]
    files: Vec<PathBuf>,
    /// Write the ferrolb.io objects to this file (multi-document YAML) instead of stdout.
    #[arg(short = 'o', long = "output", value_name = "OUT")]
    output: Option<PathBuf>,
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
        Command::Migrate(args) => {
            let outcome = ferrolb_controller::migrate::run(&args.files, args.output.as_deref());
            if args.output.is_some() {
                print!("{}", outcome.report());
            } else {
                print!("{}", outcome.yaml);
                eprint!("{}", outcome.report());
            }
            Ok(ExitCode::from(outcome.exit_code()))
        }
    }
}

async fn run(args: RunArgs) -> anyhow::Result<()> {
    args.http.check(args.listen)?;
    let client = kube::Client::try_default().await?;
    let identity = match args.identity {
        Some(id) => id,
        None => std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_else(|_| format!("controller-{}", std::process::id())),
    };
    let mut opts = ferrolb_controller::run::RunOptions::new(&args.namespace, &identity);
    opts.listen = args.listen;
    opts.http = args.http;
    opts.all_namespaces_config = args.all_namespaces_config;
    opts.class_policy =
        ferrolb_api::service::ClassPolicy::from_flags(args.lb_class, args.require_class);
    opts.leader_election = !args.no_leader_election;
    opts.config_source = args.config_source;
    opts.memberlist_secret = Some(args.ml_secret_name).filter(|n| !n.is_empty());
    ferrolb_controller::run::run(client, opts).await
}
