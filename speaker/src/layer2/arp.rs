//! The ARP side of layer 2 mode on one interface: an `AF_PACKET` socket bound to `ETH_P_ARP`
//! (never `ETH_P_ALL`: the kernel then hands us ARP frames of this interface only, a few per
//! second on a busy LAN, instead of every packet), answering requests for owned IPv4
//! addresses and sending gratuitous ARP.
//!
//! # Latency
//!
//! The kernel answers ARP for its own addresses inside the receive softirq, in a few
//! microseconds. To stay within a small factor of that, the receive path here is as short as
//! userspace allows:
//!
//! - a classic BPF filter ([`ARP_REQUEST_FILTER`]) passes only incoming ARP *requests*, so
//!   replies, our own gratuitous frames and everything else never wake the reader;
//! - [`ArpSocket::serve_blocking`] runs on a dedicated thread blocked in `recvfrom(2)`: the
//!   kernel wakes exactly that thread, which looks the target up in the owned set (a read lock
//!   nobody holds for long) and sends the reply itself, with no reactor, task scheduling or
//!   channel in between;
//! - the reply is built in a stack buffer ([`frames::arp_reply_into`]), no allocation.
//!
//! That still leaves a thread wake-up per request (~30 µs on a small VM). Where the kernel
//! allows it, [`super::kernel_responder`] answers owned addresses before this socket ever sees the
//! request, and this socket answers only what that program passes on (or everything, where it
//! cannot be loaded).

use super::sys;
use ferrolb_speaker_core::layer2::frames::{self, MacAddr};
use std::io;
use std::net::Ipv4Addr;
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// `ETH_P_ARP`.
const ETH_P_ARP: u16 = frames::ETHERTYPE_ARP;
/// Enough for any ARP frame (60 bytes with padding) plus slack for odd drivers.
const RECV_BUF: usize = 256;
/// How often a blocked reader wakes up without traffic to check whether it must stop. Only
/// bounds how long a closed interface's thread and descriptor linger; answering stops at once
/// because the owned set is emptied first.
pub(crate) const STOP_POLL: Duration = Duration::from_millis(250);

/// `SKF_AD_OFF + SKF_AD_PKTTYPE` (`<linux/filter.h>`): the ancillary load of the packet type.
const SKF_PKTTYPE: u32 = 0xffff_f000 + 4;

const fn bpf(code: u16, jt: u8, jf: u8, k: u32) -> libc::sock_filter {
    libc::sock_filter { code, jt, jf, k }
}

