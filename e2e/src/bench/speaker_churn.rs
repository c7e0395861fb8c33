//! The speaker process under endpoint churn at scale, end to end: a release `ferrolb-speaker`
//! against the in-memory API server holding 50,000 LoadBalancer Services (half layer 2 from an
//! IPv4 pool, half BGP from an IPv6 pool, each with an address) and one EndpointSlice of four
//! endpoints each on 100 Nodes — the cluster of the `ferrolb-speaker-core` churn bench, served
//! over the real watches. The speaker runs in node 1 of a one-node lab (its announcements stay
//! on the lab's LAN; its BGP peer is the lab router's address, where nothing listens, so the
//! session keeps retrying and the whole BGP table is handed to the peer manager on every pass);
//! the API server runs in this process, in the same namespace, on loopback.
//!
//! Figures: the speaker's CPU (utime + stime from `/proc/PID/stat`) as a share of one core,
//! idle for the reference window and then while the bench changes EndpointSlices at the given
//! rate (each change moves one slice's endpoints to other nodes, a merge patch through the
//! API); its RSS and peak RSS; how long its first listing and first pass took.
//!
//! Change → announcement: one change in ten moves one of [`PROBES`] extra layer 2 Services
//! (`externalTrafficPolicy: Local`, one endpoint) onto node 1 or away from it. Onto node 1 makes
//! node 1 the only node that may announce it, and the speaker says so with a gratuitous ARP; a
//! passive capture on the router's LAN interface sees it. The delay is from just before the
//! patch is sent to the kernel's receive timestamp of the first gratuitous ARP: the API
//! server, the watch, the speaker's pass and the announcement, all of it.

use super::stats::{peak_rss_kib, percentile, rss_kib};
use crate::apiserver::store::{Snapshot, SnapshotObject};
use crate::apiserver::{ApiServer, ApiServerOptions};
use crate::cluster::{apply_manifest, ns_runtime, register_node, run_in};
use crate::fixtures::{ensure_namespace, install_crds};
use crate::garp_capture::{GratuitousCapture, announcement_delays};
use crate::lab::{Lab, LabError, ProcessSpec};
use anyhow::{Context, anyhow};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::Api;
use kube::api::{Patch, PatchParams};
use serde::Serialize;
use serde_json::{Value, json};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Nodes in the cluster (one of them the lab's node 1, where the speaker runs).
const NODES: usize = 100;
const ENDPOINTS_PER_SLICE: usize = 4;
/// The speaker's status API inside node 1's namespace.
const SPEAKER_HTTP: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 17472);
const L2_BASE: Ipv4Addr = Ipv4Addr::new(10, 200, 128, 0);
const BGP_BASE: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x200, 0, 0x10, 0, 0, 0, 0);
/// Services whose moves onto node 1 are timed to their announcement.
const PROBES: usize = 20;
/// Every this many changes, one is a probe's move.
const PROBE_EVERY: usize = 10;

/// Options.
#[derive(Clone, Debug)]
pub struct SpeakerChurnBench {
    /// LoadBalancer Services (at most 65,536: half of them take addresses of a /17).
    pub services: usize,
    /// EndpointSlice changes per second.
    pub rate: u32,
    /// How long the churn and the idle reference each last.
    pub window: Duration,
    /// The speaker binary.
    pub speaker_bin: PathBuf,
}

