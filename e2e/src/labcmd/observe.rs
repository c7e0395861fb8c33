//! One look at the whole lab: Service addresses and events from the API server, announcements
//! from every speaker's `/api/v1/status`, BGP sessions and routes from BIRD, and whether the
//! clients reach each address (an HTTP GET from inside the client namespaces).

use super::scenario::{Expect, Mode, SvcSpec};
use crate::cluster::{Cluster, ns_runtime};
use crate::fixtures::ingress_ips;
use crate::lab::topology::is_lab_addr;
use anyhow::anyhow;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, ListParams};
use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

/// A probe that takes longer than this counts as failed (the echo server answers at once).
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// Runtimes inside the client namespaces, so every probe socket is opened there.
pub struct Clients {
    lan: tokio::runtime::Runtime,
    upstream: Option<tokio::runtime::Runtime>,
}

impl Clients {
    pub fn new(c: &Cluster) -> anyhow::Result<Clients> {
        Ok(Clients {
            lan: ns_runtime(c.lab.lan_client().ns().name())?,
            upstream: match c.lab.try_upstream_client() {
                Some(h) => Some(ns_runtime(h.ns().name())?),
                None => None,
            },
        })
    }
}

/// Result of one HTTP GET of `http://IP:80/` from a client.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Probe {
    pub ip: IpAddr,
    /// `lan-client` (L2) or `upstream-client` (BGP, through the router).
    pub from: &'static str,
    pub reachable: bool,
    /// Node (short name) whose echo server answered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub answered_by: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// What the router (BIRD) has for one address.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RouterRoute {
    pub ip: IpAddr,
    /// BIRD protocols (sessions) the route was learned from; empty: no route at the router.
    pub learned_from: Vec<String>,
}

/// One row of the table.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Row {
    pub name: String,
    pub namespace: String,
    /// How the Service is meant to be announced (None: not at all).
    pub mode: Option<Mode>,
    pub note: String,
    /// `reachable` or `unservable`.
    pub expect: &'static str,
    pub ips: Vec<IpAddr>,
    /// Per address, the nodes (short names) whose speaker reports announcing it.
    pub announced_by: BTreeMap<IpAddr, Vec<String>>,
    pub probes: Vec<Probe>,
    /// BGP Services: the router's routes.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub router: Vec<RouterRoute>,
    /// Why the Service has no address (the AllocationFailed event's message).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Every address is reachable (as expected for this row).
    pub reachable: bool,
    /// All expectations of the row hold.
    pub ok: bool,
    /// What does not hold yet.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}

/// A BGP session as the router sees it (`birdc show protocols`).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Session {
    pub name: String,
    /// BIRD's protocol state (`up`, `start`, …).
    pub state: String,
    /// BIRD's info column (`Established`, `Passive`, `Active`, …).
    pub info: String,
    pub established: bool,
}

/// Everything at one moment.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Snapshot {
    pub rows: Vec<Row>,
    pub sessions: Vec<Session>,
    /// Nodes (short names) whose speaker status API did not answer.
    pub speakers_down: Vec<String>,
}

impl Snapshot {
    pub fn all_ok(&self) -> bool {
        self.rows.iter().all(|r| r.ok)
    }

    /// L2 rows and the unservable row are ok (BGP rows may not be).
    pub fn l2_settled(&self) -> bool {
        self.rows
            .iter()
            .filter(|r| r.mode != Some(Mode::Bgp))
            .all(|r| r.ok)
    }
}

/// `<prefix>-node2` → `node2`.
pub fn short(c: &Cluster, ns_name: &str) -> String {
    ns_name
        .strip_prefix(&format!("{}-", c.lab.prefix()))
        .unwrap_or(ns_name)
        .to_string()
}

/// Addresses and the latest AllocationFailed message of every Service in `default`.
type ApiView = BTreeMap<String, (Vec<IpAddr>, Option<String>)>;

fn api_view(c: &Cluster) -> anyhow::Result<ApiView> {
    let client = c.client.clone();
    c.run(async move {
        let svcs: Api<Service> = Api::namespaced(client.clone(), "default");
        let events: Api<Event> = Api::namespaced(client, "default");
        let mut view = ApiView::new();
        for s in svcs.list(&ListParams::default()).await? {
            let ips = ingress_ips(&s);
            view.insert(s.metadata.name.unwrap_or_default(), (ips, None));
        }
        // Events are listed oldest first; the last AllocationFailed per Service wins.
        let mut evs = events.list(&ListParams::default()).await?.items;
        evs.sort_by_key(|e| {
            e.metadata
                .resource_version
                .clone()
                .and_then(|v| v.parse::<u64>().ok())
        });
        for e in evs {
            if e.reason.as_deref() != Some(ferrolb_api::events::ALLOCATION_FAILED) {
                continue;
            }
            let Some(name) = e.regarding.and_then(|r| r.name) else {
                continue;
            };
            if let Some(entry) = view.get_mut(&name) {
                entry.1 = e.note.or(entry.1.take());
            }
        }
        Ok::<_, kube::Error>(view)
    })?
    .map_err(|e| anyhow!("reading Services and events: {e}"))
}

