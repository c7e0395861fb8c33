//! What the API server sends to speakers: N speakers' watches (opened by the speaker's own
//! store wiring, `ferrolb_speaker::stores::SpeakerStores`, one kube client each as separate
//! processes would have) against the in-memory API server, then one change of each kind the
//! cluster makes, counting the watch events and bytes the server sent for it. Beside it, what
//! a Lease-per-Service design (Cilium's L2 announcements) writes, computed from its
//! documented formula.

use crate::apiserver::{ApiServer, ApiServerHandle, ApiServerOptions, WatchTotals};
use crate::endpoints::every_node_slice;
use crate::fixtures::{ensure_namespace, install_crds};
use anyhow::Context;
use ferrolb_runtime::Wiring;
use ferrolb_runtime::groups::{ConfigGroup, ResolvedGroups};
use ferrolb_speaker::stores::SpeakerStores;
use k8s_openapi::api::core::v1::{
    ContainerImage, LoadBalancerIngress, LoadBalancerStatus, Node, NodeAddress, NodeCondition,
    NodeStatus, NodeSystemInfo, Secret, Service, ServicePort, ServiceSpec, ServiceStatus,
};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{ObjectMeta, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Benchmark settings.
#[derive(Clone, Debug)]
pub struct WatchCostBench {
    /// Cluster sizes to measure: one speaker (and one Node) per node.
    pub nodes: Vec<usize>,
    /// LoadBalancer Services in the cluster (each with an EndpointSlice), and as many
    /// ClusterIP Services (each with a slice), which speakers watch but never use.
    pub services: usize,
    /// Endpoints in each EndpointSlice.
    pub endpoints_per_slice: usize,
    /// Service counts at which the Lease-per-Service design's writes are computed.
    pub lease_services: Vec<usize>,
}

/// What the server sent for one change.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ChangeCost {
    /// What changed.
    pub change: &'static str,
    /// Watch events sent, all resources.
    pub events: u64,
    /// Bytes of those events.
    pub bytes: u64,
    /// `events` / speakers.
    pub events_per_speaker: f64,
    /// `bytes` / speakers.
    pub bytes_per_speaker: f64,
}

/// Figures at one cluster size.
#[derive(Clone, Debug, serde::Serialize)]
pub struct WatchCostRow {
    /// Speakers (= nodes).
    pub speakers: usize,
    /// Watches the speakers opened, all resources.
    pub watches: u64,
    /// From starting the speakers' stores to every store synced, ms.
    pub sync_ms: f64,
    /// One row per change.
    pub changes: Vec<ChangeCost>,
}

/// The Lease-per-Service design at one Service count, computed (not measured).
#[derive(Clone, Debug, serde::Serialize)]
pub struct LeaseCost {
    /// Services announced.
    pub services: usize,
    /// Cilium's documented `QPS = #services * (1 / leaseRenewDeadline)`, at its default
    /// renew deadline of 5 s: Lease writes per second, whatever happens in the cluster.
    pub writes_per_s: f64,
    /// `writes_per_s` times the bytes of one Lease update body (measured: the JSON of a
    /// Lease as Cilium names and fills it).
    pub request_bytes_per_s: f64,
}

/// Benchmark figures.
#[derive(Clone, Debug, serde::Serialize)]
pub struct WatchCostReport {
    /// LoadBalancer Services (and as many ClusterIP ones) in the cluster.
    pub services: usize,
    /// Endpoints per slice.
    pub endpoints_per_slice: usize,
    /// One row per cluster size.
    pub rows: Vec<WatchCostRow>,
    /// The Lease-per-Service design, computed.
    pub lease: Vec<LeaseCost>,
    /// Bytes of one Node as the bench writes it (the N x N term's unit).
    pub node_bytes: usize,
}

