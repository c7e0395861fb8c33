//! BFD echo runs over IPv4 only: a BGPAdvertisement must not send an IPv6 pool to a peer whose
//! BFDProfile has `echoMode`, as MetalLB's `validateConfig` (internal/config/validation.go)
//! requires ("bfd echo is not enabled on a v6 pool").

use super::{Ctx, Obj, kinds};
use crate::model::{BfdProfile, BgpAdvertisement, IpFamily, Peer, Pool};
use std::collections::BTreeMap;

pub fn check(
    ctx: &mut Ctx,
    pools: &BTreeMap<String, Pool>,
    peers: &BTreeMap<String, Peer>,
    profiles: &BTreeMap<String, BfdProfile>,
    advs: &[BgpAdvertisement],
) {
    for adv in advs {
        let Some(pool) = adv
            .pools
            .iter()
            .filter_map(|p| pools.get(p))
            .find(|p| p.has_family(IpFamily::V6))
        else {
            continue;
        };
        let echo_peers = peers.values().filter(|peer| {
            (adv.peers.is_empty() || adv.peers.contains(&peer.name))
                && peer
                    .bfd_profile
                    .as_ref()
                    .and_then(|name| profiles.get(name))
                    .is_some_and(|p| p.echo_mode)
        });
        for peer in echo_peers {
            let obj = Obj {
                kind: kinds::BGP_ADV,
                namespace: &adv.namespace,
                name: &adv.name,
            };
            let field = if adv.peers.is_empty() {
                "spec.peers"
            } else {
                "spec.ipAddressPools"
            };
            ctx.error(
                &obj,
                field,
                format!(
                    "advertises IPv6 pool {} to BGPPeer {}, whose BFDProfile {} has echoMode; \
                     BFD echo runs over IPv4 only (MetalLB rejects this too): name IPv4 pools \
                     only, leave that peer out of spec.peers, or use a profile without echoMode",
                    pool.name,
                    peer.name,
                    peer.bfd_profile.as_deref().unwrap_or_default()
                ),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use crate::{Config, Inputs};
    use ferrolb_api::{BFDProfile, BFDProfileSpec, BGPAdvertisement, BGPAdvertisementSpec};

    fn inputs(addresses: &[&str], echo: bool, adv_peers: Vec<String>) -> Inputs {
        let mut p = peer("peer1", "10.200.0.1");
        p.spec.bfd_profile = Some("fast".into());
        Inputs {
            pools: vec![pool("pool1", addresses)],
            peers: vec![p],
            bfd_profiles: vec![BFDProfile {
                metadata: meta("fast"),
                spec: BFDProfileSpec {
                    echo_mode: Some(echo),
                    ..Default::default()
                },
            }],
            bgp_advertisements: vec![BGPAdvertisement {
                metadata: meta("adv"),
                spec: BGPAdvertisementSpec {
                    peers: adv_peers,
                    ..Default::default()
                },
            }],
            ..Default::default()
        }
    }

    #[test]
    fn ipv6_pool_to_an_echo_peer_is_rejected() {
        assert_eq!(
            lines(&inputs(&["fd00:200::/120"], true, vec![])),
            vec![
                "BGPAdvertisement ferrolb-system/adv: spec.peers: advertises IPv6 pool pool1 to \
                 BGPPeer peer1, whose BFDProfile fast has echoMode; BFD echo runs over IPv4 only \
                 (MetalLB rejects this too): name IPv4 pools only, leave that peer out of \
                 spec.peers, or use a profile without echoMode"
            ]
        );
        assert_eq!(
            lines(&inputs(&["fd00:200::/120"], true, vec!["peer1".into()])).len(),
            1
        );
    }

    #[test]
    fn ipv4_pools_other_peers_and_profiles_without_echo_are_fine() {
        assert!(Config::build(&inputs(&["10.200.1.0/24"], true, vec![])).is_ok());
        assert!(Config::build(&inputs(&["fd00:200::/120"], false, vec![])).is_ok());
        let mut other = inputs(&["fd00:200::/120"], true, vec!["peer2".into()]);
        other.peers.push(peer("peer2", "10.200.0.2"));
        assert!(Config::build(&other).is_ok());
    }
}
