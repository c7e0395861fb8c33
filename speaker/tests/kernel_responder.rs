//! The in-kernel responder's program, run by the kernel itself (`BPF_PROG_TEST_RUN`) in a
//! namespace of its own (needs root and Linux ≥ 6.6): what it answers, byte for byte, and what it
//! leaves to the stack — checked against the userspace responders' rules
//! (`frames::arp_reply_into`; `frames::parse_ns_packet`, `solicited_na`, `na_frame`) on
//! thousands of mutated frames.

use ferrolb_lab::{Scratch, root_or_skip};
use ferrolb_speaker::layer2::kernel_responder::{
    KernelResponder, TC_ACT_REDIRECT, TCX_NEXT, kernel_has_tcx,
};
use ferrolb_speaker_core::layer2::frames::{
    self, ArpOp, ArpPacket, ETHERTYPE_IPV6, EthernetHeader, Ipv6Header, MacAddr,
    NeighborSolicitation,
};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

/// `BPF_PROG_TEST_RUN` delivers the frame on the namespace's loopback device.
const LOOPBACK: u32 = 1;
const OURS: MacAddr = MacAddr([0x02, 0xfe, 0, 0, 0, 0x01]);
const CLIENT: MacAddr = MacAddr([0x02, 0xc1, 0, 0, 0, 0x02]);

fn vip() -> Ipv4Addr {
    Ipv4Addr::new(10, 200, 60, 100)
}

fn request(sender_mac: MacAddr, sender_ip: Ipv4Addr, target_ip: Ipv4Addr) -> Vec<u8> {
    frames::arp_frame(
        MacAddr::BROADCAST,
        sender_mac,
        &ArpPacket {
            op: ArpOp::Request,
            sender_mac,
            sender_ip,
            target_mac: MacAddr::ZERO,
            target_ip,
        },
    )
}

/// What the userspace responder sends for `frame`, if anything.
fn userspace_reply(frame: &[u8], owned: Ipv4Addr) -> Option<Vec<u8>> {
    frames::arp_response(frame, OURS, |ip| ip == owned)
}

fn with_responder(test: &str, body: impl FnOnce(KernelResponder) + Send + 'static) {
    if !root_or_skip(test) {
        return;
    }
    assert!(
        kernel_has_tcx(),
        "{test}: the in-kernel responder needs Linux 6.6 or later (tcx)"
    );
    let lab = Scratch::new().expect("lab");
    let ns = lab.netns("karp").expect("namespace");
    ns.run(move || {
        let k = KernelResponder::load().expect("the responder loads");
        k.renew_lease(Duration::from_secs(600)).expect("lease");
        body(k)
    })
    .expect("entering the namespace");
}

#[test]
fn answers_owned_requests_exactly_as_the_userspace_responder() {
    with_responder(
        "answers_owned_requests_exactly_as_the_userspace_responder",
        |k| {
            let client_ip = Ipv4Addr::new(10, 200, 60, 2);
            k.answer(LOOPBACK, vip().into(), OURS).expect("insert");
            assert!(k.answers(LOOPBACK, vip().into()).expect("lookup"));

            let req = request(CLIENT, client_ip, vip());
            let run = k.test_run(&req).expect("test run");
            assert_eq!(run.retval, TC_ACT_REDIRECT, "the reply is sent back out");
            let want = userspace_reply(&req, vip()).expect("userspace answers too");
            assert_eq!(run.data, want, "byte for byte the userspace reply");
            let (eth, arp) = frames::parse_arp_frame(&run.data).expect("an ARP frame");
            assert_eq!((eth.dst, eth.src), (CLIENT, OURS));
            assert_eq!(arp.op, ArpOp::Reply);
            assert_eq!((arp.sender_mac, arp.sender_ip), (OURS, vip()));
            assert_eq!((arp.target_mac, arp.target_ip), (CLIENT, client_ip));
            assert_eq!(k.arp_answered(), 1);

            // A frame padded to the Ethernet minimum: answered, padding left as it was.
            let mut padded = req.clone();
            padded.resize(60, 0xab);
            let run = k.test_run(&padded).expect("test run");
            assert_eq!(run.retval, TC_ACT_REDIRECT);
            assert_eq!(&run.data[..42], want.as_slice());
            assert!(run.data[42..].iter().all(|&b| b == 0xab));
            assert_eq!(k.arp_answered(), 2);

            // An RFC 5227 probe (sender IP 0.0.0.0) is answered, as the kernel would defend.
            let probe = request(CLIENT, Ipv4Addr::UNSPECIFIED, vip());
            assert_eq!(k.test_run(&probe).expect("run").retval, TC_ACT_REDIRECT);

            // Loss: once stop_answering returns, the same request goes to the stack.
            k.stop_answering(LOOPBACK, vip().into()).expect("delete");
            assert!(!k.answers(LOOPBACK, vip().into()).expect("lookup"));
            let run = k.test_run(&req).expect("test run");
            assert_eq!(run.retval, TCX_NEXT);
            assert_eq!(run.data, req, "untouched");
            // Deleting twice is fine.
            k.stop_answering(LOOPBACK, vip().into())
                .expect("delete again");
        },
    );
}

