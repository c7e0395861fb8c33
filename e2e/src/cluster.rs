//! ferrolb deployed on the network-namespace lab: the in-memory API server and the controller
//! in the control-plane namespace, a real `ferrolb-speaker` in every node namespace, a stand-in
//! for kube-proxy on every node (service addresses accepted locally, a tiny HTTP server
//! answering with the node's name), optionally BIRD as the BGP router.
//!
//! Shared by the end-to-end tests, the benchmarks and the `lab` command.
//!
//! The test process itself stays in the root namespace; it talks to the API server through a
//! tokio runtime whose threads live in the control-plane namespace ([`ns_runtime`]), so sockets
//! it opens are created there.

use crate::bench::controller::sibling_binary;
use crate::lab::daemons::{
    BfdTimers, BgpPeer, Bird, BirdConfig, Frr, FrrConfig, Gobgp, GobgpConfig,
};
use crate::lab::process::{LabProcess, ProcessSpec};
use crate::lab::{Lab, LabError};
use anyhow::{Context, anyhow, bail};
use ipnet::IpNet;
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment};
use k8s_openapi::api::core::v1::{Node, NodeAddress, NodeCondition, NodeStatus, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::core::{DynamicObject, GroupVersionKind};
use kube::discovery::pinned_kind;
use kube::{Client, ResourceExt};
use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The RBAC of `deploy/`: what the lab's components run under with [`Install::Direct`].
pub const DEPLOY_RBAC: &str = include_str!("../../deploy/rbac.yaml");

/// The API server's audit log in the lab's directory.
const AUDIT_LOG: &str = "apiserver-audit.jsonl";
/// The admin token file in the lab's directory.
const ADMIN_TOKEN: &str = "admin-token";
/// The API server's state file in the lab's directory.
const APISERVER_STATE: &str = "apiserver-state.json";

/// Port of every speaker's HTTP API.
pub const SPEAKER_HTTP_PORT: u16 = 7473;
/// Port of the controller's HTTP API.
pub const CONTROLLER_HTTP_PORT: u16 = 7472;
/// Port of the API server.
pub const APISERVER_PORT: u16 = 6443;
/// Port of the speakers' gossip membership.
pub const MEMBERSHIP_PORT: u16 = 7946;
/// AS of the speakers (matches `deploy/examples/bgp.yaml`).
pub const NODE_ASN: u32 = 64512;
/// AS of the lab router.
pub const ROUTER_ASN: u32 = 64500;
/// The speakers' membership key in the lab's Secret `memberlist`.
pub const LAB_MEMBERSHIP_KEY: &str = "ferrolb-lab-membership-key-not-secret";
/// TCP MD5 password of the example BGP peer (`deploy/examples/bgp.yaml`).
pub const EXAMPLE_BGP_PASSWORD: &str = "s3cret-md5";

/// A tokio runtime whose worker and blocking threads have joined network namespace `ns`: every
/// socket its tasks open is created in that namespace.
pub fn ns_runtime(ns: &str) -> anyhow::Result<tokio::runtime::Runtime> {
    let path = PathBuf::from(crate::lab::netns::NETNS_RUN_DIR).join(ns);
    let file = std::fs::File::open(&path).with_context(|| format!("opening {}", path.display()))?;
    let file = std::sync::Arc::new(file);
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .on_thread_start(move || {
            // A thread that cannot join the namespace would open sockets in the root
            // namespace; refuse to continue rather than send traffic there.
            if let Err(e) = nix::sched::setns(&*file, nix::sched::CloneFlags::CLONE_NEWNET) {
                eprintln!("setns into the lab namespace failed: {e}");
                std::process::abort();
            }
        })
        .build()
        .context("building the namespace runtime")
}

/// What to deploy.
#[derive(Clone, Debug)]
pub struct ClusterOptions {
    /// Node namespaces, each with a speaker.
    pub nodes: u8,
    /// Start the controller.
    pub controller: bool,
    /// Start the speakers.
    pub speakers: bool,
    /// Gossip membership between speakers (else Node Ready only).
    pub membership: bool,
    /// BIRD in the router namespace, peering with every node.
    pub bird: bool,
    /// TCP MD5 password BIRD expects from the nodes.
    pub bird_password: Option<String>,
    /// A client behind the router (reaches BGP-announced addresses).
    pub upstream_client: bool,
    /// Address ranges the nodes accept as local (the stand-in for kube-proxy).
    pub service_ranges: Vec<IpNet>,
    /// Which daemon `bird: true` starts in the router namespace (the flag's name predates FRR
    /// and GoBGP): BIRD (default), FRR (zebra + bgpd, installing routes with ECMP) or gobgpd.
    /// The same peers (every node, IPv4 and IPv6, passive), password and AS either way.
    pub router: RouterKind,
    /// AS of the router (default [`ROUTER_ASN`]); [`NODE_ASN`] makes the sessions iBGP.
    pub router_asn: u32,
    /// BFD on the router's sessions with these timers (BIRD and FRR; the speakers run BFD
    /// when their BGPPeer names a BFDProfile).
    pub router_bfd: Option<BfdTimers>,
    /// The router is a graceful restart helper (RFC 4724) on its sessions with the nodes.
    pub router_graceful_restart: bool,
    /// Extra command-line arguments for every speaker.
    pub speaker_args: Vec<String>,
    /// Extra command-line arguments for the controller.
    pub controller_args: Vec<String>,
    /// The controller elects a leader with its Lease, as a Deployment's replicas do (with
    /// [`Install::Direct`]; default off: one replica writes at once and restarts fast).
    pub leader_election: bool,
    /// The RBAC manifest applied with [`Install::Direct`]: its ServiceAccounts are what the
    /// controller and the speakers run as (default: `deploy/rbac.yaml`).
    pub rbac: String,
    /// Where the controller and speaker binaries come from.
    pub components: Components,
    /// How ferrolb's objects get into the API server, and so which arguments the controller
    /// and speakers run with.
    pub install: Install,
    /// A management network for the control plane and the nodes
    /// ([`crate::lab::LabBuilder::management_network`]): the API server, the Nodes'
    /// InternalIP and the membership use it, the LAN carries only the announcements. The
    /// router is not on it, so BGP sessions (to the InternalIP) need it off.
    pub management_network: bool,
}

/// How the lab installs ferrolb into its API server.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Install {
    /// The lab applies the CRDs, the namespace, [`ClusterOptions::rbac`] and the membership
    /// Secret itself, and starts the controller (leader election as
    /// [`ClusterOptions::leader_election`] says) and the speakers with its own arguments.
    #[default]
    Direct,
    /// `helm install` of this chart (with the pinned helm) into `ferrolb-system`: CRDs, RBAC,
    /// workloads and the memberlist Secret come from the chart, and the controller and speakers
    /// run with the command, arguments and environment of its Deployment and DaemonSet, as a
    /// kubelet would start them.
    Helm { chart: PathBuf },
}

