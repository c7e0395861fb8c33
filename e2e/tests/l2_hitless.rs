//! Layer 2 without a gap: make-before-break for planned moves and the hand-over of a speaker
//! restarting in place, measured from a LAN client that sends an ARP request for the address
//! every 10 ms and records who answers (`ferrolb_e2e::arp_probe`). Needs root (CI runs it as root).
//!
//! - a failback (the owner's speaker crashed; its restart takes the address back from the
//!   interim owner): no request unanswered, one MAC change, the both-answering window printed;
//! - a restart in place (SIGTERM, then start): no request unanswered and no MAC change;
//! - a drain (the exclude label): no request unanswered and one MAC change;
//! - `--hitless-operations=false`: the address moves at SIGTERM, as with MetalLB.

mod common;

use common::*;
use ferrolb_e2e::arp_probe::{ArpProber, ProbeRun};
use ferrolb_e2e::bench::rollout::bpffs::Bpffs;
use ferrolb_e2e::cluster::{Cluster, ClusterOptions};
use ferrolb_e2e::lab;
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

const L2_EXAMPLE: &str = include_str!("../../deploy/examples/l2.yaml");
const PROBE_EVERY: Duration = Duration::from_millis(10);
const EXCLUDE: &str = "node.kubernetes.io/exclude-from-external-load-balancers";

/// The bpffs comes first: bindings of one `let` drop in reverse order, so the lab (and its
/// speakers, which may still create their pin directories while stopping) goes before it.
fn cluster(extra: &[&str]) -> (Bpffs, Cluster) {
    let bpffs = Bpffs::mount().expect("bpffs");
    let mut speaker_args = vec![
        "--l2-handover-dir".to_string(),
        bpffs.dir().display().to_string(),
    ];
    speaker_args.extend(extra.iter().map(|s| s.to_string()));
    let c = Cluster::start(ClusterOptions {
        speaker_args,
        ..ClusterOptions::default()
    })
    .expect("cluster");
    (bpffs, c)
}

/// The L2 example plus one IPv4 Service; its address and owner (1-based).
fn one_service(c: &Cluster, name: &str) -> (Ipv4Addr, usize) {
    c.apply_yaml(L2_EXAMPLE).expect("apply l2 example");
    create_service(c, &lb_service(name, &[]));
    let ip = wait_ips(c, name, 1, Duration::from_secs(20))[0];
    let owner = wait_single_owner(c, ip, Duration::from_secs(20));
    match ip {
        IpAddr::V4(v4) => (v4, owner),
        IpAddr::V6(v6) => panic!("expected IPv4, got {v6}"),
    }
}

fn prober(c: &Cluster, target: Ipv4Addr) -> ArpProber {
    let client = c.lab.lan_client();
    let mac = client.ns().mac(client.iface()).expect("client mac");
    ArpProber::start(
        client.ns().path(),
        client.iface(),
        &mac.to_lowercase(),
        client.v4(),
        target,
        PROBE_EVERY,
    )
    .expect("ARP prober")
}

/// The old owner's own measure of each hand-over (its log line: how long it answered after
/// losing the address, and what ended it).
fn print_handovers(c: &Cluster, node: usize) {
    if let Some(s) = c.speaker(node) {
        for line in s.log().lines().filter(|l| l.contains("handed over")) {
            println!("node{node}: {line}");
        }
    }
}

fn report(what: &str, run: &ProbeRun) {
    println!(
        "{what}: {} requests, {} unanswered, slowest answer {:?}, {} answered by two MACs, MACs in turn {:?}",
        run.probes.len(),
        run.unanswered().len(),
        run.slowest_answer(),
        run.answered_twice(),
        run.sole_macs()
    );
}