#[test]
fn leaves_everything_else_to_the_stack() {
    with_responder("leaves_everything_else_to_the_stack", |k| {
        let client_ip = Ipv4Addr::new(10, 200, 60, 2);
        k.answer(LOOPBACK, vip().into(), OURS).expect("insert");
        // Another interface's entry does not answer on this one.
        let other = Ipv4Addr::new(10, 200, 60, 101);
        k.answer(LOOPBACK + 1, other.into(), OURS).expect("insert");
        let reply = frames::arp_frame(
            OURS,
            CLIENT,
            &ArpPacket {
                op: ArpOp::Reply,
                sender_mac: CLIENT,
                sender_ip: client_ip,
                target_mac: OURS,
                target_ip: vip(),
            },
        );
        let mut ipv4 = request(CLIENT, client_ip, vip());
        ipv4[12..14].copy_from_slice(&[0x08, 0x00]);
        let mut short = request(CLIENT, client_ip, vip());
        short.truncate(41);
        let cases: [(&str, Vec<u8>); 7] = [
            ("not owned", request(CLIENT, client_ip, client_ip)),
            (
                "owned on another interface",
                request(CLIENT, client_ip, other),
            ),
            ("gratuitous", request(CLIENT, vip(), vip())),
            ("sent with our MAC", request(OURS, client_ip, vip())),
            ("a reply", reply),
            ("not ARP", ipv4),
            ("truncated", short),
        ];
        for (what, frame) in cases {
            let run = k.test_run(&frame).expect("test run");
            assert_eq!(run.retval, TCX_NEXT, "{what}: passed on");
            assert_eq!(run.data, frame, "{what}: untouched");
            assert_eq!(
                userspace_reply(&frame, vip()),
                None,
                "{what}: userspace agrees"
            );
        }
        assert_eq!(k.arp_answered(), 0);
    });
}

#[test]
fn agrees_with_the_userspace_responder_on_mutated_frames() {
    with_responder(
        "agrees_with_the_userspace_responder_on_mutated_frames",
        |k| {
            k.answer(LOOPBACK, vip().into(), OURS).expect("insert");
            let base = request(CLIENT, Ipv4Addr::new(10, 200, 60, 2), vip());
            // xorshift64*: a fixed seed, so a failure reproduces.
            let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
            let mut next = move || {
                state ^= state >> 12;
                state ^= state << 25;
                state ^= state >> 27;
                state.wrapping_mul(0x2545_f491_4f6c_dd1d)
            };
            let (mut answered, mut passed) = (0u32, 0u32);
            for _ in 0..4000 {
                let mut frame = base.clone();
                // One to three bytes of the headers changed, often to a neighbouring value of
                // a field the program checks.
                for _ in 0..=(next() % 3) {
                    let at = 12 + (next() % 30) as usize;
                    frame[at] = match next() % 4 {
                        0 => frame[at] ^ 1,
                        1 => 0,
                        2 => OURS.0[(next() % 6) as usize],
                        _ => (next() & 0xff) as u8,
                    };
                }
                if next() % 8 == 0 {
                    // Target IP = sender IP (gratuitous) or = the VIP.
                    let (spa, tpa) = (28..32, 38..42);
                    if next() % 2 == 0 {
                        let s: Vec<u8> = frame[spa].to_vec();
                        frame[tpa].copy_from_slice(&s);
                    } else {
                        frame[tpa].copy_from_slice(&vip().octets());
                    }
                }
                let run = k.test_run(&frame).expect("test run");
                match userspace_reply(&frame, vip()) {
                    Some(want) => {
                        assert_eq!(run.retval, TC_ACT_REDIRECT, "answers {frame:02x?}");
                        assert_eq!(run.data, want, "same reply to {frame:02x?}");
                        answered += 1;
                    }
                    None => {
                        assert_eq!(run.retval, TCX_NEXT, "passes {frame:02x?}");
                        assert_eq!(run.data, frame, "untouched {frame:02x?}");
                        passed += 1;
                    }
                }
            }
            println!(
                "4000 mutated frames: {answered} answered, {passed} passed on, all as userspace"
            );
            assert!(answered > 100 && passed > 100, "both outcomes exercised");
            assert_eq!(k.arp_answered(), u64::from(answered));
        },
    );
}

fn vip6() -> Ipv6Addr {
    "fd00:200:0:60::100".parse().expect("v6")
}

