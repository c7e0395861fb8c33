//! Data-plane-aware layer 2 eligibility: a node whose announcing interfaces have all lost
//! carrier may not own addresses, even though its speaker is alive.
//!
//! The membership may run over another network than the one addresses are announced on (a
//! management network), so "alive" does not mean "reachable on the service LAN". Each speaker
//! reports the interfaces it can announce on, with their carrier, to every other through the
//! membership ([`super::super::membership::heartbeat::Message::Links`]); every speaker then
//! applies [`carrier_check`] to the same reports, so the election stays the same everywhere.
//!
//! A node without a report (membership off, or a speaker of a version that does not send one)
//! is taken to have carrier: the election then behaves as it did before reports existed.

use std::fmt;

/// One interface a speaker can announce on (administratively up, Ethernet, ARP on, nobody's
/// member), as it reports it to the other speakers.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LinkReport {
    /// Interface name.
    pub name: String,
    /// Whether the link has carrier (`IFF_LOWER_UP`).
    pub carrier: bool,
    /// Whether the automatic choice (an L2Advertisement without `interfaces`) uses it, i.e. its
    /// name matches none of the speaker's exclusion patterns.
    pub automatic: bool,
}

/// Why a node may not announce under an advertisement: none of the interfaces the
/// advertisement selects on it has carrier.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NoCarrier {
    /// The selected interfaces that exist on the node but have no carrier, sorted.
    pub without_carrier: Vec<String>,
    /// The advertisement's `interfaces` (empty: automatic choice).
    pub requested: Vec<String>,
}

impl fmt::Display for NoCarrier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.without_carrier.as_slice() {
            [] if self.requested.is_empty() => {
                write!(f, "the node has no interface to announce on")
            }
            [] => write!(
                f,
                "none of the interfaces {} exists and is up on the node",
                self.requested.join(", ")
            ),
            [one] => write!(f, "interface {one} has no carrier"),
            many => write!(f, "interfaces {} have no carrier", many.join(", ")),
        }
    }
}

/// Whether a node may announce under an advertisement selecting `requested` interfaces (empty:
/// every interface the automatic choice uses), given the node's `report`: it may when at least
/// one selected interface has carrier, or when there is no report at all.
pub fn carrier_check(report: Option<&[LinkReport]>, requested: &[String]) -> Result<(), NoCarrier> {
    let Some(report) = report else {
        return Ok(());
    };
    let selected: Vec<&LinkReport> = report
        .iter()
        .filter(|l| {
            if requested.is_empty() {
                l.automatic
            } else {
                requested.contains(&l.name)
            }
        })
        .collect();
    if selected.iter().any(|l| l.carrier) {
        return Ok(());
    }
    let mut without_carrier: Vec<String> = selected.iter().map(|l| l.name.clone()).collect();
    without_carrier.sort();
    without_carrier.dedup();
    Err(NoCarrier {
        without_carrier,
        requested: requested.to_vec(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link(name: &str, carrier: bool, automatic: bool) -> LinkReport {
        LinkReport {
            name: name.into(),
            carrier,
            automatic,
        }
    }

    fn names(n: &[&str]) -> Vec<String> {
        n.iter().map(|s| (*s).to_string()).collect()
    }

    #[test]
    fn no_report_means_eligible() {
        assert_eq!(carrier_check(None, &[]), Ok(()));
        assert_eq!(carrier_check(None, &names(&["eth0"])), Ok(()));
    }

    #[test]
    fn a_named_interface_without_carrier_makes_the_node_ineligible() {
        let report = [link("eth0", false, true), link("mgmt0", true, true)];
        let err = carrier_check(Some(&report), &names(&["eth0"])).expect_err("eth0 is down");
        assert_eq!(err.without_carrier, names(&["eth0"]));
        assert_eq!(err.to_string(), "interface eth0 has no carrier");
        // The other network's interface does not count for an advertisement naming eth0 …
        assert_eq!(carrier_check(Some(&report), &names(&["mgmt0"])), Ok(()));
        // … but does for the automatic choice, which announces on it too.
        assert_eq!(carrier_check(Some(&report), &[]), Ok(()));
    }

    #[test]
    fn one_selected_interface_with_carrier_is_enough() {
        let report = [link("eth0", false, true), link("eth1", true, true)];
        assert_eq!(
            carrier_check(Some(&report), &names(&["eth0", "eth1"])),
            Ok(())
        );
        let report = [link("eth0", false, true), link("eth1", false, true)];
        let err = carrier_check(Some(&report), &names(&["eth1", "eth0"])).expect_err("both down");
        assert_eq!(err.to_string(), "interfaces eth0, eth1 have no carrier");
    }

    #[test]
    fn automatic_choice_ignores_excluded_interfaces() {
        // Only an excluded interface (say a CNI bridge) has carrier: nothing to announce on.
        let report = [link("eth0", false, true), link("cni0", true, false)];
        let err = carrier_check(Some(&report), &[]).expect_err("eth0 is down");
        assert_eq!(err.without_carrier, names(&["eth0"]));
        // Named explicitly, exclusions do not apply.
        assert_eq!(carrier_check(Some(&report), &names(&["cni0"])), Ok(()));
    }

    #[test]
    fn missing_or_administratively_down_interfaces_do_not_count() {
        // An administratively down interface is not in the report at all.
        let report = [link("mgmt0", true, true)];
        let err = carrier_check(Some(&report), &names(&["eth0"])).expect_err("no eth0");
        assert!(err.without_carrier.is_empty());
        assert_eq!(
            err.to_string(),
            "none of the interfaces eth0 exists and is up on the node"
        );
        let err = carrier_check(Some(&[]), &[]).expect_err("nothing at all");
        assert_eq!(err.to_string(), "the node has no interface to announce on");
    }

    #[test]
    fn carrier_back_makes_the_node_eligible_again() {
        let mut report = vec![link("eth0", false, true)];
        assert!(carrier_check(Some(&report), &names(&["eth0"])).is_err());
        report[0].carrier = true;
        assert_eq!(carrier_check(Some(&report), &names(&["eth0"])), Ok(()));
    }
}
