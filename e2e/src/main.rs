//! `ferrolb-e2e`: the test harness command line.

#![forbid(unsafe_code)]

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand};
use ferrolb_e2e::apiserver::{ApiServer, ApiServerOptions};

#[derive(Parser)]
#[command(name = "ferrolb-e2e", about = "ferrolb test harness", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the in-memory Kubernetes API server (plain HTTP, loopback or lab addresses only).
    Apiserver(ApiserverArgs),
    /// Benchmark the controller: N Services created at once against the in-memory API server;
    /// prints create-to-status p50/p99, total time and the controller's peak RSS.
    BenchController(BenchControllerArgs),
    /// Benchmark what the API server sends to speakers: N speakers' own watches, then one
    /// change of each kind; prints watch events and bytes per change, in total and per
    /// speaker, beside the Lease-per-Service design's writes (computed).
    BenchWatchCost(BenchWatchCostArgs),
    /// Benchmark layer 2 failover (ferrolb vs keepalived VRRPv3, same lab, same probe), the
    /// speaker's ARP reply latency (in-kernel responder and userspace socket) vs the kernel's,
    /// the in-kernel responder's cost per packet, and peak RSS with 1,000 addresses.
    BenchFailover(BenchFailoverArgs),
    /// Benchmark the speaker process under endpoint churn at scale: a release speaker against the
    /// in-memory API server holding 50,000 Services and 200,000 endpoints on 100 Nodes, its CPU
    /// idle and under 100 EndpointSlice changes per second, and its RSS (root: a lab node).
    BenchSpeakerChurn(BenchSpeakerChurnArgs),
    /// Benchmark BGP propagation: N IPv4 prefixes to BIRD from ferrolb's peer manager and
    /// from gobgpd, same lab; prints both, the ratio and peak RSS.
    BenchBgp(BenchBgpArgs),
    /// Benchmark the speakers' membership at scale: N foca instances (1,000 by default) in one
    /// process on an in-memory network with a simulated clock, ferrolb's gossip timers and
    /// memberlist's LAN defaults side by side, at 0 % and 1 % datagram loss: time to detect a
    /// dead member, false "down" verdicts, bytes per second per member; plus the heartbeat
    /// channel's cost. No root, no network.
    BenchMembership(BenchMembershipArgs),
    /// Benchmark failure detection in BGP mode: the router's withdraw time after a node
    /// fails, with BFD 50 ms x 3, BFD 300 ms x 3 and without BFD (hold time), side by side.
    BenchBfd(BenchBfdArgs),
    /// Benchmark planned operations: a rolling restart of every speaker, a node drain, a
    /// controller leader crash and update, an API server outage with a speaker crash, and a
    /// failback; probes every 10 ms and long-lived connections to an L2 and a BGP Service.
    /// ferrolb's hitless operations and a MetalLB-like mode side by side. Needs root.
    BenchRollout(BenchRolloutArgs),
    /// A tiny HTTP server answering every request with a fixed text (the lab's stand-in for a
    /// Service backend on each node: it answers with the node's name).
    EchoServer(EchoServerArgs),
    /// Run ferrolb end to end in network namespaces (3 nodes, clients, a BIRD router): a live
    /// table of Services, addresses, announcing nodes and client reachability, a failover
    /// demo, a summary; then tear everything down. Needs root.
    Lab(ferrolb_e2e::labcmd::LabArgs),
    /// Chaos: ferrolb on N nodes (layer 2 and BGP Services, BIRD with BFD) under a seeded
    /// schedule of overlapping faults, invariants checked every 100 ms from outside; prints
    /// faults by kind, the longest unavailability per kind and every violation with the seed
    /// to replay it. Exits 1 on a violation. Needs root.
    Chaos(ChaosArgs),
}

#[derive(clap::Args)]
struct ChaosArgs {
    /// Seconds of faults (a settle period follows).
    #[arg(long, default_value_t = 60)]
    duration: u64,
    /// Seed of the fault schedule: the same seed replays the same faults.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Nodes (at least 3).
    #[arg(long, default_value_t = 5)]
    nodes: u8,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args)]
