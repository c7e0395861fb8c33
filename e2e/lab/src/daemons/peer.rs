//! A BGP neighbour (and its BFD timers) as the daemons' configuration writers see it.

use std::net::IpAddr;

use crate::{LabError, Result};

/// One BGP neighbor, as seen from the daemon being configured.
#[derive(Debug, Clone)]
pub struct BgpPeer {
    /// Protocol name (BIRD) / description; `[a-z0-9_]`.
    pub name: String,
    pub address: IpAddr,
    pub asn: u32,
    /// Exchange IPv4 unicast on this session.
    pub ipv4: bool,
    /// Exchange IPv6 unicast on this session (FRR wants IPv6 routes on an IPv6
    /// session; GoBGP accepts both on one).
    pub ipv6: bool,
    /// TCP MD5 password (RFC 2385).
    pub password: Option<String>,
    /// Wait for the peer to connect.
    pub passive: bool,
    /// eBGP multihop TTL.
    pub multihop: Option<u8>,
    /// Hold time in seconds (keepalive is a third of it).
    pub hold_time: u16,
    /// Run BFD on this session (BIRD: `bfd { .. }` in the BGP protocol plus a `protocol
    /// bfd`; FRR: a bfdd profile and `neighbor .. bfd profile`, bfdd started beside bgpd).
    pub bfd: Option<BfdTimers>,
    /// Act as a graceful restart helper (RFC 4724) for this peer: keep its routes, marked
    /// stale, while it restarts, until its End-of-RIB (BIRD: `graceful restart on`; FRR:
    /// `neighbor .. graceful-restart-helper`; GoBGP: `graceful-restart` helper-only with
    /// RFC 8538 notification support and per-family `mp-graceful-restart`).
    pub graceful_restart: bool,
}

/// BFD timers of a daemon's session (RFC 5880 intervals in milliseconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BfdTimers {
    /// Required minimum receive interval, ms.
    pub receive_ms: u32,
    /// Desired minimum transmit interval, ms.
    pub transmit_ms: u32,
    /// Detection multiplier.
    pub multiplier: u8,
    /// Wait for the peer to send first.
    pub passive: bool,
    /// FRR only: echo mode with this echo interval, ms (`echo-mode`, `echo transmit-interval`,
    /// `echo receive-interval`); BIRD has no echo function.
    pub echo_ms: Option<u32>,
}

impl BfdTimers {
    /// `ms` both ways, multiplier `multiplier`, active.
    pub fn new(ms: u32, multiplier: u8) -> Self {
        BfdTimers {
            receive_ms: ms,
            transmit_ms: ms,
            multiplier,
            passive: false,
            echo_ms: None,
        }
    }

    /// The same with FRR's echo mode at `ms`.
    pub fn echo(self, ms: u32) -> Self {
        BfdTimers {
            echo_ms: Some(ms),
            ..self
        }
    }
}

impl BgpPeer {
    /// A peer with the address family of `address` enabled, hold time 9 s.
    pub fn new(name: impl Into<String>, address: IpAddr, asn: u32) -> Self {
        BgpPeer {
            name: name.into(),
            address,
            asn,
            ipv4: address.is_ipv4(),
            ipv6: address.is_ipv6(),
            password: None,
            passive: false,
            multihop: None,
            hold_time: 9,
            bfd: None,
            graceful_restart: false,
        }
    }

    /// Acts as a graceful restart helper for this peer.
    pub fn graceful_restart(mut self, yes: bool) -> Self {
        self.graceful_restart = yes;
        self
    }

    /// Runs BFD on this session with `timers`.
    pub fn bfd(mut self, timers: BfdTimers) -> Self {
        self.bfd = Some(timers);
        self
    }

    pub fn families(mut self, ipv4: bool, ipv6: bool) -> Self {
        self.ipv4 = ipv4;
        self.ipv6 = ipv6;
        self
    }

    pub fn password(mut self, p: impl Into<String>) -> Self {
        self.password = Some(p.into());
        self
    }

    pub fn passive(mut self, yes: bool) -> Self {
        self.passive = yes;
        self
    }

    pub fn multihop(mut self, ttl: u8) -> Self {
        self.multihop = Some(ttl);
        self
    }

    pub fn hold_time(mut self, secs: u16) -> Self {
        self.hold_time = secs;
        self
    }

    pub(super) fn check(&self) -> Result<()> {
        if self.name.is_empty()
            || !self
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            return Err(LabError::Config(format!(
                "BGP peer name {:?} must be [A-Za-z0-9_]+",
                self.name
            )));
        }
        if let Some(p) = &self.password
            && (p.contains('"') || p.contains('\n') || p.contains(' '))
        {
            return Err(LabError::Config(format!(
                "password of peer {} must not contain quotes, spaces or newlines",
                self.name
            )));
        }
        crate::topology::ensure_lab_addr(self.address)
    }
}

/// The BGP peer the daemons' config tests render: node1, eBGP, with a password.
#[cfg(test)]
pub(crate) fn test_peer() -> BgpPeer {
    BgpPeer::new("node1", "10.200.0.11".parse().unwrap(), 64512).password("s3cret")
}
