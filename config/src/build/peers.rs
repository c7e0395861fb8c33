//! BGPPeers: AS numbers, addresses, timers, passwords, BFD profile references, and sessions
//! that would clash on a node. Rules follow MetalLB's `peerFromCR` and `parseTimers`
//! (internal/config/config.go).

use super::{Ctx, Obj, kinds, known_list, selectors};
use crate::Inputs;
use crate::duration;
use crate::model::{IpFamily, Peer, PeerAddress, PeerAsn, PeerPassword};
use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

pub(crate) const DEFAULT_PORT: u16 = 179;
pub(crate) const DEFAULT_HOLD: Duration = Duration::from_secs(90);
/// `connectTime` limits, whole seconds (MetalLB api/v1beta2 BGPPeerSpec ConnectTime).
const CONNECT_TIME_SECS: std::ops::RangeInclusive<u64> = 1..=65535;
const MIN_HOLD: Duration = Duration::from_secs(3);
/// `gracefulRestartTime` default: the restart time most routers propose.
pub(crate) const DEFAULT_GRACEFUL_RESTART_TIME: Duration = Duration::from_secs(120);
/// `gracefulRestartTime` limits, whole seconds: the capability carries 12 bits (RFC 4724 §3).
const GRACEFUL_RESTART_TIME_SECS: std::ops::RangeInclusive<u64> = 1..=4095;

pub fn build(ctx: &mut Ctx, inputs: &Inputs) -> BTreeMap<String, Peer> {
    let objs: Vec<Obj<'_>> = inputs
        .peers
        .iter()
        .map(|p| Obj::new(kinds::PEER, &p.metadata))
        .collect();
    let keep = ctx.check_names(
        &objs,
        true,
        "BGPAdvertisements refer to peers by name only, so names must be unique across all \
         namespaces",
    );
    let bfd_names: BTreeSet<&str> = inputs
        .bfd_profiles
        .iter()
        .filter_map(|p| p.metadata.name.as_deref())
        .collect();
    let mut built: Vec<(Obj<'_>, Option<Peer>)> = Vec::new();
    for ((input, obj), keep) in inputs.peers.iter().zip(&objs).zip(keep) {
        let peer = build_one(ctx, obj, &input.spec, &bfd_names);
        built.push((*obj, peer.filter(|_| keep)));
    }
    check_clashes(ctx, &built);
    built
        .into_iter()
        .filter_map(|(_, p)| p)
        .map(|p| (p.name.clone(), p))
        .collect()
}

/// Builds one peer; `None` when a field needed to describe it could not be parsed (the error is
/// reported).
fn build_one(
    ctx: &mut Ctx,
    obj: &Obj<'_>,
    spec: &ferrolb_api::BGPPeerSpec,
    bfd_names: &BTreeSet<&str>,
) -> Option<Peer> {
    if spec.my_asn == 0 {
        ctx.error(
            obj,
            "spec.myASN",
            "AS 0 is reserved; accepted: 1 to 4294967295",
        );
    }
    let peer_asn = match (spec.peer_asn, spec.dynamic_asn) {
        (Some(0), _) => {
            ctx.error(
                obj,
                "spec.peerASN",
                "AS 0 is reserved; accepted: 1 to 4294967295",
            );
            None
        }
        (Some(_), Some(_)) => {
            ctx.error(
                obj,
                "spec.peerASN",
                "peerASN and dynamicASN are both set; set exactly one: peerASN for a fixed AS, or \
                 dynamicASN (internal or external)",
            );
            None
        }
        (None, None) => {
            ctx.error(
                obj,
                "spec.peerASN",
                "neither peerASN nor dynamicASN is set; set exactly one: peerASN for a fixed AS, or \
                 dynamicASN (internal or external)",
            );
            None
        }
        (Some(asn), None) => {
            // MetalLB peerFromCR: "invalid ebgp-multihop parameter set for an ibgp peer".
            if asn == spec.my_asn && spec.ebgp_multi_hop {
                ctx.error(
                    obj,
                    "spec.ebgpMultiHop",
                    format!(
                        "is set on an iBGP session (myASN and peerASN are both {asn}); eBGP \
                         multihop applies to eBGP only (iBGP sessions are sent with TTL 255 \
                         anyway): remove it"
                    ),
                );
            }
            Some(PeerAsn::Fixed(asn))
        }
        (None, Some(ferrolb_api::DynamicAsn::Internal)) => Some(PeerAsn::Internal),
        (None, Some(ferrolb_api::DynamicAsn::External)) => Some(PeerAsn::External),
    };
    let peer_address = peer_address(ctx, obj, spec);
    let address = peer_address.as_ref().and_then(PeerAddress::ip);
    let source_address = spec.source_address.as_deref().and_then(|s| {
        let src = parse_ip(
            ctx,
            obj,
            "spec.sourceAddress",
            s,
            "a local address of the node",
        )?;
        if let Some(peer) = address
            && IpFamily::of(&src) != IpFamily::of(&peer)
        {
            // MetalLB accepts this; no session can be opened from it.
            ctx.warn(
                obj,
                "spec.sourceAddress",
                format!(
                    "{src} is {} but peerAddress {peer} is {}, so the session cannot be \
                     opened: it needs a source address of the peer's family",
                    IpFamily::of(&src).k8s_name(),
                    IpFamily::of(&peer).k8s_name()
                ),
            );
        }
        Some(src)
    });
    let router_id = spec.router_id.as_deref().and_then(|s| match s.parse::<Ipv4Addr>() {
        Ok(id) => Some(id),
        Err(_) => {
            ctx.error(
                obj,
                "spec.routerID",
                format!("{s:?} is not an IPv4 address; a BGP router ID is written as one, e.g. 10.0.0.1"),
            );
            None
        }
    });
    let (hold_time, keepalive_time) = timers(ctx, obj, spec);
    let connect_time = connect_time(ctx, obj, spec);
    let graceful_restart_time = graceful_restart_time(ctx, obj, spec);
    if spec.peer_port == Some(0) {
        ctx.error(
            obj,
            "spec.peerPort",
            "0 is not a port; accepted: 1 to 65535 (default 179)",
        );
    }
    let password = password(ctx, obj, spec);
    if let Some(name) = &spec.bfd_profile
        && !bfd_names.contains(name.as_str())
    {
        ctx.error(
            obj,
            "spec.bfdProfile",
            format!(
                "no BFDProfile named {name:?}; {}",
                known_list(bfd_names.iter().copied())
            ),
        );
    }
    let node_selectors =
        selectors::parse_list(ctx, obj, "spec.nodeSelectors", &spec.node_selectors);
    let local_asn = local_asn(ctx, obj, spec);
    let vrf = vrf(ctx, obj, spec);
    if spec.dual_stack_address_family && spec.disable_mp {
        ctx.warn(
            obj,
            "spec.disableMP",
            "is set together with dualStackAddressFamily; disableMP wins, so the session \
             carries only the family of peerAddress: remove one of them",
        );
    }
    Some(Peer {
        namespace: obj.namespace.to_string(),
        name: obj.name.to_string(),
        my_asn: spec.my_asn,
        peer_asn: peer_asn?,
        address: peer_address?,
        source_address,
        port: spec.peer_port.unwrap_or(DEFAULT_PORT),
        hold_time,
        keepalive_time,
        connect_time,
        router_id,
        node_selectors,
        password,
        bfd_profile: spec.bfd_profile.clone(),
        ebgp_multihop: spec.ebgp_multi_hop,
        graceful_restart: spec.enable_graceful_restart,
        graceful_restart_time: graceful_restart_time?,
        disable_mp: spec.disable_mp,
        local_asn,
        dual_stack: spec.dual_stack_address_family,
        vrf,
    })
}

/// `localASN`: presented instead of `myASN` (FRR's `local-as`, which MetalLB writes). FRR
/// refuses it equal to the router's AS and on iBGP neighbours, so MetalLB's configuration
/// would not load either: those are errors here.
fn local_asn(ctx: &mut Ctx, obj: &Obj<'_>, spec: &ferrolb_api::BGPPeerSpec) -> Option<u32> {
    let asn = spec.local_asn?;
    let ibgp = match (spec.peer_asn, spec.dynamic_asn) {
        (Some(peer), _) => peer == spec.my_asn,
        (None, Some(ferrolb_api::DynamicAsn::Internal)) => true,
        _ => false,
    };
    if asn == 0 {
        ctx.error(
            obj,
            "spec.localASN",
            "AS 0 is reserved; accepted: 1 to 4294967295, different from myASN",
        );
        None
    } else if asn == spec.my_asn {
        ctx.error(
            obj,
            "spec.localASN",
            format!(
                "{asn} equals myASN; localASN presents another AS than myASN to this peer: \
                 remove it, or set the AS the router expects"
            ),
        );
        None
    } else if ibgp {
        ctx.error(
            obj,
            "spec.localASN",
            format!(
                "is set on an iBGP session (the peer's AS is myASN {}); localASN applies to \
                 eBGP sessions only: remove it, or make the session eBGP",
                spec.my_asn
            ),
        );
        None
    } else {
        Some(asn)
    }
}

/// Longest Linux interface name (IFNAMSIZ 16 with its terminating NUL).
const MAX_IFNAME: usize = 15;

/// Whether `name` can name a Linux network device (what `dev_valid_name` accepts).
fn is_interface_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_IFNAME
        && name != "."
        && name != ".."
        && !name
            .chars()
            .any(|c| c == '/' || c == ':' || c.is_whitespace() || c.is_control())
}