impl std::fmt::Display for WatchCostReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "watch cost bench: {} LoadBalancer + {} ClusterIP Services, {} endpoints per slice, \
             Node object {} bytes",
            self.services, self.services, self.endpoints_per_slice, self.node_bytes
        )?;
        for row in &self.rows {
            writeln!(
                f,
                "  {} speakers: {} watches, synced in {:.0} ms",
                row.speakers, row.watches, row.sync_ms
            )?;
            for c in &row.changes {
                writeln!(
                    f,
                    "    {:<34} {:>7} events {:>11} bytes  per speaker {:>5.2} events {:>8.0} bytes",
                    c.change, c.events, c.bytes, c.events_per_speaker, c.bytes_per_speaker
                )?;
            }
        }
        writeln!(
            f,
            "  Lease per Service (computed: Cilium's QPS = #services / leaseRenewDeadline, 5 s):"
        )?;
        for l in &self.lease {
            writeln!(
                f,
                "    {:>6} services: {:>8.0} Lease writes/s, {:>10.0} request bytes/s, whether or not anything changes",
                l.services, l.writes_per_s, l.request_bytes_per_s
            )?;
        }
        Ok(())
    }
}

/// Cilium's default `l2announcements.leaseRenewDeadline`.
const CILIUM_RENEW_DEADLINE_S: f64 = 5.0;

const NAMESPACE: &str = "ferrolb-system";
const APP_NAMESPACE: &str = "default";

/// Runs the benchmark, one fresh API server per cluster size.
pub async fn run(opts: &WatchCostBench) -> anyhow::Result<WatchCostReport> {
    let mut rows = Vec::new();
    for &n in &opts.nodes {
        rows.push(measure(opts, n).await?);
    }
    let lease_bytes = serde_json::to_vec(&cilium_lease())?.len() as f64;
    let lease = opts
        .lease_services
        .iter()
        .map(|&services| {
            let writes_per_s = services as f64 / CILIUM_RENEW_DEADLINE_S;
            LeaseCost {
                services,
                writes_per_s,
                request_bytes_per_s: writes_per_s * lease_bytes,
            }
        })
        .collect();
    Ok(WatchCostReport {
        services: opts.services,
        endpoints_per_slice: opts.endpoints_per_slice,
        rows,
        lease,
        node_bytes: serde_json::to_vec(&node(0, Time(k8s_openapi::jiff::Timestamp::now())))?.len(),
    })
}

async fn measure(opts: &WatchCostBench, n: usize) -> anyhow::Result<WatchCostRow> {
    let server = ApiServer::start(ApiServerOptions {
        history_limit: 100_000,
        // kube-apiserver sends a bookmark about once a minute; they are counted apart anyway.
        bookmark_interval: Duration::from_secs(60),
        ..ApiServerOptions::default()
    })
    .await?;
    let result = measure_on(&server, opts, n).await;
    server.shutdown().await;
    result
}

async fn measure_on(
    server: &ApiServerHandle,
    opts: &WatchCostBench,
    n: usize,
) -> anyhow::Result<WatchCostRow> {
    let client = server.client()?;
    populate(&client, opts, n).await?;

    let groups = ResolvedGroups {
        groups: BTreeSet::from([ConfigGroup::Ferrolb]),
        metallb_bgp_peer_version: "v1beta2",
    };
    let start = Instant::now();
    let mut speakers = Vec::with_capacity(n);
    for _ in 0..n {
        let client = server.client()?;
        let mut wiring = Wiring::detached(Arc::new(()));
        let stores = SpeakerStores::start(
            &client,
            NAMESPACE,
            "metallb-system",
            &groups,
            false,
            &mut wiring,
        );
        speakers.push((wiring, stores));
    }
    for (_, stores) in &speakers {
        stores
            .wait_until_ready()
            .await
            .context("a speaker's store stopped")?;
    }
    let sync_ms = start.elapsed().as_secs_f64() * 1000.0;
    // Every watch open (a store is ready after its list; its watch follows).
    let per_speaker_watches = 4 + 6; // Services, EndpointSlices, Nodes, Secrets, six config kinds
    let expected = (n * per_speaker_watches) as u64;
    let deadline = Instant::now() + Duration::from_secs(60);
    while total(&server.watch_totals()).watches < expected && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let watches = total(&server.watch_totals()).watches;

    let services: Api<Service> = Api::namespaced(client.clone(), APP_NAMESPACE);
    let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), APP_NAMESPACE);
    let nodes: Api<Node> = Api::all(client.clone());
    let label = |v: &str| serde_json::json!({"metadata": {"labels": {"bench/changed": v}}});
    let mut changes = Vec::new();
    changes.push(
        cost(server, n, "LoadBalancer Service label", async {
            services
                .patch("lb-0", &PatchParams::default(), &Patch::Merge(label("1")))
                .await
                .map(drop)
        })
        .await?,
    );
    changes.push(
        cost(server, n, "its EndpointSlice: endpoint not ready", async {
            first_endpoint_not_ready(&slices, "lb-0-slice").await
        })
        .await?,
    );
    changes.push(
        cost(server, n, "ClusterIP Service label", async {
            services
                .patch("cip-0", &PatchParams::default(), &Patch::Merge(label("1")))
                .await
                .map(drop)
        })
        .await?,
    );
    changes.push(
        cost(server, n, "its EndpointSlice: endpoint not ready", async {
            first_endpoint_not_ready(&slices, "cip-0-slice").await
        })
        .await?,
    );
    changes.push(
        cost(server, n, "Node status (kubelet report)", async {
            kubelet_report(&nodes, "node-0000").await
        })
        .await?,
    );
    drop(speakers);
    Ok(WatchCostRow {
        speakers: n,
        watches,
        sync_ms,
        changes,
    })
}

