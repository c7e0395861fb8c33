//! ferrolb-speaker: announces LoadBalancer addresses from this node (layer 2 and BGP).

use clap::{Args, Subcommand};
use ferrolb_api::service::ClassPolicy;
use ferrolb_speaker::layer2::DEFAULT_EXCLUDE_PATTERNS;
use ferrolb_speaker::layer2::L2Responder;
use ferrolb_speaker::membership::GossipTimers;
use ferrolb_speaker::run::{MembershipOptions, RunOptions};
use ferrolb_speaker_core::desired::Modes;
use ferrolb_speaker_core::membership::heartbeat::HeartbeatTimers;
use std::time::Duration;

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the speaker of this node against the cluster of the current kubeconfig (or in-cluster
    /// credentials).
    Run(RunArgs),
}

#[derive(Debug, Args)]
struct RunArgs {
    /// Name of this node's Node object.
    #[arg(long, env = "NODE_NAME")]
    node_name: String,
    /// Namespace of the configuration objects and Secrets.
    #[arg(long, env = "POD_NAMESPACE", default_value = "ferrolb-system")]
    namespace: String,
    /// Address of the HTTP API (/healthz, /readyz, /metrics, /api/v1/status). HTTPS; every path
    /// but /healthz and /readyz needs a bearer token allowed to get it (RBAC nonResourceURLs).
    #[arg(long, default_value = "0.0.0.0:7473")]
    listen: std::net::SocketAddr,
    #[command(flatten)]
    http: ferrolb_runtime::http::HttpSecurityArgs,
    /// Handle only Services with spec.loadBalancerClass ferrolb.io/ferrolb (not unset ones).
    #[arg(long)]
    require_class: bool,
    /// Handle only Services whose spec.loadBalancerClass is NAME (as MetalLB's --lb-class):
    /// neither unset ones nor ferrolb.io/ferrolb. Overrides --require-class.
    #[arg(long, value_name = "NAME")]
    lb_class: Option<String>,
    /// UDP port of the gossip membership on the node's InternalIP; 0 disables membership (node
    /// liveness is then the Node Ready condition alone).
    #[arg(long, default_value_t = 7946)]
    membership_port: u16,
    /// Secret in --namespace holding the membership key.
    #[arg(long, default_value = "memberlist")]
    membership_secret: String,
    /// Key of that Secret's data.
    #[arg(long, default_value = "secretkey")]
    membership_secret_key: String,
    /// Gossip: how often each speaker probes another, in milliseconds. Raise it (with the
    /// suspicion timeout) on networks or nodes where the defaults cause false "member down".
    #[arg(long, value_name = "MS", default_value_t = default_ms(GossipTimers::default().probe_period))]
    gossip_probe_period: u64,
    /// Gossip: how long a direct probe may take before indirect probes start, in milliseconds
    /// (below the probe period).
    #[arg(long, value_name = "MS", default_value_t = default_ms(GossipTimers::default().probe_rtt))]
    gossip_probe_rtt: u64,
    /// Gossip: how long a suspected speaker has to refute before it is declared down, in
    /// milliseconds.
    #[arg(long, value_name = "MS", default_value_t = default_ms(GossipTimers::default().suspect_to_down))]
    gossip_suspect_timeout: u64,
    /// Heartbeats: how often a layer 2 owner beats to the speakers that would take its
    /// addresses over, in milliseconds; 0 disables them (failover then waits for the gossip).
    #[arg(long, value_name = "MS", default_value_t = default_ms(HeartbeatTimers::default().interval))]
    heartbeat_interval: u64,
    /// Heartbeats: how many intervals without a beat make the successor take over.
    #[arg(long, value_name = "N", default_value_t = HeartbeatTimers::default().misses)]
    heartbeat_misses: u32,
    /// Heartbeats: how long a takeover on missing beats may stand without the gossip confirming
    /// the owner down before the addresses are given back, in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = default_ms(HeartbeatTimers::default().confirm_within))]
    heartbeat_confirm_within: u64,
    /// Interface name patterns (globs) automatic interface choice skips; repeatable. Default:
    /// cni*, docker*, veth*, kube-ipvs0 and other virtual interfaces.
    #[arg(long = "exclude-interface")]
    exclude_interfaces: Vec<String>,
    /// Who answers ARP requests and Neighbor Solicitations for owned addresses: `auto` answers
    /// in the kernel with an eBPF program on tc ingress where Linux (6.6 or later) and the
    /// capabilities (CAP_BPF, CAP_NET_ADMIN) allow, else from userspace sockets; `socket`
    /// always answers from userspace.
    #[arg(long, value_enum, default_value_t = L2Responder::Auto)]
    l2_responder: L2Responder,
    /// Announce nothing in layer 2 (no ARP/NDP answers, no layer 2 election). Give every
    /// speaker the same setting: the election assumes all of them take part.
    #[arg(long)]
    disable_layer2: bool,
    /// Announce from nodes labelled node.kubernetes.io/exclude-from-external-load-balancers
    /// too (single-node and control-plane-only clusters). Give every speaker the same setting.
    #[arg(long)]
    ignore_exclude_lb: bool,
    #[command(flatten)]
    config_source: ferrolb_runtime::groups::ConfigSourceArgs,
    /// Open no BGP session and advertise nothing over BGP.
    #[arg(long)]
    disable_bgp: bool,
    /// Planned operations without dropping routes: on SIGTERM while the node stays (a rolling
    /// update), BGP sessions with graceful restart negotiated close so that routers keep this
    /// node's routes until the next speaker has announced them again (with the Restart State
    /// bit); when the node is leaving (cordoned, excluded from load balancers, out of service,
    /// deleted) routes are withdrawn before the Cease. In layer 2, an address moving between
    /// live nodes is answered by the old owner until the new one has announced it, a restart in
    /// place leaves the in-kernel responder answering for the next process, and a leaving
    /// node hands its addresses over before it stops answering. `false`: always Cease at once
    /// and stop answering ARP/NDP at once on SIGTERM or when an address moves, as MetalLB does.
    #[arg(long, env = "FERROLB_HITLESS_OPERATIONS", default_value_t = true, action = clap::ArgAction::Set)]
    hitless_operations: bool,
    /// Directory (on the node, surviving the speaker's container) where a speaker restarting in
    /// place leaves its restart marker for the next one.
    #[arg(long, env = "FERROLB_RESTART_MARKER_DIR", default_value = ferrolb_speaker::bgp::restart_marker_file::DEFAULT_DIR)]
    restart_marker_dir: std::path::PathBuf,
    /// Directory in a bpffs mount (the node's /sys/fs/bpf, mounted into the pod) where a
    /// speaker restarting in place leaves its in-kernel ARP/NDP responder answering for the
    /// next process; outside bpffs a restart hands the addresses to other nodes instead.
    #[arg(long, env = "FERROLB_L2_HANDOVER_DIR", default_value = ferrolb_speaker::layer2::handover_pin::DEFAULT_DIR)]
    l2_handover_dir: std::path::PathBuf,
}

