//! OPEN (RFC 4271 §4.2): the one we send, with our capabilities (multiprotocol, route refresh,
//! 4-octet AS, graceful restart, BFD strict mode), and a peer's read into plain fields.

use netgauze_bgp_pkt::capabilities::{
    BgpCapability, FourOctetAsCapability, GracefulRestartAddressFamily, GracefulRestartCapability,
    MultiProtocolExtensionsCapability, UnrecognizedCapability,
};
use netgauze_bgp_pkt::open::{BgpOpenMessage, BgpOpenMessageParameter};
use netgauze_iana::address_family::AddressType;
use std::net::Ipv4Addr;

/// AS_TRANS (RFC 6793): put in the 2-octet "My AS" field when our AS does not fit.
pub const AS_TRANS: u16 = 23456;

/// The BFD Strict-Mode capability (draft-ietf-idr-bgp-bfd-strict-mode §5, IANA "BGP
/// Capability Codes" 74), length 0. netgauze does not know it, so it travels as an
/// unrecognized capability.
pub const BFD_STRICT_MODE_CAPABILITY: u8 = 74;

/// What we put in our OPEN.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpenConfig {
    /// Our AS (4-octet; AS_TRANS goes in the 2-octet field when it does not fit).
    pub asn: u32,
    /// Proposed hold time in seconds (0 or >= 3).
    pub hold_time: u16,
    /// BGP identifier.
    pub router_id: Ipv4Addr,
    /// Announce IPv4 unicast.
    pub ipv4: bool,
    /// Announce IPv6 unicast.
    pub ipv6: bool,
    /// Announce graceful restart (RFC 4724, with RFC 8538's notification support).
    pub graceful_restart: Option<GracefulRestart>,
    /// Announce the BFD Strict-Mode capability (draft §6: MUST when strict mode is on).
    pub bfd_strict: bool,
}

/// What our graceful restart capability says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GracefulRestart {
    /// Restart time in seconds: how long the peer keeps our routes after the session drops
    /// (12 bits on the wire; larger values are capped at [`MAX_RESTART_TIME`]).
    pub restart_time: u16,
    /// Restart State (R): this process has just restarted and the peer may hold our routes as
    /// stale; it should not wait for our End-of-RIB before sending its own.
    pub restarting: bool,
}

/// The largest restart time the capability carries (12 bits).
pub const MAX_RESTART_TIME: u16 = 0x0fff;

/// Builds our OPEN.
pub fn build_open(c: &OpenConfig) -> BgpOpenMessage {
    let my_as = u16::try_from(c.asn).unwrap_or(AS_TRANS);
    let mut caps = Vec::new();
    let mut families = Vec::new();
    if c.ipv4 {
        families.push(AddressType::Ipv4Unicast);
    }
    if c.ipv6 {
        families.push(AddressType::Ipv6Unicast);
    }
    for f in &families {
        caps.push(BgpCapability::MultiProtocolExtensions(
            MultiProtocolExtensionsCapability::new(*f),
        ));
    }
    caps.push(BgpCapability::RouteRefresh);
    caps.push(BgpCapability::FourOctetAs(FourOctetAsCapability::new(
        c.asn,
    )));
    if let Some(gr) = c.graceful_restart {
        // Forwarding State (F) is set for every family: the traffic to our routes is forwarded
        // by the node's kernel, whose state survives a restart of the speaker process, so the
        // router may keep using the stale routes while we restart. N (RFC 8538): a
        // NOTIFICATION other than Hard Reset keeps the routes too, so the speaker can say why
        // it closes without losing them.
        let afs: Vec<_> = families
            .iter()
            .map(|f| GracefulRestartAddressFamily::new(true, *f))
            .collect();
        caps.push(BgpCapability::GracefulRestartCapability(
            GracefulRestartCapability::new(
                gr.restarting,
                true,
                gr.restart_time.min(MAX_RESTART_TIME),
                afs,
            ),
        ));
    }
    if c.bfd_strict {
        caps.push(BgpCapability::Unrecognized(UnrecognizedCapability::new(
            BFD_STRICT_MODE_CAPABILITY,
            Vec::new(),
        )));
    }
    BgpOpenMessage::new(
        my_as,
        c.hold_time,
        c.router_id,
        vec![BgpOpenMessageParameter::new_capabilities(caps)],
    )
}

/// What a peer's OPEN says, read into plain fields.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerOpen {
    /// BGP version field.
    pub version: u8,
    /// The peer's AS (from the 4-octet capability when present).
    pub asn: u32,
    /// The 2-octet "My AS" field as sent.
    pub my_as_field: u16,
    /// Proposed hold time.
    pub hold_time: u16,
    /// BGP identifier.
    pub router_id: Ipv4Addr,
    /// Announced 4-octet AS.
    pub four_octet_as: bool,
    /// Announced multiprotocol IPv4 unicast.
    pub mp_ipv4: bool,
    /// Announced multiprotocol IPv6 unicast.
    pub mp_ipv6: bool,
    /// Announced any multiprotocol capability at all (if none, IPv4 unicast is implied).
    pub mp_any: bool,
    /// Announced route refresh.
    pub route_refresh: bool,
    /// Announced graceful restart.
    pub graceful_restart: bool,
    /// Set the N bit in its graceful restart capability (RFC 8538): NOTIFICATIONs other than
    /// Hard Reset keep routes too.
    pub graceful_notification: bool,
    /// Set the Restart State (R) bit: it has just restarted.
    pub restarting: bool,
    /// Announced the BFD Strict-Mode capability.
    pub bfd_strict: bool,
}

impl PeerOpen {
    /// Reads a parsed OPEN.
    pub fn from_open(open: &BgpOpenMessage) -> Self {
        let mut p = PeerOpen {
            version: open.version(),
            asn: u32::from(open.my_as()),
            my_as_field: open.my_as(),
            hold_time: open.hold_time(),
            router_id: open.bgp_id(),
            four_octet_as: false,
            mp_ipv4: false,
            mp_ipv6: false,
            mp_any: false,
            route_refresh: false,
            graceful_restart: false,
            graceful_notification: false,
            restarting: false,
            bfd_strict: false,
        };
        for cap in open.capabilities() {
            match cap {
                BgpCapability::FourOctetAs(a) => {
                    p.four_octet_as = true;
                    p.asn = a.asn4();
                }
                BgpCapability::MultiProtocolExtensions(mp) => {
                    p.mp_any = true;
                    match mp.address_type() {
                        AddressType::Ipv4Unicast => p.mp_ipv4 = true,
                        AddressType::Ipv6Unicast => p.mp_ipv6 = true,
                        _ => {}
                    }
                }
                BgpCapability::RouteRefresh | BgpCapability::EnhancedRouteRefresh => {
                    p.route_refresh = true
                }
                BgpCapability::GracefulRestartCapability(gr) => {
                    p.graceful_restart = true;
                    p.graceful_notification = gr.graceful_notification();
                    p.restarting = gr.restart();
                }
                BgpCapability::Unrecognized(u) if *u.code() == BFD_STRICT_MODE_CAPABILITY => {
                    p.bfd_strict = true;
                }
                _ => {}
            }
        }
        p
    }

    /// Whether the peer accepts IPv4 unicast (RFC 4760: without any multiprotocol
    /// capability, IPv4 unicast is implied).
    pub fn accepts_ipv4(&self) -> bool {
        self.mp_ipv4 || !self.mp_any
    }
}
