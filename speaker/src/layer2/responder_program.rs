//! The kernel responder's eBPF program (about 200 instructions), assembled at load time: the
//! answers to ARP requests and Neighbor Solicitations described in
//! [`kernel_responder`](super::kernel_responder), with the owned maps, the counters and the
//! lease bound by descriptor.

use super::bpf_asm::Asm;
use super::bpf_sys::Insn;
use ferrolb_speaker_core::layer2::frames::{ETHERTYPE_ARP, ETHERTYPE_IPV6};

/// `TCX_NEXT`: not ours, run the next program / the stack.
pub const TCX_NEXT: u32 = u32::MAX;
/// `TC_ACT_REDIRECT`, what `bpf_redirect` returns: the reply goes out.
pub const TC_ACT_REDIRECT: u32 = 7;

/// Counter slots.
pub(super) const SLOT_ARP: i32 = 0;
pub(super) const SLOT_NDP: i32 = 1;

// Offsets into `struct __sk_buff` (<linux/bpf.h>).
const SKB_VLAN_PRESENT: i16 = 20;
const SKB_IFINDEX: i16 = 40;
const SKB_DATA: i16 = 76;
const SKB_DATA_END: i16 = 80;
// Helpers.
const HELPER_MAP_LOOKUP_ELEM: i32 = 1;
const HELPER_KTIME_GET_NS: i32 = 5;
const HELPER_REDIRECT: i32 = 23;
const HELPER_CSUM_DIFF: i32 = 28;
// Ethernet header.
const ETH_DST: i16 = 0;
const ETH_SRC: i16 = 6;
const ETH_TYPE: i16 = 12;
// ARP packet after it (28 bytes).
const ARP_HTYPE: i16 = 14;
const ARP_PTYPE: i16 = 16;
const ARP_LENS: i16 = 18;
const ARP_OP: i16 = 20;
const ARP_SHA: i16 = 22;
const ARP_SPA: i16 = 28;
const ARP_THA: i16 = 32;
const ARP_TPA: i16 = 38;
const ARP_FRAME_LEN: i32 = 42;
// IPv6 header (40 bytes) and the Neighbor Solicitation / Advertisement after it: fixed part
// (24 bytes) and one 8-byte link-layer address option.
const IP6_VTF: i16 = 14;
const IP6_PAYLOAD_LEN: i16 = 18;
const IP6_NH_HOPS: i16 = 20;
const IP6_SRC: i16 = 22;
const IP6_DST: i16 = 38;
const ND_TYPE_CODE: i16 = 54;
const ND_CSUM: i16 = 56;
const ND_FLAGS: i16 = 58;
const ND_TARGET: i16 = 62;
const ND_OPT: i16 = 78;
const ND_OPT_MAC: i16 = 80;
const ND_LEN: i32 = 32;
const ND_FRAME_LEN: i32 = 86;
/// Source, destination and the ICMPv6 message are contiguous from `IP6_SRC`: 32 + 32 bytes.
const CSUM_SPAN: i32 = 64;

/// A 16-bit field with network-order `bytes`, as a 16-bit load from the packet reads it on this
/// host.
const fn wire16(bytes: [u8; 2]) -> i32 {
    u16::from_ne_bytes(bytes) as i32
}

/// The rest of the ICMPv6 pseudo-header, as a seed for the checksum of [`CSUM_SPAN`]: the
/// upper-layer length (32) and the next header (58) as the 32-bit words the sum reads; their
/// sum has no carry, so it is one word with the low byte 90.
const fn pseudo_header_seed() -> i32 {
    u32::from_ne_bytes([0, 0, 0, ND_LEN as u8 + 58]) as i32
}

/// Descriptors of the maps the program reads and writes.
pub(super) struct Maps {
    pub(super) owned4: i32,
    pub(super) owned6: i32,
    pub(super) answered: i32,
    pub(super) lease: i32,
}