/// Makes `change` and counts what the watches sent until every speaker had its event and
/// nothing more came for a while.
async fn cost<F>(
    server: &ApiServerHandle,
    speakers: usize,
    change: &'static str,
    f: F,
) -> anyhow::Result<ChangeCost>
where
    F: std::future::Future<Output = Result<(), kube::Error>>,
{
    let before = total(&server.watch_totals());
    f.await.with_context(|| change.to_string())?;
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut last = total(&server.watch_totals()).since(&before);
    let mut quiet_since = Instant::now();
    // Done when every speaker has had at least one event and nothing changed for 500 ms.
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let now = total(&server.watch_totals()).since(&before);
        if now != last {
            last = now;
            quiet_since = Instant::now();
        } else if last.events >= speakers as u64
            && quiet_since.elapsed() > Duration::from_millis(500)
        {
            break;
        }
    }
    let per = |x: u64| x as f64 / speakers.max(1) as f64;
    Ok(ChangeCost {
        change,
        events: last.events,
        bytes: last.event_bytes,
        events_per_speaker: per(last.events),
        bytes_per_speaker: per(last.event_bytes),
    })
}

fn total(by_resource: &BTreeMap<String, WatchTotals>) -> WatchTotals {
    by_resource
        .values()
        .fold(WatchTotals::default(), |mut acc, t| {
            acc.watches += t.watches;
            acc.events += t.events;
            acc.event_bytes += t.event_bytes;
            acc.bookmarks += t.bookmarks;
            acc.bookmark_bytes += t.bookmark_bytes;
            acc
        })
}

/// What the EndpointSlice controller writes when a pod stops being ready.
async fn first_endpoint_not_ready(api: &Api<EndpointSlice>, name: &str) -> Result<(), kube::Error> {
    let mut slice = api.get(name).await?;
    if let Some(c) = slice
        .endpoints
        .first_mut()
        .and_then(|e| e.conditions.as_mut())
    {
        c.ready = Some(false);
    }
    api.replace(name, &PostParams::default(), &slice)
        .await
        .map(drop)
}

/// What a kubelet writes when it reports its status: new heartbeat times, nothing else.
async fn kubelet_report(api: &Api<Node>, name: &str) -> Result<(), kube::Error> {
    let mut node = api.get_status(name).await?;
    let now = Time(k8s_openapi::jiff::Timestamp::now());
    for c in node
        .status
        .iter_mut()
        .flat_map(|s| s.conditions.iter_mut().flatten())
    {
        c.last_heartbeat_time = Some(now.clone());
    }
    api.replace_status(name, &PostParams::default(), &node)
        .await
        .map(drop)
}