/// `peerAddress` or `interface`: exactly one (MetalLB's peerFromCR refuses both and neither).
/// An unnumbered peer is one hop away over its link and reached from the interface's
/// link-local address, so `ebgpMultiHop` and `sourceAddress` contradict it; BFD needs an
/// address known in advance, which an unnumbered peer does not have.
fn peer_address(
    ctx: &mut Ctx,
    obj: &Obj<'_>,
    spec: &ferrolb_api::BGPPeerSpec,
) -> Option<PeerAddress> {
    let interface = spec.interface.as_deref().filter(|i| !i.is_empty());
    let Some(name) = interface else {
        if spec.peer_address.is_empty() {
            ctx.error(
                obj,
                "spec.peerAddress",
                "neither peerAddress nor interface is set; set exactly one: peerAddress for the \
                 router's address, or interface for unnumbered peering over a point-to-point link",
            );
            return None;
        }
        return parse_ip(
            ctx,
            obj,
            "spec.peerAddress",
            &spec.peer_address,
            "the peer's address",
        )
        .map(PeerAddress::Ip);
    };
    let mut ok = true;
    if !spec.peer_address.is_empty() {
        ctx.error(
            obj,
            "spec.interface",
            format!(
                "is set together with peerAddress {}; set exactly one: peerAddress for the \
                 router's address, or interface for unnumbered peering (the router's link-local \
                 address is discovered on it)",
                spec.peer_address
            ),
        );
        ok = false;
    }
    if !is_interface_name(name) {
        ctx.error(
            obj,
            "spec.interface",
            format!(
                "{name:?} is not a Linux interface name; expected the name of the node's \
                 interface towards the router: at most {MAX_IFNAME} characters, without '/', ':' \
                 or spaces"
            ),
        );
        ok = false;
    }
    if spec.ebgp_multi_hop {
        ctx.error(
            obj,
            "spec.ebgpMultiHop",
            format!(
                "is set on an unnumbered session (interface {name}); the router is on the other \
                 end of the link, one hop away: remove ebgpMultiHop"
            ),
        );
        ok = false;
    }
    if let Some(src) = &spec.source_address {
        ctx.error(
            obj,
            "spec.sourceAddress",
            format!(
                "{src} is set on an unnumbered session (interface {name}); the session is opened \
                 from the interface's IPv6 link-local address: remove sourceAddress"
            ),
        );
        ok = false;
    }
    if spec.bfd_profile.is_some() {
        ctx.error(
            obj,
            "spec.bfdProfile",
            format!(
                "is set on an unnumbered session (interface {name}); ferrolb runs BFD to \
                 configured addresses only, and this peer's is discovered: remove bfdProfile, or \
                 use peerAddress"
            ),
        );
        ok = false;
    }
    ok.then(|| PeerAddress::Interface(name.to_string()))
}

