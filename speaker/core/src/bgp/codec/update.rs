//! UPDATE (RFC 4271 §4.3, RFC 4760 for IPv6): the announcements and withdrawals we send,
//! batched to fit 4096 octets, End-of-RIB and ROUTE-REFRESH, and a received UPDATE read into
//! plain fields (for tests and logs; we keep no Adj-RIB-In).

use super::header::MAX_MESSAGE_LEN;
use super::open::AS_TRANS;
use crate::bgp::RouteAttributes;
use ferrolb_config::CommunityValue;
use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use netgauze_bgp_pkt::community::{Community, LargeCommunity};
use netgauze_bgp_pkt::nlri::{Ipv4Unicast, Ipv4UnicastAddress, Ipv6Unicast, Ipv6UnicastAddress};
use netgauze_bgp_pkt::path_attribute::{
    As2PathSegment, As4PathSegment, AsPath, AsPathSegmentType, Communities, LargeCommunities,
    LocalPreference, MpReach, MpUnreach, NextHop, Origin, PathAttribute, PathAttributeValue,
};
use netgauze_bgp_pkt::route_refresh::BgpRouteRefreshMessage;
use netgauze_bgp_pkt::update::BgpUpdateMessage;
use netgauze_iana::address_family::AddressType;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Session-wide facts an UPDATE depends on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UpdateContext {
    /// Our AS.
    pub local_as: u32,
    /// eBGP (prepend our AS, no LOCAL_PREF) or iBGP (empty AS_PATH, LOCAL_PREF).
    pub ebgp: bool,
    /// Negotiated 4-octet AS: AS_PATH width.
    pub four_octet_as: bool,
    /// NEXT_HOP for IPv4 prefixes (our IPv4 address on the session, or a configured one).
    pub next_hop_v4: Option<Ipv4Addr>,
    /// Global IPv6 next hop for IPv6 prefixes.
    pub next_hop_v6: Option<Ipv6Addr>,
    /// Link-local IPv6 next hop (sent too when the session runs over link-local).
    pub next_hop_v6_link_local: Option<Ipv6Addr>,
    /// Extended next hop negotiated (RFC 8950): IPv4 prefixes go in MP_REACH_NLRI with the
    /// IPv6 next hops (`next_hop_v6` and `next_hop_v6_link_local`) instead of NEXT_HOP.
    pub ipv4_via_ipv6: bool,
}

/// Errors building UPDATEs.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BuildError {
    /// No next hop for the family.
    #[error("no {0} next hop for this session")]
    NoNextHop(&'static str),
    /// A prefix netgauze refuses (multicast/broadcast).
    #[error("prefix {0} is not unicast")]
    NotUnicast(IpNet),
}

fn attr(optional: bool, transitive: bool, extended: bool, v: PathAttributeValue) -> PathAttribute {
    match PathAttribute::from(optional, transitive, false, extended, v) {
        Ok(a) => a,
        // Flags come from the constants below, matched to each attribute type; a mismatch is a
        // bug in this file, caught by the round-trip tests.
        Err((v, e)) => panic!("attribute flags for {v:?}: {e}"),
    }
}

fn common_attributes(ctx: &UpdateContext, attrs: &RouteAttributes) -> (Vec<PathAttribute>, usize) {
    let mut out = Vec::new();
    let mut size = 0usize;
    out.push(attr(
        false,
        true,
        false,
        PathAttributeValue::Origin(Origin::IGP),
    ));
    size += 4;
    let as_path = match (ctx.ebgp, ctx.four_octet_as) {
        (false, false) => AsPath::As2PathSegments(Box::new([])),
        (false, true) => AsPath::As4PathSegments(Box::new([])),
        (true, false) => {
            // Without the 4-octet capability an AS above 65535 travels as AS_TRANS (RFC 6793);
            // we never send AS4_PATH since we originate (the peer learns the real AS from OPEN).
            let a = u16::try_from(ctx.local_as).unwrap_or(AS_TRANS);
            AsPath::As2PathSegments(Box::new([As2PathSegment::new(
                AsPathSegmentType::AsSequence,
                vec![a],
            )]))
        }
        (true, true) => AsPath::As4PathSegments(Box::new([As4PathSegment::new(
            AsPathSegmentType::AsSequence,
            vec![ctx.local_as],
        )])),
    };
    out.push(attr(
        false,
        true,
        false,
        PathAttributeValue::AsPath(as_path),
    ));
    size += 3 + 2 + 4;
    if !ctx.ebgp
        && let Some(lp) = attrs.local_pref
    {
        out.push(attr(
            false,
            true,
            false,
            PathAttributeValue::LocalPreference(LocalPreference::new(lp)),
        ));
        size += 7;
    }
    let std: Vec<Community> = attrs
        .communities
        .iter()
        .filter_map(|c| match c {
            CommunityValue::Standard(v) => Some(Community::new(*v)),
            CommunityValue::Large(..) => None,
        })
        .collect();
    if !std.is_empty() {
        let len = std.len() * 4;
        size += 4 + len;
        out.push(attr(
            true,
            true,
            len > 255,
            PathAttributeValue::Communities(Communities::new(std)),
        ));
    }
    let large: Vec<LargeCommunity> = attrs
        .communities
        .iter()
        .filter_map(|c| match c {
            CommunityValue::Large(a, b, c) => Some(LargeCommunity::new(*a, *b, *c)),
            CommunityValue::Standard(_) => None,
        })
        .collect();
    if !large.is_empty() {
        let len = large.len() * 12;
        size += 4 + len;
        out.push(attr(
            true,
            true,
            len > 255,
            PathAttributeValue::LargeCommunities(LargeCommunities::new(large)),
        ));
    }
    (out, size)
}

