//! This node's carrier, as the loop reports it: to the other speakers (through the
//! membership), in the logs when it changes, and which addresses it keeps this node from
//! announcing (status API, logs).

use super::events::Pending;
use ferrolb_api::status::{InterfaceCarrier, NoCarrierAddress};
use ferrolb_speaker_core::desired::L2NoCarrier;
use ferrolb_speaker_core::layer2::carrier::LinkReport;
use ferrolb_speaker_core::pass::NodeAssigned;
use std::collections::BTreeMap;
use std::net::IpAddr;

/// Logs the interfaces whose carrier changed between two reports of this node.
pub(crate) fn log_carrier_changes(before: Option<&[LinkReport]>, now: &[LinkReport]) {
    let was: BTreeMap<&str, bool> = before
        .unwrap_or_default()
        .iter()
        .map(|l| (l.name.as_str(), l.carrier))
        .collect();
    for l in now {
        match (was.get(l.name.as_str()), l.carrier) {
            (Some(true), false) | (None, false) => tracing::warn!(
                interface = %l.name,
                "interface {} has no carrier: this node leaves the layer 2 election of the addresses whose L2Advertisements select no other interface with carrier here",
                l.name
            ),
            (Some(false), true) => tracing::info!(
                interface = %l.name,
                "interface {} has carrier again: this node is eligible for its layer 2 addresses again",
                l.name
            ),
            _ => {}
        }
    }
}

/// The status API's view of this node's report.
pub(crate) fn interfaces_status(report: &[LinkReport]) -> Vec<InterfaceCarrier> {
    report
        .iter()
        .map(|l| InterfaceCarrier {
            name: l.name.clone(),
            carrier: l.carrier,
            automatic: l.automatic,
        })
        .collect()
}

/// The message of one address kept from this node by carrier.
fn message(n: &L2NoCarrier) -> String {
    let reasons: Vec<String> = n.reasons.iter().map(ToString::to_string).collect();
    reasons.join("; ")
}

/// The status API's list of addresses this node does not announce for lack of carrier.
pub(crate) fn no_carrier_status(list: &[L2NoCarrier]) -> Vec<NoCarrierAddress> {
    list.iter()
        .map(|n| NoCarrierAddress {
            ip: n.ip.to_string(),
            services: n.services.clone(),
            message: message(n),
        })
        .collect()
}

/// `NoCarrier` events: the addresses this node owned as of the last settled pass (`owners`)
/// that carrier now keeps from it, and did not already (`before`), one per Service.
pub(crate) fn owned_lost_to_carrier(
    owners: &BTreeMap<IpAddr, Option<String>>,
    me: &str,
    before: &BTreeMap<IpAddr, String>,
    list: &[L2NoCarrier],
) -> Vec<Pending> {
    list.iter()
        .filter(|n| !before.contains_key(&n.ip))
        .filter(|n| owners.get(&n.ip).is_some_and(|o| o.as_deref() == Some(me)))
        .flat_map(|n| {
            let why = message(n);
            n.services.iter().map(move |service| {
                Pending::NoCarrier(
                    NodeAssigned {
                        ip: n.ip,
                        service: service.clone(),
                    },
                    why.clone(),
                )
            })
        })
        .collect()
}

/// Logs each address that starts or stops being kept from this node by carrier, and returns
/// the new set (address → message) to compare the next pass with.
pub(crate) fn log_no_carrier_changes(
    before: &BTreeMap<IpAddr, String>,
    list: &[L2NoCarrier],
) -> BTreeMap<IpAddr, String> {
    let now: BTreeMap<IpAddr, String> = list.iter().map(|n| (n.ip, message(n))).collect();
    for (ip, why) in &now {
        if before.get(ip) != Some(why) {
            tracing::warn!(%ip, reason = %why, "not announcing {ip} in layer 2: {why}");
        }
    }
    for ip in before.keys().filter(|ip| !now.contains_key(ip)) {
        tracing::info!(%ip, "{ip} is no longer kept from this node by carrier");
    }
    now
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferrolb_speaker_core::layer2::carrier::NoCarrier;

    #[test]
    fn status_says_which_interface_lacks_carrier() {
        let list = [L2NoCarrier {
            ip: "10.200.10.1".parse().expect("ip"),
            services: vec!["default/web".into()],
            reasons: vec![NoCarrier {
                without_carrier: vec!["eth0".into()],
                requested: vec!["eth0".into()],
            }],
        }];
        let status = no_carrier_status(&list);
        assert_eq!(status[0].ip, "10.200.10.1");
        assert_eq!(status[0].message, "interface eth0 has no carrier");
        let logged = log_no_carrier_changes(&BTreeMap::new(), &list);
        assert_eq!(logged.len(), 1);
        assert!(log_no_carrier_changes(&logged, &[]).is_empty());
        // An event for the owner only, and only when the address is newly kept from it.
        let ip = list[0].ip;
        let owners = BTreeMap::from([(ip, Some("n1".to_string()))]);
        let events = owned_lost_to_carrier(&owners, "n1", &BTreeMap::new(), &list);
        assert_eq!(
            events,
            [Pending::NoCarrier(
                NodeAssigned {
                    ip,
                    service: "default/web".into()
                },
                "interface eth0 has no carrier".into()
            )]
        );
        assert!(owned_lost_to_carrier(&owners, "n2", &BTreeMap::new(), &list).is_empty());
        assert!(owned_lost_to_carrier(&owners, "n1", &logged, &list).is_empty());
    }
}
