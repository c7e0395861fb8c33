//! The TCP connection of a BGP session, prepared before `connect`: VRF device
//! (SO_BINDTODEVICE on the VRF master, so that routing, the source address and so the next
//! hop come from the VRF's table and interfaces), source address, TTL (1 for single-hop eBGP,
//! 255 for multihop eBGP and iBGP) and TCP MD5 (RFC 2385) through a raw
//! `setsockopt(TCP_MD5SIG)`, which socket2 has no helper for. The key must be installed before
//! `connect` so that the SYN is signed.
//!
//! The only `unsafe` of the BGP speaker is here, with its SAFETY notes.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;
use tokio::net::{TcpSocket, TcpStream};

/// Longest TCP MD5 key Linux accepts (TCP_MD5SIG_MAXKEYLEN).
pub const MD5_MAX_KEY_LEN: usize = 80;

/// Errors setting up the socket and connecting.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// Creating or configuring the socket failed.
    #[error("socket setup: {0}")]
    Socket(#[source] std::io::Error),
    /// The VRF device to bind to does not exist in this network namespace.
    #[error("VRF {0} does not exist on this node (no device of that name): {1}")]
    NoDevice(String, #[source] std::io::Error),
    /// TCP MD5 could not be configured.
    #[error("TCP MD5 (RFC 2385) setup: {0}")]
    Md5(String),
    /// The connect timed out.
    #[error("connect to {0} timed out after {1:?}")]
    ConnectTimeout(SocketAddr, Duration),
    /// The connect failed.
    #[error("connect to {0}: {1}")]
    Connect(SocketAddr, #[source] std::io::Error),
    /// An unnumbered peer's address could not be discovered on its interface.
    #[error("{0}")]
    Neighbour(#[from] crate::bgp::neighbour::DiscoveryError),
}

/// How to open one session's connection.
#[derive(Clone)]
pub struct ConnectOptions {
    /// The peer's address and port.
    pub peer: SocketAddr,
    /// TTL / hop limit of our packets.
    pub ttl: u32,
    /// TCP MD5 key.
    pub password: Option<String>,
    /// Source address; `None` lets the kernel choose.
    pub source_address: Option<IpAddr>,
    /// VRF device to bind the socket to (SO_BINDTODEVICE); `None`: the default VRF.
    pub device: Option<String>,
    /// How long `connect` may take.
    pub timeout: Duration,
}

/// Opens the TCP connection with source address, TTL and TCP MD5 set before connecting.
pub async fn connect(cfg: &ConnectOptions) -> Result<TcpStream, ConnectError> {
    let peer = cfg.peer;
    let socket = match peer {
        SocketAddr::V4(_) => TcpSocket::new_v4(),
        SocketAddr::V6(_) => TcpSocket::new_v6(),
    }
    .map_err(ConnectError::Socket)?;
    {
        let s = socket2::SockRef::from(&socket);
        match peer {
            SocketAddr::V4(_) => s.set_ttl_v4(cfg.ttl),
            SocketAddr::V6(_) => s.set_unicast_hops_v6(cfg.ttl),
        }
        .map_err(ConnectError::Socket)?;
        s.set_tcp_nodelay(true).map_err(ConnectError::Socket)?;
        if let Some(device) = &cfg.device {
            // Before bind and connect: the source address is then chosen, and routed, in the
            // VRF.
            s.bind_device(Some(device.as_bytes())).map_err(|e| {
                if e.raw_os_error() == Some(libc::ENODEV) {
                    ConnectError::NoDevice(device.clone(), e)
                } else {
                    ConnectError::Socket(e)
                }
            })?;
        }
    }
    if let Some(password) = &cfg.password {
        set_tcp_md5(&socket, peer.ip(), password.as_bytes())?;
    }
    if let Some(src) = cfg.source_address {
        socket
            .bind(SocketAddr::new(src, 0))
            .map_err(ConnectError::Socket)?;
    }
    match tokio::time::timeout(cfg.timeout, socket.connect(peer)).await {
        Ok(Ok(stream)) => Ok(stream),
        Ok(Err(e)) => Err(ConnectError::Connect(peer, e)),
        Err(_) => Err(ConnectError::ConnectTimeout(peer, cfg.timeout)),
    }
}

/// `struct tcp_md5sig` from `<linux/tcp.h>` (libc does not define it).
#[repr(C)]
struct TcpMd5Sig {
    tcpm_addr: libc::sockaddr_storage,
    tcpm_flags: u8,
    tcpm_prefixlen: u8,
    tcpm_keylen: u16,
    tcpm_ifindex: libc::c_int,
    tcpm_key: [u8; MD5_MAX_KEY_LEN],
}

/// Installs an RFC 2385 key for `peer` on the socket (must happen before connect, so the
/// SYN is signed).
pub fn set_tcp_md5(
    socket: &impl std::os::fd::AsRawFd,
    peer: IpAddr,
    key: &[u8],
) -> Result<(), ConnectError> {
    if key.len() > MD5_MAX_KEY_LEN {
        return Err(ConnectError::Md5(format!(
            "password is {} bytes; Linux accepts at most {MD5_MAX_KEY_LEN}",
            key.len()
        )));
    }
    // SAFETY: all-zero is a valid value for this plain C struct.
    let mut sig: TcpMd5Sig = unsafe { std::mem::zeroed() };
    match peer {
        IpAddr::V4(a) => {
            // SAFETY: sockaddr_storage is large and aligned enough for sockaddr_in.
            let sin = unsafe {
                &mut *(&mut sig.tcpm_addr as *mut libc::sockaddr_storage as *mut libc::sockaddr_in)
            };
            sin.sin_family = libc::AF_INET as libc::sa_family_t;
            sin.sin_addr = libc::in_addr {
                s_addr: u32::from_ne_bytes(a.octets()),
            };
        }
        IpAddr::V6(a) => {
            // SAFETY: sockaddr_storage is large and aligned enough for sockaddr_in6.
            let sin6 = unsafe {
                &mut *(&mut sig.tcpm_addr as *mut libc::sockaddr_storage as *mut libc::sockaddr_in6)
            };
            sin6.sin6_family = libc::AF_INET6 as libc::sa_family_t;
            sin6.sin6_addr = libc::in6_addr {
                s6_addr: a.octets(),
            };
        }
    }
    sig.tcpm_keylen = key.len() as u16;
    sig.tcpm_key[..key.len()].copy_from_slice(key);
    // SAFETY: the fd is a valid socket owned by the caller; the pointer and length describe
    // `sig`, which outlives the call.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_MD5SIG,
            &sig as *const TcpMd5Sig as *const libc::c_void,
            std::mem::size_of::<TcpMd5Sig>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(ConnectError::Md5(
            std::io::Error::last_os_error().to_string(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    /// A VRF device that does not exist is told apart from other socket failures (the
    /// session reports it as a missing VRF).
    #[tokio::test]
    async fn a_missing_vrf_device_is_reported_as_such() {
        let opts = ConnectOptions {
            peer: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 9),
            ttl: 1,
            password: None,
            source_address: None,
            device: Some("nosuchvrf0".into()),
            timeout: Duration::from_secs(1),
        };
        match connect(&opts).await {
            Err(ConnectError::NoDevice(name, _)) => assert_eq!(name, "nosuchvrf0"),
            // Binding to a device needs CAP_NET_RAW; without it the kernel says EPERM first.
            Err(ConnectError::Socket(e)) if e.raw_os_error() == Some(libc::EPERM) => {
                assert_ne!(
                    std::env::var("CI").as_deref(),
                    Ok("true"),
                    "SO_BINDTODEVICE needs CAP_NET_RAW, which CI has"
                );
                eprintln!("skipped: SO_BINDTODEVICE needs CAP_NET_RAW");
            }
            other => panic!("expected NoDevice, got {other:?}"),
        }
    }

    #[test]
    fn md5_key_too_long_is_refused() {
        let s = std::net::UdpSocket::bind("127.0.0.1:0").expect("socket");
        let err =
            set_tcp_md5(&s, IpAddr::V4(Ipv4Addr::LOCALHOST), &[b'x'; 81]).expect_err("too long");
        assert!(err.to_string().contains("80"), "{err}");
    }
}
