//! The NDP side of layer 2 mode on one interface: an ICMPv6 raw socket bound to the interface
//! whose `ICMP6_FILTER` passes Neighbor Solicitations only, joined to the solicited-node
//! multicast group of every owned IPv6 address, answering solicitations for owned targets with
//! a solicited Neighbor Advertisement (S and O set, our MAC) and sending unsolicited
//! advertisements (O set) to all nodes when we gain an address.
//!
//! Why a raw ICMPv6 socket and not `AF_PACKET`: the kernel does the IPv6 header, the checksum
//! and hop-limit bookkeeping, and the filter plus the multicast joins mean we only ever wake
//! up for solicitations that concern us. RFC 4861 requires hop limit 255 both ways: we send
//! with 255 (`IPV6_UNICAST_HOPS`, `IPV6_MULTICAST_HOPS`) and drop any solicitation that did not
//! arrive with 255 (`IPV6_RECVHOPLIMIT`), which proves it was not routed.
//!
//! Source address of our advertisements: the target address itself, exactly as the Linux
//! kernel sources the NAs for its own addresses (`ndisc_send_na` uses the solicited address).
//! The VIP is not configured on the node, so the socket sets `IPV6_FREEBIND` to be allowed to
//! use it as a source. This matters in practice: some resolvers (ndisc6, for one) accept an
//! answer for a global target only from a non-link-local source, and rejected our NAs when
//! they came from the interface's link-local address. Where `IPV6_FREEBIND` is unavailable
//! (kernels before 4.15) the interface's link-local address is used instead.
//!
//! Where the in-kernel responder runs ([`super::kernel_responder`]), it answers the common
//! solicitations before this socket sees them, and this socket handles the rest (duplicate
//! address detection, unusual option sets).
//!
//! Known limitation of this socket: a solicitation sent to the VIP's *unicast* address (the
//! neighbour unreachability probe a client sends when its cache entry is stale) is addressed to
//! an IP the kernel does not consider local, so the stack drops it before any raw socket sees
//! it. The client then falls back to multicast solicitation after its unicast probes fail,
//! which we answer; traffic keeps flowing on the cached entry in between. The in-kernel
//! responder sees and answers those probes.

use super::sys;
use ferrolb_runtime::sync::lock;
use ferrolb_speaker_core::layer2::frames::{self, MacAddr, NeighborAdvertisement};
use nix::sys::socket::{ControlMessage, ControlMessageOwned, MsgFlags, SockaddrIn6};
use std::collections::BTreeMap;
use std::io::{self, IoSlice, IoSliceMut};
use std::net::{Ipv6Addr, SocketAddrV6};
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

/// `ICMP6_FILTER` from `<netinet/icmp6.h>` (level `IPPROTO_ICMPV6`); libc does not export it.
const ICMP6_FILTER: libc::c_int = 1;
/// Room for a solicitation with generous options; anything longer is not one we answer.
const RECV_BUF: usize = 1500;

/// The `ICMP6_FILTER` value passing only `pass`: on Linux a set bit *blocks* the type.
pub fn icmp6_filter_passing(pass: &[u8]) -> [u32; 8] {
    let mut filter = [u32::MAX; 8];
    for t in pass {
        filter[usize::from(*t >> 5)] &= !(1u32 << (t & 31));
    }
    filter
}

/// An NDP socket on one interface.
#[derive(Debug)]
pub struct NdpSocket {
    fd: OwnedFd,
    ifindex: u32,
    mac: MacAddr,
    /// Whether `IPV6_FREEBIND` is set, so the VIP itself can be the source of our NAs.
    freebind: bool,
    /// Solicited-node groups joined, with how many owned addresses map to each (several
    /// addresses can share the low 24 bits, and joining twice fails with `EADDRINUSE`).
    groups: Mutex<BTreeMap<Ipv6Addr, usize>>,
}