/// The cluster: `n` Nodes, the configuration and a Secret the speakers read, `services`
/// LoadBalancer Services with an address and as many ClusterIP ones, each with a slice.
async fn populate(client: &Client, opts: &WatchCostBench, n: usize) -> anyhow::Result<()> {
    install_crds(client).await?;
    ensure_namespace(client, NAMESPACE).await?;
    let pp = PostParams::default();
    let pools: Api<ferrolb_api::IPAddressPool> = Api::namespaced(client.clone(), NAMESPACE);
    pools
        .create(
            &pp,
            &ferrolb_api::IPAddressPool::new(
                "bench",
                ferrolb_api::IPAddressPoolSpec {
                    // Data only: written into statuses, never used on a network.
                    addresses: vec!["10.200.128.0/17".into()],
                    auto_assign: true,
                    ..Default::default()
                },
            ),
        )
        .await?;
    let l2: Api<ferrolb_api::L2Advertisement> = Api::namespaced(client.clone(), NAMESPACE);
    l2.create(
        &pp,
        &ferrolb_api::L2Advertisement::new("bench", Default::default()),
    )
    .await?;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), NAMESPACE);
    secrets
        .create(
            &pp,
            &Secret {
                metadata: ObjectMeta {
                    name: Some("memberlist".into()),
                    ..ObjectMeta::default()
                },
                string_data: Some(BTreeMap::from([(
                    "secretkey".to_string(),
                    "bench-not-a-secret".to_string(),
                )])),
                ..Secret::default()
            },
        )
        .await?;

    let nodes: Api<Node> = Api::all(client.clone());
    let now = Time(k8s_openapi::jiff::Timestamp::now());
    for i in 0..n {
        let node = node(i, now.clone());
        let created = nodes.create(&pp, &node).await?;
        let mut with_status = created;
        with_status.status = node.status;
        nodes
            .replace_status(&format!("node-{i:04}"), &pp, &with_status)
            .await?;
    }
    let endpoints: Vec<(String, Ipv4Addr)> = (0..opts.endpoints_per_slice)
        .map(|i| (format!("node-{:04}", i % n.max(1)), pod_ip(i)))
        .collect();
    let services: Api<Service> = Api::namespaced(client.clone(), APP_NAMESPACE);
    let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), APP_NAMESPACE);
    for i in 0..opts.services {
        for (name, lb) in [(format!("lb-{i}"), true), (format!("cip-{i}"), false)] {
            let created = services.create(&pp, &service(&name, lb)).await?;
            if lb {
                let mut s = created;
                s.status = Some(ServiceStatus {
                    load_balancer: Some(LoadBalancerStatus {
                        ingress: Some(vec![LoadBalancerIngress {
                            ip: Some(
                                Ipv4Addr::from(
                                    u32::from(Ipv4Addr::new(10, 200, 128, 0)) + i as u32,
                                )
                                .to_string(),
                            ),
                            ..LoadBalancerIngress::default()
                        }]),
                    }),
                    ..ServiceStatus::default()
                });
                services.replace_status(&name, &pp, &s).await?;
            }
            slices
                .create(&pp, &every_node_slice(APP_NAMESPACE, &name, &endpoints))
                .await?;
        }
    }
    Ok(())
}

/// Pod addresses of the slices (data only, never used on a network).
fn pod_ip(i: usize) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 200, 64, 0)) + i as u32)
}

fn service(name: &str, lb: bool) -> Service {
    Service {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some(APP_NAMESPACE.into()),
            labels: Some(BTreeMap::from([("app".to_string(), name.to_string())])),
            ..ObjectMeta::default()
        },
        spec: Some(ServiceSpec {
            type_: Some(if lb { "LoadBalancer" } else { "ClusterIP" }.into()),
            allocate_load_balancer_node_ports: lb.then_some(false),
            selector: Some(BTreeMap::from([("app".to_string(), name.to_string())])),
            ports: Some(vec![ServicePort {
                name: Some("http".into()),
                port: 80,
                ..ServicePort::default()
            }]),
            ..ServiceSpec::default()
        }),
        status: None,
    }
}

