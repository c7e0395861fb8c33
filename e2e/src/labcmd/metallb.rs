//! `lab --scenario metallb`: swapping MetalLB for ferrolb changes nothing a client sees.
//!
//! The lab starts without ferrolb's controller and speakers. MetalLB's own CRDs (test data in
//! `e2e/testdata/metallb/crds/`) are installed beside ferrolb's, `metallb-system` holds
//! MetalLB-style configuration (an L2 pool and advertisement, a BGP pool, advertisement and
//! `v1beta2` BGPPeers) and Services carry MetalLB's annotations, the addresses MetalLB gave them
//! in `status.loadBalancer` and its `metallb.io/ip-allocated-from-pool` annotation — a cluster
//! as MetalLB left it. Then probers in the clients start (a GET every 10 ms per address, a new
//! connection each), ferrolb's controller and speakers start with their defaults
//! (`--config-groups auto` finds `metallb.io`), and the run shows:
//! (a) no Service's addresses changed (status before and after, once the controller reports
//! every Service allocated), (b) every address is announced and reachable, (c) the outage of
//! the swap per address: ferrolb's start → first successful probe, and no failed probe after it.

use super::observe::{Clients, Snapshot, short};
use super::render::Ui;
use super::scenario::{Expect, Mode, SvcSpec};
use crate::bench::prober::{Prober, Sample};
use crate::cluster::{Cluster, EXAMPLE_BGP_PASSWORD, NODE_ASN, ROUTER_ASN};
use anyhow::{Context, anyhow};
use k8s_openapi::api::core::v1::Service;
use kube::api::{Api, Patch, PatchParams};
use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

/// The namespace MetalLB's configuration lives in (ferrolb's `--metallb-namespace` default).
pub const METALLB_NAMESPACE: &str = "metallb-system";
/// Probe interval (the resolution of the measurement).
/// The client that probes layer 2 addresses, as reports name it.
const LAN_CLIENT: &str = "lan-client";
/// The client that probes BGP addresses (through the router), as reports name it.
const UPSTREAM_CLIENT: &str = "upstream-client";
const PROBE_INTERVAL: Duration = Duration::from_millis(10);
/// Probing before ferrolb starts, so the measurement shows the addresses were dark.
const BEFORE_START: Duration = Duration::from_millis(300);
/// Probing after everything is reachable: a flap right after the take-over shows here.
const SETTLE: Duration = Duration::from_secs(3);
/// The annotation MetalLB writes with the pool an address came from (MetalLB
/// controller/service.go `convergeBalancer` sets `AnnotationIPAllocateFromPool`).
const ALLOCATED_FROM_POOL: &str = "metallb.io/ip-allocated-from-pool";

macro_rules! crd {
    ($file:literal) => {
        (
            $file,
            include_str!(concat!("../../testdata/metallb/crds/", $file)),
        )
    };
}

/// MetalLB's CRDs, as its repository's `config/crd/bases/` has them.
const METALLB_CRDS: [(&str, &str); 9] = [
    crd!("metallb.io_bfdprofiles.yaml"),
    crd!("metallb.io_bgpadvertisements.yaml"),
    crd!("metallb.io_bgppeers.yaml"),
    crd!("metallb.io_communities.yaml"),
    crd!("metallb.io_configurationstates.yaml"),
    crd!("metallb.io_ipaddresspools.yaml"),
    crd!("metallb.io_l2advertisements.yaml"),
    crd!("metallb.io_servicebgpstatuses.yaml"),
    crd!("metallb.io_servicel2statuses.yaml"),
];

/// One Service as MetalLB left it.
struct MetallbService {
    name: &'static str,
    mode: Mode,
    /// Annotations the user wrote (MetalLB's spellings).
    annotations: &'static [(&'static str, &'static str)],
    /// `spec` lines beyond type, selector and ports.
    spec: &'static str,
    ports: &'static str,
    /// The addresses MetalLB assigned, and the pool they came from.
    ips: &'static [&'static str],
    pool: &'static str,
    note: &'static str,
}

const HTTP: &str = "[{name: http, port: 80, protocol: TCP}]";

