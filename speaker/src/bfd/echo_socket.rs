//! The packet socket that sends our echo packets through the peer and reads them back.
//!
//! Why a packet socket (RFC 5881 §4 wants echo packets addressed so that the peer's
//! forwarding plane returns them: we address them to ourselves): a UDP socket cannot send
//! to one of our own addresses through another host — the kernel routes such a datagram over
//! the loopback device. So the speaker writes the IPv4 + UDP headers itself
//! ([`ferrolb_speaker_core::bfd::echo_frame`]) and hands the datagram to an `AF_PACKET` /
//! `SOCK_DGRAM` socket with the peer's link-layer address: the kernel adds the Ethernet
//! header and puts it on the wire towards the peer, whose IP forwarding sends it back.
//! Coming back, the packet's source is our own address, which the kernel's IP input drops as
//! a martian (unless `accept_local` is set) before any UDP socket could read it; the same
//! packet socket reads it first. This is what FRR's bfdd does on Linux for IPv4.
//!
//! The socket is not bound to an interface: one socket serves every session. A classic BPF
//! filter lets through only incoming IPv4/UDP packets to port 3785 with TTL 254 (one hop
//! through the peer), so forwarded traffic and everything else never wakes the BFD thread.

use crate::layer2::sys::{attach_filter, packet_recv, socket};
use ferrolb_speaker_core::bfd::echo::{ECHO_PORT, ECHO_RETURN_TTL};
use std::io;
use std::mem::size_of;
use std::os::fd::{AsRawFd, OwnedFd};
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

/// `ETH_P_IP`.
const ETH_P_IP: u16 = 0x0800;
/// `SKF_AD_OFF + SKF_AD_PKTTYPE` (`<linux/filter.h>`): the ancillary load of the packet type.
const SKF_PKTTYPE: u32 = 0xffff_f000 + 4;

const fn bpf(code: u32, jt: u8, jf: u8, k: u32) -> libc::sock_filter {
    libc::sock_filter {
        code: code as u16,
        jt,
        jf,
        k,
    }
}

/// The filter, on packets that start at the IP header (`SOCK_DGRAM`): not outgoing, UDP,
/// TTL 254, not a fragment, destination port 3785. Every "drop" jumps to the last
/// instruction.
pub(crate) const ECHO_FILTER: [libc::sock_filter; 13] = [
    // 0: A = pkt_type; outgoing (our own sends, and what this node forwards) -> drop
    bpf(
        libc::BPF_LD | libc::BPF_W | libc::BPF_ABS,
        0,
        0,
        SKF_PKTTYPE,
    ),
    bpf(
        libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K,
        10,
        0,
        libc::PACKET_OUTGOING as u32,
    ),
    // 2: A = protocol; UDP or drop
    bpf(libc::BPF_LD | libc::BPF_B | libc::BPF_ABS, 0, 0, 9),
    bpf(libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K, 0, 8, 17),
    // 4: A = TTL; exactly one hop through the peer or drop
    bpf(libc::BPF_LD | libc::BPF_B | libc::BPF_ABS, 0, 0, 8),
    bpf(
        libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K,
        0,
        6,
        ECHO_RETURN_TTL as u32,
    ),
    // 6: A = flags and fragment offset; a fragment (MF or offset) -> drop
    bpf(libc::BPF_LD | libc::BPF_H | libc::BPF_ABS, 0, 0, 6),
    bpf(libc::BPF_JMP | libc::BPF_JSET | libc::BPF_K, 4, 0, 0x3fff),
    // 8: X = IP header length; A = UDP destination port
    bpf(libc::BPF_LDX | libc::BPF_B | libc::BPF_MSH, 0, 0, 0),
    bpf(libc::BPF_LD | libc::BPF_H | libc::BPF_IND, 0, 0, 2),
    // 10: port 3785 -> accept, else drop
    bpf(
        libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K,
        0,
        1,
        ECHO_PORT as u32,
    ),
    // 11: accept the whole packet
    bpf(libc::BPF_RET | libc::BPF_K, 0, 0, 0xffff),
    // 12: drop
    bpf(libc::BPF_RET | libc::BPF_K, 0, 0, 0),
];

/// The echo packet socket, registered with the BFD thread's runtime.
pub(crate) struct EchoSocket {
    fd: AsyncFd<OwnedFd>,
}

impl EchoSocket {
    /// Opens the socket (needs CAP_NET_RAW) with its filter; non-blocking.
    pub(crate) fn open() -> io::Result<EchoSocket> {
        let proto = libc::c_int::from(ETH_P_IP.to_be());
        let fd = socket(
            libc::AF_PACKET,
            libc::SOCK_DGRAM | libc::SOCK_NONBLOCK,
            proto,
        )?;
        attach_filter(&fd, &ECHO_FILTER)?;
        // SAFETY: an `OwnedFd` is a valid open descriptor that returns the same raw fd for as
        // long as it lives, and the `AsyncFd` owns it until it is dropped.
        let fd = unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE) }
            .map_err(io::Error::from)?;
        Ok(EchoSocket { fd })
    }

    /// Waits until a packet may be read.
    pub(crate) async fn readable(&self) -> io::Result<()> {
        let mut guard = self.fd.readable().await?;
        guard.clear_ready();
        Ok(())
    }

    /// Reads one IP datagram (from the IP header on); `WouldBlock` when none is queued.
    pub(crate) fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        packet_recv(self.fd.get_ref(), buf).map(|(n, _, _)| n)
    }

    /// Sends an IP datagram out of interface `ifindex` to link-layer address `mac`.
    pub(crate) fn send(&self, ifindex: u32, mac: [u8; 6], datagram: &[u8]) -> io::Result<()> {
        let mut sll_addr = [0u8; 8];
        sll_addr[..6].copy_from_slice(&mac);
        let addr = libc::sockaddr_ll {
            sll_family: libc::AF_PACKET as libc::c_ushort,
            sll_protocol: ETH_P_IP.to_be(),
            sll_ifindex: libc::c_int::try_from(ifindex)
                .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?,
            sll_hatype: 0,
            sll_pkttype: 0,
            sll_halen: 6,
            sll_addr,
        };
        // SAFETY: `datagram` is readable for its length and `addr` is a fully initialised
        // sockaddr_ll whose exact size is passed; the kernel copies both during the call.
        let n = unsafe {
            libc::sendto(
                self.fd.get_ref().as_raw_fd(),
                datagram.as_ptr().cast::<libc::c_void>(),
                datagram.len(),
                libc::MSG_DONTWAIT,
                std::ptr::from_ref(&addr).cast::<libc::sockaddr>(),
                size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