/// The report.
#[derive(Debug, Default, Serialize)]
pub struct Report {
    pub services: usize,
    pub endpoints: usize,
    pub nodes: usize,
    /// Speaker start -> ready (caches listed, first pass applied), s.
    pub ready_s: f64,
    /// Ready -> CPU quiet (status objects and events of the first pass written), s.
    pub settled_s: f64,
    /// CPU share of one core, idle, %.
    pub idle_cpu_percent: f64,
    /// Changes made (probe moves included) and the rate achieved.
    pub changes: usize,
    pub achieved_rate: f64,
    /// CPU share of one core during the churn, %.
    pub churn_cpu_percent: f64,
    /// Probe moves onto node 1, and how many of them were announced.
    pub probe_moves: usize,
    pub announced: usize,
    /// Change → gratuitous ARP, ms.
    pub announce_p50_ms: f64,
    pub announce_p99_ms: f64,
    pub announce_max_ms: f64,
    /// VmRSS and VmHWM of the speaker at the end, MiB.
    pub rss_mib: f64,
    pub peak_rss_mib: f64,
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "speaker under endpoint churn (process, real watches): {} Services, {} endpoints, {} Nodes",
            self.services, self.endpoints, self.nodes
        )?;
        writeln!(
            f,
            "  start -> ready {:.1} s; ready -> quiet {:.1} s",
            self.ready_s, self.settled_s
        )?;
        writeln!(
            f,
            "  CPU idle (reference) {:.2} % of one core; under {} EndpointSlice changes ({:.1}/s) {:.2} % (target < 10 %)",
            self.idle_cpu_percent, self.changes, self.achieved_rate, self.churn_cpu_percent
        )?;
        writeln!(
            f,
            "  change -> announcement (gratuitous ARP seen on the LAN): {} of {} moves announced; p50 {:.1} ms, p99 {:.1} ms (target < 100 ms), max {:.1} ms",
            self.announced,
            self.probe_moves,
            self.announce_p50_ms,
            self.announce_p99_ms,
            self.announce_max_ms
        )?;
        writeln!(
            f,
            "  speaker VmRSS {:.1} MiB, VmHWM {:.1} MiB",
            self.rss_mib, self.peak_rss_mib
        )
    }
}

fn lab_err(e: LabError) -> anyhow::Error {
    anyhow!("{e}")
}

/// A pool (assigned by hand: the Services come with their addresses) and the advertisement of
/// `kind` that announces it.
fn pool_and_advertisement(name: &str, cidr: &str, kind: &str) -> String {
    format!(
        "apiVersion: ferrolb.io/v1beta1
kind: IPAddressPool
metadata: {{name: {name}, namespace: ferrolb-system}}
spec: {{addresses: ['{cidr}'], autoAssign: false}}
---
apiVersion: ferrolb.io/v1beta1
kind: {kind}
metadata: {{name: {name}, namespace: ferrolb-system}}
spec: {{ipAddressPools: [{name}]}}
---
"
    )
}

fn config_manifest() -> String {
    let lan = pool_and_advertisement("lan", &format!("{L2_BASE}/17"), "L2Advertisement");
    let routed = pool_and_advertisement("routed", &format!("{BGP_BASE}/64"), "BGPAdvertisement");
    format!(
        "{lan}{routed}apiVersion: ferrolb.io/v1beta1
kind: BGPPeer
metadata: {{name: tor, namespace: ferrolb-system}}
spec: {{myASN: 64512, peerASN: 64500, peerAddress: 'fd00:200::1'}}
"
    )
}

fn node_name(i: usize, node1: &str) -> String {
    if i == 0 {
        node1.to_string()
    } else {
        format!("bench-node-{i}")
    }
}

fn metadata(name: &str, rv: u64) -> Value {
    json!({
        "name": name,
        "namespace": "default",
        "uid": format!("00000000-0000-4000-8000-{rv:012}"),
        "resourceVersion": rv.to_string(),
        "creationTimestamp": "2026-01-01T00:00:00Z",
    })
}

/// Service `i`: even ones layer 2 (IPv4), odd ones BGP (IPv6), with their address in status.
fn service(i: usize, rv: u64) -> Value {
    let n = u32::try_from(i).unwrap_or(u32::MAX);
    let ip: IpAddr = if i.is_multiple_of(2) {
        IpAddr::V4(Ipv4Addr::from(u32::from(L2_BASE) + n / 2))
    } else {
        IpAddr::V6(Ipv6Addr::from(u128::from(BGP_BASE) + u128::from(n)))
    };
    load_balancer(&format!("svc-{i}"), rv, "Cluster", ip)
}