impl NdpSocket {
    /// Opens the socket on interface `ifname` / `ifindex` whose MAC is `mac`. Needs
    /// `CAP_NET_RAW`.
    pub fn open(ifname: &str, ifindex: u32, mac: MacAddr) -> io::Result<Self> {
        let fd = sys::socket(libc::AF_INET6, libc::SOCK_RAW, libc::IPPROTO_ICMPV6)?;
        // Advertisements too: an unsolicited one for an owned address from another MAC is its
        // new owner taking over (it ends a make-before-break hand-over). Only those sent to
        // all nodes reach us, a handful per address move.
        let filter = icmp6_filter_passing(&[
            frames::ICMPV6_NEIGHBOR_SOLICITATION,
            frames::ICMPV6_NEIGHBOR_ADVERTISEMENT,
        ]);
        sys::setsockopt(&fd, libc::IPPROTO_ICMPV6, ICMP6_FILTER, &filter)?;
        // Bind to the device: we then only receive what arrived on it, and sends leave by it.
        let mut name = [0u8; libc::IFNAMSIZ];
        let bytes = ifname.as_bytes();
        if bytes.len() >= libc::IFNAMSIZ {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "interface name too long",
            ));
        }
        name[..bytes.len()].copy_from_slice(bytes);
        sys::setsockopt(&fd, libc::SOL_SOCKET, libc::SO_BINDTODEVICE, &name)?;
        let hops: libc::c_int = frames::NDP_HOP_LIMIT.into();
        sys::setsockopt(&fd, libc::IPPROTO_IPV6, libc::IPV6_UNICAST_HOPS, &hops)?;
        sys::setsockopt(&fd, libc::IPPROTO_IPV6, libc::IPV6_MULTICAST_HOPS, &hops)?;
        let on: libc::c_int = 1;
        sys::setsockopt(&fd, libc::IPPROTO_IPV6, libc::IPV6_RECVHOPLIMIT, &on)?;
        let index = libc::c_int::try_from(ifindex)
            .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
        sys::setsockopt(&fd, libc::IPPROTO_IPV6, libc::IPV6_MULTICAST_IF, &index)?;
        // Lets us send from the VIP, which is not a local address (see the module docs).
        let freebind = match sys::setsockopt(&fd, libc::IPPROTO_IPV6, libc::IPV6_FREEBIND, &on) {
            Ok(()) => true,
            Err(error) => {
                tracing::info!(%error, "IPV6_FREEBIND unavailable; NAs will come from the link-local address");
                false
            }
        };
        // Our own unsolicited NAs need not come back to us.
        let off: libc::c_int = 0;
        sys::setsockopt(&fd, libc::IPPROTO_IPV6, libc::IPV6_MULTICAST_LOOP, &off)?;
        // The listener thread blocks in recvmsg(2); this lets it notice `stop` (see arp.rs).
        sys::set_recv_timeout(&fd, super::arp::STOP_POLL)?;
        Ok(NdpSocket {
            fd,
            ifindex,
            mac,
            freebind,
            groups: Mutex::new(BTreeMap::new()),
        })
    }

    fn membership(&self, group: Ipv6Addr, join: bool) -> io::Result<()> {
        let request = libc::ipv6_mreq {
            ipv6mr_multiaddr: libc::in6_addr {
                s6_addr: group.octets(),
            },
            ipv6mr_interface: self.ifindex,
        };
        let name = if join {
            libc::IPV6_ADD_MEMBERSHIP
        } else {
            libc::IPV6_DROP_MEMBERSHIP
        };
        sys::setsockopt(&self.fd, libc::IPPROTO_IPV6, name, &request)
    }

    /// Joins the solicited-node group of `ip` (reference-counted per group).
    pub fn join(&self, ip: Ipv6Addr) -> io::Result<()> {
        let group = frames::solicited_node_multicast(ip);
        let mut groups = lock(&self.groups);
        let count = groups.entry(group).or_insert(0);
        if *count == 0 {
            self.membership(group, true)?;
        }
        *count += 1;
        Ok(())
    }

    /// Leaves the solicited-node group of `ip` when no other owned address needs it.
    pub fn leave(&self, ip: Ipv6Addr) -> io::Result<()> {
        let group = frames::solicited_node_multicast(ip);
        let mut groups = lock(&self.groups);
        match groups.get_mut(&group) {
            Some(count) if *count > 1 => {
                *count -= 1;
                Ok(())
            }
            Some(_) => {
                groups.remove(&group);
                self.membership(group, false)
            }
            None => Ok(()),
        }
    }

    /// The groups currently joined.
    pub fn joined_groups(&self) -> Vec<Ipv6Addr> {
        let groups = lock(&self.groups);
        groups.keys().copied().collect()
    }

    /// Sends `na` to `dst`, from the target address when `IPV6_FREEBIND` allows it, else from
    /// `link_local` (`None` lets the kernel choose). The source goes to the kernel with
    /// `IPV6_PKTINFO`; the kernel builds the IPv6 header and computes the checksum.
    pub fn send_na(
        &self,
        dst: Ipv6Addr,
        na: &NeighborAdvertisement,
        link_local: Option<Ipv6Addr>,
    ) -> io::Result<()> {
        if self.freebind {
            match self.send_na_from(dst, na, Some(na.target)) {
                // EINVAL: the kernel refused the non-local source after all (a sysctl or LSM);
                // fall back to the link-local address.
                Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {}
                other => return other,
            }
        }
        self.send_na_from(dst, na, link_local)
    }

    fn send_na_from(
        &self,
        dst: Ipv6Addr,
        na: &NeighborAdvertisement,
        src: Option<Ipv6Addr>,
    ) -> io::Result<()> {
        let icmp = na.to_icmpv6(src.unwrap_or(Ipv6Addr::UNSPECIFIED), dst);
        // Link-scoped destinations (fe80::/10, ff02::/16) need the interface as scope.
        let scoped =
            dst.is_unicast_link_local() || (dst.is_multicast() && dst.segments()[0] & 0x000f == 2);
        let scope = if scoped { self.ifindex } else { 0 };
        let addr = SockaddrIn6::from(SocketAddrV6::new(dst, 0, 0, scope));
        let info = libc::in6_pktinfo {
            ipi6_addr: libc::in6_addr {
                s6_addr: src.unwrap_or(Ipv6Addr::UNSPECIFIED).octets(),
            },
            ipi6_ifindex: self.ifindex,
        };
        let iov = [IoSlice::new(&icmp)];
        let cmsgs = [ControlMessage::Ipv6PacketInfo(&info)];
        // Never block the caller (the listener thread or the announcer) on a full queue.
        nix::sys::socket::sendmsg(
            self.fd.as_raw_fd(),
            &iov,
            &cmsgs,
            MsgFlags::MSG_DONTWAIT,
            Some(&addr),
        )
        .map_err(io::Error::from)?;
        Ok(())
    }

    /// Sends the unsolicited advertisement for `target` (O set) to all nodes.
    pub fn send_unsolicited(
        &self,
        target: Ipv6Addr,
        link_local: Option<Ipv6Addr>,
    ) -> io::Result<()> {
        let (dst, na) = frames::unsolicited_na(target, self.mac);
        self.send_na(dst, &na, link_local)
    }

    /// Receives solicitations and answers those for targets `owns` accepts, blocking the
    /// calling thread (a dedicated one, for the latency reasons given in `arp.rs`), until
    /// `stop` is set or the socket fails. `source` gives the link-local fallback source (it can
    /// appear after the socket was opened); `answered` is called after each advertisement sent;
    /// `announced_elsewhere` with an owned address another MAC advertised unsolicited.
    pub fn serve_blocking(
        &self,
        stop: &AtomicBool,
        owns: impl Fn(Ipv6Addr) -> bool,
        source: impl Fn() -> Option<Ipv6Addr>,
        answered: impl Fn(Ipv6Addr),
        announced_elsewhere: impl Fn(Ipv6Addr),
    ) -> io::Result<()> {
        let mut buf = [0u8; RECV_BUF];
        while !stop.load(Ordering::Relaxed) {
            let (n, from, hop_limit) = match recv_solicitation(&self.fd, &mut buf) {
                Ok(got) => got,
                // SO_RCVTIMEO expired (EAGAIN) or a signal: look at `stop` and wait again.
                Err(e) if sys::is_timeout_or_interrupt(&e) => continue,
                Err(e) => return Err(e),
            };
            // RFC 4861 §7.1.1: a solicitation that was routed is not for us to answer.
            if hop_limit != Some(frames::NDP_HOP_LIMIT.into()) {
                continue;
            }
            let Some(icmp) = buf.get(..n) else { continue };
            if let Some(na) = frames::NeighborAdvertisement::parse_icmpv6(icmp) {
                if !na.solicited && na.target_mac.is_some_and(|m| m != self.mac) && owns(na.target)
                {
                    announced_elsewhere(na.target);
                }
                continue;
            }
            let Some((dst, na)) = frames::ndp_response(from, icmp, self.mac, &owns) else {
                continue;
            };
            match self.send_na(dst, &na, source()) {
                Ok(()) => answered(na.target),
                Err(error) => {
                    tracing::warn!(%error, ifindex = self.ifindex, "sending NA failed")
                }
            }
        }
        Ok(())
    }
}