fn default_ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn main() -> anyhow::Result<()> {
    // `run` is the only subcommand.
    let Command::Run(args) = ferrolb_runtime::telemetry::parse_command(
        "ferrolb-speaker",
        env!("CARGO_PKG_VERSION"),
        "ferrolb speaker: announces LoadBalancer addresses",
    );
    ferrolb_runtime::telemetry::init_tracing();
    let timers = GossipTimers {
        probe_period: Duration::from_millis(args.gossip_probe_period),
        probe_rtt: Duration::from_millis(args.gossip_probe_rtt),
        suspect_to_down: Duration::from_millis(args.gossip_suspect_timeout),
        ..GossipTimers::default()
    };
    let heartbeat = (args.heartbeat_interval != 0).then(|| HeartbeatTimers {
        interval: Duration::from_millis(args.heartbeat_interval),
        misses: args.heartbeat_misses,
        confirm_within: Duration::from_millis(args.heartbeat_confirm_within),
        ..HeartbeatTimers::default()
    });
    args.http.check(args.listen)?;
    // Refuse inconsistent timers at start rather than run without membership.
    ferrolb_speaker::membership::foca_config(&timers)?;
    if let Some(h) = &heartbeat {
        h.validate().map_err(anyhow::Error::msg)?;
    }
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async move {
        let client = kube::Client::try_default().await?;
        let opts = RunOptions {
            node_name: args.node_name,
            namespace: args.namespace,
            listen: args.listen,
            http: args.http,
            class_policy: ClassPolicy::from_flags(args.lb_class, args.require_class),
            membership: (args.membership_port != 0).then_some(MembershipOptions {
                port: args.membership_port,
                secret: args.membership_secret,
                secret_key: args.membership_secret_key,
                timers,
                heartbeat,
            }),
            exclude_interfaces: if args.exclude_interfaces.is_empty() {
                DEFAULT_EXCLUDE_PATTERNS
                    .iter()
                    .map(|s| s.to_string())
                    .collect()
            } else {
                args.exclude_interfaces
            },
            l2_responder: args.l2_responder,
            modes: Modes {
                layer2: !args.disable_layer2,
                bgp: !args.disable_bgp,
            },
            config_source: args.config_source,
            ignore_exclude_lb: args.ignore_exclude_lb,
            hitless_operations: args.hitless_operations,
            restart_marker_dir: args.restart_marker_dir,
            l2_handover_dir: args.l2_handover_dir,
        };
        ferrolb_speaker::run::run(client, opts).await
    })
}