/// A Node as a kubelet reports it: labels, addresses, the five conditions, capacity, system
/// info and the 20 images it holds (kubelet reports up to 50; images are most of a Node's
/// bytes).
fn node(i: usize, now: Time) -> Node {
    let name = format!("node-{i:04}");
    let q = |s: &str| Quantity(s.to_string());
    let resources = BTreeMap::from([
        ("cpu".to_string(), q("16")),
        ("ephemeral-storage".to_string(), q("488245288Ki")),
        ("hugepages-1Gi".to_string(), q("0")),
        ("hugepages-2Mi".to_string(), q("0")),
        ("memory".to_string(), q("65842828Ki")),
        ("pods".to_string(), q("110")),
    ]);
    let condition = |type_: &str, status: &str, reason: &str, message: &str| NodeCondition {
        type_: type_.into(),
        status: status.into(),
        reason: Some(reason.into()),
        message: Some(message.into()),
        last_heartbeat_time: Some(now.clone()),
        last_transition_time: Some(now.clone()),
    };
    let images = (0..20)
        .map(|k| ContainerImage {
            names: Some(vec![
                format!(
                    "registry.example/team-{k}/app-{k}@sha256:{:064x}",
                    k * 7919 + 1
                ),
                format!("registry.example/team-{k}/app-{k}:v1.{k}.0"),
            ]),
            size_bytes: Some(30_000_000 + k as i64 * 1_000_000),
        })
        .collect();
    Node {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            labels: Some(BTreeMap::from([
                ("beta.kubernetes.io/arch".to_string(), "amd64".to_string()),
                ("beta.kubernetes.io/os".to_string(), "linux".to_string()),
                ("kubernetes.io/arch".to_string(), "amd64".to_string()),
                ("kubernetes.io/hostname".to_string(), name.clone()),
                ("kubernetes.io/os".to_string(), "linux".to_string()),
                (
                    "topology.kubernetes.io/zone".to_string(),
                    format!("zone-{}", i % 3),
                ),
            ])),
            annotations: Some(BTreeMap::from([
                ("node.alpha.kubernetes.io/ttl".to_string(), "0".to_string()),
                (
                    "volumes.kubernetes.io/controller-managed-attach-detach".to_string(),
                    "true".to_string(),
                ),
            ])),
            ..ObjectMeta::default()
        },
        spec: None,
        status: Some(NodeStatus {
            addresses: Some(vec![
                NodeAddress {
                    type_: "InternalIP".into(),
                    address: Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 200, 0, 10)) + i as u32)
                        .to_string(),
                },
                NodeAddress {
                    type_: "Hostname".into(),
                    address: name.clone(),
                },
            ]),
            allocatable: Some(resources.clone()),
            capacity: Some(resources),
            conditions: Some(vec![
                condition(
                    "MemoryPressure",
                    "False",
                    "KubeletHasSufficientMemory",
                    "kubelet has sufficient memory available",
                ),
                condition(
                    "DiskPressure",
                    "False",
                    "KubeletHasNoDiskPressure",
                    "kubelet has no disk pressure",
                ),
                condition(
                    "PIDPressure",
                    "False",
                    "KubeletHasSufficientPID",
                    "kubelet has sufficient PID available",
                ),
                condition(
                    "Ready",
                    "True",
                    "KubeletReady",
                    "kubelet is posting ready status",
                ),
            ]),
            images: Some(images),
            node_info: Some(NodeSystemInfo {
                architecture: "amd64".into(),
                boot_id: format!("{:032x}", i * 31 + 7),
                container_runtime_version: "containerd://1.7.24".into(),
                kernel_version: "6.1.0-28-amd64".into(),
                kube_proxy_version: String::new(),
                kubelet_version: "v1.33.1".into(),
                machine_id: format!("{:032x}", i * 17 + 3),
                operating_system: "linux".into(),
                os_image: "Debian GNU/Linux 12 (bookworm)".into(),
                system_uuid: format!("{:032x}", i * 13 + 5),
                ..NodeSystemInfo::default()
            }),
            ..NodeStatus::default()
        }),
    }
}

/// A Lease as Cilium's L2 announcements create one per Service (name, holder, durations as
/// its documentation shows), as the JSON body of the update that renews it.
fn cilium_lease() -> serde_json::Value {
    serde_json::json!({
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {
            "name": "cilium-l2announce-default-service-00001",
            "namespace": "kube-system",
            "resourceVersion": "449966",
            "uid": "e3c9c020-6e24-4c5c-9df9-d0c50f6c4cec",
            "creationTimestamp": "2026-05-09T15:13:32Z"
        },
        "spec": {
            "acquireTime": "2026-05-09T15:14:20.108431Z",
            "holderIdentity": "worker-node-0001",
            "leaseDurationSeconds": 15,
            "leaseTransitions": 1,
            "renewTime": "2026-05-12T12:15:26.773020Z"
        }
    })
}