/// The responder program, with the owned maps and the counters bound by descriptor.
///
/// Every packet access is an 8- or 16-bit load or store at an even offset (32-bit ones for the
/// context only), so no access is misaligned whatever the architecture's `NET_IP_ALIGN`.
pub(super) fn program(maps: Maps) -> Vec<Insn> {
    use super::bpf_asm::*;
    let mut a = Asm::default();
    a.mov(R6, R1)
        // Frames the hardware untagged still carry their VLAN in the metadata: not ours to
        // answer on the parent interface.
        .ldx_w(R2, R6, SKB_VLAN_PRESENT)
        .jmp_imm(JNE_IMM, R2, 0, "pass")
        .ldx_w(R7, R6, SKB_DATA)
        .ldx_w(R8, R6, SKB_DATA_END)
        .mov(R2, R7)
        .add_imm(R2, ARP_FRAME_LEN)
        .jmp_reg(JGT_REG, R2, R8, "pass")
        .ldx_h(R2, R7, ETH_TYPE)
        .jmp_imm(JEQ_IMM, R2, wire16(ETHERTYPE_ARP.to_be_bytes()), "arp")
        .jmp_imm(JNE_IMM, R2, wire16(ETHERTYPE_IPV6.to_be_bytes()), "pass");
    neighbor_solicitation(&mut a, &maps);
    a.label("arp");
    arp_request(&mut a, &maps);
    // R2 holds the counter slot.
    a.label("count")
        .stx_w(FP, -28, R2)
        .ld_map(R1, maps.answered)
        .mov(R2, FP)
        .add_imm(R2, -28)
        .call(HELPER_MAP_LOOKUP_ELEM)
        .jmp_imm(JEQ_IMM, R0, 0, "send")
        .mov_imm(R2, 1)
        .atomic_add_dw(R0, 0, R2)
        .label("send")
        // Out of the interface it came in on; bpf_redirect's return value (TC_ACT_REDIRECT)
        // is the program's.
        .ldx_w(R1, R6, SKB_IFINDEX)
        .mov_imm(R2, 0)
        .call(HELPER_REDIRECT)
        .exit()
        .label("pass")
        .mov_imm(R0, -1)
        .exit();
    a.finish()
}

/// ARP: R6 context, R7 frame (42 bytes checked). Answers by jumping to "count" with the slot in
/// R2; anything else jumps to "pass".
fn arp_request(a: &mut Asm, maps: &Maps) {
    use super::bpf_asm::*;
    // Hardware type 1, protocol 0x0800, lengths 6 and 4, opcode 1.
    a.ldx_h(R2, R7, ARP_HTYPE)
        .jmp_imm(JNE_IMM, R2, wire16([0, 1]), "pass")
        .ldx_h(R2, R7, ARP_PTYPE)
        .jmp_imm(JNE_IMM, R2, wire16([0x08, 0x00]), "pass")
        .ldx_h(R2, R7, ARP_LENS)
        .jmp_imm(JNE_IMM, R2, wire16([6, 4]), "pass")
        .ldx_h(R2, R7, ARP_OP)
        .jmp_imm(JNE_IMM, R2, wire16([0, 1]), "pass")
        // Gratuitous (sender IP == target IP): an announcement, never answered.
        .ldx_h(R2, R7, ARP_SPA)
        .ldx_h(R3, R7, ARP_TPA)
        .jmp_reg(JNE_REG, R2, R3, "arp_not_gratuitous")
        .ldx_h(R2, R7, ARP_SPA + 2)
        .ldx_h(R3, R7, ARP_TPA + 2)
        .jmp_reg(JEQ_REG, R2, R3, "pass")
        .label("arp_not_gratuitous")
        // key = { ingress ifindex, target IP } at fp-8.
        .ldx_w(R2, R6, SKB_IFINDEX)
        .stx_w(FP, -8, R2)
        .ldx_h(R2, R7, ARP_TPA)
        .stx_h(FP, -4, R2)
        .ldx_h(R2, R7, ARP_TPA + 2)
        .stx_h(FP, -2, R2)
        .ld_map(R1, maps.owned4)
        .mov(R2, FP)
        .add_imm(R2, -8)
        .call(HELPER_MAP_LOOKUP_ELEM)
        .jmp_imm(JEQ_IMM, R0, 0, "pass")
        .mov(R9, R0);
    lease_in_force(a, maps);
    // A request sent with our own MAC is our own (or a loop): not answered.
    a.ldx_h(R2, R7, ARP_SHA)
        .ldx_h(R3, R9, 0)
        .jmp_reg(JNE_REG, R2, R3, "arp_not_self")
        .ldx_h(R2, R7, ARP_SHA + 2)
        .ldx_h(R3, R9, 2)
        .jmp_reg(JNE_REG, R2, R3, "arp_not_self")
        .ldx_h(R2, R7, ARP_SHA + 4)
        .ldx_h(R3, R9, 4)
        .jmp_reg(JNE_REG, R2, R3, "arp_not_self")
        .ja("pass")
        .label("arp_not_self");
    // The reply, in place: to the requester's hardware address, from ours.
    for half in [0i16, 2, 4] {
        a.ldx_h(R2, R7, ARP_SHA + half)
            .stx_h(R7, ETH_DST + half, R2)
            .stx_h(R7, ARP_THA + half, R2);
    }
    for half in [0i16, 2] {
        // Swap sender and target protocol addresses.
        a.ldx_h(R2, R7, ARP_SPA + half)
            .ldx_h(R3, R7, ARP_TPA + half)
            .stx_h(R7, ARP_SPA + half, R3)
            .stx_h(R7, ARP_TPA + half, R2);
    }
    for half in [0i16, 2, 4] {
        a.ldx_h(R2, R9, half)
            .stx_h(R7, ETH_SRC + half, R2)
            .stx_h(R7, ARP_SHA + half, R2);
    }
    a.mov_imm(R2, wire16([0, 2]))
        .stx_h(R7, ARP_OP, R2)
        .mov_imm(R2, SLOT_ARP)
        .ja("count");
}