struct EchoServerArgs {
    /// Address to listen on; `[::]:PORT` also accepts IPv4.
    #[arg(long, default_value = "[::]:80")]
    listen: SocketAddr,
    /// The text to answer with.
    #[arg(long)]
    text: String,
}

#[derive(clap::Args)]
struct BenchRolloutArgs {
    /// Seconds the API server stays down.
    #[arg(long, default_value_t = 30)]
    outage: u64,
    /// Skip the MetalLB-like mode.
    #[arg(long)]
    hitless_only: bool,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args)]
struct BenchSpeakerChurnArgs {
    /// LoadBalancer Services, each with an EndpointSlice of four endpoints.
    #[arg(long, default_value_t = 50_000)]
    services: usize,
    /// EndpointSlice changes per second.
    #[arg(long, default_value_t = 100)]
    rate: u32,
    /// Seconds of the idle reference and of the churn, each.
    #[arg(long, default_value_t = 20)]
    seconds: u64,
    /// The speaker binary (default: beside this one).
    #[arg(long)]
    speaker: Option<std::path::PathBuf>,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args)]
struct BenchBgpArgs {
    /// Prefixes to advertise (inside 10.200.0.0/16: at most 114,685).
    #[arg(long, default_value_t = 10_000)]
    prefixes: usize,
    /// Skip gobgpd.
    #[arg(long)]
    no_gobgp: bool,
    /// Give up waiting for a table after this many seconds.
    #[arg(long, default_value_t = 120)]
    timeout: u64,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args)]
struct BenchMembershipArgs {
    /// Members.
    #[arg(long, default_value_t = 1000)]
    members: usize,
    /// Simulated minutes of the phase without kills (false downs, traffic).
    #[arg(long, default_value_t = 10.0)]
    minutes: f64,
    /// Members killed one at a time after that phase.
    #[arg(long, default_value_t = 20)]
    kills: usize,
    /// Datagram loss rates in percent, comma separated.
    #[arg(long, value_delimiter = ',', default_values_t = [0.0, 1.0])]
    loss: Vec<f64>,
    /// Seed of every random choice (loss, latency, foca's own choices).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Configurations: `ferrolb` (the speaker's defaults), `memberlist` (memberlist's
    /// DefaultLANConfig as a foca configuration), comma separated.
    #[arg(long, value_delimiter = ',', default_values_t = ["ferrolb".to_string(), "memberlist".to_string()])]
    profiles: Vec<String>,
    /// Also run the speaker with other gossip timers: PROBE_MS/RTT_MS/SUSPECT_MS
    /// (e.g. 100/40/300); repeatable.
    #[arg(long)]
    timers: Vec<String>,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args)]
struct BenchBfdArgs {
    /// Failures per configuration.
    #[arg(long, default_value_t = 10)]
    trials: usize,
    /// The router daemon: `bird` or `frr`.
    #[arg(long, default_value = "bird")]
    router: String,
    /// How a node fails: `freeze` (SIGSTOP its speaker) or `link-down`.
    #[arg(long, default_value = "freeze")]
    fault: ferrolb_e2e::bench::bfd::Fault,
    /// Skip the configuration without BFD (every trial waits a hold time, 9 s).
    #[arg(long)]
    skip_hold_time: bool,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args)]
struct BenchFailoverArgs {
    /// Faults per system.
    #[arg(long, default_value_t = 20)]
    trials: usize,
    /// How the owner fails: `kill` (SIGKILL the daemon) or `link-down` (its eth0 goes down).
    #[arg(long, default_value = "kill")]
    fault: ferrolb_e2e::bench::failover::Fault,
    /// Skip keepalived.
    #[arg(long)]
    no_keepalived: bool,
    /// Skip the ARP latency and 1,000-address RSS measurements.
    #[arg(long)]
    no_extras: bool,
    /// An extra argument for every ferrolb speaker (repeatable), e.g.
    /// `--speaker-arg=--gossip-probe-period=10` to measure other membership timers.
    #[arg(long = "speaker-arg", allow_hyphen_values = true)]
    speaker_args: Vec<String>,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args)]
