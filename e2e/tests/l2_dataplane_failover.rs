//! Data-plane-aware layer 2 failover: nodes with two networks, a management network carrying
//! the API server, the Nodes' InternalIP and the speakers' membership, and the service LAN
//! carrying only the announcements. The owner's LAN interface loses carrier (its veth peer,
//! the switch port, goes down: what a pulled cable or a dead switch port looks like from the
//! node) while its speaker stays alive over the management network; the address must move to
//! a node whose interface is up, within about a takeover time, and come back make-before-break
//! when carrier returns. A LAN client sends an ARP request for the address every 10 ms and
//! records who answers (`ferrolb_e2e::arp_probe`). Five carrier cycles; each asserts the move within
//! [`MOVE_BOUND`] (the figures are printed), that the old owner never answers while down, that
//! the other speakers keep it alive in the membership, its status (`interfaces`, `noCarrier`),
//! no request unanswered from carrier's return to the end of the hand-over window, and only
//! the owner answering after; then the `NoCarrier` event, the log line and the carrier gauge.
//! Needs root (CI runs it as root).

mod common;

use common::*;
use ferrolb_e2e::arp_probe::{ArpProber, Probe, ProbeRun};
use ferrolb_e2e::cluster::{Cluster, ClusterOptions};
use ferrolb_e2e::lab::{self, Network};
use ferrolb_speaker_core::layer2::handover::HANDOVER_WINDOW;
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, ListParams};
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

const PROBE_EVERY: Duration = Duration::from_millis(10);
/// Carrier cycles measured in one run.
const TRIALS: usize = 5;
/// Upper bound of a move, from the switch port going down to the new owner's first
/// gratuitous ARP. Expected: the interface watcher's 30 ms debounce, one datagram over the
/// management network and a pass, tens of ms; the bound leaves room for a loaded machine.
const MOVE_BOUND: Duration = Duration::from_millis(500);

/// An IPv4 pool on the LAN, announced only on `eth0` (the LAN interface of every node: the
/// automatic choice would announce on the management interface too, which keeps carrier).
const CONFIG: &str = r#"
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
  ipAddressPools: [lan-pool]
  interfaces: [eth0]
"#;

/// The MAC of node `i`'s LAN interface, lower case.
fn lan_mac(c: &Cluster, i: usize) -> String {
    let h = c.lab.node(i);
    let lan = h.on(Network::Lan).expect("LAN attachment");
    h.mac(&lan.iface).expect("mac").to_lowercase()
}

/// Sets the switch port of node `i`'s LAN interface up or down: the node's `eth0` gains or
/// loses carrier while staying administratively up.
fn set_carrier(c: &Cluster, i: usize, up: bool) {
    let port = c
        .lab
        .node(i)
        .on(Network::Lan)
        .expect("LAN attachment")
        .switch_port
        .clone();
    c.lab
        .switch()
        .ip(["link", "set", &port, if up { "up" } else { "down" }])
        .expect("switch port");
}

/// The speaker status of node `i`.
fn status(c: &Cluster, i: usize) -> serde_json::Value {
    c.get_json(c.speaker_http(i), "/api/v1/status")
        .expect("speaker status")
}

/// Whether node `i`'s speaker sees node `of` alive in the membership.
fn sees_alive(c: &Cluster, i: usize, of: usize) -> bool {
    let name = c.lab.node(of).name().to_string();
    status(c, i)["membership"]["members"]
        .as_array()
        .is_some_and(|m| {
            m.iter()
                .any(|x| x["node"].as_str() == Some(name.as_str()) && x["alive"] == true)
        })
}

/// Node `i`'s own carrier of `eth0`, as its status API reports it.
fn reported_carrier(c: &Cluster, i: usize) -> Option<bool> {
    status(c, i)["interfaces"]
        .as_array()?
        .iter()
        .find(|x| x["name"] == "eth0")?["carrier"]
        .as_bool()
}

/// Waits until node `i` alone announces `ip`.
fn wait_owner(c: &Cluster, ip: Ipv4Addr, i: usize) {
    eventually(
        &format!("node{i} alone announces {ip}"),
        Duration::from_secs(15),
        || (c.announcing_nodes(IpAddr::V4(ip)) == [i]).then_some(()),
    );
}

/// First gratuitous ARP from `mac` at or after `t`.
fn first_garp_after(run: &ProbeRun, mac: &str, t: Instant) -> Option<Instant> {
    run.gratuitous
        .iter()
        .filter(|(at, m)| m == mac && *at >= t)
        .map(|(at, _)| *at)
        .min()
}