/// Per address, the speakers (1-based) announcing it; and the speakers that did not answer.
fn announcements(c: &Cluster) -> (BTreeMap<IpAddr, Vec<usize>>, Vec<usize>) {
    let mut by_ip: BTreeMap<IpAddr, Vec<usize>> = BTreeMap::new();
    let mut down = Vec::new();
    for i in 1..=c.lab.nodes().len() {
        // A killed speaker's API refuses at once; do not let it hold up the table.
        if c.speaker(i).is_none_or(|p| !p.is_running()) {
            down.push(i);
            continue;
        }
        match c.get_json(c.speaker_http(i), "/api/v1/status") {
            Ok(s) => {
                for a in s["announcements"].as_array().into_iter().flatten() {
                    if let Some(ip) = a["ip"].as_str().and_then(|s| s.parse().ok()) {
                        by_ip.entry(ip).or_default().push(i);
                    }
                }
            }
            Err(_) => down.push(i),
        }
    }
    (by_ip, down)
}

/// `birdc show protocols` → the BGP sessions.
pub fn parse_protocols(out: &str) -> Vec<Session> {
    out.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            if f.get(1) != Some(&"BGP") {
                return None;
            }
            // Name Proto Table State Since… Info…: `Since` is a time (and maybe a date), so
            // skip the words that start with a digit after the state.
            let info: Vec<&str> = f
                .iter()
                .skip(4)
                .skip_while(|w| w.starts_with(|c: char| c.is_ascii_digit()))
                .copied()
                .collect();
            let info = info.join(" ");
            Some(Session {
                name: f[0].to_string(),
                state: f.get(3).copied().unwrap_or_default().to_string(),
                established: info.starts_with("Established"),
                info,
            })
        })
        .collect()
}

/// `birdc show route for IP` → protocols the route was learned from.
pub fn parse_route(out: &str) -> Vec<String> {
    let mut from: Vec<String> = out
        .lines()
        .filter_map(|l| {
            let rest = l.split_once('[')?.1;
            let proto = rest.split_whitespace().next()?;
            Some(proto.trim_end_matches(']').to_string())
        })
        .collect();
    from.sort();
    from.dedup();
    from
}

async fn probe(ip: IpAddr, from: &'static str) -> Probe {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let target = SocketAddr::new(ip, 80);
    let get = async {
        let mut s = tokio::net::TcpStream::connect(target)
            .await
            .map_err(|e| e.to_string())?;
        s.write_all(b"GET / HTTP/1.0\r\nHost: lab\r\n\r\n")
            .await
            .map_err(|e| e.to_string())?;
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).await.map_err(|e| e.to_string())?;
        let text = String::from_utf8_lossy(&buf).into_owned();
        let body = text.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
        body.split_whitespace()
            .next()
            .map(str::to_string)
            .ok_or_else(|| "empty answer".to_string())
    };
    let r = match tokio::time::timeout(PROBE_TIMEOUT, get).await {
        Ok(r) => r,
        Err(_) => Err(format!("no answer within {PROBE_TIMEOUT:?}")),
    };
    Probe {
        ip,
        from,
        reachable: r.is_ok(),
        answered_by: r.as_ref().ok().cloned(),
        error: r.err(),
    }
}

/// Probes `targets` in parallel on `rt` (inside its namespace). The calling thread only waits.
fn probe_all(rt: &tokio::runtime::Runtime, targets: Vec<IpAddr>, from: &'static str) -> Vec<Probe> {
    let handle = rt.spawn(async move {
        futures::future::join_all(targets.into_iter().map(|ip| probe(ip, from))).await
    });
    rt.block_on(handle).unwrap_or_default()
}

