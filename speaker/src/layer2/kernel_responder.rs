//! The in-kernel layer 2 responder: an eBPF program on each announcing interface's tc ingress
//! hook (tcx) that answers ARP requests for owned IPv4 addresses and Neighbor Solicitations for
//! owned IPv6 addresses itself, before the frame reaches any socket.
//!
//! # Why
//!
//! The kernel answers ARP and NDP for its own addresses inside the receive softirq, in a few
//! microseconds. The userspace responders (`arp.rs`, `ndp.rs`) pay for waking a blocked thread
//! on every request: several times the kernel's latency (docs/benchmarks.md; the target is at
//! most 2 ×). Answering where the kernel answers its own — in the softirq, on the same CPU, with no
//! wake-up — removes that cost without giving up what makes the userspace path right: only
//! owned addresses are answered, the address is never added to the interface (so the node does
//! not start accepting traffic for it on other ports), and losing an address stops the answers
//! before `set_desired` returns (the map entry is deleted synchronously).
//!
//! # How
//!
//! - Two hash maps, `(ifindex, IPv4) → MAC` and `(ifindex, IPv6) → MAC`, hold what this node
//!   answers for, written by `SocketBackend` (`announcer/socket.rs`) next to the userspace owned
//!   set.
//! - The program (`responder_program.rs`, about 200 instructions) answers
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

use super::bpf_sys::{self, TestRun};
use super::responder_program::{Maps, SLOT_ARP, SLOT_NDP, program};
pub use super::responder_program::{TC_ACT_REDIRECT, TCX_NEXT};
use ferrolb_speaker_core::layer2::frames::MacAddr;
use std::io;
use std::net::IpAddr;
use std::os::fd::OwnedFd;
use std::time::Duration;

/// How many (interface, IP) pairs each map holds; far more than a node announces. Entries are
/// allocated on insert (`BPF_F_NO_PREALLOC`), so the bound costs nothing until used.
const MAX_OWNED: u32 = 65_536;
/// `BPF_F_NO_PREALLOC`.
const F_NO_PREALLOC: u32 = 1;
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

impl TcxLink {
    /// Pins the attachment at `path` (in a bpffs mount): the program stays attached, with its
    /// maps as they are, after this process exits, until the file is removed
    /// (`announcer/handover_pin.rs`).
    pub fn pin(&self, path: &std::path::Path) -> io::Result<()> {
        bpf_sys::obj_pin(&self._link, path)
    }
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

#[cfg(test)]
mod tests {
    use super::*;

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
