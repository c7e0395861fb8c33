//! What this node's status objects must say — MetalLB's kinds `ServiceL2Status` (one per
//! Service announced in layer 2), `ServiceBGPStatus` (one per Service advertised over BGP) and
//! `BGPSessionState` (one per BGP session) — and the writes that make the objects say it.
//!
//! - Level-triggered: from this node's announcements and sessions the functions below compute
//!   every object the node must have, by name; [`diff`] turns that and the objects that exist
//!   into creates, status updates and deletes. The speaker's writers list, publish and retry.
//! - Names are a function of (node, what the object is about), so two speakers never write the
//!   same object and a restart finds its own: a kind prefix and 20 hex digits of SHA-256.

use ferrolb_api::status::{Announcement, AnnouncementMode, BgpPeerStatus};
use ferrolb_api::{
    BGPSessionStateStatus, InterfaceInfo, ServiceBGPStatusStatus, ServiceL2StatusStatus,
};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};

/// Name prefix of `ServiceL2Status` objects.
pub const L2_PREFIX: &str = "l2";
/// Name prefix of `ServiceBGPStatus` objects.
pub const BGP_SERVICE_PREFIX: &str = "bgp";
/// Name prefix of `BGPSessionState` objects.
pub const SESSION_PREFIX: &str = "session";

/// The name of the object of kind prefix `prefix` about `subject` (a Service `namespace/name`,
/// a BGPPeer `namespace/name`) written by `node`.
pub fn object_name(prefix: &str, node: &str, subject: &str) -> String {
    let digest = Sha256::new()
        .chain_update(node.as_bytes())
        .chain_update([0u8])
        .chain_update(subject.as_bytes())
        .finalize();
    let hex: String = digest.iter().take(10).map(|b| format!("{b:02x}")).collect();
    format!("{prefix}-{hex}")
}

/// Services (`namespace/name`) of `mode` announcements, with the union of `field` over their
/// addresses.
fn by_service<'a>(
    announcements: &'a [Announcement],
    mode: AnnouncementMode,
    field: impl Fn(&'a Announcement) -> &'a [String],
) -> BTreeMap<(&'a str, &'a str), BTreeSet<&'a str>> {
    let mut out: BTreeMap<(&str, &str), BTreeSet<&str>> = BTreeMap::new();
    for a in announcements.iter().filter(|a| a.mode == mode) {
        for service in &a.services {
            if let Some(key) = service.split_once('/') {
                out.entry(key)
                    .or_default()
                    .extend(field(a).iter().map(String::as_str));
            }
        }
    }
    out
}

/// The `ServiceL2Status` objects of `node`: one per Service it announces in layer 2, with the
/// interfaces of its addresses.
pub fn l2_statuses(
    node: &str,
    announcements: &[Announcement],
) -> BTreeMap<String, ServiceL2StatusStatus> {
    by_service(announcements, AnnouncementMode::Layer2, |a| &a.interfaces)
        .into_iter()
        .map(|((namespace, name), interfaces)| {
            let status = ServiceL2StatusStatus {
                node: node.to_string(),
                service_name: name.to_string(),
                service_namespace: namespace.to_string(),
                interfaces: interfaces
                    .into_iter()
                    .map(|i| InterfaceInfo {
                        name: i.to_string(),
                    })
                    .collect(),
            };
            let subject = format!("{namespace}/{name}");
            (object_name(L2_PREFIX, node, &subject), status)
        })
        .collect()
}

/// The `ServiceBGPStatus` objects of `node`: one per Service it advertises over BGP, with the
/// peers its addresses go to.
pub fn bgp_service_statuses(
    node: &str,
    announcements: &[Announcement],
) -> BTreeMap<String, ServiceBGPStatusStatus> {
    by_service(announcements, AnnouncementMode::Bgp, |a| &a.peers)
        .into_iter()
        .map(|((namespace, name), peers)| {
            let status = ServiceBGPStatusStatus {
                node: node.to_string(),
                service_name: name.to_string(),
                service_namespace: namespace.to_string(),
                peers: peers.into_iter().map(str::to_string).collect(),
            };
            let subject = format!("{namespace}/{name}");
            (object_name(BGP_SERVICE_PREFIX, node, &subject), status)
        })
        .collect()
}

