//! The in-kernel layer 2 responder: an eBPF program on each announcing interface's tc ingress
//! hook (tcx) that answers ARP requests for owned IPv4 addresses and Neighbor Solicitations for
//! owned IPv6 addresses itself, before the frame reaches any socket.
//!
//! # Why
//!
//! The kernel answers ARP and NDP for its own addresses inside the receive softirq, in a few
//! microseconds. The userspace responders (`arp.rs`, `ndp.rs`) pay for waking a blocked thread
//! on every request: ~35 µs at p50 on a small VM, 5–6 × the kernel (issue #5 asks for at most
//! 2 ×). Answering where the kernel answers its own — in the softirq, on the same CPU, with no
//! wake-up — removes that cost without giving up what makes the userspace path right: only
//! owned addresses are answered, the address is never added to the interface (so the node does
//! not start accepting traffic for it on other ports), and losing an address stops the answers
//! before `set_desired` returns (the map entry is deleted synchronously).
//!
//! # How
//!
//! - Two hash maps, `(ifindex, IPv4) → MAC` and `(ifindex, IPv6) → MAC`, hold what this node
//!   answers for, written by [`super::announcer::SocketBackend`] next to the userspace owned
//!   set.
//! - The program (assembled below, about 200 instructions) answers
//!   - an Ethernet/IPv4 ARP request (not VLAN-tagged, not gratuitous, not sent with our own
//!     MAC: the rules of `frames::arp_reply_into`) whose target is in the IPv4 map, with the
//!     reply `arp.rs` would send;
//!   - a Neighbor Solicitation with every RFC 4861 §7.1.1 check `frames::parse_ns_packet`
//!     makes (hop limit 255, code 0, valid checksum, non-multicast target), of the common shape
//!     — exactly one option, the source link-layer address, and a specified source — whose
//!     target is in the IPv6 map, with the solicited advertisement `ndp.rs` would send (S and
//!     O set, our MAC, from the target address itself, checksum recomputed). Solicitations of
//!     other shapes (duplicate address detection, no or several options) are rare and go on
//!     to `ndp.rs`. Unlike the ICMPv6 socket, the program also sees solicitations sent to the
//!     address's unicast destination (a client's reachability probe), which the stack drops
//!     because the address is not local.
//!
//!   It turns the frame into the answer in place and redirects it out of the interface it
//!   came in on. Anything else goes on to the next program or the stack untouched
//!   (`TCX_NEXT`), so the sockets still see and handle every request the program does not
//!   answer.
//! - A two-slot array counts the answers (ARP, NDP) for the speaker's metrics.
//! - A lease: the program answers only while a timestamp the speaker renews five times per
//!   lease from a thread of its own lies in the future (`announcer.rs`; 15 ms ahead with the
//!   default heartbeats, one interval below the 20 ms after which a successor takes over; 200 ms
//!   with the gossip alone). The program runs in
//!   the kernel, so without it a speaker that is stopped (SIGSTOP, a frozen cgroup) but not
//!   dead would go on answering from its node while the other speakers, no longer hearing
//!   from it, elect another owner: two MACs for one address. With the lease the node goes
//!   quiet when its speaker does, as the userspace sockets do (`l2_e2e`'s
//!   `a_stopped_speaker_goes_quiet` fails without it).
//! - It is attached through a BPF link ([`bpf_sys::link_tcx_ingress`]), not a netlink tc
//!   filter: a link lives exactly as long as its descriptor, so a speaker killed by SIGKILL
//!   stops answering at once, exactly as its sockets do. tcx chains programs, so the responder
//!   coexists with a CNI's own tc programs; it goes first and passes on everything it does not
//!   answer.
//!
//! Needs Linux ≥ 6.6 (tcx) and `CAP_BPF` + `CAP_NET_ADMIN`. When loading or attaching fails
//! (older kernel, capabilities not granted, `--l2-responder socket`), the speaker says so once
//! and answers from userspace as before; nothing else changes. The sockets stay open either
//! way: they send the gratuitous announcements, and the NDP socket's multicast memberships are
//! what lets solicitations through a NIC's multicast filter.

use super::bpf_sys::{self, Insn, TestRun};
use ferrolb_speaker_core::layer2::frames::{ETHERTYPE_ARP, ETHERTYPE_IPV6, MacAddr};
use std::io;
use std::net::IpAddr;
use std::os::fd::OwnedFd;
use std::time::Duration;

