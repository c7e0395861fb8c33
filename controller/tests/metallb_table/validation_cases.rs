//! MetalLB `internal/config/validation_test.go`: `TestValidate` (the native BGP mode's
//! `DiscardFRROnly`) and `TestValidateFRR` (the FRR mode's `DiscardNativeOnly`), case by case.

use crate::cases::Verdict::{Invalid, Valid};
use crate::cases::*;

const NATIVE: &str = "TestValidate";
const FRR: &str = "TestValidateFRR";

/// MetalLB's native mode refuses what only its FRR mode implements; ferrolb's own BGP speaker
/// implements these, as MetalLB's FRR mode does.
const FRR_FEATURE: &str = "ferrolb's BGP speaker implements this, like MetalLB's FRR mode; only \
                           MetalLB's native mode refuses it";
const ROUTER_ID: &str = "ferrolb opens every session from its own BGP speaker, so peers on one \
                         node may use different routerIDs (MetalLB's FRR mode shares one router)";
const MY_ASN: &str = "ferrolb opens every session from its own BGP speaker, so peers on one node \
                      may use different myASNs (MetalLB's FRR mode shares one router per VRF)";
const NO_NODES: &str = "ferrolb proves two peers' nodeSelectors disjoint from the selectors \
                        themselves, so it needs no Node list to accept them";

/// A peer to 1.2.3.4, as the fragments of `validation_test.go` write it, with ASNs added.
fn peer_to(name: &str, extra: &str) -> String {
    let sep = if extra.is_empty() { "" } else { ", " };
    peer(
        name,
        &format!("{{myASN: 64512, peerASN: 64500, peerAddress: 1.2.3.4{sep}{extra}}}"),
    )
}

/// `peerOnNodes`: a peer to 1.2.3.4 on the nodes with these hostnames.
fn peer_on_nodes(name: &str, hostnames: &[&str]) -> String {
    let selectors: Vec<String> = hostnames
        .iter()
        .map(|h| format!("{{matchLabels: {{kubernetes.io/hostname: {h}}}}}"))
        .collect();
    peer_to(name, &format!("nodeSelectors: [{}]", selectors.join(", ")))
}

/// `hostNode`: a Node labelled with its hostname.
fn host_node(name: &str) -> String {
    node(name, &format!("{{kubernetes.io/hostname: {name}}}"))
}

pub fn cases() -> Vec<Case> {
    let mut out = native_cases();
    out.extend(frr_cases());
    out
}