/// The components' serving certificates, issued by the lab's CA for their listen addresses.
struct LabTls {
    ca: crate::lab_tls::LabCa,
    controller: crate::lab_tls::ServingFiles,
    /// Node `i`'s speaker at index `i - 1`.
    speakers: Vec<crate::lab_tls::ServingFiles>,
}

impl LabTls {
    fn new(lab: &Lab) -> anyhow::Result<LabTls> {
        let ca = crate::lab_tls::LabCa::new(&lab.log_dir().join("tls"))?;
        let controller = ca.issue("controller", IpAddr::V4(lab.control_plane().v4()))?;
        let speakers = lab
            .nodes()
            .iter()
            .map(|n| ca.issue(&format!("speaker-{}", n.name()), IpAddr::V4(n.v4())))
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(LabTls {
            ca,
            controller,
            speakers,
        })
    }
}

/// The lab's certificate arguments, unless the test chose how the component serves.
fn serving_args(files: &crate::lab_tls::ServingFiles, chosen: &[String]) -> Vec<String> {
    let own = chosen
        .iter()
        .any(|a| a.starts_with("--tls-cert-file") || a.starts_with("--http-insecure-loopback"));
    if own { Vec::new() } else { files.args() }
}

/// Kubeconfigs of the components' ServiceAccounts (none before they are issued).
#[derive(Clone, Debug, Default)]
struct ComponentKubeconfigs {
    controller: Option<PathBuf>,
    speaker: Option<PathBuf>,
    /// The tokens in them (the controller's, the speakers').
    tokens: Vec<String>,
}

/// The workloads an installation created, as JSON, for [`crate::workload::container_process`].
#[derive(Clone, Debug)]
struct InstalledWorkloads {
    controller: serde_json::Value,
    speaker: serde_json::Value,
}

/// Where the lab takes `ferrolb-controller` and `ferrolb-speaker` from.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Components {
    /// Next to the running executable (target/{debug,release}/), else PATH.
    #[default]
    Workspace,
    /// The root filesystem of an unpacked image: `/ferrolb-controller` and `/ferrolb-speaker`
    /// there. The controller runs as `controller_user` (the image's user; the speaker runs as
    /// root, as its DaemonSet does).
    Image {
        rootfs: PathBuf,
        controller_user: Option<(u32, u32)>,
    },
}

impl Components {
    /// The program and leading arguments that start `bin` (`ferrolb-controller` or
    /// `ferrolb-speaker`), switching to `user` first when given.
    fn command(&self, bin: &str) -> ProcessSpec {
        match self {
            Components::Workspace => ProcessSpec::new(role_of(bin), sibling_binary(bin)),
            Components::Image {
                rootfs,
                controller_user,
            } => {
                let program = rootfs.join(bin);
                match controller_user {
                    Some((uid, gid)) if bin == "ferrolb-controller" => {
                        ProcessSpec::new(role_of(bin), "setpriv")
                            .arg(format!("--reuid={uid}"))
                            .arg(format!("--regid={gid}"))
                            .arg("--clear-groups")
                            .arg("--")
                            .arg(program)
                    }
                    _ => ProcessSpec::new(role_of(bin), program),
                }
            }
        }
    }
}

fn role_of(bin: &str) -> &str {
    bin.strip_prefix("ferrolb-").unwrap_or(bin)
}

/// The BGP daemon of the lab router.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RouterKind {
    /// BIRD 2, kernel export with ECMP (`merge paths on`).
    #[default]
    Bird,
    /// FRR zebra + bgpd, `maximum-paths 8`, routes installed by zebra.
    Frr,
    /// gobgpd (no kernel installation; query with `gobgp global rib`).
    Gobgp,
}

impl Default for ClusterOptions {
    fn default() -> Self {
        Self {
            nodes: 3,
            controller: true,
            speakers: true,
            membership: true,
            bird: false,
            bird_password: None,
            upstream_client: false,
            service_ranges: default_service_ranges(),
            router: RouterKind::Bird,
            router_asn: ROUTER_ASN,
            router_bfd: None,
            router_graceful_restart: false,
            speaker_args: Vec::new(),
            controller_args: Vec::new(),
            leader_election: false,
            rbac: DEPLOY_RBAC.to_string(),
            components: Components::Workspace,
            install: Install::Direct,
            management_network: false,
        }
    }
}

/// The lab's service range plus the ranges of `deploy/examples/`.
pub fn default_service_ranges() -> Vec<IpNet> {
    [
        "10.200.10.0/24",
        "fd00:200:0:10::/64",
        "10.200.0.192/26",
        "fd00:200::c0/122",
        "10.200.100.0/24",
        "10.200.101.0/24",
        "fd00:200:0:101::/120",
    ]
    .iter()
    .filter_map(|s| s.parse().ok())
    .collect()
}