/// How many (interface, IP) pairs each map holds; far more than a node announces. Entries are
/// allocated on insert (`BPF_F_NO_PREALLOC`), so the bound costs nothing until used.
const MAX_OWNED: u32 = 65_536;
/// `BPF_F_NO_PREALLOC`.
const F_NO_PREALLOC: u32 = 1;
/// Counter slots.
const SLOT_ARP: i32 = 0;
const SLOT_NDP: i32 = 1;

/// Key of the owned maps: ingress interface index (host order) and the address as it sits in
/// the packet (network order): 8 bytes for IPv4, 20 for IPv6.
fn key(ifindex: u32, ip: IpAddr) -> Vec<u8> {
    let mut k = ifindex.to_ne_bytes().to_vec();
    match ip {
        IpAddr::V4(v4) => k.extend_from_slice(&v4.octets()),
        IpAddr::V6(v6) => k.extend_from_slice(&v6.octets()),
    }
    k
}

/// Value of the owned maps: the MAC to answer with, padded to 8 bytes.
fn value(mac: MacAddr) -> [u8; 8] {
    let mut v = [0u8; 8];
    v[..6].copy_from_slice(&mac.0);
    v
}

/// A loaded responder: program, owned maps and answer counters. Attach it to interfaces with
/// [`KernelResponder::attach`]; dropping it (and every [`TcxLink`]) unloads everything.
#[derive(Debug)]
pub struct KernelResponder {
    owned4: OwnedFd,
    owned6: OwnedFd,
    answered: OwnedFd,
    lease: OwnedFd,
    prog: OwnedFd,
}

/// The responder attached to one interface; dropping it detaches it.
#[derive(Debug)]
pub struct TcxLink {
    _link: OwnedFd,
}

impl KernelResponder {
    /// Creates the maps and loads the program (it is not attached anywhere yet). Fails without
    /// `CAP_BPF`/`CAP_NET_ADMIN` or on a kernel without tcx.
    pub fn load() -> io::Result<Self> {
        let hash = |key_size, name| {
            bpf_sys::map_create(
                bpf_sys::MAP_TYPE_HASH,
                key_size,
                8,
                MAX_OWNED,
                F_NO_PREALLOC,
                name,
            )
        };
        let owned4 = hash(8, "flb_owned4")?;
        let owned6 = hash(20, "flb_owned6")?;
        let answered = bpf_sys::map_create(bpf_sys::MAP_TYPE_ARRAY, 4, 8, 2, 0, "flb_answered")?;
        let lease = bpf_sys::map_create(bpf_sys::MAP_TYPE_ARRAY, 4, 8, 1, 0, "flb_lease")?;
        let insns = program(Maps {
            owned4: raw(&owned4),
            owned6: raw(&owned6),
            answered: raw(&answered),
            lease: raw(&lease),
        });
        let prog = bpf_sys::prog_load(
            bpf_sys::PROG_TYPE_SCHED_CLS,
            bpf_sys::ATTACH_TCX_INGRESS,
            &insns,
            "flb_l2_reply",
        )?;
        Ok(KernelResponder {
            owned4,
            owned6,
            answered,
            lease,
            prog,
        })
    }

    /// Lets the program answer for `lease` from now (it answers nothing before the first
    /// renewal). The speaker renews it from a thread of its own (`announcer.rs`), so a speaker
    /// that is stopped (SIGSTOP, a frozen cgroup) or starved for longer than the lease stops
    /// answering, as its userspace sockets would, instead of answering from the kernel while
    /// the other speakers, no longer hearing from it, elect another owner.
    pub fn renew_lease(&self, lease: Duration) -> io::Result<()> {
        let lease_ns = u64::try_from(lease.as_nanos()).unwrap_or(u64::MAX);
        let until = bpf_sys::monotonic_ns()?.saturating_add(lease_ns);
        bpf_sys::map_update(&self.lease, &0u32.to_ne_bytes(), &until.to_ne_bytes())
    }

    /// Attaches the responder to tcx ingress of interface `ifindex`, first in its chain.
    pub fn attach(&self, ifindex: u32) -> io::Result<TcxLink> {
        Ok(TcxLink {
            _link: bpf_sys::link_tcx_ingress(&self.prog, ifindex)?,
        })
    }

    fn map(&self, ip: IpAddr) -> &OwnedFd {
        match ip {
            IpAddr::V4(_) => &self.owned4,
            IpAddr::V6(_) => &self.owned6,
        }
    }