fn native_cases() -> Vec<Case> {
    let v6_pool = |labels: &str| pool_labels("foo", labels, "{addresses: ['2001:db8::/64']}");
    vec![
        case(
            NATIVE,
            "peer with bfd profile",
            Invalid,
            &[peer_to("peer1", "bfdProfile: foo"), bfd("foo", "")],
        )
        .differs(FRR_FEATURE),
        case(
            NATIVE,
            "bfd profile set",
            Invalid,
            &[peer_to("peer1", ""), bfd("foo", "")],
        )
        .differs(FRR_FEATURE),
        case(
            NATIVE,
            "v6 address",
            Invalid,
            &[v6_pool("{}"), bgp_adv("foo", "")],
        )
        .differs(FRR_FEATURE),
        case(
            NATIVE,
            "v6 address but pool not selected",
            Valid,
            &[v6_pool("{}"), bgp_adv("foo", "{ipAddressPools: [bar]}")],
        ),
        case(
            NATIVE,
            "v6 address and selected",
            Invalid,
            &[
                v6_pool("{}"),
                bgp_adv("bar1", "{ipAddressPools: [foo1]}"),
                bgp_adv("bar2", "{ipAddressPools: [foo]}"),
            ],
        )
        .differs(FRR_FEATURE),
        case(
            NATIVE,
            "v6 address and selected by labels",
            Invalid,
            &[
                v6_pool("{key: value}"),
                bgp_adv("bar1", "{ipAddressPools: [foo1]}"),
                bgp_adv(
                    "bar2",
                    "{ipAddressPoolSelectors: [{matchLabels: {key: value}}]}",
                ),
            ],
        )
        .differs(FRR_FEATURE),
        case(
            NATIVE,
            "enable BGP GracefulRestart",
            Invalid,
            &[peer_to("peer1", "enableGracefulRestart: true")],
        )
        .differs(FRR_FEATURE),
        case(
            NATIVE,
            "disable BGP MP",
            Invalid,
            &[peer_to("peer1", "disableMP: true")],
        )
        .differs(FRR_FEATURE),
        case(
            NATIVE,
            "dynamic ASN",
            Invalid,
            &[peer(
                "peer1",
                "{myASN: 64512, dynamicASN: internal, peerAddress: 1.2.3.4}",
            )],
        )
        .differs(FRR_FEATURE),
        case(
            NATIVE,
            "interface",
            Invalid,
            &[peer(
                "peer1",
                "{myASN: 64512, peerASN: 64500, interface: eth0}",
            )],
        )
        .differs(FRR_FEATURE),
        case(
            NATIVE,
            "localASN",
            Invalid,
            &[peer_to("peer1", "localASN: 65410")],
        )
        .differs(FRR_FEATURE),
        case(
            NATIVE,
            "keepalive time",
            Invalid,
            &[peer_to("peer1", "keepaliveTime: 1s")],
        )
        .differs(FRR_FEATURE),
        case(
            NATIVE,
            "connect time",
            Invalid,
            &[peer_to("peer1", "connectTime: 1s")],
        )
        .differs(FRR_FEATURE),
        case(
            NATIVE,
            "large BGP community inside BGP Advertisement",
            Invalid,
            &[bgp_adv("adv1", "{communities: ['large:123:456:789']}")],
        )
        .differs(FRR_FEATURE),
        case(
            NATIVE,
            "large BGP community inside Community CR",
            Invalid,
            &[community(
                "community",
                "{communities: [{name: big, value: 'large:123:456:789'}]}",
            )],
        )
        .differs(FRR_FEATURE),
        case(NATIVE, "should pass", Valid, &[peer_to("peer1", "")]),
    ]
}