/// One `recvmsg(2)`: ICMPv6 length, source address and received hop limit.
fn recv_solicitation(
    fd: &OwnedFd,
    buf: &mut [u8],
) -> io::Result<(usize, Ipv6Addr, Option<libc::c_int>)> {
    let mut cmsg = nix::cmsg_space!(libc::c_int, libc::in6_pktinfo);
    let mut iov = [IoSliceMut::new(buf)];
    let msg = nix::sys::socket::recvmsg::<SockaddrIn6>(
        fd.as_raw_fd(),
        &mut iov,
        Some(&mut cmsg),
        MsgFlags::empty(),
    )
    .map_err(io::Error::from)?;
    let mut hop_limit = None;
    if let Ok(cmsgs) = msg.cmsgs() {
        for c in cmsgs {
            if let ControlMessageOwned::Ipv6HopLimit(h) = c {
                hop_limit = Some(h);
            }
        }
    }
    let from = msg.address.map(|a| a.ip()).unwrap_or(Ipv6Addr::UNSPECIFIED);
    Ok((msg.bytes, from, hop_limit))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_passes_only_neighbor_solicitations() {
        let f = icmp6_filter_passing(&[135]);
        let both = icmp6_filter_passing(&[135, 136]);
        assert_eq!(both[4], !((1 << 7) | (1 << 8)));
        // The ICMP6_FILTER_WILLPASS macro of glibc, transcribed.
        let passes = |t: u8| f[usize::from(t >> 5)] & (1 << (t & 31)) == 0;
        assert!(passes(135));
        for t in (0..=255u8).filter(|t| *t != 135) {
            assert!(!passes(t), "type {t}");
        }
    }
}