    /// Answers requests / solicitations for `ip` arriving on `ifindex` with `mac` from now on.
    pub fn answer(&self, ifindex: u32, ip: IpAddr, mac: MacAddr) -> io::Result<()> {
        bpf_sys::map_update(self.map(ip), &key(ifindex, ip), &value(mac))
    }

    /// Stops answering for `ip` on `ifindex`; when this returns, no later request is answered.
    pub fn stop_answering(&self, ifindex: u32, ip: IpAddr) -> io::Result<()> {
        bpf_sys::map_delete(self.map(ip), &key(ifindex, ip))
    }

    /// Whether `ip` is answered on `ifindex` (what the map holds).
    pub fn answers(&self, ifindex: u32, ip: IpAddr) -> io::Result<bool> {
        let mut v = [0u8; 8];
        bpf_sys::map_lookup(self.map(ip), &key(ifindex, ip), &mut v)
    }

    fn count(&self, slot: i32) -> u64 {
        let mut v = [0u8; 8];
        match bpf_sys::map_lookup(&self.answered, &slot.to_ne_bytes(), &mut v) {
            Ok(true) => u64::from_ne_bytes(v),
            _ => 0,
        }
    }

    /// ARP requests answered by the program since it was loaded.
    pub fn arp_answered(&self) -> u64 {
        self.count(SLOT_ARP)
    }

    /// Neighbor Solicitations answered by the program since it was loaded.
    pub fn ndp_answered(&self) -> u64 {
        self.count(SLOT_NDP)
    }

    /// Runs the program once over `frame` in the kernel, as received on the loopback device of
    /// the caller's network namespace (`ifindex` 1): for tests of what it answers and how.
    pub fn test_run(&self, frame: &[u8]) -> io::Result<TestRun> {
        bpf_sys::prog_test_run(&self.prog, frame, 1)
    }

    /// Runs the program `repeat` times over `frame` in the kernel (as [`Self::test_run`]) and
    /// returns the kernel's mean time per run: what the program costs each packet.
    pub fn time_run(&self, frame: &[u8], repeat: u32) -> io::Result<TestRun> {
        bpf_sys::prog_test_run(&self.prog, frame, repeat)
    }
}

/// Whether the running kernel is new enough for tcx (Linux 6.6), from
/// `/proc/sys/kernel/osrelease`; `false` when that cannot be read. Loading may still fail for
/// want of capabilities; this is for tests and messages that must know what to expect.
pub fn kernel_has_tcx() -> bool {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    release_at_least(&release, 6, 6)
}

fn release_at_least(release: &str, major: u32, minor: u32) -> bool {
    let mut parts = release
        .trim()
        .split(['.', '-'])
        .map(|p| p.parse::<u32>().ok());
    match (parts.next().flatten(), parts.next().flatten()) {
        (Some(a), Some(b)) => (a, b) >= (major, minor),
        _ => false,
    }
}

fn raw(fd: &OwnedFd) -> i32 {
    use std::os::fd::AsRawFd;
    fd.as_raw_fd()
}

/// `TCX_NEXT`: not ours, run the next program / the stack.
pub const TCX_NEXT: u32 = u32::MAX;
/// `TC_ACT_REDIRECT`, what `bpf_redirect` returns: the reply goes out.
pub const TC_ACT_REDIRECT: u32 = 7;

/// A minimal eBPF assembler: the instructions the responder uses and forward jumps to labels.
mod asm {
    use super::Insn;
    use std::collections::BTreeMap;

    pub const R0: u8 = 0;
    pub const R1: u8 = 1;
    pub const R2: u8 = 2;
    pub const R3: u8 = 3;
    pub const R4: u8 = 4;
    pub const R5: u8 = 5;
    pub const R6: u8 = 6;
    pub const R7: u8 = 7;
    pub const R8: u8 = 8;
    pub const R9: u8 = 9;
    pub const FP: u8 = 10;