fn client6() -> Ipv6Addr {
    "fd00:200:0:60::2".parse().expect("v6")
}

/// A Neighbor Solicitation frame from `src` (our client's MAC, announced in a source
/// link-layer option when `sllao`) to `dst` for `target`.
fn solicitation(src: Ipv6Addr, dst: Ipv6Addr, target: Ipv6Addr, sllao: bool) -> Vec<u8> {
    let icmp = NeighborSolicitation {
        target,
        source_mac: sllao.then_some(CLIENT),
    }
    .to_icmpv6(src, dst);
    let mut f = Vec::new();
    EthernetHeader {
        dst: if dst.is_multicast() {
            frames::multicast_mac(dst)
        } else {
            OURS
        },
        src: CLIENT,
        ethertype: ETHERTYPE_IPV6,
    }
    .write(&mut f);
    Ipv6Header {
        src,
        dst,
        next_header: frames::IPPROTO_ICMPV6,
        hop_limit: frames::NDP_HOP_LIMIT,
    }
    .write(u16::try_from(icmp.len()).expect("short"), &mut f);
    f.extend_from_slice(&icmp);
    f
}

/// The frame the userspace NDP responder's rules answer `frame` with, if any: every RFC 4861
/// check of `parse_ns_packet`, an owned target, and the solicited advertisement to the
/// solicitor's link-layer address (all nodes for duplicate address detection).
fn userspace_na(frame: &[u8], owned: Ipv6Addr) -> Option<Vec<u8>> {
    if frame.get(12..14)? != ETHERTYPE_IPV6.to_be_bytes() {
        return None;
    }
    let (header, ns) = frames::parse_ns_packet(frame.get(14..)?)?;
    if ns.target != owned {
        return None;
    }
    let (dst, na) = frames::solicited_na(header.src, ns.target, OURS);
    let dst_mac = ns.source_mac.unwrap_or(MacAddr::ZERO);
    Some(frames::na_frame(OURS, dst_mac, ns.target, dst, &na))
}

/// Recomputes the ICMPv6 checksum of an 86-byte solicitation frame after a mutation.
fn fix_checksum(frame: &mut [u8]) {
    let addr = |at: usize| {
        let mut o = [0u8; 16];
        o.copy_from_slice(&frame[at..at + 16]);
        Ipv6Addr::from(o)
    };
    let (src, dst) = (addr(22), addr(38));
    frame[56..58].copy_from_slice(&[0, 0]);
    let sum = frames::icmpv6_checksum(src, dst, &frame[54..]);
    frame[56..58].copy_from_slice(&sum.to_be_bytes());
}

#[test]
fn answers_solicitations_exactly_as_the_userspace_responder() {
    with_responder(
        "answers_solicitations_exactly_as_the_userspace_responder",
        |k| {
            k.answer(LOOPBACK, IpAddr::V6(vip6()), OURS)
                .expect("insert");
            let group = frames::solicited_node_multicast(vip6());
            // Multicast (address resolution) and unicast (reachability probe) solicitations.
            for dst in [group, vip6()] {
                let ns = solicitation(client6(), dst, vip6(), true);
                let run = k.test_run(&ns).expect("test run");
                assert_eq!(run.retval, TC_ACT_REDIRECT, "answered (to {dst})");
                let want = userspace_na(&ns, vip6()).expect("userspace answers");
                assert_eq!(run.data, want, "byte for byte the userspace advertisement");
                let (header, body) = Ipv6Header::parse(&run.data[14..]).expect("IPv6");
                assert_eq!((header.src, header.dst), (vip6(), client6()));
                assert!(frames::icmpv6_checksum_ok(header.src, header.dst, body));
                let na = frames::NeighborAdvertisement::parse_icmpv6(body).expect("an NA");
                assert!(na.solicited && na.override_flag && !na.router);
                assert_eq!((na.target, na.target_mac), (vip6(), Some(OURS)));
            }
            assert_eq!((k.arp_answered(), k.ndp_answered()), (0, 2));

            // Left to userspace: duplicate address detection (unspecified source, no option)
            // and a solicitation without the source link-layer option.
            let dad = solicitation(Ipv6Addr::UNSPECIFIED, group, vip6(), false);
            assert_eq!(k.test_run(&dad).expect("run").retval, TCX_NEXT);
            assert!(
                userspace_na(&dad, vip6()).is_some(),
                "userspace answers DAD"
            );
            let bare = solicitation(client6(), group, vip6(), false);
            assert_eq!(k.test_run(&bare).expect("run").retval, TCX_NEXT);
            // Invalid: a broken checksum, a routed solicitation (hop limit < 255).
            let mut bad_sum = solicitation(client6(), group, vip6(), true);
            bad_sum[57] ^= 1;
            let mut routed = solicitation(client6(), group, vip6(), true);
            routed[21] = 64;
            fix_checksum(&mut routed);
            for frame in [bad_sum, routed] {
                let run = k.test_run(&frame).expect("run");
                assert_eq!((run.retval, &run.data), (TCX_NEXT, &frame));
                assert_eq!(userspace_na(&frame, vip6()), None);
            }
            // Not owned; then no longer owned.
            let other: Ipv6Addr = "fd00:200:0:60::101".parse().expect("v6");
            let ns = solicitation(client6(), group, other, true);
            assert_eq!(k.test_run(&ns).expect("run").retval, TCX_NEXT);
            k.stop_answering(LOOPBACK, IpAddr::V6(vip6()))
                .expect("delete");
            let ns = solicitation(client6(), group, vip6(), true);
            assert_eq!(k.test_run(&ns).expect("run").retval, TCX_NEXT);
            assert_eq!(k.ndp_answered(), 2);
        },
    );
}