/// A running deployment.
pub struct Cluster {
    /// The namespaces (dropped last: processes first).
    pub lab: Lab,
    /// Runtime in the control-plane namespace; use [`Cluster::run`], never `block_on` with a
    /// future of your own (it would run on the calling thread, in the root namespace).
    rt: tokio::runtime::Runtime,
    /// Client of the API server (use it inside `rt`).
    pub client: Client,
    /// Kubeconfig file for the API server with the admin token (usable from the lab's
    /// namespaces); test code acts as this admin, the components as their ServiceAccounts.
    pub kubeconfig: PathBuf,
    /// The admin token of [`Cluster::kubeconfig`].
    admin_token: String,
    /// Kubeconfigs with the ServiceAccount tokens the controller and the speakers run with.
    component_kubeconfigs: ComponentKubeconfigs,
    /// The CA of the components' HTTPS certificates, and their certificate files.
    tls: LabTls,
    /// `None` while an outage is simulated ([`Cluster::stop_apiserver`]).
    apiserver: Option<LabProcess>,
    /// Controller replicas by number (0 is the one [`Cluster::controller`] names).
    controllers: Vec<Option<LabProcess>>,
    speakers: Vec<Option<LabProcess>>,
    echo: Vec<LabProcess>,
    /// BIRD in the router namespace.
    pub bird: Option<Bird>,
    /// FRR in the router namespace ([`RouterKind::Frr`]).
    pub frr: Option<Frr>,
    /// gobgpd in the router namespace ([`RouterKind::Gobgp`]).
    pub gobgp: Option<Gobgp>,
    opts: ClusterOptions,
    /// Set when the chart installed ferrolb: the processes run as its workloads say.
    workloads: Option<InstalledWorkloads>,
}

fn lab_err(e: LabError) -> anyhow::Error {
    anyhow!("{e}")
}

/// The lab's API server: on the control plane's address, its objects, TLS identity and
/// tokens' signing key kept in the lab's directory so a restarted process (an outage) comes
/// back as the same server.
fn apiserver_spec(lab: &Lab) -> ProcessSpec {
    let dir = lab.log_dir();
    let listen = SocketAddr::new(IpAddr::V4(lab.control_plane().v4()), APISERVER_PORT);
    ProcessSpec::new("apiserver", sibling_binary("ferrolb-e2e"))
        .arg("apiserver")
        .arg("--listen")
        .arg(listen.to_string())
        .arg("--kubeconfig")
        .arg(dir.join("kubeconfig"))
        .arg("--admin-token-file")
        .arg(dir.join(ADMIN_TOKEN))
        .arg("--audit-log")
        .arg(dir.join(AUDIT_LOG))
        .arg("--state")
        .arg(dir.join(APISERVER_STATE))
        .arg("--history")
        .arg("20000")
}