    // Opcodes (class | op | source or size), from <linux/bpf.h> / <linux/bpf_common.h>.
    const MOV64_IMM: u8 = 0xb7;
    const MOV64_REG: u8 = 0xbf;
    const ADD64_IMM: u8 = 0x07;
    const ADD64_REG: u8 = 0x0f;
    const OR64_REG: u8 = 0x4f;
    const AND64_IMM: u8 = 0x57;
    const RSH64_IMM: u8 = 0x77;
    const XOR64_IMM: u8 = 0xa7;
    const LDX_B: u8 = 0x71;
    const LDX_W: u8 = 0x61;
    const LDX_H: u8 = 0x69;
    const LDX_DW: u8 = 0x79;
    const STX_W: u8 = 0x63;
    const STX_H: u8 = 0x6b;
    const ATOMIC_DW: u8 = 0xdb;
    const LD_IMM64: u8 = 0x18;
    const JA: u8 = 0x05;
    pub const JEQ_IMM: u8 = 0x15;
    pub const JNE_IMM: u8 = 0x55;
    pub const JEQ_REG: u8 = 0x1d;
    pub const JNE_REG: u8 = 0x5d;
    pub const JGT_REG: u8 = 0x2d;
    const CALL: u8 = 0x85;
    const EXIT: u8 = 0x95;
    /// `BPF_PSEUDO_MAP_FD`: the immediate of a 64-bit load is a map descriptor.
    const PSEUDO_MAP_FD: u8 = 1;
    /// `BPF_ADD` as the immediate of an atomic instruction.
    const ATOMIC_ADD: i32 = 0;

    const fn ins(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
        Insn {
            code,
            regs: (src << 4) | (dst & 0x0f),
            off,
            imm,
        }
    }

    /// Instructions plus the labels they jump to, resolved by [`Asm::finish`].
    #[derive(Default)]
    pub struct Asm {
        insns: Vec<Insn>,
        labels: BTreeMap<&'static str, usize>,
        jumps: Vec<(usize, &'static str)>,
    }

    impl Asm {
        pub fn mov_imm(&mut self, dst: u8, imm: i32) -> &mut Self {
            self.push(ins(MOV64_IMM, dst, 0, 0, imm))
        }
        pub fn mov(&mut self, dst: u8, src: u8) -> &mut Self {
            self.push(ins(MOV64_REG, dst, src, 0, 0))
        }
        pub fn add_imm(&mut self, dst: u8, imm: i32) -> &mut Self {
            self.push(ins(ADD64_IMM, dst, 0, 0, imm))
        }
        pub fn add(&mut self, dst: u8, src: u8) -> &mut Self {
            self.push(ins(ADD64_REG, dst, src, 0, 0))
        }
        pub fn or(&mut self, dst: u8, src: u8) -> &mut Self {
            self.push(ins(OR64_REG, dst, src, 0, 0))
        }
        pub fn and_imm(&mut self, dst: u8, imm: i32) -> &mut Self {
            self.push(ins(AND64_IMM, dst, 0, 0, imm))
        }
        pub fn rsh_imm(&mut self, dst: u8, imm: i32) -> &mut Self {
            self.push(ins(RSH64_IMM, dst, 0, 0, imm))
        }
        pub fn xor_imm(&mut self, dst: u8, imm: i32) -> &mut Self {
            self.push(ins(XOR64_IMM, dst, 0, 0, imm))
        }
        /// `dst = *(u8 *)(src + off)`
        pub fn ldx_b(&mut self, dst: u8, src: u8, off: i16) -> &mut Self {
            self.push(ins(LDX_B, dst, src, off, 0))
        }
        /// `dst = *(u32 *)(src + off)`
        pub fn ldx_w(&mut self, dst: u8, src: u8, off: i16) -> &mut Self {
            self.push(ins(LDX_W, dst, src, off, 0))
        }
        /// `dst = *(u64 *)(src + off)`
        pub fn ldx_dw(&mut self, dst: u8, src: u8, off: i16) -> &mut Self {
            self.push(ins(LDX_DW, dst, src, off, 0))
        }
        /// `dst = *(u16 *)(src + off)`
        pub fn ldx_h(&mut self, dst: u8, src: u8, off: i16) -> &mut Self {
            self.push(ins(LDX_H, dst, src, off, 0))
        }
        /// `*(u32 *)(dst + off) = src`
        pub fn stx_w(&mut self, dst: u8, off: i16, src: u8) -> &mut Self {
            self.push(ins(STX_W, dst, src, off, 0))
        }
        /// `*(u16 *)(dst + off) = src`
        pub fn stx_h(&mut self, dst: u8, off: i16, src: u8) -> &mut Self {
            self.push(ins(STX_H, dst, src, off, 0))
        }
        /// `lock *(u64 *)(dst + off) += src`
        pub fn atomic_add_dw(&mut self, dst: u8, off: i16, src: u8) -> &mut Self {
            self.push(ins(ATOMIC_DW, dst, src, off, ATOMIC_ADD))
        }
        /// `dst = map` (the two-slot 64-bit immediate load of a map descriptor).
        pub fn ld_map(&mut self, dst: u8, map_fd: i32) -> &mut Self {
            self.push(ins(LD_IMM64, dst, PSEUDO_MAP_FD, 0, map_fd));
            self.push(ins(0, 0, 0, 0, 0))
        }
        pub fn call(&mut self, helper: i32) -> &mut Self {
            self.push(ins(CALL, 0, 0, 0, helper))
        }
        pub fn exit(&mut self) -> &mut Self {
            self.push(ins(EXIT, 0, 0, 0, 0))
        }
        /// Conditional jump comparing `dst` with an immediate.
        pub fn jmp_imm(&mut self, code: u8, dst: u8, imm: i32, to: &'static str) -> &mut Self {
            self.jumps.push((self.insns.len(), to));
            self.push(ins(code, dst, 0, 0, imm))
        }
        /// Conditional jump comparing `dst` with register `src`.
        pub fn jmp_reg(&mut self, code: u8, dst: u8, src: u8, to: &'static str) -> &mut Self {
            self.jumps.push((self.insns.len(), to));
            self.push(ins(code, dst, src, 0, 0))
        }
        pub fn ja(&mut self, to: &'static str) -> &mut Self {
            self.jumps.push((self.insns.len(), to));
            self.push(ins(JA, 0, 0, 0, 0))
        }
        pub fn label(&mut self, name: &'static str) -> &mut Self {
            self.labels.insert(name, self.insns.len());
            self
        }
        fn push(&mut self, i: Insn) -> &mut Self {
            self.insns.push(i);
            self
        }

