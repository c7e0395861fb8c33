use super::*;
use ferrolb_speaker_core::bfd::echo_frame::build_ipv4;
use std::net::Ipv4Addr;

/// Runs the classic BPF instructions the filter uses over `packet` (starting at the IP
/// header) with packet type `pkttype`, as the kernel would; returns the accepted length.
fn run_bpf(program: &[libc::sock_filter], packet: &[u8], pkttype: u8) -> u32 {
    let (mut a, mut x) = (0u32, 0u32);
    let mut pc = 0usize;
    let byte = |at: usize| packet.get(at).copied().map(u32::from);
    let half = |at: usize| {
        packet
            .get(at..at + 2)
            .map(|b| u32::from(u16::from_be_bytes([b[0], b[1]])))
    };
    while let Some(ins) = program.get(pc) {
        let code = u32::from(ins.code);
        let k = ins.k as usize;
        let mut jump = |cond: bool| pc += usize::from(if cond { ins.jt } else { ins.jf });
        match code {
            c if c == libc::BPF_LD | libc::BPF_W | libc::BPF_ABS && ins.k == SKF_PKTTYPE => {
                a = u32::from(pkttype)
            }
            c if c == libc::BPF_LD | libc::BPF_B | libc::BPF_ABS => match byte(k) {
                Some(v) => a = v,
                None => return 0,
            },
            c if c == libc::BPF_LD | libc::BPF_H | libc::BPF_ABS => match half(k) {
                Some(v) => a = v,
                None => return 0,
            },
            c if c == libc::BPF_LD | libc::BPF_H | libc::BPF_IND => match half(x as usize + k) {
                Some(v) => a = v,
                None => return 0,
            },
            c if c == libc::BPF_LDX | libc::BPF_B | libc::BPF_MSH => match byte(k) {
                Some(v) => x = 4 * (v & 0x0f),
                None => return 0,
            },
            c if c == libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K => jump(a == ins.k),
            c if c == libc::BPF_JMP | libc::BPF_JSET | libc::BPF_K => jump(a & ins.k != 0),
            c if c == libc::BPF_RET | libc::BPF_K => return ins.k,
            other => panic!("instruction {other:#x} not modelled"),
        }
        pc += 1;
    }
    panic!("program fell off its end")
}

const ME: Ipv4Addr = Ipv4Addr::new(10, 200, 0, 11);

fn returned(ttl: u8) -> Vec<u8> {
    let mut d = build_ipv4(
        ME,
        ME,
        1,
        &[1, 16, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1],
    );
    d[8] = ttl;
    d
}

#[test]
fn filter_passes_only_incoming_udp_3785_after_one_hop() {
    let f = &ECHO_FILTER;
    assert!(run_bpf(f, &returned(254), libc::PACKET_HOST) > 0);
    // Our own send (TTL 255, outgoing), a packet we forward for the peer (outgoing, 254),
    // one that came from further away, the peer's echo passing through (255).
    assert_eq!(run_bpf(f, &returned(255), libc::PACKET_OUTGOING), 0);
    assert_eq!(run_bpf(f, &returned(254), libc::PACKET_OUTGOING), 0);
    assert_eq!(run_bpf(f, &returned(253), libc::PACKET_HOST), 0);
    assert_eq!(run_bpf(f, &returned(255), libc::PACKET_HOST), 0);
    let mut control = returned(254);
    control[23] = 0xc8; // port 3784
    assert_eq!(run_bpf(f, &control, libc::PACKET_HOST), 0);
    let mut tcp = returned(254);
    tcp[9] = 6;
    assert_eq!(run_bpf(f, &tcp, libc::PACKET_HOST), 0);
    let mut fragment = returned(254);
    fragment[7] = 1;
    assert_eq!(run_bpf(f, &fragment, libc::PACKET_HOST), 0);
    assert_eq!(run_bpf(f, &returned(254)[..21], libc::PACKET_HOST), 0);
}