/// A LoadBalancer Service `name` with `policy` and `ip` in its status.
fn load_balancer(name: &str, rv: u64, policy: &str, ip: IpAddr) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata(name, rv),
        "spec": {
            "type": "LoadBalancer",
            "ports": [{"port": 80, "protocol": "TCP"}],
            "externalTrafficPolicy": policy,
        },
        "status": {"loadBalancer": {"ingress": [{"ip": ip.to_string()}]}},
    })
}

/// The EndpointSlice of Service `service`.
fn slice_of(service: &str, rv: u64, endpoints: Value) -> Value {
    let mut meta = metadata(&format!("{service}-slice"), rv);
    meta["labels"] = json!({"kubernetes.io/service-name": service});
    json!({
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": meta,
        "addressType": "IPv4",
        "endpoints": endpoints,
        "ports": [{"port": 80, "protocol": "TCP"}],
    })
}

/// The endpoints of Service `i`'s slice, `shift` nodes further than at first.
fn endpoints(i: usize, shift: usize, node1: &str) -> Value {
    let eps: Vec<Value> = (0..ENDPOINTS_PER_SLICE)
        .map(|e| {
            json!({
                "addresses": [format!("10.200.{}.{}", 4 + e, i % 250 + 1)],
                "nodeName": node_name((i + e * 7 + shift) % NODES, node1),
                "conditions": {"ready": true, "serving": true, "terminating": false},
            })
        })
        .collect();
    Value::Array(eps)
}

fn slice(i: usize, rv: u64, node1: &str) -> Value {
    slice_of(&format!("svc-{i}"), rv, endpoints(i, 0, node1))
}

/// The address of probe `k`: the first ones of the layer 2 pool after the Services'.
fn probe_address(services: usize, k: usize) -> Ipv4Addr {
    let n = u32::try_from(services.div_ceil(2) + k).unwrap_or(u32::MAX);
    Ipv4Addr::from(u32::from(L2_BASE) + n)
}

/// Probe `k`: a layer 2 Service with `externalTrafficPolicy: Local`, its address in status.
fn probe_service(k: usize, services: usize, rv: u64) -> Value {
    let ip = IpAddr::V4(probe_address(services, k));
    load_balancer(&format!("probe-{k}"), rv, "Local", ip)
}

/// Probe `k`'s one endpoint, on `node`.
fn probe_endpoints(k: usize, node: &str) -> Value {
    json!([{
        "addresses": [format!("10.200.8.{}", k + 1)],
        "nodeName": node,
        "conditions": {"ready": true, "serving": true, "terminating": false},
    }])
}

/// Probe `k`'s slice, its endpoint away from node 1.
fn probe_slice(k: usize, rv: u64) -> Value {
    let away = probe_endpoints(k, &node_name(k + 1, ""));
    slice_of(&format!("probe-{k}"), rv, away)
}

/// Change `n`'s probe move, if it is one: which probe, and whether onto node 1. Each probe
/// stays on node 1 (and then away) for [`PROBES`] probe moves.
fn probe_move(n: usize) -> Option<(usize, bool)> {
    if !n.is_multiple_of(PROBE_EVERY) {
        return None;
    }
    let j = n / PROBE_EVERY;
    Some((j % PROBES, (j / PROBES).is_multiple_of(2)))
}

/// The `p`-th percentile of `v`, ms (NaN when empty).
fn percentile_ms(v: &[Duration], p: f64) -> f64 {
    percentile(v, p).map_or(f64::NAN, |d| d.as_secs_f64() * 1e3)
}

/// utime + stime of `pid`, in clock ticks.
fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces; the fields after it are space-separated.
    let after = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = after.split_whitespace().collect();
    // Fields 14 and 15 of stat(5), counted from the state (field 3) here.
    Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
}

fn ticks_per_second() -> f64 {
    // Linux reports these in USER_HZ, 100 on every architecture ferrolb runs on.
    100.0
}