/// The `BGPSessionState` objects of `node`: one per session, with the peer's address (without
/// the port), the VRF, the AS presented to the peer, the FSM state, the BFD state (`N/A`
/// without BFD, as MetalLB says) and, when the session's VRF is missing on the node, a message
/// naming both. An unnumbered session shows its interface and the neighbour discovered on it
/// (`fe80::1%eth1`), or says that none is.
pub fn bgp_session_states(
    node: &str,
    sessions: &[BgpPeerStatus],
) -> BTreeMap<String, (BGPSessionStateStatus, String)> {
    sessions
        .iter()
        .map(|s| {
            let peer = match &s.interface {
                Some(_) => s.neighbour.clone().unwrap_or_default(),
                None => s
                    .address
                    .parse::<std::net::SocketAddr>()
                    .map(|a| a.ip().to_string())
                    .unwrap_or_else(|_| s.address.clone()),
            };
            let status = BGPSessionStateStatus {
                node: node.to_string(),
                peer,
                vrf: s.vrf.clone().unwrap_or_default(),
                local_asn: (s.local_asn != 0).then_some(s.local_asn),
                bgp_status: s.state.clone(),
                bfd_status: s
                    .bfd
                    .as_ref()
                    .map_or_else(|| "N/A".to_string(), |b| b.state.clone()),
                interface: s.interface.clone().unwrap_or_default(),
                message: match (&s.vrf, s.vrf_missing, &s.interface, &s.neighbour) {
                    (Some(vrf), true, _, _) => format!(
                        "VRF {vrf} does not exist on node {node}; the session stays down until a \
                         VRF device of that name is created"
                    ),
                    // The last discovery's error says why; other errors are the speaker's
                    // lastError.
                    (_, _, Some(interface), None) => match &s.neighbour_error {
                        Some(e) => e.clone(),
                        None => format!(
                            "no neighbour discovered on {interface} yet: the router's link-local \
                             address is looked for before each connection attempt"
                        ),
                    },
                    _ => String::new(),
                },
                bfd_echo_active: s.bfd.as_ref().is_some_and(|b| b.echo_active),
                bfd_strict_mode: s.bfd.as_ref().is_some_and(|b| b.strict_mode),
            };
            let peer_name = s.name.rsplit('/').next().unwrap_or(&s.name).to_string();
            (
                object_name(SESSION_PREFIX, node, &s.name),
                (status, peer_name),
            )
        })
        .collect()
}

/// One write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change<S> {
    /// A new object with this status.
    Create(String, S),
    /// An existing object whose status must change.
    Update(String, S),
    /// An object of this node that no longer reports anything.
    Delete(String),
}

