//! Layer 2 runtime against real tools, in network namespaces (needs root).
//!
//! Namespace "spk" runs the announcer in-process (a thread that entered the namespace with its
//! own current-thread runtime); namespace "cli" is a client on the same veth link (or, for the
//! bridge test, on the links under a bridge of "spk"). The VIPs are configured
//! nowhere, so only our sockets can answer for them.

mod common;

use common::ensure_tools;
use ferrolb_api::status::Announcement;
use ferrolb_lab::{Netns, Scratch, root_or_skip};
use ferrolb_speaker::layer2::kernel_responder::kernel_has_tcx;
use ferrolb_speaker::layer2::{
    Announcer, AnnouncerConfig, DesiredIp, L2CounterValues, L2Responder,
};
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::mpsc as std_mpsc;
use std::time::Duration;
use tokio::sync::mpsc;

const VIP4: &str = "10.200.50.100";
const VIP6: &str = "fd00:200:0:50::100";

struct State {
    snapshot: Vec<Announcement>,
    counters: L2CounterValues,
    groups: BTreeMap<String, Vec<Ipv6Addr>>,
    kernel_responder: Vec<String>,
}

enum Cmd {
    Set(Vec<DesiredIp>, std_mpsc::Sender<()>),
    Get(std_mpsc::Sender<State>),
}

/// The announcer running on its own thread inside a namespace.
struct Speaker {
    tx: Option<mpsc::UnboundedSender<Cmd>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Speaker {
    fn start(ns: &Netns) -> Self {
        Self::start_with(ns, L2Responder::Auto)
    }

    fn start_with(ns: &Netns, responder: L2Responder) -> Self {
        let (tx, mut rx) = mpsc::unbounded_channel::<Cmd>();
        let (ready_tx, ready_rx) = std_mpsc::channel();
        let thread = ns
            .spawn_thread(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("runtime");
                rt.block_on(async move {
                    let config = AnnouncerConfig {
                        responder,
                        ..AnnouncerConfig::default()
                    };
                    let announcer = Announcer::start(config).await.expect("announcer starts");
                    let _ = ready_tx.send(());
                    while let Some(cmd) = rx.recv().await {
                        match cmd {
                            Cmd::Set(desired, done) => {
                                announcer.set_desired(desired);
                                let _ = done.send(());
                            }
                            Cmd::Get(reply) => {
                                let _ = reply.send(State {
                                    snapshot: announcer.snapshot(),
                                    counters: announcer.counters(),
                                    groups: announcer.joined_groups(),
                                    kernel_responder: announcer.kernel_responder_interfaces(),
                                });
                            }
                        }
                    }
                });
            })
            .expect("entering the namespace");
        ready_rx
            .recv_timeout(Duration::from_secs(10))
            .expect("announcer ready");
        Speaker {
            tx: Some(tx),
            thread: Some(thread),
        }
    }

    fn set(&self, desired: Vec<DesiredIp>) {
        let (done, wait) = std_mpsc::channel();
        self.tx
            .as_ref()
            .expect("running")
            .send(Cmd::Set(desired, done))
            .expect("speaker alive");
        wait.recv_timeout(Duration::from_secs(5)).expect("applied");
    }

    fn state(&self) -> State {
        let (reply, wait) = std_mpsc::channel();
        self.tx
            .as_ref()
            .expect("running")
            .send(Cmd::Get(reply))
            .expect("speaker alive");
        wait.recv_timeout(Duration::from_secs(5)).expect("state")
    }
}

