//! The benchmark's deployment: three nodes, two controller replicas electing a leader, BIRD
//! as a graceful restart helper, a layer 2 and a BGP Service, probers from the LAN client and
//! the upstream client, and one long-lived connection per Service.

use super::bpffs::Bpffs;
use super::stream::LongLived;
use super::summary::{ProbeFigures, probe_figures};
use crate::bench::prober::Prober;
use crate::cluster::{Cluster, ClusterOptions};
use crate::fixtures::ingress_ips;
use anyhow::{Context, anyhow, bail};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, Service};
use kube::api::{Api, Patch, PatchParams, PostParams};
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

/// Probes: one every 10 ms, each a new connection.
pub const PROBE_EVERY: Duration = Duration::from_millis(10);
/// The node label that excludes a node from announcing (a drain before maintenance).
pub const EXCLUDE: &str = "node.kubernetes.io/exclude-from-external-load-balancers";
/// The layer 2 and the BGP Service.
pub const L2_SERVICE: &str = "rollout-l2";
pub const BGP_SERVICE: &str = "rollout-bgp";

/// Pools, the L2Advertisement, the BGPPeer (graceful restart as the mode says) and its
/// advertisement.
fn config(graceful_restart: bool) -> String {
    format!(
        "\
apiVersion: ferrolb.io/v1beta1
kind: IPAddressPool
metadata:
  name: lan-pool
  namespace: ferrolb-system
spec:
  addresses:
    - 10.200.0.200-10.200.0.239
---
apiVersion: ferrolb.io/v1beta1
kind: L2Advertisement
metadata:
  name: lan
  namespace: ferrolb-system
spec:
  ipAddressPools:
    - lan-pool
---
apiVersion: ferrolb.io/v1beta1
kind: BGPPeer
metadata:
  name: router
  namespace: ferrolb-system
spec:
  myASN: 64512
  peerASN: 64500
  peerAddress: 10.200.0.1
  holdTime: 9s
  enableGracefulRestart: {graceful_restart}
  gracefulRestartTime: 30s
---
apiVersion: ferrolb.io/v1beta1
kind: IPAddressPool
metadata:
  name: bgp-pool
  namespace: ferrolb-system
spec:
  addresses:
    - 10.200.100.0/24
---
apiVersion: ferrolb.io/v1beta1
kind: BGPAdvertisement
metadata:
  name: bgp-routes
  namespace: ferrolb-system
spec:
  ipAddressPools:
    - bgp-pool
"
    )
}

/// A prober and what it probes.
struct Probe {
    label: String,
    prober: Prober,
}

/// A long-lived connection and what it is to.
struct Connection {
    label: String,
    stream: LongLived,
}

/// The deployment under operation.
pub struct RolloutLab {
    // Dropped in this order: clients, then the lab, then the bpffs its speakers pinned in.
    probes: Vec<Probe>,
    connections: Vec<Connection>,
    pub cluster: Cluster,
    _bpffs: Bpffs,
    pub l2_ip: Ipv4Addr,
    pub bgp_ip: Ipv4Addr,
    /// Make-before-break, hand-over and graceful restart on (`false`: as MetalLB behaves).
    pub hitless: bool,
}

/// One long-lived connection's figures over a window.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ConnectionFigures {
    pub connection: String,
    pub broken: usize,
    /// Why each broke, and the node it was served by.
    pub breaks: Vec<String>,
}

/// Probe and connection figures of one window.
#[derive(Clone, Debug, serde::Serialize)]
pub struct WindowFigures {
    pub duration_ms: f64,
    pub probes: Vec<(String, ProbeFigures)>,
    pub connections: Vec<ConnectionFigures>,
}

impl WindowFigures {
    pub fn probes_sent(&self) -> usize {
        self.probes.iter().map(|(_, f)| f.sent).sum()
    }

    pub fn probes_failed(&self) -> usize {
        self.probes.iter().map(|(_, f)| f.failed).sum()
    }

    pub fn longest_gap_ms(&self) -> f64 {
        self.probes
            .iter()
            .map(|(_, f)| f.longest_gap_ms)
            .fold(0.0, f64::max)
    }

    pub fn connections_broken(&self) -> usize {
        self.connections.iter().map(|c| c.broken).sum()
    }
}

