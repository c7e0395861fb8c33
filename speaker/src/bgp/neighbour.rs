//! Finding an unnumbered peer: on the BGPPeer's interface, a Router Solicitation to
//! ff02::2, an echo request to ff02::1 and a Router Advertisement with lifetime 0 (which tells
//! FRR our address, see the core module), then whatever answers, for a second per round,
//! until the pure [`choose`] names the router or the time is up. A raw ICMPv6 socket bound to
//! the interface (CAP_NET_RAW, which the speaker has); it lives for one discovery only.

use ferrolb_speaker_core::bgp::neighbour::{
    ALL_NODES, ALL_ROUTERS, Discovery, Observation, choose, classify, echo_request,
    router_advertisement, router_solicitation,
};
use nix::sys::socket::SockaddrIn6;
use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use std::net::{Ipv6Addr, SocketAddrV6};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

/// How long one round listens after its probes.
const ROUND: Duration = Duration::from_secs(1);
/// Hop limit of Router Solicitations (RFC 4861 §4.1: receivers drop anything else).
const ND_HOP_LIMIT: u32 = 255;

/// The router found on an interface.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Neighbour {
    /// Its link-local address.
    pub address: Ipv6Addr,
    /// The interface's index: the scope of `address`.
    pub ifindex: u32,
}

/// Why no neighbour was found; each says "no neighbour discovered on IFACE" first, which the
/// session's status shows as it is.
#[derive(Debug, thiserror::Error)]
pub enum DiscoveryError {
    /// The interface does not exist on this node.
    #[error("no neighbour discovered on {0}: the interface does not exist on this node")]
    NoInterface(String),
    /// The probe socket could not be opened or used.
    #[error("no neighbour discovered on {0}: probing failed: {1}")]
    Socket(String, #[source] std::io::Error),
    /// Nothing answered.
    #[error(
        "no neighbour discovered on {0}: no Router Advertisement and no answer to an all-nodes \
         ping from a link-local address within {1:?}"
    )]
    NotFound(String, Duration),
    /// Several addresses answered alike.
    #[error(
        "no neighbour discovered on {0}: more than one answered ({1:?}); unnumbered peering \
         needs a point-to-point link"
    )]
    Ambiguous(String, Vec<Ipv6Addr>),
}

/// The IPv6 addresses of `interface` on this node.
pub fn interface_addresses(interface: &str) -> Vec<Ipv6Addr> {
    match nix::ifaddrs::getifaddrs() {
        Ok(addrs) => addrs
            .filter(|a| a.interface_name == interface)
            .filter_map(|a| a.address.and_then(|s| s.as_sockaddr_in6().map(|s| s.ip())))
            .collect(),
        Err(_) => Vec::new(),
    }
}

/// Finds the router on `interface` within `timeout` (at least one round).
pub async fn discover(interface: &str, timeout: Duration) -> Result<Neighbour, DiscoveryError> {
    let interface = interface.to_string();
    let name = interface.clone();
    match tokio::task::spawn_blocking(move || discover_blocking(&interface, timeout)).await {
        Ok(r) => r,
        Err(e) => Err(DiscoveryError::Socket(name, std::io::Error::other(e))),
    }
}

fn discover_blocking(interface: &str, timeout: Duration) -> Result<Neighbour, DiscoveryError> {
    let ifindex = nix::net::if_::if_nametoindex(interface)
        .map_err(|_| DiscoveryError::NoInterface(interface.to_string()))?;
    let io = |e: std::io::Error| DiscoveryError::Socket(interface.to_string(), e);
    let socket = Socket::new(Domain::IPV6, Type::RAW, Some(Protocol::ICMPV6)).map_err(io)?;
    // Only what arrives on the interface, and our probes leave by it.
    socket.bind_device(Some(interface.as_bytes())).map_err(io)?;
    socket.set_multicast_if_v6(ifindex).map_err(io)?;
    socket.set_multicast_hops_v6(ND_HOP_LIMIT).map_err(io)?;
    // Our own echo request must not come back for us to answer and hear.
    socket.set_multicast_loop_v6(false).map_err(io)?;
    socket
        .set_read_timeout(Some(Duration::from_millis(100)))
        .map_err(io)?;
    // Tells our pings' replies from other pings' (the process id is as good as any).
    let echo_id = (std::process::id() & 0xffff) as u16;
    let deadline = Instant::now() + timeout.max(ROUND);
    let mut seq = 0u16;
    let mut buf = [0u8; 1500];
    loop {
        let own = interface_addresses(interface);
        seq = seq.wrapping_add(1);
        let to = |group| SockAddr::from(SocketAddrV6::new(group, 0, 0, ifindex));
        socket
            .send_to(&router_solicitation(), &to(ALL_ROUTERS))
            .map_err(io)?;
        socket
            .send_to(&echo_request(echo_id, seq), &to(ALL_NODES))
            .map_err(io)?;
        socket
            .send_to(&router_advertisement(), &to(ALL_NODES))
            .map_err(io)?;
        let round_end = (Instant::now() + ROUND).min(deadline);
        let mut heard = Vec::new();
        while Instant::now() < round_end {
            match nix::sys::socket::recvfrom::<SockaddrIn6>(socket.as_raw_fd(), &mut buf) {
                Ok((len, Some(from))) => {
                    if let Some(kind) = classify(&buf[..len.min(buf.len())], echo_id) {
                        heard.push(Observation {
                            from: from.ip(),
                            heard: kind,
                        });
                    }
                }
                Ok((_, None)) => {}
                Err(nix::errno::Errno::EAGAIN | nix::errno::Errno::EINTR) => {}
                Err(e) => return Err(io(e.into())),
            }
        }
        match choose(&heard, &own) {
            Discovery::Found(address) => return Ok(Neighbour { address, ifindex }),
            Discovery::Ambiguous(all) => {
                return Err(DiscoveryError::Ambiguous(interface.to_string(), all));
            }
            Discovery::Nothing if Instant::now() >= deadline => {
                return Err(DiscoveryError::NotFound(interface.to_string(), timeout));
            }
            Discovery::Nothing => {}
        }
    }
}