impl Drop for Speaker {
    fn drop(&mut self) {
        // Closing the channel ends the loop; the announcer closes its sockets on drop.
        self.tx.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn desired(ip: &str, interfaces: &[&str]) -> DesiredIp {
    DesiredIp {
        ip: ip.parse::<IpAddr>().expect("ip"),
        interfaces: interfaces.iter().map(|s| s.to_string()).collect(),
        services: vec!["default/web".into()],
    }
}

/// The MACs in arping's reply lines ("42 bytes from 02:..:.. (10.200.50.100): index=0 …").
fn arping_reply_macs(out: &str) -> Vec<String> {
    out.lines()
        .filter(|l| l.contains("bytes from"))
        .filter_map(|l| l.split_whitespace().nth(3))
        .map(str::to_lowercase)
        .collect()
}

fn ndisc6_mac(out: &str) -> Option<String> {
    out.lines()
        .find(|l| l.contains("Target link-layer address"))
        .and_then(|l| {
            l.split(':')
                .skip(1)
                .collect::<Vec<_>>()
                .join(":")
                .split_whitespace()
                .next()
                .map(str::to_lowercase)
        })
}

/// Two namespaces on one veth link, DAD off so link-local addresses are usable at once. The
/// namespaces live as long as the returned lab.
fn lab() -> (Scratch, Netns, Netns) {
    let lab = Scratch::new().expect("lab");
    let spk = lab.netns("spk").expect("namespace spk");
    let cli = lab.netns("cli").expect("namespace cli");
    for ns in [&spk, &cli] {
        ns.sysctl("net.ipv6.conf.all.accept_dad", "0")
            .expect("sysctl");
        ns.sysctl("net.ipv6.conf.default.accept_dad", "0")
            .expect("sysctl");
    }
    lab.veth(&spk, "lan0", &cli, "lan0c").expect("veth");
    spk.add_addr("lan0", "10.200.50.1/24").expect("address");
    spk.add_addr("lan0", "fd00:200:0:50::1/64")
        .expect("address");
    cli.add_addr("lan0c", "10.200.50.2/24").expect("address");
    cli.add_addr("lan0c", "fd00:200:0:50::2/64")
        .expect("address");
    // Learn gratuitous ARP, so the neighbour table shows our announcement.
    cli.sysctl("net.ipv4.conf.lan0c.arp_accept", "1")
        .expect("sysctl");
    (lab, spk, cli)
}

#[test]
fn arp_and_ndp_are_answered_only_while_owned() {
    if !root_or_skip("arp_and_ndp_are_answered_only_while_owned") {
        return;
    }
    // As root on Linux ≥ 6.6 the automatic choice must be the kernel responder; anything else
    // is a regression, not a fallback to accept silently.
    let kernel = kernel_has_tcx();
    println!("kernel responder expected: {kernel}");
    answered_only_while_owned(L2Responder::Auto, kernel);
}

#[test]
fn arp_and_ndp_are_answered_only_while_owned_from_userspace() {
    if !root_or_skip("arp_and_ndp_are_answered_only_while_owned_from_userspace") {
        return;
    }
    answered_only_while_owned(L2Responder::Socket, false);
}

fn answered_only_while_owned(responder: L2Responder, in_kernel: bool) {
    ensure_tools(&["arping", "ndisc6"], &["arping", "ndisc6"]);
    let (_lab, spk, cli) = lab();
    let our_mac = spk.mac("lan0").expect("MAC");
    // Let the link-local addresses settle.
    std::thread::sleep(Duration::from_millis(300));

    let speaker = Speaker::start_with(&spk, responder);
    speaker.set(vec![desired(VIP4, &[]), desired(VIP6, &["lan0"])]);
    let expected: &[&str] = if in_kernel { &["lan0"] } else { &[] };
    assert_eq!(speaker.state().kernel_responder, expected, "{responder:?}");

    // Gratuitous ARP reached the client's neighbour table.
    std::thread::sleep(Duration::from_millis(300));
    let neigh = cli.exec_ok(["ip", "neigh", "show", VIP4]).expect("command");
    let neigh = neigh.stdout.to_lowercase();
    println!("client neighbour entry after gratuitous ARP: {neigh}");
    assert!(neigh.contains(&our_mac), "GARP learnt: {neigh}");

    // ARP: three requests, three replies, all from our MAC.
    let out = cli
        .exec(["arping", "-c", "3", "-i", "lan0c", VIP4])
        .expect("command");
    let text = out.stdout;
    println!("arping:\n{text}");
    let macs = arping_reply_macs(&text);
    assert_eq!(macs.len(), 3, "three replies: {text}");
    assert!(
        macs.iter().all(|m| *m == our_mac),
        "replies from {macs:?}, ours {our_mac}"
    );

    // NDP: ndisc6 gets our MAC. (ndisc6 only accepts the answer for a global target from a
    // non-link-local source, which is why NAs come from the VIP itself.)
    let out = cli
        .exec(["ndisc6", "-n", "-r", "3", VIP6, "lan0c"])
        .expect("command");
    let text = out.stdout;
    println!("ndisc6:\n{text}");
    assert_eq!(
        ndisc6_mac(&text).as_deref(),
        Some(our_mac.as_str()),
        "{text}"
    );

    // Kernel traffic works too: ping6 resolves the VIP through us (the echo itself gets no
    // answer, nothing owns the address in the speaker's stack), so the neighbour entry is ours.
    let _ = cli
        .exec(["ping", "-6", "-c", "1", "-W", "1", VIP6])
        .expect("command");
    let neigh6 = cli
        .exec_ok(["ip", "-6", "neigh", "show", VIP6])
        .expect("command");
    let neigh6 = neigh6.stdout.to_lowercase();
    println!("client IPv6 neighbour entry: {neigh6}");
    assert!(neigh6.contains(&our_mac), "{neigh6}");

    let state = speaker.state();
    println!("counters: {:?}", state.counters);
    assert!(state.counters.arp_requests_answered >= 3);
    assert!(state.counters.ndp_solicitations_answered >= 1);
    assert!(state.counters.garp_sent >= 1);
    assert!(state.counters.unsolicited_na_sent >= 1);
    assert_eq!(state.counters.errors, 0);
    let group: Ipv6Addr = "ff02::1:ff00:100".parse().expect("group");
    assert_eq!(state.groups.get("lan0"), Some(&vec![group]));
    assert_eq!(state.snapshot.len(), 2);
    for a in &state.snapshot {
        assert_eq!(a.interfaces, ["lan0"]);
        assert_eq!(a.services, ["default/web"]);
        assert!(a.since.ends_with('Z'));
    }

    // Loss: no more answers, and the group is left.
    speaker.set(vec![]);
    let out = cli
        .exec(["arping", "-c", "2", "-i", "lan0c", VIP4])
        .expect("command");
    let text = out.stdout;
    println!("arping after loss:\n{text}");
    assert!(arping_reply_macs(&text).is_empty(), "{text}");
    let out = cli
        .exec(["ndisc6", "-n", "-r", "2", VIP6, "lan0c"])
        .expect("command");
    let text = out.stdout;
    println!("ndisc6 after loss:\n{text}");
    assert_eq!(ndisc6_mac(&text), None, "{text}");
    let state = speaker.state();
    assert!(state.snapshot.is_empty());
    assert!(state.groups.is_empty());
    assert!(
        state.kernel_responder.is_empty(),
        "detached with the last IPv4 address"
    );
}

#[test]
fn an_interface_that_appears_later_is_used() {
    if !root_or_skip("an_interface_that_appears_later_is_used") {
        return;
    }
    ensure_tools(&["arping"], &["arping"]);
    let (lab, spk, cli) = lab();
    let speaker = Speaker::start(&spk);
    speaker.set(vec![desired(VIP4, &[])]);
    assert_eq!(speaker.state().snapshot[0].interfaces, ["lan0"]);

    // A second link appears after the announcer started; rtnetlink tells us.
    lab.veth(&spk, "lan1", &cli, "lan1c").expect("veth");
    cli.add_addr("lan1c", "10.200.51.2/24").expect("address");
    let mac1 = spk.mac("lan1").expect("MAC");
    let mut interfaces = Vec::new();
    for _ in 0..50 {
        interfaces = speaker.state().snapshot[0].interfaces.clone();
        if interfaces.len() == 2 {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(interfaces, ["lan0", "lan1"]);
    let out = cli
        .exec(["arping", "-c", "2", "-i", "lan1c", VIP4])
        .expect("command");
    let text = out.stdout;
    println!("arping on the new link:\n{text}");
    let macs = arping_reply_macs(&text);
    assert_eq!(macs, [mac1.clone(), mac1], "{text}");
    // Excluded names are not used automatically.
    lab.veth(&spk, "veth7", &cli, "veth7c").expect("veth");
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(speaker.state().snapshot[0].interfaces, ["lan0", "lan1"]);
}

/// The node's LAN link is a bridge over two veths: only the bridge answers, once per request
/// and with its own MAC; its ports and a link with ARP turned off are not used (MetalLB
/// internal/layer2/announcer.go updateInterfaces skips interfaces with a master and NOARP
/// ones).
#[test]
fn one_mac_answers_when_the_lan_link_is_a_bridge_of_two_veths() {
    let test = "one_mac_answers_when_the_lan_link_is_a_bridge_of_two_veths";
    if !root_or_skip(test) {
        return;
    }
    one_mac_answers_on_a_bridge(test);
}

const AGG_VIP: &str = "10.200.52.100";
const AGG_MAC: &str = "02:00:0a:c8:34:01";

/// Namespace "spk" has the bridge `agg0` over `lan0` and `lan1`, plus `lan2` with ARP off; the
/// client in "cli" asks from the peer of `lan0` (two bridges joined twice would loop). A bond's
/// members carry the same `IFLA_MASTER` the rule looks at; this kernel has no bonding driver, so
/// the bridge stands for both here (the unit test covers bond members).
fn one_mac_answers_on_a_bridge(test: &str) {
    ensure_tools(&["arping"], &["arping"]);
    let lab = Scratch::new().expect("lab");
    let spk = lab.netns("spk").expect("namespace spk");
    let cli = lab.netns("cli").expect("namespace cli");
    spk.ip(["link", "add", "agg0", "type", "bridge"])
        .expect("bridge");
    // A MAC of its own, so a reply from a member (which keeps its veth MAC in a bridge) shows.
    spk.ip(["link", "set", "agg0", "address", AGG_MAC])
        .expect("MAC");
    lab.veth(&spk, "lan0", &cli, "sw0").expect("veth");
    lab.veth(&spk, "lan1", &cli, "sw1").expect("veth");
    for member in ["lan0", "lan1"] {
        spk.ip(["link", "set", member, "down"]).expect("down");
        spk.ip(["link", "set", member, "master", "agg0"])
            .expect("enslave");
        spk.ip(["link", "set", member, "up"]).expect("up");
    }
    spk.ip(["link", "set", "agg0", "up"]).expect("up");
    spk.add_addr("agg0", "10.200.52.1/24").expect("address");
    lab.veth(&spk, "lan2", &cli, "lan2c").expect("veth");
    spk.ip(["link", "set", "lan2", "arp", "off"])
        .expect("arp off");
    let client_if = "sw0";
    cli.add_addr(client_if, "10.200.52.2/24").expect("address");
    let agg_mac = spk.mac("agg0").expect("MAC");
    assert_eq!(agg_mac, AGG_MAC);
    let member_macs = [spk.mac("lan0").expect("MAC"), spk.mac("lan1").expect("MAC")];
    println!("{test}: agg0 {agg_mac}, members {member_macs:?}");
    // Let the bridge settle.
    std::thread::sleep(Duration::from_millis(500));

    // In the kernel (where it loads) and from userspace: each responder sits on the chosen
    // interfaces only.
    for responder in [L2Responder::Auto, L2Responder::Socket] {
        let speaker = Speaker::start_with(&spk, responder);
        speaker.set(vec![desired(AGG_VIP, &[])]);
        let state = speaker.state();
        assert_eq!(state.snapshot.len(), 1);
        assert_eq!(
            state.snapshot[0].interfaces,
            ["agg0"],
            "{test} {responder:?}"
        );
        let out = cli
            .exec(["arping", "-c", "3", "-i", client_if, AGG_VIP])
            .expect("command");
        let text = out.stdout;
        println!("{responder:?}: arping via {client_if}:\n{text}");
        let macs = arping_reply_macs(&text);
        // One reply per request, all from the aggregate's MAC: no member answers.
        assert_eq!(
            macs,
            [agg_mac.clone(), agg_mac.clone(), agg_mac.clone()],
            "{responder:?}: {text}"
        );
        assert!(text.contains("(0 extra)"), "{responder:?}: {text}");
    }
}