/// First reply from `mac` at or after `t`.
fn first_reply_after(run: &ProbeRun, mac: &str, t: Instant) -> Option<Instant> {
    run.probes
        .iter()
        .flat_map(|p| &p.replies)
        .filter(|(at, m)| m == mac && *at >= t)
        .map(|(at, _)| *at)
        .min()
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// One carrier cycle's measures.
struct Trial {
    /// Port down → the new owner's first gratuitous ARP.
    moved: Duration,
    /// Port down → the first request answered by the new owner.
    answered: Duration,
    /// Requests unanswered between port down and the new owner answering.
    gap: usize,
    /// Port up → the old owner's first gratuitous ARP (it is the owner again).
    back: Duration,
}

#[test]
fn carrier_loss_moves_the_address_while_membership_stays_up() {
    if !lab::tools_or_skip("l2_dataplane_failover", &["ip"]) {
        return;
    }
    let c = Cluster::start(ClusterOptions {
        management_network: true,
        ..ClusterOptions::default()
    })
    .expect("cluster");
    // The lab's plan: InternalIPs (and so the membership) on the management network.
    for n in c.lab.nodes() {
        assert_eq!(n.iface(), lab::topology::MGMT_IFACE);
        assert!(lab::topology::MGMT_V4.contains(&n.v4()), "{}", n.v4());
    }
    c.apply_yaml(CONFIG).expect("apply configuration");
    create_service(&c, &lb_service("dataplane", &[]));
    let ip = match wait_ips(&c, "dataplane", 1, Duration::from_secs(20))[0] {
        IpAddr::V4(v4) => v4,
        IpAddr::V6(v6) => panic!("expected IPv4, got {v6}"),
    };
    let owner = wait_single_owner(&c, IpAddr::V4(ip), Duration::from_secs(20));
    assert_eq!(reported_carrier(&c, owner), Some(true));
    let old_mac = lan_mac(&c, owner);
    println!(
        "owner node{owner} ({old_mac}) announces {ip}; membership over {}",
        lab::topology::MGMT_V4
    );

    let client = c.lab.lan_client();
    let client_mac = client.ns().mac(client.iface()).expect("client mac");
    let mut trials = Vec::new();
    for trial in 1..=TRIALS {
        std::thread::sleep(Duration::from_secs(1));
        let p = ArpProber::start(
            client.ns().path(),
            client.iface(),
            &client_mac.to_lowercase(),
            client.v4(),
            ip,
            PROBE_EVERY,
        )
        .expect("ARP prober");
        std::thread::sleep(Duration::from_millis(500));

        let down = Instant::now();
        set_carrier(&c, owner, false);
        let down_done = Instant::now();
        let interim = eventually(
            "another node owns the address",
            Duration::from_secs(10),
            || {
                let o = c.announcing_nodes(IpAddr::V4(ip));
                (o.len() == 1 && o[0] != owner).then(|| o[0])
            },
        );
        let new_mac = lan_mac(&c, interim);
        // The node is alive: every other speaker still sees it in the membership, and it
        // reports its lost carrier and why it does not announce.
        for other in (1..=3).filter(|i| *i != owner) {
            assert!(
                sees_alive(&c, other, owner),
                "node{other} declared node{owner} dead although only its LAN lost carrier"
            );
        }
        assert_eq!(reported_carrier(&c, owner), Some(false));
        let why = status(&c, owner)["noCarrier"].clone();
        assert!(
            why.as_array()
                .is_some_and(|a| a.iter().any(|x| x["ip"] == ip.to_string()
                    && x["message"] == "interface eth0 has no carrier")),
            "node{owner}'s status does not say why it does not announce {ip}: {why}"
        );
        std::thread::sleep(Duration::from_millis(1500));
        for other in (1..=3).filter(|i| *i != owner) {
            assert!(sees_alive(&c, other, owner), "node{owner} declared dead");
        }

        let up = Instant::now();
        set_carrier(&c, owner, true);
        wait_owner(&c, ip, owner);
        std::thread::sleep(Duration::from_millis(1500));
        let run = p.stop();

        // While the port was down the old owner could not answer; from its return on, the
        // address never went unanswered (the interim owner answers until it sees the
        // owner's gratuitous ARP).
        let old_while_down = run
            .probes
            .iter()
            .flat_map(|p| &p.replies)
            .filter(|(at, m)| *m == old_mac && *at > down_done && *at < up)
            .count();
        assert_eq!(old_while_down, 0, "the old owner answered without carrier");
        let moved = first_garp_after(&run, &new_mac, down)
            .expect("the new owner announced the address")
            .duration_since(down);
        let answered = first_reply_after(&run, &new_mac, down)
            .expect("the new owner answered")
            .duration_since(down);
        let gap = run
            .probes
            .iter()
            .filter(|p| p.at >= down && p.at < down + answered)
            .filter(|p| !p.answered_within(PROBE_EVERY))
            .count();
        let back = first_garp_after(&run, &old_mac, up)
            .expect("the owner announced the address again")
            .duration_since(up);
        // The failback: from carrier back until the hand-over window has surely ended (the
        // interim owner answers until it sees the owner's gratuitous ARP, at most that long).
        let failback_end = up + back + HANDOVER_WINDOW + Duration::from_millis(100);
        let unanswered_after_up: Vec<&Probe> = run
            .probes
            .iter()
            .filter(|p| p.at >= up && !p.answered_within(PROBE_EVERY))
            .collect();
        let in_failback: Vec<f64> = unanswered_after_up
            .iter()
            .filter(|p| p.at < failback_end)
            .map(|p| ms(p.at.saturating_duration_since(up)))
            .collect();
        println!(
            "trial {trial}: node{owner} -> node{interim}: gratuitous ARP after {:.1} ms, first answer after {:.1} ms, {gap} requests unanswered; carrier back -> node{owner} announces after {:.1} ms, {} unanswered during the failback, {} after; MACs in turn {:?}",
            ms(moved),
            ms(answered),
            ms(back),
            in_failback.len(),
            unanswered_after_up.len() - in_failback.len(),
            run.sole_macs()
        );
        assert!(
            moved <= MOVE_BOUND,
            "trial {trial}: the address moved after {moved:?} (bound {MOVE_BOUND:?})"
        );
        assert!(
            in_failback.is_empty(),
            "trial {trial}: requests unanswered during the failback, at {in_failback:?} ms after carrier returned"
        );
        // Then only the owner answers. (Whether each reply comes within the 10 ms interval
        // in steady state is the responder's business, not this test's: on a loaded machine
        // its lease lapses now and then and the slower userspace socket answers.)
        let strangers: Vec<&String> = run
            .probes
            .iter()
            .filter(|p| p.at >= failback_end)
            .flat_map(|p| &p.replies)
            .map(|(_, m)| m)
            .filter(|m| **m != old_mac)
            .collect();
        assert!(
            strangers.is_empty(),
            "trial {trial}: after the failback other MACs answered: {strangers:?}"
        );
        assert_eq!(
            run.sole_macs(),
            [old_mac.clone(), new_mac, old_mac.clone()],
            "trial {trial}: owner, interim owner, owner"
        );
        trials.push(Trial {
            moved,
            answered,
            gap,
            back,
        });
    }

    // Nobody was ever declared down: the membership ran over the management network.
    let downs: Vec<String> = (1..=3)
        .filter_map(|i| Some((i, c.speaker(i)?.log())))
        .flat_map(|(i, log)| {
            log.lines()
                .filter(|l| l.contains("member down"))
                .map(|l| format!("node{i}: {l}"))
                .collect::<Vec<_>>()
        })
        .collect();
    assert!(
        downs.is_empty(),
        "membership declared a node down: {downs:#?}"
    );
    let logged = c
        .speaker(owner)
        .map(|s| s.log())
        .unwrap_or_default()
        .lines()
        .any(|l| l.contains("interface eth0 has no carrier"));
    assert!(logged, "node{owner} did not log its lost carrier");

    // A Warning event on the Service says why its owner gave the address up.
    let api: Api<Event> = Api::namespaced(c.client.clone(), "default");
    let owner_name = c.lab.node(owner).name().to_string();
    let notes = eventually("a NoCarrier event", Duration::from_secs(10), || {
        let api = api.clone();
        let evs = c
            .run(async move { api.list(&ListParams::default()).await })
            .ok()?
            .ok()?;
        let notes: Vec<String> = evs
            .items
            .into_iter()
            .filter(|e| e.reason.as_deref() == Some("NoCarrier"))
            .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some("dataplane"))
            .filter_map(|e| e.note)
            .collect();
        (!notes.is_empty()).then_some(notes)
    });
    assert!(
        notes.iter().all(|n| n.contains(&owner_name)
            && n.contains(&ip.to_string())
            && n.contains("interface eth0 has no carrier")),
        "{notes:?}"
    );
    // The carrier gauge shows eth0 up again.
    let (code, metrics) = c
        .http_get(c.speaker_http(owner), "/metrics")
        .expect("metrics");
    assert_eq!(code, 200);
    assert!(
        metrics
            .lines()
            .any(|l| l == "ferrolb_speaker_l2_interface_carrier{interface=\"eth0\"} 1"),
        "{metrics}"
    );

    let mut moved: Vec<f64> = trials.iter().map(|t| ms(t.moved)).collect();
    moved.sort_by(f64::total_cmp);
    let answered: Vec<f64> = trials.iter().map(|t| ms(t.answered)).collect();
    let back: Vec<f64> = trials.iter().map(|t| ms(t.back)).collect();
    let gaps: Vec<usize> = trials.iter().map(|t| t.gap).collect();
    println!(
        "{TRIALS} trials: move (port down -> new owner's gratuitous ARP) min {:.1} / median {:.1} / max {:.1} ms; first answer {answered:.1?} ms; unanswered requests {gaps:?}; failback announce {back:.1?} ms",
        moved[0],
        moved[moved.len() / 2],
        moved[moved.len() - 1],
    );
}
