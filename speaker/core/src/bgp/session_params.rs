//! What a BGPPeer's fields make of one session, decided here so that the speaker only
//! executes it: the AS number our OPEN carries and the address families it offers.

use std::net::IpAddr;

/// The AS number presented to the peer: `localASN` when set (FRR's `local-as <ASN> no-prepend
/// replace-as`, which MetalLB writes: the OPEN carries it and it alone is prepended to the
/// AS_PATH), otherwise `myASN`.
pub fn presented_as(my_asn: u32, local_asn: Option<u32>) -> u32 {
    local_asn.unwrap_or(my_asn)
}

/// The multiprotocol address families offered in our OPEN (and so the routes the session can
/// carry).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Families {
    /// IPv4 unicast.
    pub ipv4: bool,
    /// IPv6 unicast.
    pub ipv6: bool,
}

/// The families a session offers. As MetalLB (internal/bgp/frr/frr.go: a neighbour is
/// activated for the family of its address unless `dualStackAddressFamily`), only the peer
/// address's family by default; both with `dual_stack`. `disable_mp` (no multiprotocol across
/// families) wins over `dual_stack`: its meaning is unchanged.
pub fn offered_families(peer: IpAddr, dual_stack: bool, disable_mp: bool) -> Families {
    if dual_stack && !disable_mp {
        Families {
            ipv4: true,
            ipv6: true,
        }
    } else {
        Families {
            ipv4: peer.is_ipv4(),
            ipv6: peer.is_ipv6(),
        }
    }
}

/// The families of an unnumbered session (`interface`): both, as FRR's `neighbor IFACE
/// interface` offers them. Its only address is IPv6 link-local, so its IPv4 routes travel
/// with an IPv6 next hop (RFC 8950), which the session offers too.
pub fn unnumbered_families() -> Families {
    Families {
        ipv4: true,
        ipv6: true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const V4: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 200, 0, 1));
    const V6: IpAddr = IpAddr::V6(std::net::Ipv6Addr::new(0xfd00, 0x200, 0, 0, 0, 0, 0, 1));

    fn fams(ipv4: bool, ipv6: bool) -> Families {
        Families { ipv4, ipv6 }
    }

    #[test]
    fn local_asn_replaces_my_asn_when_set() {
        assert_eq!(presented_as(64512, None), 64512);
        assert_eq!(presented_as(64512, Some(65010)), 65010);
    }

    #[test]
    fn only_the_peer_family_unless_dual_stack() {
        assert_eq!(offered_families(V4, false, false), fams(true, false));
        assert_eq!(offered_families(V6, false, false), fams(false, true));
        assert_eq!(offered_families(V4, true, false), fams(true, true));
        assert_eq!(offered_families(V6, true, false), fams(true, true));
    }

    #[test]
    fn disable_mp_keeps_the_session_to_its_own_family() {
        for dual in [false, true] {
            assert_eq!(offered_families(V4, dual, true), fams(true, false));
            assert_eq!(offered_families(V6, dual, true), fams(false, true));
        }
    }
}