fn v4_nlri(p: Ipv4Net) -> Result<Ipv4UnicastAddress, BuildError> {
    Ipv4Unicast::from_net(p.trunc())
        .map(Ipv4UnicastAddress::new_no_path_id)
        .map_err(|_| BuildError::NotUnicast(IpNet::V4(p)))
}

fn v6_nlri(p: Ipv6Net) -> Result<Ipv6UnicastAddress, BuildError> {
    Ipv6Unicast::from_net(p.trunc())
        .map(|n| Ipv6UnicastAddress::new(None, n))
        .map_err(|_| BuildError::NotUnicast(IpNet::V6(p)))
}

fn nlri_size(p: &IpNet) -> usize {
    1 + usize::from(p.prefix_len()).div_ceil(8)
}

/// Splits `items` into chunks whose encoded NLRI fit `budget` octets (at least one per chunk).
fn chunk_by_size(items: &[IpNet], budget: usize) -> Vec<&[IpNet]> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut used = 0;
    for (i, p) in items.iter().enumerate() {
        let s = nlri_size(p);
        if i > start && used + s > budget {
            out.push(&items[start..i]);
            start = i;
            used = 0;
        }
        used += s;
    }
    if start < items.len() {
        out.push(&items[start..]);
    }
    out
}

/// Builds the UPDATEs announcing `prefixes` with identical attributes: IPv4 in the classic
/// NLRI field with NEXT_HOP (or, with extended next hop, in MP_REACH_NLRI with the IPv6 next
/// hops), IPv6 in MP_REACH_NLRI; as many prefixes per message as fit.
pub fn build_announcements(
    ctx: &UpdateContext,
    attrs: &RouteAttributes,
    prefixes: &[IpNet],
) -> Result<Vec<BgpUpdateMessage>, BuildError> {
    let v4: Vec<IpNet> = prefixes
        .iter()
        .filter(|p| p.addr().is_ipv4())
        .copied()
        .collect();
    let v6: Vec<IpNet> = prefixes
        .iter()
        .filter(|p| p.addr().is_ipv6())
        .copied()
        .collect();
    let (base, base_size) = common_attributes(ctx, attrs);
    let mut out = Vec::new();
    let budget_base = MAX_MESSAGE_LEN - 23 - base_size;
    if !v4.is_empty() && ctx.ipv4_via_ipv6 {
        let nh = ctx.next_hop_v6.ok_or(BuildError::NoNextHop("IPv6"))?;
        let nlri = v4
            .iter()
            .map(|p| match p {
                IpNet::V4(n) => v4_nlri(*n),
                IpNet::V6(_) => unreachable!("filtered to IPv4"),
            })
            .collect::<Result<Vec<_>, _>>()?;
        out.extend(mp_reach_updates(
            ctx,
            &base,
            budget_base,
            &v4,
            |chunk| MpReach::Ipv4Unicast {
                next_hop: IpAddr::V6(nh),
                next_hop_local: ctx.next_hop_v6_link_local,
                nlri: chunk.into(),
            },
            nlri,
        ));
    } else if !v4.is_empty() {
        let nh = ctx.next_hop_v4.ok_or(BuildError::NoNextHop("IPv4"))?;
        let mut pa = base.clone();
        // Attributes go in type-code order (ORIGIN, AS_PATH, NEXT_HOP, …) like BIRD and FRR
        // send them; receivers do not require it, but identical bytes make captures comparable.
        pa.insert(
            2,
            attr(
                false,
                true,
                false,
                PathAttributeValue::NextHop(NextHop::new(nh)),
            ),
        );
        for chunk in chunk_by_size(&v4, budget_base.saturating_sub(7)) {
            let nlri = chunk
                .iter()
                .map(|p| match p {
                    IpNet::V4(n) => v4_nlri(*n),
                    IpNet::V6(_) => unreachable!("filtered to IPv4"),
                })
                .collect::<Result<Vec<_>, _>>()?;
            out.push(BgpUpdateMessage::new(vec![], pa.clone(), nlri));
        }
    }
    if !v6.is_empty() {
        let nh = ctx.next_hop_v6.ok_or(BuildError::NoNextHop("IPv6"))?;
        let nlri = v6
            .iter()
            .map(|p| match p {
                IpNet::V6(n) => v6_nlri(*n),
                IpNet::V4(_) => unreachable!("filtered to IPv6"),
            })
            .collect::<Result<Vec<_>, _>>()?;
        out.extend(mp_reach_updates(
            ctx,
            &base,
            budget_base,
            &v6,
            |chunk| MpReach::Ipv6Unicast {
                next_hop_global: nh,
                next_hop_local: ctx.next_hop_v6_link_local,
                nlri: chunk.into(),
            },
            nlri,
        ));
    }
    Ok(out)
}