impl RolloutLab {
    /// Builds the lab, deploys the configuration and both Services, waits until they are
    /// announced and served, and starts the clients.
    pub fn start(hitless: bool) -> anyhow::Result<RolloutLab> {
        let bpffs = Bpffs::mount()?;
        let mut speaker_args = vec![
            "--l2-handover-dir".to_string(),
            bpffs.dir().display().to_string(),
        ];
        if !hitless {
            speaker_args.push("--hitless-operations=false".into());
        }
        let mut cluster = Cluster::start(ClusterOptions {
            nodes: 3,
            bird: true,
            upstream_client: true,
            leader_election: true,
            router_graceful_restart: true,
            speaker_args,
            ..ClusterOptions::default()
        })?;
        cluster.start_controller_replica(1)?;
        cluster.apply_yaml(&config(hitless))?;
        create_service(&cluster, L2_SERVICE, "lan-pool")?;
        create_service(&cluster, BGP_SERVICE, "bgp-pool")?;
        let l2_ip = wait_ipv4(&cluster, L2_SERVICE, Duration::from_secs(60))?;
        let bgp_ip = wait_ipv4(&cluster, BGP_SERVICE, Duration::from_secs(60))?;
        let mut lab = RolloutLab {
            probes: Vec::new(),
            connections: Vec::new(),
            cluster,
            _bpffs: bpffs,
            l2_ip,
            bgp_ip,
            hitless,
        };
        for i in 1..=3 {
            lab.wait_speaker_ready(i, Duration::from_secs(60))?;
        }
        lab.start_clients()?;
        std::thread::sleep(Duration::from_secs(1));
        Ok(lab)
    }