impl Cluster {
    /// Builds the lab and starts everything; returns once the API server answers, the nodes
    /// are registered and the processes are started (not necessarily synced).
    pub fn start(opts: ClusterOptions) -> anyhow::Result<Cluster> {
        let lab = Lab::builder()
            .nodes(opts.nodes)
            .lan_client(true)
            .upstream_client(opts.upstream_client)
            .management_network(opts.management_network)
            .build()
            .map_err(lab_err)?;
        let cp = lab.control_plane();
        let kubeconfig = lab.log_dir().join("kubeconfig");
        let admin_token = crate::credentials::write_admin_token(&lab.log_dir().join(ADMIN_TOKEN))?;
        let listen = SocketAddr::new(IpAddr::V4(cp.v4()), APISERVER_PORT);
        let apiserver = cp.ns().spawn_spec(&apiserver_spec(&lab)).map_err(lab_err)?;
        let tls = LabTls::new(&lab)?;
        let rt = ns_runtime(cp.ns().name())?;
        let token = admin_token.clone();
        let client = run_in(&rt, async move {
            let deadline = Instant::now() + Duration::from_secs(20);
            loop {
                if tokio::net::TcpStream::connect(listen).await.is_ok() {
                    break;
                }
                if Instant::now() > deadline {
                    return Err(anyhow!("the API server did not listen on {listen}"));
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            let mut cfg = kube::Config::new(format!("http://{listen}").parse()?);
            cfg.default_namespace = "default".into();
            cfg.auth_info.token = Some(token.into());
            Ok::<Client, anyhow::Error>(Client::try_from(cfg)?)
        })??;
        let mut cluster = Cluster {
            lab,
            rt,
            client,
            kubeconfig,
            admin_token,
            component_kubeconfigs: ComponentKubeconfigs::default(),
            tls,
            apiserver: Some(apiserver),
            controllers: Vec::new(),
            speakers: Vec::new(),
            echo: Vec::new(),
            bird: None,
            frr: None,
            gobgp: None,
            opts: opts.clone(),
            workloads: None,
        };
        cluster.prepare_nodes()?;
        if let Install::Helm { chart } = &opts.install {
            cluster.workloads = Some(cluster.helm_install(chart)?);
        }
        cluster.register()?;
        cluster.component_kubeconfigs = cluster.issue_component_tokens()?;
        cluster.hand_controller_files_to_its_user()?;
        let nodes: Vec<(String, std::net::Ipv4Addr)> = cluster
            .lab
            .nodes()
            .iter()
            .map(|n| (n.name().to_string(), n.v4()))
            .collect();
        // Stays as long as the runtime: the lab's EndpointSlice controller.
        cluster
            .rt
            .spawn(crate::endpoints::run(cluster.client.clone(), nodes));
        if opts.bird {
            match opts.router {
                RouterKind::Bird => cluster.start_bird()?,
                RouterKind::Frr => cluster.start_frr()?,
                RouterKind::Gobgp => cluster.start_gobgp()?,
            }
        }
        if opts.controller {
            cluster.start_controller()?;
        }
        for i in 1..=usize::from(opts.nodes) {
            cluster.speakers.push(None);
            if opts.speakers {
                cluster.start_speaker(i)?;
            }
        }
        Ok(cluster)
    }

    /// Node namespaces accept the service ranges locally without answering ARP/NDP for them
    /// (only the speaker does), and run an HTTP server answering with the node's name.
    fn prepare_nodes(&mut self) -> anyhow::Result<()> {
        let e2e_bin = sibling_binary("ferrolb-e2e");
        for node in self.lab.nodes() {
            let ns = node.ns();
            // arp_ignore=1: answer ARP only for addresses configured on the receiving
            // interface; service addresses are local routes on lo, so the kernel never answers
            // for them. arp_announce=2: never use them as ARP source.
            for (k, v) in [
                ("net.ipv4.conf.all.arp_ignore", "1"),
                ("net.ipv4.conf.all.arp_announce", "2"),
            ] {
                ns.sysctl(k, v).map_err(lab_err)?;
            }
            for range in &self.opts.service_ranges {
                let fam = if range.addr().is_ipv6() { "-6" } else { "-4" };
                ns.ip([
                    fam,
                    "route",
                    "add",
                    "local",
                    &range.to_string(),
                    "dev",
                    "lo",
                ])
                .map_err(lab_err)?;
            }
            let echo = ns
                .spawn_spec(
                    &ProcessSpec::new("echo", &e2e_bin)
                        .arg("echo-server")
                        .arg("--listen")
                        .arg("[::]:80")
                        .arg("--text")
                        .arg(node.name()),
                )
                .map_err(lab_err)?;
            self.echo.push(echo);
        }
        Ok(())
    }

    /// `helm install ferrolb CHART` into `ferrolb-system` with the pinned helm, run in the
    /// control plane's namespace (where the API server listens), then reads back the
    /// Deployment and DaemonSet it created.
    fn helm_install(&self, chart: &Path) -> anyhow::Result<InstalledWorkloads> {
        let helm = crate::tools::path(crate::tools::Tool::Helm);
        let version = crate::tools::version_line(crate::tools::Tool::Helm)
            .map_err(|e| anyhow!("lab --install helm: {e}"))?;
        let home = self.lab.log_dir().join("helm-home");
        std::fs::create_dir_all(&home).with_context(|| format!("creating {}", home.display()))?;
        let env = |k: &str, sub: &str| format!("{k}={}", home.join(sub).display());
        let argv: Vec<String> = vec![
            "env".into(),
            env("HOME", ""),
            env("HELM_CACHE_HOME", "cache"),
            env("HELM_CONFIG_HOME", "config"),
            env("HELM_DATA_HOME", "data"),
            helm.display().to_string(),
            "install".into(),
            "ferrolb".into(),
            chart.display().to_string(),
            "--namespace".into(),
            "ferrolb-system".into(),
            "--create-namespace".into(),
            "--kubeconfig".into(),
            self.kubeconfig.display().to_string(),
        ];
        let out = self.lab.control_plane().ns().exec(&argv).map_err(lab_err)?;
        if !out.success() {
            bail!(
                "helm install of {} failed ({version}):\n{}{}",
                chart.display(),
                out.stdout,
                out.stderr
            );
        }
        tracing::debug!("helm install ({version}):\n{}", out.stdout);
        let client = self.client.clone();
        let (controller, speaker) = self.run(async move {
            let deployments: Api<Deployment> = Api::namespaced(client.clone(), "ferrolb-system");
            let daemonsets: Api<DaemonSet> = Api::namespaced(client, "ferrolb-system");
            let controller = deployments
                .get("controller")
                .await
                .context("the chart's Deployment controller")?;
            let speaker = daemonsets
                .get("speaker")
                .await
                .context("the chart's DaemonSet speaker")?;
            Ok::<_, anyhow::Error>((
                serde_json::to_value(controller)?,
                serde_json::to_value(speaker)?,
            ))
        })??;
        Ok(InstalledWorkloads {
            controller,
            speaker,
        })
    }

    /// CRDs, the namespace, Node objects (Ready, with their InternalIP) and the membership key.
    fn register(&self) -> anyhow::Result<()> {
        let client = self.client.clone();
        let nodes: Vec<(String, Vec<IpAddr>)> = self
            .lab
            .nodes()
            .iter()
            .map(|n| {
                (
                    n.name().to_string(),
                    vec![IpAddr::V4(n.v4()), IpAddr::V6(n.v6())],
                )
            })
            .collect();
        // Through the chart, the CRDs, the namespace, the RBAC and the key are the chart's.
        let direct = self.workloads.is_none();
        let rbac = self.opts.rbac.clone();
        self.run(async move {
            if direct {
                crate::fixtures::install_crds(&client)
                    .await
                    .context("installing CRDs")?;
                crate::fixtures::ensure_namespace(&client, "ferrolb-system")
                    .await
                    .context("creating namespace ferrolb-system")?;
                apply_manifest(client.clone(), rbac, "ferrolb-lab")
                    .await
                    .context("applying the RBAC")?;
            }
            for (name, addrs) in nodes {
                register_node(&client, &name, &addrs, true)
                    .await
                    .with_context(|| format!("registering node {name}"))?;
            }
            if !direct {
                return Ok(());
            }
            let secrets: Api<Secret> = Api::namespaced(client.clone(), "ferrolb-system");
            let key = Secret {
                metadata: ObjectMeta {
                    name: Some("memberlist".into()),
                    ..ObjectMeta::default()
                },
                // `data`, not `stringData`: the in-memory API server stores stringData as
                // given (a real kube-apiserver folds it into data), and the speakers read data
                // only; with stringData they never found the key and ran without membership.
                data: Some(BTreeMap::from([(
                    "secretkey".to_string(),
                    k8s_openapi::ByteString(LAB_MEMBERSHIP_KEY.as_bytes().to_vec()),
                )])),
                ..Secret::default()
            };
            match secrets.create(&PostParams::default(), &key).await {
                Ok(_) => {}
                Err(kube::Error::Api(s)) if s.code == 409 => {}
                Err(e) => {
                    return Err(anyhow::Error::from(e).context("creating the membership Secret"));
                }
            }
            Ok::<(), anyhow::Error>(())
        })?
    }

    /// A token for the ServiceAccount of each component (deploy/rbac.yaml's, or the one the
    /// chart's workloads name) and a kubeconfig with it.
    fn issue_component_tokens(&self) -> anyhow::Result<ComponentKubeconfigs> {
        let account = |workload: Option<&serde_json::Value>, default: &str| {
            workload
                .and_then(|w| w["spec"]["template"]["spec"]["serviceAccountName"].as_str())
                .unwrap_or(default)
                .to_string()
        };
        let controller_sa = account(self.workloads.as_ref().map(|w| &w.controller), "controller");
        let speaker_sa = account(self.workloads.as_ref().map(|w| &w.speaker), "speaker");
        let client = self.client.clone();
        let (controller_token, speaker_token) = self.run(async move {
            let c = crate::credentials::service_account_token(
                client.clone(),
                "ferrolb-system",
                &controller_sa,
            )
            .await?;
            let s =
                crate::credentials::service_account_token(client, "ferrolb-system", &speaker_sa)
                    .await?;
            Ok::<_, anyhow::Error>((c, s))
        })??;
        let dir = self.lab.log_dir();
        Ok(ComponentKubeconfigs {
            controller: Some(crate::credentials::write_kubeconfig(
                dir,
                "controller",
                &self.kubeconfig,
                &controller_token,
            )?),
            speaker: Some(crate::credentials::write_kubeconfig(
                dir,
                "speaker",
                &self.kubeconfig,
                &speaker_token,
            )?),
            tokens: vec![controller_token, speaker_token],
        })
    }

    /// An image's controller runs as the image's user: its kubeconfig and TLS key (mode 0600,
    /// written by the lab as root) become that user's, as a kubelet's projected token and
    /// Secret volume are the Pod's.
    fn hand_controller_files_to_its_user(&self) -> anyhow::Result<()> {
        let Components::Image {
            controller_user: Some((uid, gid)),
            ..
        } = &self.opts.components
        else {
            return Ok(());
        };
        let files = [
            self.component_kubeconfigs.controller.clone(),
            Some(self.tls.controller.cert.clone()),
            Some(self.tls.controller.key.clone()),
        ];
        for path in files.into_iter().flatten() {
            std::os::unix::fs::chown(&path, Some(*uid), Some(*gid))
                .with_context(|| format!("chown {uid}:{gid} {}", path.display()))?;
        }
        Ok(())
    }

    /// The kubeconfig component `who` runs with; the admin's before tokens are issued.
    fn kubeconfig_of(&self, who: &str) -> &Path {
        let own = match who {
            "controller" => self.component_kubeconfigs.controller.as_deref(),
            _ => self.component_kubeconfigs.speaker.as_deref(),
        };
        own.unwrap_or(&self.kubeconfig)
    }

    /// The admin token test code acts with (the one in [`Cluster::kubeconfig`]).
    pub fn admin_token(&self) -> &str {
        &self.admin_token
    }

    /// Every authorization decision the API server made so far (its `--audit-log`).
    pub fn audit_records(&self) -> anyhow::Result<Vec<crate::apiserver::audit::AuditRecord>> {
        let path = self.lab.log_dir().join(AUDIT_LOG);
        crate::apiserver::audit::read(&path).with_context(|| format!("reading {}", path.display()))
    }

    /// The ServiceAccount tokens the controller and the speakers run with.
    pub fn component_tokens(&self) -> &[String] {
        &self.component_kubeconfigs.tokens
    }

    /// The router's peers: every node, IPv4 and IPv6 sessions, passive, with the password.
    fn router_peers(&self) -> Vec<BgpPeer> {
        let mut peers = Vec::new();
        for (i, node) in self.lab.nodes().iter().enumerate() {
            for addr in [IpAddr::V4(node.v4()), IpAddr::V6(node.v6())] {
                let fam = if addr.is_ipv4() { "v4" } else { "v6" };
                let mut peer = BgpPeer::new(format!("node{}{fam}", i + 1), addr, NODE_ASN)
                    .passive(true)
                    .families(addr.is_ipv4(), addr.is_ipv6());
                if let Some(p) = &self.opts.bird_password {
                    peer = peer.password(p.clone());
                }
                if let Some(t) = self.opts.router_bfd {
                    peer = peer.bfd(t);
                }
                peers.push(peer.graceful_restart(self.opts.router_graceful_restart));
            }
        }
        peers
    }

    /// The BIRD configuration of the lab router (also for restarting it by hand).
    pub fn bird_config(&self) -> BirdConfig {
        let mut cfg = BirdConfig::new(self.lab.router().v4(), self.opts.router_asn);
        // The peers are rendered here, with `error wait time 1,5`: after an error (a hold
        // timer expiry, a wrong password) BIRD's default refuses the peer for 60-300 s, far
        // longer than a test; a router that takes a recovered node back quickly is the case
        // the tests are about.
        let mut peers_only = BirdConfig::new(self.lab.router().v4(), self.opts.router_asn);
        peers_only.kernel_export = false;
        for peer in self.router_peers() {
            peers_only = peers_only.peer(peer);
        }
        match peers_only.render() {
            Ok(text) => {
                // From the first BGP protocol, or the BFD protocol the BGP ones need.
                let first =
                    |l: &&str| !(l.starts_with("protocol bgp ") || l.starts_with("protocol bfd "));
                for line in text.lines().skip_while(first) {
                    cfg.extra.push_str(line);
                    cfg.extra.push('\n');
                    if line.starts_with("protocol bgp ") {
                        cfg.extra.push_str("  error wait time 1,5;\n");
                    }
                }
            }
            // Invalid peers: let BIRD's own rendering report it at start.
            Err(_) => cfg.peers = peers_only.peers,
        }
        if self.opts.router_asn == NODE_ASN {
            // iBGP next hops resolve recursively through the IGP table: give BIRD the
            // connected LAN routes (not exported to the kernel, which has them already).
            cfg.extra.push_str(
                "protocol direct { ipv4 { import all; export none; }; ipv6 { import all; export none; }; }\n",
            );
            cfg.kernel_export = false;
            cfg.extra.push_str(
                "protocol kernel k_ipv4 { ipv4 { import none; export where source = RTS_BGP; }; merge paths on; }\n\
                 protocol kernel k_ipv6 { ipv6 { import none; export where source = RTS_BGP; }; merge paths on; }\n",
            );
        }
        cfg
    }

    fn start_bird(&mut self) -> anyhow::Result<()> {
        let cfg = self.bird_config();
        self.bird = Some(Bird::start(self.lab.router().ns(), &cfg).map_err(lab_err)?);
        Ok(())
    }

    /// Stops BIRD (SIGKILL by PID: no Cease, routes stay in the kernel) and starts it again
    /// with the same configuration.
    pub fn restart_bird(&mut self) -> anyhow::Result<()> {
        if let Some(b) = self.bird.take() {
            b.process().kill().map_err(lab_err)?;
            drop(b);
        }
        self.start_bird()
    }

    /// Whether the router's BFD session with `peer` (a node address) is Up (BIRD: `show bfd
    /// sessions`; FRR: bfdd's `show bfd peer`); false without a BFD-capable router.
    pub fn router_bfd_up(&self, peer: IpAddr) -> bool {
        if let Some(b) = &self.bird {
            let out = b.birdc("show bfd sessions").unwrap_or_default();
            let addr = peer.to_string();
            return out.lines().any(|l| {
                l.split_whitespace().next() == Some(addr.as_str())
                    && l.split_whitespace().any(|w| w == "Up")
            });
        }
        if let Some(f) = &self.frr {
            return f
                .bfd_status(peer)
                .is_some_and(|s| s.eq_ignore_ascii_case("up"));
        }
        false
    }

    /// Kills the router's daemon (SIGKILL, as a crash) and starts it again with the same
    /// configuration, whichever [`RouterKind`] runs.
    pub fn restart_router(&mut self) -> anyhow::Result<()> {
        match self.opts.router {
            RouterKind::Bird => self.restart_bird(),
            RouterKind::Frr => {
                if let Some(f) = self.frr.take() {
                    f.bgpd().kill().map_err(lab_err)?;
                    f.zebra().kill().map_err(lab_err)?;
                    drop(f);
                }
                self.start_frr()
            }
            RouterKind::Gobgp => {
                if let Some(g) = self.gobgp.take() {
                    g.process().kill().map_err(lab_err)?;
                    drop(g);
                }
                self.start_gobgp()
            }
        }
    }

    /// The FRR configuration of the lab router.
    pub fn frr_config(&self) -> FrrConfig {
        let asn = self.opts.router_asn;
        let mut cfg = FrrConfig::new("router", self.lab.router().v4(), asn);
        for peer in self.router_peers() {
            cfg = cfg.peer(peer);
        }
        cfg.extra = format!(
            "router bgp {asn}\n address-family ipv4 unicast\n  maximum-paths 8\n  maximum-paths ibgp 8\n exit-address-family\n address-family ipv6 unicast\n  maximum-paths 8\n  maximum-paths ibgp 8\n exit-address-family\n!\n"
        );
        cfg
    }

    fn start_frr(&mut self) -> anyhow::Result<()> {
        let cfg = self.frr_config();
        self.frr = Some(Frr::start(self.lab.router().ns(), &cfg).map_err(lab_err)?);
        Ok(())
    }

    /// The gobgpd configuration of the lab router.
    pub fn gobgp_config(&self) -> GobgpConfig {
        let mut cfg = GobgpConfig::new(self.lab.router().v4(), self.opts.router_asn);
        for peer in self.router_peers() {
            cfg = cfg.peer(peer);
        }
        cfg
    }

    fn start_gobgp(&mut self) -> anyhow::Result<()> {
        let cfg = self.gobgp_config();
        self.gobgp = Some(Gobgp::start(self.lab.router().ns(), &cfg).map_err(lab_err)?);
        Ok(())
    }

    /// Starts (or restarts) the controller.
    pub fn start_controller(&mut self) -> anyhow::Result<()> {
        self.start_controller_replica(0)
    }

    /// Starts (or restarts) controller replica `r` (identity `controller-R`, HTTP API on
    /// [`Cluster::controller_http_of`]); replicas beside 0 need leader election and the
    /// lab's own components (a chart's workload fixes the port).
    pub fn start_controller_replica(&mut self, r: usize) -> anyhow::Result<()> {
        if r > 0 && (self.workloads.is_some() || !self.opts.leader_election) {
            bail!("a second controller replica needs leader election and direct components");
        }
        if self.controllers.len() <= r {
            self.controllers.resize_with(r + 1, || None);
        }
        self.controllers[r] = None;
        let cp = self.lab.control_plane();
        let pod = format!("controller-{r}");
        let spec = match &self.workloads {
            Some(w) => self.workload_spec(&w.controller, "controller", &pod, "lab")?,
            None => {
                let listen = self.controller_http_of(r);
                self.opts
                    .components
                    .command("ferrolb-controller")
                    .args(["run", "--namespace", "ferrolb-system"])
                    .args(
                        (!self.opts.leader_election)
                            .then_some("--no-leader-election")
                            .iter(),
                    )
                    .arg("--listen")
                    .arg(listen.to_string())
                    .env("POD_NAME", &pod)
                    .env("RUST_LOG", "info")
            }
        }
        .args(self.opts.controller_args.iter())
        .args(serving_args(
            &self.tls.controller,
            &self.opts.controller_args,
        ))
        .env("KUBECONFIG", self.kubeconfig_of("controller"));
        self.controllers[r] = Some(cp.ns().spawn_spec(&spec).map_err(lab_err)?);
        Ok(())
    }

    /// Controller replica `r`, if running.
    pub fn controller_replica(&self, r: usize) -> Option<&LabProcess> {
        self.controllers.get(r)?.as_ref()
    }

    /// Forgets (and so stops) controller replica `r` without signalling it first; use
    /// [`LabProcess::kill`] before for a crash.
    pub fn drop_controller_replica(&mut self, r: usize) {
        if let Some(slot) = self.controllers.get_mut(r) {
            drop(slot.take());
        }
    }

    /// Stops the API server (SIGTERM: it saves its state) and waits for it to exit: an
    /// outage. The components keep running and retry.
    pub fn stop_apiserver(&mut self) -> anyhow::Result<()> {
        if let Some(p) = self.apiserver.take() {
            p.terminate().map_err(lab_err)?;
            p.wait_timeout(Duration::from_secs(10)).map_err(lab_err)?;
        }
        Ok(())
    }

    /// Starts the API server again after [`Cluster::stop_apiserver`], with the objects,
    /// tokens and TLS identity it had; returns once it accepts connections.
    pub fn start_apiserver(&mut self) -> anyhow::Result<()> {
        if self.apiserver.is_some() {
            return Ok(());
        }
        let cp = self.lab.control_plane();
        self.apiserver = Some(
            cp.ns()
                .spawn_spec(&apiserver_spec(&self.lab))
                .map_err(lab_err)?,
        );
        let listen = SocketAddr::new(IpAddr::V4(cp.v4()), APISERVER_PORT);
        self.run(async move {
            let deadline = Instant::now() + Duration::from_secs(20);
            while tokio::net::TcpStream::connect(listen).await.is_err() {
                if Instant::now() > deadline {
                    bail!("the API server did not listen on {listen} again");
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Ok(())
        })?
    }

    /// The process a kubelet would start for `container` of an installed workload, from the
    /// binaries of [`ClusterOptions::components`]. Only `KUBECONFIG` (with the token of the
    /// ServiceAccount the workload names) is added by the caller
    /// (the lab's processes have no in-cluster credentials).
    fn workload_spec(
        &self,
        workload: &serde_json::Value,
        container: &str,
        pod_name: &str,
        node_name: &str,
    ) -> anyhow::Result<ProcessSpec> {
        let pod = crate::workload::PodContext {
            pod_name,
            namespace: "ferrolb-system",
            node_name,
        };
        let p = crate::workload::container_process(workload, container, pod)?;
        let (program, args) = p
            .argv
            .split_first()
            .ok_or_else(|| anyhow!("{container}: empty command"))?;
        let bin = program.rsplit('/').next().unwrap_or(program);
        let mut spec = self.opts.components.command(bin).args(args);
        for (k, v) in &p.env {
            spec = spec.env(k, v);
        }
        Ok(spec)
    }

    /// Starts (or restarts) the speaker of node `i` (1-based).
    pub fn start_speaker(&mut self, i: usize) -> anyhow::Result<()> {
        self.start_speaker_with(i, &[])
    }

    /// Starts (or restarts) the speaker of node `i` (1-based) with `extra` arguments after the
    /// lab's own, for this start only.
    pub fn start_speaker_with(&mut self, i: usize, extra: &[&str]) -> anyhow::Result<()> {
        let slot = i
            .checked_sub(1)
            .ok_or_else(|| anyhow!("nodes are numbered from 1"))?;
        if let Some(s) = self.speakers.get_mut(slot) {
            *s = None;
        }
        let node = self.lab.node(i);
        let spec = match &self.workloads {
            Some(w) => {
                let pod = format!("speaker-{}", node.name());
                self.workload_spec(&w.speaker, "speaker", &pod, node.name())?
            }
            None => {
                let listen = SocketAddr::new(IpAddr::V4(node.v4()), SPEAKER_HTTP_PORT);
                let port = if self.opts.membership {
                    MEMBERSHIP_PORT
                } else {
                    0
                };
                self.opts
                    .components
                    .command("ferrolb-speaker")
                    .args([
                        "run",
                        "--namespace",
                        "ferrolb-system",
                        "--node-name",
                        node.name(),
                    ])
                    .arg("--listen")
                    .arg(listen.to_string())
                    .arg("--membership-port")
                    .arg(port.to_string())
                    .env("RUST_LOG", "info")
            }
        }
        .args(self.marker_dir_arg(node))
        .args(self.opts.speaker_args.iter())
        .args(extra.iter().copied())
        .args(serving_args(
            &self.tls.speakers[slot],
            &self.opts.speaker_args,
        ))
        .env("KUBECONFIG", self.kubeconfig_of("speaker"));
        let p = node.ns().spawn_spec(&spec).map_err(lab_err)?;
        match self.speakers.get_mut(slot) {
            Some(s) => *s = Some(p),
            None => return Err(anyhow!("no node {i}")),
        }
        Ok(())
    }

    /// Where the speaker of `node` leaves its BGP restart marker: in the lab's directory (the
    /// host's /run/ferrolb is shared by every lab's nodes), unless the test chose a place.
    fn marker_dir_arg(&self, node: &crate::lab::topology::Host) -> Vec<String> {
        let chosen = self
            .opts
            .speaker_args
            .iter()
            .any(|a| a.starts_with("--restart-marker-dir"));
        if chosen {
            return Vec::new();
        }
        let dir = self.lab.log_dir().join("restart-markers").join(node.name());
        vec![
            "--restart-marker-dir".to_string(),
            dir.display().to_string(),
        ]
    }

    /// The speaker process of node `i` (1-based), if running.
    pub fn speaker(&self, i: usize) -> Option<&LabProcess> {
        self.speakers.get(i.checked_sub(1)?)?.as_ref()
    }

    /// Forgets (and so stops) the speaker of node `i` without signalling it first; use
    /// [`LabProcess::kill`] before for a crash.
    pub fn drop_speaker(&mut self, i: usize) {
        if let Some(Some(p)) = i
            .checked_sub(1)
            .and_then(|s| self.speakers.get_mut(s))
            .map(Option::take)
        {
            drop(p);
        }
    }

    /// The controller process (replica 0), if running.
    pub fn controller(&self) -> Option<&LabProcess> {
        self.controller_replica(0)
    }

    /// The API server process, unless stopped by [`Cluster::stop_apiserver`].
    pub fn apiserver(&self) -> Option<&LabProcess> {
        self.apiserver.as_ref()
    }

    /// Address of the speaker HTTP API of node `i` (1-based).
    pub fn speaker_http(&self, i: usize) -> SocketAddr {
        SocketAddr::new(IpAddr::V4(self.lab.node(i).v4()), SPEAKER_HTTP_PORT)
    }

    /// Whether the speaker of node `i` (1-based) lists `ip` among its announcements.
    pub fn announces(&self, i: usize, ip: IpAddr) -> bool {
        let ip = ip.to_string();
        self.get_json(self.speaker_http(i), "/api/v1/status")
            .is_ok_and(|s| {
                s["announcements"]
                    .as_array()
                    .is_some_and(|a| a.iter().any(|x| x["ip"].as_str() == Some(ip.as_str())))
            })
    }

    /// Interfaces where node `i`'s speaker answers ARP in the kernel (its status API), or
    /// `None` when the status cannot be read.
    pub fn kernel_responder_interfaces(&self, i: usize) -> Option<Vec<String>> {
        let s = self.get_json(self.speaker_http(i), "/api/v1/status").ok()?;
        Some(
            s["kernelResponderInterfaces"]
                .as_array()?
                .iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect(),
        )
    }

    /// Nodes (1-based) whose speaker announces `ip`, from their status APIs.
    pub fn announcing_nodes(&self, ip: IpAddr) -> Vec<usize> {
        (1..=self.lab.nodes().len())
            .filter(|&i| self.announces(i, ip))
            .collect()
    }

    /// Waits until exactly one node announces `ip`, not asking node `except` (a node whose
    /// speaker was just killed); returns it.
    pub fn wait_single_announcer(
        &self,
        ip: IpAddr,
        except: Option<usize>,
        timeout: Duration,
    ) -> anyhow::Result<usize> {
        let deadline = Instant::now() + timeout;
        loop {
            let nodes: Vec<usize> = (1..=self.lab.nodes().len())
                .filter(|&i| Some(i) != except && self.announces(i, ip))
                .collect();
            if let [one] = nodes.as_slice() {
                return Ok(*one);
            }
            if Instant::now() > deadline {
                return Err(anyhow!(
                    "{ip}: announced by nodes {nodes:?} after {timeout:?}"
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Address of the controller HTTP API.
    pub fn controller_http(&self) -> SocketAddr {
        self.controller_http_of(0)
    }

    /// The HTTP API of controller replica `r`.
    pub fn controller_http_of(&self, r: usize) -> SocketAddr {
        let port = u16::try_from(r)
            .ok()
            .and_then(|r| CONTROLLER_HTTP_PORT.checked_add(r))
            .unwrap_or(CONTROLLER_HTTP_PORT);
        SocketAddr::new(IpAddr::V4(self.lab.control_plane().v4()), port)
    }

    /// `GET path` on one of the lab's HTTP APIs, as parsed JSON.
    pub fn get_json(&self, addr: SocketAddr, path: &str) -> anyhow::Result<serde_json::Value> {
        Ok(serde_json::from_str(&self.get_text(addr, path)?)?)
    }

    /// `GET path` on one of the lab's HTTP APIs: the body of a 200 answer.
    pub fn get_text(&self, addr: SocketAddr, path: &str) -> anyhow::Result<String> {
        let (code, body) = self.http_get(addr, path)?;
        if code != 200 {
            return Err(anyhow!("GET {addr}{path}: HTTP {code}: {body}"));
        }
        Ok(body)
    }

    /// `GET path` over HTTPS on one of the components' APIs as the admin (whose token they
    /// review with the API server): status code and body.
    pub fn http_get(&self, addr: SocketAddr, path: &str) -> anyhow::Result<(u16, String)> {
        self.http_get_as(addr, path, &self.admin_token)
    }

    /// `GET path` over HTTPS on one of the components' APIs with bearer `token`.
    pub fn http_get_as(
        &self,
        addr: SocketAddr,
        path: &str,
        token: &str,
    ) -> anyhow::Result<(u16, String)> {
        let (path, token, tls) = (path.to_string(), token.to_string(), self.tls.ca.client());
        self.run(async move { crate::lab_tls::https_get(addr, &path, &token, tls).await })?
    }

    /// Applies every document of a YAML manifest (server-side apply, field manager
    /// `ferrolb-lab`); returns `kind/name` of each object.
    pub fn apply_yaml(&self, text: &str) -> anyhow::Result<Vec<String>> {
        self.run(apply_manifest(
            self.client.clone(),
            text.to_string(),
            "ferrolb-lab",
        ))?
    }

    /// Runs `fut` as a task of the control-plane runtime (so every socket it opens is in the
    /// control-plane namespace) and waits for it.
    pub fn run<F>(&self, fut: F) -> anyhow::Result<F::Output>
    where
        F: std::future::Future + Send + 'static,
        F::Output: Send + 'static,
    {
        run_in(&self.rt, fut)
    }
}

/// Spawns `fut` on `rt` and waits for it from the calling thread. The calling thread only
/// waits: the future itself runs on the runtime's threads, inside their namespace.
pub fn run_in<F>(rt: &tokio::runtime::Runtime, fut: F) -> anyhow::Result<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    let handle = rt.spawn(fut);
    rt.block_on(handle)
        .map_err(|e| anyhow!("task in the lab namespace failed: {e}"))
}

/// Applies every document of a YAML manifest (server-side apply with `field_manager`, as
/// `kubectl apply --server-side` does); returns `kind/name` of each object.
pub async fn apply_manifest(
    client: Client,
    text: String,
    field_manager: &'static str,
) -> anyhow::Result<Vec<String>> {
    let docs: Vec<serde_json::Value> = serde_saphyr::from_multiple(&text)?;
    let mut applied = Vec::new();
    for doc in docs.into_iter().filter(|d| !d.is_null()) {
        let obj: DynamicObject = serde_json::from_value(doc)?;
        let types = obj
            .types
            .clone()
            .ok_or_else(|| anyhow!("a document has no apiVersion/kind"))?;
        let gvk = GroupVersionKind::try_from(&types)?;
        let (resource, caps) = pinned_kind(&client, &gvk).await?;
        let name = obj.name_any();
        let api: Api<DynamicObject> = match caps.scope {
            kube::discovery::Scope::Namespaced => Api::namespaced_with(
                client.clone(),
                obj.namespace().as_deref().unwrap_or("default"),
                &resource,
            ),
            kube::discovery::Scope::Cluster => Api::all_with(client.clone(), &resource),
        };
        let params = PatchParams::apply(field_manager).force();
        api.patch(&name, &params, &Patch::Apply(&obj))
            .await
            .with_context(|| format!("applying {}/{name}", gvk.kind))?;
        applied.push(format!("{}/{name}", gvk.kind));
    }
    Ok(applied)
}

/// Creates (or updates) a Node object with InternalIP addresses and a Ready condition.
pub async fn register_node(
    client: &Client,
    name: &str,
    addrs: &[IpAddr],
    ready: bool,
) -> anyhow::Result<()> {
    let api: Api<Node> = Api::all(client.clone());
    let node = Node {
        metadata: ObjectMeta {
            name: Some(name.into()),
            labels: Some(BTreeMap::from([(
                "kubernetes.io/hostname".to_string(),
                name.to_string(),
            )])),
            ..ObjectMeta::default()
        },
        ..Node::default()
    };
    match api.create(&PostParams::default(), &node).await {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.code == 409 => {}
        Err(e) => return Err(anyhow::Error::from(e).context("creating the Node")),
    }
    let status = NodeStatus {
        addresses: Some(
            addrs
                .iter()
                .map(|a| NodeAddress {
                    type_: "InternalIP".into(),
                    address: a.to_string(),
                })
                .collect(),
        ),
        conditions: Some(vec![NodeCondition {
            type_: "Ready".into(),
            status: if ready { "True" } else { "False" }.into(),
            ..NodeCondition::default()
        }]),
        ..NodeStatus::default()
    };
    let patch = serde_json::json!({ "status": status });
    api.patch_status(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await?;
    Ok(())
}