struct BenchControllerArgs {
    /// Services to create.
    #[arg(long, default_value_t = 5000)]
    services: usize,
    /// The controller binary (default: next to this one).
    #[arg(long)]
    controller: Option<PathBuf>,
    /// Creates in flight at once (each over the API server's HTTP API).
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Give up after this many seconds.
    #[arg(long, default_value_t = 120)]
    timeout: u64,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args)]
struct BenchWatchCostArgs {
    /// Cluster sizes (speakers = nodes), comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "10,100,300")]
    nodes: Vec<usize>,
    /// LoadBalancer Services (and as many ClusterIP ones), each with an EndpointSlice.
    #[arg(long, default_value_t = 100)]
    services: usize,
    /// Endpoints per EndpointSlice.
    #[arg(long, default_value_t = 10)]
    endpoints: usize,
    /// Service counts for the computed Lease-per-Service figures, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1000,50000")]
    lease_services: Vec<usize>,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args)]
struct ApiserverArgs {
    /// Address to listen on (loopback only; port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:6443")]
    listen: SocketAddr,
    /// JSON state file: loaded at start when present, saved on changes and at exit.
    #[arg(long)]
    state: Option<PathBuf>,
    /// Where to write a kubeconfig for this server.
    #[arg(long)]
    kubeconfig: Option<PathBuf>,
    /// Watch events kept for resumption (older resourceVersions get 410 Gone).
    #[arg(long, default_value_t = 1000)]
    history: usize,
    /// A file holding the admin token (user `admin`, group `system:masters`) to use instead
    /// of a random one; the kubeconfig carries the token either way.
    #[arg(long)]
    admin_token_file: Option<PathBuf>,
    /// Append every authorization decision to this file, one JSON object a line.
    #[arg(long)]
    audit_log: Option<PathBuf>,
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

/// The admin token in `path`, without surrounding whitespace.
fn read_admin_token(path: &std::path::Path) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("cannot read --admin-token-file {}: {e}", path.display()))?;
    let token = text.trim();
    if token.is_empty() {
        anyhow::bail!("--admin-token-file {} is empty", path.display());
    }
    Ok(token.to_string())
}

/// Requests answered with 500 after SIGUSR2.
const INJECTED_500S: u64 = 20;