/// Jumps to "pass" unless the speaker's lease ([`KernelResponder::renew_lease`]) runs past now.
/// Uses R8 (free once the bounds are checked), R0–R5 and fp-32.
fn lease_in_force(a: &mut Asm, maps: &Maps) {
    use super::bpf_asm::*;
    a.call(HELPER_KTIME_GET_NS)
        .mov(R8, R0)
        .mov_imm(R2, 0)
        .stx_w(FP, -32, R2)
        .ld_map(R1, maps.lease)
        .mov(R2, FP)
        .add_imm(R2, -32)
        .call(HELPER_MAP_LOOKUP_ELEM)
        .jmp_imm(JEQ_IMM, R0, 0, "pass")
        .ldx_dw(R2, R0, 0)
        .jmp_reg(JGT_REG, R8, R2, "pass");
}

/// R0 = the ones'-complement sum of [`CSUM_SPAN`] bytes from `IP6_SRC` plus the pseudo-header
/// seed, folded to 16 bits (0xffff over a message whose checksum is right).
fn folded_checksum(a: &mut Asm) {
    use super::bpf_asm::*;
    a.mov_imm(R1, 0)
        .mov_imm(R2, 0)
        .mov(R3, R7)
        .add_imm(R3, i32::from(IP6_SRC))
        .mov_imm(R4, CSUM_SPAN)
        .mov_imm(R5, pseudo_header_seed())
        .call(HELPER_CSUM_DIFF);
    for _ in 0..2 {
        a.mov(R2, R0)
            .rsh_imm(R2, 16)
            .and_imm(R0, 0xffff)
            .add(R0, R2);
    }
}