/// `vrf`: the name of a Linux VRF device. Empty means the default VRF (MetalLB's zero value).
fn vrf(ctx: &mut Ctx, obj: &Obj<'_>, spec: &ferrolb_api::BGPPeerSpec) -> Option<String> {
    let name = spec.vrf.as_deref().filter(|v| !v.is_empty())?;
    if !is_interface_name(name) {
        ctx.error(
            obj,
            "spec.vrf",
            format!(
                "{name:?} is not a Linux interface name; expected the name of the node's VRF \
                 device: at most {MAX_IFNAME} characters, without '/', ':' or spaces"
            ),
        );
        return None;
    }
    if spec.bfd_profile.is_some() {
        ctx.error(
            obj,
            "spec.bfdProfile",
            format!(
                "is set on a session in VRF {name}; ferrolb runs BFD in the default VRF only, \
                 so it would not reach this peer: remove bfdProfile, or vrf"
            ),
        );
    }
    Some(name.to_string())
}

/// Parses an address as written: like MetalLB's `net.ParseIP`, spaces around it make it
/// invalid.
fn parse_ip(ctx: &mut Ctx, obj: &Obj<'_>, field: &str, text: &str, what: &str) -> Option<IpAddr> {
    match text.parse::<IpAddr>() {
        Ok(ip) => Some(ip),
        Err(_) => {
            let hint = if text.trim() != text && text.trim().parse::<IpAddr>().is_ok() {
                " (without leading or trailing spaces)"
            } else if text.contains('/') {
                " (without a prefix length)"
            } else {
                ""
            };
            ctx.error(
                obj,
                field,
                format!("{text:?} is not an IP address; expected {what} as an IPv4 or IPv6 address{hint}"),
            );
            None
        }
    }
}

/// Hold and keepalive times, read as MetalLB's `parseTimers` reads them: with only a hold time
/// the keepalive is a third of it, with only a keepalive the hold time is three times it,
/// with neither the defaults (90s and 30s). The hold time is counted in whole seconds, as BGP
/// carries it: 0 (no keepalives) or at least 3s; the keepalive may not exceed it.
/// `connectTime`, the interval between connection attempts (MetalLB writes it as FRR's
/// `timers connect`): whole seconds from 1s to 65535s, as MetalLB's CRD validates it. Unset:
/// the speaker backs off instead.
fn connect_time(ctx: &mut Ctx, obj: &Obj<'_>, spec: &ferrolb_api::BGPPeerSpec) -> Option<Duration> {
    let text = spec.connect_time.as_deref()?;
    let d = match duration::parse(text) {
        Ok(d) => d,
        Err(m) => {
            ctx.error(obj, "spec.connectTime", m);
            return None;
        }
    };
    if d.subsec_nanos() != 0 {
        ctx.error(
            obj,
            "spec.connectTime",
            format!("{text} is not a whole number of seconds; accepted: 1s to 65535s in whole seconds, e.g. 10s"),
        );
        None
    } else if !CONNECT_TIME_SECS.contains(&d.as_secs()) {
        ctx.error(
            obj,
            "spec.connectTime",
            format!("{text} is outside the accepted range 1s to 65535s (the wait between connection attempts), e.g. 10s"),
        );
        None
    } else {
        Some(d)
    }
}

/// `gracefulRestartTime`, the restart time announced in the graceful restart capability:
/// whole seconds from 1s to 4095s (the capability's 12-bit field). Unset: 120s. `None` when
/// it is invalid (the error is reported).
fn graceful_restart_time(
    ctx: &mut Ctx,
    obj: &Obj<'_>,
    spec: &ferrolb_api::BGPPeerSpec,
) -> Option<Duration> {
    let Some(text) = spec.graceful_restart_time.as_deref() else {
        return Some(DEFAULT_GRACEFUL_RESTART_TIME);
    };
    let d = match duration::parse(text) {
        Ok(d) => d,
        Err(m) => {
            ctx.error(obj, "spec.gracefulRestartTime", m);
            return None;
        }
    };
    if d.subsec_nanos() != 0 {
        ctx.error(
            obj,
            "spec.gracefulRestartTime",
            format!("{text} is not a whole number of seconds; accepted: 1s to 4095s in whole seconds, e.g. 120s"),
        );
        None
    } else if !GRACEFUL_RESTART_TIME_SECS.contains(&d.as_secs()) {
        ctx.error(
            obj,
            "spec.gracefulRestartTime",
            format!("{text} is outside the accepted range 1s to 4095s (the restart time the graceful restart capability carries), e.g. 120s"),
        );
        None
    } else {
        Some(d)
    }
}