/// UPDATEs carrying `prefixes` (already turned into `nlri`, one per prefix) in MP_REACH_NLRI
/// with the IPv6 next hops, as many per message as fit; `reach` builds the attribute of one
/// message's share.
fn mp_reach_updates<N: Clone>(
    ctx: &UpdateContext,
    base: &[PathAttribute],
    budget_base: usize,
    prefixes: &[IpNet],
    reach: impl Fn(Vec<N>) -> MpReach,
    nlri: Vec<N>,
) -> Vec<BgpUpdateMessage> {
    // MP_REACH header: flags, type, 2-octet length, AFI, SAFI, NH len, NH, reserved.
    let overhead = 4
        + 3
        + 1
        + if ctx.next_hop_v6_link_local.is_some() {
            32
        } else {
            16
        }
        + 1;
    let mut out = Vec::new();
    let mut start = 0;
    for chunk in chunk_by_size(prefixes, budget_base.saturating_sub(overhead)) {
        let share = nlri[start..start + chunk.len()].to_vec();
        start += chunk.len();
        let mut pa = Vec::with_capacity(base.len() + 1);
        // RFC 4760 suggests MP_REACH_NLRI first; BIRD and FRR both send it first.
        pa.push(attr(
            true,
            false,
            true,
            PathAttributeValue::MpReach(reach(share)),
        ));
        pa.extend(base.iter().cloned());
        out.push(BgpUpdateMessage::new(vec![], pa, vec![]));
    }
    out
}

/// Builds the UPDATEs withdrawing `prefixes` (IPv4 in Withdrawn Routes, IPv6 in
/// MP_UNREACH_NLRI), as many per message as fit.
pub fn build_withdrawals(prefixes: &[IpNet]) -> Result<Vec<BgpUpdateMessage>, BuildError> {
    let v4: Vec<IpNet> = prefixes
        .iter()
        .filter(|p| p.addr().is_ipv4())
        .copied()
        .collect();
    let v6: Vec<IpNet> = prefixes
        .iter()
        .filter(|p| p.addr().is_ipv6())
        .copied()
        .collect();
    let mut out = Vec::new();
    for chunk in chunk_by_size(&v4, MAX_MESSAGE_LEN - 23) {
        let w = chunk
            .iter()
            .map(|p| match p {
                IpNet::V4(n) => v4_nlri(*n),
                IpNet::V6(_) => unreachable!("filtered to IPv4"),
            })
            .collect::<Result<Vec<_>, _>>()?;
        out.push(BgpUpdateMessage::new(w, vec![], vec![]));
    }
    for chunk in chunk_by_size(&v6, MAX_MESSAGE_LEN - 23 - 4 - 3) {
        let w = chunk
            .iter()
            .map(|p| match p {
                IpNet::V6(n) => v6_nlri(*n),
                IpNet::V4(_) => unreachable!("filtered to IPv6"),
            })
            .collect::<Result<Vec<_>, _>>()?;
        out.push(BgpUpdateMessage::new(
            vec![],
            vec![attr(
                true,
                false,
                true,
                PathAttributeValue::MpUnreach(MpUnreach::Ipv6Unicast { nlri: w.into() }),
            )],
            vec![],
        ));
    }
    Ok(out)
}