async fn run_apiserver(args: ApiserverArgs) -> anyhow::Result<()> {
    let admin_token = args
        .admin_token_file
        .as_deref()
        .map(read_admin_token)
        .transpose()?;
    let server = ApiServer::start(ApiServerOptions {
        admin_token,
        listen: args.listen,
        state_file: args.state,
        kubeconfig_path: args.kubeconfig,
        history_limit: args.history,
        audit_log: args.audit_log,
        ..ApiServerOptions::default()
    })
    .await?;
    // The address and kubeconfig on stdout, for scripts that start us with port 0.
    println!("listening on {}", server.url());
    println!("kubeconfig {}", server.kubeconfig_path().display());
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    // Fault injection from outside the process (the chaos run): SIGUSR1 ends every open
    // watch, SIGUSR2 answers the next API requests with 500.
    let mut drop_watches = signal(SignalKind::user_defined1())?;
    let mut fail_requests = signal(SignalKind::user_defined2())?;
    loop {
        tokio::select! {
            r = tokio::signal::ctrl_c() => { r?; break; }
            _ = term.recv() => break,
            _ = drop_watches.recv() => {
                tracing::info!("SIGUSR1: dropping every open watch");
                server.faults().drop_watches();
            }
            _ = fail_requests.recv() => {
                tracing::info!(n = INJECTED_500S, "SIGUSR2: answering the next requests with 500");
                server.faults().fail_next(
                    INJECTED_500S,
                    ferrolb_e2e::apiserver::Fault::InternalError,
                    ferrolb_e2e::apiserver::FaultScope::All,
                );
            }
        }
    }
    server.shutdown().await;
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    init_tracing();
    match Cli::parse().command {
        Command::Apiserver(args) => run_apiserver(args).await,
        Command::Lab(args) => {
            // The lab's runtimes block on their own futures: keep them off this runtime.
            let code =
                tokio::task::spawn_blocking(move || ferrolb_e2e::labcmd::run(&args)).await??;
            if code != 0 {
                std::process::exit(code);
            }
            Ok(())
        }
        Command::Chaos(args) => {
            use ferrolb_e2e::chaos::{ChaosOptions, run};
            let opts = ChaosOptions {
                duration: std::time::Duration::from_secs(args.duration),
                seed: args.seed,
                nodes: args.nodes,
            };
            // The lab's runtimes block on their own futures: keep them off this runtime.
            let report = tokio::task::spawn_blocking(move || run(&opts)).await??;
            print_report(&report, args.json)?;
            if !report.violations.is_empty() {
                std::process::exit(1);
            }
            Ok(())
        }
        Command::EchoServer(args) => {
            ferrolb_e2e::fixtures::echo_server(args.listen, &args.text).await
        }
        Command::BenchFailover(args) => {
            use ferrolb_e2e::bench::failover::{FailoverBench, run};
            let opts = FailoverBench {
                trials: args.trials,
                fault: args.fault,
                keepalived: !args.no_keepalived,
                extras: !args.no_extras,
                speaker_args: args.speaker_args,
            };
            // The lab's runtimes block on their own futures: keep them off this runtime.
            let report = tokio::task::spawn_blocking(move || run(&opts)).await??;
            print_report(&report, args.json)
        }
        Command::BenchMembership(args) => {
            let json = args.json;
            // Minutes of CPU: off the async runtime.
            let report = tokio::task::spawn_blocking(move || membership_bench(&args)).await??;
            print_report(&report, json)
        }
        Command::BenchBfd(args) => {
            use ferrolb_e2e::bench::bfd::{BfdBench, run};
            use ferrolb_e2e::cluster::RouterKind;
            let router = match args.router.as_str() {
                "bird" => RouterKind::Bird,
                "frr" => RouterKind::Frr,
                other => anyhow::bail!("--router {other}: bird or frr"),
            };
            let opts = BfdBench {
                trials: args.trials,
                router,
                fault: args.fault,
                skip_hold_time: args.skip_hold_time,
            };
            // The lab's runtimes block on their own futures: keep them off this runtime.
            let report = tokio::task::spawn_blocking(move || run(&opts)).await??;
            print_report(&report, args.json)
        }
        Command::BenchRollout(args) => {
            use ferrolb_e2e::bench::rollout::{RolloutBench, run};
            let opts = RolloutBench {
                outage: std::time::Duration::from_secs(args.outage),
                hitless_only: args.hitless_only,
            };
            // The lab's runtimes block on their own futures: keep them off this runtime.
            let report = tokio::task::spawn_blocking(move || run(&opts)).await??;
            print_report(&report, args.json)
        }
        Command::BenchSpeakerChurn(args) => {
            use ferrolb_e2e::bench::controller::sibling_binary;
            use ferrolb_e2e::bench::speaker_churn::{SpeakerChurnBench, run};
            let opts = SpeakerChurnBench {
                services: args.services,
                rate: args.rate,
                window: std::time::Duration::from_secs(args.seconds),
                speaker_bin: args
                    .speaker
                    .unwrap_or_else(|| sibling_binary("ferrolb-speaker")),
            };
            // The lab's runtimes block on their own futures: keep them off this runtime.
            let report = tokio::task::spawn_blocking(move || run(&opts)).await??;
            print_report(&report, args.json)
        }
        Command::BenchBgp(args) => {
            use ferrolb_e2e::bench::bgp::{BgpBench, run};
            let opts = BgpBench {
                prefixes: args.prefixes,
                gobgp: !args.no_gobgp,
                timeout: std::time::Duration::from_secs(args.timeout),
            };
            // The lab's runtimes block on their own futures: keep them off this runtime.
            let report = tokio::task::spawn_blocking(move || run(&opts)).await??;
            print_report(&report, args.json)
        }
        Command::BenchController(args) => {
            use ferrolb_e2e::bench::controller::{ControllerBench, run, sibling_binary};
            let opts = ControllerBench {
                services: args.services,
                controller_bin: args
                    .controller
                    .unwrap_or_else(|| sibling_binary("ferrolb-controller")),
                concurrency: args.concurrency.max(1),
                timeout: std::time::Duration::from_secs(args.timeout),
            };
            let report = run(&opts).await?;
            print_report(&report, args.json)
        }
        Command::BenchWatchCost(args) => {
            use ferrolb_e2e::bench::watch_cost::{WatchCostBench, run};
            let opts = WatchCostBench {
                nodes: args.nodes,
                services: args.services,
                endpoints_per_slice: args.endpoints,
                lease_services: args.lease_services,
            };
            let report = run(&opts).await?;
            print_report(&report, args.json)
        }
    }
}