/// The Services, each with the addresses MetalLB would have given it (lowest free first).
const SERVICES: &[MetallbService] = &[
    MetallbService {
        name: "web",
        mode: Mode::L2,
        annotations: &[("metallb.io/address-pool", "lan-pool")],
        spec: "  ipFamilyPolicy: PreferDualStack\n  ipFamilies: [IPv4, IPv6]\n",
        ports: HTTP,
        ips: &["10.200.0.200", "fd00:200::c8"],
        pool: "lan-pool",
        note: "metallb.io/address-pool, dual-stack",
    },
    MetallbService {
        name: "legacy",
        mode: Mode::L2,
        annotations: &[("metallb.universe.tf/address-pool", "lan-pool")],
        spec: "",
        ports: HTTP,
        ips: &["10.200.0.201"],
        pool: "lan-pool",
        note: "deprecated metallb.universe.tf/address-pool",
    },
    MetallbService {
        name: "web-fixed",
        mode: Mode::L2,
        annotations: &[("metallb.io/loadBalancerIPs", "10.200.0.220")],
        spec: "",
        ports: HTTP,
        ips: &["10.200.0.220"],
        pool: "lan-pool",
        note: "metallb.io/loadBalancerIPs",
    },
    MetallbService {
        name: "dns-tcp",
        mode: Mode::L2,
        annotations: &[
            ("metallb.io/allow-shared-ip", "dns"),
            ("metallb.io/loadBalancerIPs", "10.200.0.210"),
        ],
        spec: "",
        ports: "[{name: dns, port: 53, protocol: TCP}]",
        ips: &["10.200.0.210"],
        pool: "lan-pool",
        note: "metallb.io/allow-shared-ip with dns-udp",
    },
    MetallbService {
        name: "dns-udp",
        mode: Mode::L2,
        annotations: &[
            ("metallb.io/allow-shared-ip", "dns"),
            ("metallb.io/loadBalancerIPs", "10.200.0.210"),
        ],
        spec: "",
        ports: "[{name: dns, port: 53, protocol: UDP}]",
        ips: &["10.200.0.210"],
        pool: "lan-pool",
        note: "metallb.io/allow-shared-ip with dns-tcp",
    },
    MetallbService {
        name: "api",
        mode: Mode::Bgp,
        annotations: &[("metallb.io/address-pool", "bgp-pool")],
        spec: "",
        ports: HTTP,
        ips: &["10.200.100.1"],
        pool: "bgp-pool",
        note: "metallb.io/address-pool, BGP",
    },
];

/// The Services of the scenario for the lab's table: each must keep MetalLB's addresses.
pub fn services() -> Vec<SvcSpec> {
    SERVICES
        .iter()
        .map(|s| SvcSpec {
            name: s.name,
            mode: Some(s.mode),
            expect: Expect::Reachable {
                count: s.ips.len(),
                ips: s.ips.to_vec(),
                answered_by: None,
            },
            note: s.note,
        })
        .collect()
}