        /// The program with every jump's offset set. Panics on a jump to an undefined or
        /// earlier label — both are mistakes in the fixed program below, caught by its tests
        /// (the verifier rejects backward jumps' loops anyway).
        pub fn finish(mut self) -> Vec<Insn> {
            for (at, to) in std::mem::take(&mut self.jumps) {
                let target = *self
                    .labels
                    .get(to)
                    .unwrap_or_else(|| panic!("undefined label {to}"));
                assert!(target > at, "backward jump to {to}");
                let off = i16::try_from(target - at - 1).unwrap_or_else(|_| panic!("far jump"));
                if let Some(i) = self.insns.get_mut(at) {
                    i.off = off;
                }
            }
            self.insns
        }
    }
}

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

/// The responder program, with the owned maps and the counters bound by descriptor.
///
/// Every packet access is an 8- or 16-bit load or store at an even offset (32-bit ones for the
/// context only), so no access is misaligned whatever the architecture's `NET_IP_ALIGN`.
/// Descriptors of the maps the program reads and writes.
struct Maps {
    owned4: i32,
    owned6: i32,
    answered: i32,
    lease: i32,
}

fn program(maps: Maps) -> Vec<Insn> {
    use asm::*;
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
fn arp_request(a: &mut asm::Asm, maps: &Maps) {
    use asm::*;
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
fn lease_in_force(a: &mut asm::Asm, maps: &Maps) {
    use asm::*;
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
fn folded_checksum(a: &mut asm::Asm) {
    use asm::*;
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
fn neighbor_solicitation(a: &mut asm::Asm, maps: &Maps) {
    use asm::*;
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
    fn kernel_release_comparison() {
        assert!(release_at_least("6.18.44-fc-v782\n", 6, 6));
        assert!(release_at_least("6.6.0", 6, 6));
        assert!(!release_at_least("6.1.0-28-amd64", 6, 6));
        assert!(!release_at_least("5.19.1", 6, 6));
        assert!(release_at_least("7.0", 6, 6));
        assert!(!release_at_least("garbage", 6, 6));
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

    #[test]
    fn key_and_value_layout() {
        let k = key(7, IpAddr::V4(std::net::Ipv4Addr::new(10, 200, 0, 10)));
        assert_eq!(&k[..4], &7u32.to_ne_bytes());
        assert_eq!(&k[4..], &[10, 200, 0, 10]);
        let v6: std::net::Ipv6Addr = "fd00:200::1".parse().expect("v6");
        let k = key(7, IpAddr::V6(v6));
        assert_eq!(k.len(), 20);
        assert_eq!(&k[4..], &v6.octets());
        assert_eq!(value(MacAddr([1, 2, 3, 4, 5, 6])), [1, 2, 3, 4, 5, 6, 0, 0]);
    }
}