    fn start_clients(&mut self) -> anyhow::Result<()> {
        let lab = &self.cluster.lab;
        let lan = lab.lan_client().ns().name().to_string();
        let upstream = lab.upstream_client().ns().name().to_string();
        let l2 = SocketAddr::new(IpAddr::V4(self.l2_ip), 80);
        let bgp = SocketAddr::new(IpAddr::V4(self.bgp_ip), 80);
        for (label, ns, target) in [
            ("LAN client -> L2", &lan, l2),
            ("upstream client -> L2", &upstream, l2),
            ("upstream client -> BGP", &upstream, bgp),
        ] {
            self.probes.push(Probe {
                label: label.into(),
                prober: Prober::start(ns, target, PROBE_EVERY)?,
            });
        }
        for (label, ns, target) in [
            ("LAN client -> L2", &lan, l2),
            ("upstream client -> BGP", &upstream, bgp),
        ] {
            self.connections.push(Connection {
                label: label.into(),
                stream: LongLived::start(ns, target)?,
            });
        }
        // Every client served before anything happens.
        let deadline = Instant::now() + Duration::from_secs(20);
        let from = Instant::now();
        loop {
            let probes_ok = self.probes.iter().all(|p| {
                p.prober
                    .samples()
                    .iter()
                    .any(|s| s.at > from && s.node.is_some())
            });
            let streams_ok = self.connections.iter().all(|c| c.stream.answers() > 0);
            if probes_ok && streams_ok {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("the clients are not served before the operations start");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Runs `op` and measures the clients from its start until a second after it returned.
    pub fn window<T>(
        &mut self,
        op: impl FnOnce(&mut RolloutLab) -> anyhow::Result<T>,
    ) -> anyhow::Result<(WindowFigures, T)> {
        let before: Vec<usize> = self
            .connections
            .iter()
            .map(|c| c.stream.breaks().len())
            .collect();
        let from = Instant::now();
        let out = op(self)?;
        std::thread::sleep(Duration::from_secs(1));
        let to = Instant::now();
        let probes = self
            .probes
            .iter()
            .map(|p| {
                (
                    p.label.clone(),
                    probe_figures(&p.prober.samples(), from, to),
                )
            })
            .collect();
        let connections = self
            .connections
            .iter()
            .zip(before)
            .map(|(c, n)| {
                let breaks: Vec<String> = c.stream.breaks()[n..]
                    .iter()
                    .map(|b| {
                        let node = if b.node.is_empty() { "?" } else { &b.node };
                        let at = b.at.saturating_duration_since(from).as_secs_f64() * 1e3;
                        format!("{node} at {at:.0} ms: {}", b.why)
                    })
                    .collect();
                ConnectionFigures {
                    connection: c.label.clone(),
                    broken: breaks.len(),
                    breaks,
                }
            })
            .collect();
        for p in &self.probes {
            p.prober.clear();
        }
        Ok((
            WindowFigures {
                duration_ms: (to - from).as_secs_f64() * 1e3,
                probes,
                connections,
            },
            out,
        ))
    }

    /// The first success of the LAN client's L2 probes after `after` served by a node other
    /// than `node` (1-based): when the address had moved, as the client saw it.
    pub fn l2_served_elsewhere(
        &self,
        after: Instant,
        node: usize,
        timeout: Duration,
    ) -> Option<Instant> {
        let name = self.cluster.lab.node(node).name().to_string();
        self.probes
            .first()?
            .prober
            .wait_success(after, timeout, |n| n != name)
            .map(|s| s.at)
    }

    /// The node (1-based) answering for the layer 2 address, once exactly one does.
    pub fn l2_owner(&self, timeout: Duration) -> anyhow::Result<usize> {
        self.cluster
            .wait_single_announcer(IpAddr::V4(self.l2_ip), None, timeout)
    }

    /// Whether the router routes the BGP address via node `i`.
    pub fn router_routes_via(&self, i: usize) -> bool {
        self.router_next_hops().contains(&i)
    }

    /// The nodes (1-based) BIRD has a route to the BGP address from.
    pub fn router_next_hops(&self) -> Vec<usize> {
        let Some(bird) = &self.cluster.bird else {
            return Vec::new();
        };
        let text = bird
            .birdc(&format!("show route {}/32 all", self.bgp_ip))
            .unwrap_or_default();
        let words: Vec<&str> = text.split_whitespace().collect();
        let mut hops: Vec<usize> = words
            .windows(2)
            .filter(|w| w[0] == "via")
            .filter_map(|w| {
                let addr = w[1].trim_end_matches(',');
                (1..=3).find(|&i| self.cluster.lab.node(i).v4().to_string() == addr)
            })
            .collect();
        hops.sort_unstable();
        hops.dedup();
        hops
    }

    /// Whether node `i`'s speaker has its BGP session Established and announces the BGP
    /// address, and the router has the route via it.
    fn bgp_ready(&self, i: usize) -> bool {
        let Ok(st) = self
            .cluster
            .get_json(self.cluster.speaker_http(i), "/api/v1/status")
        else {
            return false;
        };
        let established = st["bgpPeers"].as_array().is_some_and(|peers| {
            peers
                .iter()
                .any(|p| p["name"] == "ferrolb-system/router" && p["state"] == "Established")
        });
        established
            && self.cluster.announces(i, IpAddr::V4(self.bgp_ip))
            && self.router_routes_via(i)
    }

    /// Waits until node `i`'s speaker serves as it did before an operation: BGP session up
    /// and its route at the router, one node answering for the layer 2 address.
    pub fn wait_speaker_ready(&self, i: usize, timeout: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        while !self.bgp_ready(i) {
            if Instant::now() > deadline {
                bail!(
                    "node{i}'s speaker is not ready within {timeout:?} (BGP session, route at \
                     the router)"
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.l2_owner(deadline.saturating_duration_since(Instant::now()))?;
        Ok(())
    }

    /// Every Service's addresses, by name.
    pub fn service_addresses(&self) -> anyhow::Result<BTreeMap<String, Vec<IpAddr>>> {
        let api: Api<Service> = Api::namespaced(self.cluster.client.clone(), "default");
        let list = self
            .cluster
            .run(async move { api.list(&Default::default()).await })??;
        Ok(list
            .items
            .iter()
            .filter_map(|s| Some((s.metadata.name.clone()?, ingress_ips(s))))
            .collect())
    }

    /// The holder of the controller's leader Lease (`controller-R`).
    pub fn controller_leader(&self) -> anyhow::Result<Option<String>> {
        let api: Api<Lease> = Api::namespaced(self.cluster.client.clone(), "ferrolb-system");
        let lease = self
            .cluster
            .run(async move { api.get_opt("ferrolb-controller").await })??;
        Ok(lease
            .and_then(|l| l.spec?.holder_identity)
            .filter(|h| !h.is_empty()))
    }

    /// Sets (`Some`) or removes (`None`) the exclude label of node `i`.
    pub fn set_excluded(&self, i: usize, excluded: bool) -> anyhow::Result<()> {
        let api: Api<Node> = Api::all(self.cluster.client.clone());
        let name = self.cluster.lab.node(i).name().to_string();
        let value = excluded.then_some("");
        let patch = serde_json::json!({"metadata": {"labels": {EXCLUDE: value}}});
        self.cluster
            .run(async move {
                api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                    .await
            })?
            .with_context(|| format!("labelling node{i}"))?;
        Ok(())
    }

    /// Creates a layer 2 Service and returns how long it took to get its address.
    pub fn create_l2_service_and_wait(
        &self,
        name: &str,
        timeout: Duration,
    ) -> anyhow::Result<(Ipv4Addr, Duration)> {
        let start = Instant::now();
        create_service(&self.cluster, name, "lan-pool")?;
        let ip = wait_ipv4(&self.cluster, name, timeout)?;
        Ok((ip, start.elapsed()))
    }
}

/// Creates LoadBalancer Service `name` (port 80) in `pool`.
fn create_service(c: &Cluster, name: &str, pool: &str) -> anyhow::Result<()> {
    let svc = crate::fixtures::lb_service(name, 80, &[("ferrolb.io/address-pool", pool)]);
    let api: Api<Service> = Api::namespaced(c.client.clone(), "default");
    c.run(async move { api.create(&PostParams::default(), &svc).await })?
        .with_context(|| format!("creating Service {name}"))?;
    Ok(())
}

/// Waits until Service `name` has an IPv4 address.
fn wait_ipv4(c: &Cluster, name: &str, timeout: Duration) -> anyhow::Result<Ipv4Addr> {
    let api: Api<Service> = Api::namespaced(c.client.clone(), "default");
    let deadline = Instant::now() + timeout;
    loop {
        let (api2, n) = (api.clone(), name.to_string());
        if let Ok(Ok(svc)) = c.run(async move { api2.get(&n).await })
            && let Some(IpAddr::V4(ip)) = ingress_ips(&svc).first()
        {
            return Ok(*ip);
        }
        if Instant::now() > deadline {
            return Err(anyhow!("Service {name} got no address within {timeout:?}"));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