/// MetalLB's configuration in `metallb-system`, as a MetalLB user writes it. The BGP peers
/// name their password Secret in `metallb-system` (`passwordSecret`), which the speakers read
/// there.
fn metallb_config() -> String {
    let ns = METALLB_NAMESPACE;
    let peer = |name: &str, addr: &str| {
        format!(
            "apiVersion: metallb.io/v1beta2\nkind: BGPPeer\nmetadata:\n  name: {name}\n  \
             namespace: {ns}\nspec:\n  myASN: {NODE_ASN}\n  peerASN: {ROUTER_ASN}\n  \
             peerAddress: {addr}\n  holdTime: 9s\n  passwordSecret: {{name: bgp-password, \
             namespace: {ns}}}\n---\n"
        )
    };
    // `data`, base64 as the API server stores it (JSON is YAML).
    let secret = k8s_openapi::api::core::v1::Secret {
        metadata: kube::api::ObjectMeta {
            name: Some("bgp-password".into()),
            namespace: Some(ns.into()),
            ..Default::default()
        },
        type_: Some("kubernetes.io/basic-auth".into()),
        data: Some(std::collections::BTreeMap::from([(
            "password".to_string(),
            k8s_openapi::ByteString(EXAMPLE_BGP_PASSWORD.as_bytes().to_vec()),
        )])),
        ..Default::default()
    };
    let secret = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": secret.metadata,
        "type": secret.type_,
        "data": secret.data,
    });
    let mut y = format!(
        "apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata:\n  name: lan-pool\n  \
         namespace: {ns}\nspec:\n  addresses: [10.200.0.200-10.200.0.239, fd00:200::c8-fd00:200::ef]\n---\n\
         apiVersion: metallb.io/v1beta1\nkind: L2Advertisement\nmetadata:\n  name: lan\n  \
         namespace: {ns}\nspec:\n  ipAddressPools: [lan-pool]\n---\n\
         apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata:\n  name: bgp-pool\n  \
         namespace: {ns}\nspec:\n  addresses: [10.200.100.0/24]\n---\n\
         apiVersion: metallb.io/v1beta1\nkind: BGPAdvertisement\nmetadata:\n  name: bgp-routes\n  \
         namespace: {ns}\nspec:\n  ipAddressPools: [bgp-pool]\n---\n"
    );
    y += &format!("{secret}\n---\n");
    y += &peer("router", "10.200.0.1");
    // BIRD also expects sessions to every node's IPv6 address.
    y += &peer("router-v6", "fd00:200::1");
    y
}

/// The Services, as YAML (without their status).
fn services_yaml() -> String {
    let mut y = String::new();
    for s in SERVICES {
        let annotations = s
            .annotations
            .iter()
            .map(|(k, v)| format!("{k}: {v}"))
            .collect::<Vec<_>>()
            .join(", ");
        y += &format!(
            "apiVersion: v1\nkind: Service\nmetadata:\n  name: {}\n  namespace: default\n  \
             annotations: {{{annotations}}}\nspec:\n  type: LoadBalancer\n  selector: {{app: {}}}\n  \
             ports: {}\n{}---\n",
            s.name, s.name, s.ports, s.spec
        );
    }
    y
}

/// A Service's addresses and MetalLB pool annotation, as the API server has them.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceState {
    pub ips: Vec<IpAddr>,
    pub allocated_from_pool: Option<String>,
}

/// One Service before and after the swap.
#[derive(Clone, Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SwappedService {
    pub name: String,
    pub mode: Mode,
    /// As MetalLB left it.
    pub before: ServiceState,
    /// Once ferrolb reconciled.
    pub after: ServiceState,
    /// An address changed.
    pub moved: bool,
}

/// What the client saw of one address across the swap.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AddressOutage {
    pub ip: IpAddr,
    /// `lan-client` or `upstream-client`.
    pub from: String,
    /// Nodes (short names) whose speaker announces it at the end.
    pub announced_by: Vec<String>,
    /// ferrolb's start → first successful probe (absent: never reached).
    pub first_success_ms: Option<f64>,
    /// Probes answered before ferrolb started (must be 0: nothing else serves the address).
    pub answered_before_start: usize,
    /// Probes sent after the first success.
    pub probes_after_first_success: usize,
    /// Of those, how many failed.
    pub failed_after_first_success: usize,
    /// How many may fail: 0 in layer 2. Over BGP the router adds the speakers' next hops one
    /// by one as their sessions come up, and each addition rehashes (L3 ECMP) the client's flow
    /// to another node, breaking the one connection in flight at that instant: at most one
    /// probe per next hop after the first.
    pub failures_allowed: usize,
    /// Longest time between two successive successful probes after the first success.
    pub longest_gap_ms: f64,
}

/// The result of the swap (`metallb` in the `--json` report).
#[derive(Clone, Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SwapResult {
    pub probe_interval_ms: u64,
    /// Services whose addresses changed (must be 0).
    pub ips_moved: usize,
    pub services: Vec<SwappedService>,
    pub addresses: Vec<AddressOutage>,
    /// API groups the configuration is read from, by component (`controller`, `node1`, …).
    pub config_groups: BTreeMap<String, Vec<String>>,
    /// What failed, one sentence each.
    pub failures: Vec<String>,
}