/// NDP: R6 context, R7 frame (42 bytes checked so far). Answers by jumping to "count" with the
/// slot in R2; anything else jumps to "pass".
fn neighbor_solicitation(a: &mut Asm, maps: &Maps) {
    use super::bpf_asm::*;
    a.mov(R2, R7)
        .add_imm(R2, ND_FRAME_LEN)
        .jmp_reg(JGT_REG, R2, R8, "pass")
        // IPv6; a payload of exactly one solicitation with one 8-byte option; ICMPv6 with hop limit
        // 255 (it was not routed); type 135 code 0; the option is the source link-layer
        // address (type 1, length 1).
        .ldx_b(R2, R7, IP6_VTF)
        .rsh_imm(R2, 4)
        .jmp_imm(JNE_IMM, R2, 6, "pass")
        .ldx_h(R2, R7, IP6_PAYLOAD_LEN)
        .jmp_imm(JNE_IMM, R2, wire16((ND_LEN as u16).to_be_bytes()), "pass")
        .ldx_h(R2, R7, IP6_NH_HOPS)
        .jmp_imm(JNE_IMM, R2, wire16([58, 255]), "pass")
        .ldx_h(R2, R7, ND_TYPE_CODE)
        .jmp_imm(JNE_IMM, R2, wire16([135, 0]), "pass")
        .ldx_h(R2, R7, ND_OPT)
        .jmp_imm(JNE_IMM, R2, wire16([1, 1]), "pass")
        // A multicast target is invalid, and a multicast source is dropped by the stack before
        // any socket could see the solicitation (RFC 4291 §2.7).
        .ldx_b(R2, R7, ND_TARGET)
        .jmp_imm(JEQ_IMM, R2, 0xff, "pass")
        .ldx_b(R2, R7, IP6_SRC)
        .jmp_imm(JEQ_IMM, R2, 0xff, "pass")
        // An unspecified source (duplicate address detection) is left to userspace.
        .mov_imm(R2, 0);
    for half in 0..8i16 {
        a.ldx_h(R3, R7, IP6_SRC + 2 * half).or(R2, R3);
    }
    a.jmp_imm(JEQ_IMM, R2, 0, "pass");
    folded_checksum(a);
    a.jmp_imm(JNE_IMM, R0, 0xffff, "pass")
        // key = { ingress ifindex, target } at fp-24.
        .ldx_w(R2, R6, SKB_IFINDEX)
        .stx_w(FP, -24, R2);
    for half in 0..8i16 {
        a.ldx_h(R2, R7, ND_TARGET + 2 * half)
            .stx_h(FP, -20 + 2 * half, R2);
    }
    a.ld_map(R1, maps.owned6)
        .mov(R2, FP)
        .add_imm(R2, -24)
        .call(HELPER_MAP_LOOKUP_ELEM)
        .jmp_imm(JEQ_IMM, R0, 0, "pass")
        .mov(R9, R0);
    lease_in_force(a, maps);
    // The advertisement, in place. Ethernet: to the solicitor's link-layer address, from ours
    // (which also goes into the option, now the target link-layer address).
    for half in [0i16, 2, 4] {
        a.ldx_h(R2, R7, ND_OPT_MAC + half)
            .stx_h(R7, ETH_DST + half, R2)
            .ldx_h(R2, R9, half)
            .stx_h(R7, ETH_SRC + half, R2)
            .stx_h(R7, ND_OPT_MAC + half, R2);
    }
    // IPv6: version 6, traffic class and flow label 0; to the solicitor, from the target.
    a.mov_imm(R2, wire16([0x60, 0]))
        .stx_h(R7, IP6_VTF, R2)
        .mov_imm(R2, 0)
        .stx_h(R7, IP6_VTF + 2, R2);
    for half in 0..8i16 {
        a.ldx_h(R2, R7, IP6_SRC + 2 * half)
            .stx_h(R7, IP6_DST + 2 * half, R2)
            .ldx_h(R2, R7, ND_TARGET + 2 * half)
            .stx_h(R7, IP6_SRC + 2 * half, R2);
    }
    // ICMPv6: type 136 code 0, checksum 0 while it is summed, flags S and O, the target
    // unchanged, option type 2 (target link-layer address) length 1.
    a.mov_imm(R2, wire16([136, 0]))
        .stx_h(R7, ND_TYPE_CODE, R2)
        .mov_imm(R2, 0)
        .stx_h(R7, ND_CSUM, R2)
        .stx_h(R7, ND_FLAGS + 2, R2)
        .mov_imm(R2, wire16([0x60, 0]))
        .stx_h(R7, ND_FLAGS, R2)
        .mov_imm(R2, wire16([2, 1]))
        .stx_h(R7, ND_OPT, R2);
    folded_checksum(a);
    a.xor_imm(R0, 0xffff)
        .stx_h(R7, ND_CSUM, R0)
        .mov_imm(R2, SLOT_NDP)
        .ja("count");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jumps_resolve_forward_and_the_program_ends_in_exit() {
        let p = program(Maps {
            owned4: 3,
            owned6: 4,
            answered: 5,
            lease: 6,
        });
        assert!(p.len() < 4096);
        assert_eq!(p.last().map(|i| i.code), Some(0x95));
        for (at, i) in p.iter().enumerate() {
            let class = i.code & 0x07;
            let is_jump = class == 0x05 && i.code != 0x85 && i.code != 0x95;
            if is_jump {
                let target = at as i64 + 1 + i64::from(i.off);
                assert!(
                    target > at as i64 && (target as usize) < p.len(),
                    "jump at {at}"
                );
            }
        }
        // Both maps are referenced by descriptor through a two-slot 64-bit load.
        let maps: Vec<i32> = p
            .iter()
            .filter(|i| i.code == 0x18 && i.regs >> 4 == 1)
            .map(|i| i.imm)
            .collect();
        // NDP (owned6, lease), ARP (owned4, lease), the counter.
        assert_eq!(maps, vec![4, 6, 3, 6, 5]);
    }

    #[test]
    fn pseudo_header_seed_is_length_and_next_header() {
        // Summed as 32-bit words in memory order: [0, 0, 0, 32] + [0, 0, 0, 58].
        let seed = pseudo_header_seed() as u32;
        assert_eq!(seed.to_ne_bytes(), [0, 0, 0, 90]);
    }

    #[test]
    fn wire16_reads_network_order() {
        let v = wire16([0x08, 0x06]);
        assert_eq!(u16::try_from(v).map(u16::to_ne_bytes), Ok([0x08, 0x06]));
    }
}