fn timers(ctx: &mut Ctx, obj: &Obj<'_>, spec: &ferrolb_api::BGPPeerSpec) -> (Duration, Duration) {
    let parse = |ctx: &mut Ctx, field: &str, text: Option<&str>| {
        text.and_then(|t| match duration::parse(t) {
            Ok(d) => Some(d),
            Err(m) => {
                ctx.error(obj, field, m);
                None
            }
        })
    };
    let hold = parse(ctx, "spec.holdTime", spec.hold_time.as_deref());
    let keepalive = parse(ctx, "spec.keepaliveTime", spec.keepalive_time.as_deref());
    let (hold, keepalive, hold_field) = match (hold, keepalive) {
        (None, None) => (DEFAULT_HOLD, DEFAULT_HOLD / 3, "spec.holdTime"),
        (Some(h), None) => (h, h / 3, "spec.holdTime"),
        // The hold time comes from the keepalive: point at what the user wrote.
        (None, Some(k)) => (k.saturating_mul(3), k, "spec.keepaliveTime"),
        (Some(h), Some(k)) => (h, k, "spec.holdTime"),
    };
    let whole = Duration::from_secs(hold.as_secs());
    let shown = if hold_field == "spec.holdTime" {
        duration::format(hold)
    } else {
        format!(
            "{} (three times keepaliveTime {})",
            duration::format(hold),
            duration::format(keepalive)
        )
    };
    if !whole.is_zero() && whole < MIN_HOLD {
        ctx.error(
            obj,
            hold_field,
            format!(
                "hold time {shown} is too short; accepted: 0s (no keepalives) or at least 3s \
                 (RFC 4271)"
            ),
        );
    } else if whole != hold {
        ctx.warn(
            obj,
            hold_field,
            format!(
                "hold time {shown} is not a whole number of seconds; BGP carries whole seconds, \
                 so it is {}{}",
                duration::format(whole),
                if whole.is_zero() {
                    ", which disables keepalives and the hold timer"
                } else {
                    ""
                }
            ),
        );
    }
    if keepalive > hold && hold.is_zero() {
        ctx.error(
            obj,
            "spec.keepaliveTime",
            format!(
                "{} is longer than holdTime 0s, which disables keepalives; set keepaliveTime to \
                 0s, or holdTime to at least 3s",
                duration::format(keepalive)
            ),
        );
    } else if keepalive > hold {
        ctx.error(
            obj,
            "spec.keepaliveTime",
            format!(
                "{} is longer than holdTime {}; keepalives must come at least as often as the hold \
                 time, typically every third of it ({})",
                duration::format(keepalive),
                duration::format(hold),
                duration::format(hold / 3)
            ),
        );
    } else if keepalive == hold && !hold.is_zero() {
        // MetalLB accepts it; one late keepalive then ends the session.
        ctx.warn(
            obj,
            "spec.keepaliveTime",
            format!(
                "{} equals holdTime, so a single late keepalive ends the session; a third of \
                 the hold time ({}) is usual",
                duration::format(keepalive),
                duration::format(hold / 3)
            ),
        );
    }
    // A hold time of 0 disables keepalives.
    let keepalive = if whole.is_zero() {
        Duration::ZERO
    } else {
        keepalive
    };
    (whole, keepalive)
}

fn password(ctx: &mut Ctx, obj: &Obj<'_>, spec: &ferrolb_api::BGPPeerSpec) -> Option<PeerPassword> {
    match (&spec.password, &spec.password_secret) {
        (Some(_), Some(_)) => {
            ctx.error(
                obj,
                "spec.passwordSecret",
                "password and passwordSecret are both set; set one: the password itself, or a \
                 reference to a kubernetes.io/basic-auth Secret",
            );
            None
        }
        (Some(p), None) => Some(PeerPassword::Literal(p.clone())),
        (None, Some(secret)) => match secret.name.as_deref().filter(|n| !n.is_empty()) {
            Some(name) => Some(PeerPassword::Secret {
                // Like MetalLB, a reference without a namespace means the peer's own namespace.
                namespace: secret
                    .namespace
                    .clone()
                    .filter(|n| !n.is_empty())
                    .unwrap_or_else(|| obj.namespace.to_string()),
                name: name.to_string(),
            }),
            None => {
                ctx.error(
                    obj,
                    "spec.passwordSecret.name",
                    "is missing; name the kubernetes.io/basic-auth Secret whose password key holds \
                     the TCP MD5 password",
                );
                None
            }
        },
        (None, None) => None,
    }
}