/// Takes one snapshot of `specs`.
pub fn snapshot(c: &Cluster, clients: &Clients, specs: &[SvcSpec]) -> anyhow::Result<Snapshot> {
    let view = api_view(c)?;
    let (by_ip, down) = announcements(c);
    let sessions = match &c.bird {
        Some(b) => parse_protocols(&b.birdc("show protocols").unwrap_or_default()),
        None => Vec::new(),
    };
    // Probes: only lab addresses, each from the client of its mode.
    let mut lan_targets = Vec::new();
    let mut up_targets = Vec::new();
    for s in specs {
        let ips = view.get(s.name).map(|v| v.0.clone()).unwrap_or_default();
        for ip in ips.into_iter().filter(|ip| is_lab_addr(*ip)) {
            match s.mode {
                Some(Mode::L2) => lan_targets.push(ip),
                Some(Mode::Bgp) => up_targets.push(ip),
                None => {}
            }
        }
    }
    lan_targets.sort();
    lan_targets.dedup();
    up_targets.sort();
    up_targets.dedup();
    let mut probes = probe_all(&clients.lan, lan_targets, "lan-client");
    if let Some(rt) = &clients.upstream {
        probes.extend(probe_all(rt, up_targets, "upstream-client"));
    }
    for p in &mut probes {
        if let Some(n) = p.answered_by.take() {
            p.answered_by = Some(short(c, &n));
        }
    }
    let node_name = |i: usize| short(c, c.lab.node(i).name());
    let mut rows = Vec::new();
    for s in specs {
        let (ips, reason) = view.get(s.name).cloned().unwrap_or_default();
        let announced_by: BTreeMap<IpAddr, Vec<String>> = ips
            .iter()
            .map(|ip| {
                let nodes = by_ip.get(ip).cloned().unwrap_or_default();
                (*ip, nodes.into_iter().map(node_name).collect())
            })
            .collect();
        let from = match s.mode {
            Some(Mode::Bgp) => "upstream-client",
            _ => "lan-client",
        };
        let row_probes: Vec<Probe> = ips
            .iter()
            .filter_map(|ip| {
                probes
                    .iter()
                    .find(|p| p.ip == *ip && p.from == from)
                    .cloned()
            })
            .collect();
        let router = match (s.mode, &c.bird) {
            (Some(Mode::Bgp), Some(b)) => ips
                .iter()
                .map(|ip| RouterRoute {
                    ip: *ip,
                    learned_from: parse_route(
                        &b.birdc(&format!("show route for {ip}")).unwrap_or_default(),
                    ),
                })
                .collect(),
            _ => Vec::new(),
        };
        let reachable = !ips.is_empty()
            && row_probes.len() == ips.len()
            && row_probes.iter().all(|p| p.reachable);
        let problem = match &s.expect {
            Expect::Reachable {
                count,
                ips: want,
                answered_by,
            } => {
                let want_node = answered_by.map(node_name);
                if ips.len() != *count {
                    Some(format!("has {} of {count} addresses", ips.len()))
                } else if !want.is_empty()
                    && want
                        .iter()
                        .any(|w| !ips.iter().any(|ip| ip.to_string() == *w))
                {
                    Some(format!("expected {}", want.join(", ")))
                } else if s.mode == Some(Mode::Bgp)
                    && router.iter().any(|r| r.learned_from.is_empty())
                {
                    Some("no route at router".into())
                } else if !reachable {
                    Some(format!("{from} does not reach it"))
                } else if let Some((p, owners)) = (s.mode == Some(Mode::L2))
                    .then(|| {
                        row_probes.iter().find_map(|p| {
                            let owners = announced_by.get(&p.ip)?;
                            let by = p.answered_by.as_ref()?;
                            (!owners.contains(by)).then(|| (p, owners.join(",")))
                        })
                    })
                    .flatten()
                {
                    // In layer 2 the client must reach the node that answers ARP/NDP; another
                    // node means the client's neighbour entry points at a node that claimed
                    // the address at some point and the owner did not reclaim it.
                    Some(format!(
                        "{} answered by {}, announced by {} (client's neighbour entry is stale)",
                        p.ip,
                        p.answered_by.as_deref().unwrap_or("?"),
                        if owners.is_empty() { "nobody" } else { &owners }
                    ))
                } else {
                    want_node
                        .filter(|w| row_probes.iter().any(|p| p.answered_by.as_ref() != Some(w)))
                        .map(|w| format!("answered by another node than {w}"))
                }
            }
            Expect::Unservable => {
                if !ips.is_empty() {
                    Some("got an address".into())
                } else if reason.is_none() {
                    Some("no AllocationFailed event yet".into())
                } else {
                    None
                }
            }
        };
        rows.push(Row {
            name: s.name.to_string(),
            namespace: "default".into(),
            mode: s.mode,
            note: s.note.to_string(),
            expect: match s.expect {
                Expect::Reachable { .. } => "reachable",
                Expect::Unservable => "unservable",
            },
            ips,
            announced_by,
            probes: row_probes,
            router,
            reason,
            reachable,
            ok: problem.is_none(),
            problem,
        });
    }
    Ok(Snapshot {
        rows,
        sessions,
        speakers_down: down.into_iter().map(node_name).collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_bird_protocols_and_routes() {
        let out = "BIRD 2.0.12 ready.\n\
Name       Proto      Table      State  Since         Info\n\
device1    Device     ---        up     10:00:00.000  \n\
node1v4    BGP        ---        up     10:00:01.123  Established   \n\
node1v6    BGP        ---        start  10:00:00.000  Passive\n";
        let s = parse_protocols(out);
        assert_eq!(s.len(), 2);
        assert!(s[0].established);
        assert_eq!(s[1].info, "Passive");
        assert_eq!(s[1].state, "start");
        let r = "Table master4:\n10.200.100.0/32      unicast [node1v4 10:00:02.000] * (100) [AS64512i]\n\
\tvia 10.200.0.11 on eth0\n                     unicast [node2v4 10:00:02.000] (100) [AS64512i]\n";
        assert_eq!(parse_route(r), vec!["node1v4", "node2v4"]);
        assert!(parse_route("Network not found\n").is_empty());
    }
}