/// The figures of one address's probes around ferrolb's start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Seen {
    /// Start → first successful probe.
    pub first_success: Option<Duration>,
    /// Successful probes sent before the start.
    pub answered_before: usize,
    pub probes_after_first: usize,
    pub failed_after_first: usize,
    /// Longest time between two successive successes after the first.
    pub longest_gap: Duration,
}

/// The client's view of one address from `start` on: first success, then every probe after it.
pub fn outage(samples: &[Sample], start: Instant) -> Seen {
    let before = samples
        .iter()
        .filter(|s| s.at < start && s.node.is_some())
        .count();
    let after: Vec<&Sample> = samples.iter().filter(|s| s.at >= start).collect();
    let Some(first) = after.iter().position(|s| s.node.is_some()) else {
        return Seen {
            first_success: None,
            answered_before: before,
            probes_after_first: 0,
            failed_after_first: 0,
            longest_gap: Duration::ZERO,
        };
    };
    let rest = &after[first + 1..];
    let failed = rest.iter().filter(|s| s.node.is_none()).count();
    let mut longest = Duration::ZERO;
    let mut last = after[first].at;
    for s in rest.iter().filter(|s| s.node.is_some()) {
        longest = longest.max(s.at - last);
        last = s.at;
    }
    Seen {
        first_success: Some(after[first].at - start),
        answered_before: before,
        probes_after_first: rest.len(),
        failed_after_first: failed,
        longest_gap: longest,
    }
}

/// Installs MetalLB's CRDs and its namespace; returns how many objects were applied.
pub fn install_metallb_crds(c: &Cluster) -> anyhow::Result<usize> {
    let mut n = 0;
    for (file, text) in METALLB_CRDS {
        n += c
            .apply_yaml(text)
            .with_context(|| format!("applying e2e/testdata/metallb/crds/{file}"))?
            .len();
    }
    let client = c.client.clone();
    c.run(async move { crate::fixtures::ensure_namespace(&client, METALLB_NAMESPACE).await })?
        .with_context(|| format!("creating namespace {METALLB_NAMESPACE}"))?;
    Ok(n)
}

/// What a user moving from MetalLB grants so the speakers read the password Secrets MetalLB's
/// BGPPeers name in its namespace (the chart's `metallb.readPasswordSecrets=true`).
pub const METALLB_PASSWORD_SECRETS_GRANT: &str = "\
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata:
  name: ferrolb-speaker-secrets
  namespace: metallb-system