/// End-of-RIB marker (RFC 4724) for a family.
pub fn end_of_rib(ipv6: bool) -> BgpUpdateMessage {
    if ipv6 {
        BgpUpdateMessage::new(
            vec![],
            vec![attr(
                true,
                false,
                false,
                PathAttributeValue::MpUnreach(MpUnreach::Ipv6Unicast { nlri: Box::new([]) }),
            )],
            vec![],
        )
    } else {
        BgpUpdateMessage::new(vec![], vec![], vec![])
    }
}

/// A ROUTE-REFRESH request (RFC 2918) for IPv4 or IPv6 unicast.
pub fn route_refresh(ipv6: bool) -> BgpRouteRefreshMessage {
    BgpRouteRefreshMessage::new(
        if ipv6 {
            AddressType::Ipv6Unicast
        } else {
            AddressType::Ipv4Unicast
        },
        netgauze_bgp_pkt::iana::RouteRefreshSubcode::NormalRequest,
    )
}

/// A received UPDATE in plain fields (for tests and logs).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UpdateSummary {
    /// Withdrawn prefixes (IPv4 field and MP_UNREACH_NLRI).
    pub withdrawn: Vec<IpNet>,
    /// Announced prefixes (NLRI field and MP_REACH_NLRI).
    pub announced: Vec<IpNet>,
    /// ORIGIN code.
    pub origin: Option<u8>,
    /// AS_PATH flattened.
    pub as_path: Vec<u32>,
    /// NEXT_HOP or MP_REACH global next hop.
    pub next_hop: Option<IpAddr>,
    /// MP_REACH link-local next hop.
    pub next_hop_link_local: Option<Ipv6Addr>,
    /// MULTI_EXIT_DISC.
    pub med: Option<u32>,
    /// LOCAL_PREF.
    pub local_pref: Option<u32>,
    /// Communities and large communities, in message order.
    pub communities: Vec<CommunityValue>,
    /// Type codes of attributes we do not interpret.
    pub other_attributes: Vec<u8>,
}

/// Reads an UPDATE into plain fields.
pub fn summarize_update(u: &BgpUpdateMessage) -> UpdateSummary {
    let mut s = UpdateSummary::default();
    s.withdrawn.extend(
        u.withdraw_routes()
            .iter()
            .map(|w| IpNet::V4(w.network().address())),
    );
    s.announced
        .extend(u.nlri().iter().map(|n| IpNet::V4(n.network().address())));
    for a in u.path_attributes() {
        match a.value() {
            PathAttributeValue::Origin(o) => s.origin = Some(*o as u8),
            PathAttributeValue::AsPath(p) => s.as_path = Vec::<u32>::from(p.clone()),
            PathAttributeValue::NextHop(n) => s.next_hop = Some(IpAddr::V4(n.next_hop())),
            PathAttributeValue::MultiExitDiscriminator(m) => s.med = Some(m.metric()),
            PathAttributeValue::LocalPreference(l) => s.local_pref = Some(l.metric()),
            PathAttributeValue::Communities(c) => s.communities.extend(
                c.communities()
                    .iter()
                    .map(|c| CommunityValue::Standard(c.value())),
            ),
            PathAttributeValue::LargeCommunities(c) => {
                s.communities.extend(c.communities().iter().map(|c| {
                    CommunityValue::Large(c.global_admin(), c.local_data1(), c.local_data2())
                }))
            }
            PathAttributeValue::MpReach(MpReach::Ipv6Unicast {
                next_hop_global,
                next_hop_local,
                nlri,
            }) => {
                s.next_hop = Some(IpAddr::V6(*next_hop_global));
                s.next_hop_link_local = *next_hop_local;
                s.announced
                    .extend(nlri.iter().map(|n| IpNet::V6(n.network().address())));
            }
            PathAttributeValue::MpReach(MpReach::Ipv4Unicast {
                next_hop,
                next_hop_local,
                nlri,
            }) => {
                s.next_hop = Some(*next_hop);
                s.next_hop_link_local = *next_hop_local;
                s.announced
                    .extend(nlri.iter().map(|n| IpNet::V4(n.network().address())));
            }
            PathAttributeValue::MpUnreach(MpUnreach::Ipv6Unicast { nlri }) => s
                .withdrawn
                .extend(nlri.iter().map(|n| IpNet::V6(n.network().address()))),
            PathAttributeValue::MpUnreach(MpUnreach::Ipv4Unicast { nlri }) => s
                .withdrawn
                .extend(nlri.iter().map(|n| IpNet::V4(n.network().address()))),
            _ => s.other_attributes.push(match a.path_attribute_type() {
                Ok(t) => t as u8,
                Err(code) => code,
            }),
        }
    }
    s
}