/// The lines of every running speaker's log that contain `needle`, each after its node.
fn speaker_log_lines(c: &Cluster, needle: &str) -> Vec<String> {
    (1..=3)
        .filter_map(|i| Some((i, c.speaker(i)?.log())))
        .flat_map(|(i, log)| {
            log.lines()
                .filter(|l| l.contains(needle))
                .map(|l| format!("node{i}: {l}"))
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Milliseconds from `origin` to `t`, negative when `t` is earlier.
fn signed_ms(t: Instant, origin: Instant) -> f64 {
    t.saturating_duration_since(origin).as_secs_f64() * 1e3
        - origin.saturating_duration_since(t).as_secs_f64() * 1e3
}

/// Waits until node `i` alone announces `ip`.
fn wait_owner(c: &Cluster, ip: Ipv4Addr, i: usize) {
    eventually(
        &format!("node{i} alone announces {ip}"),
        Duration::from_secs(15),
        || (c.announcing_nodes(IpAddr::V4(ip)) == [i]).then_some(()),
    );
}

#[test]
fn failback_after_a_restart_is_gapless() {
    if !lab::tools_or_skip("l2_hitless", &["mount", "umount"]) {
        return;
    }
    let (_bpffs, mut c) = cluster(&[]);
    let (ip, owner) = one_service(&c, "failback");
    // A crash: the address fails over (that gap is a failover's, not this test's concern).
    let speaker = c.speaker(owner).expect("speaker");
    speaker.kill().expect("SIGKILL");
    let _ = speaker.wait_timeout(Duration::from_secs(5));
    c.drop_speaker(owner);
    let interim = eventually(
        "another node owns the address",
        Duration::from_secs(10),
        || {
            let o = c.announcing_nodes(IpAddr::V4(ip));
            (o.len() == 1 && o[0] != owner).then(|| o[0])
        },
    );
    std::thread::sleep(Duration::from_secs(1));
    let p = prober(&c, ip);
    std::thread::sleep(Duration::from_millis(500));
    c.start_speaker(owner).expect("restart speaker");
    wait_owner(&c, ip, owner);
    std::thread::sleep(Duration::from_secs(2));
    let run = p.stop();
    report("failback", &run);
    let (old, new) = (node_mac(&c, interim), node_mac(&c, owner));
    let both = run.both_answering(&old, &new);
    println!(
        "failback node{interim} -> node{owner}: both answered for {both:?} as the client saw it"
    );
    print_handovers(&c, interim);
    assert!(
        run.probes.len() >= 200,
        "too few requests: {}",
        run.probes.len()
    );
    assert!(
        run.unanswered().is_empty(),
        "{} requests unanswered during the failback, first at {:?} after the start",
        run.unanswered().len(),
        run.unanswered()[0].at - run.probes[0].at
    );
    assert_eq!(run.sole_macs(), [old, new], "exactly one MAC change");
    assert!(
        both <= ferrolb_speaker_core::layer2::handover::HANDOVER_WINDOW + PROBE_EVERY,
        "the both-answering window {both:?} exceeds the hand-over window"
    );
}

#[test]
fn a_restart_in_place_keeps_answering_from_the_same_mac() {
    if !lab::tools_or_skip("l2_hitless", &["mount", "umount"]) {
        return;
    }
    if !ferrolb_speaker::layer2::kernel_responder::kernel_has_tcx() {
        // Without the in-kernel responder a restart hands the address to another node
        // (make-before-break), which the drain test covers.
        eprintln!("SKIPPED l2_hitless restart: Linux older than 6.6 has no tcx");
        assert!(
            std::env::var_os("CI").is_none(),
            "CI needs Linux 6.6 or later for this test"
        );
        return;
    }
    let (bpffs, mut c) = cluster(&[]);
    let (ip, owner) = one_service(&c, "restart");
    let mac = node_mac(&c, owner);
    std::thread::sleep(Duration::from_secs(1));
    let p = prober(&c, ip);
    std::thread::sleep(Duration::from_millis(500));
    let speaker = c.speaker(owner).expect("speaker");
    let sigterm = Instant::now();
    speaker.terminate().expect("SIGTERM");
    speaker
        .wait_timeout(Duration::from_secs(10))
        .expect("speaker exits on SIGTERM");
    let exited = Instant::now();
    let node = c.lab.node(owner).name().to_string();
    let pins: Vec<_> = std::fs::read_dir(bpffs.dir().join(&node))
        .map(|d| d.filter_map(Result::ok).map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(
        !pins.is_empty(),
        "the departing speaker pinned no responder"
    );
    // The others hold the address while no speaker runs on its node.
    std::thread::sleep(Duration::from_secs(1));
    for other in (1..=3).filter(|i| *i != owner) {
        assert!(
            !c.announces(other, IpAddr::V4(ip)),
            "node{other} took the address during the restart"
        );
    }
    let started = Instant::now();
    c.start_speaker(owner).expect("restart speaker");
    wait_owner(&c, ip, owner);
    eventually(
        "the predecessor's pins are removed",
        Duration::from_secs(10),
        || {
            std::fs::read_dir(bpffs.dir().join(&node))
                .map(|d| d.count() == 0)
                .unwrap_or(true)
                .then_some(())
        },
    );
    let unpinned = Instant::now();
    std::thread::sleep(Duration::from_secs(2));
    let run = p.stop();
    report("restart in place", &run);
    let ms = |t: Instant| signed_ms(t, sigterm);
    let timeline = format!(
        "ms from SIGTERM: exited {:.1}, next speaker started {:.1}, pins seen removed {:.1}",
        ms(exited),
        ms(started),
        ms(unpinned)
    );
    println!("restart in place, {timeline}");
    assert!(
        run.probes.len() >= 300,
        "too few requests: {}",
        run.probes.len()
    );
    assert!(
        run.unanswered().is_empty(),
        "{} requests unanswered through the restart, at {:?} ms from SIGTERM ({timeline})",
        run.unanswered().len(),
        run.unanswered()
            .iter()
            .map(|p| format!("{:.1}", ms(p.at)))
            .collect::<Vec<_>>()
    );
    assert_eq!(run.sole_macs(), std::slice::from_ref(&mac), "no MAC change");
    let twice: Vec<String> = run
        .probes
        .iter()
        .filter(|p| p.replies.iter().any(|(_, m)| *m != mac))
        .map(|p| {
            let replies: Vec<String> = p
                .replies
                .iter()
                .map(|(t, m)| format!("{m} at {:.3}", ms(*t)))
                .collect();
            format!("request at {:.3}: {}", ms(p.at), replies.join(", "))
        })
        .collect();
    assert!(
        twice.is_empty(),
        "answers from a MAC other than {mac} ({}): {twice:#?} ({timeline}; node MACs {:?}; \
         heartbeat presumptions: {:#?})",
        twice.len(),
        (1..=3).map(|i| node_mac(&c, i)).collect::<Vec<_>>(),
        speaker_log_lines(&c, "presum")
    );
    assert_eq!(run.answered_twice(), 0);
    let others: Vec<_> = run.gratuitous.iter().filter(|(_, m)| *m != mac).collect();
    assert!(
        others.is_empty(),
        "gratuitous ARP from another node: {others:?}"
    );
}

#[test]
fn a_drain_hands_over_without_a_gap() {
    if !lab::tools_or_skip("l2_hitless", &["mount", "umount"]) {
        return;
    }
    let (_bpffs, c) = cluster(&[]);
    let (ip, owner) = one_service(&c, "drain");
    std::thread::sleep(Duration::from_secs(1));
    let p = prober(&c, ip);
    std::thread::sleep(Duration::from_millis(500));
    label_node(&c, c.lab.node(owner).name(), EXCLUDE, Some(""));
    let next = eventually(
        "another node owns the address",
        Duration::from_secs(10),
        || {
            let o = c.announcing_nodes(IpAddr::V4(ip));
            (o.len() == 1 && o[0] != owner).then(|| o[0])
        },
    );
    std::thread::sleep(Duration::from_secs(2));
    let run = p.stop();
    report("drain", &run);
    let (old, new) = (node_mac(&c, owner), node_mac(&c, next));
    println!(
        "drain node{owner} -> node{next}: both answered for {:?} as the client saw it",
        run.both_answering(&old, &new)
    );
    print_handovers(&c, owner);
    assert!(
        run.probes.len() >= 200,
        "too few requests: {}",
        run.probes.len()
    );
    assert!(
        run.unanswered().is_empty(),
        "{} requests unanswered during the drain",
        run.unanswered().len()
    );
    assert_eq!(run.sole_macs(), [old, new], "exactly one MAC change");
}

#[test]
fn without_hitless_operations_the_address_moves_at_sigterm() {
    if !lab::tools_or_skip("l2_hitless", &["mount", "umount"]) {
        return;
    }
    let (bpffs, mut c) = cluster(&["--hitless-operations=false"]);
    let (ip, owner) = one_service(&c, "metallb-like");
    std::thread::sleep(Duration::from_secs(1));
    let p = prober(&c, ip);
    std::thread::sleep(Duration::from_millis(300));
    let speaker = c.speaker(owner).expect("speaker");
    speaker.terminate().expect("SIGTERM");
    speaker
        .wait_timeout(Duration::from_secs(10))
        .expect("speaker exits on SIGTERM");
    let node = c.lab.node(owner).name().to_string();
    assert!(
        std::fs::read_dir(bpffs.dir().join(&node)).is_err(),
        "a speaker without hitless operations pinned its responder"
    );
    let next = eventually(
        "another node owns the address",
        Duration::from_secs(5),
        || {
            let o = c.announcing_nodes(IpAddr::V4(ip));
            (o.len() == 1 && o[0] != owner).then(|| o[0])
        },
    );
    std::thread::sleep(Duration::from_secs(1));
    let run = p.stop();
    report("hitless operations off, SIGTERM", &run);
    let (old, new) = (node_mac(&c, owner), node_mac(&c, next));
    assert_eq!(run.sole_macs(), [old, new], "the address moved at SIGTERM");
    c.start_speaker(owner).expect("restart speaker");
}