rules:
  - apiGroups: [\"\"]
    resources: [secrets]
    verbs: [list, watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata:
  name: ferrolb-speaker-secrets
  namespace: metallb-system
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: Role
  name: ferrolb-speaker-secrets
subjects:
  - kind: ServiceAccount
    name: speaker
    namespace: ferrolb-system
";

/// Installs MetalLB's CRDs, its configuration, the Services with MetalLB's addresses and the
/// grant of its password Secrets to ferrolb's speakers.
fn install_metallb_state(c: &Cluster) -> anyhow::Result<usize> {
    let mut n = install_metallb_crds(c)?;
    n += c
        .apply_yaml(METALLB_PASSWORD_SECRETS_GRANT)
        .context("granting the speakers MetalLB's password Secrets")?
        .len();
    n += c
        .apply_yaml(&metallb_config())
        .context("applying the metallb.io configuration")?
        .len();
    n += c
        .apply_yaml(&services_yaml())
        .context("applying the Services")?
        .len();
    let client = c.client.clone();
    c.run(async move {
        let api: Api<Service> = Api::namespaced(client, "default");
        for s in SERVICES {
            // As MetalLB's controller writes them: the pool on the object, the addresses in
            // the status subresource.
            let meta = serde_json::json!({
                "metadata": { "annotations": { ALLOCATED_FROM_POOL: s.pool } }
            });
            api.patch(s.name, &PatchParams::default(), &Patch::Merge(&meta))
                .await?;
            let ingress: Vec<_> = s
                .ips
                .iter()
                .map(|ip| serde_json::json!({ "ip": ip }))
                .collect();
            let status = serde_json::json!({
                "status": { "loadBalancer": { "ingress": ingress } }
            });
            api.patch_status(s.name, &PatchParams::default(), &Patch::Merge(&status))
                .await?;
        }
        Ok::<(), kube::Error>(())
    })?
    .context("writing the Services' status as MetalLB did")?;
    Ok(n)
}

/// Every Service's addresses and pool annotation.
fn service_states(c: &Cluster) -> anyhow::Result<BTreeMap<String, ServiceState>> {
    let client = c.client.clone();
    let list = c
        .run(async move {
            Api::<Service>::namespaced(client, "default")
                .list(&Default::default())
                .await
        })?
        .context("listing Services")?;
    Ok(list
        .into_iter()
        .map(|s| {
            let state = ServiceState {
                ips: crate::fixtures::ingress_ips(&s),
                allocated_from_pool: s
                    .metadata
                    .annotations
                    .as_ref()
                    .and_then(|a| a.get(ALLOCATED_FROM_POOL).cloned()),
            };
            (s.metadata.name.unwrap_or_default(), state)
        })
        .collect())
}

/// Waits until the controller's status API lists every Service with addresses; returns its
/// configuration groups.
fn wait_controller_allocated(c: &Cluster, timeout: Duration) -> anyhow::Result<Vec<String>> {
    let deadline = Instant::now() + timeout;
    loop {
        let status = c.get_json(c.controller_http(), "/api/v1/status");
        if let Ok(s) = &status {
            let allocated = |name: &str| {
                s["services"].as_array().is_some_and(|v| {
                    v.iter().any(|x| {
                        x["namespace"] == "default"
                            && x["name"] == name
                            && x["ips"].as_array().is_some_and(|ips| !ips.is_empty())
                    })
                })
            };
            if s["ready"] == true && SERVICES.iter().all(|x| allocated(x.name)) {
                return Ok(groups_of(s));
            }
        }
        if Instant::now() > deadline {
            return Err(anyhow!(
                "the controller did not report every Service allocated within {timeout:?}: {}",
                status
                    .map(|s| s.to_string())
                    .unwrap_or_else(|e| format!("{e:#}"))
            ));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn groups_of(status: &serde_json::Value) -> Vec<String> {
    status["config"]["groups"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|g| g.as_str().map(str::to_string))
        .collect()
}

/// Runs the swap on a lab started without controller and speakers; returns the settled
/// snapshot and the swap's result.
pub fn run(
    c: &mut Cluster,
    ui: &Ui,
    clients: &Clients,
    timeout: Duration,
) -> anyhow::Result<(Snapshot, SwapResult)> {
    let applied = ui.step(
        "as MetalLB left it: its CRDs, metallb.io configuration in metallb-system, Services with its annotations and addresses",
        || install_metallb_state(c),
    )?;
    ui.line(format!("  {applied} objects applied"));
    let before = service_states(c)?;
    // One prober per address, from the client of its mode.
    let mut targets: Vec<(IpAddr, Mode)> = SERVICES
        .iter()
        .flat_map(|s| {
            s.ips
                .iter()
                .filter_map(move |ip| Some((ip.parse().ok()?, s.mode)))
        })
        .collect();
    targets.sort_by_key(|(ip, _)| *ip);
    targets.dedup_by_key(|(ip, _)| *ip);
    let mut probers = Vec::new();
    for (ip, mode) in &targets {
        let (ns, from) = match mode {
            Mode::L2 => (c.lab.lan_client().ns().name().to_string(), LAN_CLIENT),
            Mode::Bgp => (
                c.lab
                    .try_upstream_client()
                    .ok_or_else(|| anyhow!("no upstream client for BGP addresses"))?
                    .ns()
                    .name()
                    .to_string(),
                UPSTREAM_CLIENT,
            ),
        };
        let p = Prober::start(&ns, SocketAddr::new(*ip, 80), PROBE_INTERVAL)
            .with_context(|| format!("starting the prober of {ip} in {from}"))?;
        probers.push((*ip, from, p));
    }
    ui.line(format!(
        "  probing {} addresses every {} ms (one GET, a new connection each)",
        probers.len(),
        PROBE_INTERVAL.as_millis()
    ));
    std::thread::sleep(BEFORE_START);
    let start = Instant::now();
    ui.step(
        "starting ferrolb: the controller and 3 speakers, default flags",
        || {
            c.start_controller()?;
            for i in 1..=c.lab.nodes().len() {
                c.start_speaker(i)?;
            }
            Ok(())
        },
    )?;
    let controller_groups = ui
        .step("waiting for the controller to report every Service", || {
            wait_controller_allocated(c, timeout)
        })?;
    super::watch(c, ui, clients, &services(), timeout)?;
    ui.step("waiting for every prober's first success", || {
        crate::lab::wait_until("a successful probe of every address", timeout, || {
            probers.iter().all(|(_, _, p)| {
                p.samples()
                    .iter()
                    .any(|s| s.at >= start && s.node.is_some())
            })
        })
        .map_err(|e| anyhow!("{e}"))
    })
    .ok();
    std::thread::sleep(SETTLE);
    // The table and the announcing nodes as they are at the end, after the settle time.
    let snap = super::observe::snapshot(c, clients, &services())?;
    ui.line("");
    ui.print_table(&snap);
    let samples: Vec<(IpAddr, &str, Vec<Sample>)> = probers
        .into_iter()
        .map(|(ip, from, p)| (ip, from, p.samples()))
        .collect();
    let after = service_states(c)?;
    let mut config_groups = BTreeMap::from([("controller".to_string(), controller_groups)]);
    for i in 1..=c.lab.nodes().len() {
        let groups = c
            .get_json(c.speaker_http(i), "/api/v1/status")
            .map(|s| groups_of(&s))
            .unwrap_or_default();
        config_groups.insert(short(c, c.lab.node(i).name()), groups);
    }
    let mut result = SwapResult {
        probe_interval_ms: PROBE_INTERVAL.as_millis() as u64,
        ips_moved: 0,
        services: Vec::new(),
        addresses: Vec::new(),
        config_groups,
        failures: Vec::new(),
    };
    for s in SERVICES {
        let b = before.get(s.name).cloned().unwrap_or(ServiceState {
            ips: Vec::new(),
            allocated_from_pool: None,
        });
        let a = after.get(s.name).cloned().unwrap_or(ServiceState {
            ips: Vec::new(),
            allocated_from_pool: None,
        });
        let moved = a.ips != b.ips;
        if moved {
            result.failures.push(format!(
                "default/{}: addresses moved from {:?} to {:?}",
                s.name, b.ips, a.ips
            ));
        }
        if a.allocated_from_pool != b.allocated_from_pool {
            result.failures.push(format!(
                "default/{}: {ALLOCATED_FROM_POOL} changed from {:?} to {:?}",
                s.name, b.allocated_from_pool, a.allocated_from_pool
            ));
        }
        result.services.push(SwappedService {
            name: s.name.to_string(),
            mode: s.mode,
            before: b,
            after: a,
            moved,
        });
    }
    result.ips_moved = result.services.iter().filter(|s| s.moved).count();
    for (ip, from, samples) in samples {
        let announced_by: Vec<String> = snap
            .rows
            .iter()
            .find_map(|r| r.announced_by.get(&ip))
            .cloned()
            .unwrap_or_default();
        let Seen {
            first_success: first,
            answered_before,
            probes_after_first: probes_after,
            failed_after_first: failed,
            longest_gap: longest,
        } = outage(&samples, start);
        if announced_by.is_empty() {
            result
                .failures
                .push(format!("{ip}: no speaker announces it"));
        }
        let failures_allowed = if from == UPSTREAM_CLIENT {
            announced_by.len().saturating_sub(1)
        } else {
            0
        };
        match first {
            None => result
                .failures
                .push(format!("{ip}: never reached from the {from}")),
            Some(_) if failed > failures_allowed => result.failures.push(format!(
                "{ip}: {failed} of {probes_after} probes failed after the first success \
                 (at most {failures_allowed} may)"
            )),
            Some(_) => {}
        }
        if answered_before > 0 {
            result.failures.push(format!(
                "{ip}: answered {answered_before} probes before ferrolb started (something else serves it)"
            ));
        }
        result.addresses.push(AddressOutage {
            ip,
            from: from.to_string(),
            announced_by,
            first_success_ms: first.map(|d| d.as_secs_f64() * 1e3),
            answered_before_start: answered_before,
            probes_after_first_success: probes_after,
            failed_after_first_success: failed,
            failures_allowed,
            longest_gap_ms: longest.as_secs_f64() * 1e3,
        });
    }
    for (who, groups) in &result.config_groups {
        if !groups.iter().any(|g| g == "metallb.io") {
            result.failures.push(format!(
                "{who} does not read metallb.io (its configuration groups: {groups:?})"
            ));
        }
    }
    print(ui, &result);
    Ok((snap, result))
}

/// The human report of the swap.
fn print(ui: &Ui, r: &SwapResult) {
    let mark = |ok: bool| if ok { ui.green("✓") } else { ui.red("✗") };
    ui.line("");
    ui.line(ui.bold("Swap from MetalLB"));
    ui.line(format!(
        "  {} {} of {} Services kept MetalLB's addresses",
        mark(r.ips_moved == 0),
        r.services.len() - r.ips_moved,
        r.services.len()
    ));
    for s in &r.services {
        let ips = |st: &ServiceState| {
            st.ips
                .iter()
                .map(IpAddr::to_string)
                .collect::<Vec<_>>()
                .join(",")
        };
        ui.line(format!(
            "    {} {:<10} {:<4} {} → {}",
            mark(!s.moved),
            s.name,
            s.mode,
            ips(&s.before),
            ips(&s.after)
        ));
    }
    ui.line(format!(
        "  outage per address (ferrolb start → first success; then failed probes, longest gap; probes every {} ms):",
        r.probe_interval_ms
    ));
    for a in &r.addresses {
        let ok = a.first_success_ms.is_some()
            && a.failed_after_first_success <= a.failures_allowed
            && !a.announced_by.is_empty();
        ui.line(format!(
            "    {} {:<14} {:<15} first success {:>8} ms, {} of {} failed after, longest gap {:.1} ms, announced by {}",
            mark(ok),
            a.ip.to_string(),
            a.from,
            a.first_success_ms
                .map(|m| format!("{m:.1}"))
                .unwrap_or_else(|| "never".into()),
            a.failed_after_first_success,
            a.probes_after_first_success,
            a.longest_gap_ms,
            if a.announced_by.is_empty() {
                "nobody".to_string()
            } else {
                a.announced_by.join(",")
            }
        ));
    }
    let groups = r
        .config_groups
        .iter()
        .map(|(who, g)| format!("{who}: {}", g.join("+")))
        .collect::<Vec<_>>()
        .join("; ");
    ui.line(format!("  configuration groups read: {groups}"));
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The swap's figures from probe samples: dark before the start, first success, then one
    /// failed probe and a longer gap between successes after it.
    #[test]
    fn outage_counts_failures_after_the_first_success() {
        let t0 = Instant::now();
        let s = |ms: u64, ok: bool| Sample {
            at: t0 + Duration::from_millis(ms),
            node: ok.then(|| "node1".to_string()),
        };
        let start = t0 + Duration::from_millis(15);
        let samples = vec![
            s(0, false),
            s(10, false),
            s(20, false),
            s(30, true),
            s(40, true),
            s(50, false),
            s(60, true),
        ];
        assert_eq!(
            outage(&samples, start),
            Seen {
                first_success: Some(Duration::from_millis(15)),
                answered_before: 0,
                probes_after_first: 3,
                failed_after_first: 1,
                longest_gap: Duration::from_millis(20),
            }
        );
        let dark = outage(&samples[..3], start);
        assert_eq!((dark.first_success, dark.answered_before), (None, 0));
        assert_eq!(outage(&[s(5, true), s(20, true)], start).answered_before, 1);
    }
}