#[test]
fn never_answers_a_solicitation_the_userspace_rules_would_not() {
    with_responder(
        "never_answers_a_solicitation_the_userspace_rules_would_not",
        |k| {
            k.answer(LOOPBACK, IpAddr::V6(vip6()), OURS)
                .expect("insert");
            let group = frames::solicited_node_multicast(vip6());
            let base = solicitation(client6(), group, vip6(), true);
            let mut state: u64 = 0x2545_f491_4f6c_dd1d;
            let mut next = move || {
                state ^= state >> 12;
                state ^= state << 25;
                state ^= state >> 27;
                state.wrapping_mul(0x9e37_79b9_7f4a_7c15)
            };
            let (mut both, mut userspace_only, mut neither) = (0u32, 0u32, 0u32);
            for _ in 0..4000 {
                let mut frame = base.clone();
                for _ in 0..=(next() % 2) {
                    let at = 12 + (next() % 74) as usize;
                    frame[at] = match next() % 4 {
                        0 => frame[at] ^ 1,
                        1 => 0,
                        2 => 0xff,
                        _ => (next() & 0xff) as u8,
                    };
                }
                // Most mutations break the checksum; repair it in most cases so the other
                // rules are what decides.
                if next() % 4 != 0 {
                    fix_checksum(&mut frame);
                }
                let run = k.test_run(&frame).expect("test run");
                match (run.retval, userspace_na(&frame, vip6())) {
                    (TC_ACT_REDIRECT, Some(want)) => {
                        assert_eq!(run.data, want, "same advertisement for {frame:02x?}");
                        both += 1;
                    }
                    (TC_ACT_REDIRECT, None) => {
                        panic!("answered what userspace would not: {frame:02x?}")
                    }
                    (TCX_NEXT, userspace) => {
                        assert_eq!(run.data, frame, "untouched {frame:02x?}");
                        if userspace.is_some() {
                            userspace_only += 1;
                        } else {
                            neither += 1;
                        }
                    }
                    (other, _) => panic!("return value {other} for {frame:02x?}"),
                }
            }
            println!(
                "4000 mutated solicitations: {both} answered in the kernel as userspace would, \
                 {userspace_only} left to userspace, {neither} answered by neither"
            );
            assert!(both > 100 && neither > 100, "both outcomes exercised");
            assert_eq!(k.ndp_answered(), u64::from(both));
        },
    );
}

#[test]
fn answers_only_while_the_speaker_renews_its_lease() {
    with_responder("answers_only_while_the_speaker_renews_its_lease", |k| {
        k.answer(LOOPBACK, vip().into(), OURS).expect("insert");
        k.answer(LOOPBACK, IpAddr::V6(vip6()), OURS)
            .expect("insert");
        let arp = request(CLIENT, Ipv4Addr::new(10, 200, 60, 2), vip());
        let ns = solicitation(client6(), vip6(), vip6(), true);
        for frame in [&arp, &ns] {
            assert_eq!(k.test_run(frame).expect("run").retval, TC_ACT_REDIRECT);
        }
        // A lease that ran out (the speaker stopped renewing it): nothing is answered, the
        // frames go on to the stack (and to the speaker's sockets, stopped with it).
        k.renew_lease(Duration::ZERO).expect("lease");
        std::thread::sleep(Duration::from_millis(1));
        for frame in [&arp, &ns] {
            let run = k.test_run(frame).expect("run");
            assert_eq!((run.retval, &run.data), (TCX_NEXT, frame));
        }
        // Renewed: answering again.
        k.renew_lease(Duration::from_secs(1)).expect("lease");
        for frame in [&arp, &ns] {
            assert_eq!(k.test_run(frame).expect("run").retval, TC_ACT_REDIRECT);
        }
        assert_eq!((k.arp_answered(), k.ndp_answered()), (2, 2));
    });
}
