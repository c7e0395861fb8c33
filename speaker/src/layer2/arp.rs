//! The ARP side of layer 2 mode on one interface: an `AF_PACKET` socket bound to `ETH_P_ARP`
//! (never `ETH_P_ALL`: the kernel then hands us ARP frames of this interface only, a few per
//! second on a busy LAN, instead of every packet), answering requests for owned IPv4
//! addresses and sending gratuitous ARP.

use super::frames::{self, MacAddr};
use super::sys;
use std::io;
use std::net::Ipv4Addr;
use std::os::fd::OwnedFd;
use tokio::io::unix::AsyncFd;

/// `ETH_P_ARP`.
const ETH_P_ARP: u16 = frames::ETHERTYPE_ARP;
/// Enough for any ARP frame (60 bytes with padding) plus slack for odd drivers.
const RECV_BUF: usize = 256;

/// An ARP socket on one interface.
#[derive(Debug)]
pub struct ArpSocket {
    fd: AsyncFd<OwnedFd>,
    ifindex: u32,
    mac: MacAddr,
}

impl ArpSocket {
    /// Opens the socket on interface `ifindex` whose MAC is `mac`. Needs `CAP_NET_RAW` and a
    /// tokio runtime.
    pub fn open(ifindex: u32, mac: MacAddr) -> io::Result<Self> {
        let fd = sys::packet_socket(ETH_P_ARP, ifindex)?;
        Ok(ArpSocket {
            fd: sys::async_fd(fd)?,
            ifindex,
            mac,
        })
    }

    /// The interface's MAC this socket answers with.
    pub fn mac(&self) -> MacAddr {
        self.mac
    }

    /// Sends one frame. Packet sockets do not block on send in practice (the frame goes to
    /// the device queue or is dropped), so a `WouldBlock` is reported, not waited for.
    pub fn send(&self, frame: &[u8]) -> io::Result<()> {
        sys::packet_send(self.fd.get_ref(), frame).map(|_| ())
    }

    /// Sends the gratuitous ARP for `ip`, in both forms hosts listen to: an RFC 5227
    /// announcement (request) and a broadcast reply (some hosts only update from replies).
    pub fn send_gratuitous(&self, ip: Ipv4Addr) -> io::Result<()> {
        self.send(&frames::gratuitous_arp_request(self.mac, ip))?;
        self.send(&frames::gratuitous_arp_reply(self.mac, ip))
    }

    /// Receives ARP frames and answers requests for addresses `owns` accepts, until the socket
    /// fails. `answered` is called after each reply sent. Frames we sent ourselves
    /// (`PACKET_OUTGOING`) and frames of another interface (possible in the instant between
    /// socket(2) and bind(2)) are skipped.
    pub async fn serve(
        &self,
        owns: impl Fn(Ipv4Addr) -> bool,
        answered: impl Fn(Ipv4Addr),
    ) -> io::Result<()> {
        let mut buf = [0u8; RECV_BUF];
        loop {
            let mut guard = self.fd.readable().await?;
            loop {
                let (n, ifindex, pkttype) =
                    match guard.try_io(|fd| sys::packet_recv(fd.get_ref(), &mut buf)) {
                        Ok(Ok(got)) => got,
                        Ok(Err(e)) if e.kind() == io::ErrorKind::Interrupted => continue,
                        Ok(Err(e)) => return Err(e),
                        // Drained: wait for readiness again.
                        Err(_would_block) => break,
                    };
                if pkttype == libc::PACKET_OUTGOING
                    || u32::try_from(ifindex).ok() != Some(self.ifindex)
                {
                    continue;
                }
                let Some(frame) = buf.get(..n) else { continue };
                let Some(reply) = frames::arp_response(frame, self.mac, &owns) else {
                    continue;
                };
                match frames::parse_arp_frame(&reply) {
                    Some((_, arp)) => match self.send(&reply) {
                        Ok(()) => answered(arp.sender_ip),
                        Err(error) => {
                            tracing::warn!(%error, ifindex, "sending ARP reply failed")
                        }
                    },
                    None => continue,
                }
            }
        }
    }
}