fn frr_cases() -> Vec<Case> {
    let asn = |name: &str, my_asn: u32, address: &str, extra: &str| {
        peer(
            name,
            &format!("{{myASN: {my_asn}, peerASN: 64500, peerAddress: {address}{extra}}}"),
        )
    };
    let router = |name: &str, address: &str, id: Option<&str>| {
        let extra = id.map(|i| format!(", routerID: {i}")).unwrap_or_default();
        asn(name, 64512, address, &extra)
    };
    let unnumbered = |name: &str, iface: &str| {
        peer(
            name,
            &format!("{{myASN: 123, peerASN: 64500, interface: {iface}}}"),
        )
    };
    vec![
        case(
            FRR,
            "peer with routerid",
            Valid,
            &[router("p1", "1.2.3.4", Some("1.2.3.4"))],
        ),
        case(
            FRR,
            "routerid set, one different",
            Invalid,
            &[
                router("p1", "1.2.3.4", Some("1.2.3.4")),
                router("p2", "1.2.3.5", Some("1.2.3.4")),
                router("p3", "1.2.3.6", Some("1.2.3.5")),
            ],
        )
        .differs(ROUTER_ID),
        case(
            FRR,
            "routerid set, one not set",
            Invalid,
            &[
                router("p1", "1.2.3.4", Some("1.2.3.4")),
                router("p2", "1.2.3.5", Some("1.2.3.4")),
                router("p3", "1.2.3.6", None),
            ],
        )
        .differs(ROUTER_ID),
        case(
            FRR,
            "bfd profile set",
            Valid,
            &[router("p1", "1.2.3.4", Some("1.2.3.4")), bfd("foo", "")],
        ),
        case(
            FRR,
            "myAsn set, all equals",
            Valid,
            &[
                asn("p1", 123, "1.2.3.4", ""),
                asn("p2", 123, "1.2.3.5", ""),
                asn("p3", 123, "1.2.3.6", ""),
            ],
        ),
        case(
            FRR,
            "myAsn set, one different",
            Invalid,
            &[
                asn("p1", 123, "1.2.3.4", ""),
                asn("p2", 123, "1.2.3.5", ""),
                asn("p3", 124, "1.2.3.6", ""),
            ],
        )
        .differs(MY_ASN),
        case(
            FRR,
            "myAsn set, one different but with different vrf",
            Valid,
            &[
                asn("p1", 123, "1.2.3.4", ""),
                asn("p2", 123, "1.2.3.5", ""),
                asn("p3", 124, "1.2.3.6", ", vrf: red"),
            ],
        ),
        case(
            FRR,
            "myAsn set, two different but with different vrf",
            Valid,
            &[
                asn("p1", 123, "1.2.3.4", ", vrf: red"),
                asn("p2", 123, "1.2.3.5", ", vrf: red"),
                asn("p3", 124, "1.2.3.6", ""),
            ],
        ),
        case(
            FRR,
            "duplicate bgp address",
            Invalid,
            &[peer_to("p1", ""), peer_to("p2", "")],
        ),
        case(
            FRR,
            "duplicate bgp address, different vrfs",
            Valid,
            &[
                peer_to("p1", ""),
                peer_to("p2", "vrf: red"),
                peer_to("p3", "vrf: green"),
            ],
        ),
        case(
            FRR,
            "duplicate bgp address, same vrf",
            Invalid,
            &[
                peer_to("p1", ""),
                peer_to("p2", "vrf: red"),
                peer_to("p3", "vrf: red"),
            ],
        ),
        case(
            FRR,
            "two peers with interface set different",
            Valid,
            &[unnumbered("p1", "eth0"), unnumbered("p2", "eth1")],
        ),
        case(
            FRR,
            "two peers with interface set same",
            Invalid,
            &[unnumbered("p1", "eth0"), unnumbered("p2", "eth0")],
        ),
        case(
            FRR,
            "duplicate address, disjoint hostname selectors",
            Valid,
            &[
                peer_on_nodes("p1", &["node1"]),
                peer_on_nodes("p2", &["node2"]),
                host_node("node1"),
                host_node("node2"),
            ],
        ),
        case(
            FRR,
            "duplicate address, overlapping hostname selectors",
            Invalid,
            &[
                peer_on_nodes("p1", &["node1"]),
                peer_on_nodes("p2", &["node1"]),
                host_node("node1"),
            ],
        ),
        case(
            FRR,
            "duplicate address, one peer without nodeSelector matches all nodes",
            Invalid,
            &[
                peer_to("p1", ""),
                peer_on_nodes("p2", &["node1"]),
                host_node("node1"),
            ],
        ),
        case(
            FRR,
            "duplicate address, disjoint selectors but no nodes known (conservative)",
            Invalid,
            &[
                peer_on_nodes("p1", &["node1"]),
                peer_on_nodes("p2", &["node2"]),
            ],
        )
        .differs(NO_NODES),
        case(
            FRR,
            "three peers same address, all on distinct nodes",
            Valid,
            &[
                peer_on_nodes("p1", &["node1"]),
                peer_on_nodes("p2", &["node2"]),
                peer_on_nodes("p3", &["node3"]),
                host_node("node1"),
                host_node("node2"),
                host_node("node3"),
            ],
        ),
        case(
            FRR,
            "three peers same address, third overlaps with first",
            Invalid,
            &[
                peer_on_nodes("p1", &["node1"]),
                peer_on_nodes("p2", &["node2"]),
                peer_on_nodes("p3", &["node1"]),
                host_node("node1"),
                host_node("node2"),
            ],
        ),
        case(
            FRR,
            "duplicate address, multiple nodeSelectors (OR), disjoint",
            Valid,
            &[
                peer_on_nodes("p1", &["node1", "node2"]),
                peer_on_nodes("p2", &["node3", "node4"]),
                host_node("node1"),
                host_node("node2"),
                host_node("node3"),
                host_node("node4"),
            ],
        ),
        case(
            FRR,
            "duplicate address, multiple nodeSelectors (OR), overlap via second selector",
            Invalid,
            &[
                peer_on_nodes("p1", &["node1", "node2"]),
                peer_on_nodes("p2", &["node3", "node2"]),
                host_node("node1"),
                host_node("node2"),
                host_node("node3"),
            ],
        ),
    ]
}
