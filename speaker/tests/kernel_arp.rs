//! The in-kernel ARP responder's program, run by the kernel itself (`BPF_PROG_TEST_RUN`) in a
//! namespace of its own (needs root and Linux ≥ 6.6): what it answers, byte for byte, and what it
//! leaves to the stack — checked against the userspace responder's rules
//! (`frames::arp_reply_into`) on thousands of mutated frames.

mod common;

use common::{Netns, require_root};
use ferrolb_speaker::layer2::frames::{self, ArpOp, ArpPacket, MacAddr};
use ferrolb_speaker::layer2::kernel_arp::{KernelArp, TC_ACT_REDIRECT, TCX_NEXT, kernel_has_tcx};
use std::net::Ipv4Addr;

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

fn with_responder(test: &str, body: impl FnOnce(KernelArp) + Send + 'static) {
    if !require_root(test) {
        return;
    }
    assert!(
        kernel_has_tcx(),
        "{test}: the in-kernel ARP responder needs Linux 6.6 or later (tcx)"
    );
    let ns = Netns::new("karp");
    ns.run_in(move || body(KernelArp::load().expect("the responder loads")));
}

#[test]
fn answers_owned_requests_exactly_as_the_userspace_responder() {
    with_responder(
        "answers_owned_requests_exactly_as_the_userspace_responder",
        |k| {
            let client_ip = Ipv4Addr::new(10, 200, 60, 2);
            k.answer(LOOPBACK, vip(), OURS).expect("insert");
            assert!(k.answers(LOOPBACK, vip()).expect("lookup"));

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
            assert_eq!(k.answered(), 1);

            // A frame padded to the Ethernet minimum: answered, padding left as it was.
            let mut padded = req.clone();
            padded.resize(60, 0xab);
            let run = k.test_run(&padded).expect("test run");
            assert_eq!(run.retval, TC_ACT_REDIRECT);
            assert_eq!(&run.data[..42], want.as_slice());
            assert!(run.data[42..].iter().all(|&b| b == 0xab));
            assert_eq!(k.answered(), 2);

            // An RFC 5227 probe (sender IP 0.0.0.0) is answered, as the kernel would defend.
            let probe = request(CLIENT, Ipv4Addr::UNSPECIFIED, vip());
            assert_eq!(k.test_run(&probe).expect("run").retval, TC_ACT_REDIRECT);

            // Loss: once stop_answering returns, the same request goes to the stack.
            k.stop_answering(LOOPBACK, vip()).expect("delete");
            assert!(!k.answers(LOOPBACK, vip()).expect("lookup"));
            let run = k.test_run(&req).expect("test run");
            assert_eq!(run.retval, TCX_NEXT);
            assert_eq!(run.data, req, "untouched");
            // Deleting twice is fine.
            k.stop_answering(LOOPBACK, vip()).expect("delete again");
        },
    );
}

#[test]
fn leaves_everything_else_to_the_stack() {
    with_responder("leaves_everything_else_to_the_stack", |k| {
        let client_ip = Ipv4Addr::new(10, 200, 60, 2);
        k.answer(LOOPBACK, vip(), OURS).expect("insert");
        // Another interface's entry does not answer on this one.
        let other = Ipv4Addr::new(10, 200, 60, 101);
        k.answer(LOOPBACK + 1, other, OURS).expect("insert");
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
        assert_eq!(k.answered(), 0);
    });
}

#[test]
fn agrees_with_the_userspace_responder_on_mutated_frames() {
    with_responder(
        "agrees_with_the_userspace_responder_on_mutated_frames",
        |k| {
            k.answer(LOOPBACK, vip(), OURS).expect("insert");
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
            assert_eq!(k.answered(), u64::from(answered));
        },
    );
}