/// Classic BPF run by the kernel on every ARP frame of the interface before it is queued to
/// us: accept only frames that did not originate here (`pkttype != PACKET_OUTGOING`) and whose
/// ARP opcode (offset 20: 14 bytes of Ethernet header + 6 into the ARP header) is 1, request.
/// Everything else is dropped in the kernel and costs us no wake-up.
pub const ARP_REQUEST_FILTER: [libc::sock_filter; 6] = [
    // A = skb->pkt_type
    bpf(
        (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16,
        0,
        0,
        SKF_PKTTYPE,
    ),
    // if A == PACKET_OUTGOING goto drop
    bpf(
        (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16,
        3,
        0,
        libc::PACKET_OUTGOING as u32,
    ),
    // A = ARP opcode
    bpf(
        (libc::BPF_LD | libc::BPF_H | libc::BPF_ABS) as u16,
        0,
        0,
        20,
    ),
    // if A == 1 (request) goto accept else goto drop
    bpf(
        (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16,
        0,
        1,
        1,
    ),
    // accept: the whole frame (the reader's buffer bounds it anyway)
    bpf((libc::BPF_RET | libc::BPF_K) as u16, 0, 0, 0xffff),
    // drop
    bpf((libc::BPF_RET | libc::BPF_K) as u16, 0, 0, 0),
];

/// An ARP socket on one interface.
#[derive(Debug)]
pub struct ArpSocket {
    fd: OwnedFd,
    ifindex: u32,
    mac: MacAddr,
}

impl ArpSocket {
    /// Opens the socket on interface `ifindex` whose MAC is `mac`, with [`ARP_REQUEST_FILTER`]
    /// attached. Needs `CAP_NET_RAW`.
    pub fn open(ifindex: u32, mac: MacAddr) -> io::Result<Self> {
        let fd = sys::packet_socket(ETH_P_ARP, ifindex, &ARP_REQUEST_FILTER)?;
        sys::set_recv_timeout(&fd, STOP_POLL)?;
        Ok(ArpSocket { fd, ifindex, mac })
    }

    /// Sends one frame. Never blocks: a full device queue is reported as `WouldBlock`.
    pub fn send(&self, frame: &[u8]) -> io::Result<()> {
        sys::packet_send(&self.fd, frame).map(|_| ())
    }

    /// Sends the gratuitous ARP for `ip`, in both forms hosts listen to: an RFC 5227
    /// announcement (request) and a broadcast reply (some hosts only update from replies).
    pub fn send_gratuitous(&self, ip: Ipv4Addr) -> io::Result<()> {
        self.send(&frames::gratuitous_arp_request(self.mac, ip))?;
        self.send(&frames::gratuitous_arp_reply(self.mac, ip))
    }

    /// Receives ARP requests and answers those for addresses `owns` accepts, blocking the
    /// calling thread, until `stop` is set (checked at least every [`STOP_POLL`]) or the
    /// socket fails. `answered` is called after each reply sent with the requester's address;
    /// `announced_elsewhere` with an owned address another MAC announced in a gratuitous ARP
    /// (the request form, which the filter passes): its new owner has taken over, which ends a
    /// make-before-break hand-over of it.
    /// Frames we sent ourselves (`PACKET_OUTGOING`) and frames of another interface (possible
    /// in the instant between socket(2) and bind(2), before the filter applies too) are
    /// skipped here as well.
    pub fn serve_blocking(
        &self,
        stop: &AtomicBool,
        owns: impl Fn(Ipv4Addr) -> bool,
        answered: impl Fn(Ipv4Addr),
        announced_elsewhere: impl Fn(Ipv4Addr),
    ) -> io::Result<()> {
        let mut buf = [0u8; RECV_BUF];
        let mut reply = [0u8; frames::ARP_FRAME_LEN];
        while !stop.load(Ordering::Relaxed) {
            let (n, ifindex, pkttype) = match sys::packet_recv(&self.fd, &mut buf) {
                Ok(got) => got,
                // SO_RCVTIMEO expired (EAGAIN) or a signal: look at `stop` and wait again.
                Err(e) if sys::is_timeout_or_interrupt(&e) => continue,
                Err(e) => return Err(e),
            };
            if pkttype == libc::PACKET_OUTGOING || u32::try_from(ifindex).ok() != Some(self.ifindex)
            {
                continue;
            }
            let Some(frame) = buf.get(..n) else { continue };
            if let Some((_, arp)) = frames::parse_arp_frame(frame)
                && arp.is_gratuitous()
                && arp.sender_mac != self.mac
                && owns(arp.sender_ip)
            {
                announced_elsewhere(arp.sender_ip);
                continue;
            }
            let Some(request) = frames::arp_reply_into(frame, self.mac, &owns, &mut reply) else {
                continue;
            };
            match self.send(&reply) {
                Ok(()) => answered(request.sender_ip),
                Err(error) => {
                    tracing::warn!(%error, ifindex = self.ifindex, "sending ARP reply failed")
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs a classic BPF program of the few instruction kinds the filter uses over `frame`
    /// with packet type `pkttype`, as the kernel would; returns the accepted length.
    fn run_bpf(program: &[libc::sock_filter], frame: &[u8], pkttype: u8) -> u32 {
        let mut a: u32 = 0;
        let mut pc = 0usize;
        while let Some(ins) = program.get(pc) {
            let code = u32::from(ins.code);
            match code {
                c if c == libc::BPF_LD | libc::BPF_W | libc::BPF_ABS && ins.k == SKF_PKTTYPE => {
                    a = u32::from(pkttype);
                }
                c if c == libc::BPF_LD | libc::BPF_H | libc::BPF_ABS => {
                    let at = usize::try_from(ins.k).expect("offset");
                    match frame.get(at..at + 2) {
                        Some(b) => a = u32::from(u16::from_be_bytes([b[0], b[1]])),
                        // Out of bounds: the kernel drops the frame.
                        None => return 0,
                    }
                }
                c if c == libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K => {
                    let skip = if a == ins.k { ins.jt } else { ins.jf };
                    pc += usize::from(skip);
                }
                c if c == libc::BPF_RET | libc::BPF_K => return ins.k,
                other => panic!("instruction {other:#x} not modelled"),
            }
            pc += 1;
        }
        panic!("program fell off its end")
    }

    #[test]
    fn filter_passes_incoming_requests_only() {
        let mac = MacAddr([2, 0, 0, 0, 0, 1]);
        let peer = MacAddr([2, 0, 0, 0, 0, 2]);
        let ip: Ipv4Addr = "10.200.0.10".parse().expect("ip");
        let peer_ip: Ipv4Addr = "10.200.0.2".parse().expect("ip");
        let request = frames::arp_frame(
            MacAddr::BROADCAST,
            peer,
            &frames::ArpPacket {
                op: frames::ArpOp::Request,
                sender_mac: peer,
                sender_ip: peer_ip,
                target_mac: MacAddr::ZERO,
                target_ip: ip,
            },
        );
        let reply = frames::gratuitous_arp_reply(peer, peer_ip);
        let garp_request = frames::gratuitous_arp_request(mac, ip);
        let f = &ARP_REQUEST_FILTER;
        assert!(run_bpf(f, &request, libc::PACKET_BROADCAST) > 0);
        assert!(run_bpf(f, &request, libc::PACKET_HOST) > 0);
        assert_eq!(run_bpf(f, &reply, libc::PACKET_BROADCAST), 0);
        // Our own gratuitous announcement is a request, but outgoing.
        assert_eq!(run_bpf(f, &garp_request, libc::PACKET_OUTGOING), 0);
        // A truncated frame is dropped, not read out of bounds.
        assert_eq!(run_bpf(f, &request[..20], libc::PACKET_HOST), 0);
    }
}