/// Runs `ferrolb-e2e bench-membership`.
fn membership_bench(
    args: &BenchMembershipArgs,
) -> anyhow::Result<ferrolb_e2e::bench::membership::Report> {
    use ferrolb_e2e::bench::membership::{MembershipBench, profile, run};
    use ferrolb_speaker::membership::GossipTimers;
    use std::time::Duration;
    let mut profiles = Vec::new();
    for name in &args.profiles {
        profiles.push(match name.as_str() {
            "ferrolb" => profile::ferrolb("ferrolb", &GossipTimers::default())?,
            "memberlist" => profile::memberlist_lan(args.members)?,
            other => anyhow::bail!("--profiles {other}: ferrolb or memberlist"),
        });
    }
    for spec in &args.timers {
        let parts: Vec<u64> = spec
            .split('/')
            .map(str::parse)
            .collect::<Result<_, _>>()
            .map_err(|e| anyhow::anyhow!("--timers {spec}: {e}"))?;
        let [probe, rtt, suspect] = parts[..] else {
            anyhow::bail!("--timers {spec}: PROBE_MS/RTT_MS/SUSPECT_MS");
        };
        let timers = GossipTimers {
            probe_period: Duration::from_millis(probe),
            probe_rtt: Duration::from_millis(rtt),
            suspect_to_down: Duration::from_millis(suspect),
            ..GossipTimers::default()
        };
        profiles.push(profile::ferrolb(&format!("ferrolb {spec}"), &timers)?);
    }
    if args.members < 2 || !args.minutes.is_finite() || args.minutes <= 0.0 {
        anyhow::bail!("--members must be at least 2 and --minutes positive");
    }
    if let Some(bad) = args.loss.iter().find(|l| !(0.0..100.0).contains(*l)) {
        anyhow::bail!("--loss {bad}: a percentage in [0, 100)");
    }
    let bench = MembershipBench {
        members: args.members,
        steady: Duration::from_secs_f64(args.minutes * 60.0),
        kills: args.kills,
        losses: args.loss.iter().map(|l| l / 100.0).collect(),
        latency: (Duration::from_micros(100), Duration::from_millis(1)),
        warm_up: Duration::from_secs(20),
        seed: args.seed,
        profiles,
        seed_period: GossipTimers::default().seed_announce_period,
    };
    Ok(run(&bench))
}

/// Prints a benchmark report as text or, with `json`, as pretty JSON.
fn print_report<R: serde::Serialize + std::fmt::Display>(
    report: &R,
    json: bool,
) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(report)?);
    } else {
        println!("{report}");
    }
    Ok(())
}