/// The CPU share of one core `pid` used over `window`, %.
fn cpu_share(pid: u32, window: Duration) -> anyhow::Result<f64> {
    let before = cpu_ticks(pid).context("speaker CPU")?;
    let start = Instant::now();
    std::thread::sleep(window);
    let used = cpu_ticks(pid).context("speaker CPU")? - before;
    Ok(used as f64 / ticks_per_second() / start.elapsed().as_secs_f64() * 100.0)
}

/// Whether the speaker answers `/readyz` with 200.
async fn ready() -> bool {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Ok(mut s) = tokio::net::TcpStream::connect(SPEAKER_HTTP).await else {
        return false;
    };
    let req = b"GET /readyz HTTP/1.0\r\nHost: localhost\r\n\r\n";
    if s.write_all(req).await.is_err() {
        return false;
    }
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf).await;
    buf.starts_with(b"HTTP/1.1 200") || buf.starts_with(b"HTTP/1.0 200")
}

/// Runs the benchmark (blocking; call it off any tokio runtime).
pub fn run(opts: &SpeakerChurnBench) -> anyhow::Result<Report> {
    // Half the Services and the probes take addresses of the layer 2 /17.
    let most = 65_536 - 2 * PROBES;
    if opts.services == 0 || opts.services > most {
        return Err(anyhow!("--services must be 1..={most}"));
    }
    let lab = Lab::builder().nodes(1).build().map_err(lab_err)?;
    let node1 = lab.node(1).name().to_string();
    let rt = ns_runtime(lab.node(1).ns().name())?;

    // Everything runs on the namespace's runtime: its sockets must be made in node 1's
    // namespace. The configuration, namespaces and Nodes go through the API; the bulk of
    // the objects straight into the state the server starts from.
    let (name, node1_v4) = (node1.clone(), lab.node(1).v4());
    let mut snapshot: Snapshot = run_in(&rt, async move {
        let seed = ApiServer::start(ApiServerOptions::default()).await?;
        let client = seed.client()?;
        install_crds(&client).await?;
        ensure_namespace(&client, "ferrolb-system").await?;
        apply_manifest(client.clone(), config_manifest(), "bench").await?;
        for i in 0..NODES {
            let ip = IpAddr::V4(Ipv4Addr::new(10, 200, 0, 11 + i as u8));
            let ip = if i == 0 { IpAddr::V4(node1_v4) } else { ip };
            register_node(&client, &node_name(i, &name), &[ip], true).await?;
        }
        Ok::<Snapshot, anyhow::Error>(seed.shutdown().await)
    })??;
    let mut rv = snapshot.resource_version;
    for i in 0..opts.services {
        rv += 1;
        snapshot.objects.push(SnapshotObject {
            group: String::new(),
            resource: "services".into(),
            object: service(i, rv),
        });
        rv += 1;
        snapshot.objects.push(SnapshotObject {
            group: "discovery.k8s.io".into(),
            resource: "endpointslices".into(),
            object: slice(i, rv, &node1),
        });
    }
    for k in 0..PROBES {
        rv += 1;
        snapshot.objects.push(SnapshotObject {
            group: String::new(),
            resource: "services".into(),
            object: probe_service(k, opts.services, rv),
        });
        rv += 1;
        snapshot.objects.push(SnapshotObject {
            group: "discovery.k8s.io".into(),
            resource: "endpointslices".into(),
            object: probe_slice(k, rv),
        });
    }
    snapshot.resource_version = rv;
    let server = run_in(
        &rt,
        ApiServer::start(ApiServerOptions {
            snapshot: Some(snapshot),
            history_limit: 1_000_000,
            ..ApiServerOptions::default()
        }),
    )??;
    let client = server.client()?;

    let dir = lab.log_dir().join("speaker-churn");
    std::fs::create_dir_all(&dir).context("the speaker's directory")?;
    let spec = ProcessSpec::new("speaker", &opts.speaker_bin)
        .arg("run")
        .arg("--namespace")
        .arg("ferrolb-system")
        .arg("--node-name")
        .arg(&node1)
        .arg("--listen")
        .arg(SPEAKER_HTTP.to_string())
        .arg("--http-insecure-loopback")
        .arg("--membership-port")
        .arg("0")
        .arg("--l2-responder")
        .arg("socket")
        .arg("--restart-marker-dir")
        .arg(dir.join("markers"))
        .arg("--l2-handover-dir")
        .arg(dir.join("handover"))
        .env("KUBECONFIG", server.kubeconfig_path())
        .env("RUST_LOG", "error");
    let started = Instant::now();
    let speaker = lab.node(1).ns().spawn_spec(&spec).map_err(lab_err)?;
    let pid = u32::try_from(speaker.pid()).context("speaker pid")?;
    loop {
        if run_in(&rt, ready())? {
            break;
        }
        if started.elapsed() > Duration::from_secs(300) {
            return Err(anyhow!("the speaker was not ready after 300 s"));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let ready_s = started.elapsed().as_secs_f64();
    // Quiet: two seconds in a row under 5 % of a core.
    let mut quiet = 0;
    while quiet < 2 {
        if cpu_share(pid, Duration::from_secs(1))? < 5.0 {
            quiet += 1;
        } else {
            quiet = 0;
        }
        if started.elapsed() > Duration::from_secs(600) {
            return Err(anyhow!("the speaker did not quiet down within 600 s"));
        }
    }
    let settled_s = started.elapsed().as_secs_f64() - ready_s;
    let idle = cpu_share(pid, opts.window)?;

    let router = lab.router();
    let probe_addresses = (0..PROBES)
        .map(|k| probe_address(opts.services, k))
        .collect();
    let capture = GratuitousCapture::start(router.ns().path(), router.iface(), probe_addresses)
        .context("the gratuitous ARP capture")?;

    let api: Api<EndpointSlice> = Api::namespaced(client, "default");
    let interval = Duration::from_secs(1) / opts.rate.max(1);
    let changes = (opts.window.as_secs_f64() * f64::from(opts.rate.max(1))) as usize;
    let before = cpu_ticks(pid).context("speaker CPU")?;
    let start = Instant::now();
    let (name, services) = (node1.clone(), opts.services);
    let moves = run_in(&rt, async move {
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
        // (probe address, when the move onto node 1 was sent).
        let mut moves = Vec::new();
        for n in 1..=changes {
            tick.tick().await;
            let (slice, patch) = match probe_move(n) {
                Some((k, onto)) => {
                    let node = if onto {
                        name.clone()
                    } else {
                        node_name(k + 1, &name)
                    };
                    if onto {
                        moves.push((probe_address(services, k), Instant::now()));
                    }
                    let patch = json!({"endpoints": probe_endpoints(k, &node)});
                    (format!("probe-{k}-slice"), patch)
                }
                None => {
                    let i = n.wrapping_mul(7919) % services;
                    let patch = json!({"endpoints": endpoints(i, n, &name)});
                    (format!("svc-{i}-slice"), patch)
                }
            };
            api.patch(&slice, &PatchParams::default(), &Patch::Merge(&patch))
                .await?;
        }
        Ok::<_, anyhow::Error>(moves)
    })??;
    let wall = start.elapsed();
    // The last changes' passes: let the speaker finish them inside the measured time.
    std::thread::sleep(Duration::from_millis(200));
    let used = cpu_ticks(pid).context("speaker CPU")? - before;
    let churn = used as f64 / ticks_per_second() / start.elapsed().as_secs_f64() * 100.0;
    // The last move's announcement may still be on its way.
    std::thread::sleep(Duration::from_millis(800));
    let seen = capture.finish().context("the gratuitous ARP capture")?;
    let delays = announcement_delays(&moves, &seen);
    let announced: Vec<Duration> = delays.iter().flatten().copied().collect();

    let report = Report {
        services: opts.services,
        endpoints: opts.services * ENDPOINTS_PER_SLICE,
        nodes: NODES,
        ready_s,
        settled_s,
        idle_cpu_percent: idle,
        changes,
        achieved_rate: changes as f64 / wall.as_secs_f64(),
        churn_cpu_percent: churn,
        probe_moves: moves.len(),
        announced: announced.len(),
        announce_p50_ms: percentile_ms(&announced, 50.0),
        announce_p99_ms: percentile_ms(&announced, 99.0),
        announce_max_ms: percentile_ms(&announced, 100.0),
        rss_mib: rss_kib(pid).map_or(f64::NAN, |k| k as f64 / 1024.0),
        peak_rss_mib: peak_rss_kib(pid).map_or(f64::NAN, |k| k as f64 / 1024.0),
    };
    drop(speaker);
    run_in(&rt, server.shutdown())?;
    drop(rt);
    drop(lab);
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn objects_stay_in_the_lab_and_match_their_pools() {
        let lab: ipnet::IpNet = "10.200.0.0/16".parse().unwrap();
        let lab6: ipnet::IpNet = "fd00:200::/48".parse().unwrap();
        for i in [0, 1, 65_534, 65_535] {
            let s = service(i, 1);
            let ip: IpAddr = s["status"]["loadBalancer"]["ingress"][0]["ip"]
                .as_str()
                .unwrap()
                .parse()
                .unwrap();
            assert!(lab.contains(&ip) || lab6.contains(&ip), "{ip}");
            let pool: ipnet::IpNet = if ip.is_ipv4() {
                format!("{L2_BASE}/17").parse().unwrap()
            } else {
                format!("{BGP_BASE}/64").parse().unwrap()
            };
            assert!(pool.contains(&ip), "{ip} outside its pool");
        }
        let eps = endpoints(3, 5, "n1");
        assert_eq!(eps.as_array().unwrap().len(), ENDPOINTS_PER_SLICE);
        assert_eq!(eps[0]["nodeName"], "bench-node-8");
    }

    #[test]
    fn probes_take_free_addresses_of_the_layer_2_pool_and_alternate() {
        let pool: ipnet::Ipv4Net = format!("{L2_BASE}/17").parse().unwrap();
        for services in [1, 2, 3, 50_000, 65_536 - 2 * PROBES] {
            let last_service = (0..services).rev().find(|i| i % 2 == 0).unwrap();
            let taken: IpAddr =
                service(last_service, 1)["status"]["loadBalancer"]["ingress"][0]["ip"]
                    .as_str()
                    .unwrap()
                    .parse()
                    .unwrap();
            for k in 0..PROBES {
                let ip = probe_address(services, k);
                assert!(
                    pool.contains(&ip),
                    "{ip} outside the pool ({services} Services)"
                );
                assert!(IpAddr::V4(ip) > taken, "{ip} taken ({services} Services)");
            }
        }
        let moves: Vec<_> = (1..=2 * PROBES * PROBE_EVERY)
            .filter_map(probe_move)
            .collect();
        assert_eq!(moves.len(), 2 * PROBES);
        assert_eq!(moves[0], (1, true));
        assert_eq!(moves.iter().filter(|(_, onto)| *onto).count(), PROBES);
        // Each probe moves onto node 1 once and away once.
        for k in 0..PROBES {
            let mine: Vec<bool> = moves.iter().filter(|m| m.0 == k).map(|m| m.1).collect();
            assert_eq!(mine.len(), 2, "probe {k}: {mine:?}");
            assert_ne!(mine[0], mine[1], "probe {k}: {mine:?}");
        }
    }

    #[test]
    fn the_configuration_is_valid() {
        let mut m = ferrolb_config::manifests::Manifests::default();
        m.add("bench.yaml", &config_manifest());
        assert!(m.errors.is_empty(), "{:?}", m.errors);
        let config = ferrolb_config::Config::build(&m.inputs).expect("valid configuration");
        assert_eq!(config.pools.len(), 2);
        assert_eq!(config.peers.len(), 1);
    }

    #[test]
    fn reads_cpu_ticks_of_a_process() {
        assert!(cpu_ticks(std::process::id()).is_some());
    }
}