/// The writes that turn `existing` (this node's objects, by name, with their status if any)
/// into `desired`.
pub fn diff<S: Clone + PartialEq>(
    desired: &BTreeMap<String, S>,
    existing: &BTreeMap<String, Option<S>>,
) -> Vec<Change<S>> {
    let mut out = Vec::new();
    for (name, status) in desired {
        match existing.get(name) {
            None => out.push(Change::Create(name.clone(), status.clone())),
            Some(current) if current.as_ref() != Some(status) => {
                out.push(Change::Update(name.clone(), status.clone()))
            }
            Some(_) => {}
        }
    }
    for name in existing.keys() {
        if !desired.contains_key(name) {
            out.push(Change::Delete(name.clone()));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferrolb_api::status::BfdSessionStatus;

    fn ann(
        ip: &str,
        mode: AnnouncementMode,
        services: &[&str],
        interfaces: &[&str],
        peers: &[&str],
    ) -> Announcement {
        Announcement {
            ip: ip.parse().expect("ip"),
            mode,
            services: services.iter().map(|s| s.to_string()).collect(),
            interfaces: interfaces.iter().map(|s| s.to_string()).collect(),
            peers: peers.iter().map(|s| s.to_string()).collect(),
            since: "2026-11-24T00:00:00Z".into(),
        }
    }

    #[test]
    fn one_object_per_service_and_mode() {
        let l2 = AnnouncementMode::Layer2;
        let bgp = AnnouncementMode::Bgp;
        let anns = [
            ann("10.200.10.1", l2, &["default/web"], &["eth0"], &[]),
            ann("fd00:200::1", l2, &["default/web"], &["eth1"], &[]),
            ann("10.200.10.2", l2, &["a/x", "b/y"], &["eth0"], &[]),
            ann("10.200.20.1", bgp, &["default/api"], &[], &["ns/r1"]),
            ann("fd00:200::20", bgp, &["default/api"], &[], &["ns/r2"]),
        ];
        let d = l2_statuses("node1", &anns);
        assert_eq!(d.len(), 3, "{d:?}");
        let web = &d[&object_name("l2", "node1", "default/web")];
        assert_eq!(web.node, "node1");
        assert_eq!(
            (web.service_namespace.as_str(), web.service_name.as_str()),
            ("default", "web")
        );
        let names: Vec<&str> = web.interfaces.iter().map(|i| i.name.as_str()).collect();
        assert_eq!(names, ["eth0", "eth1"]);
        assert!(d.contains_key(&object_name("l2", "node1", "a/x")));
        assert!(d.contains_key(&object_name("l2", "node1", "b/y")));

        let b = bgp_service_statuses("node1", &anns);
        assert_eq!(b.len(), 1);
        let api = &b[&object_name("bgp", "node1", "default/api")];
        assert_eq!(api.peers, ["ns/r1", "ns/r2"]);
        assert_eq!(api.service_name, "api");
    }

    #[test]
    fn sessions_report_address_state_and_bfd() {
        let session = |name: &str, address: &str, state: &str, bfd: Option<&str>| BgpPeerStatus {
            name: name.into(),
            address: address.into(),
            state: state.into(),
            uptime_seconds: None,
            last_error: None,
            last_notification: None,
            prefixes_advertised: 0,
            updates_sent: 0,
            updates_received: 0,
            bfd: bfd.map(|s| BfdSessionStatus {
                state: s.into(),
                detection_time_ms: 150,
                echo_active: false,
                strict_mode: false,
            }),
            local_asn: 64512,
            ..Default::default()
        };
        let s = bgp_session_states(
            "node1",
            &[
                session("ferrolb-system/r4", "10.200.0.1:179", "Established", None),
                session(
                    "ferrolb-system/r6",
                    "[fd00:200::1]:179",
                    "Active",
                    Some("Down"),
                ),
            ],
        );
        let (r4, label4) = &s[&object_name("session", "node1", "ferrolb-system/r4")];
        assert_eq!(
            (
                r4.peer.as_str(),
                r4.bgp_status.as_str(),
                r4.bfd_status.as_str()
            ),
            ("10.200.0.1", "Established", "N/A")
        );
        assert_eq!(label4, "r4");
        let (r6, _) = &s[&object_name("session", "node1", "ferrolb-system/r6")];
        assert_eq!(
            (
                r6.peer.as_str(),
                r6.bgp_status.as_str(),
                r6.bfd_status.as_str()
            ),
            ("fd00:200::1", "Active", "Down")
        );
        assert_eq!((r6.vrf.as_str(), r6.local_asn), ("", Some(64512)));
        assert_eq!(r6.message, "");
        assert!(!r6.bfd_echo_active && !r6.bfd_strict_mode);
        let mut echo = session("ferrolb-system/e", "10.200.0.1:179", "OpenSent", Some("Up"));
        if let Some(b) = echo.bfd.as_mut() {
            b.echo_active = true;
            b.strict_mode = true;
        }
        let s = bgp_session_states("node1", &[echo]);
        let (e, _) = &s[&object_name("session", "node1", "ferrolb-system/e")];
        assert!(e.bfd_echo_active && e.bfd_strict_mode);
    }

    /// An unnumbered session shows its interface and the discovered neighbour with its scope,
    /// or that no neighbour is discovered.
    #[test]
    fn unnumbered_sessions_show_the_interface_and_the_neighbour() {
        let session = |name: &str, neighbour: Option<&str>, error: Option<&str>| BgpPeerStatus {
            name: name.into(),
            address: neighbour.map_or("eth1".into(), |n| format!("[{n}]:179")),
            state: "Active".into(),
            local_asn: 64512,
            interface: Some("eth1".into()),
            neighbour: neighbour.map(str::to_string),
            neighbour_error: error.map(str::to_string),
            ..Default::default()
        };
        let missing = "no neighbour discovered on eth1: the interface does not exist on this node";
        let s = bgp_session_states(
            "node1",
            &[
                session("ns/found", Some("fe80::a8c1:abff:fe00:1%eth1"), None),
                session("ns/waiting", None, Some(missing)),
                session("ns/new", None, None),
                BgpPeerStatus {
                    last_error: Some("connect to [fe80::1%2]:179: refused".into()),
                    ..session("ns/refused", None, None)
                },
            ],
        );
        let found = &s[&object_name("session", "node1", "ns/found")].0;
        assert_eq!(
            (
                found.peer.as_str(),
                found.interface.as_str(),
                found.message.as_str()
            ),
            ("fe80::a8c1:abff:fe00:1%eth1", "eth1", "")
        );
        let waiting = &s[&object_name("session", "node1", "ns/waiting")].0;
        assert_eq!(
            (
                waiting.peer.as_str(),
                waiting.interface.as_str(),
                waiting.message.as_str()
            ),
            ("", "eth1", missing)
        );
        let generic = "no neighbour discovered on eth1 yet: the router's link-local address is \
                       looked for before each connection attempt";
        for name in ["ns/new", "ns/refused"] {
            let st = &s[&object_name("session", "node1", name)].0;
            assert_eq!(st.message, generic, "{name}");
        }
    }

    /// A session in a VRF reports it; when the VRF device is missing on the node, the message
    /// names the VRF and the node.
    #[test]
    fn sessions_in_a_vrf_report_it_and_a_missing_vrf() {
        let session = |name: &str, missing: bool| BgpPeerStatus {
            name: name.into(),
            address: "10.200.0.1:179".into(),
            state: "Active".into(),
            local_asn: 65010,
            vrf: Some("red".into()),
            vrf_missing: missing,
            ..Default::default()
        };
        let s = bgp_session_states(
            "node2",
            &[session("ns/present", false), session("ns/missing", true)],
        );
        let present = &s[&object_name("session", "node2", "ns/present")].0;
        assert_eq!(
            (
                present.vrf.as_str(),
                present.local_asn,
                present.message.as_str()
            ),
            ("red", Some(65010), "")
        );
        let missing = &s[&object_name("session", "node2", "ns/missing")].0;
        assert_eq!(
            missing.message,
            "VRF red does not exist on node node2; the session stays down until a VRF device of \
             that name is created"
        );
    }

    #[test]
    fn names_are_per_kind_node_and_subject_and_valid() {
        let a = object_name("l2", "node1", "default/web");
        assert_eq!(a, object_name("l2", "node1", "default/web"));
        assert_ne!(a, object_name("l2", "node2", "default/web"));
        assert_ne!(a, object_name("l2", "node1", "default/web2"));
        assert_ne!(a, object_name("bgp", "node1", "default/web"));
        // The separator keeps ("ab", "c/d") and ("a", "bc/d") apart.
        assert_ne!(
            object_name("l2", "ab", "c/d"),
            object_name("l2", "a", "bc/d")
        );
        assert_eq!(a.len(), 23);
        assert!(
            a.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        );
    }

    #[test]
    fn diff_creates_updates_and_deletes() {
        let status = |svc: &str| ServiceL2StatusStatus {
            node: "n".into(),
            service_name: svc.into(),
            service_namespace: "default".into(),
            interfaces: vec![InterfaceInfo {
                name: "eth0".into(),
            }],
        };
        let want = BTreeMap::from([
            ("keep".to_string(), status("a")),
            ("change".to_string(), status("b")),
            ("new".to_string(), status("c")),
            ("half".to_string(), status("d")),
        ]);
        let have = BTreeMap::from([
            ("keep".to_string(), Some(status("a"))),
            ("change".to_string(), Some(status("old"))),
            ("half".to_string(), None),
            ("stale".to_string(), Some(status("e"))),
        ]);
        assert_eq!(
            diff(&want, &have),
            vec![
                Change::Update("change".into(), status("b")),
                Change::Update("half".into(), status("d")),
                Change::Create("new".into(), status("c")),
                Change::Delete("stale".into()),
            ]
        );
        let same: BTreeMap<String, Option<ServiceL2StatusStatus>> = want
            .iter()
            .map(|(k, v)| (k.clone(), Some(v.clone())))
            .collect();
        assert!(diff(&want, &same).is_empty());
    }
}