/// Two sessions to one address and port from the same node cannot both exist: report pairs
/// whose node selectors may select a common node (see [`selectors::lists_may_overlap`]).
fn check_clashes(ctx: &mut Ctx, peers: &[(Obj<'_>, Option<Peer>)]) {
    for (i, (_, a)) in peers.iter().enumerate() {
        let Some(a) = a else { continue };
        for (obj_b, b) in &peers[i + 1..] {
            let Some(b) = b else { continue };
            // Sessions in different VRFs are different sockets, even to the same address.
            if a.address == b.address
                && a.port == b.port
                && a.vrf == b.vrf
                && selectors::lists_may_overlap(&a.node_selectors, &b.node_selectors)
            {
                let field = match b.address {
                    PeerAddress::Ip(_) => "spec.peerAddress",
                    PeerAddress::Interface(_) => "spec.interface",
                };
                ctx.error(
                    obj_b,
                    field,
                    format!(
                        "{} port {} is also the address of {}, and both may apply to the \
                         same node (their nodeSelectors are not provably disjoint); a node can \
                         hold one session per address and port: merge the peers or give them \
                         nodeSelectors that differ in the value of one label",
                        b.address,
                        b.port,
                        Obj {
                            kind: kinds::PEER,
                            namespace: &a.namespace,
                            name: &a.name
                        }
                        .describe()
                    ),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use crate::{Config, Inputs, PeerPassword};
    use ferrolb_api::DynamicAsn;
    use k8s_openapi::api::core::v1::SecretReference;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
    use std::collections::BTreeMap;
    use std::time::Duration;

    const P: &str = "BGPPeer ferrolb-system/r: ";

    fn one(edit: impl FnOnce(&mut ferrolb_api::BGPPeerSpec)) -> Vec<String> {
        let mut p = peer("r", "10.0.0.1");
        edit(&mut p.spec);
        lines(&Inputs {
            peers: vec![p],
            ..Default::default()
        })
    }

    #[test]
    fn asn_zero_is_reserved() {
        let l = one(|s| {
            s.my_asn = 0;
            s.peer_asn = Some(0);
        });
        assert_eq!(
            l,
            vec![
                format!("{P}spec.myASN: AS 0 is reserved; accepted: 1 to 4294967295"),
                format!("{P}spec.peerASN: AS 0 is reserved; accepted: 1 to 4294967295"),
            ]
        );
    }

    #[test]
    fn exactly_one_of_peer_asn_and_dynamic_asn() {
        assert_eq!(
            one(|s| s.dynamic_asn = Some(DynamicAsn::External)),
            vec![format!(
                "{P}spec.peerASN: peerASN and dynamicASN are both set; set exactly one: peerASN for \
                 a fixed AS, or dynamicASN (internal or external)"
            )]
        );
        assert_eq!(
            one(|s| s.peer_asn = None),
            vec![format!(
                "{P}spec.peerASN: neither peerASN nor dynamicASN is set; set exactly one: peerASN \
                 for a fixed AS, or dynamicASN (internal or external)"
            )]
        );
    }

    #[test]
    fn addresses_and_router_id() {
        assert_eq!(
            one(|s| s.peer_address = "10.0.0.1/24".into()),
            vec![format!(
                "{P}spec.peerAddress: \"10.0.0.1/24\" is not an IP address; expected the peer's \
                 address as an IPv4 or IPv6 address (without a prefix length)"
            )]
        );
        assert_eq!(
            one(|s| s.source_address = Some("router".into())),
            vec![format!(
                "{P}spec.sourceAddress: \"router\" is not an IP address; expected a local address \
                 of the node as an IPv4 or IPv6 address"
            )]
        );
        assert_eq!(
            one(|s| s.peer_address = " 10.0.0.1".into()),
            vec![format!(
                "{P}spec.peerAddress: \" 10.0.0.1\" is not an IP address; expected the peer's \
                 address as an IPv4 or IPv6 address (without leading or trailing spaces)"
            )]
        );
        assert_eq!(
            one(|s| s.peer_port = Some(0)),
            vec![format!(
                "{P}spec.peerPort: 0 is not a port; accepted: 1 to 65535 (default 179)"
            )]
        );
        assert_eq!(
            one(|s| s.router_id = Some("fd00::1".into())),
            vec![format!(
                "{P}spec.routerID: \"fd00::1\" is not an IPv4 address; a BGP router ID is written \
                 as one, e.g. 10.0.0.1"
            )]
        );
    }

    /// A source address of the other family: MetalLB accepts it (peerFromCR only parses
    /// it); no session can be opened from it, so ferrolb warns.
    #[test]
    fn source_address_of_the_other_family_is_a_warning() {
        let mut p = peer("r", "10.0.0.1");
        p.spec.source_address = Some("fd00::2".into());
        let config = Config::build(&Inputs {
            peers: vec![p],
            ..Default::default()
        })
        .expect("a warning only");
        assert_eq!(
            config.warnings[0].to_string(),
            format!(
                "{P}spec.sourceAddress: fd00::2 is IPv6 but peerAddress 10.0.0.1 is IPv4, so the \
                 session cannot be opened: it needs a source address of the peer's family"
            )
        );
    }

    /// MetalLB peerFromCR: "invalid ebgp-multihop parameter set for an ibgp peer" (TestParse
    /// "invalid ebgp-multihop"); with dynamicASN MetalLB's peerASN is 0, so it never applies.
    #[test]
    fn ebgp_multihop_on_ibgp_is_rejected() {
        assert_eq!(
            one(|s| {
                s.peer_asn = Some(64512);
                s.ebgp_multi_hop = true;
            }),
            vec![format!(
                "{P}spec.ebgpMultiHop: is set on an iBGP session (myASN and peerASN are both \
                 64512); eBGP multihop applies to eBGP only (iBGP sessions are sent with TTL 255 \
                 anyway): remove it"
            )]
        );
        let mut p = peer("r", "10.0.0.1");
        p.spec.peer_asn = None;
        p.spec.dynamic_asn = Some(DynamicAsn::Internal);
        p.spec.ebgp_multi_hop = true;
        assert!(
            Config::build(&Inputs {
                peers: vec![p],
                ..Default::default()
            })
            .is_ok()
        );
    }

    fn timer_config(hold: Option<&str>, keepalive: Option<&str>) -> crate::Config {
        let mut p = peer("r", "10.0.0.1");
        p.spec.hold_time = hold.map(String::from);
        p.spec.keepalive_time = keepalive.map(String::from);
        Config::build(&Inputs {
            peers: vec![p],
            ..Default::default()
        })
        .expect("valid timers")
    }

    /// MetalLB parseTimers (TestParse "peer with keepalive only", "peer with holdtime only",
    /// "peer with zero hold/keepalive timers", "invalid keepalivetime larger than holdtime",
    /// "invalid hold time (too short)").
    #[test]
    fn timers_as_metallb_reads_them() {
        let c = timer_config(None, Some("60s"));
        assert_eq!(c.peers["r"].hold_time, Duration::from_secs(180));
        assert_eq!(c.peers["r"].keepalive_time, Duration::from_secs(60));
        let c = timer_config(Some("180s"), None);
        assert_eq!(c.peers["r"].keepalive_time, Duration::from_secs(60));
        let c = timer_config(Some("0s"), Some("0s"));
        assert_eq!(c.peers["r"].hold_time, Duration::ZERO);
        // Equal timers are accepted, with a warning.
        let c = timer_config(Some("9s"), Some("9s"));
        assert_eq!(c.peers["r"].keepalive_time, Duration::from_secs(9));
        assert_eq!(
            c.warnings[0].to_string(),
            format!(
                "{P}spec.keepaliveTime: 9s equals holdTime, so a single late keepalive ends the \
                 session; a third of the hold time (3s) is usual"
            )
        );
        // Hold times count in whole seconds: 3.5s is 3s, 500ms is 0s.
        let c = timer_config(Some("3.5s"), None);
        assert_eq!(c.peers["r"].hold_time, Duration::from_secs(3));
        assert_eq!(
            c.warnings[0].to_string(),
            format!(
                "{P}spec.holdTime: hold time 3.5s is not a whole number of seconds; BGP carries \
                 whole seconds, so it is 3s"
            )
        );
        let c = timer_config(Some("500ms"), Some("0s"));
        assert_eq!(c.peers["r"].hold_time, Duration::ZERO);
        assert_eq!(c.peers["r"].keepalive_time, Duration::ZERO);
    }

    #[test]
    fn timers() {
        assert_eq!(
            one(|s| s.hold_time = Some("2s".into())),
            vec![format!(
                "{P}spec.holdTime: hold time 2s is too short; accepted: 0s (no keepalives) or at \
                 least 3s (RFC 4271)"
            ),]
        );
        assert_eq!(
            one(|s| s.keepalive_time = Some("500ms".into())),
            vec![format!(
                "{P}spec.keepaliveTime: hold time 1.5s (three times keepaliveTime 500ms) is too \
                 short; accepted: 0s (no keepalives) or at least 3s (RFC 4271)"
            ),]
        );
        assert_eq!(
            one(|s| {
                s.hold_time = Some("30s".into());
                s.keepalive_time = Some("90s".into());
            }),
            vec![format!(
                "{P}spec.keepaliveTime: 1m30s is longer than holdTime 30s; keepalives must come at \
                 least as often as the hold time, typically every third of it (10s)"
            )]
        );
        // MetalLB: a keepalive with hold time 0 is longer than the hold time.
        assert_eq!(
            one(|s| {
                s.hold_time = Some("0s".into());
                s.keepalive_time = Some("1s".into());
            }),
            vec![format!(
                "{P}spec.keepaliveTime: 1s is longer than holdTime 0s, which disables keepalives; \
                 set keepaliveTime to 0s, or holdTime to at least 3s"
            )]
        );
        assert_eq!(
            one(|s| s.hold_time = Some("90".into())),
            vec![format!(
                "{P}spec.holdTime: \"90\" is not a duration; expected a duration such as 90s, 1m30s \
                 or 500ms (units: ns, us, ms, s, m, h; no sign)"
            )]
        );
        assert!(
            one(|s| s.connect_time = Some("soon".into()))[0]
                .starts_with(&format!("{P}spec.connectTime: \"soon\" is not a duration"))
        );
    }

    /// MetalLB api/v1beta2 bgppeer_types.go BGPPeerSpec ConnectTime: the CRD's validation
    /// accepts whole seconds from 1 to 65535; the value is the wait between connection
    /// attempts (internal/bgp/frr/templates/neighborsession.tmpl `timers connect`).
    #[test]
    fn connect_time_is_whole_seconds_from_1_to_65535() {
        let built = |text: &str| {
            let mut p = peer("r", "10.0.0.1");
            p.spec.connect_time = Some(text.into());
            Config::build(&Inputs {
                peers: vec![p],
                ..Default::default()
            })
            .expect("valid")
            .peers["r"]
                .connect_time
        };
        assert_eq!(built("1s"), Some(Duration::from_secs(1)));
        assert_eq!(built("2m"), Some(Duration::from_secs(120)));
        assert_eq!(built("65535s"), Some(Duration::from_secs(65535)));
        for text in ["0s", "65536s", "24h"] {
            assert_eq!(
                one(|s| s.connect_time = Some(text.into())),
                vec![format!(
                    "{P}spec.connectTime: {text} is outside the accepted range 1s to 65535s (the \
                     wait between connection attempts), e.g. 10s"
                )]
            );
        }
        assert_eq!(
            one(|s| s.connect_time = Some("1500ms".into())),
            vec![format!(
                "{P}spec.connectTime: 1500ms is not a whole number of seconds; accepted: 1s to \
                 65535s in whole seconds, e.g. 10s"
            )]
        );
    }

    #[test]
    fn graceful_restart_time_is_whole_seconds_from_1_to_4095() {
        let built = |text: Option<&str>| {
            let mut p = peer("r", "10.0.0.1");
            p.spec.enable_graceful_restart = true;
            p.spec.graceful_restart_time = text.map(str::to_string);
            let peer = Config::build(&Inputs {
                peers: vec![p],
                ..Default::default()
            })
            .expect("valid")
            .peers["r"]
                .clone();
            (peer.graceful_restart, peer.graceful_restart_time)
        };
        assert_eq!(built(None), (true, Duration::from_secs(120)));
        assert_eq!(built(Some("1s")), (true, Duration::from_secs(1)));
        assert_eq!(built(Some("5m")), (true, Duration::from_secs(300)));
        assert_eq!(built(Some("4095s")), (true, Duration::from_secs(4095)));
        for text in ["0s", "4096s", "2h"] {
            assert_eq!(
                one(|s| s.graceful_restart_time = Some(text.into())),
                vec![format!(
                    "{P}spec.gracefulRestartTime: {text} is outside the accepted range 1s to \
                     4095s (the restart time the graceful restart capability carries), e.g. 120s"
                )]
            );
        }
        assert_eq!(
            one(|s| s.graceful_restart_time = Some("90500ms".into())),
            vec![format!(
                "{P}spec.gracefulRestartTime: 90500ms is not a whole number of seconds; \
                 accepted: 1s to 4095s in whole seconds, e.g. 120s"
            )]
        );
        assert!(
            one(|s| s.graceful_restart_time = Some("later".into()))[0].starts_with(&format!(
                "{P}spec.gracefulRestartTime: \"later\" is not a duration"
            ))
        );
    }

    #[test]
    fn timer_defaults() {
        let mut p = peer("r", "10.0.0.1");
        p.spec.hold_time = Some("0s".into());
        let mut q = peer("q", "10.0.0.2");
        q.spec.hold_time = Some("1m30s".into());
        let config = Config::build(&Inputs {
            peers: vec![p, q],
            ..Default::default()
        })
        .expect("valid");
        assert_eq!(config.peers["r"].hold_time, Duration::ZERO);
        assert_eq!(config.peers["r"].keepalive_time, Duration::ZERO);
        assert_eq!(config.peers["q"].keepalive_time, Duration::from_secs(30));
        // Unset connectTime: the speaker backs off between attempts.
        assert_eq!(config.peers["q"].connect_time, None);
        assert_eq!(config.peers["q"].port, 179);
    }

    #[test]
    fn passwords() {
        assert_eq!(
            one(|s| {
                s.password = Some("x".into());
                s.password_secret = Some(SecretReference {
                    name: Some("s".into()),
                    namespace: None,
                });
            }),
            vec![format!(
                "{P}spec.passwordSecret: password and passwordSecret are both set; set one: the \
                 password itself, or a reference to a kubernetes.io/basic-auth Secret"
            )]
        );
        assert_eq!(
            one(|s| s.password_secret = Some(SecretReference {
                name: None,
                namespace: Some("x".into())
            })),
            vec![format!(
                "{P}spec.passwordSecret.name: is missing; name the kubernetes.io/basic-auth Secret \
                 whose password key holds the TCP MD5 password"
            )]
        );
        let mut p = peer("r", "10.0.0.1");
        p.spec.password_secret = Some(SecretReference {
            name: Some("s".into()),
            namespace: None,
        });
        let config = Config::build(&Inputs {
            peers: vec![p],
            ..Default::default()
        })
        .expect("valid");
        assert_eq!(
            config.peers["r"].password,
            Some(PeerPassword::Secret {
                namespace: "ferrolb-system".into(),
                name: "s".into()
            })
        );
    }

    #[test]
    fn unknown_bfd_profile() {
        assert_eq!(
            one(|s| s.bfd_profile = Some("fast".into())),
            vec![format!(
                "{P}spec.bfdProfile: no BFDProfile named \"fast\"; there are none"
            )]
        );
    }

    fn zone(z: &str) -> LabelSelector {
        LabelSelector {
            match_labels: Some(BTreeMap::from([("zone".to_string(), z.to_string())])),
            match_expressions: None,
        }
    }

    #[test]
    fn same_address_and_port_on_one_node() {
        let a = peer("a", "10.0.0.1");
        let b = peer("b", "10.0.0.1");
        assert_eq!(
            lines(&Inputs {
                peers: vec![a.clone(), b.clone()],
                ..Default::default()
            }),
            vec![
                "BGPPeer ferrolb-system/b: spec.peerAddress: 10.0.0.1 port 179 is also the address \
                 of BGPPeer ferrolb-system/a, and both may apply to the same node (their \
                 nodeSelectors are not provably disjoint); a node can hold one session per address \
                 and port: merge the peers or give them nodeSelectors that differ in the value of \
                 one label"
                    .to_string()
            ]
        );
        // Disjoint by a matchLabels value: fine. Different ports: fine.
        let (mut a1, mut b1) = (a.clone(), b.clone());
        a1.spec.node_selectors = vec![zone("a")];
        b1.spec.node_selectors = vec![zone("b")];
        assert!(
            Config::build(&Inputs {
                peers: vec![a1, b1],
                ..Default::default()
            })
            .is_ok()
        );
        let mut b2 = b.clone();
        b2.spec.peer_port = Some(1179);
        assert!(
            Config::build(&Inputs {
                peers: vec![a.clone(), b2],
                ..Default::default()
            })
            .is_ok()
        );
        // One side selects every node: overlapping.
        let mut b3 = b;
        b3.spec.node_selectors = vec![zone("b")];
        assert!(
            Config::build(&Inputs {
                peers: vec![a, b3],
                ..Default::default()
            })
            .is_err()
        );
    }

    /// MetalLB api/v1beta2 BGPPeerSpec LocalASN (`local-as <ASN> no-prepend replace-as`); FRR
    /// refuses a local-as equal to the router's AS or on an iBGP neighbour.
    #[test]
    fn local_asn_is_kept_for_ebgp_and_rejected_where_frr_refuses_it() {
        let mut p = peer("r", "10.0.0.1");
        p.spec.local_asn = Some(65010);
        let config = Config::build(&Inputs {
            peers: vec![p],
            ..Default::default()
        })
        .expect("valid");
        assert_eq!(config.peers["r"].local_asn, Some(65010));
        assert!(!config.peers["r"].is_ibgp());
        assert_eq!(
            one(|s| s.local_asn = Some(0)),
            vec![format!(
                "{P}spec.localASN: AS 0 is reserved; accepted: 1 to 4294967295, different from \
                 myASN"
            )]
        );
        let my_asn = peer("r", "10.0.0.1").spec.my_asn;
        assert_eq!(
            one(|s| s.local_asn = Some(my_asn)),
            vec![format!(
                "{P}spec.localASN: {my_asn} equals myASN; localASN presents another AS than myASN \
                 to this peer: remove it, or set the AS the router expects"
            )]
        );
        assert_eq!(
            one(|s| {
                s.peer_asn = Some(s.my_asn);
                s.local_asn = Some(65010);
            }),
            vec![format!(
                "{P}spec.localASN: is set on an iBGP session (the peer's AS is myASN {my_asn}); \
                 localASN applies to eBGP sessions only: remove it, or make the session eBGP"
            )]
        );
        assert_eq!(
            one(|s| {
                s.peer_asn = None;
                s.dynamic_asn = Some(DynamicAsn::Internal);
                s.local_asn = Some(65010);
            })
            .len(),
            1
        );
    }

    /// MetalLB api/v1beta2 BGPPeerSpec Interface: unnumbered peering, exclusive with
    /// peerAddress; an unnumbered peer is one hop away and reached from the link-local address.
    #[test]
    fn interface_peers_exclude_peer_address_and_what_contradicts_them() {
        let unnumbered = |edit: fn(&mut ferrolb_api::BGPPeerSpec)| {
            let mut p = peer("r", "");
            p.spec.interface = Some("eth1".into());
            edit(&mut p.spec);
            p
        };
        let config = Config::build(&Inputs {
            peers: vec![unnumbered(|_| {})],
            ..Default::default()
        })
        .expect("valid");
        assert_eq!(
            config.peers["r"].address,
            crate::PeerAddress::Interface("eth1".into())
        );
        let errors = |p: ferrolb_api::BGPPeer| {
            lines(&Inputs {
                peers: vec![p],
                ..Default::default()
            })
        };
        assert_eq!(
            errors(unnumbered(|s| s.peer_address = "10.0.0.1".into())),
            vec![format!(
                "{P}spec.interface: is set together with peerAddress 10.0.0.1; set exactly one: \
                 peerAddress for the router's address, or interface for unnumbered peering (the \
                 router's link-local address is discovered on it)"
            )]
        );
        assert_eq!(
            one(|s| s.peer_address = String::new()),
            vec![format!(
                "{P}spec.peerAddress: neither peerAddress nor interface is set; set exactly one: \
                 peerAddress for the router's address, or interface for unnumbered peering over \
                 a point-to-point link"
            )]
        );
        // MetalLB's zero value: no interface.
        let mut zero = peer("r", "10.0.0.1");
        zero.spec.interface = Some(String::new());
        assert!(
            Config::build(&Inputs {
                peers: vec![zero],
                ..Default::default()
            })
            .is_ok()
        );
        assert_eq!(
            errors(unnumbered(|s| s.interface = Some("eth1:0".into()))),
            vec![format!(
                "{P}spec.interface: \"eth1:0\" is not a Linux interface name; expected the name of \
                 the node's interface towards the router: at most 15 characters, without '/', ':' \
                 or spaces"
            )]
        );
        assert_eq!(
            errors(unnumbered(|s| s.ebgp_multi_hop = true)),
            vec![format!(
                "{P}spec.ebgpMultiHop: is set on an unnumbered session (interface eth1); the \
                 router is on the other end of the link, one hop away: remove ebgpMultiHop"
            )]
        );
        assert_eq!(
            errors(unnumbered(|s| s.source_address = Some("10.0.0.2".into()))),
            vec![format!(
                "{P}spec.sourceAddress: 10.0.0.2 is set on an unnumbered session (interface \
                 eth1); the session is opened from the interface's IPv6 link-local address: \
                 remove sourceAddress"
            )]
        );
        let mut with_bfd = unnumbered(|s| s.bfd_profile = Some("fast".into()));
        with_bfd.spec.bfd_profile = Some("fast".into());
        let bfd_errors: Vec<String> = Config::build(&Inputs {
            peers: vec![with_bfd],
            bfd_profiles: vec![ferrolb_api::BFDProfile {
                metadata: meta("fast"),
                spec: Default::default(),
            }],
            ..Default::default()
        })
        .expect_err("BFD on an unnumbered session")
        .iter()
        .map(ToString::to_string)
        .collect();
        assert_eq!(
            bfd_errors,
            vec![format!(
                "{P}spec.bfdProfile: is set on an unnumbered session (interface eth1); ferrolb \
                 runs BFD to configured addresses only, and this peer's is discovered: remove \
                 bfdProfile, or use peerAddress"
            )]
        );
    }

    #[test]
    fn two_unnumbered_peers_on_one_interface_clash() {
        let mut a = peer("a", "");
        a.spec.interface = Some("eth1".into());
        let mut b = peer("b", "");
        b.spec.interface = Some("eth1".into());
        let l = lines(&Inputs {
            peers: vec![a.clone(), b.clone()],
            ..Default::default()
        });
        assert_eq!(l.len(), 1, "{l:?}");
        assert!(
            l[0].starts_with(
                "BGPPeer ferrolb-system/b: spec.interface: interface eth1 port 179 is also the \
                 address of BGPPeer ferrolb-system/a"
            ),
            "{l:?}"
        );
        b.spec.interface = Some("eth2".into());
        assert!(
            Config::build(&Inputs {
                peers: vec![a, b],
                ..Default::default()
            })
            .is_ok()
        );
    }

    #[test]
    fn vrf_names_a_linux_device_and_excludes_bfd() {
        let built = |vrf: &str| {
            let mut p = peer("r", "10.0.0.1");
            p.spec.vrf = Some(vrf.into());
            Config::build(&Inputs {
                peers: vec![p],
                ..Default::default()
            })
            .expect("valid")
            .peers["r"]
                .vrf
                .clone()
        };
        assert_eq!(built("red"), Some("red".to_string()));
        // MetalLB's zero value: the default VRF.
        assert_eq!(built(""), None);
        for name in ["a/b", "sixteen-chars-xx", "re d"] {
            assert_eq!(
                one(|s| s.vrf = Some(name.into())),
                vec![format!(
                    "{P}spec.vrf: {name:?} is not a Linux interface name; expected the name of the \
                     node's VRF device: at most 15 characters, without '/', ':' or spaces"
                )]
            );
        }
        let mut p = peer("r", "10.0.0.1");
        p.spec.vrf = Some("red".into());
        p.spec.bfd_profile = Some("fast".into());
        let errors: Vec<String> = Config::build(&Inputs {
            peers: vec![p],
            bfd_profiles: vec![ferrolb_api::BFDProfile {
                metadata: meta("fast"),
                spec: Default::default(),
            }],
            ..Default::default()
        })
        .expect_err("BFD in a VRF")
        .iter()
        .map(ToString::to_string)
        .collect();
        assert_eq!(
            errors,
            vec![format!(
                "{P}spec.bfdProfile: is set on a session in VRF red; ferrolb runs BFD in the \
                 default VRF only, so it would not reach this peer: remove bfdProfile, or vrf"
            )]
        );
    }

    #[test]
    fn same_address_in_different_vrfs_does_not_clash() {
        let mut a = peer("a", "10.0.0.1");
        let mut b = peer("b", "10.0.0.1");
        a.spec.vrf = Some("red".into());
        assert!(
            Config::build(&Inputs {
                peers: vec![a.clone(), b.clone()],
                ..Default::default()
            })
            .is_ok()
        );
        b.spec.vrf = Some("red".into());
        assert!(
            Config::build(&Inputs {
                peers: vec![a, b],
                ..Default::default()
            })
            .is_err()
        );
    }

    #[test]
    fn dual_stack_address_family_and_disable_mp() {
        let built = |dual: bool, disable_mp: bool| {
            let mut p = peer("r", "10.0.0.1");
            p.spec.dual_stack_address_family = dual;
            p.spec.disable_mp = disable_mp;
            let c = Config::build(&Inputs {
                peers: vec![p],
                ..Default::default()
            })
            .expect("valid");
            let warnings: Vec<String> = c.warnings.iter().map(ToString::to_string).collect();
            (c.peers["r"].dual_stack, c.peers["r"].disable_mp, warnings)
        };
        assert_eq!(built(false, false), (false, false, vec![]));
        assert_eq!(built(true, false), (true, false, vec![]));
        assert_eq!(
            built(true, true),
            (
                true,
                true,
                vec![format!(
                    "{P}spec.disableMP: is set together with dualStackAddressFamily; disableMP \
                     wins, so the session carries only the family of peerAddress: remove one of \
                     them"
                )]
            )
        );
    }
}
